"""The foundation backbone: a pre-norm transformer over BEV patch tokens, an ego token, route
tokens and temporal memory tokens.

Axis vocabulary: ``B`` batch, ``D`` model width, ``h, w`` rows and columns of the fused BEV
feature map (``H / s, W / s`` of the grid), ``N = (h / p) * (w / p)`` patch tokens for patch
size ``p``, ``R`` route points, ``T_p`` past ego poses, ``Mm`` memory tokens.

One tick reads the fused BEV feature ``(B, C_in, h, w)``, the ego state ``(B, 4)``
(:class:`~kaido.logs.sample.EgoFeature`), the route ``(B, R, 2)`` and the past ego poses
``(B, T_p, 3)`` (all in the current ego frame, metres and radians) and the memory tokens of the
previous tick ``(B, Mm, D)`` (None on the first tick: a learned initial memory). The sequence
``[memory, ego, route, patches]`` runs through ``layers`` pre-norm transformer layers; the
output holds the patch tokens, the ego token, the route tokens and the new memory (the memory
tokens' outputs, fed back on the next tick).

The attention blocks here (:class:`Attention`, :class:`TransformerLayer`) are shared by the
world model and the heads; they use :func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from kaido.logs.sample import EgoFeature

__all__ = [
    "EGO_STATE_SCALE",
    "Attention",
    "BackboneConfig",
    "BackboneOutput",
    "FoundationBackbone",
    "TransformerLayer",
    "autocast_bf16",
    "check_tensor",
    "mlp",
    "sincos_position_2d",
]

POSITIONS = ("sincos", "learned")
"""Kinds of patch-token position encoding."""

EGO_STATE_SCALE: dict[EgoFeature, float] = {
    EgoFeature.SPEED: 10.0,
    EgoFeature.ACCEL: 3.0,
    EgoFeature.YAW_RATE: 0.5,
    EgoFeature.SPEED_LIMIT: 10.0,
}
"""Typical magnitude of each ego-state feature [m/s, m/s², rad/s, m/s]; inputs are divided by it."""


def check_tensor(name: str, tensor: object, shape: tuple[int | None, ...]) -> Tensor:
    """``tensor`` if it is a Tensor of ``shape`` (None = any size); else an error naming it."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != len(shape) or any(
        want is not None and got != want for got, want in zip(tensor.shape, shape, strict=True)
    ):
        pretty = ", ".join("?" if s is None else str(s) for s in shape)
        raise ValueError(f"{name}: expected shape ({pretty}), got {tuple(tensor.shape)}")
    return tensor


