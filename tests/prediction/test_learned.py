"""The learned forecasting head: BEV sampling geometry, masking, the constant-velocity prior,
the winner-takes-all loss, metrics and detection queries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kaido.logs.sample import PAD_CLASS, BoxField
from kaido.prediction.learned import (
    ForecastConfig,
    ForecastHead,
    ForecastOutput,
    detections_to_queries,
    forecast_loss,
    forecast_metrics,
    sample_bev,
)
from kaido.prediction.metrics import evaluate
from kaido.scene.raster import RasterSpec

GRID = RasterSpec(height=16, width=12, resolution=0.5, ego_row=12, ego_col=6)
CFG = ForecastConfig(dim=32, bev_channels=8, grid=GRID, layers=2, heads=4, modes=3, future_steps=5)


def pixel_centre(row: float, col: float, grid: RasterSpec) -> tuple[float, float]:
    res = grid.resolution
    return (grid.origin_row - row - 0.5) * res, (grid.origin_col - col - 0.5) * res


def test_bev_sampling_follows_the_raster_pixel_convention() -> None:
    h, w = GRID.height, GRID.width
    values = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    rng = np.random.default_rng(0)
    cells = [(int(rng.integers(h)), int(rng.integers(w))) for _ in range(10)]
    xy = torch.tensor([[pixel_centre(r, c, GRID) for r, c in cells]], dtype=torch.float32)
    got = sample_bev(values, xy, GRID)[0, :, 0]
    want = torch.tensor([r * w + c for r, c in cells], dtype=torch.float32)
    torch.testing.assert_close(got, want)
    # a map at stride 2 covers the same area: the centre of a 2x2 block reads the coarse cell
    coarse = torch.arange((h // 2) * (w // 2), dtype=torch.float32).reshape(1, 1, h // 2, w // 2)
    x, y = pixel_centre(2 * 3 + 0.5, 2 * 4 + 0.5, GRID)
    got = sample_bev(coarse, torch.tensor([[[x, y]]]), GRID)[0, 0, 0]
    assert float(got) == pytest.approx(3 * (w // 2) + 4)
    # outside the grid: zeros
    far = sample_bev(values, torch.tensor([[[100.0, 0.0]]]), GRID)
    assert float(far.abs().max()) == 0.0


def inputs(batch: int = 2, agents: int = 5, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(batch, 7, CFG.dim, generator=g)
    bev = torch.randn(batch, CFG.bev_channels, 8, 6, generator=g)
    boxes = torch.zeros(batch, agents, len(BoxField))
    boxes[..., BoxField.X] = torch.rand(batch, agents, generator=g) * 6.0 - 1.0
    boxes[..., BoxField.Y] = torch.rand(batch, agents, generator=g) * 4.0 - 2.0
    boxes[..., BoxField.LENGTH] = 4.0
    boxes[..., BoxField.WIDTH] = 2.0
    boxes[..., BoxField.YAW] = torch.rand(batch, agents, generator=g) * 6.0 - 3.0
    boxes[..., BoxField.VX] = torch.randn(batch, agents, generator=g) * 3.0
    boxes[..., BoxField.VY] = torch.randn(batch, agents, generator=g)
    classes = torch.randint(0, 3, (batch, agents), generator=g)
    mask = torch.ones(batch, agents, dtype=torch.bool)
    mask[:, -2:] = False
    classes[~mask] = PAD_CLASS
    return context, bev, boxes, classes, mask


def head(seed: int = 0) -> ForecastHead:
    torch.manual_seed(seed)
    return ForecastHead(CFG).eval()


def test_output_shapes() -> None:
    out = head()(*inputs())
    assert out.modes.shape == (2, 5, 3, 5, 2)
    assert out.logits.shape == (2, 5, 3)
    assert torch.isfinite(out.modes).all() and torch.isfinite(out.logits).all()


def test_padding_rows_do_not_change_the_valid_agents() -> None:
    model = head()
    context, bev, boxes, classes, mask = inputs()
    a = model(context, bev, boxes, classes, mask)
    boxes2 = boxes.clone()
    boxes2[~mask] = 1e3  # garbage in the padding rows
    b = model(context, bev, boxes2, classes, mask)
    torch.testing.assert_close(a.modes[mask], b.modes[mask])
    torch.testing.assert_close(a.logits[mask], b.logits[mask])
    # while a valid neighbour does change them
    boxes3 = boxes.clone()
    boxes3[:, 0, BoxField.X] += 3.0
    c = model(context, bev, boxes3, classes, mask)
    assert (c.modes[:, 1] - a.modes[:, 1]).abs().max() > 1e-5


def test_zero_residual_is_a_constant_velocity_extrapolation() -> None:
    model = head()
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.zero_()
    context, bev, boxes, classes, mask = inputs()
    with torch.no_grad():
        out = model(context, bev, boxes, classes, mask)
    t = torch.arange(1, 6) * CFG.step_seconds
    centre = boxes[..., [BoxField.X, BoxField.Y]]
    velocity = boxes[..., [BoxField.VX, BoxField.VY]]
    want = centre[:, :, None, :] + velocity[:, :, None, :] * t[:, None]
    for k in range(CFG.modes):
        torch.testing.assert_close(out.modes[:, :, k], want)
    assert float(out.logits.abs().max()) == 0.0


def manual_output() -> tuple[ForecastOutput, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch, two agents, three modes, four steps: agent 0's mode 1 is exact."""
    target = torch.zeros(1, 2, 4, 2)
    target[0, 0, :, 0] = torch.arange(1, 5, dtype=torch.float32)
    target[0, 1, :, 1] = -torch.arange(1, 5, dtype=torch.float32)
    modes = torch.zeros(1, 2, 3, 4, 2)
    modes[0, 0, 0] = target[0, 0] + torch.tensor([0.0, 3.0])
    modes[0, 0, 1] = target[0, 0]
    modes[0, 0, 2] = target[0, 0] + torch.tensor([5.0, 0.0])
    modes[0, 1, 0] = target[0, 1] + torch.tensor([1.0, 0.0])
    modes[0, 1, 1] = target[0, 1] + torch.tensor([0.0, 2.0])
    modes[0, 1, 2] = target[0, 1] + torch.tensor([4.0, 0.0])
    logits = torch.zeros(1, 2, 3, requires_grad=True)
    step_mask = torch.ones(1, 2, 4, dtype=torch.bool)
    agent_mask = torch.ones(1, 2, dtype=torch.bool)
    return ForecastOutput(modes.requires_grad_(True), logits), target, step_mask, agent_mask


