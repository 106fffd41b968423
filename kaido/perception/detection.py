"""CenterPoint-style BEV detection: head, targets, losses, decoding and the nuScenes-style AP.

The head works on the fused BEV feature at stride ``s``: heatmap cell ``(i, j)`` covers grid
cells ``s*i .. s*i + s - 1`` (rows) and ``s*j ..`` (columns). A box centre ``(x, y)`` [m] has
continuous heatmap coordinates ``(R, C) = ((origin_row - x / res) / s, (origin_col - y / res) /
s)``; its cell is ``(floor(R), floor(C))``.

Targets per box (:class:`BoxRegression`, 8 values at the box's centre cell): the sub-cell offset
``(R - floor(R), C - floor(C))`` in ``[0, 1)``, ``log(length)``, ``log(width)``, ``sin(yaw)``,
``cos(yaw)``, ``vx``, ``vy``. The heatmap target of class ``k`` is the max over that class's boxes
of a gaussian centred on the box's centre cell (value 1 there), radius from CenterNet's rule on
the box size in cells (at least ``min_radius``), ``sigma = (2 r + 1) / 6``, zero beyond ``r``
cells (Chebyshev). Losses: CenterNet's penalty-reduced focal loss on the heatmap, normalised by
the number of boxes, and L1 on the regression at the boxes' centre cells.

Decoding: sigmoid heatmap → keep cells equal to the max of their ``nms_kernel`` window → top-k
over classes and cells → keep scores ``>= score_threshold`` → boxes in the ego frame
(:class:`~kaido.logs.sample.BoxField`).

:func:`detection_ap` is nuScenes' detection AP: per class and distance threshold, predictions
(over all samples) in descending score greedily take the nearest untaken ground-truth box of the
same class and sample whose centre is closer than the threshold (2D centre distance); the
precision at 101 recall points ``0, 0.01, .., 1`` (``np.interp``, 0 past the highest recall) is
clipped to ``min_precision``, the points above ``min_recall`` averaged and normalised:
``AP = mean(max(p - min_precision, 0)) / (1 - min_precision)``. The AP of a class is its mean
over the thresholds 0.5, 1, 2, 4 m and the mAP the mean over classes. Unlike nuScenes, a class
without any ground truth has AP NaN and is left out of the mAP (nuScenes would count it 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kaido.logs.sample import BoxField, DetectionClass
from kaido.perception.config import DetectionHeadConfig
from kaido.perception.layers import check_shape, conv_norm_relu

__all__ = [
    "AP_DISTANCE_THRESHOLDS",
    "BoxRegression",
    "DetectionHead",
    "DetectionMetrics",
    "DetectionOutput",
    "DetectionTargets",
    "decode_detections",
    "detection_ap",
    "detection_loss",
    "detection_targets",
    "gaussian_radius",
]

AP_DISTANCE_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
"""Centre-distance matching thresholds of the AP [m] (nuScenes')."""

_HEATMAP_PRIOR = 0.1
"""Initial sigmoid of the heatmap logits (CenterNet's -2.19 bias)."""


class BoxRegression(IntEnum):
    """Channels of the regression map ``(B, 8, h, w)`` and of the regression targets."""

    OFFSET_ROW = 0
    """Sub-cell row offset in [0, 1) [heatmap cells]."""
    OFFSET_COL = 1
    """Sub-cell column offset in [0, 1) [heatmap cells]."""
    LOG_LENGTH = 2
    """log of the box length [log m]."""
    LOG_WIDTH = 3
    """log of the box width [log m]."""
    SIN_YAW = 4
    COS_YAW = 5
    VX = 6
    """[m/s] ego frame."""
    VY = 7
    """[m/s] ego frame."""


NUM_REGRESSION = len(BoxRegression)
_MIN_SIZE = 0.05  # [m] sizes are clamped to this before the log


class DetectionOutput(NamedTuple):
    """What the head predicts."""

    heatmap: Tensor
    """``(B, K, h, w)`` logits of the centre heatmap, one channel per ``DetectionClass``."""
    regression: Tensor
    """``(B, 8, h, w)`` :class:`BoxRegression` at every cell."""


class DetectionTargets(NamedTuple):
    """Training targets of a batch (see the module docstring)."""

    heatmap: Tensor
    """``(B, K, h, w)`` gaussian heatmaps in [0, 1]."""
    regression: Tensor
    """``(B, M, 8)`` :class:`BoxRegression` per box."""
    cell: Tensor
    """``(B, M)`` long: flat heatmap cell ``row * w + col`` of each box centre (0 if unused)."""
    mask: Tensor
    """``(B, M)`` bool: box used (valid row, known class, centre on the grid)."""


class DetectionHead(nn.Module):
    """Shared 3x3 conv, then a heatmap branch (K logits) and a regression branch (8 values),
    each a 3x3 conv → ReLU → 1x1 conv. The heatmap bias starts at ``logit(0.1)``."""

    def __init__(self, cfg: DetectionHeadConfig):
        super().__init__()
        if not isinstance(cfg, DetectionHeadConfig):
            raise TypeError(f"DetectionHead: cfg must be DetectionHeadConfig, got {type(cfg)}")
        if cfg.num_classes != len(DetectionClass):
            raise ValueError(
                f"DetectionHead: num_classes is {cfg.num_classes}, the sample has "
                f"{len(DetectionClass)} DetectionClass values"
            )
        self.cfg = cfg
        c = cfg.hidden_channels
        self.shared = conv_norm_relu(cfg.in_channels, c)
        self.heatmap = nn.Sequential(conv_norm_relu(c, c), nn.Conv2d(c, cfg.num_classes, 1))
        self.regression = nn.Sequential(conv_norm_relu(c, c), nn.Conv2d(c, NUM_REGRESSION, 1))
        last = self.heatmap[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, math.log(_HEATMAP_PRIOR / (1.0 - _HEATMAP_PRIOR)))

    def forward(self, bev: Tensor) -> DetectionOutput:
        """``bev (B, C_in, H / s, W / s)`` → :class:`DetectionOutput`."""
        cfg = self.cfg
        hs, ws = cfg.grid.height // cfg.stride, cfg.grid.width // cfg.stride
        check_shape("bev", bev, (None, cfg.in_channels, hs, ws))
        x = self.shared(bev)
        return DetectionOutput(self.heatmap(x), self.regression(x))


def gaussian_radius(length: Tensor, width: Tensor, min_overlap: float) -> Tensor:
    """CenterNet's gaussian radius (CenterPoint's ``gaussian_radius``) of boxes of ``length`` and
    ``width`` (any unit, e.g. heatmap cells; same shape): the largest corner shift that keeps
    the IoU with the true box at ``min_overlap`` in all three of CornerNet's cases."""
    h, w = length, width
    b1 = h + w
    c1 = w * h * (1.0 - min_overlap) / (1.0 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4.0 * c1)) / 2.0
    b2 = 2.0 * (h + w)
    c2 = (1.0 - min_overlap) * w * h
    r2 = (b2 + torch.sqrt(b2**2 - 16.0 * c2)) / 2.0
    a3 = 4.0 * min_overlap
    b3 = -2.0 * min_overlap * (h + w)
    c3 = (min_overlap - 1.0) * w * h
    r3 = (b3 + torch.sqrt(b3**2 - 4.0 * a3 * c3)) / 2.0
    return torch.minimum(torch.minimum(r1, r2), r3)


