"""Agents' predicted futures: the contract between prediction and planning.

Axis vocabulary: ``A`` agents, ``K`` modes, ``T`` time points on the consumer's grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def check_array(
    value: Any, name: str, shape: tuple[int | None, ...], dtype: Any = np.float64
) -> Any:
    """``value`` as a read-only array of ``dtype`` whose shape matches ``shape`` (None = any)."""
    array = np.array(value, dtype=dtype, copy=True)
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape, strict=True)
    ):
        pretty = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {pretty}, got {array.shape}")
    array.setflags(write=False)
    return array


class ModeIndex(IntEnum):
    """Columns of a predicted agent state ``(A, K, T, len(ModeIndex))``."""

    X = 0
    Y = 1
    YAW = 2
    SPEED = 3


@dataclass(frozen=True, eq=False)
class PredictedAgents:
    """Agents' predicted futures on the planner's time grid.

    ``ids`` ``(A,)``, ``classes`` ``(A,)`` (``AgentClass`` values), ``sizes`` ``(A, 2)``
    [length, width] [m], ``modes`` ``(A, K, T, len(ModeIndex))`` box-centre states,
    ``probabilities`` ``(A, K)`` (each row sums to 1).
    """

    ids: npt.NDArray[np.int64]
    classes: npt.NDArray[np.int64]
    sizes: FloatArray
    modes: FloatArray
    probabilities: FloatArray

    def __post_init__(self) -> None:
        modes = check_array(self.modes, "PredictedAgents.modes", (None, None, None, len(ModeIndex)))
        a, k = modes.shape[:2]
        object.__setattr__(self, "modes", modes)
        object.__setattr__(
            self, "ids", check_array(self.ids, "PredictedAgents.ids", (a,), np.int64)
        )
        object.__setattr__(
            self, "classes", check_array(self.classes, "PredictedAgents.classes", (a,), np.int64)
        )
        object.__setattr__(self, "sizes", check_array(self.sizes, "PredictedAgents.sizes", (a, 2)))
        probs = check_array(self.probabilities, "PredictedAgents.probabilities", (a, k))
        if a and (np.any(probs < 0) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)):
            raise ValueError("PredictedAgents.probabilities: each row must be >= 0 and sum to 1")
        object.__setattr__(self, "probabilities", probs)

    @property
    def num_agents(self) -> int:
        return int(self.modes.shape[0])

    @classmethod
    def empty(cls, num_points: int) -> PredictedAgents:
        return cls(
            ids=np.zeros(0, np.int64),
            classes=np.zeros(0, np.int64),
            sizes=np.zeros((0, 2)),
            modes=np.zeros((0, 1, num_points, len(ModeIndex))),
            probabilities=np.zeros((0, 1)),
        )
