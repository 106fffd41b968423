"""Multimodal forecasting metrics as the Argoverse 2 and Waymo Open Motion benchmarks define them.

Axis vocabulary: ``A`` agents, ``K`` modes, ``T`` future time steps. Predictions are ``(A, K, T,
2)`` world positions [m], ground truth ``(A, T, 2)``, and the optional ``valid`` mask ``(A, T)``
marks the ground-truth steps that exist (WOMD style; Argoverse's focal agents are fully valid).

* ADE of a mode: mean Euclidean error over the valid steps; FDE: the error at the agent's last
  valid step.
* ``min_ade``: with ``selection="ade"`` (WOMD and most papers) the smallest ADE over the modes;
  with ``selection="fde"`` (the Argoverse 1/2 leaderboards) the ADE of the mode with the smallest
  FDE.
* ``min_fde``: the smallest FDE over the modes.
* Miss (Argoverse 2): ``min_fde > threshold`` (2 m), strictly greater; ``miss_rate`` is the share
  of evaluated agents that miss.
* ``brier_min_fde`` (Argoverse 2): ``min_fde + (1 - p)²`` with ``p`` the probability of the mode
  with the smallest FDE.

Per-agent functions return NaN for agents without a valid step; aggregates average over the
other agents. WOMD's speed-scaled lateral/longitudinal miss rate and mAP are not implemented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from kaido.scene.forecast import ModeIndex, PredictedAgents

__all__ = [
    "METRIC_DEFINITION",
    "MISS_THRESHOLD",
    "ForecastMetrics",
    "brier_min_fde",
    "displacement_errors",
    "evaluate",
    "evaluate_predicted",
    "is_missed",
    "min_ade",
    "min_fde",
    "miss_rate",
    "top_k_modes",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MISS_THRESHOLD = 2.0
"""[m] Argoverse 2's miss threshold on the final displacement error."""

METRIC_DEFINITION = "kaido.prediction.metrics/1 (AV2 minADE/minFDE/MR@2m/brier-minFDE; WOMD masks)"
"""Name and version of these definitions, for results files."""


def _inputs(
    pred: npt.ArrayLike, gt: npt.ArrayLike, valid: npt.ArrayLike | None
) -> tuple[FloatArray, FloatArray, BoolArray]:
    p = np.asarray(pred, dtype=np.float64)
    if p.ndim != 4 or p.shape[-1] != 2:
        raise ValueError(f"pred: expected shape (A, K, T, 2), got {p.shape}")
    a, k, t, _ = p.shape
    if k < 1 or t < 1:
        raise ValueError(f"pred: needs K >= 1 modes and T >= 1 steps, got shape {p.shape}")
    g = np.asarray(gt, dtype=np.float64)
    if g.shape != (a, t, 2):
        raise ValueError(f"gt: expected shape {(a, t, 2)} to match pred {p.shape}, got {g.shape}")
    if valid is None:
        v = np.ones((a, t), dtype=bool)
    else:
        v = np.asarray(valid)
        if v.shape != (a, t):
            raise ValueError(f"valid: expected shape {(a, t)}, got {v.shape}")
        if v.dtype != np.bool_:
            raise TypeError(f"valid: expected a boolean mask, got dtype {v.dtype}")
    if not np.all(np.isfinite(g[v])):
        raise ValueError("gt: non-finite position at a valid step")
    if not np.all(np.isfinite(p)):
        raise ValueError("pred: non-finite position")
    return p, g, v


def displacement_errors(
    pred: npt.ArrayLike, gt: npt.ArrayLike, valid: npt.ArrayLike | None = None
) -> tuple[FloatArray, FloatArray]:
    """ADE and FDE of every mode: two ``(A, K)`` arrays [m], NaN for agents without valid steps.

    ``pred`` ``(A, K, T, 2)``, ``gt`` ``(A, T, 2)``, ``valid`` ``(A, T)`` bool or None (all
    valid). The FDE is taken at each agent's last valid step.
    """
    p, g, v = _inputs(pred, gt, valid)
    err = np.linalg.norm(p - np.where(v[..., None], g, 0.0)[:, None], axis=-1)  # (A, K, T)
    count = v.sum(axis=1)  # (A,)
    has = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ade = np.where(v[:, None, :], err, 0.0).sum(axis=-1) / count[:, None]
    last = v.shape[1] - 1 - np.argmax(v[:, ::-1], axis=1)  # (A,)
    fde = np.take_along_axis(err, last[:, None, None], axis=-1)[..., 0]
    ade[~has] = np.nan
    fde[~has] = np.nan
    return ade, fde