def test_winner_takes_all_regresses_and_classifies_the_closest_mode() -> None:
    out, target, steps, agents = manual_output()
    reg, cls = forecast_loss(out, target, steps, agents)
    # agent 0: mode 1 exact (0 m); agent 1: mode 0 at 1 m
    assert float(reg.detach()) == pytest.approx(0.5, abs=1e-3)
    assert float(cls.detach()) == pytest.approx(math.log(3.0), abs=1e-6)
    (reg + cls).backward()
    assert out.modes.grad is not None
    assert float(out.modes.grad[0, 0, 0].abs().sum()) == 0.0  # losers get no regression gradient
    logits = torch.zeros(1, 2, 3)
    logits[0, 0, 1] = 10.0
    logits[0, 1, 0] = 10.0
    _, sure = forecast_loss(ForecastOutput(out.modes, logits), target, steps, agents)
    assert float(sure.detach()) < 1e-3


def test_masked_steps_and_agents_are_ignored() -> None:
    out, target, steps, agents = manual_output()
    reg, cls = forecast_loss(out, target, steps, agents)
    target2 = target.clone()
    steps2 = steps.clone()
    target2[0, 0, 3] = 1e4  # a step nobody tracked
    steps2[0, 0, 3] = False
    agents2 = torch.cat([agents, torch.zeros(1, 1, dtype=torch.bool)], dim=1)
    modes2 = torch.cat([out.modes, torch.full((1, 1, 3, 4, 2), 50.0)], dim=1)
    logits2 = torch.cat([out.logits, torch.zeros(1, 1, 3)], dim=1)
    target3 = torch.cat([target2, torch.zeros(1, 1, 4, 2)], dim=1)
    steps3 = torch.cat([steps2, torch.ones(1, 1, 4, dtype=torch.bool)], dim=1)
    reg2, cls2 = forecast_loss(ForecastOutput(modes2, logits2), target3, steps3, agents2)
    assert float(reg2.detach()) == pytest.approx(float(reg.detach()), abs=1e-3)
    assert float(cls2.detach()) == pytest.approx(float(cls.detach()), abs=1e-6)