def _continuous_cells(xy: Tensor, cfg: DetectionHeadConfig) -> tuple[Tensor, Tensor]:
    """Heatmap coordinates ``(R, C)`` of ego points ``(..., 2)`` [m]."""
    grid = cfg.grid
    res = float(grid.resolution)
    rows = (grid.origin_row - xy[..., 0] / res) / cfg.stride
    cols = (grid.origin_col - xy[..., 1] / res) / cfg.stride
    return rows, cols


def detection_targets(
    boxes: Tensor, box_class: Tensor, box_mask: Tensor, cfg: DetectionHeadConfig
) -> DetectionTargets:
    """Targets of ``boxes (B, M, 7)`` (:class:`~kaido.logs.sample.BoxField`, ego frame),
    ``box_class (B, M)`` long (``DetectionClass``, -1 padding) and ``box_mask (B, M)`` bool."""
    check_shape("boxes", boxes, (None, None, len(BoxField)))
    b, m = boxes.shape[:2]
    check_shape("box_class", box_class, (b, m))
    check_shape("box_mask", box_mask, (b, m))
    hs, ws = cfg.grid.height // cfg.stride, cfg.grid.width // cfg.stride
    boxes = boxes.float()
    rows, cols = _continuous_cells(boxes[..., [BoxField.X, BoxField.Y]], cfg)
    r0 = torch.floor(rows)
    c0 = torch.floor(cols)
    cls = box_class.long()
    mask = (
        box_mask.bool()
        & (cls >= 0)
        & (cls < cfg.num_classes)
        & (r0 >= 0)
        & (r0 < hs)
        & (c0 >= 0)
        & (c0 < ws)
        & torch.isfinite(boxes).all(dim=-1)
    )
    cell_m = float(cfg.grid.resolution) * cfg.stride
    length = boxes[..., BoxField.LENGTH].clamp(min=_MIN_SIZE)
    width = boxes[..., BoxField.WIDTH].clamp(min=_MIN_SIZE)
    radius = gaussian_radius(length / cell_m, width / cell_m, cfg.gaussian_overlap)
    radius = torch.clamp(torch.floor(radius), min=float(cfg.min_radius))  # (B, M)
    sigma = (2.0 * radius + 1.0) / 6.0
    grid_r = torch.arange(hs, dtype=torch.float32, device=boxes.device)
    grid_c = torch.arange(ws, dtype=torch.float32, device=boxes.device)
    zero = torch.zeros((), device=boxes.device)
    r_safe = torch.where(mask, r0, zero)
    c_safe = torch.where(mask, c0, zero)
    dr = grid_r[None, None, :, None] - r_safe[..., None, None]  # (B, M, h, 1)
    dc = grid_c[None, None, None, :] - c_safe[..., None, None]  # (B, M, 1, w)
    rad = radius[..., None, None]
    gauss = torch.exp(-(dr**2 + dc**2) / (2.0 * sigma[..., None, None] ** 2))
    inside = (dr.abs() <= rad) & (dc.abs() <= rad) & mask[..., None, None]
    gauss = torch.where(inside, gauss, zero)  # (B, M, h, w)
    onehot = F.one_hot(torch.where(mask, cls, 0), cfg.num_classes).to(gauss.dtype)  # (B, M, K)
    onehot = onehot * mask[..., None].to(gauss.dtype)
    heatmap = (
        (gauss[:, :, None] * onehot[..., None, None]).amax(dim=1)
        if m
        else gauss.new_zeros(b, cfg.num_classes, hs, ws)
    )
    yaw = boxes[..., BoxField.YAW]
    regression = torch.stack(
        [
            rows - r0,
            cols - c0,
            torch.log(length),
            torch.log(width),
            torch.sin(yaw),
            torch.cos(yaw),
            boxes[..., BoxField.VX],
            boxes[..., BoxField.VY],
        ],
        dim=-1,
    )
    regression = torch.where(mask[..., None], regression, zero)
    index = torch.where(mask, r0 * ws + c0, zero).long()
    return DetectionTargets(heatmap, regression, index, mask)