@contextlib.contextmanager
def autocast_bf16(enabled: bool, device: torch.device) -> Iterator[None]:
    """bfloat16 autocast on ``device`` when ``enabled`` (CPU and CUDA; a no-op elsewhere)."""
    if enabled and device.type in ("cpu", "cuda"):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def sincos_position_2d(rows: int, cols: int, dim: int) -> Tensor:
    """Fixed 2D sine-cosine position encoding ``(rows * cols, dim)`` (row-major tokens).

    The first half of the channels encodes the row, the second half the column, each with
    ``dim / 4`` frequencies (as in MAE). ``dim`` must be divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"sincos_position_2d: dim must be divisible by 4, got {dim}")
    quarter = dim // 4
    freq = 1.0 / (10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    r = torch.arange(rows, dtype=torch.float64)[:, None] * freq  # (rows, dim/4)
    c = torch.arange(cols, dtype=torch.float64)[:, None] * freq  # (cols, dim/4)
    r_enc = torch.cat([r.sin(), r.cos()], dim=1)[:, None, :].expand(rows, cols, 2 * quarter)
    c_enc = torch.cat([c.sin(), c.cos()], dim=1)[None, :, :].expand(rows, cols, 2 * quarter)
    return torch.cat([r_enc, c_enc], dim=-1).reshape(rows * cols, dim).float()


class Attention(nn.Module):
    """Multi-head attention (self- or cross-) through ``scaled_dot_product_attention``.

    ``query`` ``(B, L, D)``, ``context`` ``(B, S, D)`` (None = self-attention), ``mask`` None or
    bool ``(B, L, S)`` / ``(B, S)``: True where the query may attend to the key. A query whose
    keys are all masked must not occur (callers keep at least one key visible).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"Attention: dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, query: Tensor, context: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        ctx = query if context is None else context
        b, length, dim = query.shape
        q = self.q(query).view(b, length, self.heads, -1).transpose(1, 2)  # (B, h, L, d)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn_mask = None
        if mask is not None:
            attn_mask = mask[:, None, None, :] if mask.dim() == 2 else mask[:, None]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        result: Tensor = self.out(out.transpose(1, 2).reshape(b, length, dim))
        return result


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: self-attention, optional cross-attention, MLP (GELU).

    ``forward(x (B, L, D), context (B, S, D) | None, self_mask, context_mask) -> (B, L, D)``;
    masks as in :class:`Attention`. With ``cross=True`` a context is required.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        cross: bool = False,
    ) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads, dropout)
        self.cross = cross
        if cross:
            self.norm_query = nn.LayerNorm(dim)
            self.norm_context = nn.LayerNorm(dim)
            self.cross_attn = Attention(dim, heads, dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        self_mask: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        x = x + self.drop(self.self_attn(self.norm_self(x), mask=self_mask))
        if self.cross:
            if context is None:
                raise ValueError("TransformerLayer: a cross-attention layer needs a context")
            x = x + self.drop(
                self.cross_attn(self.norm_query(x), self.norm_context(context), context_mask)
            )
        out: Tensor = x + self.drop(self.mlp(self.norm_mlp(x)))
        return out


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Two-layer perceptron ``Linear → GELU → Linear``."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


@dataclass(frozen=True)
class BackboneConfig:
    """The foundation backbone's size and inputs."""

    in_channels: int = 64
    """C_in: channels of the fused BEV feature (the fusion's ``out_channels``)."""
    bev_shape: tuple[int, ...] = (32, 32)
    """``(h, w)``: rows and columns of the fused BEV feature (grid / perception stride)."""
    dim: int = 64
    """D: token width (divisible by ``heads`` and by 4)."""
    layers: int = 2
    """Transformer layers."""
    heads: int = 4
    """Attention heads."""
    mlp_ratio: float = 4.0
    """MLP hidden width / D."""
    dropout: float = 0.0
    """Dropout probability in attention and MLPs."""
    patch: int = 2
    """p: BEV cells per patch token along each axis (divides h and w)."""
    position: str = "sincos"
    """Patch-token position encoding: ``sincos`` (fixed 2D) or ``learned``."""
    memory_tokens: int = 8
    """Mm: memory tokens carried from tick to tick."""
    route_points: int = 16
    """R: route points (one token each)."""
    past_steps: int = 4
    """T_p: past ego poses read by the ego token."""
    position_scale: float = 32.0
    """[m] route and past-pose coordinates are divided by this."""
    checkpointing: bool = False
    """Recompute each layer's activations in the backward pass (activation checkpointing)."""
    autocast_bf16: bool = False
    """Run the transformer layers under bfloat16 autocast (CPU/CUDA); outputs are float32."""

    def __post_init__(self) -> None:
        owner = "BackboneConfig"
        for name in ("in_channels", "dim", "layers", "heads", "patch", "memory_tokens"):
            _positive_int(owner, name, getattr(self, name))
        for name in ("route_points", "past_steps"):
            _positive_int(owner, name, getattr(self, name))
        if len(self.bev_shape) != 2:
            raise ValueError(f"{owner}.bev_shape must be (h, w), got {self.bev_shape!r}")
        for i, n in enumerate(self.bev_shape):
            _positive_int(owner, f"bev_shape[{i}]", n)
        if self.dim % self.heads or self.dim % 4:
            raise ValueError(
                f"{owner}: dim {self.dim} must be divisible by heads {self.heads} and by 4"
            )
        h, w = self.bev_shape
        if h % self.patch or w % self.patch:
            raise ValueError(f"{owner}: patch {self.patch} must divide bev_shape {self.bev_shape}")
        if self.position not in POSITIONS:
            raise ValueError(f"{owner}.position must be one of {POSITIONS}, got {self.position!r}")
        if not (self.mlp_ratio > 0 and math.isfinite(self.mlp_ratio)):
            raise ValueError(f"{owner}.mlp_ratio must be positive, got {self.mlp_ratio}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{owner}.dropout must be in [0, 1), got {self.dropout}")
        if not (self.position_scale > 0 and math.isfinite(self.position_scale)):
            raise ValueError(f"{owner}.position_scale must be positive, got {self.position_scale}")

    @property
    def token_shape(self) -> tuple[int, int]:
        """``(h / p, w / p)``: rows and columns of the patch-token grid."""
        return (self.bev_shape[0] // self.patch, self.bev_shape[1] // self.patch)

    @property
    def num_tokens(self) -> int:
        """N: patch tokens."""
        rows, cols = self.token_shape
        return rows * cols


def _positive_int(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")


class BackboneOutput(NamedTuple):
    """The backbone's latent state of one tick."""

    tokens: Tensor
    """``(B, N, D)`` patch tokens, row-major over the ``token_shape`` grid."""
    ego: Tensor
    """``(B, D)`` the ego token."""
    memory: Tensor
    """``(B, Mm, D)`` memory for the next tick."""
    route: Tensor
    """``(B, R, D)`` route tokens."""

    def context(self) -> Tensor:
        """``(B, 1 + R + N, D)``: ego, route and patch tokens (what the heads attend to)."""
        return torch.cat([self.ego[:, None], self.route, self.tokens], dim=1)


class FoundationBackbone(nn.Module):
    """Transformer over BEV patch tokens, an ego token, route tokens and memory tokens.

    ``forward(bev (B, C_in, h, w), ego_state (B, 4), route (B, R, 2), ego_past (B, T_p, 3),
    memory (B, Mm, D) | None) -> BackboneOutput``.
    """

    ego_scale: Tensor

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.patch_embed = nn.Conv2d(cfg.in_channels, d, kernel_size=cfg.patch, stride=cfg.patch)
        self.patch_norm = nn.LayerNorm(d)
        rows, cols = cfg.token_shape
        if cfg.position == "learned":
            self.position = nn.Parameter(torch.randn(rows * cols, d) * 0.02)
        else:
            self.register_buffer("position", sincos_position_2d(rows, cols, d), persistent=False)
        ego_in = len(EgoFeature) + 4 * cfg.past_steps
        self.ego_embed = mlp(ego_in, d, d)
        self.route_embed = mlp(4, d, d)
        self.route_index = nn.Parameter(torch.randn(cfg.route_points, d) * 0.02)
        self.memory_init = nn.Parameter(torch.randn(cfg.memory_tokens, d) * 0.02)
        self.memory_in = nn.LayerNorm(d)
        # One learned embedding per token type: memory, ego, route, patch.
        self.type_embed = nn.Parameter(torch.randn(4, d) * 0.02)
        self.layers = nn.ModuleList(
            TransformerLayer(d, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(d)
        scale = torch.ones(len(EgoFeature))
        for feature, value in EGO_STATE_SCALE.items():
            scale[feature] = value
        self.register_buffer("ego_scale", scale, persistent=False)

    def initial_memory(self, batch: int) -> Tensor:
        """``(B, Mm, D)``: the learned memory of a first tick."""
        return self.memory_init[None].expand(batch, -1, -1)

    def _ego_features(self, ego_state: Tensor, ego_past: Tensor) -> Tensor:
        s = self.cfg.position_scale
        past = torch.cat(
            [ego_past[..., :2] / s, ego_past[..., 2:3].sin(), ego_past[..., 2:3].cos()], dim=-1
        )
        return torch.cat([ego_state / self.ego_scale, past.flatten(1)], dim=-1)

    def _route_features(self, route: Tensor) -> Tensor:
        s = self.cfg.position_scale
        step = torch.cat([route[:, 1:] - route[:, :-1], route[:, -1:] - route[:, -2:-1]], dim=1)
        direction = step / step.norm(dim=-1, keepdim=True).clamp_min(1e-3)
        return torch.cat([route / s, direction], dim=-1)

    def forward(
        self,
        bev: Tensor,
        ego_state: Tensor,
        route: Tensor,
        ego_past: Tensor,
        memory: Tensor | None = None,
    ) -> BackboneOutput:
        cfg = self.cfg
        h, w = cfg.bev_shape
        b = bev.shape[0]
        check_tensor("bev", bev, (b, cfg.in_channels, h, w))
        check_tensor("ego_state", ego_state, (b, len(EgoFeature)))
        check_tensor("route", route, (b, cfg.route_points, 2))
        check_tensor("ego_past", ego_past, (b, cfg.past_steps, 3))
        if memory is None:
            memory = self.initial_memory(b)
        check_tensor("memory", memory, (b, cfg.memory_tokens, cfg.dim))

        patches = self.patch_embed(bev).flatten(2).transpose(1, 2)  # (B, N, D)
        patches = self.patch_norm(patches) + self.position + self.type_embed[3]
        ego = self.ego_embed(self._ego_features(ego_state, ego_past))[:, None] + self.type_embed[1]
        route_tok = self.route_embed(self._route_features(route)) + self.route_index
        route_tok = route_tok + self.type_embed[2]
        mem = self.memory_in(memory) + self.type_embed[0]
        x = torch.cat([mem, ego, route_tok, patches], dim=1)

        with autocast_bf16(cfg.autocast_bf16, x.device):
            for layer in self.layers:
                if cfg.checkpointing and self.training and torch.is_grad_enabled():
                    x = checkpoint(layer, x, use_reentrant=False)
                else:
                    x = layer(x)
        x = self.norm(x.float())
        m, r = cfg.memory_tokens, cfg.route_points
        return BackboneOutput(
            tokens=x[:, m + 1 + r :],
            ego=x[:, m],
            memory=x[:, :m],
            route=x[:, m + 1 : m + 1 + r],
        )
