"""Benchmark: the learned model's 3D detection on real sensor data (a baseline, not a goal).

The shipped tiny checkpoint (trained only in the embedded simulator) runs on every real frame in
``/work/shared/data``: the KITTI object frames (HDL-64 lidar and the left colour camera) and the
Argoverse 2 sensor log's sweeps (two VLP-32C lidars, no camera images in the sample: the camera
is masked). Each frame becomes the model's input exactly as a live frame does
(:func:`kaido.stack.learned.frame_inputs`); the ego is at rest on a straight route (the real
frames carry no route), with the logged speed where the source has one. Detections are decoded
as in validation and scored with the nuScenes-style centre-distance AP
(:func:`kaido.perception.detection.detection_ap`) against the labelled boxes inside the model's
BEV grid (KITTI's labels cover the camera's field of view only: the predictions are restricted to
it too).

It prints a table (source, frames, boxes, mAP and AP per class) and writes ``real.json`` with
provenance. A model trained on simulated sweeps is expected to score low here: the figure is the
baseline that domain adaptation and real-data training are measured against.

Usage: ``kaido bench real [--out DIR]`` or ``python -m benchmarks.bench_real [--out DIR]
[--checkpoint PATH]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from kaido.logs.av2_sensor import Av2SensorLog
from kaido.logs.kitti import read_kitti_frame
from kaido.logs.sample import BoxField, DetectionClass, EgoFeature, SampleSpec
from kaido.perception.detection import decode_detections, detection_ap
from kaido.provenance import REPO_ROOT, provenance
from kaido.scene.agents import AgentClass
from kaido.scene.frame import CameraImage, Frame
from kaido.scene.geometry import wrap_angle
from kaido.scene.sensors import SensorRig
from kaido.stack.learned import frame_inputs
from kaido.world_model.lightning import load_checkpoint

DATA = Path("/work/shared/data")
KITTI_ROOT = DATA / "kitti" / "object_training"
AV2_SENSOR = DATA / "av2" / "sensor"
CHECKPOINT = REPO_ROOT / "checkpoints" / "tiny.ckpt"
SPEED_LIMIT = 13.9
"""[m/s] the speed limit fed to the model (the real frames carry none)."""

_CLASSES = {
    AgentClass.VEHICLE: DetectionClass.VEHICLE,
    AgentClass.PEDESTRIAN: DetectionClass.PEDESTRIAN,
    AgentClass.CYCLIST: DetectionClass.CYCLIST,
}

FloatArray = npt.NDArray[np.float64]


def _kitti_frames() -> Iterator[Frame]:
    for path in sorted((KITTI_ROOT / "velodyne").glob("*.bin")):
        yield read_kitti_frame(KITTI_ROOT, path.stem).frame


def _av2_frames() -> Iterator[Frame]:
    for root in sorted(p for p in AV2_SENSOR.iterdir() if p.is_dir()):
        log = Av2SensorLog(root)
        for i in range(len(log)):
            yield log.frame(i)


SOURCES = {"kitti": (KITTI_ROOT, _kitti_frames), "av2_sensor": (AV2_SENSOR, _av2_frames)}


def _as_model_camera(frame: Frame, spec: SampleSpec) -> Frame:
    """``frame`` with its first camera renamed to the model's first camera (the model's rig
    names its cameras; a real rig's forward camera plays that part)."""
    if not spec.cameras or not frame.rig.cameras:
        return frame
    name = spec.cameras[0]
    camera = dataclasses.replace(frame.rig.cameras[0], name=name)
    old = frame.rig.cameras[0].name
    rig = dataclasses.replace(frame.rig, cameras=(camera,))
    images = {}
    if old in frame.images:
        image = frame.images[old]
        images[name] = CameraImage(name, image.timestamp_ns, image.rgb)
    return dataclasses.replace(frame, rig=rig, images=images)


