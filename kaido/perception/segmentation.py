"""BEV segmentation head: per-class logits ``(B, 4, H, W)`` (:class:`~kaido.logs.sample.BevClass`)
at the full grid resolution, its loss (binary cross-entropy + soft dice) and IoU per class.

The classes overlap (a vehicle stands on drivable area), so each channel is an independent
binary mask: a pixel is predicted ``1`` where its logit is above 0 (probability 0.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kaido.logs.sample import BevClass
from kaido.perception.config import SegmentationHeadConfig
from kaido.perception.layers import check_shape, conv_norm_relu

__all__ = ["SegmentationHead", "iou_counts", "segmentation_iou", "segmentation_loss"]

_DICE_EPS = 1.0


class SegmentationHead(nn.Module):
    """3x3 conv → bilinear upsampling by ``s`` → 3x3 conv → 1x1 conv to the class logits."""

    def __init__(self, cfg: SegmentationHeadConfig):
        super().__init__()
        if not isinstance(cfg, SegmentationHeadConfig):
            raise TypeError(
                f"SegmentationHead: cfg must be SegmentationHeadConfig, got {type(cfg)}"
            )
        if cfg.num_classes != len(BevClass):
            raise ValueError(
                f"SegmentationHead: num_classes is {cfg.num_classes}, the sample has "
                f"{len(BevClass)} BevClass values"
            )
        self.cfg = cfg
        c = cfg.hidden_channels
        self.reduce = conv_norm_relu(cfg.in_channels, c)
        self.refine = conv_norm_relu(c, c)
        self.out = nn.Conv2d(c, cfg.num_classes, 1)

    def forward(self, bev: Tensor) -> Tensor:
        """``bev (B, C_in, H / s, W / s)`` → logits ``(B, K, H, W)``."""
        cfg = self.cfg
        hs, ws = cfg.grid.height // cfg.stride, cfg.grid.width // cfg.stride
        check_shape("bev", bev, (None, cfg.in_channels, hs, ws))
        x = self.reduce(bev)
        if cfg.stride > 1:
            x = F.interpolate(
                x, scale_factor=float(cfg.stride), mode="bilinear", align_corners=False
            )
        out: Tensor = self.out(self.refine(x))
        return out


def segmentation_loss(
    logits: Tensor, target: Tensor, cfg: SegmentationHeadConfig
) -> dict[str, Tensor]:
    """``{"bce", "dice", "total"}`` of ``logits (B, K, H, W)`` against 0/1 ``target (B, K, H,
    W)`` (any dtype): mean binary cross-entropy over all pixels, soft dice loss ``1 - (2 |P T| +
    1) / (|P| + |T| + 1)`` per class over the batch, averaged over classes, and the weighted
    sum."""
    check_shape("target", target, tuple(logits.shape))
    t = target.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, t)
    p = torch.sigmoid(logits)
    dims = (0, 2, 3)
    inter = (p * t).sum(dim=dims)
    dice = 1.0 - (2.0 * inter + _DICE_EPS) / (p.sum(dim=dims) + t.sum(dim=dims) + _DICE_EPS)
    dice_mean = dice.mean()
    return {
        "bce": bce,
        "dice": dice_mean,
        "total": cfg.bce_weight * bce + cfg.dice_weight * dice_mean,
    }


def iou_counts(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-class pixel counts ``(intersection (K,), union (K,))`` long of the predicted masks
    (logit > 0) of ``logits (B, K, H, W)`` and the 0/1 ``target (B, K, H, W)``; sum them over
    batches for a dataset IoU."""
    check_shape("target", target, tuple(logits.shape))
    with torch.no_grad():
        pred = logits > 0
        truth = target > 0
        inter = (pred & truth).sum(dim=(0, 2, 3))
        union = (pred | truth).sum(dim=(0, 2, 3))
    return inter, union


def segmentation_iou(logits: Tensor, target: Tensor) -> Tensor:
    """IoU ``(K,)`` per class of one batch (:func:`iou_counts`); NaN where the union is empty."""
    inter, union = iou_counts(logits, target)
    iou = inter.double() / union.double()
    return torch.where(union > 0, iou, torch.full_like(iou, float("nan")))
