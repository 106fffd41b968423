"""BEV segmentation head: shape, loss, IoU."""

from __future__ import annotations

import math

import pytest
import torch

from kaido.logs.sample import BevClass
from kaido.perception.config import SegmentationHeadConfig
from kaido.perception.segmentation import (
    SegmentationHead,
    iou_counts,
    segmentation_iou,
    segmentation_loss,
)

CFG = SegmentationHeadConfig()


def test_logits_at_full_grid_resolution_and_gradients() -> None:
    head = SegmentationHead(CFG)
    bev = torch.randn(2, CFG.in_channels, 32, 32, requires_grad=True)
    logits = head(bev)
    assert logits.shape == (2, len(BevClass), 64, 64)
    target = torch.rand(2, 4, 64, 64) < 0.3
    losses = segmentation_loss(logits, target.to(torch.uint8), CFG)
    assert set(losses) == {"bce", "dice", "total"}
    losses["total"].backward()
    assert bev.grad is not None and bev.grad.abs().sum() > 0
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_loss_is_small_for_confident_correct_logits() -> None:
    target = (torch.rand(2, 4, 64, 64) < 0.3).float()
    good = segmentation_loss((target * 2 - 1) * 20, target, CFG)
    bad = segmentation_loss(-(target * 2 - 1) * 20, target, CFG)
    assert good["total"] < 1e-3
    assert bad["bce"] > 10 and bad["dice"] > 0.99


def test_iou_hand_computed() -> None:
    logits = torch.full((1, 4, 2, 3), -1.0)
    target = torch.zeros(1, 4, 2, 3)
    # class 0: predicted 3 pixels, true 2, overlap 1 -> IoU 1 / 4
    logits[0, 0, 0, :] = 1.0
    target[0, 0, 0, 0] = 1.0
    target[0, 0, 1, 0] = 1.0
    # class 1: perfect on 2 pixels
    logits[0, 1, 1, 1:] = 1.0
    target[0, 1, 1, 1:] = 1.0
    # class 2: nothing true, one predicted -> 0; class 3: nothing at all -> NaN
    logits[0, 2, 0, 0] = 1.0
    inter, union = iou_counts(logits, target)
    assert inter.tolist() == [1, 2, 0, 0] and union.tolist() == [4, 2, 1, 0]
    iou = segmentation_iou(logits, target)
    assert iou[:3].tolist() == pytest.approx([0.25, 1.0, 0.0])
    assert math.isnan(iou[3].item())


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="target must have shape"):
        segmentation_loss(torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 9), CFG)
    with pytest.raises(ValueError, match="bev must have shape"):
        SegmentationHead(CFG)(torch.zeros(1, CFG.in_channels, 64, 64))
