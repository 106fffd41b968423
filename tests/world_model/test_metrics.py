"""The validation metrics' traffic-light and plan terms on hand-made batches."""

from __future__ import annotations

import math

import pytest
import torch

from kaido.logs.sample import TrafficLightClass
from kaido.world_model.metrics import ValidationMetrics

N, G, Y, R = (int(c) for c in TrafficLightClass)


def _logits(called: list[int]) -> torch.Tensor:
    out = torch.zeros(len(called), len(TrafficLightClass))
    out[torch.arange(len(called)), torch.tensor(called)] = 3.0
    return out


def _update(metrics: ValidationMetrics, truth: list[int], called: list[int]) -> None:
    batch = {
        "ego_state": torch.zeros(len(truth), 6),
        "traffic_light": torch.tensor(truth, dtype=torch.int64),
    }
    metrics.update(None, {"light_logits": _logits(called)}, batch)


def test_light_accuracy_and_red_recall_precision_over_batches() -> None:
    metrics = ValidationMetrics()
    _update(metrics, truth=[R, R, G, N], called=[R, G, G, N])
    _update(metrics, truth=[R, Y, N], called=[R, R, G])
    out = metrics.compute()
    assert out["light/accuracy"] == pytest.approx(4 / 7)
    assert out["light/red_recall"] == pytest.approx(2 / 3)
    assert out["light/red_precision"] == pytest.approx(2 / 3)
    confusion = metrics.light_confusion()
    assert confusion.sum() == 7
    assert confusion[R, G] == 1 and confusion[Y, R] == 1 and confusion[N, G] == 1


def test_light_metrics_absent_without_labels_and_nan_without_red() -> None:
    metrics = ValidationMetrics()
    metrics.update(None, {"light_logits": _logits([G])}, {"ego_state": torch.zeros(1, 6)})
    assert not any(k.startswith("light/") for k in metrics.compute())
    _update(metrics, truth=[G, N], called=[G, G])
    out = metrics.compute()
    assert out["light/accuracy"] == pytest.approx(0.5)
    assert math.isnan(out["light/red_recall"]) and math.isnan(out["light/red_precision"])
    metrics.reset()
    assert metrics.light_confusion().sum() == 0
