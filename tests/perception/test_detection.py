"""Detection: targets, losses, decoding and the nuScenes-style AP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kaido.logs.sample import BoxField, DetectionClass
from kaido.perception.config import DetectionHeadConfig
from kaido.perception.detection import (
    BoxRegression,
    DetectionHead,
    DetectionOutput,
    DetectionTargets,
    decode_detections,
    detection_ap,
    detection_loss,
    detection_targets,
    gaussian_radius,
)

CFG = DetectionHeadConfig()


def centerpoint_gaussian_radius(det_size: tuple[float, float], min_overlap: float) -> float:
    """CenterPoint's ``gaussian_radius`` (det3d/core/utils/center_utils.py), transcribed."""
    height, width = det_size
    a1 = 1
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    sq1 = math.sqrt(b1**2 - 4 * a1 * c1)
    r1 = (b1 + sq1) / 2
    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    sq2 = math.sqrt(b2**2 - 4 * a2 * c2)
    r2 = (b2 + sq2) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    sq3 = math.sqrt(b3**2 - 4 * a3 * c3)
    r3 = (b3 + sq3) / 2
    return min(r1, r2, r3)


def test_gaussian_radius_matches_centerpoint() -> None:
    sizes = [(1.0, 1.0), (2.25, 1.0), (0.4, 0.3), (8.0, 1.5)]
    for overlap in (0.1, 0.5, 0.7):
        got = gaussian_radius(
            torch.tensor([s[0] for s in sizes], dtype=torch.float64),
            torch.tensor([s[1] for s in sizes], dtype=torch.float64),
            overlap,
        )
        want = [centerpoint_gaussian_radius(s, overlap) for s in sizes]
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def make_boxes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two samples; sample 0 has a vehicle, a pedestrian and a cyclist, sample 1 a vehicle, a
    padding row and a box off the grid."""
    boxes = torch.zeros(2, 4, 7)
    boxes[0, 0] = torch.tensor([10.3, -4.6, 4.5, 1.9, 0.3, 5.0, -1.0])
    boxes[0, 1] = torch.tensor([3.7, 6.2, 0.6, 0.6, -2.0, 1.0, 0.5])
    boxes[0, 2] = torch.tensor([-8.9, 20.1, 1.8, 0.7, 3.0, -2.0, 0.0])
    boxes[1, 0] = torch.tensor([30.0, 0.4, 4.8, 2.0, -0.1, 0.0, 0.0])
    boxes[1, 2] = torch.tensor([60.0, 0.0, 4.0, 2.0, 0.0, 0.0, 0.0])  # x > 48 m: off the grid
    classes = torch.tensor([[0, 1, 2, -1], [0, -1, 0, -1]])
    mask = torch.tensor([[True, True, True, False], [True, False, True, False]])
    return boxes, classes, mask


def test_targets_put_a_unit_peak_at_each_box_centre_cell() -> None:
    boxes, classes, mask = make_boxes()
    t = detection_targets(boxes, classes, mask, CFG)
    assert t.heatmap.shape == (2, 3, 32, 32)
    assert t.mask.tolist() == [[True, True, True, False], [True, False, False, False]]
    grid = CFG.grid
    for b, m in ((0, 0), (0, 1), (0, 2), (1, 0)):
        x, y = boxes[b, m, 0].item(), boxes[b, m, 1].item()
        r = (grid.origin_row - x / grid.resolution) / CFG.stride
        c = (grid.origin_col - y / grid.resolution) / CFG.stride
        k = int(classes[b, m])
        assert t.heatmap[b, k, int(r), int(c)] == 1.0
        assert t.cell[b, m] == int(r) * 32 + int(c)
        reg = t.regression[b, m]
        assert reg[BoxRegression.OFFSET_ROW].item() == pytest.approx(r - math.floor(r), abs=1e-5)
        assert reg[BoxRegression.OFFSET_COL].item() == pytest.approx(c - math.floor(c), abs=1e-5)
        assert reg[BoxRegression.LOG_LENGTH].item() == pytest.approx(
            math.log(boxes[b, m, BoxField.LENGTH].item()), abs=1e-6
        )
    # exactly one peak per box, the gaussian is at most min_radius cells wide for small boxes
    assert int((t.heatmap == 1.0).sum()) == 4
    ped = t.heatmap[0, DetectionClass.PEDESTRIAN]
    rows, cols = torch.nonzero(ped > 0, as_tuple=True)
    assert rows.max() - rows.min() == 2 * CFG.min_radius
    assert cols.max() - cols.min() == 2 * CFG.min_radius
    assert t.heatmap[1, 1:].sum() == 0


def perfect_output(targets: DetectionTargets) -> DetectionOutput:
    """Head output whose heatmap peaks exactly at the targets' centres."""
    heat = torch.where(targets.heatmap >= 1.0, 20.0, -20.0)
    b = heat.shape[0]
    reg = torch.zeros(b, 8, 32 * 32)
    for i in range(b):
        for m in torch.nonzero(targets.mask[i]).flatten().tolist():
            reg[i, :, targets.cell[i, m]] = targets.regression[i, m]
    return DetectionOutput(heat, reg.reshape(b, 8, 32, 32))


