"""Learned multi-agent multimodal forecasting from the backbone's latent.

Axis vocabulary: ``B`` batch, ``M`` agents, ``K`` modes, ``T`` future steps (``T_f``, every
``step_seconds`` from ``step_seconds`` on), ``S`` context tokens, ``C`` BEV feature channels,
``h, w`` the BEV feature map.

One query per agent is built from its ego-frame box (:class:`~kaido.logs.sample.BoxField`), a
class embedding (:class:`~kaido.logs.sample.DetectionClass`) and the BEV feature sampled at the
box centre (bilinear ``grid_sample`` on the grid of :class:`~kaido.scene.raster.RasterSpec`).
The queries attend to each other (valid agents only) and to the backbone's context tokens, then
each one emits ``K`` trajectories of box-centre positions ``(T, 2)`` [m] in the ego frame at the
sample time (a constant-velocity extrapolation plus a learned residual) and ``K`` mode logits.

Training uses ground-truth boxes (``boxes``, ``box_class``, ``box_mask``); at inference the
queries come from decoded detections (:func:`detections_to_queries`). The loss is
winner-takes-all: the mode with the smallest mean displacement over the valid future steps is
regressed (mean Euclidean error) and classified (cross-entropy on the logits). Metrics are
:mod:`kaido.prediction.metrics` (minADE, minFDE, miss rate, brier-minFDE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kaido.logs.sample import PAD_CLASS, BoxField, DetectionClass
from kaido.perception.config import TINY_GRID
from kaido.prediction.metrics import ForecastMetrics, evaluate
from kaido.scene.raster import RasterSpec
from kaido.world_model.backbone import TransformerLayer, check_tensor, mlp

__all__ = [
    "ForecastConfig",
    "ForecastHead",
    "ForecastOutput",
    "box_features",
    "detections_to_queries",
    "ego_to_grid_sample",
    "forecast_loss",
    "forecast_metrics",
    "sample_bev",
]

BOX_FEATURES = 8
"""Width of :func:`box_features`: x, y, log length, log width, sin yaw, cos yaw, vx, vy."""


@dataclass(frozen=True)
class ForecastConfig:
    """The forecasting head."""

    dim: int = 64
    """D: token width (the backbone's)."""
    bev_channels: int = 64
    """C: channels of the BEV feature sampled at the box centres."""
    grid: RasterSpec = TINY_GRID
    """The BEV grid the BEV feature covers (maps box centres to feature cells)."""
    layers: int = 2
    """Query layers (self-attention over agents, cross-attention to the context, MLP)."""
    heads: int = 4
    """Attention heads."""
    mlp_ratio: float = 4.0
    """MLP hidden width / D."""
    dropout: float = 0.0
    """Dropout probability."""
    modes: int = 6
    """K: trajectories per agent."""
    future_steps: int = 16
    """T_f: future steps per trajectory."""
    step_seconds: float = 0.5
    """[s] time between future steps."""
    position_scale: float = 32.0
    """[m] box centres are divided by this in the query features."""
    velocity_scale: float = 10.0
    """[m/s] box velocities are divided by this in the query features."""
    displacement_scale: float = 8.0
    """[m] the network's residual outputs are multiplied by this."""

    def __post_init__(self) -> None:
        owner = "ForecastConfig"
        for name in ("dim", "bev_channels", "layers", "heads", "modes", "future_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.grid, RasterSpec):
            raise ValueError(f"{owner}.grid must be a RasterSpec, got {type(self.grid).__name__}")
        if self.dim % self.heads:
            raise ValueError(f"{owner}: dim {self.dim} must be divisible by heads {self.heads}")
        for name in (
            "mlp_ratio",
            "step_seconds",
            "position_scale",
            "velocity_scale",
            "displacement_scale",
        ):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{owner}.{name} must be positive and finite, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{owner}.dropout must be in [0, 1), got {self.dropout}")


class ForecastOutput(NamedTuple):
    """The head's prediction."""

    modes: Tensor
    """``(B, M, K, T, 2)`` box-centre x, y [m] in the ego frame at the sample time."""
    logits: Tensor
    """``(B, M, K)`` mode logits (softmax = mode probabilities)."""


def ego_to_grid_sample(xy: Tensor, grid: RasterSpec) -> Tensor:
    """Ego-frame points ``(..., 2)`` [m] → ``grid_sample`` coordinates ``(..., 2)`` (column,
    row) in ``[-1, 1]`` for a map covering ``grid`` (``align_corners=False``)."""
    res = grid.resolution
    col = 2.0 * (grid.origin_col - xy[..., 1] / res) / grid.width - 1.0
    row = 2.0 * (grid.origin_row - xy[..., 0] / res) / grid.height - 1.0
    return torch.stack([col, row], dim=-1)


def sample_bev(bev: Tensor, xy: Tensor, grid: RasterSpec) -> Tensor:
    """Bilinear samples ``(B, M, C)`` of ``bev`` ``(B, C, h, w)`` at ego-frame points ``xy``
    ``(B, M, 2)`` [m]; zeros outside the grid."""
    coords = ego_to_grid_sample(xy, grid)[:, :, None, :].to(bev.dtype)  # (B, M, 1, 2)
    sampled = F.grid_sample(bev, coords, mode="bilinear", align_corners=False)  # (B, C, M, 1)
    return sampled[..., 0].transpose(1, 2)


def box_features(boxes: Tensor, position_scale: float, velocity_scale: float) -> Tensor:
    """Normalised box features ``(..., 8)`` of ego-frame boxes ``(..., 7)`` (:class:`BoxField`)."""
    yaw = boxes[..., BoxField.YAW]
    return torch.stack(
        [
            boxes[..., BoxField.X] / position_scale,
            boxes[..., BoxField.Y] / position_scale,
            boxes[..., BoxField.LENGTH].clamp_min(0.1).log(),
            boxes[..., BoxField.WIDTH].clamp_min(0.1).log(),
            yaw.sin(),
            yaw.cos(),
            boxes[..., BoxField.VX] / velocity_scale,
            boxes[..., BoxField.VY] / velocity_scale,
        ],
        dim=-1,
    )


class ForecastHead(nn.Module):
    """``forward(context (B, S, D), bev (B, C, h, w), boxes (B, M, 7), classes (B, M),
    mask (B, M)) -> ForecastOutput``; rows where ``mask`` is False are padding (their output is
    defined but meaningless)."""

    times: Tensor

    def __init__(self, cfg: ForecastConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.box_embed = mlp(BOX_FEATURES, d, d)
        self.class_embed = nn.Embedding(len(DetectionClass) + 1, d)  # last row: padding
        self.bev_embed = nn.Linear(cfg.bev_channels, d)
        self.query_norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(
            TransformerLayer(d, cfg.heads, cfg.mlp_ratio, cfg.dropout, cross=True)
            for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.modes * (cfg.future_steps * 2 + 1))
        times = torch.arange(1, cfg.future_steps + 1, dtype=torch.float32) * cfg.step_seconds
        self.register_buffer("times", times, persistent=False)

    def forward(
        self, context: Tensor, bev: Tensor, boxes: Tensor, classes: Tensor, mask: Tensor
    ) -> ForecastOutput:
        cfg = self.cfg
        b, m = boxes.shape[:2]
        check_tensor("context", context, (b, None, cfg.dim))
        check_tensor("bev", bev, (b, cfg.bev_channels, None, None))
        check_tensor("boxes", boxes, (b, m, len(BoxField)))
        check_tensor("box_class", classes, (b, m))
        check_tensor("box_mask", mask, (b, m))
        mask = mask.bool()
        safe_class = torch.where(
            mask & (classes >= 0), classes, torch.full_like(classes, len(DetectionClass))
        )
        xy = boxes[..., [BoxField.X, BoxField.Y]]
        q = (
            self.box_embed(box_features(boxes, cfg.position_scale, cfg.velocity_scale))
            + self.class_embed(safe_class.long())
            + self.bev_embed(sample_bev(bev, xy, cfg.grid))
        )
        q = self.query_norm(q)
        eye = torch.eye(m, dtype=torch.bool, device=boxes.device)[None]
        self_mask = mask[:, None, :] | eye  # every query sees the valid agents and itself
        for layer in self.layers:
            q = layer(q, context, self_mask=self_mask)
        raw = self.out(self.norm(q)).view(b, m, cfg.modes, cfg.future_steps * 2 + 1)
        residual = raw[..., :-1].reshape(b, m, cfg.modes, cfg.future_steps, 2)
        velocity = boxes[..., [BoxField.VX, BoxField.VY]]
        prior = xy[:, :, None, :] + velocity[:, :, None, :] * self.times[:, None]  # (B, M, T, 2)
        modes = prior[:, :, None] + residual * cfg.displacement_scale
        return ForecastOutput(modes=modes, logits=raw[..., -1])


def _masked_zero(*tensors: Tensor) -> Tensor:
    """A zero connected to the graph of ``tensors`` (a loss with nothing to score)."""
    return sum((t.sum() * 0.0 for t in tensors), start=torch.zeros((), device=tensors[0].device))


def forecast_loss(
    output: ForecastOutput, target: Tensor, target_mask: Tensor, agent_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Winner-takes-all ``(regression, classification)`` over the agents with a valid step.

    ``target`` ``(B, M, T, 2)`` [m], ``target_mask`` ``(B, M, T)`` and ``agent_mask``
    ``(B, M)`` bool. Regression: mean Euclidean error [m] of the best mode over the valid steps;
    classification: cross-entropy of the logits against the best mode. Zero (with gradients)
    when no agent has a valid step.
    """
    modes, logits = output
    b, m, _, t, _ = modes.shape
    check_tensor("agent_future", target, (b, m, t, 2))
    check_tensor("agent_future_mask", target_mask, (b, m, t))
    check_tensor("box_mask", agent_mask, (b, m))
    steps = target_mask.bool() & agent_mask.bool()[..., None]  # (B, M, T)
    count = steps.sum(-1)  # (B, M)
    valid = count > 0
    if not bool(valid.any()):
        zero = _masked_zero(modes, logits)
        return zero, zero
    diff = modes - torch.where(steps[..., None], target, torch.zeros_like(target))[:, :, None]
    dist = (diff.square().sum(-1) + 1e-6).sqrt()  # (B, M, K, T)
    ade = (dist * steps[:, :, None]).sum(-1) / count.clamp_min(1)[..., None]  # (B, M, K)
    best = ade.detach().argmin(-1)  # (B, M)
    regression = ade.gather(-1, best[..., None])[..., 0][valid].mean()
    classification = F.cross_entropy(logits[valid], best[valid])
    return regression, classification


def forecast_metrics(
    output: ForecastOutput, target: Tensor, target_mask: Tensor, agent_mask: Tensor
) -> ForecastMetrics:
    """AV2-style metrics (:func:`kaido.prediction.metrics.evaluate`) over the agents of the batch
    with a valid step; probabilities are the softmax of the logits."""
    modes = output.modes.detach().float().cpu().numpy().astype(np.float64)
    probs = output.logits.detach().float().softmax(-1).cpu().numpy().astype(np.float64)
    b, m, k, t, _ = modes.shape
    gt = target.detach().float().cpu().numpy().astype(np.float64)
    steps = (target_mask.bool() & agent_mask.bool()[..., None]).cpu().numpy()
    keep = steps.any(-1).reshape(-1)
    return evaluate(
        modes.reshape(b * m, k, t, 2)[keep],
        gt.reshape(b * m, t, 2)[keep],
        steps.reshape(b * m, t)[keep],
        probs.reshape(b * m, k)[keep],
    )


def detections_to_queries(
    detections: Sequence[tuple[Any, Any, Any]], max_agents: int, device: torch.device | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Pad decoded detections into forecasting queries.

    ``detections``: per batch element ``(boxes (n, 7) BoxField, scores (n,), classes (n,))``
    (tensors or arrays). Keeps the ``max_agents`` highest-scoring of each element. Returns
    ``boxes (B, M, 7)`` float32, ``classes (B, M)`` int64 (``PAD_CLASS`` for padding) and
    ``mask (B, M)`` bool with ``M = max_agents``.
    """
    if isinstance(max_agents, bool) or not isinstance(max_agents, int) or max_agents < 1:
        raise ValueError(f"max_agents must be a positive integer, got {max_agents!r}")
    b = len(detections)
    boxes = torch.zeros(b, max_agents, len(BoxField), device=device)
    classes = torch.full((b, max_agents), PAD_CLASS, dtype=torch.long, device=device)
    mask = torch.zeros(b, max_agents, dtype=torch.bool, device=device)
    for i, (det_boxes, det_scores, det_classes) in enumerate(detections):
        bx = torch.as_tensor(det_boxes, dtype=torch.float32, device=device).reshape(
            -1, len(BoxField)
        )
        sc = torch.as_tensor(det_scores, dtype=torch.float32, device=device).reshape(-1)
        cl = torch.as_tensor(det_classes, device=device).reshape(-1).long()
        if not bx.shape[0] == sc.shape[0] == cl.shape[0]:
            raise ValueError(
                f"detections[{i}]: boxes {tuple(bx.shape)}, scores {tuple(sc.shape)} and "
                f"classes {tuple(cl.shape)} disagree in length"
            )
        order = sc.argsort(descending=True)[:max_agents]
        n = int(order.shape[0])
        boxes[i, :n] = bx[order]
        classes[i, :n] = cl[order]
        mask[i, :n] = True
    return boxes, classes, mask
