"""Route records, infraction penalties and the results file, in the CARLA Leaderboard 2.0 shape.

The vocabulary of a scored route (:class:`InfractionKind`, :class:`Infraction`,
:class:`RouteResult`) and the JSON the leaderboard writes (``results.json``):

* per route, ``score_route`` (route completion, RC [%]), ``score_penalty`` (infraction penalty,
  IP, a factor in ``[0, 1]``) and ``score_composed`` (driving score, DS = RC * IP [%]);
* IP is the product, over the route's infractions, of each infraction's factor: fixed ones from
  :data:`PENALTIES` (pedestrian 0.50, vehicle 0.60, static 0.65, red light 0.70, stop sign 0.80,
  scenario timeout 0.70, yield to an emergency vehicle 0.70), and two that depend on a
  percentage ``p``: failing to keep the minimum speed ``1 - 0.3 * (1 - p / 100)`` (``p`` = the
  ego's mean speed as a percentage of the surrounding traffic's; the factor is never below 0.7)
  and driving outside the route's lanes ``1 - p / 100`` (``p`` = share of the completed route
  driven outside its lanes, so that share of the route counts for nothing);
* route deviation, agent blocked and route timeout end the route (RC stays where it was) but
  carry no factor of their own;
* the global record averages ``score_composed``, ``score_route`` and ``score_penalty`` over the
  routes (the global DS is the mean of the routes' DS, not the product of mean RC and mean IP)
  and divides infraction counts by the kilometres driven, ``sum(route_length * RC / 100)``
  (at least 1 m); ``outside_route_lanes`` is reported as the kilometres driven outside the route
  lanes, not per kilometre, as the leaderboard does.

Everything kaido adds beyond the leaderboard's fields (comfort, time to collision, progress, the
full infraction list, the metric version) sits under a ``"kaido"`` key, so the leaderboard's own
tools read the file unchanged. JSON has no NaN or infinity: those values are written as ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from kaido.provenance import to_jsonable

__all__ = [
    "ELIGIBLE_VALUES",
    "ENTRY_STATUS_VALUES",
    "GLOBAL_LABELS",
    "METRIC_VERSION",
    "MIN_SPEED_MAX_PENALTY",
    "PENALTIES",
    "Infraction",
    "InfractionKind",
    "RouteResult",
    "global_results",
    "infraction_penalty",
    "json_safe",
    "min_speed_factor",
    "outside_route_lanes_factor",
    "results_document",
]

METRIC_VERSION = "leaderboard-2.0/kaido-1"
"""Version of the metric definitions written into every results file."""

ROUND_DIGITS = 3
"""Decimals of lengths, durations and per-km rates in the JSON (the leaderboard's rounding)."""
ROUND_DIGITS_SCORE = 6
"""Decimals of the scores in the JSON (the leaderboard's rounding)."""


class InfractionKind(Enum):
    """What went wrong; each value is the leaderboard's key in a record's ``infractions``.

    The declaration order is the leaderboard's order of those keys.
    """

    COLLISION_STATIC = "collisions_layout"
    COLLISION_PEDESTRIAN = "collisions_pedestrian"
    COLLISION_VEHICLE = "collisions_vehicle"
    RED_LIGHT = "red_light"
    STOP_SIGN = "stop_infraction"
    OUTSIDE_ROUTE_LANES = "outside_route_lanes"
    MIN_SPEED = "min_speed_infractions"
    YIELD_EMERGENCY = "yield_emergency_vehicle_infractions"
    SCENARIO_TIMEOUT = "scenario_timeouts"
    ROUTE_DEVIATION = "route_dev"
    AGENT_BLOCKED = "vehicle_blocked"
    ROUTE_TIMEOUT = "route_timeout"

    @property
    def key(self) -> str:
        """The leaderboard's JSON key."""
        return self.value


PENALTIES: Mapping[InfractionKind, float] = MappingProxyType(
    {
        InfractionKind.COLLISION_PEDESTRIAN: 0.50,
        InfractionKind.COLLISION_VEHICLE: 0.60,
        InfractionKind.COLLISION_STATIC: 0.65,
        InfractionKind.RED_LIGHT: 0.70,
        InfractionKind.STOP_SIGN: 0.80,
        InfractionKind.SCENARIO_TIMEOUT: 0.70,
        InfractionKind.YIELD_EMERGENCY: 0.70,
    }
)
"""Fixed penalty factor of each infraction that has one (each occurrence multiplies IP)."""

MIN_SPEED_MAX_PENALTY = 0.70
"""Factor of a minimum-speed infraction at 0 % of the traffic's speed (it rises linearly to 1)."""

TERMINAL_KINDS = frozenset(
    {InfractionKind.ROUTE_DEVIATION, InfractionKind.AGENT_BLOCKED, InfractionKind.ROUTE_TIMEOUT}
)
"""Infractions that end the route and carry no factor."""

ENTRY_STATUS_VALUES = ("Started", "Finished", "Rejected", "Crashed", "Invalid")
"""The leaderboard's entry statuses."""
ELIGIBLE_VALUES: Mapping[str, bool] = MappingProxyType(
    {"Started": False, "Finished": True, "Rejected": False, "Crashed": False, "Invalid": False}
)
"""Whether an entry with that status is eligible (the leaderboard's table)."""

GLOBAL_LABELS: tuple[str, ...] = (
    "Avg. driving score",
    "Avg. route completion",
    "Avg. infraction penalty",
    "Collisions with pedestrians",
    "Collisions with vehicles",
    "Collisions with layout",
    "Red lights infractions",
    "Stop sign infractions",
    "Off-road infractions",
    "Route deviations",
    "Route timeouts",
    "Agent blocked",
    "Yield emergency vehicles infractions",
    "Scenario timeouts",
    "Min speed infractions",
)
"""The leaderboard's ``labels``, in the order of ``values``."""

_VALUE_KEYS: tuple[InfractionKind, ...] = (
    InfractionKind.COLLISION_PEDESTRIAN,
    InfractionKind.COLLISION_VEHICLE,
    InfractionKind.COLLISION_STATIC,
    InfractionKind.RED_LIGHT,
    InfractionKind.STOP_SIGN,
    InfractionKind.OUTSIDE_ROUTE_LANES,
    InfractionKind.ROUTE_DEVIATION,
    InfractionKind.ROUTE_TIMEOUT,
    InfractionKind.AGENT_BLOCKED,
    InfractionKind.YIELD_EMERGENCY,
    InfractionKind.SCENARIO_TIMEOUT,
    InfractionKind.MIN_SPEED,
)

_SCORE_KEYS = ("score_composed", "score_route", "score_penalty")


def min_speed_factor(percentage: float) -> float:
    """Penalty factor of a minimum-speed infraction at ``percentage`` [%] of the traffic's speed.

    ``1 - (1 - 0.7) * (1 - p / 100)``: 0.7 at 0 %, 1.0 at 100 % (clipped to that range).
    """
    p = min(max(float(percentage), 0.0), 100.0)
    return 1.0 - (1.0 - MIN_SPEED_MAX_PENALTY) * (1.0 - p / 100.0)


def outside_route_lanes_factor(percentage: float) -> float:
    """Penalty factor of driving ``percentage`` [%] of the completed route outside its lanes."""
    p = min(max(float(percentage), 0.0), 100.0)
    return 1.0 - p / 100.0


@dataclass(frozen=True)
class Infraction:
    """One infraction of the ego on a route."""

    kind: InfractionKind
    """What happened."""
    time_s: float
    """Simulation time of the infraction [s]."""
    location: tuple[float, float]
    """(x, y) in kaido's world frame [m]: the ego's location (collisions, deviation, blocked) or
    the traffic light's / stop sign's location."""
    actor_id: int | None
    """Track id of the other actor (collisions with agents, emergency vehicle), else None."""
    message: str
    """The leaderboard's message for this infraction."""
    value: float | None = None
    """The percentage [%] behind a percentage-based infraction (minimum speed: ego speed over
    the traffic's; outside route lanes: share of the completed route), else None."""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, InfractionKind):
            raise TypeError(f"Infraction.kind: expected an InfractionKind, got {self.kind!r}")
        if not math.isfinite(self.time_s):
            raise ValueError(f"Infraction.time_s: must be finite, got {self.time_s}")
        loc = tuple(float(v) for v in self.location)
        if len(loc) != 2:
            raise ValueError(f"Infraction.location: expected (x, y), got {self.location!r}")
        object.__setattr__(self, "location", loc)
        needs_value = self.kind in (InfractionKind.MIN_SPEED, InfractionKind.OUTSIDE_ROUTE_LANES)
        if needs_value and (self.value is None or not math.isfinite(self.value)):
            raise ValueError(
                f"Infraction.value: a {self.kind.name} infraction needs a finite percentage, "
                f"got {self.value!r}"
            )

    @property
    def penalty(self) -> float:
        """The factor this infraction multiplies the route's infraction penalty by."""
        if self.kind in PENALTIES:
            return PENALTIES[self.kind]
        if self.kind is InfractionKind.MIN_SPEED:
            return min_speed_factor(float(self.value))  # type: ignore[arg-type]
        if self.kind is InfractionKind.OUTSIDE_ROUTE_LANES:
            return outside_route_lanes_factor(float(self.value))  # type: ignore[arg-type]
        return 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.key,
            "time_s": self.time_s,
            "location": list(self.location),
            "actor_id": self.actor_id,
            "message": self.message,
            "value": self.value,
            "penalty": self.penalty,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Infraction:
        try:
            return Infraction(
                kind=InfractionKind(data["kind"]),
                time_s=float(data["time_s"]),
                location=(float(data["location"][0]), float(data["location"][1])),
                actor_id=None if data.get("actor_id") is None else int(data["actor_id"]),
                message=str(data["message"]),
                value=None if data.get("value") is None else float(data["value"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"Infraction.from_json: malformed infraction {data!r}: {err}") from err


def infraction_penalty(infractions: Sequence[Infraction]) -> float:
    """The infraction penalty (IP): the product of the infractions' factors, 1.0 for none."""
    ip = 1.0
    for infraction in infractions:
        ip *= infraction.penalty
    return ip


@dataclass(frozen=True)
class RouteResult:
    """The scored outcome of one route (one episode).

    Scores follow the leaderboard's units: ``driving_score`` and ``route_completion`` in percent
    ``[0, 100]``, ``infraction_penalty`` a factor in ``[0, 1]``.
    """

    route_id: str
    """Identity of the route (leaderboard route id or scenario name)."""
    status: str
    """The leaderboard's status: ``"Perfect"`` (completed, no infraction), ``"Completed"``
    (completed with infractions), ``"Failed"`` (stopped early) or ``"Failed - <reason>"`` (e.g.
    ``"Failed - Agent timed out"``, ``"Failed - Agent deviated from the route"``, ``"Failed -
    Agent got blocked"``, ``"Failed - Agent crashed"``, ``"Failed - Simulation crashed"``)."""
    driving_score: float
    """DS = RC * IP [%]."""
    route_completion: float
    """RC: share of the route's waypoints passed [%] (100 once the route is completed)."""
    infraction_penalty: float
    """IP: product of the infractions' penalty factors, in ``[0, 1]``."""
    infractions: tuple[Infraction, ...]
    """Every infraction, in time order (the outside-route-lanes infraction, at most one, holds
    its final percentage)."""
    duration_game_s: float
    """Simulated time from the first to the last evaluated tick [s]."""
    route_length_m: float
    """Length of the route's reference path [m]."""
    distance_driven_m: float
    """Distance the ego's box centre travelled [m]."""
    comfort: Mapping[str, float] = field(default_factory=dict)
    """nuPlan-style comfort values: per quantity ``<name>_min``, ``<name>_max`` [SI units] and
    ``<name>_within_bounds`` (fraction of ticks in bounds), and ``all_within_bounds`` (fraction of
    ticks with every quantity in bounds); NaN where there were too few ticks."""
    comfortable: bool = True
    """nuPlan's ``ego_is_comfortable``: every quantity within its bounds at every tick."""
    ttc_min_s: float | None = None
    """Smallest time to collision over the route [s]; None when no conflict was ever projected."""
    ttc_violations: int = 0
    """Ticks whose time to collision was below the threshold (nuPlan's 0.95 s)."""
    progress: float = 0.0
    """Furthest distance along the route reached, over the route length, in ``[0, 1]``."""
    outside_route_lanes_m: float = 0.0
    """Route distance [m] covered while outside the route's lanes or on a lane of opposite
    direction."""
    outside_route_lanes_percent: float = 0.0
    """That distance as a percentage of the route distance covered [%]."""
    duration_system_s: float = 0.0
    """Wall-clock time from the evaluator's creation to the route's end [s]."""
    town_name: str = ""
    """Name of the map."""
    crash_message: str | None = None
    """Why the route could not run to its end (an agent or simulator error), else None."""
    index: int = 0
    """Position of the route in its route set."""
    metric_config: Mapping[str, Any] = field(default_factory=dict)
    """The resolved metric configuration used to score the route."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "infractions", tuple(self.infractions))
        object.__setattr__(self, "comfort", MappingProxyType(dict(self.comfort)))
        object.__setattr__(self, "metric_config", MappingProxyType(dict(self.metric_config)))
        for name in ("driving_score", "route_completion"):
            value = getattr(self, name)
            if not (math.isfinite(value) and -1e-9 <= value <= 100.0 + 1e-9):
                raise ValueError(f"RouteResult.{name}: must be in [0, 100] %, got {value}")
        if not (math.isfinite(self.infraction_penalty) and 0.0 <= self.infraction_penalty <= 1.0):
            raise ValueError(
                f"RouteResult.infraction_penalty: must be in [0, 1], got {self.infraction_penalty}"
            )

    @property
    def completed(self) -> bool:
        """Whether the ego reached the end of the route."""
        return self.status in ("Perfect", "Completed")

    def count(self, kind: InfractionKind) -> int:
        """How many infractions of ``kind`` the route has."""
        return sum(1 for infraction in self.infractions if infraction.kind is kind)

    def infraction_messages(self) -> dict[str, list[str]]:
        """The leaderboard's ``infractions`` block: every key, each with its messages."""
        out: dict[str, list[str]] = {kind.key: [] for kind in InfractionKind}
        for infraction in self.infractions:
            out[infraction.kind.key].append(infraction.message)
        return out

    def to_json(self, index: int | None = None) -> dict[str, Any]:
        """The leaderboard's route record, plus kaido's values under ``"kaido"``.

        ``index`` overrides the record's position in its route set.
        """
        return json_safe(
            {
                "index": self.index if index is None else int(index),
                "route_id": self.route_id,
                "scenario_name": self.route_id,
                "weather_id": None,
                "save_name": self.route_id,
                "town_name": self.town_name,
                "status": self.status,
                "num_infractions": len(self.infractions),
                "infractions": self.infraction_messages(),
                "scores": {
                    "score_route": round(self.route_completion, ROUND_DIGITS_SCORE),
                    "score_penalty": round(self.infraction_penalty, ROUND_DIGITS_SCORE),
                    "score_composed": round(self.driving_score, ROUND_DIGITS_SCORE),
                },
                "meta": {
                    "route_length": round(self.route_length_m, ROUND_DIGITS),
                    "duration_game": round(self.duration_game_s, ROUND_DIGITS),
                    "duration_system": round(self.duration_system_s, ROUND_DIGITS),
                },
                "kaido": {
                    "metric_version": METRIC_VERSION,
                    "distance_driven_m": self.distance_driven_m,
                    "progress": self.progress,
                    "route_completion_on_route_lanes": self.route_completion
                    * outside_route_lanes_factor(self.outside_route_lanes_percent),
                    "outside_route_lanes_m": self.outside_route_lanes_m,
                    "outside_route_lanes_percent": self.outside_route_lanes_percent,
                    "comfort": dict(self.comfort),
                    "comfortable": self.comfortable,
                    "ttc_min_s": self.ttc_min_s,
                    "ttc_violations": self.ttc_violations,
                    "crash_message": self.crash_message,
                    "infractions": [i.to_json() for i in self.infractions],
                    "metric_config": dict(self.metric_config),
                },
            }
        )

    @staticmethod
    def from_json(record: Mapping[str, Any]) -> RouteResult:
        """Inverse of :meth:`to_json` for a record kaido wrote (it needs the ``"kaido"`` block)."""
        try:
            extra = record["kaido"]
            scores = record["scores"]
            meta = record["meta"]
            comfort = {k: math.nan if v is None else float(v) for k, v in extra["comfort"].items()}
            return RouteResult(
                route_id=str(record["route_id"]),
                status=str(record["status"]),
                driving_score=float(scores["score_composed"]),
                route_completion=float(scores["score_route"]),
                infraction_penalty=float(scores["score_penalty"]),
                infractions=tuple(Infraction.from_json(i) for i in extra["infractions"]),
                duration_game_s=float(meta["duration_game"]),
                route_length_m=float(meta["route_length"]),
                distance_driven_m=float(extra["distance_driven_m"]),
                comfort=comfort,
                comfortable=bool(extra["comfortable"]),
                ttc_min_s=None if extra["ttc_min_s"] is None else float(extra["ttc_min_s"]),
                ttc_violations=int(extra["ttc_violations"]),
                progress=float(extra["progress"]),
                outside_route_lanes_m=float(extra["outside_route_lanes_m"]),
                outside_route_lanes_percent=float(extra["outside_route_lanes_percent"]),
                duration_system_s=float(meta["duration_system"]),
                town_name=str(record.get("town_name", "")),
                crash_message=extra.get("crash_message"),
                index=int(record["index"]),
                metric_config=dict(extra.get("metric_config", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"RouteResult.from_json: not a kaido route record "
                f"(route_id={record.get('route_id')!r}): {err}"
            ) from err


def json_safe(value: Any) -> Any:
    """``value`` as JSON-ready data with every NaN or infinity replaced by None."""
    value = to_jsonable(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _entry_status(records: Sequence[RouteResult]) -> str:
    if not records:
        return "Started"
    status = "Finished"
    for record in records:
        if "Simulation crashed" in record.status:
            status = "Crashed"
        elif "Agent's sensors were invalid" in record.status:
            status = "Rejected"
    return status


def global_results(
    records: Sequence[RouteResult], *, total_routes: int | None = None
) -> dict[str, Any]:
    """The leaderboard's global statistics of a route set.

    Returns ``{"global_record", "progress", "entry_status", "eligible", "values", "labels"}``:
    ``global_record`` holds ``scores_mean`` (mean over the ``total_routes`` routes, default
    ``len(records)``, of each route's DS, RC and IP), ``scores_std_dev`` (sample standard
    deviation, None for fewer than two routes), ``infractions`` (count per km driven, km driven =
    ``sum(route_length * RC / 100)``; ``outside_route_lanes`` in km), ``status`` (``"Perfect"``,
    ``"Completed"`` or ``"Failed"``) and ``meta`` (total length, durations, failed routes).
    """
    n_total = len(records) if total_routes is None else int(total_routes)
    if n_total < len(records):
        raise ValueError(
            f"global_results: total_routes={n_total} is smaller than the {len(records)} records"
        )
    means = dict.fromkeys(_SCORE_KEYS, 0.0)
    std: dict[str, float | None] = dict.fromkeys(_SCORE_KEYS, None)
    meta: dict[str, Any] = {
        "total_length": 0.0,
        "duration_game": 0.0,
        "duration_system": 0.0,
        "exceptions": [],
    }
    status = "Perfect"
    per_route: list[dict[str, float]] = []
    for i, record in enumerate(records):
        scores = {
            "score_composed": round(record.driving_score, ROUND_DIGITS_SCORE),
            "score_route": round(record.route_completion, ROUND_DIGITS_SCORE),
            "score_penalty": round(record.infraction_penalty, ROUND_DIGITS_SCORE),
        }
        per_route.append(scores)
        for key in _SCORE_KEYS:
            means[key] += scores[key] / n_total
        meta["total_length"] += record.route_length_m
        meta["duration_game"] += record.duration_game_s
        meta["duration_system"] += record.duration_system_s
        result = "Failed" if "Failed" in record.status else record.status
        if result == "Failed":
            meta["exceptions"].append([record.route_id, i, record.status])
            status = "Failed"
        elif status == "Perfect" and result != "Perfect":
            status = result
    means = {k: round(v, ROUND_DIGITS_SCORE) for k, v in means.items()}
    if len(per_route) >= 2:
        for key in _SCORE_KEYS:
            var = sum((s[key] - means[key]) ** 2 for s in per_route) / (len(per_route) - 1)
            std[key] = round(math.sqrt(var), ROUND_DIGITS)
    km_driven = max(
        sum(r.route_length_m / 1000.0 * r.route_completion / 100.0 for r in records), 0.001
    )
    infractions: dict[str, float] = {}
    for kind in InfractionKind:
        if kind is InfractionKind.OUTSIDE_ROUTE_LANES:
            value = sum(r.outside_route_lanes_m for r in records) / 1000.0
        else:
            value = sum(r.count(kind) for r in records) / km_driven
        infractions[kind.key] = round(value, ROUND_DIGITS)
    for key in ("total_length", "duration_game", "duration_system"):
        meta[key] = round(meta[key], ROUND_DIGITS)
    global_record = {
        "index": -1,
        "route_id": -1,
        "status": status,
        "infractions": infractions,
        "scores_mean": means,
        "scores_std_dev": std,
        "meta": meta,
        "kaido": {
            "km_driven": km_driven,
            "infraction_counts": {
                kind.key: sum(r.count(kind) for r in records) for kind in InfractionKind
            },
            "outside_route_lanes_percent_of_km": 100.0
            * infractions[InfractionKind.OUTSIDE_ROUTE_LANES.key]
            / km_driven,
            "progress_mean": sum(r.progress for r in records) / n_total if n_total else 0.0,
            "comfortable_share": (
                sum(1 for r in records if r.comfortable) / len(records) if records else None
            ),
            "ttc_violations": sum(r.ttc_violations for r in records),
            "distance_driven_m": sum(r.distance_driven_m for r in records),
        },
    }
    values = [str(means[k]) for k in _SCORE_KEYS] + [str(infractions[k.key]) for k in _VALUE_KEYS]
    entry = _entry_status(records)
    return json_safe(
        {
            "global_record": global_record,
            "progress": [len(records), n_total],
            "entry_status": entry,
            "eligible": ELIGIBLE_VALUES[entry],
            "values": values,
            "labels": list(GLOBAL_LABELS),
        }
    )


def results_document(
    records: Sequence[RouteResult],
    *,
    provenance: Mapping[str, Any],
    config: Mapping[str, Any],
    sensors: Sequence[Any] = (),
    total_routes: int | None = None,
) -> dict[str, Any]:
    """The whole ``results.json``: the leaderboard's document plus ``"kaido"``.

    ``{"_checkpoint": {"global_record", "progress", "records"}, "entry_status", "eligible",
    "sensors", "values", "labels", "kaido": {"metric_version", "provenance", "config"}}``; records
    are indexed by their position in ``records``. The result survives ``json.dumps`` with
    ``allow_nan=False``.
    """
    summary = global_results(records, total_routes=total_routes)
    metric_configs = [dict(r.metric_config) for r in records]
    doc = {
        "_checkpoint": {
            "global_record": summary["global_record"],
            "progress": summary["progress"],
            "records": [record.to_json(index=i) for i, record in enumerate(records)],
        },
        "entry_status": summary["entry_status"],
        "eligible": summary["eligible"],
        "sensors": list(sensors),
        "values": summary["values"],
        "labels": summary["labels"],
        "kaido": {
            "metric_version": METRIC_VERSION,
            "metric_config": metric_configs[0] if metric_configs else None,
            "provenance": dict(provenance),
            "config": dict(config),
        },
    }
    out: dict[str, Any] = json_safe(doc)
    return out