def test_decode_of_perfect_output_gives_the_boxes_back() -> None:
    boxes, classes, mask = make_boxes()
    t = detection_targets(boxes, classes, mask, CFG)
    out = perfect_output(t)
    decoded = decode_detections(out.heatmap, out.regression, CFG)
    assert len(decoded) == 2
    for b, (pb, ps, pc) in enumerate(decoded):
        keep = t.mask[b]
        assert len(pb) == int(keep.sum())
        assert (ps > 0.99).all()
        order_pred = torch.argsort(pb[:, 0])
        order_true = torch.argsort(boxes[b][keep][:, 0])
        torch.testing.assert_close(pb[order_pred], boxes[b][keep][order_true], atol=1e-4, rtol=0)
        assert pc[order_pred].tolist() == classes[b][keep][order_true].tolist()
    # the perfect output has a lower loss than a blank one
    blank = DetectionOutput(torch.zeros_like(out.heatmap), torch.zeros_like(out.regression))
    good = detection_loss(out, t, CFG)
    assert good["total"] < 1e-3
    assert detection_loss(blank, t, CFG)["total"] > 1.0


def test_decode_applies_peak_test_topk_and_threshold() -> None:
    cfg = DetectionHeadConfig(max_detections=2, score_threshold=0.3)
    heat = torch.full((1, 3, 32, 32), -10.0)
    heat[0, 0, 5, 5] = 3.0
    heat[0, 0, 5, 6] = 2.0  # neighbour of a stronger peak: suppressed
    heat[0, 1, 20, 20] = 1.0
    heat[0, 2, 25, 3] = 0.5
    heat[0, 2, 10, 10] = -1.0  # sigmoid 0.27 < 0.3
    boxes, scores, classes = decode_detections(heat, torch.zeros(1, 8, 32, 32), cfg)[0]
    assert classes.tolist() == [0, 1]
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([3.0, 1.0])))
    assert boxes.shape == (2, 7)
    # offset 0 decodes to the cell's near-front-left corner: x = (48 - 2*5) m, y = (32 - 2*5) m
    assert boxes[0, :2].tolist() == [38.0, 22.0]


def test_head_shapes_and_gradients() -> None:
    head = DetectionHead(CFG)
    bev = torch.randn(2, CFG.in_channels, 32, 32)
    out = head(bev)
    assert out.heatmap.shape == (2, 3, 32, 32)
    assert out.regression.shape == (2, 8, 32, 32)
    last = head.heatmap[-1]
    assert isinstance(last, torch.nn.Conv2d) and last.bias is not None
    bias = last.bias
    torch.testing.assert_close(torch.sigmoid(bias.detach()), torch.full((3,), 0.1))
    boxes, classes, mask = make_boxes()
    detection_loss(out, detection_targets(boxes, classes, mask, CFG), CFG)["total"].backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_targets_without_boxes() -> None:
    t = detection_targets(
        torch.zeros(1, 0, 7),
        torch.zeros(1, 0, dtype=torch.long),
        torch.zeros(1, 0, dtype=torch.bool),
        CFG,
    )
    assert t.heatmap.shape == (1, 3, 32, 32) and t.heatmap.sum() == 0
    out = DetectionOutput(torch.zeros(1, 3, 32, 32), torch.zeros(1, 8, 32, 32))
    loss = detection_loss(out, t, CFG)
    assert torch.isfinite(loss["total"]) and loss["regression"] == 0


# -- AP ----------------------------------------------------------------------------------------


def box(x: float, y: float) -> list[float]:
    return [x, y, 4.0, 2.0, 0.0, 0.0, 0.0]


def test_ap_of_perfect_predictions_is_one() -> None:
    boxes, classes, mask = make_boxes()
    gt = [(boxes[b][mask[b]], classes[b][mask[b]]) for b in range(2)]
    preds = [(g[0], torch.linspace(0.9, 0.5, len(g[0])), g[1]) for g in gt]
    m = detection_ap(preds, gt)
    np.testing.assert_allclose(m.ap, 1.0)
    assert m.mean_ap == pytest.approx(1.0)
    assert m.as_dict()["AP/cyclist"] == pytest.approx(1.0)


