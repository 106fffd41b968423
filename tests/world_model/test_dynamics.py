"""The latent world model: shapes, action conditioning, causality, broadcasting and the loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kaido.logs.sample import ActionIndex
from kaido.world_model.backbone import BackboneOutput
from kaido.world_model.dynamics import WorldModel, WorldModelConfig, occupancy_loss

CFG = WorldModelConfig(
    dim=32, token_shape=(4, 4), grid_shape=(16, 16), heads=4, decoder_channels=8, steps=3
)


def state(batch: int, seed: int = 0) -> BackboneOutput:
    g = torch.Generator().manual_seed(seed)
    return BackboneOutput(
        tokens=torch.randn(batch, 16, 32, generator=g),
        ego=torch.randn(batch, 32, generator=g),
        memory=torch.randn(batch, 2, 32, generator=g),
        route=torch.randn(batch, 3, 32, generator=g),
    )


def constant_actions(accel: list[float], steps: int) -> torch.Tensor:
    a = torch.zeros(len(accel), steps, len(ActionIndex))
    a[..., ActionIndex.ACCEL] = torch.tensor(accel)[:, None]
    return a


def randomize_film(model: WorldModel, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.dynamics.film.weight.copy_(
            0.3 * torch.randn(model.dynamics.film.weight.shape, generator=g)
        )


def test_imagine_shape_and_the_full_grid() -> None:
    torch.manual_seed(0)
    model = WorldModel(CFG)
    logits = model.imagine(state(2), constant_actions([1.0, -1.0], 5))
    assert logits.shape == (2, 5, 16, 16)
    assert torch.isfinite(logits).all()
    assert model.rollout(state(2).tokens, constant_actions([1.0, -1.0], 5)).shape == (2, 5, 16, 32)


def test_an_untrained_model_ignores_actions_and_a_trained_one_uses_them() -> None:
    torch.manual_seed(0)
    model = WorldModel(CFG)
    s = state(1).tokens.expand(2, -1, -1)  # one scene, two action sequences
    scene = BackboneOutput(s, torch.zeros(2, 32), torch.zeros(2, 2, 32), torch.zeros(2, 3, 32))
    actions = constant_actions([2.0, -2.0], CFG.steps)
    before = model.imagine(scene, actions)
    assert torch.equal(before[0], before[1])  # FiLM starts at zero: actions do not matter yet

    # toy world: accelerating fills the top half of the grid, braking the bottom half
    target = torch.zeros(2, CFG.steps, 16, 16)
    target[0, :, :8] = 1.0
    target[1, :, 8:] = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = occupancy_loss(model.imagine(scene, actions), target, pos_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        prob = model.imagine(scene, actions).sigmoid()
    top_minus_bottom = prob[:, :, :8].mean(dim=(1, 2, 3)) - prob[:, :, 8:].mean(dim=(1, 2, 3))
    assert top_minus_bottom[0] > 0.2  # accelerate: top
    assert top_minus_bottom[1] < -0.2  # brake: bottom


def test_a_step_depends_only_on_the_actions_so_far() -> None:
    torch.manual_seed(1)
    model = WorldModel(CFG).eval()
    randomize_film(model)
    a = constant_actions([1.0], 4)
    b = a.clone()
    b[0, 2, ActionIndex.ACCEL] = -3.0
    b[0, 3, ActionIndex.CURVATURE] = 0.1
    la, lb = model.imagine(state(1), a), model.imagine(state(1), b)
    torch.testing.assert_close(la[:, :2], lb[:, :2])
    assert (la[:, 2:] - lb[:, 2:]).abs().max() > 1e-4


def test_one_scene_broadcasts_over_candidate_action_sequences() -> None:
    torch.manual_seed(2)
    model = WorldModel(CFG).eval()
    randomize_film(model)
    one = state(1)
    actions = constant_actions([1.0, 0.0, -1.0], 3)
    broadcast = model.imagine(one, actions)
    expanded = BackboneOutput(*(t.expand(3, *t.shape[1:]) for t in one))
    torch.testing.assert_close(broadcast, model.imagine(expanded, actions))
    assert broadcast.shape == (3, 3, 16, 16)
    assert (broadcast[0] - broadcast[2]).abs().max() > 1e-4


def test_occupancy_loss_is_weighted_binary_cross_entropy() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 4, 4, generator=g)
    target = (torch.rand(2, 3, 4, 4, generator=g) < 0.2).to(torch.uint8)
    t = target.float()
    p = logits.sigmoid()
    manual = -(4.0 * t * p.log() + (1 - t) * (1 - p).log()).mean()
    torch.testing.assert_close(occupancy_loss(logits, target, 4.0), manual)
    assert occupancy_loss(logits, target, 4.0) > occupancy_loss(logits, target, 1.0)
    torch.testing.assert_close(
        occupancy_loss(logits, target, 1.0), F.binary_cross_entropy_with_logits(logits, t)
    )
    with pytest.raises(ValueError, match="occupancy_future"):
        occupancy_loss(logits, target[:, :2], 1.0)


def test_bad_actions_are_named() -> None:
    model = WorldModel(CFG)
    with pytest.raises(ValueError, match="actions"):
        model.imagine(state(2), torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="action"):
        model.dynamics.step(state(2).tokens, torch.zeros(3, 2))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"grid_shape": (12, 12)}, "power of two"),
        ({"grid_shape": (16, 32)}, "power of two"),
        ({"dim": 30}, "divisible"),
        ({"steps": 0}, "steps"),
        ({"pos_weight": 0.0}, "pos_weight"),
    ],
)
def test_config_rejects_bad_values(changes: dict[str, object], match: str) -> None:
    base: dict[str, object] = dict(dim=32, token_shape=(4, 4), grid_shape=(16, 16), heads=4)
    base.update(changes)
    with pytest.raises(ValueError, match=match):
        WorldModelConfig(**base)  # type: ignore[arg-type]
