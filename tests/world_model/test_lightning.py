"""Training with Lightning on a real (small) dataset: checkpoints with provenance, validation
metrics, and resume after a kill to exactly the uninterrupted run's weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")

from kaido.logs.sample import SampleSpec  # noqa: E402
from kaido.world_model.lightning import load_checkpoint, save_model_checkpoint, train  # noqa: E402
from kaido.world_model.model import KaidoModel, ModelConfig  # noqa: E402
from kaido.world_model.training import TrainConfig, read_experiment  # noqa: E402
from tests.logs.test_dataset import TEST_SPEC, built_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_dataset(tmp_path_factory.getbasetemp() / "kaido-data")


def small_model(spec: SampleSpec) -> ModelConfig:
    """configs/model/tiny.yaml, sized to the test dataset's spec and made smaller still."""
    model, _ = read_experiment(REPO / "configs" / "model" / "tiny.yaml")
    h, w = spec.image_hw
    model["perception"]["camera"].update(image_height=h, image_width=w)
    model["backbone"].update(layers=1, route_points=spec.route_points, past_steps=spec.past_steps)
    model["forecast"].update(future_steps=spec.future_steps, layers=1)
    model["imitation"].update(future_steps=spec.future_steps)
    model["world_model"].update(steps=spec.occupancy_steps)
    return ModelConfig.from_dict(model)


def run_config(data_dir: Path, **changes: Any) -> TrainConfig:
    base = TrainConfig(
        data_dir=str(data_dir),
        batch_size=1,
        max_steps=4,
        max_epochs=5,
        warmup_steps=1,
        checkpoint_every_steps=2,
        limit_val_batches=1,
        log_every_steps=1,
        accelerator="cpu",
        seed=3,
    )
    return base.replace(**changes)


class Crash(L.Callback):
    """Dies at the start of the batch after ``step`` optimiser steps (after that step's
    checkpoint was written): a killed run."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, idx: int) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("killed")


def weights(path: Path) -> dict[str, Any]:
    model, _ = load_checkpoint(path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_checkpoint_carries_provenance_and_validation_metrics(
    data_dir: Path, tmp_path: Path
) -> None:
    cfg = small_model(TEST_SPEC)
    last = train(cfg, run_config(data_dir, max_steps=2), tmp_path / "run", progress=False)
    data = torch.load(last, map_location="cpu", weights_only=False)
    block = data["kaido"]
    assert block["provenance"]["git"]["commit"]
    assert block["provenance"]["versions"]["torch"].startswith("2.13")
    assert block["provenance"]["versions"]["lightning"]
    assert ModelConfig.from_dict(block["model_config"]) == cfg
    assert SampleSpec.from_dict(block["spec"]) == TEST_SPEC
    assert block["train_config"]["max_steps"] == 2
    summary = json.loads((tmp_path / "run" / "train.json").read_text())
    assert summary["global_step"] == 2
    metrics = summary["metrics"]
    for name in (
        "val/loss",
        "val/bev_iou/drivable",
        "val/occ_iou/1s",
        "val/forecast/minADE",
        "val/forecast/MR",
        "val/plan/L2_1s",
    ):
        assert name in metrics, name
    assert 0.0 <= metrics["val/bev_iou/drivable"] <= 1.0
    assert metrics["val/forecast/minADE"] >= 0.0
    model, loaded = load_checkpoint(last)
    assert isinstance(model, KaidoModel) and not model.training
    assert loaded["spec"] == block["spec"]


def test_resume_after_a_kill_gives_the_uninterrupted_weights(
    data_dir: Path, tmp_path: Path
) -> None:
    cfg = small_model(TEST_SPEC)
    run = run_config(data_dir)
    straight = train(cfg, run, tmp_path / "straight", progress=False)

    killed = tmp_path / "killed"
    with pytest.raises(RuntimeError, match="killed"):
        train(cfg, run, killed, progress=False, callbacks=[Crash(step=3)])
    partial = torch.load(killed / "last.ckpt", map_location="cpu", weights_only=False)
    assert partial["global_step"] == 2  # mid-epoch: 4 samples per epoch, batch 1
    resumed = train(cfg, run, killed, progress=False)

    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
    # and the run did learn something: the weights moved from their initial values
    torch.manual_seed(0)
    start = KaidoModel(cfg).state_dict()
    assert any(not torch.equal(start[k], a[k]) for k in a if a[k].dtype.is_floating_point)


def test_release_checkpoint_round_trip(tmp_path: Path) -> None:
    cfg = small_model(TEST_SPEC)
    torch.manual_seed(1)
    model = KaidoModel(cfg).eval()
    path = save_model_checkpoint(model, TEST_SPEC.to_dict(), tmp_path / "m.ckpt")
    loaded, block = load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    assert block["provenance"]["git"]["commit"]
    with pytest.raises(ValueError, match="not a kaido checkpoint"):
        bad = tmp_path / "bad.ckpt"
        torch.save({"state_dict": {}}, bad)
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match=r"nope\.ckpt"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_evaluate_reproduces_the_validation_metrics_of_training(
    data_dir: Path, tmp_path: Path
) -> None:
    from kaido.tools.cli import main
    from kaido.world_model.evaluate import evaluate

    cfg = small_model(TEST_SPEC)
    last = train(cfg, run_config(data_dir, max_steps=2), tmp_path / "run", progress=False)
    logged = json.loads((tmp_path / "run" / "train.json").read_text())["metrics"]
    report = evaluate(last, data_dir, split="val", batch_size=1, max_batches=1)
    assert report["samples"] == 1
    compared = [k for k in report["metrics"] if f"val/{k}" in logged]
    assert {"bev_iou/drivable", "occ_iou/1s", "forecast/minADE", "plan/L2_1s"} <= set(compared)
    for name in compared:
        assert report["metrics"][name] == pytest.approx(logged[f"val/{name}"], rel=1e-4, abs=1e-5)
    out = tmp_path / "eval.json"
    code = main(["model", "evaluate", str(last), "--data", str(data_dir), "--out", str(out)])
    assert code == 0
    written = json.loads(out.read_text())
    assert written["split"] == "val" and written["samples"] >= 1
    assert written["provenance"]["versions"]["torch"].startswith("2.13")
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(last, data_dir, batch_size=0)