def test_ap_is_zero_when_shifted_beyond_every_threshold() -> None:
    gt = [(np.array([box(10, 0), box(20, 5)]), np.array([0, 0]))]
    preds = [(np.array([box(14.5, 0), box(20, 9.5)]), np.array([0.9, 0.8]), np.array([0, 0]))]
    m = detection_ap(preds, gt)
    np.testing.assert_array_equal(m.ap[0], 0.0)
    assert np.isnan(m.ap[1:]).all()  # no pedestrians or cyclists: left out of the mAP
    assert m.mean_ap == 0.0


def test_ap_averages_over_distance_thresholds() -> None:
    # one box, predicted 1.5 m away: a miss at 0.5 and 1 m, a hit at 2 and 4 m
    gt = [(np.array([box(10, 0)]), np.array([1]))]
    preds = [(np.array([box(10, 1.5)]), np.array([0.7]), np.array([1]))]
    m = detection_ap(preds, gt)
    np.testing.assert_allclose(m.ap[1], [0.0, 0.0, 1.0, 1.0], atol=1e-12)
    assert m.class_ap[1] == pytest.approx(0.5)
    assert m.mean_ap == pytest.approx(0.5)


def test_ap_hand_computed_case() -> None:
    """Three vehicles in two samples; by score: hit, miss (wrong place), hit; one vehicle never
    found. Recall/precision: (1/3, 1), (1/3, 1/2), (2/3, 2/3). On the recall grid r = k/100
    (k = 11..100, 90 points, min_recall 0.1): k <= 33 -> precision 1; 34 <= k <= 66 -> the line
    from (1/3, 1/2) to (2/3, 2/3), p = 1/2 + (r - 1/3)/2; k >= 67 -> 0. Less min_precision 0.1,
    clipped at 0: 23 * 0.9 + sum_{k=34}^{66} (0.4 + (k/100 - 1/3)/2) = 20.7 + 13.2 + 2.75
    = 36.65; AP = 36.65 / 90 / 0.9."""
    gt = [
        (np.array([box(10, 0), box(20, 0)]), np.array([0, 0])),
        (np.array([box(5, 5)]), np.array([0])),
    ]
    preds = [
        (np.array([box(10.1, 0), box(30, 0)]), np.array([0.9, 0.8]), np.array([0, 0])),
        (np.array([box(5, 5.2)]), np.array([0.7]), np.array([0])),
    ]
    m = detection_ap(preds, gt, thresholds=(0.5,))
    assert m.ap[0, 0] == pytest.approx(36.65 / 90 / 0.9, abs=1e-12)


def test_ap_matching_is_greedy_by_score_and_within_sample() -> None:
    # two predictions near one box: the higher score takes it, the other is a false positive;
    # a prediction in another sample never matches this sample's box
    gt = [(np.array([box(0, 0)]), np.array([0])), (np.zeros((0, 7)), np.zeros(0, int))]
    preds = [
        (np.array([box(0.3, 0), box(0.1, 0)]), np.array([0.9, 0.5]), np.array([0, 0])),
        (np.array([box(0, 0)]), np.array([0.95]), np.array([0])),
    ]
    m = detection_ap(preds, gt, thresholds=(1.0,), min_recall=0.0, min_precision=0.0)
    # by score: FP (other sample, 0.95), TP (0.9), FP (0.5) -> (recall, precision) = (0, 0),
    # (1, 1/2), (1, 1/3). np.interp on r = k/100, k = 1..100: the line p = r/2 for k < 100 and
    # the last point's 1/3 at r = 1: AP = (sum_{k=1}^{99} k/200 + 1/3) / 100
    assert m.ap[0, 0] == pytest.approx((24.75 + 1.0 / 3.0) / 100.0, abs=1e-12)


def test_ap_input_errors() -> None:
    with pytest.raises(ValueError, match="1 prediction samples but 2 ground-truth samples"):
        detection_ap([(np.zeros((0, 7)), np.zeros(0), np.zeros(0))], [(np.zeros((0, 7)), [])] * 2)
    with pytest.raises(ValueError, match="predictions\\[0\\] boxes must have shape \\(n, 7\\)"):
        detection_ap([(np.zeros((1, 5)), [1.0], [0])], [(np.zeros((0, 7)), [])])
