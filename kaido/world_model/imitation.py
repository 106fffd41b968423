"""The imitation trajectory prior: ``K_p`` ego trajectories with logits, for the planner.

Axis vocabulary: ``B`` batch, ``K`` modes (``K_p``), ``T`` future steps (``T_f``, every
``step_seconds`` from ``step_seconds`` on), ``S`` context tokens, ``D`` width.

``K`` learned mode queries, each plus the backbone's ego token, attend to each other and to the
context (ego, route and BEV patch tokens) and emit a trajectory of ego poses ``(T, 3)`` = x, y
[m], yaw [rad] in the ego frame at the sample time (rear axle, as ``ego_future``) and a logit.
Positions are a straight constant-speed extrapolation (the ego's current speed) plus a learned
residual. The loss is winner-takes-all against ``ego_future``: per mode the mean over steps of
the position error [m] plus ``yaw_weight`` times the wrapped yaw error [rad]; the best mode is
regressed and classified (cross-entropy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kaido.logs.sample import EgoFeature
from kaido.scene.geometry import PoseIndex
from kaido.world_model.backbone import TransformerLayer, check_tensor

__all__ = [
    "ImitationConfig",
    "ImitationHead",
    "ImitationOutput",
    "imitation_loss",
    "min_ade",
    "wrap",
]


@dataclass(frozen=True)
class ImitationConfig:
    """The imitation prior head."""

    dim: int = 64
    """D: token width (the backbone's)."""
    modes: int = 6
    """K_p: trajectories."""
    future_steps: int = 16
    """T_f: poses per trajectory."""
    step_seconds: float = 0.5
    """[s] time between poses."""
    layers: int = 1
    """Query layers (self-attention over modes, cross-attention to the context, MLP)."""
    heads: int = 4
    """Attention heads."""
    mlp_ratio: float = 4.0
    """MLP hidden width / D."""
    dropout: float = 0.0
    """Dropout probability."""
    displacement_scale: float = 8.0
    """[m] the network's position residuals are multiplied by this."""
    yaw_weight: float = 2.0
    """[m/rad] weight of the yaw error against the position error in the loss."""

    def __post_init__(self) -> None:
        owner = "ImitationConfig"
        for name in ("dim", "modes", "future_steps", "layers", "heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"{owner}: dim {self.dim} must be divisible by heads {self.heads}")
        for name in ("mlp_ratio", "step_seconds", "displacement_scale"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{owner}.{name} must be positive and finite, got {value!r}")
        if not (self.yaw_weight >= 0 and math.isfinite(self.yaw_weight)):
            raise ValueError(f"{owner}.yaw_weight must be >= 0, got {self.yaw_weight}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{owner}.dropout must be in [0, 1), got {self.dropout}")


class ImitationOutput(NamedTuple):
    """The prior's trajectories."""

    trajectories: Tensor
    """``(B, K, T, 3)`` ego poses x, y [m], yaw [rad] (:class:`PoseIndex`)."""
    logits: Tensor
    """``(B, K)`` mode logits."""


class ImitationHead(nn.Module):
    """``forward(ego (B, D), context (B, S, D), ego_state (B, 4)) -> ImitationOutput``."""

    times: Tensor

    def __init__(self, cfg: ImitationConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.mode_queries = nn.Parameter(torch.randn(cfg.modes, d) * 0.02)
        self.ego_proj = nn.Linear(d, d)
        self.layers = nn.ModuleList(
            TransformerLayer(d, cfg.heads, cfg.mlp_ratio, cfg.dropout, cross=True)
            for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.future_steps * len(PoseIndex) + 1)
        times = torch.arange(1, cfg.future_steps + 1, dtype=torch.float32) * cfg.step_seconds
        self.register_buffer("times", times, persistent=False)

    def forward(self, ego: Tensor, context: Tensor, ego_state: Tensor) -> ImitationOutput:
        cfg = self.cfg
        b = ego.shape[0]
        check_tensor("ego", ego, (b, cfg.dim))
        check_tensor("context", context, (b, None, cfg.dim))
        check_tensor("ego_state", ego_state, (b, len(EgoFeature)))
        q = self.mode_queries[None] + self.ego_proj(ego)[:, None]  # (B, K, D)
        for layer in self.layers:
            q = layer(q, context)
        raw = self.out(self.norm(q))  # (B, K, T*3 + 1)
        residual = raw[..., :-1].reshape(b, cfg.modes, cfg.future_steps, len(PoseIndex))
        speed = ego_state[:, EgoFeature.SPEED]
        prior = torch.zeros(b, 1, cfg.future_steps, len(PoseIndex), device=ego.device)
        prior[..., PoseIndex.X] = speed[:, None, None] * self.times
        scale = torch.tensor(
            [cfg.displacement_scale, cfg.displacement_scale, 1.0], device=ego.device
        )
        return ImitationOutput(trajectories=prior + residual * scale, logits=raw[..., -1])


def wrap(angle: Tensor) -> Tensor:
    """Angles wrapped to ``(-pi, pi]``."""
    return torch.atan2(angle.sin(), angle.cos())


def imitation_loss(
    output: ImitationOutput, target: Tensor, yaw_weight: float
) -> tuple[Tensor, Tensor]:
    """Winner-takes-all ``(regression, classification)`` against ``ego_future`` ``(B, T, 3)``.

    Per mode: mean over steps of ``|xy - xy*| + yaw_weight * |wrap(yaw - yaw*)|``; the best
    mode's error is the regression loss, the cross-entropy of the logits against it the
    classification loss.
    """
    traj, logits = output
    b, _, t, _ = traj.shape
    check_tensor("ego_future", target, (b, t, len(PoseIndex)))
    xy = [PoseIndex.X, PoseIndex.Y]
    pos = ((traj[..., xy] - target[:, None, :, xy]).square().sum(-1) + 1e-6).sqrt()
    yaw = wrap(traj[..., PoseIndex.YAW] - target[:, None, :, PoseIndex.YAW]).abs()
    error = (pos + yaw_weight * yaw).mean(-1)  # (B, K)
    best = error.detach().argmin(-1)
    regression = error.gather(-1, best[:, None]).mean()
    return regression, F.cross_entropy(logits, best)


def min_ade(output: ImitationOutput, target: Tensor) -> Tensor:
    """``(B,)`` smallest mean position error [m] over the modes against ``ego_future``."""
    xy = [PoseIndex.X, PoseIndex.Y]
    err = (output.trajectories[..., xy] - target[:, None, :, xy]).norm(dim=-1).mean(-1)
    return err.min(-1).values
