"""What every replay reader returns: a :class:`ReplayScenario`, and :func:`open_source`.

A replay source is a recorded drive: agents' tracks, the ego's track when it was recorded, the
road map and the scoring protocol of the dataset it came from. Readers:

========================  =======================================  ===============================
format                    what to pass                             reader
========================  =======================================  ===============================
``av2-motion``            an AV2 motion-forecasting scenario        :mod:`kaido.logs.av2_motion`
                          folder (``scenario_*.parquet`` +
                          ``log_map_archive_*.json``) or the
                          parquet file
``av2-sensor``            an AV2 sensor log folder                 :mod:`kaido.logs.av2_motion`
                          (``city_SE3_egovehicle.feather``,        (:func:`~kaido.logs.av2_motion.
                          ``annotations.feather``, ``map/``)       load_av2_sensor_scenario`)
``womd``                  a Waymo Open Motion ``.tfrecord`` file   :mod:`kaido.logs.womd`
``commonroad``            a CommonRoad ``.xml`` scenario           :mod:`kaido.logs.commonroad`
``kaido-mcap``            a kaido episode log ``.mcap``            :func:`load_kaido_log_scenario`
========================  =======================================  ===============================

Tracks are :class:`~kaido.scene.agents.Track` (box-centre states, world frame, only the valid
samples); :meth:`ReplayScenario.states_on_grid` packs them on the scenario's time grid with a
validity mask for scoring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kaido.scene.agents import AgentClass, AgentIndex, Track
from kaido.scene.road_map import RoadMap

__all__ = [
    "FORMATS",
    "GoalRegion",
    "PlanningProblem",
    "ReplayProtocol",
    "ReplayScenario",
    "detect_format",
    "load_kaido_log_scenario",
    "open_source",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

FORMATS: tuple[str, ...] = ("av2-motion", "av2-sensor", "womd", "commonroad", "kaido-mcap")
"""Format names :func:`open_source` recognises."""

_EXPECTED = (
    "an AV2 motion-forecasting scenario (folder with scenario_*.parquet and "
    "log_map_archive_*.json, or the .parquet), an AV2 sensor log folder "
    "(city_SE3_egovehicle.feather + annotations.feather), a Waymo Open Motion .tfrecord, "
    "a CommonRoad .xml scenario or a kaido .mcap log"
)


@dataclass(frozen=True)
class ReplayProtocol:
    """How a dataset scores prediction on a scenario.

    Steps index the scenario's time grid (:attr:`ReplayScenario.timestamps_ns`): the predictor
    sees steps ``0 .. current_index`` and is scored on ``current_index + 1 .. current_index +
    predicted_steps``.
    """

    name: str
    """Protocol name, e.g. ``av2-motion-forecasting``, ``womd-motion``."""
    step_seconds: float
    """[s] spacing of the time grid."""
    current_index: int
    """Index of the present on the time grid (AV2: 49, WOMD: 10)."""
    predicted_steps: int
    """Number of future steps scored (AV2: 60, WOMD: 80)."""
    scored_track_ids: tuple[int, ...]
    """Tracks the dataset scores (AV2: focal + scored; WOMD: tracks_to_predict)."""
    focal_track_ids: tuple[int, ...] = ()
    """The single-agent subset (AV2: the focal track; WOMD: same as scored)."""
    horizons_s: tuple[float, ...] = ()
    """[s] horizons reported separately (WOMD: 3, 5, 8); the full horizon is always reported."""
    k: int = 6
    """Modes scored."""
    miss_threshold: float = 2.0
    """[m] final displacement above which a prediction is a miss."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_seconds) and self.step_seconds > 0):
            raise ValueError(f"ReplayProtocol.step_seconds must be > 0, got {self.step_seconds}")
        if self.current_index < 0 or self.predicted_steps < 1:
            raise ValueError(
                f"ReplayProtocol: current_index must be >= 0 and predicted_steps >= 1, got "
                f"{self.current_index}, {self.predicted_steps}"
            )

    @property
    def observed_steps(self) -> int:
        """Steps the predictor sees, the present included."""
        return self.current_index + 1

    @property
    def observed_seconds(self) -> float:
        """[s] observed span as the dataset states it (AV2: 5 s, WOMD: 1.1 s)."""
        return self.observed_steps * self.step_seconds

    @property
    def predicted_seconds(self) -> float:
        """[s] predicted span (AV2: 6 s, WOMD: 8 s)."""
        return self.predicted_steps * self.step_seconds


@dataclass(frozen=True, eq=False)
class GoalRegion:
    """One goal state of a planning problem; every given constraint must hold at once."""

    time_steps: tuple[int, int]
    """Inclusive range of time steps (of the scenario's time grid) to reach it in."""
    polygons: tuple[FloatArray, ...] = ()
    """Areas ``(V, 2)`` [m] the ego's position must lie in (any of them); empty: anywhere."""
    lanelet_ids: tuple[int, ...] = ()
    """Source lane ids whose areas count as goal positions (CommonRoad lanelet refs)."""
    velocity: tuple[float, float] | None = None
    """[m/s] allowed speed interval."""
    orientation: tuple[float, float] | None = None
    """[rad] allowed heading interval."""


