"""The composed model on the tiny configuration: contract shapes, sensor subsets, memory,
sequences, losses, overfitting one batch, and the config round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kaido.logs.sample import BevClass, BoxField, DetectionClass, SampleSpec
from kaido.provenance import to_jsonable
from kaido.world_model.model import LOSS_TERMS, KaidoModel, ModelConfig
from kaido.world_model.summary import CAMERA_KEYS, LIDAR_KEYS, example_batch
from kaido.world_model.training import read_experiment

REPO = Path(__file__).resolve().parents[2]


def load(name: str) -> ModelConfig:
    return ModelConfig.from_dict(read_experiment(REPO / "configs" / "model" / f"{name}.yaml")[0])


@pytest.fixture(scope="module")
def tiny() -> ModelConfig:
    return load("tiny")


def build(cfg: ModelConfig, seed: int = 0) -> KaidoModel:
    torch.manual_seed(seed)
    return KaidoModel(cfg)


def test_forward_backward_on_the_contract_batch(tiny: ModelConfig) -> None:
    model = build(tiny)
    batch = example_batch(tiny, batch_size=2)
    assert batch["camera_images"].dtype == torch.uint8
    assert batch["lidar_points"].dtype == torch.float16
    out = model(batch)
    g = tiny.grid
    s = tiny.perception.stride
    m = batch["boxes"].shape[1]
    expected = {
        "detection_heatmap": (2, len(DetectionClass), g.height // s, g.width // s),
        "detection_regression": (2, 8, g.height // s, g.width // s),
        "segmentation": (2, len(BevClass), g.height, g.width),
        "occupancy": (2, tiny.world_model.steps, g.height, g.width),
        "forecast_modes": (2, m, tiny.forecast.modes, tiny.forecast.future_steps, 2),
        "forecast_logits": (2, m, tiny.forecast.modes),
        "agent_boxes": (2, m, len(BoxField)),
        "agent_class": (2, m),
        "agent_mask": (2, m),
        "plan_trajectories": (2, tiny.imitation.modes, tiny.imitation.future_steps, 3),
        "plan_logits": (2, tiny.imitation.modes),
        "memory": (2, tiny.backbone.memory_tokens, tiny.backbone.dim),
        "light_logits": (2, 4),
    }
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    losses = model.losses(out, batch)
    assert set(losses) == {*LOSS_TERMS, "total"}
    for name, value in losses.items():
        assert value.shape == () and torch.isfinite(value), name
    w = tiny.loss
    manual = sum(getattr(w, k) * losses[k] for k in LOSS_TERMS)
    torch.testing.assert_close(losses["total"], manual)
    losses["total"].backward()
    dead = {n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0}
    # only what the zero-initialised FiLM gates: the action embedding and the modulated norm
    # (they get gradients once the FiLM weights move off zero)
    assert dead == {
        f"world_model.dynamics.{name}"
        for name in (
            "action_embed.0.weight",
            "action_embed.0.bias",
            "action_embed.2.weight",
            "action_embed.2.bias",
            "norm.weight",
            "norm.bias",
        )
    }
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def _without(batch: dict[str, torch.Tensor], keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k not in keys}


@pytest.mark.parametrize("case", ["no_lidar", "no_camera", "no_sensors", "keys_absent"])
def test_any_subset_of_sensors_gives_a_finite_loss(tiny: ModelConfig, case: str) -> None:
    model = build(tiny)
    batch = example_batch(tiny, batch_size=2, seed=1)
    if case in ("no_lidar", "no_sensors"):
        batch["lidar_count"] = torch.zeros_like(batch["lidar_count"])
        batch["lidar_points"] = torch.zeros_like(batch["lidar_points"])
    if case in ("no_camera", "no_sensors"):
        batch["camera_mask"] = torch.zeros_like(batch["camera_mask"])
        batch["camera_images"] = torch.zeros_like(batch["camera_images"])
    if case == "keys_absent":
        batch = _without(batch, LIDAR_KEYS + CAMERA_KEYS)
    out = model(batch)
    losses = model.losses(out, batch)
    assert torch.isfinite(losses["total"])
    losses["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_a_missing_sensor_changes_the_output(tiny: ModelConfig) -> None:
    model = build(tiny).eval()
    batch = example_batch(tiny, batch_size=1, seed=2)
    full = model(batch)["segmentation"]
    no_cam = dict(batch, camera_mask=torch.zeros_like(batch["camera_mask"]))
    no_lidar = dict(batch, lidar_count=torch.zeros_like(batch["lidar_count"]))
    assert (model(no_cam)["segmentation"] - full).abs().max() > 1e-4
    assert (model(no_lidar)["segmentation"] - full).abs().max() > 1e-4


def test_model_pillarization_equals_collated_pillars(tiny: ModelConfig) -> None:
    model = build(tiny).eval()
    with_pillars = example_batch(tiny, batch_size=2, seed=3, pillars=True)
    raw = _without(with_pillars, ("pillar_features", "pillar_coords", "pillar_points"))
    a, b = model(raw), model(with_pillars)
    for key in ("segmentation", "plan_trajectories", "occupancy"):
        torch.testing.assert_close(a[key], b[key])


def test_memory_feeds_back_and_sequences_run_frame_by_frame(tiny: ModelConfig) -> None:
    model = build(tiny).eval()
    frame0 = example_batch(tiny, batch_size=2, seed=4)
    frame1 = example_batch(tiny, batch_size=2, seed=5)
    out0 = model(frame0)
    fresh = model(frame1)
    carried = model(frame1, memory=out0["memory"])
    diff = (carried["plan_trajectories"] - fresh["plan_trajectories"]).abs().max()
    assert diff > 1e-4  # the previous tick changes this tick's output
    sequence = {k: torch.stack([frame0[k], frame1[k]], dim=1) for k in frame0}
    seq_out = model(sequence)
    for key in ("plan_trajectories", "occupancy", "memory", "segmentation"):
        torch.testing.assert_close(seq_out[key], carried[key])
    seq_losses = model.losses(seq_out, sequence)
    frame_losses = model.losses(carried, frame1)
    torch.testing.assert_close(seq_losses["total"], frame_losses["total"])


def test_losses_score_only_the_targets_present(tiny: ModelConfig) -> None:
    model = build(tiny)
    batch = example_batch(tiny, batch_size=2, seed=6)
    keep = (*LIDAR_KEYS, *CAMERA_KEYS, "ego_state", "route", "ego_past", "actions")
    fleet = {k: v for k, v in batch.items() if k in keep or k == "occupancy_future"}
    out = model(fleet)
    losses = model.losses(out, fleet)
    assert set(losses) == {"occupancy", "total"}
    torch.testing.assert_close(losses["total"], tiny.loss.occupancy * losses["occupancy"])
    losses["total"].backward()
    assert model.backbone.memory_init.grad is not None
    with pytest.raises(ValueError, match="no training targets"):
        model.losses(
            model(_without(fleet, ("occupancy_future",))), _without(fleet, ("occupancy_future",))
        )


def test_inference_forecasts_the_detected_agents(tiny: ModelConfig) -> None:
    model = build(tiny).eval()
    batch = example_batch(tiny, batch_size=2, seed=7)
    inference = _without(
        batch,
        ("boxes", "box_class", "box_mask", "agent_future", "agent_future_mask", "actions"),
    )
    with torch.no_grad():
        out = model(inference)
    m = tiny.max_agents
    assert out["forecast_modes"].shape == (2, m, tiny.forecast.modes, tiny.forecast.future_steps, 2)
    assert "occupancy" not in out  # no actions: the planner imagines its own candidates
    detected = out["agent_mask"]
    classes = out["agent_class"]
    assert ((classes >= 0) == detected).all()
    # the untrained head's heatmap starts near its prior (0.1 >= score threshold): detections exist
    assert detected.any()
    assert "forecast_regression" not in model.losses(out, inference)


def test_overfitting_one_batch_lowers_the_loss(tiny: ModelConfig) -> None:
    model = build(tiny, seed=8)
    batch = example_batch(tiny, batch_size=2, seed=8, pillars=True)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(20):
        losses = model.losses(model(batch), batch)
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    assert history[-1]["total"] < 0.75 * history[0]["total"]
    for term in ("detection", "segmentation", "occupancy", "forecast_regression"):
        assert history[-1][term] < history[0][term], term


def test_checkpointing_and_bf16_flags_train(tiny: ModelConfig) -> None:
    data = to_jsonable(tiny)
    data["backbone"].update(checkpointing=True, autocast_bf16=True)
    cfg = ModelConfig.from_dict(data)
    model = build(cfg).train()
    batch = example_batch(cfg, batch_size=1, seed=9)
    losses = model.losses(model(batch), batch)
    losses["total"].backward()
    assert torch.isfinite(losses["total"])
    assert all(p.grad is not None for p in model.backbone.layers.parameters())


@pytest.mark.parametrize("name", ["tiny", "base", "large"])
def test_config_round_trips_through_plain_data(name: str) -> None:
    cfg = load(name)
    assert cfg.name == name
    assert ModelConfig.from_dict(to_jsonable(cfg)) == cfg
    cfg.check_sample_spec(cfg.sample_spec())


def test_config_derives_shared_sizes_and_rejects_bad_ones(tiny: ModelConfig) -> None:
    assert tiny.backbone.in_channels == tiny.perception.fusion.out_channels
    assert tiny.backbone.bev_shape == (32, 32)
    assert tiny.world_model.token_shape == tiny.backbone.token_shape == (16, 16)
    assert tiny.world_model.grid_shape == (64, 64)
    assert tiny.forecast.grid == tiny.grid
    with pytest.raises(ValueError, match=r"unknown keys \['bogus'\]"):
        ModelConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match=r"model\.backbone\.layers"):
        ModelConfig.from_dict({"backbone": {"layers": "two"}})
    with pytest.raises(ValueError, match=r"world_model\.dim"):
        ModelConfig.from_dict({"world_model": {"dim": 32}})
    with pytest.raises(ValueError, match="patch"):
        ModelConfig.from_dict({"backbone": {"patch": 3}})


def test_sample_spec_mismatch_is_named(tiny: ModelConfig) -> None:
    spec = tiny.sample_spec()
    assert isinstance(spec, SampleSpec) and spec.cameras == ("front",)
    with pytest.raises(ValueError, match="route_points"):
        tiny.check_sample_spec(SampleSpec(grid=tiny.grid, route_points=8))
    with pytest.raises(ValueError, match="image_hw"):
        tiny.check_sample_spec(SampleSpec(grid=tiny.grid, image_hw=(90, 160)))
    with pytest.raises(ValueError, match="occupancy_steps"):
        tiny.check_sample_spec(SampleSpec(grid=tiny.grid, occupancy_steps=2))


def test_bad_batches_are_named(tiny: ModelConfig) -> None:
    model = build(tiny)
    batch = example_batch(tiny, batch_size=1)
    with pytest.raises(ValueError, match="ego_state"):
        model(dict(batch, ego_state=batch["ego_state"][0]))
    with pytest.raises(ValueError, match="route"):
        model(dict(batch, route=batch["route"][:, :4]))
    with pytest.raises(ValueError, match="lidar_count"):
        model(_without(batch, ("lidar_count",)))
