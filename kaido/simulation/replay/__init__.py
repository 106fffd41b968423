"""Offline replay of recorded drives (kaido logs and public datasets).

:mod:`kaido.simulation.replay.predict` scores predictors on recorded traffic in each dataset's
protocol; sources are read by :func:`kaido.logs.replay_source.open_source`.
"""

from kaido.simulation.replay.predict import (
    DEFAULT_PREDICTORS,
    GroupScore,
    PredictionScore,
    aggregate,
    score_scenario,
)

__all__ = ["DEFAULT_PREDICTORS", "GroupScore", "PredictionScore", "aggregate", "score_scenario"]