@dataclass(frozen=True, eq=False)
class PlanningProblem:
    """A CommonRoad planning problem: where the ego starts and where it must get to."""

    problem_id: int
    initial_state: FloatArray
    """``(len(AgentIndex),)`` the ego's initial box-centre state (CommonRoad states are of the
    reference point, which kaido takes as the box centre)."""
    initial_time_step: int
    goals: tuple[GoalRegion, ...]
    """Goal states (reaching any one solves the problem)."""


@dataclass(frozen=True, eq=False)
class ReplayScenario:
    """A recorded scenario in kaido's frame (x east, y north, z up; SI units).

    ``timestamps_ns`` ``(T,)`` int64 strictly increasing is the scenario's time grid; every track
    sample lies on it.
    """

    name: str
    source_format: str
    """One of :data:`FORMATS`."""
    path: Path
    timestamps_ns: IntArray
    tracks: tuple[Track, ...]
    """The other agents (not the ego), box-centre states."""
    ego_track: Track | None
    """The recorded ego as a box-centre track, or None when the source has no ego."""
    road_map: RoadMap | None
    """The road network, or None when the source carries none (kaido logs)."""
    protocol: ReplayProtocol | None
    """The dataset's prediction protocol, or None when it defines none."""
    source_ids: Mapping[int, str] = field(default_factory=dict)
    """kaido track id → the source's own id where they differ (AV2 ``"AV"``)."""
    planning_problems: tuple[PlanningProblem, ...] = ()
    notes: tuple[str, ...] = ()
    """What the reader had to drop or assume (e.g. samples off the time grid)."""

    def __post_init__(self) -> None:
        t = self.timestamps_ns
        if not isinstance(t, np.ndarray) or t.dtype != np.int64 or t.ndim != 1 or t.size < 1:
            raise ValueError(f"ReplayScenario {self.name!r}: timestamps_ns must be int64 (T,)")
        if t.size > 1 and np.any(np.diff(t) <= 0):
            i = int(np.argmax(np.diff(t) <= 0))
            raise ValueError(
                f"ReplayScenario {self.name!r}: timestamps go backwards or repeat at step "
                f"{i + 1} ({int(t[i])} ns then {int(t[i + 1])} ns)"
            )
        if self.source_format not in FORMATS:
            raise ValueError(
                f"ReplayScenario {self.name!r}: source_format {self.source_format!r} is not one "
                f"of {', '.join(FORMATS)}"
            )
        ids = [tr.track_id for tr in self.tracks]
        if len(set(ids)) != len(ids):
            raise ValueError(f"ReplayScenario {self.name!r}: duplicate track ids")

    @property
    def track_ids(self) -> tuple[int, ...]:
        return tuple(tr.track_id for tr in self.tracks)

    def track(self, track_id: int) -> Track:
        """The track ``track_id`` (the ego's when it is the ego's id); ``KeyError`` if none."""
        for tr in self.tracks:
            if tr.track_id == track_id:
                return tr
        if self.ego_track is not None and self.ego_track.track_id == track_id:
            return self.ego_track
        raise KeyError(f"scenario {self.name!r} has no track {track_id}")

    def states_on_grid(self, track_ids: Sequence[int]) -> tuple[FloatArray, BoolArray]:
        """States ``(A, T, len(AgentIndex))`` (NaN where invalid) and validity ``(A, T)``."""
        n_t = self.timestamps_ns.shape[0]
        states = np.full((len(track_ids), n_t, len(AgentIndex)), np.nan)
        valid = np.zeros((len(track_ids), n_t), dtype=bool)
        for a, tid in enumerate(track_ids):
            tr = self.track(tid)
            idx = np.searchsorted(self.timestamps_ns, tr.timestamps_ns)
            on = (idx < n_t) & (self.timestamps_ns[np.minimum(idx, n_t - 1)] == tr.timestamps_ns)
            states[a, idx[on]] = tr.states[on]
            valid[a, idx[on]] = True
        return states, valid


