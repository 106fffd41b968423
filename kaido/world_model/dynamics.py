"""The action-conditioned latent world model: ``z(t+1) = f(z(t), a(t))`` and its occupancy decoder.

Axis vocabulary: ``B`` batch, ``T`` imagined steps (0.5 s each), ``N`` patch tokens on the
backbone's ``(h', w')`` token grid, ``D`` width, ``H, W`` the BEV grid.

:class:`LatentDynamics` advances the patch tokens by one step of ``step_seconds`` under an action
``(ACCEL [m/s²], CURVATURE [1/m])`` (:class:`~kaido.logs.sample.ActionIndex`): the action is
embedded, modulates every token through FiLM (scale and shift, initialised to zero so that an
untrained model ignores actions) and a pre-norm transformer layer mixes the tokens.
:class:`OccupancyDecoder` turns a latent into occupancy logits on the full ``H x W`` grid
(tokens back to their grid, then conv + 2x upsampling until the grid's size). The target is the
future lidar occupancy in the CURRENT ego frame at ``1..T`` steps ahead
(``occupancy_future``), so the dynamics learn the scene's motion and the ego's own.
:class:`WorldModel` bundles both; :meth:`WorldModel.imagine` rolls out a sequence of actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kaido.logs.sample import ActionIndex
from kaido.perception.layers import group_count
from kaido.world_model.backbone import BackboneOutput, TransformerLayer, check_tensor, mlp

__all__ = [
    "ACTION_SCALE",
    "LatentDynamics",
    "OccupancyDecoder",
    "WorldModel",
    "WorldModelConfig",
    "occupancy_loss",
]

ACTION_SCALE: dict[ActionIndex, float] = {ActionIndex.ACCEL: 3.0, ActionIndex.CURVATURE: 0.1}
"""Typical magnitude of each action [m/s², 1/m]; actions are divided by it before embedding."""


@dataclass(frozen=True)
class WorldModelConfig:
    """The latent dynamics and the occupancy decoder."""

    dim: int = 64
    """D: token width (the backbone's)."""
    token_shape: tuple[int, ...] = (16, 16)
    """``(h', w')``: the backbone's patch-token grid."""
    grid_shape: tuple[int, ...] = (64, 64)
    """``(H, W)``: the BEV grid the occupancy is decoded on (a power-of-two multiple of
    ``token_shape``)."""
    layers: int = 1
    """Transformer layers per dynamics step."""
    heads: int = 4
    """Attention heads."""
    mlp_ratio: float = 4.0
    """MLP hidden width / D."""
    dropout: float = 0.0
    """Dropout probability."""
    decoder_channels: int = 32
    """Channels of the occupancy decoder's convs."""
    steps: int = 6
    """T_o: imagined steps trained against ``occupancy_future`` (0.5..3.0 s)."""
    pos_weight: float = 4.0
    """Weight of occupied cells in the binary cross-entropy (occupancy is sparse)."""

    def __post_init__(self) -> None:
        owner = "WorldModelConfig"
        for name in ("dim", "layers", "heads", "decoder_channels", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")
        for name in ("token_shape", "grid_shape"):
            shape = getattr(self, name)
            if len(shape) != 2 or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape
            ):
                raise ValueError(f"{owner}.{name} must be two positive integers, got {shape!r}")
        if self.dim % self.heads:
            raise ValueError(f"{owner}: dim {self.dim} must be divisible by heads {self.heads}")
        (th, tw), (gh, gw) = self.token_shape, self.grid_shape
        if gh % th or gw % tw or gh // th != gw // tw or (gh // th) & (gh // th - 1):
            raise ValueError(
                f"{owner}: grid_shape {self.grid_shape} must be the token grid {self.token_shape} "
                "times one power of two"
            )
        if not (self.mlp_ratio > 0 and math.isfinite(self.mlp_ratio)):
            raise ValueError(f"{owner}.mlp_ratio must be positive, got {self.mlp_ratio}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{owner}.dropout must be in [0, 1), got {self.dropout}")
        if not (self.pos_weight > 0 and math.isfinite(self.pos_weight)):
            raise ValueError(f"{owner}.pos_weight must be positive, got {self.pos_weight}")

    @property
    def upsample(self) -> int:
        """Grid cells per token along each axis."""
        return self.grid_shape[0] // self.token_shape[0]


class LatentDynamics(nn.Module):
    """One imagined step: ``step(tokens (B, N, D), action (B, 2)) -> tokens (B, N, D)``."""

    action_scale: Tensor

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        scale = torch.ones(len(ActionIndex))
        for index, value in ACTION_SCALE.items():
            scale[index] = value
        self.register_buffer("action_scale", scale, persistent=False)
        self.action_embed = mlp(len(ActionIndex), d, d)
        self.norm = nn.LayerNorm(d)
        self.film = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.layers = nn.ModuleList(
            TransformerLayer(d, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.layers)
        )
        self.out_norm = nn.LayerNorm(d)

    def step(self, tokens: Tensor, action: Tensor) -> Tensor:
        """Advance ``tokens`` ``(B, N, D)`` by one step under ``action`` ``(B, 2)``."""
        b = tokens.shape[0]
        check_tensor("tokens", tokens, (b, None, self.cfg.dim))
        check_tensor("action", action, (b, len(ActionIndex)))
        a = self.action_embed(action / self.action_scale)  # (B, D)
        scale, shift = self.film(a)[:, None].chunk(2, dim=-1)  # (B, 1, D) each
        x = tokens + self.norm(tokens) * scale + shift
        for layer in self.layers:
            x = layer(x)
        out: Tensor = self.out_norm(x)
        return out

    def forward(self, tokens: Tensor, action: Tensor) -> Tensor:
        return self.step(tokens, action)


class OccupancyDecoder(nn.Module):
    """Patch tokens ``(B, N, D)`` → occupancy logits ``(B, H, W)``."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.decoder_channels
        self.proj = nn.Conv2d(cfg.dim, c, 1)
        ups: list[nn.Module] = []
        for _ in range(cfg.upsample.bit_length() - 1):
            ups.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False),
                    nn.Conv2d(c, c, 3, padding=1, bias=False),
                    nn.GroupNorm(group_count(c), c),
                    nn.GELU(),
                )
            )
        self.up = nn.Sequential(*ups)
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, tokens: Tensor) -> Tensor:
        b, n, d = tokens.shape
        rows, cols = self.cfg.token_shape
        if n != rows * cols:
            raise ValueError(f"tokens: expected {rows * cols} patch tokens, got {n}")
        grid = tokens.transpose(1, 2).reshape(b, d, rows, cols)
        out: Tensor = self.head(self.up(self.proj(grid)))[:, 0]
        return out


class WorldModel(nn.Module):
    """Latent dynamics + occupancy decoder.

    ``imagine(state, actions (B, T, 2)) -> occupancy logits (B, T, H, W)``: step ``t`` is the
    occupancy ``(t + 1) * step_seconds`` ahead after applying ``actions[:, :t + 1]``. A state of
    batch 1 with actions of batch ``B`` is broadcast (one scene, ``B`` candidate action
    sequences).
    """

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dynamics = LatentDynamics(cfg)
        self.decoder = OccupancyDecoder(cfg)

    def rollout(self, tokens: Tensor, actions: Tensor) -> Tensor:
        """Imagined latents ``(B, T, N, D)`` from ``tokens`` ``(B | 1, N, D)`` and ``actions``
        ``(B, T, 2)``."""
        b = actions.shape[0]
        check_tensor("actions", actions, (b, None, len(ActionIndex)))
        if tokens.shape[0] == 1 and b != 1:
            tokens = tokens.expand(b, -1, -1)
        z = tokens
        out = []
        for t in range(actions.shape[1]):
            z = self.dynamics.step(z, actions[:, t])
            out.append(z)
        return torch.stack(out, dim=1)

    def imagine(self, state: BackboneOutput, actions: Tensor) -> Tensor:
        """Occupancy logits ``(B, T, H, W)`` of the futures under ``actions`` ``(B, T, 2)``."""
        latents = self.rollout(state.tokens, actions)
        b, t, n, d = latents.shape
        logits = self.decoder(latents.reshape(b * t, n, d))
        return logits.reshape(b, t, *logits.shape[1:])

    def forward(self, state: BackboneOutput, actions: Tensor) -> Tensor:
        return self.imagine(state, actions)


def occupancy_loss(logits: Tensor, target: Tensor, pos_weight: float) -> Tensor:
    """Mean binary cross-entropy of ``logits`` ``(B, T, H, W)`` against the 0/1 ``target``
    (any dtype, same shape), occupied cells weighted by ``pos_weight``."""
    if logits.shape != target.shape:
        raise ValueError(
            f"occupancy_future: expected shape {tuple(logits.shape)} to match the imagined "
            f"occupancy, got {tuple(target.shape)}"
        )
    weight = torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), pos_weight=weight)