def test_no_valid_agent_gives_a_zero_loss_that_backpropagates() -> None:
    out, target, steps, agents = manual_output()
    reg, cls = forecast_loss(out, target, steps, torch.zeros_like(agents))
    assert float(reg.detach()) == 0.0 and float(cls.detach()) == 0.0
    (reg + cls).backward()
    assert out.modes.grad is not None


def test_metrics_are_the_prediction_metrics_over_valid_agents() -> None:
    model = head()
    context, bev, boxes, classes, mask = inputs(seed=3)
    out = model(context, bev, boxes, classes, mask)
    g = torch.Generator().manual_seed(4)
    target = out.modes[:, :, 0].detach() + torch.randn(2, 5, 5, 2, generator=g)
    steps = torch.rand(2, 5, 5, generator=g) > 0.3
    steps[0, 1] = False  # an agent never tracked
    metrics = forecast_metrics(out, target, steps, mask)
    valid = (steps & mask[..., None]).numpy()
    keep = valid.any(-1).reshape(-1)
    want = evaluate(
        out.modes.detach().numpy().reshape(10, 3, 5, 2)[keep],
        target.numpy().reshape(10, 5, 2)[keep],
        valid.reshape(10, 5)[keep],
        out.logits.detach().softmax(-1).numpy().reshape(10, 3)[keep],
    )
    assert metrics.num_agents == int(keep.sum()) == want.num_agents
    assert metrics.min_ade == pytest.approx(want.min_ade)
    assert metrics.min_fde == pytest.approx(want.min_fde)
    assert metrics.brier_min_fde == pytest.approx(want.brier_min_fde)


def test_detections_become_padded_queries_by_score() -> None:
    dets = [
        (
            torch.arange(21, dtype=torch.float32).reshape(3, 7),
            torch.tensor([0.2, 0.9, 0.5]),
            torch.tensor([0, 1, 2]),
        ),
        (np.zeros((0, 7)), np.zeros(0), np.zeros(0, dtype=np.int64)),
    ]
    boxes, classes, mask = detections_to_queries(dets, max_agents=2)
    assert boxes.shape == (2, 2, 7) and classes.shape == (2, 2) and mask.shape == (2, 2)
    assert mask.tolist() == [[True, True], [False, False]]
    assert classes.tolist() == [[1, 2], [PAD_CLASS, PAD_CLASS]]
    torch.testing.assert_close(boxes[0, 0], torch.arange(7, 14, dtype=torch.float32))
    with pytest.raises(ValueError, match="disagree"):
        detections_to_queries([(torch.zeros(2, 7), torch.zeros(3), torch.zeros(2))], 4)
    with pytest.raises(ValueError, match="max_agents"):
        detections_to_queries(dets, 0)


def test_shape_errors_name_the_field() -> None:
    context, bev, boxes, classes, mask = inputs()
    with pytest.raises(ValueError, match="box_mask"):
        head()(context, bev, boxes, classes, mask[:, :3])
    with pytest.raises(ValueError, match="bev"):
        head()(context, bev[:, :4], boxes, classes, mask)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="modes"):
        ForecastConfig(modes=0)
    with pytest.raises(ValueError, match="step_seconds"):
        ForecastConfig(step_seconds=0.0)
    with pytest.raises(ValueError, match="divisible"):
        ForecastConfig(dim=30, heads=4)
