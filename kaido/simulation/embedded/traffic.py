"""Background traffic, traffic lights and pedestrians from Eclipse SUMO, in process (libsumo).

As in CARLA's own SUMO co-simulation, SUMO runs every road user except the ego on a net that
``netconvert`` builds from the same OpenDRIVE file as the :class:`~kaido.scene.road_map.RoadMap`;
the ego is injected into SUMO each step with ``vehicle.moveToXY`` so SUMO's drivers react to it.

The net (:func:`build_sumo_net`)
--------------------------------
``netconvert`` runs once per OpenDRIVE file and flag set; the net is cached under the file's
SHA-256 (with the flags and the SUMO version) and checked once by loading it in a separate
``sumo`` process (:func:`verify_sumo_net`: libsumo takes the whole process down on some broken
nets instead of raising). The flags (:data:`NETCONVERT_OPTIONS`):

* ``--offset.disable-normalization``: SUMO's x, y are the OpenDRIVE x, y, i.e. kaido's world x, y.
* ``--geometry.remove``: merges edges that meet at non-junction nodes (lane sections, road joins,
  the bends of kaido's towns), so crossings are only built at real junctions. Merging can break
  an edge's lane shapes: in Town06, edge ``-10`` (a road whose lane offsets change along it) came
  out with its three lanes crossing each other, 1.3 m apart where they should be 3.5 m, so SUMO
  drivers on one lane drove into vehicles on the next one that they did not see. Every net is
  therefore checked (:func:`crossing_lane_pairs`: neighbouring lanes of an edge closer than
  :data:`MIN_LANE_SPACING` of their mean width anywhere along it) and, when any pair fails, built
  again without ``--geometry.remove``.
* ``--junctions.join``: joins the clusters of nodes that draw one OpenDRIVE junction.
* ``--opendrive.internal-shapes``: lanes inside junctions follow the OpenDRIVE connecting roads
  (within 7 cm in Town01, against up to 1.4 m for SUMO's own curves).
* ``--tls.guess-signals --tls.discard-simple --tls.join``: traffic lights from the map's signals
  (CARLA's towns: Town01 gets a light at each of its 12 junctions).
* Only for files without any ``<signal>`` (kaido's generated towns): ``--tls.guess true
  --tls.guess.threshold 0``. SUMO's guess puts lights only at junctions whose incoming lanes'
  speeds add up to more than the threshold (default 250 km/h), which junctions of one-lane roads
  never reach; a threshold of 0 gives every junction a light.
* ``--type-files opendriveNetconvert.typ.xml,opendriveNetconvertPedestrians.typ.xml`` (SUMO's
  own type maps) imports OpenDRIVE sidewalks as pedestrian lanes, and ``--crossings.guess``
  builds zebra crossings and walking areas where sidewalks meet at junctions (kaido's towns and
  Town01 both get them: 16 crossings in a 3x3 grid town, 36 in Town01).
* ``--no-turnarounds``: no U-turn connections.

Frames
------
SUMO positions are the *front bumper* centre and SUMO angles are degrees clockwise from north;
kaido's are box centres (agents) or the rear axle (ego) and radians counter-clockwise from +x:
``yaw = radians(90 - angle)``. Agents' boxes stand on the ground: ``z = height / 2``.

Behaviour
---------
* Vehicles roam for ever (as CARLA's traffic manager does): when one reaches the last edges of
  its route, it gets a new random destination, so none vanishes at a route's end. The count of
  background vehicles is held at ``density`` x lane-km (driving lanes outside junctions of the
  road map); vehicles SUMO could not insert or that left are replaced at random free places.
* Drivers slow down for bends: on roads (where SUMO has no such limit) a vehicle's top speed is
  capped to ``sqrt(curve_lateral_accel / curvature)`` of the bends ahead of it in its lane;
  inside junctions each turning lane's speed limit is lowered to the same lateral acceleration
  (SUMO's own is 5.5 m/s²), which SUMO's drivers see coming.
* Persons walk on sidewalks between random places and cross at crossings, obeying the lights.
  Scripted pedestrians (:meth:`SumoTraffic.spawn_pedestrian`) cross anywhere: kaido moves them
  and makes the SUMO drivers in the lanes they occupy brake for them.
* The ego is a SUMO vehicle of its own size, moved with ``moveToXY`` and given its speed each
  step, so SUMO's drivers follow it and queue behind it. Background vehicles that SUMO
  inserted in the very step that placed the ego (unaware of it) and that overlap it or cannot
  stop behind it are removed and replaced elsewhere.
* Collisions are SUMO's: ``--collision.action warn`` with ``--collision.stoptime``: vehicles
  that collide stop where they are for ``collision_stop_time`` and then drive on; kaido's episode
  metrics judge collisions with the ego from the boxes. Teleporting of stuck vehicles is off by
  default (``teleport_time < 0``); with it on, SUMO removes a stuck vehicle and a fresh one is
  inserted elsewhere.
* Determinism: every random choice comes from one NumPy generator seeded with ``seed``, SUMO runs
  with ``--seed seed`` in one thread, and every id list is walked in SUMO's own order, so the
  same seed and the same ego motion give the same agent states, bit for bit.

libsumo keeps one simulation per process: a second :class:`SumoTraffic` cannot start while one is
running (:class:`SumoError`); :meth:`SumoTraffic.close` frees the process for the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from kaido.scene.agents import AgentClass, AgentState
from kaido.scene.frame import TrafficLightColor, TrafficLightState
from kaido.scene.geometry import SE2, Box3D, box2d_overlap, wrap_angle
from kaido.scene.road_map import RoadMap

__all__ = [
    "DEFAULT_VEHICLE_TYPES",
    "NETCONVERT_OPTIONS",
    "SumoError",
    "SumoTraffic",
    "TrafficConfig",
    "VehicleType",
    "build_sumo_net",
    "sumo_binary",
    "verify_sumo_net",
]

FloatArray = npt.NDArray[np.float64]

NS_PER_S = 1_000_000_000


class SumoError(RuntimeError):
    """SUMO failed; the message carries SUMO's own words (netconvert's stderr, libsumo's error)."""


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

#: SUMO vehicle classes that kaido reports as cyclists; every other vehicle class is a vehicle.
CYCLIST_VCLASSES = frozenset({"bicycle"})