def _best_by_fde(fde: FloatArray) -> npt.NDArray[np.int64]:
    return np.argmin(np.where(np.isnan(fde), np.inf, fde), axis=1)


def min_ade(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    *,
    selection: Literal["ade", "fde"] = "ade",
) -> FloatArray:
    """``(A,)`` minADE [m]: the best mode's ADE (best by ADE, or by FDE as Argoverse ranks).

    NaN for agents without valid steps. See the module docstring.
    """
    if selection not in ("ade", "fde"):
        raise ValueError(f"min_ade: selection must be 'ade' or 'fde', got {selection!r}")
    ade, fde = displacement_errors(pred, gt, valid)
    if selection == "ade":
        out = np.min(np.where(np.isnan(ade), np.inf, ade), axis=1)
    else:
        out = np.take_along_axis(ade, _best_by_fde(fde)[:, None], axis=1)[:, 0]
    out[np.isnan(ade[:, 0])] = np.nan
    return out


def min_fde(
    pred: npt.ArrayLike, gt: npt.ArrayLike, valid: npt.ArrayLike | None = None
) -> FloatArray:
    """``(A,)`` minFDE [m]: the smallest error at the last valid step over the modes."""
    _, fde = displacement_errors(pred, gt, valid)
    out = np.min(np.where(np.isnan(fde), np.inf, fde), axis=1)
    out[np.isnan(fde[:, 0])] = np.nan
    return out


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.floating):
        raise TypeError(f"threshold: expected a number [m], got {threshold!r}")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold: must be finite and >= 0 m, got {threshold}")
    return float(threshold)


def is_missed(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    *,
    threshold: float = MISS_THRESHOLD,
) -> BoolArray:
    """``(A,)`` whether ``min_fde > threshold`` [m] (False for agents without valid steps)."""
    limit = _check_threshold(threshold)
    fde = min_fde(pred, gt, valid)
    return np.asarray(np.where(np.isnan(fde), False, fde > limit), dtype=bool)


def miss_rate(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    *,
    threshold: float = MISS_THRESHOLD,
) -> float:
    """Share of the agents with a valid step whose ``min_fde > threshold`` [m]; NaN if none."""
    limit = _check_threshold(threshold)
    fde = min_fde(pred, gt, valid)
    evaluated = ~np.isnan(fde)
    if not np.any(evaluated):
        return math.nan
    return float(np.mean(fde[evaluated] > limit))


