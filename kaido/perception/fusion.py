"""BEV fusion: concatenate the lidar and camera BEV features (zeros for a missing modality) and
mix them with a small CNN into the fused BEV feature ``(B, D, H / s, W / s)``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kaido.perception.config import FusionConfig
from kaido.perception.layers import check_shape, conv_norm_relu

__all__ = ["BevFusion"]


class BevFusion(nn.Module):
    """``concat(lidar, camera)`` → 3x3 conv → GroupNorm → ReLU → 1x1 conv to ``out_channels``."""

    def __init__(self, cfg: FusionConfig):
        super().__init__()
        if not isinstance(cfg, FusionConfig):
            raise TypeError(f"BevFusion: cfg must be FusionConfig, got {type(cfg)}")
        self.cfg = cfg
        d = cfg.out_channels
        self.net = nn.Sequential(
            conv_norm_relu(cfg.lidar_channels + cfg.camera_channels, d),
            nn.Conv2d(d, d, 1),
        )

    @property
    def bev_shape(self) -> tuple[int, int]:
        """``(H / s, W / s)``: the spatial size of inputs and output."""
        return (self.cfg.grid.height // self.cfg.stride, self.cfg.grid.width // self.cfg.stride)

    def forward(
        self,
        lidar_bev: Tensor | None,
        camera_bev: Tensor | None,
        *,
        batch_size: int | None = None,
    ) -> Tensor:
        """``lidar_bev (B, C_lidar, H / s, W / s) | None``, ``camera_bev (B, C_cam, H / s,
        W / s) | None`` → ``(B, D, H / s, W / s)``. A missing modality is zeros; when both are
        missing, ``batch_size`` says B (ValueError without it)."""
        hs, ws = self.bev_shape
        cfg = self.cfg
        present = lidar_bev if lidar_bev is not None else camera_bev
        if present is None:
            if batch_size is None or batch_size < 0:
                raise ValueError(
                    "BevFusion: both lidar_bev and camera_bev are None; pass batch_size"
                )
            p = next(self.parameters())
            present = p.new_zeros(batch_size, 1, hs, ws)
        b = present.shape[0]
        if lidar_bev is None:
            lidar_bev = present.new_zeros(b, cfg.lidar_channels, hs, ws)
        if camera_bev is None:
            camera_bev = present.new_zeros(b, cfg.camera_channels, hs, ws)
        check_shape("lidar_bev", lidar_bev, (b, cfg.lidar_channels, hs, ws))
        check_shape("camera_bev", camera_bev, (b, cfg.camera_channels, hs, ws))
        out: Tensor = self.net(torch.cat([lidar_bev, camera_bev], dim=1))
        return out