@dataclass(frozen=True)
class VehicleType:
    """One kind of background road user (a SUMO vType)."""

    name: str
    """SUMO type id (letters, digits, ``_``)."""
    vclass: str = "passenger"
    """SUMO vehicle class (``passenger``, ``delivery``, ``truck``, ``motorcycle``, ``bicycle``
    ...); ``bicycle`` is reported as ``AgentClass.CYCLIST``, the others as ``VEHICLE``."""
    length: float = 4.6
    """[m] bumper to bumper."""
    width: float = 1.85
    """[m] without mirrors."""
    height: float = 1.45
    """[m]"""
    weight: float = 1.0
    """Relative share of this type among background vehicles (> 0)."""
    max_speed: float = 50.0
    """[m/s] the vehicle's own top speed (lanes' limits apply as well)."""
    accel: float = 2.6
    """[m/s²] the driver's largest acceleration."""
    decel: float = 4.5
    """[m/s²] the driver's comfortable deceleration."""
    emergency_decel: float = 9.0
    """[m/s²] the vehicle's physical braking limit (>= ``decel``)."""
    min_gap: float = 2.5
    """[m] gap to the leader when standing."""

    def __post_init__(self) -> None:
        where = f"VehicleType({self.name!r})"
        if not self.name or not all(c.isalnum() or c == "_" for c in self.name):
            raise ValueError(f"{where}.name: expected letters, digits and '_', got {self.name!r}")
        if not self.vclass or not all(c.isalnum() or c == "_" for c in self.vclass):
            raise ValueError(f"{where}.vclass: expected a SUMO vehicle class, got {self.vclass!r}")
        for name in ("length", "width", "height", "weight", "max_speed", "accel", "decel"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{where}.{name}: expected a finite number > 0, got {value!r}")
        if not (math.isfinite(self.emergency_decel) and self.emergency_decel >= self.decel):
            raise ValueError(
                f"{where}.emergency_decel: expected >= decel ({self.decel}), "
                f"got {self.emergency_decel!r}"
            )
        if not (math.isfinite(self.min_gap) and self.min_gap >= 0):
            raise ValueError(f"{where}.min_gap: expected a finite number >= 0, got {self.min_gap}")

    @property
    def agent_class(self) -> AgentClass:
        """How kaido reports this type."""
        return AgentClass.CYCLIST if self.vclass in CYCLIST_VCLASSES else AgentClass.VEHICLE


#: Background mix: mostly passenger cars, a few vans, trucks, motorcycles and bicycles (sizes of
#: common models: a mid-size sedan, a compact hatchback, an SUV, a panel van, a 7.5 t truck).
DEFAULT_VEHICLE_TYPES: tuple[VehicleType, ...] = (
    VehicleType("sedan", "passenger", 4.7, 1.85, 1.45, weight=0.45),
    VehicleType("hatchback", "passenger", 4.05, 1.75, 1.5, weight=0.2),
    VehicleType("suv", "passenger", 4.8, 1.95, 1.75, weight=0.2),
    VehicleType("van", "delivery", 5.4, 2.05, 2.3, weight=0.06, accel=2.0, decel=4.0),
    VehicleType(
        "truck",
        "truck",
        7.8,
        2.5,
        3.3,
        weight=0.03,
        max_speed=25.0,
        accel=1.3,
        decel=4.0,
        emergency_decel=7.0,
    ),
    VehicleType(
        "motorcycle",
        "motorcycle",
        2.2,
        0.8,
        1.5,
        weight=0.03,
        accel=4.0,
        decel=5.0,
        emergency_decel=9.0,
        min_gap=2.0,
    ),
    VehicleType(
        "bicycle",
        "bicycle",
        1.8,
        0.65,
        1.7,
        weight=0.03,
        max_speed=6.0,
        accel=1.2,
        decel=3.0,
        emergency_decel=6.0,
        min_gap=1.0,
    ),
)


def _check_range(where: str, value: tuple[float, float], low: float) -> tuple[float, float]:
    pair = tuple(value)
    if (
        len(pair) != 2
        or not all(isinstance(v, int | float) and math.isfinite(v) for v in pair)
        or not (low <= pair[0] <= pair[1])
    ):
        raise ValueError(f"{where}: expected (lo, hi) with {low} <= lo <= hi, got {value!r}")
    return (float(pair[0]), float(pair[1]))


@dataclass(frozen=True)
class TrafficConfig:
    """What SUMO simulates around the ego."""

    density: float = 15.0
    """[vehicles per lane-km] of driving lanes outside junctions; 0 = no background vehicles."""
    pedestrian_density: float = 0.0
    """[persons per km of sidewalk] walking where the net has sidewalks; 0 = none."""
    vehicle_types: tuple[VehicleType, ...] = DEFAULT_VEHICLE_TYPES
    """The background mix; each vehicle's type is drawn with probability ``weight / sum``."""
    speed_factor_range: tuple[float, float] = (0.9, 1.1)
    """Each vehicle's desired speed is a factor drawn uniformly from this range times the lane's
    speed limit (SUMO's ``speedFactor``; > 1 drives above the limit)."""
    driver_imperfection: float = 0.2
    """SUMO Krauss ``sigma`` in [0, 1]: random dawdling of drivers (0 = perfect drivers)."""
    curve_lateral_accel: float = 4.0
    """[m/s²] lateral acceleration drivers accept in bends: the speed there is capped to
    ``sqrt(curve_lateral_accel * radius)`` (SUMO's own limit inside junctions is 5.5)."""
    lane_change_duration: float = 2.0
    """[s] duration of a lane change (SUMO ``--lanechange.duration``; 0 = instantaneous)."""
    teleport_time: float = -1.0
    """[s] a vehicle stuck this long is removed by SUMO and replaced elsewhere; <= 0 disables."""
    collision_stop_time: float = 5.0
    """[s] vehicles that collide stand still this long, then drive on (SUMO's collision action
    ``warn`` with ``--collision.stoptime``)."""
    forced_yellow_time: float = 3.0
    """[s] a light forced red while green shows yellow this long first (:meth:`set_light`)."""
    pedestrian_speed_range: tuple[float, float] = (1.0, 1.6)
    """[m/s] each person's walking speed, drawn uniformly from this range."""
    pedestrian_size: tuple[float, float, float] = (0.4, 0.6, 1.75)
    """[m] (length, width, height) of a person's box."""

    def __post_init__(self) -> None:
        for name in ("density", "pedestrian_density"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"TrafficConfig.{name}: expected a finite number >= 0, got {value!r}"
                )
        if self.density > 130.0:
            raise ValueError(
                f"TrafficConfig.density: {self.density} vehicles/lane-km exceeds a jammed lane "
                "(about 130)"
            )
        types = tuple(self.vehicle_types)
        if not types or not all(isinstance(t, VehicleType) for t in types):
            raise ValueError(
                "TrafficConfig.vehicle_types: expected a non-empty tuple of VehicleType"
            )
        names = [t.name for t in types]
        if len(set(names)) != len(names):
            raise ValueError(f"TrafficConfig.vehicle_types: duplicate names in {names}")
        object.__setattr__(self, "vehicle_types", types)
        object.__setattr__(
            self,
            "speed_factor_range",
            _check_range("TrafficConfig.speed_factor_range", self.speed_factor_range, 0.1),
        )
        object.__setattr__(
            self,
            "pedestrian_speed_range",
            _check_range("TrafficConfig.pedestrian_speed_range", self.pedestrian_speed_range, 0.1),
        )
        if not (0.0 <= self.driver_imperfection <= 1.0):
            raise ValueError(
                "TrafficConfig.driver_imperfection: expected [0, 1], got "
                f"{self.driver_imperfection}"
            )
        for name in ("curve_lateral_accel",):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"TrafficConfig.{name}: expected a finite number > 0, got {value}")
        for name in ("lane_change_duration", "collision_stop_time", "forced_yellow_time"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"TrafficConfig.{name}: expected a finite number >= 0, got {value}"
                )
        if not math.isfinite(self.teleport_time):
            raise ValueError(
                f"TrafficConfig.teleport_time: expected finite, got {self.teleport_time}"
            )
        size = tuple(self.pedestrian_size)
        if len(size) != 3 or not all(math.isfinite(v) and v > 0 for v in size):
            raise ValueError(
                "TrafficConfig.pedestrian_size: expected 3 sizes > 0 [m], got "
                f"{self.pedestrian_size}"
            )
        object.__setattr__(self, "pedestrian_size", tuple(float(v) for v in size))


# ----------------------------------------------------------------------------------------------
# The net
# ----------------------------------------------------------------------------------------------


def sumo_binary(name: str) -> Path:
    """Path of a SUMO program (``netconvert``, ``sumo``) of the installed ``eclipse-sumo``.

    Looked up in the ``sumo`` Python package's ``SUMO_HOME/bin``, then beside the running
    interpreter, then on ``PATH``; :class:`SumoError` when none has it.
    """
    candidates: list[Path] = []
    try:
        import sumo

        candidates.append(Path(sumo.SUMO_HOME) / "bin" / name)
    except ImportError:
        pass
    candidates.append(Path(sys.executable).parent / name)
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise SumoError(
        f"SUMO program {name!r} not found (looked in {[str(c) for c in candidates]}); "
        "install the eclipse-sumo package"
    )


def _sumo_version() -> str:
    try:
        import libsumo

        return str(libsumo.getVersion()[1])
    except (ImportError, AttributeError):
        return "unknown"


def _typemap_files() -> str:
    try:
        import sumo

        folder = Path(sumo.SUMO_HOME) / "data" / "typemap"
    except ImportError:
        folder = sumo_binary("netconvert").parent.parent / "data" / "typemap"
    files = [
        folder / "opendriveNetconvert.typ.xml",
        folder / "opendriveNetconvertPedestrians.typ.xml",
    ]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SumoError(f"SUMO type maps missing: {missing}")
    return ",".join(str(f) for f in files)


#: netconvert options for every net (see the module docstring for why each is there).
NETCONVERT_OPTIONS: tuple[str, ...] = (
    "--offset.disable-normalization", "true",
    "--geometry.remove", "true",
    "--junctions.join", "true",
    "--opendrive.internal-shapes", "true",
    "--tls.guess-signals", "true",
    "--tls.discard-simple", "true",
    "--tls.join", "true",
    "--no-turnarounds", "true",
    "--crossings.guess", "true",
    "--no-warnings", "true",
)  # fmt: skip

#: Share of two neighbouring lanes' mean width below which their centrelines are too close: the
#: lane shapes of the edge cross or overlap (:func:`crossing_lane_pairs`).
MIN_LANE_SPACING = 0.6

#: Bumped when the way nets are built changes without the options changing (part of the cache key).
_NET_BUILD_VERSION = "lane-check-1"

#: Added for OpenDRIVE files without any ``<signal>`` element: a traffic light at every junction.
GUESS_TLS_OPTIONS: tuple[str, ...] = ("--tls.guess", "true", "--tls.guess.threshold", "0")


def build_sumo_net(xodr_path: Path, cache_dir: Path) -> Path:
    """The SUMO net of an OpenDRIVE file, built by ``netconvert`` once and cached.

    The net is ``cache_dir/<stem>-<key>.net.xml`` where ``key`` hashes the file's bytes, the
    netconvert options and the SUMO version; an existing net is returned without running
    netconvert. Writes go to a temporary file first, so concurrent builders never see half a net.
    Raises :class:`SumoError` (with netconvert's own message) when the file is missing or
    netconvert fails.
    """
    xodr_path = Path(xodr_path)
    cache_dir = Path(cache_dir)
    if not xodr_path.is_file():
        raise SumoError(f"{xodr_path}: no such OpenDRIVE file")
    data = xodr_path.read_bytes()
    options = list(NETCONVERT_OPTIONS)
    if re.search(rb"<signal[\s/>]", data) is None:
        options += GUESS_TLS_OPTIONS
    key = hashlib.sha256()
    key.update(data)
    key.update("\0".join([*options, _sumo_version(), _NET_BUILD_VERSION]).encode())
    out = cache_dir / f"{xodr_path.stem}-{key.hexdigest()[:20]}.net.xml"
    if out.is_file():
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=".net.xml", dir=cache_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _netconvert(xodr_path, options, tmp)
        if crossing_lane_pairs(tmp):
            keep = options.index("--geometry.remove") + 1
            _netconvert(xodr_path, [*options[:keep], "false", *options[keep + 1 :]], tmp)
        verify_sumo_net(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    _marker(out).write_text(_net_stamp(out), encoding="utf-8")
    return out


def _netconvert(xodr_path: Path, options: list[str], out: Path) -> None:
    """Run netconvert on ``xodr_path`` with ``options``, writing ``out``."""
    command = [
        str(sumo_binary("netconvert")),
        "--opendrive-files", str(xodr_path),
        "--type-files", _typemap_files(),
        *options,
        "-o", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0 or out.stat().st_size == 0:
        message = (result.stderr.strip() or result.stdout.strip())[-4000:]
        raise SumoError(
            f"netconvert failed on {xodr_path} (exit code {result.returncode}): {message}"
        )


def _polyline_at(points: FloatArray, fractions: FloatArray) -> FloatArray:
    """``(F, 2)`` points at ``fractions`` of the arc length of the polyline ``(P, 2)``."""
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    s = fractions * arc[-1]
    return np.stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])], axis=1)


def crossing_lane_pairs(net_path: Path, samples: int = 21) -> list[tuple[str, str, float]]:
    """Neighbouring lanes of the same (non-internal) edge whose centrelines come closer than
    :data:`MIN_LANE_SPACING` x their mean width at one of ``samples`` equal fractions of their
    length: ``(lane, next lane, smallest distance [m])`` for each such pair of the net file."""
    import xml.etree.ElementTree as ET

    fractions = np.linspace(0.0, 1.0, samples)
    bad: list[tuple[str, str, float]] = []
    for edge in ET.parse(net_path).getroot().iter("edge"):
        if edge.get("function") == "internal":
            continue
        lanes = sorted(edge.iter("lane"), key=lambda lane: int(lane.get("index", "0")))
        for a, b in itertools.pairwise(lanes):
            if int(b.get("index", "0")) != int(a.get("index", "0")) + 1:
                continue
            shapes = []
            for lane in (a, b):
                pts = [tuple(map(float, xy.split(",")[:2])) for xy in lane.get("shape", "").split()]
                shapes.append(np.asarray(pts, dtype=np.float64).reshape(-1, 2))
            if min(len(shapes[0]), len(shapes[1])) < 2:
                continue
            width = 0.5 * (float(a.get("width", "3.2")) + float(b.get("width", "3.2")))
            gap = np.hypot(
                *(_polyline_at(shapes[0], fractions) - _polyline_at(shapes[1], fractions)).T
            )
            if float(gap.min()) < MIN_LANE_SPACING * width:
                bad.append((str(a.get("id")), str(b.get("id")), float(gap.min())))
    return bad


