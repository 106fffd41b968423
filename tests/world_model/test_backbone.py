"""The foundation backbone: shapes, temporal memory, position encodings, checkpointing, bf16."""

from __future__ import annotations

import pytest
import torch

from kaido.world_model.backbone import (
    BackboneConfig,
    BackboneOutput,
    FoundationBackbone,
    sincos_position_2d,
)


def small_config(**changes: object) -> BackboneConfig:
    base: dict[str, object] = dict(
        in_channels=8,
        bev_shape=(8, 8),
        dim=32,
        layers=2,
        heads=4,
        patch=2,
        memory_tokens=4,
        route_points=5,
        past_steps=3,
    )
    base.update(changes)
    return BackboneConfig(**base)  # type: ignore[arg-type]


def inputs(
    cfg: BackboneConfig, batch: int = 2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    bev = torch.randn(batch, cfg.in_channels, *cfg.bev_shape, generator=g)
    ego_state = torch.tensor([[8.0, 0.5, 0.02, 13.9]]).repeat(batch, 1)
    route = torch.stack(
        [torch.arange(cfg.route_points) * 4.0, torch.zeros(cfg.route_points)], dim=-1
    )
    route = route[None].repeat(batch, 1, 1) + 0.1 * torch.randn(
        batch, cfg.route_points, 2, generator=g
    )
    past = torch.zeros(batch, cfg.past_steps, 3)
    past[..., 0] = -4.0 * torch.arange(cfg.past_steps, 0, -1)
    return bev, ego_state, route, past


def build(cfg: BackboneConfig, seed: int = 0) -> FoundationBackbone:
    torch.manual_seed(seed)
    return FoundationBackbone(cfg)


def test_output_shapes() -> None:
    cfg = small_config()
    out = build(cfg)(*inputs(cfg, batch=3))
    assert isinstance(out, BackboneOutput)
    assert cfg.token_shape == (4, 4) and cfg.num_tokens == 16
    assert out.tokens.shape == (3, 16, 32)
    assert out.ego.shape == (3, 32)
    assert out.memory.shape == (3, 4, 32)
    assert out.route.shape == (3, 5, 32)
    assert out.context().shape == (3, 1 + 5 + 16, 32)
    for t in out:
        assert torch.isfinite(t).all()


def test_missing_memory_is_the_learned_initial_memory() -> None:
    cfg = small_config()
    model = build(cfg).eval()
    x = inputs(cfg)
    a = model(*x, memory=None)
    b = model(*x, memory=model.initial_memory(2))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.memory, b.memory)


def test_temporal_memory_carries_the_previous_tick_into_the_output() -> None:
    cfg = small_config()
    model = build(cfg).eval()
    first_a = model(*inputs(cfg, seed=1))
    first_b = model(*inputs(cfg, seed=2))
    assert not torch.allclose(first_a.memory, first_b.memory, atol=1e-4)
    now = inputs(cfg, seed=3)
    second_a = model(*now, memory=first_a.memory)
    second_b = model(*now, memory=first_b.memory)
    fresh = model(*now, memory=None)
    # same current inputs, different pasts -> different latents
    assert (second_a.tokens - second_b.tokens).abs().max() > 1e-3
    assert (second_a.ego - fresh.ego).abs().max() > 1e-3
    # and the same past gives the same output
    again = model(*now, memory=first_a.memory)
    assert torch.equal(again.tokens, second_a.tokens)


def test_memory_gradient_reaches_the_previous_tick() -> None:
    cfg = small_config()
    model = build(cfg)
    bev0, *rest0 = inputs(cfg, seed=1)
    bev0.requires_grad_(True)
    first = model(bev0, *rest0)
    second = model(*inputs(cfg, seed=2), memory=first.memory)
    second.ego.sum().backward()
    assert bev0.grad is not None and bev0.grad.abs().sum() > 0


def test_learned_positions_and_sincos_differ_in_parameters_only_by_the_table() -> None:
    sincos = build(small_config())
    learned = build(small_config(position="learned"))
    n_sincos = sum(p.numel() for p in sincos.parameters())
    n_learned = sum(p.numel() for p in learned.parameters())
    assert n_learned - n_sincos == 16 * 32
    out = learned(*inputs(small_config()))
    assert out.tokens.shape == (2, 16, 32)


def test_the_position_encoding_makes_tokens_depend_on_where_features_are() -> None:
    cfg = small_config()
    model = build(cfg).eval()
    bev, ego, route, past = inputs(cfg)
    bev = torch.zeros_like(bev)
    out = model(bev, ego, route, past)
    # identical (zero) features everywhere: tokens still differ by position
    spread = (out.tokens - out.tokens.mean(dim=1, keepdim=True)).abs().max()
    assert spread > 1e-2


def test_activation_checkpointing_gives_the_same_values_and_gradients() -> None:
    plain = build(small_config(), seed=5).train()
    ckpt = build(small_config(checkpointing=True), seed=5).train()
    ckpt.load_state_dict(plain.state_dict())
    x = inputs(small_config())
    out_plain = plain(*x)
    out_ckpt = ckpt(*x)
    torch.testing.assert_close(out_ckpt.tokens, out_plain.tokens)
    (out_plain.tokens.square().mean() + out_plain.ego.sum()).backward()
    (out_ckpt.tokens.square().mean() + out_ckpt.ego.sum()).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None, name
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_bf16_autocast_runs_and_returns_float32_close_to_float32() -> None:
    fp32 = build(small_config(), seed=7).eval()
    bf16 = build(small_config(autocast_bf16=True), seed=7).eval()
    bf16.load_state_dict(fp32.state_dict())
    x = inputs(small_config())
    a, b = fp32(*x), bf16(*x)
    assert b.tokens.dtype == torch.float32 and torch.isfinite(b.tokens).all()
    cosine = torch.nn.functional.cosine_similarity(a.tokens.flatten(), b.tokens.flatten(), dim=0)
    assert cosine > 0.99
    assert not torch.equal(a.tokens, b.tokens)  # it really ran in reduced precision


def test_bad_inputs_name_the_field() -> None:
    cfg = small_config()
    model = build(cfg)
    bev, ego, route, past = inputs(cfg)
    with pytest.raises(ValueError, match="route"):
        model(bev, ego, route[:, :3], past)
    with pytest.raises(ValueError, match="bev"):
        model(bev[:, :4], ego, route, past)
    with pytest.raises(ValueError, match="memory"):
        model(bev, ego, route, past, memory=torch.zeros(2, 3, 32))
    with pytest.raises(TypeError, match="ego_state"):
        model(bev, ego.numpy(), route, past)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"patch": 3}, "patch"),
        ({"dim": 30, "heads": 3}, "divisible"),
        ({"position": "rope"}, "position"),
        ({"layers": 0}, "layers"),
        ({"bev_shape": (8,)}, "bev_shape"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_config_rejects_bad_values(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        small_config(**changes)


def test_sincos_positions_are_bounded_and_distinct() -> None:
    pos = sincos_position_2d(6, 5, 16)
    assert pos.shape == (30, 16)
    assert pos.abs().max() <= 1.0
    distances = torch.cdist(pos, pos) + torch.eye(30) * 10.0
    assert distances.min() > 1e-3
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_position_2d(2, 2, 6)
