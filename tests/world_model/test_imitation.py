"""The imitation prior head: shapes, the constant-speed prior, the winner-takes-all loss."""

from __future__ import annotations

import math

import pytest
import torch

from kaido.logs.sample import EgoFeature
from kaido.scene.geometry import PoseIndex
from kaido.world_model.imitation import (
    ImitationConfig,
    ImitationHead,
    ImitationOutput,
    imitation_loss,
    min_ade,
    wrap,
)

CFG = ImitationConfig(dim=32, modes=4, future_steps=6, layers=1, heads=4)


def inputs(batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ego = torch.randn(batch, 32, generator=g)
    context = torch.randn(batch, 9, 32, generator=g)
    state = torch.zeros(batch, len(EgoFeature))
    state[:, EgoFeature.SPEED] = torch.linspace(0.0, 10.0, batch)
    return ego, context, state


def test_shapes_and_the_constant_speed_prior() -> None:
    torch.manual_seed(0)
    head = ImitationHead(CFG).eval()
    out = head(*inputs(3))
    assert out.trajectories.shape == (3, 4, 6, 3) and out.logits.shape == (3, 4)
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.zero_()
        out = head(*inputs(3))
    t = torch.arange(1, 7) * CFG.step_seconds
    speed = torch.linspace(0.0, 10.0, 3)
    for k in range(4):
        torch.testing.assert_close(out.trajectories[:, k, :, PoseIndex.X], speed[:, None] * t)
    assert float(out.trajectories[..., [PoseIndex.Y, PoseIndex.YAW]].abs().max()) == 0.0


def test_modes_differ_and_depend_on_the_context() -> None:
    torch.manual_seed(1)
    head = ImitationHead(CFG).eval()
    ego, context, state = inputs()
    a = head(ego, context, state)
    assert (a.trajectories[:, 0] - a.trajectories[:, 1]).abs().max() > 1e-4
    b = head(ego, context.flip(1), state)  # the same tokens in another order: order-free
    torch.testing.assert_close(a.trajectories, b.trajectories, rtol=1e-4, atol=1e-4)
    c = head(ego, torch.randn(context.shape, generator=torch.Generator().manual_seed(9)), state)
    assert (a.trajectories - c.trajectories).abs().max() > 1e-4


def test_winner_takes_all_with_wrapped_yaw() -> None:
    target = torch.zeros(1, 3, 3)
    target[0, :, PoseIndex.X] = torch.tensor([1.0, 2.0, 3.0])
    target[0, :, PoseIndex.YAW] = math.pi - 0.01
    traj = target[:, None].repeat(1, 3, 1, 1)
    traj[0, 0, :, PoseIndex.Y] += 2.0  # 2 m off
    traj[0, 1, :, PoseIndex.YAW] = -math.pi + 0.01  # 0.02 rad off across the wrap
    traj[0, 2, :, PoseIndex.X] += 1.0  # 1 m off
    logits = torch.tensor([[0.0, 5.0, 0.0]], requires_grad=True)
    reg, cls = imitation_loss(ImitationOutput(traj, logits), target, yaw_weight=2.0)
    assert float(reg.detach()) == pytest.approx(0.04, abs=1e-3)
    assert float(cls.detach()) == pytest.approx(
        -torch.log_softmax(logits.detach(), -1)[0, 1].item(), abs=1e-6
    )
    cls.backward()
    assert logits.grad is not None and logits.grad[0, 1] < 0
    torch.testing.assert_close(min_ade(ImitationOutput(traj, logits), target), torch.tensor([0.0]))


def test_wrap_is_into_minus_pi_pi() -> None:
    angles = torch.tensor([0.0, math.pi + 0.5, -math.pi - 0.5, 7.0])
    wrapped = wrap(angles)
    assert float(wrapped.abs().max()) <= math.pi
    torch.testing.assert_close(wrapped.sin(), angles.sin())
    torch.testing.assert_close(wrapped.cos(), angles.cos())


def test_a_short_fit_lowers_the_loss() -> None:
    torch.manual_seed(2)
    head = ImitationHead(CFG)
    ego, context, state = inputs(4, seed=3)
    target = torch.zeros(4, 6, 3)
    t = torch.arange(1, 7) * CFG.step_seconds
    target[..., PoseIndex.X] = 5.0 * t
    target[..., PoseIndex.Y] = 0.3 * t**2  # a left curve
    target[..., PoseIndex.YAW] = 0.1 * t
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        reg, cls = imitation_loss(head(ego, context, state), target, CFG.yaw_weight)
        opt.zero_grad()
        (reg + cls).backward()
        opt.step()
        first = float(reg.detach()) if first is None else first
    assert first is not None and float(reg.detach()) < 0.5 * first


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="modes"):
        ImitationConfig(modes=0)
    with pytest.raises(ValueError, match="yaw_weight"):
        ImitationConfig(yaw_weight=-1.0)
    with pytest.raises(ValueError, match="ego_future"):
        imitation_loss(
            ImitationOutput(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2)), torch.zeros(1, 4, 3), 1.0
        )