def _gather_cells(maps: Tensor, index: Tensor) -> Tensor:
    """Values ``(B, M, C)`` of ``maps (B, C, h, w)`` at flat cells ``index (B, M)``."""
    b, c = maps.shape[:2]
    flat = maps.reshape(b, c, -1)
    return flat.gather(2, index[:, None, :].expand(b, c, index.shape[1])).transpose(1, 2)


def detection_loss(
    output: DetectionOutput, targets: DetectionTargets, cfg: DetectionHeadConfig
) -> dict[str, Tensor]:
    """``{"heatmap", "regression", "total"}``: CenterNet focal loss (sum over cells / number of
    boxes, at least 1), L1 of the regression at the box centres (sum over the 8 values / number
    of boxes) and their weighted sum."""
    logits = output.heatmap
    target = targets.heatmap
    check_shape("heatmap", logits, tuple(target.shape))
    pos = target >= 1.0
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos_loss = log_p * (1.0 - p) ** cfg.focal_alpha
    neg_loss = log_not_p * p**cfg.focal_alpha * (1.0 - target) ** cfg.focal_beta
    n = targets.mask.sum().clamp(min=1).to(logits.dtype)
    heat = -torch.where(pos, pos_loss, neg_loss).sum() / n
    pred = _gather_cells(output.regression, targets.cell)  # (B, M, 8)
    l1 = (pred - targets.regression).abs() * targets.mask[..., None].to(pred.dtype)
    reg = l1.sum() / n
    total = cfg.heatmap_weight * heat + cfg.regression_weight * reg
    return {"heatmap": heat, "regression": reg, "total": total}


