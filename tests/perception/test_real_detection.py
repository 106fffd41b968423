"""Detection on real sensor data (``benchmarks/bench_real.py``): the ground truth it scores
against, the camera-view restriction, and one run of the shipped model.

Real data: the KITTI object frames (``kitti/object_training``) and the Argoverse 2 sensor log
(``av2/sensor``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench_real
from kaido.logs.av2_sensor import Av2SensorLog
from kaido.logs.kitti import read_kitti_frame
from kaido.logs.sample import BoxField, DetectionClass, SampleSpec
from kaido.scene.agents import AgentClass
from kaido.scene.geometry import Box3DIndex, wrap_angle
from tests.conftest import shared_file


def _av2_root() -> Path:
    base = shared_file("av2/sensor")
    return next(p for p in sorted(base.iterdir()) if p.is_dir())


def test_av2_truth_in_ego_frame_matches_the_annotated_cuboids() -> None:
    log = Av2SensorLog(_av2_root())
    spec = SampleSpec()
    frame = log.frame(0)
    boxes, classes = bench_real._truth(frame, spec)
    cuboids = log.cuboids(0)
    expected = []
    for row, cls in zip(cuboids.boxes, cuboids.agent_classes, strict=True):
        x, y = row[Box3DIndex.X], row[Box3DIndex.Y]
        inside = (
            spec.grid_x_range[0] <= x < spec.grid_x_range[1]
            and spec.grid_y_range[0] <= y < spec.grid_y_range[1]
        )
        if inside and cls in (AgentClass.VEHICLE, AgentClass.PEDESTRIAN, AgentClass.CYCLIST):
            expected.append((x, y, row[Box3DIndex.YAW]))
    assert len(expected) > 5 and len(boxes) == len(expected)
    expected_arr = np.array(sorted(expected))
    order = np.lexsort((boxes[:, BoxField.Y], boxes[:, BoxField.X]))
    got = boxes[order]
    # the frame's pose is planar (the log's is 3D): a few cm of roll/pitch leakage at most
    np.testing.assert_allclose(got[:, [BoxField.X, BoxField.Y]], expected_arr[:, :2], atol=0.15)
    yaw_error = wrap_angle(got[:, BoxField.YAW] - expected_arr[:, 2])
    assert np.abs(yaw_error).max() < 0.02
    assert set(classes.tolist()) <= {int(c) for c in DetectionClass}


def test_kitti_labels_lie_in_the_camera_view_and_points_behind_do_not() -> None:
    root = shared_file("kitti/object_training")
    kitti = read_kitti_frame(root, 0)
    visible = [lab for lab in kitti.labels if lab.truncated == 0.0]
    assert visible
    xy = np.array([[lab.box.x, lab.box.y] for lab in visible])
    assert bench_real._in_camera_view(xy, kitti.frame.rig).all()
    behind = np.array([[-10.0, 0.0], [0.5, 30.0], [0.5, -30.0]])
    assert not bench_real._in_camera_view(behind, kitti.frame.rig).any()


@pytest.mark.slow
def test_shipped_model_scores_every_real_source(tmp_path: Path) -> None:
    shared_file("kitti/object_training")
    shared_file("av2/sensor")
    report = bench_real.run(tmp_path)
    written = json.loads((tmp_path / "real.json").read_text())
    assert written["sources"].keys() == {"kitti", "av2_sensor"}
    assert report["sources"]["kitti"]["frames"] == 3
    assert report["sources"]["av2_sensor"]["frames"] == 2
    for row in report["sources"].values():
        assert 0.0 <= row["mAP"] <= 1.0
        assert sum(row["boxes"].values()) > 0
    assert written["provenance"]["versions"]["torch"].startswith("2.13")