def _truth(frame: Frame, spec: SampleSpec) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Labelled boxes ``(g, 7)`` in the ego frame (BoxField) inside the BEV grid, and classes."""
    assert frame.ground_truth is not None
    pose = frame.ego.pose
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    rows, classes = [], []
    for agent in frame.ground_truth.agents:
        cls = _CLASSES.get(agent.agent_class)
        if cls is None:
            continue
        dx, dy = agent.box.x - pose.x, agent.box.y - pose.y
        x, y = c * dx + s * dy, -s * dx + c * dy
        if not (
            spec.grid_x_range[0] <= x < spec.grid_x_range[1]
            and spec.grid_y_range[0] <= y < spec.grid_y_range[1]
        ):
            continue
        row = np.zeros(len(BoxField))
        row[[BoxField.X, BoxField.Y]] = x, y
        row[BoxField.LENGTH] = agent.box.length
        row[BoxField.WIDTH] = agent.box.width
        row[BoxField.YAW] = wrap_angle(agent.box.yaw - pose.yaw)
        rows.append(row)
        classes.append(int(cls))
    return np.array(rows).reshape(-1, len(BoxField)), np.array(classes, dtype=np.int64)


def _in_camera_view(xy: FloatArray, rig: SensorRig) -> npt.NDArray[np.bool_]:
    """Which ego-frame points ``(n, 2)`` lie in the horizontal field of view of the rig's first
    camera (KITTI labels only what that camera sees)."""
    camera = rig.cameras[0]
    to_ego = camera.optical_to_ego().as_matrix()
    origin = to_ego[:2, 3]
    forward = to_ego[:2, 2] / np.linalg.norm(to_ego[:2, 2])
    rel = xy - origin
    along = rel @ forward
    across = rel @ np.array([-forward[1], forward[0]])
    half = math.atan2(0.5 * camera.width, float(camera.intrinsic_matrix()[0, 0]))
    return np.asarray((along > 0.0) & (np.abs(np.arctan2(across, along)) <= half))


def _batch(frame: Frame, spec: SampleSpec, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    fields = frame_inputs(frame, frame.rig, spec, rng)
    state = np.zeros(len(EgoFeature), np.float32)
    speed = frame.ego.speed
    state[EgoFeature.SPEED] = speed if math.isfinite(speed) else 0.0
    state[EgoFeature.SPEED_LIMIT] = SPEED_LIMIT
    route = np.zeros((spec.route_points, 2), np.float32)
    route[:, 0] = spec.route_spacing * np.arange(spec.route_points)
    fields.update(
        ego_state=state,
        route=route,
        ego_past=np.zeros((spec.past_steps, 3), np.float32),
    )
    return {k: torch.from_numpy(np.ascontiguousarray(v))[None] for k, v in fields.items()}


def run(out_dir: Path | None = None, checkpoint: Path = CHECKPOINT) -> dict[str, Any]:
    """Score the checkpoint on every real source present; see the module docstring."""
    torch.set_num_threads(1)
    model, block = load_checkpoint(checkpoint)
    model.eval()
    spec = SampleSpec.from_dict(block["spec"])
    det_cfg = model.cfg.perception.detection
    rng = np.random.default_rng(0)
    rows: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    t0 = time.perf_counter()
    for source, (root, frames) in SOURCES.items():
        if not root.is_dir():
            skipped[source] = f"{root} is absent"
            continue
        predictions, truth = [], []
        for frame in frames():
            frame = _as_model_camera(frame, spec)
            with torch.no_grad():
                outputs = model(_batch(frame, spec, rng))
            boxes, scores, classes = (
                t.numpy() for t in decode_detections(
                    outputs["detection_heatmap"], outputs["detection_regression"], det_cfg
                )[0]
            )  # fmt: skip
            if source == "kitti":
                xy = boxes[:, [BoxField.X, BoxField.Y]].astype(np.float64)
                keep = _in_camera_view(xy, frame.rig)
                boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
            predictions.append((boxes, scores, classes))
            truth.append(_truth(frame, spec))
        metrics = detection_ap(predictions, truth, num_classes=len(DetectionClass))
        counts = np.bincount(
            np.concatenate([c for _, c in truth]).astype(np.int64), minlength=len(DetectionClass)
        )
        rows[source] = {
            "frames": len(truth),
            "boxes": {DetectionClass(k).name.lower(): int(n) for k, n in enumerate(counts)},
            "predictions": int(sum(len(p[0]) for p in predictions)),
            **metrics.as_dict(),
        }
    report = {
        "benchmark": "real",
        "checkpoint": str(checkpoint),
        "checkpoint_git": block.get("provenance", {}).get("git"),
        "sources": rows,
        "skipped": skipped,
        "wall_seconds": time.perf_counter() - t0,
        "params": {"grid_x_range": spec.grid_x_range, "grid_y_range": spec.grid_y_range},
        "provenance": provenance(),
    }
    names = [c.name.lower() for c in DetectionClass]
    header = " ".join(f"{'AP/' + n:>14}" for n in names)
    print(f"{'source':<11} {'frames':>6} {'boxes':>6} {'mAP':>6} {header}")
    for source, row in rows.items():
        aps = " ".join(f"{row[f'AP/{n}']:>14.3f}" for n in names)
        print(
            f"{source:<11} {row['frames']:>6} {sum(row['boxes'].values()):>6} "
            f"{row['mAP']:>6.3f} {aps}"
        )
    for source, why in skipped.items():
        print(f"skipped {source}: {why}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "real.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    args = parser.parse_args(argv)
    run(args.out, args.checkpoint)


if __name__ == "__main__":
    main()
