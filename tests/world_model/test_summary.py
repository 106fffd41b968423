"""Parameter and FLOP summaries of tiny/base/large, and ``kaido model summary``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from kaido.tools import cmd_model
from kaido.world_model.model import ModelConfig
from kaido.world_model.summary import PARTS, ModelSummary, count_parameters, summarize
from kaido.world_model.training import read_experiment

REPO = Path(__file__).resolve().parents[2]
SIZES = ("tiny", "base", "large")


def config(name: str) -> ModelConfig:
    return ModelConfig.from_dict(read_experiment(REPO / "configs" / "model" / f"{name}.yaml")[0])


@pytest.fixture(scope="module")
def summaries() -> dict[str, ModelSummary]:
    return {name: summarize(config(name)) for name in SIZES}


def test_every_part_has_parameters_and_flops(summaries: dict[str, ModelSummary]) -> None:
    for name, s in summaries.items():
        assert [p.name for p in s.parts] == list(PARTS)
        for part in s.parts:
            assert part.params > 0 and part.flops > 0, (name, part)
        assert s.total_params == sum(p.params for p in s.parts)
        assert s.total_flops == sum(p.flops for p in s.parts)


def test_sizes_are_ordered_and_in_their_ranges(summaries: dict[str, ModelSummary]) -> None:
    tiny, base, large = (summaries[n] for n in SIZES)
    assert tiny.total_params < base.total_params < large.total_params
    assert tiny.total_flops < base.total_flops < large.total_flops
    assert 0.5e6 <= tiny.total_params <= 2e6
    assert 20e6 <= base.total_params <= 50e6
    assert large.total_params >= 300e6


def test_meta_counts_match_a_real_model() -> None:
    from kaido.world_model.model import KaidoModel

    cfg = config("tiny")
    meta = summarize(cfg)
    assert meta.total_params == count_parameters(KaidoModel(cfg))
    cpu = summarize(cfg, device="cpu")
    by_name = {p.name: p for p in cpu.parts}
    for part in meta.parts:
        assert part.params == by_name[part.name].params
    # convolution-only parts count the same on both devices
    for name in ("lidar", "camera", "fusion", "detection", "segmentation"):
        assert next(p for p in meta.parts if p.name == name).flops == by_name[name].flops, name


def test_flops_scale_with_the_batch_and_cameras() -> None:
    cfg = config("tiny")
    one = {p.name: p.flops for p in summarize(cfg).parts}
    two = {p.name: p.flops for p in summarize(cfg, batch_size=2).parts}
    for name in PARTS:
        assert two[name] == 2 * one[name], name
    none = {p.name: p.flops for p in summarize(cfg, cameras=0).parts}
    assert none["camera"] == 0 and none["backbone"] == one["backbone"]
    more = {p.name: p.flops for p in summarize(cfg, cameras=3).parts}
    assert more["camera"] > one["camera"] and more["lidar"] == one["lidar"]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kaido")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd_model.register(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_model_summary_command_prints_each_part(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["model", "summary", str(REPO / "configs/model/tiny.yaml")]) == 0
    out = capsys.readouterr().out
    for name in (*PARTS, "total"):
        assert f"\n{name} " in out
    assert "model tiny" in out
    assert _run(["model", "summary", str(REPO / "configs/model/tiny.yaml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["params"] == sum(p["params"] for p in data["parts"].values())
    assert data["name"] == "tiny" and set(data["parts"]) == set(PARTS)


def test_model_summary_command_errors_name_the_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        _run(["model", "summary", str(tmp_path / "missing.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {backbone: {layers: 0}}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: model.*layers"):
        _run(["model", "summary", str(bad)])
    with pytest.raises(ValueError, match="batch-size"):
        _run(["model", "summary", str(REPO / "configs/model/tiny.yaml"), "--batch-size", "0"])