def _net_stamp(net_path: Path) -> str:
    stat = net_path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _marker(net_path: Path) -> Path:
    return net_path.with_name(net_path.name + ".verified")


def verify_sumo_net(net_path: Path) -> None:
    """Check that SUMO loads a net, in a separate process; :class:`SumoError` with SUMO's message
    if not. libsumo brings the whole process down on some broken nets instead of raising, so
    :meth:`SumoTraffic.start` runs this first; nets made by :func:`build_sumo_net` carry a marker
    (``<net>.verified``, size and mtime) and are checked only once.
    """
    net_path = Path(net_path)
    if not net_path.is_file():
        raise SumoError(f"{net_path}: no such SUMO net file")
    marker = _marker(net_path)
    if marker.is_file() and marker.read_text(encoding="utf-8") == _net_stamp(net_path):
        return
    command = [
        str(sumo_binary("sumo")),
        "--net-file",
        str(net_path),
        "--end",
        "0",
        "--no-step-log",
        "true",
        "--no-warnings",
        "true",
        "--duration-log.disable",
        "true",
        "--xml-validation",
        "never",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        how = (
            f"crashed with signal {-result.returncode}"
            if result.returncode < 0
            else (f"exit code {result.returncode}")
        )
        message = (result.stderr.strip() or result.stdout.strip())[-4000:]
        raise SumoError(f"SUMO cannot load the net {net_path} ({how}): {message}")


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture what C code writes to file descriptor 2 (SUMO's error messages)."""
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", errors="replace").strip())


# ----------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------


def sumo_angle(yaw: float) -> float:
    """SUMO angle [deg, clockwise from north, in [0, 360)] of a kaido yaw [rad]."""
    return (90.0 - math.degrees(yaw)) % 360.0


def kaido_yaw(angle: float) -> float:
    """kaido yaw [rad, counter-clockwise from +x, in [-pi, pi)] of a SUMO angle [deg]."""
    return float(wrap_angle(math.radians(90.0 - angle)))


# ----------------------------------------------------------------------------------------------
# SUMO lane geometry
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Lane:
    """One SUMO lane: polyline ``points`` (N, 2) [m] with arc length ``s`` (N,) [m]."""

    lane_id: str
    edge: str
    index: int
    points: FloatArray
    s: FloatArray
    length: float
    """[m] SUMO's lane length (lane positions run over [0, length])."""
    width: float
    speed: float
    internal: bool
    pedestrian_only: bool

    def to_lane_pos(self, s_geometric: float | FloatArray) -> float | FloatArray:
        """Lane position of a distance along the polyline (SUMO scales shapes to ``length``)."""
        scale = self.length / max(float(self.s[-1]), 1e-9)
        return s_geometric * scale

    def point_at(self, s_geometric: float) -> tuple[float, float, float]:
        """(x, y, heading [rad]) at a distance along the polyline (clamped)."""
        s = min(max(s_geometric, 0.0), float(self.s[-1]))
        k = int(np.clip(np.searchsorted(self.s, s, side="right") - 1, 0, len(self.s) - 2))
        a, b = self.points[k], self.points[k + 1]
        seg = float(self.s[k + 1] - self.s[k])
        t = (s - float(self.s[k])) / seg if seg > 1e-12 else 0.0
        p = a + t * (b - a)
        return float(p[0]), float(p[1]), math.atan2(float(b[1] - a[1]), float(b[0] - a[0]))


@dataclass(frozen=True, eq=False)
class _LaneIndex:
    """All segments of a set of lanes, for brute-force nearest-lane queries."""

    lanes: tuple[_Lane, ...]
    seg_a: FloatArray
    seg_b: FloatArray
    seg_lane: npt.NDArray[np.int64]
    seg_s0: FloatArray

    @staticmethod
    def build(lanes: list[_Lane]) -> _LaneIndex:
        a, b, idx, s0 = [], [], [], []
        for i, lane in enumerate(lanes):
            a.append(lane.points[:-1])
            b.append(lane.points[1:])
            idx.append(np.full(len(lane.points) - 1, i, dtype=np.int64))
            s0.append(lane.s[:-1])
        if not lanes:
            empty = np.zeros((0, 2))
            return _LaneIndex((), empty, empty, np.zeros(0, dtype=np.int64), np.zeros(0))
        return _LaneIndex(
            tuple(lanes),
            np.concatenate(a),
            np.concatenate(b),
            np.concatenate(idx),
            np.concatenate(s0),
        )

    def nearest(
        self,
        x: float,
        y: float,
        max_distance: float,
        heading: float | None = None,
        max_heading_error: float = math.pi / 3,
    ) -> list[tuple[_Lane, float, float]]:
        """Lanes within ``max_distance`` of (x, y), nearest first: (lane, s, distance)."""
        if len(self.seg_a) == 0:
            return []
        ab = self.seg_b - self.seg_a
        p = np.array([x, y])
        denom = np.maximum((ab * ab).sum(axis=1), 1e-12)
        t = np.clip(((p - self.seg_a) * ab).sum(axis=1) / denom, 0.0, 1.0)
        dist = np.linalg.norm(self.seg_a + t[:, None] * ab - p, axis=1)
        ok = dist <= max_distance
        if heading is not None:
            seg_heading = np.arctan2(ab[:, 1], ab[:, 0])
            ok &= np.abs(wrap_angle(seg_heading - heading)) <= max_heading_error
        out: list[tuple[_Lane, float, float]] = []
        seen: set[int] = set()
        for k in np.flatnonzero(ok)[np.argsort(dist[ok], kind="stable")]:
            li = int(self.seg_lane[k])
            if li in seen:
                continue
            seen.add(li)
            s = float(self.seg_s0[k] + t[k] * math.sqrt(denom[k]))
            out.append((self.lanes[li], s, float(dist[k])))
        return out


def _arc_length(points: FloatArray) -> FloatArray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def _curve_profile(
    lane: _Lane, lateral_accel: float, window: float = 5.0
) -> tuple[FloatArray, FloatArray] | None:
    """Bend speed limits along a lane: (lane positions (K,), speeds (K,) [m/s]), or None.

    Curvature at each vertex is the heading change over ``window`` metres of arc around it (or
    the whole lane, if shorter), robust to the short segments polylines have at joins; only
    points whose bend speed ``sqrt(lateral_accel / curvature)`` is below the lane's limit are
    kept.
    """
    pts, s = lane.points, lane.s
    if len(pts) < 3 or s[-1] < 1.0:
        return None
    window = min(window, float(s[-1]))
    seg = np.diff(pts, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    keep = seg_len > 1e-6
    if keep.sum() < 2:
        return None
    headings = np.unwrap(np.arctan2(seg[keep, 1], seg[keep, 0]))
    mids = (s[:-1] + 0.5 * seg_len)[keep]
    probe = np.arange(0.0, float(s[-1]) + 1e-9, 1.0)
    before = np.interp(np.clip(probe - 0.5 * window, 0.0, None), mids, headings)
    after = np.interp(np.clip(probe + 0.5 * window, None, float(s[-1])), mids, headings)
    span = np.clip(probe + 0.5 * window, None, float(s[-1])) - np.clip(
        probe - 0.5 * window, 0.0, None
    )
    curvature = np.abs(after - before) / np.maximum(span, 1e-6)
    with np.errstate(divide="ignore"):
        speed = np.sqrt(lateral_accel / np.maximum(curvature, 1e-9))
    slow = speed < lane.speed * 1.2
    if not np.any(slow):
        return None
    positions = np.asarray(lane.to_lane_pos(probe[slow]), dtype=np.float64)
    return positions, speed[slow]


# ----------------------------------------------------------------------------------------------
# Traffic lights
# ----------------------------------------------------------------------------------------------

_STATE_COLOR = {
    "r": TrafficLightColor.RED,
    "s": TrafficLightColor.RED,  # green right-turn arrow that requires stopping first
    "u": TrafficLightColor.RED,  # red + yellow: about to turn green
    "y": TrafficLightColor.YELLOW,
    "g": TrafficLightColor.GREEN,
    "o": TrafficLightColor.OFF,
}
#: When the links of one light disagree, the most restrictive colour is reported.
_RESTRICTIVENESS = {
    TrafficLightColor.RED: 0,
    TrafficLightColor.YELLOW: 1,
    TrafficLightColor.GREEN: 2,
    TrafficLightColor.OFF: 3,
    TrafficLightColor.UNKNOWN: 4,
}
_COLOR_STATE = {
    TrafficLightColor.RED: "r",
    TrafficLightColor.YELLOW: "y",
    TrafficLightColor.GREEN: "G",
    TrafficLightColor.OFF: "O",
}


def state_color(chars: str) -> TrafficLightColor:
    """The colour a light shows given the SUMO state characters of its links."""
    colors = [_STATE_COLOR.get(c.lower(), TrafficLightColor.UNKNOWN) for c in chars]
    if not colors:
        return TrafficLightColor.UNKNOWN
    return min(colors, key=lambda c: _RESTRICTIVENESS[c])


@dataclass(frozen=True, eq=False)
class _LightGroup:
    """Adjacent incoming lanes of one edge whose links at one SUMO tls always show alike."""

    light_id: str
    tls: str
    links: tuple[int, ...]
    lanes: tuple[str, ...]
    stop_line: FloatArray
    """(2, 2): [right end, left end] seen by the approaching traffic."""
    position: tuple[float, float, float]
    affected_lanes: tuple[int, ...]


@dataclass
class _Natural:
    """A tls's own fixed-time program, advanced by kaido while a light is forced."""

    program: str
    phases: list[tuple[float, str]]
    phase: int
    next_switch: float

    def state_at(self, time_s: float) -> str:
        while time_s >= self.next_switch - 1e-9:
            self.phase = (self.phase + 1) % len(self.phases)
            self.next_switch += max(self.phases[self.phase][0], 1e-3)
        return self.phases[self.phase][1]


@dataclass
class _Override:
    group: _LightGroup
    char: str
    until: float
    yellow_until: float = -math.inf
    exclusive: bool = False
    """Other links of the tls are held red (forcing green or yellow must not open conflicts)."""


# ----------------------------------------------------------------------------------------------
# Scripted pedestrians
# ----------------------------------------------------------------------------------------------


@dataclass
class _ScriptedWalker:
    """A person kaido moves in a straight line (SUMO cannot walk across a road mid-block)."""

    sumo_id: str
    start: FloatArray
    end: FloatArray
    speed: float
    started: float


_PEDESTRIAN_TYPE = "kaido_pedestrian"
_EGO_TYPE = "kaido_ego"
#: [m] a scripted pedestrian this close to a lane's edge blocks that lane for SUMO's drivers.
_WALKER_LANE_MARGIN = 1.0
#: [m] how far upstream of a blocked spot SUMO's drivers are told about it.
_WALKER_LOOKAHEAD = 80.0
#: [m] (along, across) margins of the ego's box inside which background vehicles that SUMO
#: inserted in the ego's first step are removed again.
EGO_CLEARANCE = (5.0, 0.5)
#: Lane-change mode of scripted lane changes: SUMO's default (1621) except that a TraCI request
#: only avoids immediate collisions instead of respecting the other drivers' gaps (a cut-in).
_SCRIPTED_LANE_CHANGE_MODE = 1365


# ----------------------------------------------------------------------------------------------
# The simulation
# ----------------------------------------------------------------------------------------------


@dataclass
class _Counters:
    vehicles: int = 0
    persons: int = 0
    scripted: int = 0
    routes: int = 0
    tracks: int = 0


@dataclass
class _State:
    """Everything that changes while a simulation runs (reset at :meth:`SumoTraffic.start`)."""

    step: int = 0
    counters: _Counters = field(default_factory=_Counters)
    track_of: dict[str, int] = field(default_factory=dict)
    sumo_of: dict[int, str] = field(default_factory=dict)
    vtype_of: dict[str, VehicleType] = field(default_factory=dict)
    background: set[str] = field(default_factory=set)
    scripted: set[str] = field(default_factory=set)
    persons: set[str] = field(default_factory=set)
    person_dest: dict[str, tuple[str, float]] = field(default_factory=dict)
    walkers: dict[str, _ScriptedWalker] = field(default_factory=dict)
    route_len: dict[str, int] = field(default_factory=dict)
    curve_cap: dict[str, float] = field(default_factory=dict)
    speed_cmd: dict[str, float] = field(default_factory=dict)
    blocked: dict[str, float] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    parked: set[str] = field(default_factory=set)
    overrides: dict[str, _Override] = field(default_factory=dict)
    natural: dict[str, _Natural] = field(default_factory=dict)
    ego: bool = False
    ego_fresh: bool = False
    agents: tuple[AgentState, ...] | None = None


class SumoTraffic:
    """SUMO road users and traffic lights around the ego, in kaido's frame (see the module doc).

    ``start`` loads the net into libsumo and spawns the background; ``add_ego`` injects the ego;
    each ``step`` moves the ego to its new pose and advances SUMO by ``dt``. ``agents`` and
    ``traffic_lights`` report the state after the last step. Scripted-event primitives spawn and
    command individual road users and force lights.
    """

    EGO_ID: ClassVar[str] = "ego"
    _running: ClassVar[SumoTraffic | None] = None

    def __init__(
        self,
        road_map: RoadMap,
        net_path: Path,
        config: TrafficConfig,
        *,
        seed: int,
        dt: float,
        ego_length: float,
        ego_width: float,
        ego_height: float = 1.5,
        ego_rear_overhang: float = 1.0,
    ) -> None:
        """``ego_*`` sizes [m]; ``ego_rear_overhang`` [m] from the rear bumper to the rear axle
        (the ego's pose is its rear axle; SUMO wants its front bumper)."""
        if not isinstance(road_map, RoadMap):
            raise TypeError(
                f"SumoTraffic.road_map: expected RoadMap, got {type(road_map).__name__}"
            )
        if not isinstance(config, TrafficConfig):
            raise TypeError(
                f"SumoTraffic.config: expected TrafficConfig, got {type(config).__name__}"
            )
        if (
            isinstance(seed, bool)
            or not isinstance(seed, int | np.integer)
            or not (0 <= seed < 2**31)
        ):
            raise ValueError(f"SumoTraffic.seed: expected an int in [0, 2^31), got {seed!r}")
        if not (math.isfinite(dt) and 0.001 <= dt <= 1.0):
            raise ValueError(f"SumoTraffic.dt: expected a step in [0.001, 1] s, got {dt!r}")
        for name, value in (
            ("ego_length", ego_length),
            ("ego_width", ego_width),
            ("ego_height", ego_height),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"SumoTraffic.{name}: expected a size > 0 [m], got {value!r}")
        if not (math.isfinite(ego_rear_overhang) and 0 <= ego_rear_overhang < ego_length):
            raise ValueError(
                f"SumoTraffic.ego_rear_overhang: expected [0, ego_length), got {ego_rear_overhang}"
            )
        self.road_map = road_map
        self.net_path = Path(net_path)
        self.config = config
        self.seed = int(seed)
        self.dt = float(dt)
        self._dt_ns = int(round(self.dt * NS_PER_S))
        self.ego_length = float(ego_length)
        self.ego_width = float(ego_width)
        self.ego_height = float(ego_height)
        self.ego_rear_overhang = float(ego_rear_overhang)
        self._rng = np.random.default_rng(self.seed)
        self._state = _State()
        self._started = False
        self._sumo: Any = None
        # static net data, filled by start()
        self._lanes: dict[str, _Lane] = {}
        self._vehicle_index = _LaneIndex.build([])
        self._sidewalk_index = _LaneIndex.build([])
        self._sidewalk_ids: list[str] = []
        self._curves: dict[str, tuple[FloatArray, FloatArray]] = {}
        self._edges: list[str] = []
        self._edge_weights: FloatArray = np.zeros(0)
        self._walk_edges: list[str] = []
        self._walk_weights: FloatArray = np.zeros(0)
        self._lights: dict[str, _LightGroup] = {}
        self._light_order: tuple[str, ...] = ()
        self._light_states: dict[tuple[str, TrafficLightColor], TrafficLightState] = {}
        self.target_vehicles = 0
        """Background vehicles held in the simulation (``density`` x lane-km)."""
        self.target_persons = 0
        """Background persons held in the simulation (``pedestrian_density`` x sidewalk km)."""

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether this instance holds the process's libsumo simulation."""
        return self._started

    def __enter__(self) -> SumoTraffic:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Load the net into libsumo, set up types and lights, spawn the background traffic."""
        if self._started:
            raise SumoError("SumoTraffic.start: this simulation is already running")
        if SumoTraffic._running is not None:
            raise SumoError(
                "libsumo runs one simulation per process and another SumoTraffic is running "
                f"(net {SumoTraffic._running.net_path}); close() it before starting a new one"
            )
        import libsumo

        if libsumo.isLoaded():
            raise SumoError(
                "a libsumo simulation started outside SumoTraffic is loaded in this process; "
                "call libsumo.close() first"
            )
        verify_sumo_net(self.net_path)
        cfg = self.config
        args = [
            str(sumo_binary("sumo")),
            "--net-file", str(self.net_path),
            "--seed", str(self.seed),
            "--step-length", repr(self.dt),
            "--begin", "0",
            "--threads", "1",
            "--no-step-log", "true",
            "--no-warnings", "true",
            "--duration-log.disable", "true",
            "--xml-validation", "never",
            "--collision.action", "warn",
            "--collision.stoptime", repr(cfg.collision_stop_time),
            "--collision.check-junctions", "true",
            "--collision.mingap-factor", "0",
            "--time-to-teleport", repr(cfg.teleport_time if cfg.teleport_time > 0 else -1.0),
            "--time-to-teleport.remove", "true",
            "--lanechange.duration", repr(cfg.lane_change_duration),
            "--max-depart-delay", "5",
            "--ignore-route-errors", "true",
        ]  # fmt: skip
        with _captured_stderr() as captured:
            try:
                libsumo.start(args)
            except libsumo.TraCIException as err:
                failed: BaseException | None = err
            else:
                failed = None
        if failed is not None:
            raise SumoError(
                f"libsumo could not start on {self.net_path}: {failed}: {captured[0]}"
            ) from failed
        self._sumo = libsumo
        self._started = True
        SumoTraffic._running = self
        self._rng = np.random.default_rng(self.seed)
        self._state = _State()
        try:
            self._setup()
        except libsumo.TraCIException as err:
            self.close()
            raise SumoError(f"SUMO rejected the traffic set-up on {self.net_path}: {err}") from err
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """End the simulation and free libsumo for the next one (idempotent)."""
        if not self._started:
            return
        self._started = False
        if SumoTraffic._running is self:
            SumoTraffic._running = None
        try:
            self._sumo.close()
        except self._sumo.TraCIException as err:
            raise SumoError(f"libsumo failed to close: {err}") from err

    def _require_running(self, what: str) -> Any:
        if not self._started:
            raise SumoError(f"SumoTraffic.{what}: the simulation is not running (call start())")
        return self._sumo

    # -- set-up --------------------------------------------------------------------------------

    def _setup(self) -> None:
        ls = self._sumo
        cfg = self.config
        for vt in cfg.vehicle_types:
            self._define_vtype(vt.name, vt)
        ego_type = VehicleType(
            _EGO_TYPE,
            "passenger",
            self.ego_length,
            self.ego_width,
            self.ego_height,
            max_speed=80.0,
            accel=10.0,
            decel=10.0,
            emergency_decel=12.0,
        )
        self._define_vtype(_EGO_TYPE, ego_type)
        ls.vehicletype.copy("DEFAULT_PEDTYPE", _PEDESTRIAN_TYPE)
        plen, pwid, phei = cfg.pedestrian_size
        ls.vehicletype.setLength(_PEDESTRIAN_TYPE, plen)
        ls.vehicletype.setWidth(_PEDESTRIAN_TYPE, pwid)
        ls.vehicletype.setHeight(_PEDESTRIAN_TYPE, phei)
        ls.vehicletype.setMaxSpeed(_PEDESTRIAN_TYPE, cfg.pedestrian_speed_range[1])
        self._read_lanes()
        self._read_lights()
        lane_km = (
            sum(lane.length for lane in self.road_map.driving_lanes if not lane.in_junction)
            / 1000.0
        )
        self.target_vehicles = int(round(cfg.density * lane_km)) if self._edges else 0
        sidewalk_km = sum(self._lanes[lid].length for lid in self._sidewalk_ids) / 1000.0
        self.target_persons = (
            int(round(cfg.pedestrian_density * sidewalk_km)) if self._walk_edges else 0
        )
        self._top_up_vehicles(self.target_vehicles)
        self._top_up_persons(self.target_persons)

    def _define_vtype(self, type_id: str, vt: VehicleType) -> None:
        ls = self._sumo
        ls.vehicletype.copy("DEFAULT_VEHTYPE", type_id)
        ls.vehicletype.setVehicleClass(type_id, vt.vclass)
        ls.vehicletype.setLength(type_id, vt.length)
        ls.vehicletype.setWidth(type_id, vt.width)
        ls.vehicletype.setHeight(type_id, vt.height)
        ls.vehicletype.setMaxSpeed(type_id, vt.max_speed)
        ls.vehicletype.setAccel(type_id, vt.accel)
        ls.vehicletype.setDecel(type_id, vt.decel)
        ls.vehicletype.setEmergencyDecel(type_id, vt.emergency_decel)
        ls.vehicletype.setMinGap(type_id, vt.min_gap)
        ls.vehicletype.setImperfection(type_id, self.config.driver_imperfection)
        ls.vehicletype.setSpeedDeviation(type_id, 0.0)

    def _read_lanes(self) -> None:
        ls = self._sumo
        lanes: dict[str, _Lane] = {}
        for lane_id in ls.lane.getIDList():
            allowed = tuple(ls.lane.getAllowed(lane_id))
            pedestrian_only = allowed == ("pedestrian",)
            if not pedestrian_only and allowed and "passenger" not in allowed:
                continue  # rail, bike-only, ...
            points = np.asarray(ls.lane.getShape(lane_id), dtype=np.float64).reshape(-1, 2)
            if len(points) < 2:
                continue
            edge = ls.lane.getEdgeID(lane_id)
            lanes[lane_id] = _Lane(
                lane_id=lane_id,
                edge=edge,
                index=int(lane_id.rsplit("_", 1)[1]),
                points=points,
                s=_arc_length(points),
                length=float(ls.lane.getLength(lane_id)),
                width=float(ls.lane.getWidth(lane_id)),
                speed=float(ls.lane.getMaxSpeed(lane_id)),
                internal=edge.startswith(":"),
                pedestrian_only=pedestrian_only,
            )
        self._lanes = lanes
        vehicle_lanes = [ln for ln in lanes.values() if not ln.pedestrian_only]
        self._vehicle_index = _LaneIndex.build(vehicle_lanes)
        self._sidewalk_ids = [
            ln.lane_id for ln in lanes.values() if ln.pedestrian_only and not ln.internal
        ]
        self._sidewalk_index = _LaneIndex.build([lanes[i] for i in self._sidewalk_ids])
        edge_len: dict[str, float] = {}
        for lane in vehicle_lanes:
            if not lane.internal:
                edge_len[lane.edge] = edge_len.get(lane.edge, 0.0) + lane.length
        self._edges = list(edge_len)
        weights = np.array([edge_len[e] for e in self._edges], dtype=np.float64)
        self._edge_weights = weights / weights.sum() if len(weights) else weights
        walk_len: dict[str, float] = {}
        for lane_id in self._sidewalk_ids:
            lane = lanes[lane_id]
            walk_len[lane.edge] = walk_len.get(lane.edge, 0.0) + lane.length
        self._walk_edges = list(walk_len)
        weights = np.array([walk_len[e] for e in self._walk_edges], dtype=np.float64)
        self._walk_weights = weights / weights.sum() if len(weights) else weights
        self._curves = {}
        for lane in vehicle_lanes:
            profile = _curve_profile(lane, self.config.curve_lateral_accel)
            if profile is None:
                continue
            if lane.internal:
                # a turn inside a junction: one limit for the lane, which SUMO's drivers see
                # coming and slow down for on their own
                limit = max(float(profile[1].min()), 2.0)
                if limit < lane.speed:
                    ls.lane.setMaxSpeed(lane.lane_id, limit)
            else:
                self._curves[lane.lane_id] = profile

    def _read_lights(self) -> None:
        ls = self._sumo
        groups: dict[str, _LightGroup] = {}
        for tls in ls.trafficlight.getIDList():
            program = ls.trafficlight.getProgram(tls)
            logics = [
                lg for lg in ls.trafficlight.getAllProgramLogics(tls) if lg.programID == program
            ]
            phases = [ph.state for ph in logics[0].phases] if logics else []
            by_key: dict[tuple[str, tuple[str, ...]], dict[int, set[int]]] = {}
            for link_index, links in enumerate(ls.trafficlight.getControlledLinks(tls)):
                for incoming, _outgoing, _via in links:
                    lane = self._lanes.get(incoming)
                    if lane is None or lane.internal or lane.pedestrian_only:
                        continue
                    pattern = tuple(state[link_index].lower() for state in phases)
                    by_key.setdefault((lane.edge, pattern), {}).setdefault(lane.index, set()).add(
                        link_index
                    )
            per_edge: dict[str, int] = {}
            runs: list[tuple[str, list[int], set[int]]] = []
            for (edge, _pattern), lanes in by_key.items():
                run: list[int] = []
                links_of_run: set[int] = set()
                for index in sorted(lanes):
                    if run and index != run[-1] + 1:
                        runs.append((edge, run, links_of_run))
                        run, links_of_run = [], set()
                    run.append(index)
                    links_of_run |= lanes[index]
                runs.append((edge, run, links_of_run))
            for edge, _run, _links in runs:
                per_edge[edge] = per_edge.get(edge, 0) + 1
            seen: dict[str, int] = {}
            for edge, run, links_of_run in runs:
                k = seen.get(edge, 0)
                seen[edge] = k + 1
                light_id = f"{tls}:{edge}" if per_edge[edge] == 1 else f"{tls}:{edge}:{k}"
                groups[light_id] = self._light_group(
                    light_id, tls, [f"{edge}_{i}" for i in run], tuple(sorted(links_of_run))
                )
        self._lights = groups
        self._light_order = tuple(groups)
        self._light_states = {}

    def _light_group(
        self, light_id: str, tls: str, lane_ids: list[str], links: tuple[int, ...]
    ) -> _LightGroup:
        ends = []
        affected: set[int] = set()
        for lane_id in lane_ids:
            lane = self._lanes[lane_id]
            x, y, heading = lane.point_at(float(lane.s[-1]))
            # the heading of the last metre (the very last segment may be tiny)
            bx, by, _ = lane.point_at(float(lane.s[-1]) - 1.0)
            if math.hypot(x - bx, y - by) > 1e-3:
                heading = math.atan2(y - by, x - bx)
            ends.append((x, y, heading, lane.width))
            # the road-map lane that ends here: project a point just before the stop line
            px, py, ph = lane.point_at(float(lane.s[-1]) - 1.5)
            found = self.road_map.project(
                px,
                py,
                max_distance=0.5 * lane.width + 0.75,
                heading=ph,
                max_heading_error=math.pi / 4,
                include_junctions=False,
            )
            if found:
                affected.add(found[0].lane)
        rx, ry, rh, rw = ends[0]  # lane index 0 is the rightmost
        lx, ly, lh, lw = ends[-1]
        right = np.array([rx + 0.5 * rw * math.sin(rh), ry - 0.5 * rw * math.cos(rh)])
        left = np.array([lx - 0.5 * lw * math.sin(lh), ly + 0.5 * lw * math.cos(lh)])
        stop_line = np.stack([right, left]).astype(np.float64)
        stop_line.flags.writeable = False
        pole = right + 1.0 * np.array([math.sin(rh), -math.cos(rh)])
        return _LightGroup(
            light_id=light_id,
            tls=tls,
            links=links,
            lanes=tuple(lane_ids),
            stop_line=stop_line,
            position=(float(pole[0]), float(pole[1]), 0.0),
            affected_lanes=tuple(sorted(affected)),
        )

    # -- spawning the background ------------------------------------------------------------------

    def _new_track(self, sumo_id: str) -> int:
        st = self._state
        st.counters.tracks += 1
        st.track_of[sumo_id] = st.counters.tracks
        st.sumo_of[st.counters.tracks] = sumo_id
        return st.counters.tracks

    def _draw_vtype(self) -> VehicleType:
        types = self.config.vehicle_types
        weights = np.array([t.weight for t in types], dtype=np.float64)
        return types[int(self._rng.choice(len(types), p=weights / weights.sum()))]

    def _random_route(self, origin: str, vtype: str, tries: int = 8) -> list[str] | None:
        """A route from ``origin`` to a random destination edge (weighted by lane length)."""
        ls = self._sumo
        for _ in range(tries):
            dest = self._edges[int(self._rng.choice(len(self._edges), p=self._edge_weights))]
            if dest == origin:
                continue
            route = ls.simulation.findRoute(origin, dest, vtype)
            if route.edges and len(route.edges) >= 2:
                return list(route.edges)
        return None

    def _add_route(self, edges: list[str]) -> str:
        st = self._state
        st.counters.routes += 1
        route_id = f"kaido_route_{st.counters.routes}"
        self._sumo.route.add(route_id, edges)
        return route_id

    def _top_up_vehicles(self, count: int) -> None:
        ls = self._sumo
        st = self._state
        low, high = self.config.speed_factor_range
        for _ in range(count):
            vt = self._draw_vtype()
            origin = self._edges[int(self._rng.choice(len(self._edges), p=self._edge_weights))]
            edges = self._random_route(origin, vt.name)
            factor = float(self._rng.uniform(low, high))
            if edges is None:
                continue
            st.counters.vehicles += 1
            vid = f"veh{st.counters.vehicles}"
            ls.vehicle.add(
                vid,
                self._add_route(edges),
                typeID=vt.name,
                depart="now",
                departLane="random",
                departPos="random_free",
                departSpeed="max",
            )
            ls.vehicle.setSpeedFactor(vid, factor)
            st.vtype_of[vid] = vt
            st.background.add(vid)
            st.route_len[vid] = len(edges)
            self._new_track(vid)

    def _walk(self, pid: str, origin: str, origin_pos: float, tries: int = 8) -> bool:
        """Append a walk from (origin, origin_pos) to a random sidewalk place; False if none."""
        ls = self._sumo
        for _ in range(tries):
            dest = self._walk_edges[
                int(self._rng.choice(len(self._walk_edges), p=self._walk_weights))
            ]
            if dest == origin:
                continue
            dest_len = ls.lane.getLength(f"{dest}_0")
            arrival = float(self._rng.uniform(0.1, 0.9)) * dest_len
            stages = ls.simulation.findIntermodalRoute(
                origin, dest, pType=_PEDESTRIAN_TYPE, departPos=origin_pos, arrivalPos=arrival
            )
            if not stages or not stages[0].edges:
                continue
            for stage in stages:
                ls.person.appendStage(pid, stage)
            self._state.person_dest[pid] = (dest, arrival)
            return True
        return False

    def _top_up_persons(self, count: int) -> None:
        ls = self._sumo
        st = self._state
        low, high = self.config.pedestrian_speed_range
        for _ in range(count):
            edge = self._walk_edges[
                int(self._rng.choice(len(self._walk_edges), p=self._walk_weights))
            ]
            length = ls.lane.getLength(f"{edge}_0")
            pos = float(self._rng.uniform(0.1, 0.9)) * length
            speed = float(self._rng.uniform(low, high))
            st.counters.persons += 1
            pid = f"ped{st.counters.persons}"
            ls.person.add(pid, edge, pos, depart=-3, typeID=_PEDESTRIAN_TYPE)
            if not self._walk(pid, edge, pos):
                ls.person.remove(pid)
                continue
            ls.person.setSpeed(pid, speed)
            st.persons.add(pid)
            self._new_track(pid)

    # -- the ego --------------------------------------------------------------------------------

    def _ego_front(self, pose: SE2) -> tuple[float, float, float]:
        """SUMO (x, y, angle) of the ego's front bumper for its rear-axle pose."""
        ahead = self.ego_length - self.ego_rear_overhang
        return (
            pose.x + ahead * math.cos(pose.yaw),
            pose.y + ahead * math.sin(pose.yaw),
            sumo_angle(pose.yaw),
        )

    def add_ego(self, pose: SE2, speed: float) -> None:
        """Inject the ego (SUMO id ``"ego"``) at its rear-axle ``pose`` [m, rad] and ``speed``
        [m/s]; it is placed at once (no insertion checks) and SUMO's drivers react to it."""
        ls = self._require_running("add_ego")
        if self._state.ego:
            raise SumoError("SumoTraffic.add_ego: the ego is already in the simulation")
        self._check_pose("add_ego", pose, speed)
        x, y, _ = self._ego_front(pose)
        near = self._vehicle_index.nearest(x, y, 50.0, None)
        normal = [n for n in near if not n[0].internal]
        edge = normal[0][0].edge if normal else self._edges[0]
        ls.vehicle.add(
            self.EGO_ID,
            self._add_route([edge]),
            typeID=_EGO_TYPE,
            depart="now",
            departSpeed=repr(float(speed)),
        )
        ls.vehicle.setSpeedMode(self.EGO_ID, 0)
        ls.vehicle.setLaneChangeMode(self.EGO_ID, 0)
        self._state.ego = True
        self._state.ego_fresh = True
        self._place_ego(pose, speed)

    def _place_ego(self, pose: SE2, speed: float) -> None:
        ls = self._sumo
        x, y, angle = self._ego_front(pose)
        ls.vehicle.moveToXY(self.EGO_ID, "", -1, x, y, angle, keepRoute=2)
        ls.vehicle.setSpeed(self.EGO_ID, max(float(speed), 0.0))

    @staticmethod
    def _check_pose(where: str, pose: SE2, speed: float) -> None:
        if not isinstance(pose, SE2):
            raise TypeError(f"SumoTraffic.{where}: pose must be SE2, got {type(pose).__name__}")
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed >= 0):
            raise ValueError(f"SumoTraffic.{where}: speed must be finite and >= 0, got {speed!r}")

    def ego_front(self) -> tuple[float, float, float] | None:
        """SUMO's (x, y, angle [deg]) of the ego's front bumper, or None without an ego."""
        ls = self._require_running("ego_front")
        if not self._state.ego or self.EGO_ID not in ls.vehicle.getIDList():
            return None
        x, y = ls.vehicle.getPosition(self.EGO_ID)
        return float(x), float(y), float(ls.vehicle.getAngle(self.EGO_ID))

    # -- stepping -------------------------------------------------------------------------------

    @property
    def time(self) -> float:
        """[s] simulation time after the last step."""
        return self._state.step * self.dt

    @property
    def timestamp_ns(self) -> int:
        """[ns] simulation time after the last step."""
        return self._state.step * self._dt_ns

    def step(self, ego_pose: SE2 | None = None, ego_speed: float = 0.0) -> None:
        """Advance SUMO by ``dt``; with an ego, first move it to ``ego_pose`` (rear axle) at
        ``ego_speed`` [m/s]. SUMO places it exactly there during the step."""
        ls = self._require_running("step")
        st = self._state
        if st.ego:
            if ego_pose is None:
                raise ValueError("SumoTraffic.step: the ego is in the simulation: pass ego_pose")
            self._check_pose("step", ego_pose, ego_speed)
            if self.EGO_ID not in ls.vehicle.getIDList() and self.EGO_ID not in set(
                ls.simulation.getPendingVehicles()
            ):
                # SUMO removed it (teleport of a stuck vehicle): put it back
                ls.vehicle.add(self.EGO_ID, self._add_route([self._edges[0]]), typeID=_EGO_TYPE)
                ls.vehicle.setSpeedMode(self.EGO_ID, 0)
                ls.vehicle.setLaneChangeMode(self.EGO_ID, 0)
            self._place_ego(ego_pose, ego_speed)
        next_time = (st.step + 1) * self.dt
        self._apply_overrides(next_time)
        self._move_walkers(next_time)
        try:
            ls.simulationStep()
        except ls.TraCIException as err:
            raise SumoError(f"SUMO failed at t={next_time:.3f} s: {err}") from err
        st.step += 1
        st.agents = None
        if st.ego_fresh and ego_pose is not None:
            self._clear_around_ego(ego_pose)
        self._maintain()

    def _clear_around_ego(self, pose: SE2) -> None:
        """Remove the background vehicles that SUMO inserted in the step that placed the ego
        without knowing of it: those overlapping the ego's box grown by ``EGO_CLEARANCE`` and
        those behind it in its lane that cannot stop in time. They are replaced elsewhere."""
        ls = self._sumo
        st = self._state
        st.ego_fresh = False
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        ahead = 0.5 * self.ego_length - self.ego_rear_overhang
        long_margin, side_margin = EGO_CLEARANCE
        ego_box = np.array(
            [
                pose.x + ahead * c,
                pose.y + ahead * s,
                pose.yaw,
                self.ego_length + 2.0 * long_margin,
                self.ego_width + 2.0 * side_margin,
            ]
        )
        rear = np.array([pose.x - self.ego_rear_overhang * c, pose.y - self.ego_rear_overhang * s])
        for agent in self.agents():
            vid = self.sumo_id(agent.track_id)
            if vid not in st.background:
                continue
            box = agent.box
            vt = st.vtype_of[vid]
            front = np.array([box.x, box.y]) + 0.5 * box.length * np.array(
                [math.cos(box.yaw), math.sin(box.yaw)]
            )
            along = float(np.dot(rear - front, [c, s]))  # gap to the ego's rear
            across = float(np.dot(front - rear, [-s, c]))
            stopping = agent.speed**2 / (2.0 * vt.decel) + vt.min_gap
            behind = (
                0.0 <= along < stopping
                and abs(across) < 0.5 * (self.ego_width + box.width) + side_margin
                and abs(wrap_angle(box.yaw - pose.yaw)) < math.pi / 4
            )
            packed = np.array([box.x, box.y, box.yaw, box.length, box.width])
            if behind or bool(box2d_overlap(ego_box, packed)):
                ls.vehicle.remove(vid)
                st.background.discard(vid)
        st.agents = None

    def _maintain(self) -> None:
        """After a step: forget departed users, extend routes, cap speeds, keep the density."""
        ls = self._sumo
        st = self._state
        running = ls.vehicle.getIDList()
        alive = set(running) | set(ls.simulation.getPendingVehicles())
        for vid in [v for v in st.background | st.scripted if v not in alive]:
            st.background.discard(vid)
            st.scripted.discard(vid)
            for table in (st.route_len, st.curve_cap, st.speed_cmd, st.blocked):
                table.pop(vid, None)
            st.held.discard(vid)
            st.parked.discard(vid)
        blocks = self._walker_blocks()
        departed = set(ls.simulation.getDepartedIDList())
        for vid in running:
            if vid == self.EGO_ID or (vid not in st.background and vid not in st.scripted):
                continue
            if vid in st.held:
                self._park(vid)
                continue
            n = st.route_len.get(vid, 0)
            if ls.vehicle.getRouteIndex(vid) >= n - 2:
                self._extend_route(vid)
            cap = self._cap_for_curves(vid)
            if vid in departed and vid in st.background and ls.vehicle.getSpeed(vid) > cap:
                # inserted in a bend at the lane's speed: start at the bend's speed instead
                ls.vehicle.setPreviousSpeed(vid, cap)
            self._apply_speed(vid, blocks.get(vid))
        deficit = self.target_vehicles - len(st.background)
        if deficit > 0:
            self._top_up_vehicles(deficit)
        persons = set(ls.person.getIDList())
        for pid in [p for p in st.persons if p not in persons]:
            st.persons.discard(pid)
            st.person_dest.pop(pid, None)
        for pid in ls.person.getIDList():
            if pid in st.persons and ls.person.getRemainingStages(pid) <= 1:
                dest, pos = st.person_dest[pid]
                self._walk(pid, dest, pos)
        deficit = self.target_persons - len(st.persons)
        if deficit > 0:
            self._top_up_persons(deficit)

    def _extend_route(self, vid: str) -> None:
        """A new random destination from the end of the vehicle's route (it roams for ever)."""
        ls = self._sumo
        route = ls.vehicle.getRoute(vid)
        for _ in range(8):
            dest = self._edges[int(self._rng.choice(len(self._edges), p=self._edge_weights))]
            if dest in route:
                continue
            try:
                ls.vehicle.changeTarget(vid, dest)
            except ls.TraCIException:
                continue
            self._state.route_len[vid] = len(ls.vehicle.getRoute(vid))
            return
        # nowhere to go from here: stop asking (it leaves at its route's end and is replaced)
        self._state.route_len[vid] = 10**9

    def _cap_for_curves(self, vid: str) -> float:
        """Cap the vehicle's top speed so that it can slow down for the bends ahead on its lane;
        returns the cap [m/s] (inf when none)."""
        ls = self._sumo
        st = self._state
        profile = self._curves.get(ls.vehicle.getLaneID(vid))
        cap = math.inf
        if profile is not None:
            positions, speeds = profile
            pos = ls.vehicle.getLanePosition(vid)
            ahead = positions >= pos - 1.0
            if np.any(ahead):
                decel = 0.7 * st.vtype_of[vid].decel
                reach = np.maximum(positions[ahead] - pos, 0.0)
                cap = float(np.min(np.sqrt(speeds[ahead] ** 2 + 2.0 * decel * reach)))
        top = st.vtype_of[vid].max_speed
        if cap < top:
            cap = max(cap, 2.0)
            if abs(st.curve_cap.get(vid, math.inf) - cap) > 0.1:
                ls.vehicle.setMaxSpeed(vid, cap)
                st.curve_cap[vid] = cap
        elif vid in st.curve_cap:
            ls.vehicle.setMaxSpeed(vid, top)
            del st.curve_cap[vid]
        return cap

    def _apply_speed(self, vid: str, block: float | None) -> None:
        """Combine a scripted speed command with a scripted pedestrian blocking the lane."""
        ls = self._sumo
        st = self._state
        command = st.speed_cmd.get(vid, -1.0)
        if block is not None:
            target = block if command < 0 else min(command, block)
            if abs(st.blocked.get(vid, -2.0) - target) > 0.05:
                ls.vehicle.setSpeed(vid, target)
                st.blocked[vid] = target
        elif vid in st.blocked:
            del st.blocked[vid]
            ls.vehicle.setSpeed(vid, command)

    def _park(self, vid: str) -> None:
        """Turn a held vehicle that has come to rest into a SUMO stop (never teleported)."""
        ls = self._sumo
        st = self._state
        if vid in st.parked or ls.vehicle.getSpeed(vid) > 0.05:
            return
        lane_id = ls.vehicle.getLaneID(vid)
        if lane_id.startswith(":"):
            return  # stops cannot be set inside junctions; setSpeed(0) holds it there
        try:
            ls.vehicle.setStop(
                vid,
                ls.vehicle.getRoadID(vid),
                pos=ls.vehicle.getLanePosition(vid),
                laneIndex=ls.vehicle.getLaneIndex(vid),
                duration=1e7,
            )
        except ls.TraCIException:
            return
        st.parked.add(vid)

    # -- observation --------------------------------------------------------------------------

    def agents(self) -> tuple[AgentState, ...]:
        """Every SUMO vehicle but the ego and every person, boxes in kaido's world frame."""
        ls = self._require_running("agents")
        st = self._state
        if st.agents is not None:
            return st.agents
        stamp = self.timestamp_ns
        out: list[AgentState] = []
        for vid in ls.vehicle.getIDList():
            vt = st.vtype_of.get(vid)
            if vt is None:
                continue  # the ego
            x, y = ls.vehicle.getPosition(vid)
            if x == ls.INVALID_DOUBLE_VALUE:
                continue  # spawned, placed during the next step
            out.append(
                _agent(
                    st.track_of[vid],
                    vt.agent_class,
                    x,
                    y,
                    ls.vehicle.getAngle(vid),
                    ls.vehicle.getSpeed(vid),
                    vt.length,
                    vt.width,
                    vt.height,
                    stamp,
                )
            )
        plen, pwid, phei = self.config.pedestrian_size
        for pid in ls.person.getIDList():
            track = st.track_of.get(pid)
            if track is None:
                continue
            x, y = ls.person.getPosition(pid)
            if x == ls.INVALID_DOUBLE_VALUE:
                continue
            walker = st.walkers.get(pid)
            speed = (
                walker.speed
                if walker is not None and self._walking(walker)
                else (ls.person.getSpeed(pid) if walker is None else 0.0)
            )
            out.append(
                _agent(
                    track,
                    AgentClass.PEDESTRIAN,
                    x,
                    y,
                    ls.person.getAngle(pid),
                    speed,
                    plen,
                    pwid,
                    phei,
                    stamp,
                )
            )
        st.agents = tuple(out)
        return st.agents

    def traffic_lights(self) -> tuple[TrafficLightState, ...]:
        """One light per group of adjacent incoming lanes of an edge that show alike, with its
        stop line across those lanes' ends and the road-map driving lanes that end there."""
        ls = self._require_running("traffic_lights")
        states: dict[str, str] = {}
        out: list[TrafficLightState] = []
        for light_id in self._light_order:
            group = self._lights[light_id]
            state = states.get(group.tls)
            if state is None:
                state = states[group.tls] = ls.trafficlight.getRedYellowGreenState(group.tls)
            color = state_color("".join(state[i] for i in group.links))
            light = self._light_states.get((light_id, color))
            if light is None:  # immutable: one object per light and colour
                light = self._light_states[(light_id, color)] = TrafficLightState(
                    light_id=light_id,
                    color=color,
                    position=group.position,
                    stop_line=group.stop_line,
                    affected_lane_ids=group.affected_lanes,
                )
            out.append(light)
        return tuple(out)

    def track_id(self, sumo_id: str) -> int:
        """kaido track id of a SUMO vehicle or person id."""
        try:
            return self._state.track_of[sumo_id]
        except KeyError:
            raise KeyError(f"SumoTraffic: no road user {sumo_id!r}") from None

    def sumo_id(self, track_id: int) -> str:
        """SUMO id of a kaido track id."""
        try:
            return self._state.sumo_of[int(track_id)]
        except KeyError:
            raise KeyError(f"SumoTraffic: no road user with track id {track_id!r}") from None

    # -- scripted-event primitives ---------------------------------------------------------------

    def _live_vehicle(self, where: str, track_id: int) -> str:
        ls = self._require_running(where)
        vid = self._state.sumo_of.get(int(track_id))
        if vid is None or vid not in self._state.vtype_of:
            raise ValueError(f"SumoTraffic.{where}: track {track_id!r} is not a SUMO vehicle")
        if vid not in ls.vehicle.getIDList() and vid not in set(ls.simulation.getPendingVehicles()):
            raise ValueError(f"SumoTraffic.{where}: vehicle {track_id} has left the simulation")
        return vid

    def spawn_vehicle(self, pose: SE2, speed: float, *, lane_hint: int | None = None) -> int:
        """A vehicle (the configured mix's most common type) with its box centre at ``pose``
        (kaido frame) driving at ``speed`` [m/s] along the lane there; returns its track id.

        It is placed during the next step, without insertion checks, on the SUMO lane nearest
        to the pose whose direction matches the pose's yaw (with ``lane_hint``, a road-map lane
        index, the SUMO lane nearest to that lane's centreline there). It keeps ``speed`` (as
        far as the traffic ahead allows) until :meth:`set_vehicle_speed` changes it.
        """
        ls = self._require_running("spawn_vehicle")
        self._check_pose("spawn_vehicle", pose, speed)
        vt = max(
            self.config.vehicle_types, key=lambda t: (t.agent_class == AgentClass.VEHICLE, t.weight)
        )
        fx = pose.x + 0.5 * vt.length * math.cos(pose.yaw)
        fy = pose.y + 0.5 * vt.length * math.sin(pose.yaw)
        qx, qy = fx, fy
        if lane_hint is not None:
            if not (0 <= int(lane_hint) < self.road_map.num_driving_lanes):
                raise ValueError(
                    f"SumoTraffic.spawn_vehicle: lane_hint {lane_hint} is not a driving lane"
                )
            hint = self.road_map.lanes[int(lane_hint)]
            k = int(np.argmin(np.linalg.norm(hint.centerline[:, :2] - [fx, fy], axis=1)))
            qx, qy = float(hint.centerline[k, 0]), float(hint.centerline[k, 1])
        near = self._vehicle_index.nearest(qx, qy, 6.0, pose.yaw, math.pi / 4)
        if not near:
            raise ValueError(
                f"SumoTraffic.spawn_vehicle: no SUMO lane within 6 m of ({pose.x:.1f}, "
                f"{pose.y:.1f}) heading {pose.yaw:.2f} rad"
            )
        lane = near[0][0]
        edge = lane.edge
        if lane.internal:
            successors = ls.lane.getLinks(lane.lane_id)
            edge = ls.lane.getEdgeID(successors[0][0]) if successors else self._edges[0]
        edges = self._random_route(edge, vt.name) or [edge]
        st = self._state
        st.counters.scripted += 1
        vid = f"scripted{st.counters.scripted}"
        ls.vehicle.add(
            vid,
            self._add_route(edges),
            typeID=vt.name,
            depart="now",
            departSpeed=repr(float(speed)),
        )
        ls.vehicle.moveToXY(vid, edge, -1, fx, fy, sumo_angle(pose.yaw), keepRoute=2)
        ls.vehicle.setSpeed(vid, float(speed))
        ls.vehicle.setSpeedFactor(vid, 1.0)
        st.vtype_of[vid] = vt
        st.scripted.add(vid)
        st.route_len[vid] = len(edges)
        st.speed_cmd[vid] = float(speed)
        return self._new_track(vid)

    def set_vehicle_speed(self, track_id: int, speed: float, decel: float | None = None) -> None:
        """Command a vehicle's speed [m/s] (held until changed; ``speed < 0`` hands it back to
        its driver), slowing down at ``decel`` [m/s²] when given (e.g. a hard brake to 0). A
        vehicle stopped by :meth:`hold_vehicle` drives again."""
        vid = self._live_vehicle("set_vehicle_speed", track_id)
        ls = self._sumo
        if not math.isfinite(speed):
            raise ValueError(f"SumoTraffic.set_vehicle_speed: speed must be finite, got {speed}")
        if decel is not None:
            if not (math.isfinite(decel) and decel > 0):
                raise ValueError(f"SumoTraffic.set_vehicle_speed: decel must be > 0, got {decel}")
            vt = self._state.vtype_of[vid]
            ls.vehicle.setDecel(vid, float(decel))
            ls.vehicle.setEmergencyDecel(vid, max(float(decel), vt.emergency_decel))
        st = self._state
        if vid in st.held:  # a held vehicle drives again
            st.held.discard(vid)
            if vid in st.parked:
                st.parked.discard(vid)
                ls.vehicle.resume(vid)
        command = float(speed) if speed >= 0 else -1.0
        st.speed_cmd[vid] = command
        st.blocked.pop(vid, None)
        ls.vehicle.setSpeed(vid, command)

    def change_lane(self, track_id: int, direction: int, duration: float) -> None:
        """Make a vehicle change lanes: ``direction`` +1 = to the left, -1 = to the right; it
        then keeps the new lane for ``duration`` [s]. It goes even into small gaps (a cut-in),
        only avoiding immediate collisions."""
        vid = self._live_vehicle("change_lane", track_id)
        if direction not in (-1, 1):
            raise ValueError(
                f"SumoTraffic.change_lane: direction must be +1 or -1, got {direction}"
            )
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"SumoTraffic.change_lane: duration must be > 0 s, got {duration}")
        ls = self._sumo
        ls.vehicle.setLaneChangeMode(vid, _SCRIPTED_LANE_CHANGE_MODE)
        ls.vehicle.changeLaneRelative(vid, int(direction), float(duration))

    def hold_vehicle(self, track_id: int) -> None:
        """Stop a vehicle in its lane and keep it there (a broken-down car)."""
        vid = self._live_vehicle("hold_vehicle", track_id)
        ls = self._sumo
        st = self._state
        st.speed_cmd[vid] = 0.0
        st.held.add(vid)
        ls.vehicle.setLaneChangeMode(vid, 0)
        ls.vehicle.setSpeed(vid, 0.0)

    def set_light(self, light_id: str, color: TrafficLightColor, duration: float) -> None:
        """Force a light (an id of :meth:`traffic_lights`) to ``color`` for ``duration`` [s].

        RED from green first shows yellow for ``forced_yellow_time``. Forcing GREEN or YELLOW
        holds the tls's other links red meanwhile (no conflicting flows); with RED or OFF the
        rest of the junction keeps its program. Afterwards the program resumes where it would
        have been.
        """
        self._require_running("set_light")
        group = self._lights.get(str(light_id))
        if group is None:
            raise ValueError(
                f"SumoTraffic.set_light: no light {light_id!r} (e.g. {list(self._light_order)[:8]})"
            )
        color = TrafficLightColor(color)
        if color not in _COLOR_STATE:
            raise ValueError(f"SumoTraffic.set_light: cannot force {color.name}")
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"SumoTraffic.set_light: duration must be > 0 s, got {duration}")
        ls = self._sumo
        st = self._state
        now = self.time
        if group.tls not in st.natural:
            program = ls.trafficlight.getProgram(group.tls)
            logic = next(
                lg
                for lg in ls.trafficlight.getAllProgramLogics(group.tls)
                if lg.programID == program
            )
            st.natural[group.tls] = _Natural(
                program=program,
                phases=[(float(ph.duration), ph.state) for ph in logic.phases],
                phase=int(ls.trafficlight.getPhase(group.tls)),
                next_switch=float(ls.trafficlight.getNextSwitch(group.tls)),
            )
        override = _Override(group, _COLOR_STATE[color], now + duration)
        current = state_color(
            "".join(ls.trafficlight.getRedYellowGreenState(group.tls)[i] for i in group.links)
        )
        if color == TrafficLightColor.RED and current == TrafficLightColor.GREEN:
            override.yellow_until = now + self.config.forced_yellow_time
            override.until += self.config.forced_yellow_time
        override.exclusive = color in (TrafficLightColor.GREEN, TrafficLightColor.YELLOW)
        st.overrides[light_id] = override
        self._apply_overrides(now + self.dt)  # effective from the next step on

    def _apply_overrides(self, time_s: float) -> None:
        ls = self._sumo
        st = self._state
        if not st.natural:
            return
        by_tls: dict[str, list[_Override]] = {}
        for light_id in list(st.overrides):
            ov = st.overrides[light_id]
            if time_s >= ov.until - 1e-9:
                del st.overrides[light_id]
                continue
            by_tls.setdefault(ov.group.tls, []).append(ov)
        for tls in list(st.natural):
            natural = st.natural[tls]
            state = list(natural.state_at(time_s))
            active = by_tls.get(tls)
            if not active:
                # hand the junction back to its program where it would be now
                ls.trafficlight.setProgram(tls, natural.program)
                ls.trafficlight.setPhase(tls, natural.phase)
                ls.trafficlight.setPhaseDuration(tls, max(natural.next_switch - self.time, self.dt))
                del st.natural[tls]
                continue
            if any(ov.exclusive for ov in active):
                state = ["r"] * len(state)
            for ov in active:
                char = "y" if time_s < ov.yellow_until else ov.char
                for i in ov.group.links:
                    state[i] = char
            ls.trafficlight.setRedYellowGreenState(tls, "".join(state))

    # -- scripted pedestrians -------------------------------------------------------------------

    def spawn_pedestrian(self, start: npt.ArrayLike, end: npt.ArrayLike, speed: float) -> int:
        """A person walking straight from ``start`` to ``end`` ((2,) world [m]) at ``speed``
        [m/s], e.g. across the road; it then stands at ``end``. Returns its track id.

        SUMO's persons only walk on sidewalks and crossings, so kaido moves this one
        (``person.moveToXY`` each step) and makes SUMO's drivers brake for it: a vehicle whose
        lane it is on (or within 1 m of) slows down to stop short of it.
        """
        ls = self._require_running("spawn_pedestrian")
        a = np.asarray(start, dtype=np.float64)
        b = np.asarray(end, dtype=np.float64)
        if (
            a.shape != (2,)
            or b.shape != (2,)
            or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)))
        ):
            raise ValueError(
                f"SumoTraffic.spawn_pedestrian: start and end must be finite (2,) points, got "
                f"{a.tolist()} and {b.tolist()}"
            )
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"SumoTraffic.spawn_pedestrian: speed must be > 0 m/s, got {speed}")
        if not self._walk_edges:
            # no sidewalk in the net: anchor the person on any edge
            edge, pos = self._edges[0], 0.0
        else:
            near = self._sidewalk_index.nearest(float(a[0]), float(a[1]), 1e6)
            edge, pos = near[0][0].edge, float(near[0][0].to_lane_pos(near[0][1]))
        st = self._state
        st.counters.scripted += 1
        pid = f"walker{st.counters.scripted}"
        ls.person.add(pid, edge, pos, depart=-3, typeID=_PEDESTRIAN_TYPE)
        ls.person.appendWaitingStage(pid, 1e7)
        st.walkers[pid] = _ScriptedWalker(pid, a.copy(), b.copy(), float(speed), self.time)
        self._move_walkers(self.time + self.dt)
        return self._new_track(pid)

    def _walking(self, walker: _ScriptedWalker) -> bool:
        dist = float(np.linalg.norm(walker.end - walker.start))
        return walker.speed * (self.time - walker.started) < dist

    def _walker_position(self, walker: _ScriptedWalker, time_s: float) -> FloatArray:
        delta = walker.end - walker.start
        dist = float(np.linalg.norm(delta))
        if dist < 1e-9:
            return walker.start.copy()
        travelled = min(walker.speed * max(time_s - walker.started, 0.0), dist)
        return walker.start + delta * (travelled / dist)

    def _move_walkers(self, time_s: float) -> None:
        ls = self._sumo
        for pid, walker in self._state.walkers.items():
            p = self._walker_position(walker, time_s)
            delta = walker.end - walker.start
            yaw = math.atan2(float(delta[1]), float(delta[0]))
            # SUMO's person position is its front, like a vehicle's
            front = p + 0.5 * self.config.pedestrian_size[0] * np.array(
                [math.cos(yaw), math.sin(yaw)]
            )
            ls.person.moveToXY(
                pid, "", float(front[0]), float(front[1]), sumo_angle(yaw), keepRoute=2
            )

    def _walker_blocks(self) -> dict[str, float]:
        """Speed caps [m/s] for the vehicles approaching a scripted pedestrian in their lane."""
        ls = self._sumo
        st = self._state
        caps: dict[str, float] = {}
        if not st.walkers:
            return caps
        for walker in st.walkers.values():
            p = self._walker_position(walker, self.time)
            for lane, s, dist in self._vehicle_index.nearest(float(p[0]), float(p[1]), 6.0):
                if dist > 0.5 * lane.width + _WALKER_LANE_MARGIN:
                    continue
                spot = float(lane.to_lane_pos(s))
                for vid in ls.lane.getLastStepVehicleIDs(lane.lane_id):
                    if vid not in st.vtype_of:
                        continue
                    gap = spot - ls.vehicle.getLanePosition(vid) - 2.0
                    if gap < -1.0 or gap > _WALKER_LOOKAHEAD:
                        continue
                    # brake at 60 % of the comfortable deceleration when there is room
                    decel = 0.6 * st.vtype_of[vid].decel
                    cap = math.sqrt(2.0 * decel * max(gap, 0.0))
                    caps[vid] = min(caps.get(vid, math.inf), cap)
        return caps


def _agent(
    track_id: int,
    agent_class: AgentClass,
    x: float,
    y: float,
    angle: float,
    speed: float,
    length: float,
    width: float,
    height: float,
    timestamp_ns: int,
) -> AgentState:
    """An agent from SUMO's front-bumper position and angle."""
    yaw = kaido_yaw(angle)
    c, s = math.cos(yaw), math.sin(yaw)
    return AgentState(
        track_id=track_id,
        agent_class=agent_class,
        box=Box3D(
            x - 0.5 * length * c, y - 0.5 * length * s, 0.5 * height, yaw, length, width, height
        ),
        velocity=(speed * c, speed * s),
        timestamp_ns=timestamp_ns,
    )
