"""Camera encoder: per-camera CNN → depth distribution + context → lift-splat → BEV CNN.

Each camera image goes through one shared CNN to a feature map of ``h' x w'`` cells
(``image_stride`` pixels each). Every cell predicts a softmax over ``D`` depth bins and a
context vector. The cell's ray through its centre pixel ``(u, v) = ((j + 0.5) * stride,
(i + 0.5) * stride)`` (continuous pixel coordinates, pixel ``(col, row)`` spans ``[col, col +
1)``, as in :mod:`kaido.scene.sensors`) is sampled at the bin centres ``d_k`` (optical-frame z):
the frustum point is ``p_opt = d_k K^-1 (u, v, 1)``, mapped to the ego frame by the camera's
``camera_to_ego`` (OpenCV optical frame → ego). Each point carries ``P(d_k) * context`` and is
summed (``index_add``) into the BEV cell that contains it; points outside the grid or the height
range ``[z_min, z_max)`` are dropped. Masked cameras contribute nothing; a sample without any
camera gives a zero BEV feature.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kaido.perception.config import CameraEncoderConfig
from kaido.perception.layers import BevCnn, check_shape, conv_norm_relu
from kaido.scene.raster import RasterSpec

__all__ = [
    "CameraEncoder",
    "ImageNet",
    "bev_cell_index",
    "depth_bin_centres",
    "frustum_points",
    "lift_splat",
]

_IMAGE_MEAN = 0.45
_IMAGE_STD = 0.25


def depth_bin_centres(cfg: CameraEncoderConfig) -> Tensor:
    """``(D,)`` centres of the uniform depth bins [m]."""
    k = torch.arange(cfg.depth_bins, dtype=torch.float32)
    return cfg.depth_min + (k + 0.5) * cfg.depth_bin_size


def frustum_points(
    intrinsics: Tensor,
    camera_to_ego: Tensor,
    depths: Tensor,
    feature_shape: tuple[int, int],
    image_stride: tuple[float, float],
) -> Tensor:
    """Ego-frame frustum points ``(B, C, D, h', w', 3)`` [m].

    ``intrinsics (B, C, 3, 3)`` (K of the input image), ``camera_to_ego (B, C, 4, 4)`` (optical
    frame → ego), ``depths (D,)`` [m] along the optical axis, ``feature_shape = (h', w')`` and
    ``image_stride = (rows, cols)`` pixels per feature cell.
    """
    hf, wf = feature_shape
    sy, sx = image_stride
    dev, dt = intrinsics.device, intrinsics.dtype
    v = (torch.arange(hf, device=dev, dtype=dt) + 0.5) * sy  # (h',)
    u = (torch.arange(wf, device=dev, dtype=dt) + 0.5) * sx  # (w',)
    ones = torch.ones(hf, wf, device=dev, dtype=dt)
    # (h', w', 3) homogeneous pixel centres of the feature cells
    pix = torch.stack([u[None, :].expand(hf, wf), v[:, None].expand(hf, wf), ones], dim=-1)
    # (B, C, h', w', 3) rays K^-1 (u, v, 1), optical z = 1
    rays = torch.einsum("bcij,hwj->bchwi", torch.linalg.inv(intrinsics), pix)
    # (B, C, D, h', w', 3) optical-frame points at the bin depths
    pts_opt = rays[:, :, None] * depths.to(dt)[None, None, :, None, None, None]
    rot = camera_to_ego[:, :, None, None, None, :3, :3]
    trans = camera_to_ego[:, :, None, None, None, :3, 3]
    return (rot @ pts_opt[..., None])[..., 0] + trans


def bev_cell_index(
    points: Tensor, grid: RasterSpec, z_min: float, z_max: float
) -> tuple[Tensor, Tensor]:
    """Flat BEV cell ``row * W + col`` ``(...)`` long of ego points ``(..., 3)`` [m] and whether
    the point is on the grid and in ``[z_min, z_max)`` ``(...)`` bool (invalid points get 0)."""
    res = float(grid.resolution)
    rows = torch.floor(grid.origin_row - points[..., 0] / res)
    cols = torch.floor(grid.origin_col - points[..., 1] / res)
    z = points[..., 2]
    valid = (
        (rows >= 0)
        & (rows < grid.height)
        & (cols >= 0)
        & (cols < grid.width)
        & (z >= z_min)
        & (z < z_max)
    )
    flat = torch.where(valid, rows * grid.width + cols, torch.zeros_like(rows)).long()
    return flat, valid


def lift_splat(
    depth_probs: Tensor,
    context: Tensor,
    intrinsics: Tensor,
    camera_to_ego: Tensor,
    mask: Tensor,
    depths: Tensor,
    image_stride: tuple[float, float],
    grid: RasterSpec,
    z_min: float,
    z_max: float,
) -> Tensor:
    """Sum-pool the lifted camera features onto the BEV grid → ``(B, C_ctx, H, W)``.

    ``depth_probs (B, C, D, h', w')`` (a distribution over the bins ``depths (D,)`` [m]),
    ``context (B, C, C_ctx, h', w')``, ``intrinsics (B, C, 3, 3)``, ``camera_to_ego
    (B, C, 4, 4)``, ``mask (B, C)`` bool. Frustum point ``(k, i, j)`` of camera ``c`` adds
    ``depth_probs[b, c, k, i, j] * context[b, c, :, i, j]`` to its cell; masked cameras (whose
    calibration may be anything, zeros included) add nothing. The sum is one ``index_add``
    into a buffer with an extra dump row for dropped points: deterministic on CPU, and on CUDA
    under ``torch.use_deterministic_algorithms(True)``.
    """
    b, _, _, hf, wf = depth_probs.shape
    cc = context.shape[2]
    eye3 = torch.eye(3, dtype=intrinsics.dtype, device=intrinsics.device)
    eye4 = torch.eye(4, dtype=camera_to_ego.dtype, device=camera_to_ego.device)
    m = mask[:, :, None, None]
    k_safe = torch.where(m, intrinsics, eye3)
    t_safe = torch.where(m, camera_to_ego, eye4)
    pts = frustum_points(k_safe, t_safe, depths, (hf, wf), image_stride)  # (B, C, D, h', w', 3)
    flat, valid = bev_cell_index(pts, grid, z_min, z_max)  # (B, C, D, h', w')
    valid = valid & mask[:, :, None, None, None]
    n_cells = grid.height * grid.width
    batch_offset = torch.arange(b, device=flat.device)[:, None, None, None, None] * n_cells
    target = torch.where(valid, flat + batch_offset, torch.full_like(flat, b * n_cells))
    # (B, C, D, h', w', C_ctx): outer product of depth probability and context
    lifted = depth_probs[..., None] * context.permute(0, 1, 3, 4, 2)[:, :, None]
    bev = lifted.new_zeros(b * n_cells + 1, cc)
    bev = bev.index_add(0, target.reshape(-1), lifted.reshape(-1, cc))
    return bev[:-1].reshape(b, grid.height, grid.width, cc).permute(0, 3, 1, 2)


class ImageNet(nn.Module):
    """Shared per-camera CNN ``(N, 3, h, w)`` in [0, 1] → depth logits ``(N, D, h', w')`` and
    context ``(N, C_ctx, h', w')``; each stage (3x3 stride-2 conv, 3x3 conv) halves the size."""

    def __init__(self, cfg: CameraEncoderConfig):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in cfg.image_channels:
            layers.append(conv_norm_relu(c_in, c_out, stride=2))
            layers.append(conv_norm_relu(c_out, c_out))
            c_in = c_out
        self.backbone = nn.Sequential(*layers)
        self.depth_bins = cfg.depth_bins
        self.head = nn.Conv2d(c_in, cfg.depth_bins + cfg.context_channels, 1)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = self.head(self.backbone((images - _IMAGE_MEAN) / _IMAGE_STD))
        return x[:, : self.depth_bins], x[:, self.depth_bins :]


class CameraEncoder(nn.Module):
    """Camera images → camera BEV feature ``(B, C_cam, H / s, W / s)`` (lift-splat)."""

    depth_centres: Tensor

    def __init__(self, cfg: CameraEncoderConfig):
        super().__init__()
        if not isinstance(cfg, CameraEncoderConfig):
            raise TypeError(f"CameraEncoder: cfg must be CameraEncoderConfig, got {type(cfg)}")
        self.cfg = cfg
        self.image_net = ImageNet(cfg)
        self.register_buffer("depth_centres", depth_bin_centres(cfg), persistent=False)
        self.bev_net = BevCnn(
            cfg.context_channels, cfg.hidden_channels, cfg.out_channels, cfg.stride
        )

    def lift(
        self, images: Tensor, intrinsics: Tensor, camera_to_ego: Tensor, mask: Tensor
    ) -> Tensor:
        """The splatted context ``(B, C_ctx, H, W)`` before the BEV CNN (see :func:`lift_splat`)."""
        cfg = self.cfg
        check_shape("images", images, (None, None, 3, cfg.image_height, cfg.image_width))
        b, c = images.shape[:2]
        check_shape("intrinsics", intrinsics, (b, c, 3, 3))
        check_shape("camera_to_ego", camera_to_ego, (b, c, 4, 4))
        check_shape("camera mask", mask, (b, c))
        if mask.dtype != torch.bool:
            raise ValueError(f"camera mask must be bool, got {mask.dtype}")
        m = mask[:, :, None, None, None]
        # absent cameras may hold anything (zeros, NaN): they never reach the network
        imgs = torch.where(m, images, torch.zeros((), dtype=images.dtype, device=images.device))
        depth_logits, context = self.image_net(imgs.flatten(0, 1))
        hf, wf = cfg.feature_shape
        depth_probs = depth_logits.softmax(dim=1).reshape(b, c, cfg.depth_bins, hf, wf)
        context = context.reshape(b, c, cfg.context_channels, hf, wf)
        stride = float(cfg.image_stride)
        return lift_splat(
            depth_probs,
            context,
            intrinsics.to(images.dtype),
            camera_to_ego.to(images.dtype),
            mask,
            self.depth_centres,
            (stride, stride),
            cfg.grid,
            cfg.z_min,
            cfg.z_max,
        )

    def forward(
        self, images: Tensor, intrinsics: Tensor, camera_to_ego: Tensor, mask: Tensor
    ) -> Tensor:
        """``images (B, C, 3, h, w)`` float in [0, 1], ``intrinsics (B, C, 3, 3)`` (K of the
        ``h x w`` image), ``camera_to_ego (B, C, 4, 4)``, ``mask (B, C)`` bool →
        ``(B, C_cam, H / s, W / s)``; zeros for a sample whose cameras are all masked."""
        bev = self.bev_net(self.lift(images, intrinsics, camera_to_ego, mask))
        any_camera = mask.any(dim=1).to(bev.dtype)[:, None, None, None]
        out: Tensor = bev * any_camera
        return out
