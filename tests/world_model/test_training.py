"""Training config parsing, overrides and the resumable sampling order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kaido.world_model.training import TrainConfig, parse_override, read_experiment

torch = pytest.importorskip("torch")

from kaido.world_model.lightning import EpochSampler  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_train_config_rejects_bad_values_by_name() -> None:
    with pytest.raises(ValueError, match=r"train\.batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"train\.lr"):
        TrainConfig(lr=0.0)
    with pytest.raises(ValueError, match=r"train\.max_steps"):
        TrainConfig(max_steps=0)
    with pytest.raises(ValueError, match=r"unknown keys \['bogus'\]"):
        TrainConfig.from_dict({"bogus": 1})


def test_parse_override() -> None:
    assert parse_override("train.max_steps=200") == ("train.max_steps", 200)
    assert parse_override("train.strategy=fsdp") == ("train.strategy", "fsdp")
    assert parse_override("model.backbone.layers=4") == ("model.backbone.layers", 4)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_override("train.max_steps")


def test_read_experiment_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {batch_size: -1}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        read_experiment(bad)
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        read_experiment(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["tiny", "base", "large"])
def test_shipped_experiments_parse(name: str) -> None:
    path = REPO / "configs" / "model" / f"{name}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    model, train = read_experiment(path)
    assert isinstance(model, dict) and model
    assert train.batch_size >= 1


def test_epoch_sampler_order_depends_on_seed_and_epoch_only() -> None:
    epoch = [0]
    a = EpochSampler(50, seed=3, shuffle=True, epoch_of=lambda: epoch[0])
    b = EpochSampler(50, seed=3, shuffle=True, epoch_of=lambda: epoch[0])
    first = list(a)
    assert first == list(b)
    assert sorted(first) == list(range(50))
    epoch[0] = 1
    second = list(a)
    assert second != first and sorted(second) == list(range(50))
    c = EpochSampler(50, seed=4, shuffle=True, epoch_of=lambda: 1)
    assert list(c) != second


def test_epoch_sampler_skip_resumes_the_same_order() -> None:
    sampler = EpochSampler(40, seed=0, shuffle=True, epoch_of=lambda: 2)
    full = list(sampler)
    sampler.skip(16)
    assert list(sampler) == full[16:]
    assert list(sampler) == full  # the skip applies once
    assert np.array_equal(sampler.order(2), np.array(full))