def _check_probabilities(probabilities: npt.ArrayLike, a: int, k: int) -> FloatArray:
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.shape != (a, k):
        raise ValueError(f"probabilities: expected shape {(a, k)}, got {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0) or np.any(probs > 1):
        raise ValueError("probabilities: every value must be finite and in [0, 1]")
    return probs


def brier_min_fde(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    probabilities: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    *,
    normalize: bool = False,
) -> FloatArray:
    """``(A,)`` brier-minFDE [m]: ``min_fde + (1 - p)²``, ``p`` the min-FDE mode's probability.

    ``probabilities`` ``(A, K)`` in [0, 1]; with ``normalize`` each row is first divided by its
    sum (Argoverse 2's ``normalize`` option; rows summing to 0 become uniform).
    """
    _, fde = displacement_errors(pred, gt, valid)
    a, k = fde.shape
    probs = _check_probabilities(probabilities, a, k)
    if normalize:
        total = probs.sum(axis=1, keepdims=True)
        probs = np.where(total > 0, probs / np.where(total > 0, total, 1.0), 1.0 / k)
    best = _best_by_fde(fde)
    p_best = np.take_along_axis(probs, best[:, None], axis=1)[:, 0]
    fde_best = np.take_along_axis(fde, best[:, None], axis=1)[:, 0]
    return np.asarray(fde_best + (1.0 - p_best) ** 2, dtype=np.float64)


def top_k_modes(
    pred: npt.ArrayLike, probabilities: npt.ArrayLike, k: int
) -> tuple[FloatArray, FloatArray]:
    """The ``k`` most likely modes of each agent: ``(A, k, T, D)`` and their ``(A, k)``
    probabilities (not renormalised), most likely first (ties keep the mode order).

    ``pred`` ``(A, K, T, D)``; ``k`` in ``[1, K]``.
    """
    p = np.asarray(pred, dtype=np.float64)
    if p.ndim != 4:
        raise ValueError(f"pred: expected shape (A, K, T, D), got {p.shape}")
    a, num_modes = p.shape[:2]
    probs = _check_probabilities(probabilities, a, num_modes)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= num_modes:
        raise ValueError(f"k: must be an int in [1, {num_modes}], got {k!r}")
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return (
        np.take_along_axis(p, order[:, :, None, None], axis=1),
        np.take_along_axis(probs, order, axis=1),
    )


@dataclass(frozen=True)
class ForecastMetrics:
    """Forecasting metrics averaged over the agents with at least one valid step."""

    min_ade: float
    """[m] mean minADE (selection as requested)."""
    min_fde: float
    """[m] mean minFDE."""
    miss_rate: float
    """Share of agents with ``min_fde > miss_threshold``."""
    brier_min_fde: float
    """[m] mean brier-minFDE; NaN when no probabilities were given."""
    num_agents: int
    """Agents evaluated."""
    num_modes: int
    """Modes per agent (K) evaluated."""
    miss_threshold: float
    """[m] the miss threshold used."""
    selection: str
    """How minADE chose its mode: ``"ade"`` or ``"fde"``."""
    definition: str = METRIC_DEFINITION
    """Name and version of the metric definitions."""


def _mean(values: FloatArray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def evaluate(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    probabilities: npt.ArrayLike | None = None,
    *,
    k: int | None = None,
    miss_threshold: float = MISS_THRESHOLD,
    selection: Literal["ade", "fde"] = "ade",
) -> ForecastMetrics:
    """All metrics at once, averaged over the agents with a valid step.

    ``pred`` ``(A, K, T, 2)``, ``gt`` ``(A, T, 2)``, ``valid`` ``(A, T)`` or None,
    ``probabilities`` ``(A, K)`` or None. With ``k`` only each agent's ``k`` most likely modes
    are scored (needs ``probabilities``; Argoverse scores ``k = 6`` and ``k = 1``).
    """
    p = np.asarray(pred, dtype=np.float64)
    probs = None if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    if k is not None:
        if probs is None:
            raise ValueError("evaluate: k needs probabilities to rank the modes")
        p, probs = top_k_modes(p, probs, k)
    ade = min_ade(p, gt, valid, selection=selection)
    fde = min_fde(p, gt, valid)
    evaluated = ~np.isnan(fde)
    brier = math.nan if probs is None else _mean(brier_min_fde(p, gt, probs, valid))
    return ForecastMetrics(
        min_ade=_mean(ade),
        min_fde=_mean(fde),
        miss_rate=miss_rate(p, gt, valid, threshold=miss_threshold),
        brier_min_fde=brier,
        num_agents=int(evaluated.sum()),
        num_modes=int(p.shape[1]),
        miss_threshold=float(miss_threshold),
        selection=selection,
    )


def evaluate_predicted(
    predicted: PredictedAgents,
    gt: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    *,
    k: int | None = None,
    miss_threshold: float = MISS_THRESHOLD,
    selection: Literal["ade", "fde"] = "ade",
) -> ForecastMetrics:
    """:func:`evaluate` on a :class:`PredictedAgents` (its x, y columns and probabilities).

    ``gt`` ``(A, T, 2)`` on the same time grid as ``predicted.modes``.
    """
    if not isinstance(predicted, PredictedAgents):
        raise TypeError(
            f"evaluate_predicted: expected PredictedAgents, got {type(predicted).__name__}"
        )
    xy = predicted.modes[..., [ModeIndex.X, ModeIndex.Y]]
    return evaluate(
        xy,
        gt,
        valid,
        predicted.probabilities,
        k=k,
        miss_threshold=miss_threshold,
        selection=selection,
    )
