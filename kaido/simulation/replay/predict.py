"""Replay in prediction mode: score predictors on recorded traffic in each dataset's protocol.

For a :class:`~kaido.logs.replay_source.ReplayScenario` with a
:class:`~kaido.logs.replay_source.ReplayProtocol`, every predictor

1. observes the agents (every non-ego track valid at the step, plus the ego as an agent when
   recorded) at each step of the observed window ``0 .. current_index`` (history-free
   predictors ignore all but the present),
2. forecasts the scored tracks valid at the present on the grid ``0, dt, .., H dt``,
3. is scored on steps ``current_index + 1 .. current_index + H`` against the logged future with
   :func:`kaido.prediction.metrics.evaluate` (minADE, minFDE at the last valid step, miss rate
   at ``miss_threshold``; top ``k`` modes by probability, ``k = min(protocol.k, K)``), averaged
   over agents.

Groups scored: ``focal`` (AV2: the focal track, the official single-agent benchmark; WOMD:
``tracks_to_predict``) and ``scored`` (AV2: focal + scored tracks). Horizons: the full horizon
and every ``protocol.horizons_s`` (WOMD 3/5/8 s: the prediction and the logged future cut to the
horizon). The learned predictor (:mod:`kaido.prediction.learned`) forecasts from the backbone's
BEV features, i.e. from camera and lidar, which these datasets' motion scenarios do not carry:
it is not scored here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.logs.replay_source import ReplayProtocol, ReplayScenario
from kaido.prediction.baselines import Predictor, make_predictor
from kaido.prediction.metrics import evaluate
from kaido.scene.agents import AgentIndex, AgentState, Track
from kaido.scene.forecast import ModeIndex
from kaido.scene.geometry import Box3D

__all__ = [
    "DEFAULT_PREDICTORS",
    "METRIC_DEFINITION",
    "GroupScore",
    "PredictionScore",
    "aggregate",
    "build_predictor",
    "score_scenario",
]

FloatArray = npt.NDArray[np.float64]

DEFAULT_PREDICTORS: tuple[str, ...] = (
    "constant_velocity",
    "constant_turn_rate",
    "lane_following",
)
"""Predictors scored by default (those that run on tracks and a lane graph)."""
METRIC_DEFINITION = (
    "kaido.prediction.metrics.evaluate/1 (minADE over all valid steps, minFDE at the last valid "
    "step, miss if minFDE > threshold; per-agent mean)"
)
"""Names the metric definition in results files."""


@dataclass(frozen=True)
class GroupScore:
    """Metrics of one predictor on one group of tracks at one horizon (means over agents)."""

    min_ade: float
    """[m]"""
    min_fde: float
    """[m]"""
    miss_rate: float
    """Fraction of agents with minFDE above the miss threshold."""
    num_agents: int
    k: int
    """Modes scored (top by probability)."""
    horizon_s: float
    """[s]"""

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "min_ade": num(self.min_ade),
            "min_fde": num(self.min_fde),
            "miss_rate": num(self.miss_rate),
            "num_agents": self.num_agents,
            "k": self.k,
            "horizon_s": self.horizon_s,
        }


@dataclass(frozen=True)
class PredictionScore:
    """One predictor on one scenario: ``scores[group][horizon label]`` → :class:`GroupScore`."""

    scenario: str
    predictor: str
    protocol: ReplayProtocol
    scores: dict[str, dict[str, GroupScore]]


def build_predictor(name: str, scenario: ReplayScenario) -> Predictor:
    """Predictor ``name`` for ``scenario`` (lane following gets the scenario's map)."""
    if name == "lane_following":
        if scenario.road_map is None:
            raise ValueError(f"scenario {scenario.name!r} has no map for lane_following")
        return make_predictor(name, road_map=scenario.road_map)
    return make_predictor(name)


def _agents_at(scenario: ReplayScenario, step: int) -> list[AgentState]:
    t = int(scenario.timestamps_ns[step])
    tracks: list[Track] = list(scenario.tracks)
    if scenario.ego_track is not None:
        tracks.append(scenario.ego_track)
    out = []
    for tr in tracks:
        i = int(np.searchsorted(tr.timestamps_ns, t))
        if i < len(tr) and int(tr.timestamps_ns[i]) == t:
            s = tr.states[i]
            out.append(
                AgentState(
                    tr.track_id,
                    tr.agent_class,
                    Box3D(
                        float(s[AgentIndex.X]),
                        float(s[AgentIndex.Y]),
                        0.0,
                        float(s[AgentIndex.YAW]),
                        float(s[AgentIndex.LENGTH]),
                        float(s[AgentIndex.WIDTH]),
                        1.5,
                    ),
                    (float(s[AgentIndex.VX]), float(s[AgentIndex.VY])),
                    t,
                )
            )
    return out


def _horizons(protocol: ReplayProtocol) -> dict[str, int]:
    out = {}
    for h in protocol.horizons_s:
        steps = int(round(h / protocol.step_seconds))
        if 1 <= steps <= protocol.predicted_steps:
            out[f"{h:g}s"] = steps
    out["full"] = protocol.predicted_steps
    return out


def score_scenario(
    scenario: ReplayScenario, predictors: Sequence[str] = DEFAULT_PREDICTORS
) -> list[PredictionScore]:
    """Every predictor of ``predictors`` scored on ``scenario`` (see the module docstring)."""
    protocol = scenario.protocol
    if protocol is None:
        raise ValueError(
            f"scenario {scenario.name!r} ({scenario.source_format}) has no prediction protocol"
        )
    c, h = protocol.current_index, protocol.predicted_steps
    n_t = scenario.timestamps_ns.shape[0]
    if c + 1 >= n_t:
        raise ValueError(
            f"scenario {scenario.name!r}: present step {c} leaves no future in {n_t} steps"
        )
    h = min(h, n_t - c - 1)
    groups = {"focal": protocol.focal_track_ids, "scored": protocol.scored_track_ids}
    present = {a.track_id for a in _agents_at(scenario, c)}
    times = protocol.step_seconds * np.arange(h + 1, dtype=np.float64)
    window = range(max(0, c - 10), c + 1)
    observed = {step: _agents_at(scenario, step) for step in window}
    out = []
    for name in predictors:
        predictor = build_predictor(name, scenario)
        predictor.reset()
        for step in window:
            predictor.observe(observed[step], int(scenario.timestamps_ns[step]))
        scores: dict[str, dict[str, GroupScore]] = {}
        for group, ids in groups.items():
            ids_now = [i for i in ids if i in present]
            agents = [a for a in observed[c] if a.track_id in set(ids_now)]
            agents.sort(key=lambda a: ids_now.index(a.track_id))
            forecast = predictor.predict(agents, times)
            xy = forecast.modes[:, :, 1:, [ModeIndex.X, ModeIndex.Y]]
            states, valid = scenario.states_on_grid(ids_now)
            gt = states[:, c + 1 : c + 1 + h, [AgentIndex.X, AgentIndex.Y]]
            ok = valid[:, c + 1 : c + 1 + h]
            gt = np.where(ok[..., None], gt, 0.0)
            k = min(protocol.k, int(xy.shape[1])) if len(agents) else protocol.k
            per_h = {}
            for label, steps in _horizons(protocol).items():
                steps = min(steps, h)
                if not agents:
                    per_h[label] = GroupScore(
                        math.nan, math.nan, math.nan, 0, k, steps * protocol.step_seconds
                    )
                    continue
                m = evaluate(
                    xy[:, :, :steps],
                    gt[:, :steps],
                    ok[:, :steps],
                    forecast.probabilities,
                    k=k,
                    miss_threshold=protocol.miss_threshold,
                )
                per_h[label] = GroupScore(
                    m.min_ade,
                    m.min_fde,
                    m.miss_rate,
                    m.num_agents,
                    k,
                    steps * protocol.step_seconds,
                )
            scores[group] = per_h
        out.append(PredictionScore(scenario.name, name, protocol, scores))
    return out


def aggregate(results: Sequence[PredictionScore]) -> dict[str, Any]:
    """Agent-weighted means per protocol, predictor, group and horizon, with the minFDE ratio
    of each predictor to constant velocity (``min_fde_ratio_vs_constant_velocity``)."""
    sums: dict[tuple[str, str, str, str], list[float]] = {}
    for r in results:
        for group, per_h in r.scores.items():
            for label, s in per_h.items():
                if s.num_agents == 0:
                    continue
                acc = sums.setdefault((r.protocol.name, r.predictor, group, label), [0.0] * 4)
                weight = float(s.num_agents)
                acc[0] += s.min_ade * weight
                acc[1] += s.min_fde * weight
                acc[2] += s.miss_rate * weight
                acc[3] += weight
    out: dict[str, Any] = {}
    for (proto, pred, group, label), (ade, fde, mr, n) in sorted(sums.items()):
        entry: dict[str, Any] = {
            "min_ade": ade / n,
            "min_fde": fde / n,
            "miss_rate": mr / n,
            "num_agents": int(n),
        }
        out.setdefault(proto, {}).setdefault(pred, {}).setdefault(group, {})[label] = entry
    for preds in out.values():
        base = preds.get("constant_velocity")
        if base is None:
            continue
        for groups in preds.values():
            for group, per_h in groups.items():
                for label, entry in per_h.items():
                    ref = base.get(group, {}).get(label)
                    ok = ref is not None and ref["min_fde"] > 0
                    entry["min_fde_ratio_vs_constant_velocity"] = (
                        entry["min_fde"] / ref["min_fde"] if ok else None
                    )
    return out