def detect_format(path: Path) -> str:
    """The format of ``path`` (one of :data:`FORMATS`); ``ValueError`` naming the expected ones."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        if any(p.glob("scenario_*.parquet")):
            return "av2-motion"
        if (p / "city_SE3_egovehicle.feather").is_file():
            return "av2-sensor"
        raise ValueError(f"{p}: unknown replay source folder; expected {_EXPECTED}")
    with open(p, "rb") as f:
        head = f.read(64)
    suffix = p.suffix.lower()
    if head.startswith(b"\x89MCAP0\r\n"):
        return "kaido-mcap"
    if head.startswith(b"PAR1") or suffix == ".parquet":
        return "av2-motion"
    if suffix == ".xml" and b"<" in head:
        return "commonroad"
    if suffix in (".tfrecord", ".tfrec") or ".tfrecord" in p.name:
        return "womd"
    raise ValueError(
        f"{p}: unknown replay source format (starts with {head[:8]!r}); expected {_EXPECTED}"
    )


def open_source(path: Path | str) -> ReplayScenario:
    """Read any supported replay source (see the module docstring) as a :class:`ReplayScenario`.

    ``ValueError`` naming the expected formats for anything else; ``FileNotFoundError`` if the
    path does not exist.
    """
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "av2-motion":
        from kaido.logs.av2_motion import load_av2_motion_scenario

        return load_av2_motion_scenario(p)
    if fmt == "av2-sensor":
        from kaido.logs.av2_motion import load_av2_sensor_scenario

        return load_av2_sensor_scenario(p)
    if fmt == "womd":
        from kaido.logs.womd import load_womd_scenario

        return load_womd_scenario(p)
    if fmt == "commonroad":
        from kaido.logs.commonroad import load_commonroad_scenario

        return load_commonroad_scenario(p)
    return load_kaido_log_scenario(p)


def _yaw_of(q: object) -> float:
    w, x, y, z = (float(getattr(q, k)) for k in ("w", "x", "y", "z"))
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def load_kaido_log_scenario(path: Path | str) -> ReplayScenario:
    """A kaido episode log (MCAP) as a scenario: the ``/scene/agents`` boxes as tracks.

    The time grid is the log times of ``/scene/agents``; each ``agent/<id>`` entity is a track
    sample (box centre, yaw, size; velocity = the logged speed along the box yaw, the log keeps
    no velocity direction), the ``ego`` entity is the ego track. Sensors are not read, so a log
    missing a sensor replays the same. A truncated log gives the ticks before the damage (the
    break is in :attr:`ReplayScenario.notes`); log times that go backwards raise ``ValueError``
    naming the first message where they do; a log whose ``log_format`` metadata is not kaido's
    raises ``ValueError`` naming the expected format. No map, no prediction protocol.
    """
    from kaido.logs.mcap_log import LOG_FORMAT, METADATA_NAME, TOPIC_AGENTS, read_log_with_report
    from kaido.logs.mcap_log import log_summary as _summary

    p = Path(path)
    meta = _summary(p)["metadata"].get(METADATA_NAME, {})
    fmt = meta.get("log_format")
    if fmt != LOG_FORMAT:
        raise ValueError(
            f"{p}: log_format {fmt!r} in metadata {METADATA_NAME!r}; expected {LOG_FORMAT!r} "
            f"(a kaido episode log)"
        )
    messages, report = read_log_with_report(p, topics=[TOPIC_AGENTS])
    if report.time_reversals:
        raise ValueError(f"{p}: log times go backwards: {report.time_reversals[0]}")
    per_track: dict[str, list[tuple[int, FloatArray, str]]] = {}
    times: list[int] = []
    for m in messages:
        times.append(m.log_time_ns)
        for ent in m.message.entities:
            if not ent.cubes:
                continue
            cube = ent.cubes[0]
            yaw = _yaw_of(cube.pose.orientation)
            info = {kv.key: kv.value for kv in ent.metadata}
            speed = float(info.get("speed", "0") or 0.0)
            row = np.empty(len(AgentIndex))
            row[AgentIndex.X] = cube.pose.position.x
            row[AgentIndex.Y] = cube.pose.position.y
            row[AgentIndex.YAW] = yaw
            row[AgentIndex.VX] = speed * math.cos(yaw)
            row[AgentIndex.VY] = speed * math.sin(yaw)
            row[AgentIndex.LENGTH] = cube.size.x
            row[AgentIndex.WIDTH] = cube.size.y
            per_track.setdefault(ent.id, []).append((m.log_time_ns, row, info.get("class", "")))
    if not times:
        raise ValueError(f"{p}: no {TOPIC_AGENTS} messages (no tick was recorded)")
    grid = np.array(times, dtype=np.int64)
    tracks = []
    ego: Track | None = None
    for ent_id, samples in per_track.items():
        ts = np.array([s[0] for s in samples], dtype=np.int64)
        states = np.stack([s[1] for s in samples])
        if ent_id == "ego":
            ego = Track(-1, AgentClass.VEHICLE, ts, states)
            continue
        if not ent_id.startswith("agent/") or not ent_id[6:].lstrip("-").isdigit():
            continue
        name = samples[0][2].upper()
        cls = AgentClass[name] if name in AgentClass.__members__ else AgentClass.UNKNOWN
        tracks.append(Track(int(ent_id[6:]), cls, ts, states))
    notes = () if report.complete else (f"log incomplete: {report.error}",)
    return ReplayScenario(
        name=p.stem,
        source_format="kaido-mcap",
        path=p,
        timestamps_ns=grid,
        tracks=tuple(sorted(tracks, key=lambda t: t.track_id)),
        ego_track=ego,
        road_map=None,
        protocol=None,
        notes=notes,
    )
