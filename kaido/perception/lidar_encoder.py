"""Lidar encoder: PointNet over pillars → scatter onto the BEV grid → CNN.

Input: the pillars of :func:`kaido.perception.pillars.pillarize_batch` as tensors. Output: the
lidar BEV feature ``(B, C_lidar, H / s, W / s)`` on the grid of the config.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kaido.perception.config import LidarEncoderConfig
from kaido.perception.layers import BevCnn, check_shape
from kaido.perception.pillars import NUM_PILLAR_FEATURES, PillarFeature

__all__ = ["LidarEncoder", "PillarNet", "scatter_pillars"]


def _feature_scale(cfg: LidarEncoderConfig) -> Tensor:
    """``(9,)`` factors that bring the pillar features to about unit size."""
    grid = cfg.grid
    res = float(grid.resolution)
    extent = 0.5 * max(grid.height, grid.width) * res  # [m]
    z_extent = max(abs(cfg.z_min), abs(cfg.z_max))  # [m]
    scale = torch.ones(NUM_PILLAR_FEATURES)
    scale[PillarFeature.X] = 1.0 / extent
    scale[PillarFeature.Y] = 1.0 / extent
    scale[PillarFeature.Z] = 1.0 / z_extent
    for f in (
        PillarFeature.X_MEAN_OFFSET,
        PillarFeature.Y_MEAN_OFFSET,
        PillarFeature.X_CENTRE_OFFSET,
        PillarFeature.Y_CENTRE_OFFSET,
    ):
        scale[f] = 2.0 / res
    scale[PillarFeature.Z_MEAN_OFFSET] = 1.0 / z_extent
    return scale


class PillarNet(nn.Module):
    """PointNet of one layer over each pillar's points: Linear → LayerNorm → ReLU per point,
    then the max over the pillar's valid points (padded points are masked; an empty pillar is
    zeros). LayerNorm works per point, so padding never changes a pillar's feature."""

    feature_scale: Tensor

    def __init__(self, cfg: LidarEncoderConfig):
        super().__init__()
        self.register_buffer("feature_scale", _feature_scale(cfg), persistent=False)
        self.linear = nn.Linear(NUM_PILLAR_FEATURES, cfg.pillar_channels, bias=False)
        self.norm = nn.LayerNorm(cfg.pillar_channels)

    def forward(self, features: Tensor, num_points: Tensor) -> Tensor:
        """``features (B, P, M, 9)``, ``num_points (B, P)`` → pillar features ``(B, P, C_p)``."""
        m = features.shape[2]
        x = torch.relu(self.norm(self.linear(features * self.feature_scale)))  # (B, P, M, C_p)
        valid = torch.arange(m, device=features.device) < num_points[..., None]  # (B, P, M)
        # ReLU outputs are >= 0, so padded points filled with 0 never win the max
        return x.masked_fill(~valid[..., None], 0.0).amax(dim=2)


def scatter_pillars(
    pillar_features: Tensor, coords: Tensor, num_points: Tensor, height: int, width: int
) -> Tensor:
    """Pillar features ``(B, P, C)`` placed at their cells ``coords (B, P, 2)`` (row, col) of an
    ``H x W`` grid → ``(B, C, H, W)``; pillars with ``num_points == 0`` add nothing. A cell
    holds at most one non-empty pillar, so the ``scatter_add`` only ever adds exact zeros to it:
    a placement, the same in any summation order (deterministic on every device)."""
    b, p, c = pillar_features.shape
    feats = pillar_features * (num_points > 0)[..., None].to(pillar_features.dtype)
    flat = (coords[..., 0] * width + coords[..., 1]).long()  # (B, P)
    canvas = pillar_features.new_zeros(b, height * width, c)
    canvas = canvas.scatter_add(1, flat[..., None].expand(b, p, c), feats)
    return canvas.transpose(1, 2).reshape(b, c, height, width)


class LidarEncoder(nn.Module):
    """Pillars → lidar BEV feature ``(B, C_lidar, H / s, W / s)``."""

    def __init__(self, cfg: LidarEncoderConfig):
        super().__init__()
        if not isinstance(cfg, LidarEncoderConfig):
            raise TypeError(f"LidarEncoder: cfg must be LidarEncoderConfig, got {type(cfg)}")
        self.cfg = cfg
        self.pillar_net = PillarNet(cfg)
        self.bev_net = BevCnn(
            cfg.pillar_channels, cfg.hidden_channels, cfg.out_channels, cfg.stride
        )

    def forward(
        self, pillar_features: Tensor, pillar_coords: Tensor, pillar_points: Tensor
    ) -> Tensor:
        """``pillar_features (B, P, M, 9)`` float, ``pillar_coords (B, P, 2)`` long (row, col)
        and ``pillar_points (B, P)`` long (valid points per pillar, 0 = empty slot) →
        ``(B, C_lidar, H / s, W / s)``."""
        grid = self.cfg.grid
        check_shape("pillar_features", pillar_features, (None, None, None, NUM_PILLAR_FEATURES))
        b, p = pillar_features.shape[:2]
        check_shape("pillar_coords", pillar_coords, (b, p, 2))
        check_shape("pillar_points", pillar_points, (b, p))
        if pillar_features.shape[2] > self.cfg.max_points:
            raise ValueError(
                f"pillar_features has {pillar_features.shape[2]} points per pillar, more than "
                f"max_points={self.cfg.max_points}"
            )
        if not torch.compiler.is_compiling() and pillar_coords.numel():
            bad = (
                (pillar_coords[..., 0] < 0)
                | (pillar_coords[..., 0] >= grid.height)
                | (pillar_coords[..., 1] < 0)
                | (pillar_coords[..., 1] >= grid.width)
            )
            if bool(bad.any()):
                raise ValueError(
                    f"pillar_coords must lie in the {grid.height} x {grid.width} grid, got "
                    f"{pillar_coords[bad][0].tolist()}"
                )
        pillars = self.pillar_net(pillar_features, pillar_points)
        canvas = scatter_pillars(pillars, pillar_coords, pillar_points, grid.height, grid.width)
        out: Tensor = self.bev_net(canvas)
        return out
