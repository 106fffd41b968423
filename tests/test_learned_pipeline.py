"""From nothing to a driving learned stack through the command line: collect → dataset build →
train (tiny, a few steps) → drive. Small sizes so it fits CI; the real recipe is in the README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("carla")

from kaido.logs.sample import SampleSpec
from kaido.tools.cli import main
from tests.simulation.test_collect import small_rig

SPEC = SampleSpec(image_hw=(48, 80), max_lidar_points=4096)


@pytest.mark.slow
def test_collect_build_train_drive(tmp_path: Path) -> None:
    rig = small_rig(tmp_path)
    logs, data, run = tmp_path / "logs", tmp_path / "data", tmp_path / "train"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC.to_dict()))

    common = ["--quiet"]
    assert (
        main(
            [
                "collect",
                "--out",
                str(logs),
                "--episodes",
                "2",
                "--seconds",
                "12",
                "--rig",
                str(rig),
                "--workers",
                "2",
                "--seed",
                "4",
                *common,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "dataset",
                "build",
                str(logs),
                "--out",
                str(data),
                "--spec",
                str(spec_file),
                "--val-fraction",
                "0.5",
                *common,
            ]
        )
        == 0
    )
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["splits"]["train"]["samples"] > 0
    assert manifest["splits"]["val"]["samples"] > 0

    assert (
        main(
            [
                "train",
                "configs/model/tiny.yaml",
                "--data",
                str(data),
                "--out",
                str(run),
                "--set",
                "model.perception.camera.image_height=48",
                "--set",
                "model.perception.camera.image_width=80",
                "--set",
                "model.backbone.layers=1",
                "--set",
                "train.max_steps=4",
                "--set",
                "train.batch_size=2",
                "--set",
                "train.warmup_steps=1",
                "--set",
                "train.limit_val_batches=2",
                *common,
            ]
        )
        == 0
    )
    checkpoint = run / "last.ckpt"
    summary = json.loads((run / "train.json").read_text())
    assert summary["global_step"] == 4
    assert "val/occ_iou/1s" in summary["metrics"]

    out = tmp_path / "drive"
    assert (
        main(
            [
                "drive",
                "--agent",
                "learned",
                "--checkpoint",
                str(checkpoint),
                "--rig",
                str(rig),
                "--seconds",
                "3",
                "--seed",
                "1",
                "--no-video",
                "--out",
                str(out),
                *common,
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    record = results["_checkpoint"]["records"][0]
    assert record["meta"]["duration_game"] >= 3.0 - 1e-6
    assert results["kaido"]["provenance"]["git"]["commit"]
