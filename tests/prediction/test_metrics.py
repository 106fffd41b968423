"""Forecasting metrics on hand-made arrays (Argoverse 2 / WOMD definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kaido.prediction.baselines import ConstantVelocity
from kaido.prediction.metrics import (
    MISS_THRESHOLD,
    brier_min_fde,
    displacement_errors,
    evaluate,
    evaluate_predicted,
    is_missed,
    min_ade,
    min_fde,
    miss_rate,
    top_k_modes,
)
from kaido.scene.agents import AgentClass, AgentState
from kaido.scene.geometry import Box3D

T = 5
STEPS = np.arange(T, dtype=np.float64)


def line(dx: float, dy: float, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """``(T, 2)`` points ``offset + step * (dx, dy)``."""
    return np.stack([offset[0] + dx * STEPS, offset[1] + dy * STEPS], axis=-1)


def test_min_ade_and_min_fde_pick_the_best_mode() -> None:
    gt = line(1.0, 0.0)[None]  # (1, T, 2)
    pred = np.stack(
        [
            line(1.0, 0.0, (0.0, 3.0)),  # parallel, 3 m off: ADE 3, FDE 3
            line(1.0, 0.5),  # diverging: errors 0, .5, 1, 1.5, 2 → ADE 1, FDE 2
            line(1.0, 0.0, (0.0, 1.5)),  # parallel, 1.5 m off: ADE 1.5, FDE 1.5
        ]
    )[None]  # (1, 3, T, 2)
    ade, fde = displacement_errors(pred, gt)
    np.testing.assert_allclose(ade, [[3.0, 1.0, 1.5]])
    np.testing.assert_allclose(fde, [[3.0, 2.0, 1.5]])
    np.testing.assert_allclose(min_ade(pred, gt), [1.0])  # WOMD: best ADE (mode 1)
    np.testing.assert_allclose(min_ade(pred, gt, selection="fde"), [1.5])  # AV2: min-FDE mode
    np.testing.assert_allclose(min_fde(pred, gt), [1.5])
    # the order of the modes does not matter
    np.testing.assert_allclose(min_ade(pred[:, ::-1], gt), [1.0])
    np.testing.assert_allclose(min_fde(pred[:, ::-1], gt), [1.5])


def test_miss_threshold_boundary_is_strict() -> None:
    gt = np.zeros((3, T, 2))
    pred = np.zeros((3, 2, T, 2))
    pred[0, :, -1] = [[2.0, 0.0], [5.0, 0.0]]  # minFDE exactly 2 m: not a miss
    pred[1, :, -1] = [[2.0 + 2**-20, 0.0], [0.0, -3.0]]  # just over 2 m: a miss
    pred[2, :, -1] = [[0.0, 1.0], [9.0, 9.0]]  # 1 m: a hit
    np.testing.assert_array_equal(is_missed(pred, gt), [False, True, False])
    assert miss_rate(pred, gt) == pytest.approx(1 / 3)
    assert miss_rate(pred, gt, threshold=1.0) == pytest.approx(2 / 3)
    assert MISS_THRESHOLD == 2.0
    with pytest.raises(ValueError, match="threshold"):
        miss_rate(pred, gt, threshold=-1.0)


def test_valid_mask_ignores_missing_steps() -> None:
    gt = np.stack([line(1.0, 0.0), line(0.0, 1.0), line(1.0, 1.0)])
    valid = np.ones((3, T), dtype=bool)
    valid[0, 3:] = False  # agent 0 is seen until step 2
    valid[1, [0, 2]] = False  # agent 1 has holes
    valid[2] = False  # agent 2 is never seen
    gt[0, 3:] = np.nan  # garbage where invalid
    gt[2] = np.nan
    pred = np.repeat(gt[:, None], 2, axis=1).copy()
    pred[np.isnan(pred)] = 0.0
    pred[0, 0, :, 1] += 1.0  # mode 0 of agent 0 is 1 m off everywhere
    pred[0, 1, 2, 0] += 4.0  # mode 1 of agent 0 is 4 m off at its last valid step only
    pred[0, 1, 4, 0] += 100.0  # ... and far off at an invalid step, which must not count
    pred[1, :, 2] += 50.0  # agent 1's error at its hole does not count
    ade, fde = displacement_errors(pred, gt, valid)
    np.testing.assert_allclose(ade[0], [1.0, 4.0 / 3.0])
    np.testing.assert_allclose(fde[0], [1.0, 4.0])
    np.testing.assert_allclose(ade[1], [0.0, 0.0])
    assert np.all(np.isnan(ade[2])) and np.all(np.isnan(fde[2]))
    np.testing.assert_allclose(min_ade(pred, gt, valid)[:2], [1.0, 0.0])
    assert math.isnan(min_ade(pred, gt, valid)[2])
    np.testing.assert_allclose(min_fde(pred, gt, valid)[:2], [1.0, 0.0])
    assert not is_missed(pred, gt, valid)[2]
    assert miss_rate(pred, gt, valid) == 0.0
    metrics = evaluate(pred, gt, valid)
    assert metrics.num_agents == 2
    assert metrics.min_ade == pytest.approx(0.5)
    assert metrics.min_fde == pytest.approx(0.5)
    assert math.isnan(metrics.brier_min_fde)
    assert math.isnan(miss_rate(pred[2:], gt[2:], valid[2:]))


def test_brier_min_fde_adds_the_best_modes_probability_penalty() -> None:
    gt = np.zeros((2, T, 2))
    pred = np.zeros((2, 3, T, 2))
    pred[:, :, -1, 0] = [[1.0, 0.5, 3.0], [0.0, 2.0, 2.0]]
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    # agent 0: best FDE 0.5 (p 0.3) → 0.5 + 0.49; agent 1: best FDE 0 (p 0.2) → 0 + 0.64
    np.testing.assert_allclose(brier_min_fde(pred, gt, probs), [0.99, 0.64])
    # normalize divides each row by its sum first
    np.testing.assert_allclose(brier_min_fde(pred, gt, probs / 2, normalize=True), [0.99, 0.64])
    with pytest.raises(ValueError, match="probabilities"):
        brier_min_fde(pred, gt, probs[:, :2])
    with pytest.raises(ValueError, match="probabilities"):
        brier_min_fde(pred, gt, probs * 2)
    metrics = evaluate(pred, gt, None, probs)
    assert metrics.brier_min_fde == pytest.approx((0.99 + 0.64) / 2)
    assert metrics.num_modes == 3


def test_top_k_keeps_the_most_likely_modes() -> None:
    gt = np.zeros((1, T, 2))
    pred = np.zeros((1, 3, T, 2))
    pred[0, :, -1, 0] = [0.0, 5.0, 9.0]  # the best mode is the least likely one
    probs = np.array([[0.1, 0.5, 0.4]])
    top, top_p = top_k_modes(pred, probs, 2)
    np.testing.assert_allclose(top[0, :, -1, 0], [5.0, 9.0])
    np.testing.assert_allclose(top_p, [[0.5, 0.4]])
    assert evaluate(pred, gt, None, probs).min_fde == 0.0
    k1 = evaluate(pred, gt, None, probs, k=1)
    assert k1.min_fde == 5.0 and k1.miss_rate == 1.0 and k1.num_modes == 1
    with pytest.raises(ValueError, match="k needs probabilities"):
        evaluate(pred, gt, k=1)
    with pytest.raises(ValueError, match="k: must be"):
        top_k_modes(pred, probs, 4)


def test_shapes_are_checked_with_clear_messages() -> None:
    pred = np.zeros((2, 3, T, 2))
    gt = np.zeros((2, T, 2))
    with pytest.raises(ValueError, match=r"pred: expected shape \(A, K, T, 2\)"):
        min_ade(np.zeros((2, T, 2)), gt)
    with pytest.raises(ValueError, match="gt: expected shape"):
        min_fde(pred, np.zeros((2, T + 1, 2)))
    with pytest.raises(ValueError, match="valid: expected shape"):
        min_fde(pred, gt, np.ones((2, T - 1), dtype=bool))
    with pytest.raises(TypeError, match="boolean mask"):
        min_fde(pred, gt, np.ones((2, T)))
    with pytest.raises(ValueError, match="non-finite"):
        min_fde(np.full_like(pred, np.nan), gt)
    with pytest.raises(ValueError, match="selection"):
        min_ade(pred, gt, selection="best")  # type: ignore[arg-type]


def test_metrics_of_a_constant_velocity_forecast() -> None:
    times = np.arange(61, dtype=np.float64) * 0.1
    agents = [
        AgentState(1, AgentClass.VEHICLE, Box3D(0, 0, 0, 0, 4, 2, 1.5), (10.0, 0.0), 0),
        AgentState(2, AgentClass.VEHICLE, Box3D(5, 5, 0, 0, 4, 2, 1.5), (0.0, 4.0), 0),
    ]
    predicted = ConstantVelocity().predict(agents, times)
    # agent 1 really brakes to a stop at 2 m/s²; agent 2 keeps going as predicted
    s1 = np.where(times < 5.0, 10.0 * times - times**2, 25.0)
    gt = np.stack(
        [
            np.stack([s1, np.zeros_like(times)], axis=-1),
            np.stack([np.full_like(times, 5.0), 5.0 + 4.0 * times], axis=-1),
        ]
    )
    metrics = evaluate_predicted(predicted, gt)
    err1 = np.abs(10.0 * times - s1)
    assert metrics.min_ade == pytest.approx(err1.mean() / 2)
    assert metrics.min_fde == pytest.approx(err1[-1] / 2)
    assert metrics.miss_rate == 0.5
    assert metrics.brier_min_fde == pytest.approx(err1[-1] / 2)
    assert metrics.definition.startswith("kaido.prediction.metrics")
    with pytest.raises(TypeError, match="PredictedAgents"):
        evaluate_predicted(gt, gt)  # type: ignore[arg-type]


positions = hnp.arrays(np.float64, (3, 4, T, 2), elements=st.floats(-50, 50))


@settings(max_examples=100, deadline=None)
@given(pred=positions, gt=hnp.arrays(np.float64, (3, T, 2), elements=st.floats(-50, 50)))
def test_metric_invariants(pred: np.ndarray, gt: np.ndarray) -> None:
    ade, fde = displacement_errors(pred, gt)
    by_ade = min_ade(pred, gt)
    by_fde = min_ade(pred, gt, selection="fde")
    best_fde = min_fde(pred, gt)
    np.testing.assert_allclose(by_ade, ade.min(axis=1))
    np.testing.assert_allclose(best_fde, fde.min(axis=1))
    assert np.all(by_ade <= by_fde + 1e-12)
    uniform = np.full((3, 4), 0.25)
    np.testing.assert_allclose(brier_min_fde(pred, gt, uniform), best_fde + 0.75**2)
    # a perfect mode added anywhere makes every error zero
    perfect = np.concatenate([pred, gt[:, None]], axis=1)
    np.testing.assert_allclose(min_ade(perfect, gt), 0.0, atol=1e-12)
    assert miss_rate(perfect, gt) == 0.0