def decode_detections(
    heatmap: Tensor, regression: Tensor, cfg: DetectionHeadConfig
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Detections per sample of ``heatmap (B, K, h, w)`` logits and ``regression (B, 8, h, w)``:
    ``(boxes (n, 7) BoxField in the ego frame, scores (n,) descending, classes (n,) long)``,
    ``n <= max_detections`` (see the module docstring); detached from the graph."""
    b, k, hs, ws = heatmap.shape
    check_shape("regression", regression, (b, NUM_REGRESSION, hs, ws))
    with torch.no_grad():
        heat = torch.sigmoid(heatmap.float())
        pad = cfg.nms_kernel // 2
        peak = F.max_pool2d(heat, cfg.nms_kernel, stride=1, padding=pad)
        heat = torch.where(heat == peak, heat, torch.zeros((), device=heat.device))
        top = min(cfg.max_detections, k * hs * ws)
        scores, flat = heat.reshape(b, -1).topk(top, dim=1)  # (B, top)
        classes = flat // (hs * ws)
        cell = flat % (hs * ws)
        reg = _gather_cells(regression.float(), cell)  # (B, top, 8)
        rows = (cell // ws).float() + reg[..., BoxRegression.OFFSET_ROW]
        cols = (cell % ws).float() + reg[..., BoxRegression.OFFSET_COL]
        grid = cfg.grid
        res = float(grid.resolution)
        boxes = torch.empty(b, top, len(BoxField), device=heat.device)
        boxes[..., BoxField.X] = (grid.origin_row - rows * cfg.stride) * res
        boxes[..., BoxField.Y] = (grid.origin_col - cols * cfg.stride) * res
        boxes[..., BoxField.LENGTH] = torch.exp(reg[..., BoxRegression.LOG_LENGTH].clamp(max=10.0))
        boxes[..., BoxField.WIDTH] = torch.exp(reg[..., BoxRegression.LOG_WIDTH].clamp(max=10.0))
        boxes[..., BoxField.YAW] = torch.atan2(
            reg[..., BoxRegression.SIN_YAW], reg[..., BoxRegression.COS_YAW]
        )
        boxes[..., BoxField.VX] = reg[..., BoxRegression.VX]
        boxes[..., BoxField.VY] = reg[..., BoxRegression.VY]
        keep = scores >= cfg.score_threshold
        return [(boxes[i][keep[i]], scores[i][keep[i]], classes[i][keep[i]]) for i in range(b)]


# -- the AP metric ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionMetrics:
    """Result of :func:`detection_ap`."""

    ap: npt.NDArray[np.float64]
    """``(K, T)`` AP per class and distance threshold (NaN for a class without ground truth)."""
    thresholds: tuple[float, ...]
    """The T distance thresholds [m]."""

    @property
    def class_ap(self) -> npt.NDArray[np.float64]:
        """``(K,)`` AP per class: the mean over the thresholds."""
        out: npt.NDArray[np.float64] = self.ap.mean(axis=1)
        return out

    @property
    def mean_ap(self) -> float:
        """mAP: the mean of :attr:`class_ap` over the classes with ground truth (NaN if none)."""
        ap = self.class_ap
        ok = ~np.isnan(ap)
        return float(ap[ok].mean()) if ok.any() else math.nan

    def as_dict(self) -> dict[str, float]:
        """``{"mAP": .., "AP/vehicle": .., ...}`` with lower-case class names."""
        out = {"mAP": self.mean_ap}
        for k, value in enumerate(self.class_ap):
            name = DetectionClass(k).name.lower() if k < len(DetectionClass) else str(k)
            out[f"AP/{name}"] = float(value)
        return out


def _as_numpy(value: Any, name: str, dtype: type, shape_tail: tuple[int, ...]) -> npt.NDArray[Any]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr: npt.NDArray[Any] = np.asarray(value, dtype=dtype)
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        tail = "".join(f", {s}" for s in shape_tail)
        raise ValueError(f"{name} must have shape (n{tail}), got {arr.shape}")
    return arr


def _average_precision(
    tp: npt.NDArray[np.bool_], n_gt: int, min_recall: float, min_precision: float
) -> float:
    """nuScenes' ``accumulate`` + ``calc_ap`` of score-sorted match flags ``tp (n,)``."""
    if n_gt == 0:
        return math.nan
    if len(tp) == 0:
        return 0.0
    tps = np.cumsum(tp).astype(np.float64)
    fps = np.cumsum(~tp).astype(np.float64)
    precision = tps / (tps + fps)
    recall = tps / float(n_gt)
    recall_points = np.linspace(0.0, 1.0, 101)
    prec = np.interp(recall_points, recall, precision, right=0.0)
    prec = prec[round(100 * min_recall) + 1 :] - min_precision
    prec[prec < 0.0] = 0.0
    return float(np.mean(prec)) / (1.0 - min_precision)


def detection_ap(
    predictions: Sequence[tuple[Any, Any, Any]],
    ground_truth: Sequence[tuple[Any, Any]],
    num_classes: int = len(DetectionClass),
    thresholds: Sequence[float] = AP_DISTANCE_THRESHOLDS,
    min_recall: float = 0.1,
    min_precision: float = 0.1,
) -> DetectionMetrics:
    """nuScenes-style centre-distance AP (see the module docstring).

    ``predictions``: per sample ``(boxes (n, 7) BoxField, scores (n,), classes (n,))`` (what
    :func:`decode_detections` gives; tensors or arrays). ``ground_truth``: per sample ``(boxes
    (g, 7), classes (g,))`` (only valid rows). Ties in score keep the order of samples, then of
    the predictions within a sample.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(
            f"detection_ap: {len(predictions)} prediction samples but {len(ground_truth)} "
            "ground-truth samples"
        )
    if not 0.0 <= min_recall < 1.0 or not 0.0 <= min_precision < 1.0:
        raise ValueError(
            f"detection_ap: min_recall and min_precision must be in [0, 1), got {min_recall}, "
            f"{min_precision}"
        )
    ths = tuple(float(t) for t in thresholds)
    if not ths or any(not t > 0.0 for t in ths):
        raise ValueError(f"detection_ap: thresholds must be positive, got {thresholds}")
    nb = len(BoxField)
    preds = []
    gts = []
    for i, ((pb, ps, pc), (gb, gc)) in enumerate(zip(predictions, ground_truth, strict=True)):
        boxes = _as_numpy(pb, f"predictions[{i}] boxes", np.float64, (nb,))
        scores = _as_numpy(ps, f"predictions[{i}] scores", np.float64, ())
        classes = _as_numpy(pc, f"predictions[{i}] classes", np.int64, ())
        if not len(boxes) == len(scores) == len(classes):
            raise ValueError(
                f"predictions[{i}]: {len(boxes)} boxes, {len(scores)} scores, "
                f"{len(classes)} classes"
            )
        g_boxes = _as_numpy(gb, f"ground_truth[{i}] boxes", np.float64, (nb,))
        g_classes = _as_numpy(gc, f"ground_truth[{i}] classes", np.int64, ())
        if len(g_boxes) != len(g_classes):
            raise ValueError(
                f"ground_truth[{i}]: {len(g_boxes)} boxes but {len(g_classes)} classes"
            )
        preds.append((boxes[:, [BoxField.X, BoxField.Y]], scores, classes))
        gts.append((g_boxes[:, [BoxField.X, BoxField.Y]], g_classes))

    ap = np.full((num_classes, len(ths)), math.nan)
    for k in range(num_classes):
        gt_k = [xy[c == k] for xy, c in gts]
        n_gt = sum(len(g) for g in gt_k)
        sample = np.concatenate(
            [np.full(int((c == k).sum()), i, np.int64) for i, (_, _, c) in enumerate(preds)]
            or [np.zeros(0, np.int64)]
        )
        xy = np.concatenate([p[c == k] for p, _, c in preds] or [np.zeros((0, 2))])
        sc = np.concatenate([s[c == k] for _, s, c in preds] or [np.zeros(0)])
        order = np.argsort(-sc, kind="stable")
        for t, th in enumerate(ths):
            taken = [np.zeros(len(g), bool) for g in gt_k]
            tp = np.zeros(len(order), bool)
            for rank, j in enumerate(order):
                g = gt_k[sample[j]]
                if len(g) == 0:
                    continue
                dist = np.hypot(g[:, 0] - xy[j, 0], g[:, 1] - xy[j, 1])
                dist[taken[sample[j]]] = np.inf
                best = int(np.argmin(dist))
                if dist[best] < th:
                    taken[sample[j]][best] = True
                    tp[rank] = True
            ap[k, t] = _average_precision(tp, n_gt, min_recall, min_precision)
    return DetectionMetrics(ap, ths)
