"""The planner: candidates → scores → the best trajectory, or the minimum-risk fallback.

One cycle (:meth:`Planner.plan`): check the input (finite ego state, a reference path); generate
candidates (Frenet lattice + IDM proposals, rolled out through a kinematic bicycle, so each is
feasible); score them (hard multipliers × weighted soft terms, PDMS-style); return the best one.
When every candidate scores zero (all collide, leave the road or run a red light), the input is
invalid, or the cycle overran its deadline, the output is the minimum-risk trajectory (brake in
lane within the envelope) with the reason.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from kaido.planning.candidates import CandidateConfig, generate_candidates
from kaido.planning.costs import CostConfig, score_candidates
from kaido.planning.fallback import minimum_risk_trajectory
from kaido.planning.types import PlannerConfig, PlannerInput, PlannerOutput
from kaido.scene.vehicle import VehicleProfile


@dataclass(frozen=True)
class PlannerSettings:
    """Everything the planner is tuned by (one frozen config per component)."""

    planner: PlannerConfig = field(default_factory=PlannerConfig)
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    costs: CostConfig = field(default_factory=CostConfig)
    min_score: float = 1e-6
    """Best score at or below this → fallback (every candidate violates a hard constraint)."""
    deadline_s: float | None = None
    """[s] a cycle slower than this returns the fallback (None: no deadline)."""


class Planner:
    """Scores candidate trajectories and picks one; never returns something unsafe."""

    def __init__(self, profile: VehicleProfile, settings: PlannerSettings | None = None) -> None:
        self.profile = profile
        self.settings = settings or PlannerSettings()

    def _fallback(self, inp: PlannerInput, reason: str, t0: float) -> PlannerOutput:
        trajectory = minimum_risk_trajectory(
            inp.ego, inp.reference, self.profile, self.settings.planner, reason
        )
        return PlannerOutput(
            trajectory=trajectory,
            fallback_reason=reason,
            compute_ms=1e3 * (time.perf_counter() - t0),
        )

    def plan(self, inp: PlannerInput) -> PlannerOutput:
        t0 = time.perf_counter()
        ego = inp.ego.as_array()
        if not np.all(np.isfinite(ego)):
            return self._fallback(inp, "invalid input: ego state is not finite", t0)
        if inp.reference.length < 1.0:
            return self._fallback(inp, "invalid input: empty route", t0)
        if inp.agents.num_agents and not np.all(np.isfinite(inp.agents.modes)):
            return self._fallback(inp, "invalid input: predicted agents are not finite", t0)
        settings = self.settings
        candidates, _info = generate_candidates(
            inp, self.profile, settings.planner, settings.candidates
        )
        scored = score_candidates(candidates, inp, self.profile, settings.planner, settings.costs)
        scores = np.asarray(scored.scores)
        best = int(np.argmax(scores))
        elapsed = time.perf_counter() - t0
        if settings.deadline_s is not None and elapsed > settings.deadline_s:
            return self._fallback(inp, f"deadline missed: {1e3 * elapsed:.1f} ms", t0)
        if not math.isfinite(float(scores[best])) or scores[best] <= settings.min_score:
            return self._fallback(inp, "no admissible candidate (all collide or break a rule)", t0)
        return PlannerOutput(
            trajectory=candidates[best],
            costs=MappingProxyType(dict(scored.breakdown(best))),
            candidates=candidates,
            scores=scores,
            chosen=best,
            compute_ms=1e3 * (time.perf_counter() - t0),
        )
