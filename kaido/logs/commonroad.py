"""CommonRoad scenarios (XML, versions 2018b and 2020a) as :class:`ReplayScenario`.

Read with ``xml.etree`` (``commonroad-io`` would pin ``protobuf`` 3.20 and break the MCAP
logs' protobuf stack, so it is not used):

* lanelets → lanes of a :class:`~kaido.scene.lane_graph.LaneGraphMap`: the centre is the
  midpoint of the left and right bounds; ``predecessor``/``successor`` refs are the lane graph;
  ``adjacentLeft``/``adjacentRight`` with ``drivingDir="same"`` are neighbours (lane changes
  allowed unless the shared bound is marked ``solid``/``broad_solid``); ``laneletType``
  ``sidewalk``/``crosswalk`` become ``SIDEWALK``, ``bicycleLane`` ``BIKING``, the rest driving
  lanes, ``intersection`` marks intersection lanes; ``speedLimit`` (2018b) is the speed limit;
* dynamic obstacles (2018b ``<obstacle>`` with ``role`` dynamic, 2020a ``<dynamicObstacle>``)
  → tracks: ``initialState`` plus ``trajectory`` states at integer time steps; the state's
  position is the box centre, ``velocity`` the speed along ``orientation``; static obstacles →
  one-sample ``STATIC`` tracks at their initial time step;
* ``planningProblem`` → :class:`PlanningProblem` (initial state, goal regions: time-step
  interval, rectangles/polygons/circles as polygons, lanelet refs, velocity and orientation
  intervals).

CommonRoad's frame is right-handed (x, y in metres, orientation counter-clockwise from x): kaido's
world frame as it is. Time step ``k`` is at ``k * timeStepSize`` seconds.

Prediction protocol (CommonRoad defines none; kaido's): the present is the step at
:data:`OBSERVED_SECONDS`, the horizon :data:`PREDICTED_SECONDS` (cut to the recording), scored on
the dynamic obstacles valid at the present and at the horizon's last step.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kaido.logs.replay_source import GoalRegion, PlanningProblem, ReplayProtocol, ReplayScenario
from kaido.scene.agents import AgentClass, AgentIndex, Track
from kaido.scene.lane_graph import LaneGraphMap, LaneRecord, midpoint_line
from kaido.scene.road_map import LaneType, MapError

__all__ = [
    "COMMONROAD_CLASSES",
    "OBSERVED_SECONDS",
    "PREDICTED_SECONDS",
    "load_commonroad_scenario",
]

FloatArray = npt.NDArray[np.float64]

OBSERVED_SECONDS = 1.0
"""[s] observed span of kaido's CommonRoad prediction protocol."""
PREDICTED_SECONDS = 3.0
"""[s] predicted span (cut to what the recording holds)."""

COMMONROAD_CLASSES = {
    "car": AgentClass.VEHICLE,
    "truck": AgentClass.VEHICLE,
    "bus": AgentClass.VEHICLE,
    "taxi": AgentClass.VEHICLE,
    "priorityVehicle": AgentClass.VEHICLE,
    "motorcycle": AgentClass.CYCLIST,
    "bicycle": AgentClass.CYCLIST,
    "pedestrian": AgentClass.PEDESTRIAN,
    "parkedVehicle": AgentClass.STATIC,
    "constructionZone": AgentClass.STATIC,
    "roadBoundary": AgentClass.STATIC,
    "building": AgentClass.STATIC,
    "pillar": AgentClass.STATIC,
    "median_strip": AgentClass.STATIC,
}
"""CommonRoad obstacle ``type`` → kaido class (others: ``UNKNOWN``)."""

_LANELET_TYPES = {
    "sidewalk": LaneType.SIDEWALK,
    "crosswalk": LaneType.SIDEWALK,
    "bicycleLane": LaneType.BIKING,
    "driveWay": LaneType.DRIVING,
}
_NO_CROSSING = ("solid", "broad_solid")


def _float(where: str, el: ET.Element | None) -> float:
    if el is None or el.text is None:
        raise ValueError(f"{where}: missing number")
    try:
        return float(el.text)
    except ValueError as exc:
        raise ValueError(f"{where}: not a number: {el.text!r}") from exc


def _bound(where: str, el: ET.Element | None) -> tuple[FloatArray, str]:
    if el is None:
        raise ValueError(f"{where}: missing")
    pts = [
        (_float(f"{where}/point/x", p.find("x")), _float(f"{where}/point/y", p.find("y")))
        for p in el.findall("point")
    ]
    if len(pts) < 2:
        raise ValueError(f"{where}: needs at least 2 points, has {len(pts)}")
    marking = el.findtext("lineMarking", default="NONE") or "NONE"
    return np.array(pts, dtype=np.float64), marking.strip()


def _ref(el: ET.Element | None) -> int | None:
    if el is None or el.get("ref") is None:
        return None
    return int(el.get("ref", ""))


def _lanelets(path: Path, root: ET.Element) -> list[LaneRecord]:
    records = []
    for el in root.iter("lanelet"):
        if el.find("leftBound") is None:
            continue  # a goal position's lanelet ref, not a lanelet
        lid = int(el.get("id", "-1"))
        where = f"{path}: lanelet {lid}"
        left, left_mark = _bound(f"{where}/leftBound", el.find("leftBound"))
        right, right_mark = _bound(f"{where}/rightBound", el.find("rightBound"))
        centre = 0.5 * (left + right) if len(left) == len(right) else midpoint_line(left, right)
        types = [t.text.strip() for t in el.findall("laneletType") if t.text]
        lane_type = LaneType.DRIVING
        for t in types:
            lane_type = _LANELET_TYPES.get(t, lane_type)
        neighbours: dict[str, int | None] = {}
        for side in ("adjacentLeft", "adjacentRight"):
            adj = el.find(side)
            same = adj is not None and adj.get("drivingDir", "same") == "same"
            neighbours[side] = _ref(adj) if same else None
        speed_el = el.find("speedLimit")
        records.append(
            LaneRecord(
                lane_id=lid,
                centerline=centre,
                lane_type=lane_type,
                left_boundary=left,
                right_boundary=right,
                successors=tuple(int(s.get("ref", "")) for s in el.findall("successor")),
                predecessors=tuple(int(s.get("ref", "")) for s in el.findall("predecessor")),
                left_neighbor=neighbours["adjacentLeft"],
                right_neighbor=neighbours["adjacentRight"],
                left_marking=left_mark,
                right_marking=right_mark,
                can_change_left=left_mark not in _NO_CROSSING,
                can_change_right=right_mark not in _NO_CROSSING,
                in_intersection="intersection" in types,
                speed_limit=None if speed_el is None else _float(f"{where}/speedLimit", speed_el),
            )
        )
    return records


def _exact(where: str, state: ET.Element, name: str, default: float | None = None) -> float:
    el = state.find(name)
    if el is None:
        if default is None:
            raise ValueError(f"{where}: missing {name}")
        return default
    exact = el.find("exact")
    if exact is not None:
        return _float(f"{where}/{name}", exact)
    lo, hi = el.find("intervalStart"), el.find("intervalEnd")
    if lo is not None and hi is not None:
        return 0.5 * (_float(f"{where}/{name}", lo) + _float(f"{where}/{name}", hi))
    raise ValueError(f"{where}: {name} has neither exact nor interval")


def _position(where: str, state: ET.Element) -> tuple[float, float]:
    point = state.find("position/point")
    if point is not None:
        return _float(f"{where}/x", point.find("x")), _float(f"{where}/y", point.find("y"))
    centre = state.find("position/*/center")
    if centre is not None:
        return _float(f"{where}/x", centre.find("x")), _float(f"{where}/y", centre.find("y"))
    raise ValueError(f"{where}: state has no position point")


def _state_row(
    where: str, state: ET.Element, length: float, width: float
) -> tuple[int, FloatArray]:
    step = int(round(_exact(where, state, "time")))
    x, y = _position(where, state)
    yaw = _exact(where, state, "orientation", 0.0)
    speed = _exact(where, state, "velocity", 0.0)
    row = np.empty(len(AgentIndex))
    row[AgentIndex.X], row[AgentIndex.Y], row[AgentIndex.YAW] = (
        x,
        y,
        math.remainder(yaw, 2 * math.pi),
    )
    row[AgentIndex.VX] = speed * math.cos(yaw)
    row[AgentIndex.VY] = speed * math.sin(yaw)
    row[AgentIndex.LENGTH], row[AgentIndex.WIDTH] = length, width
    return step, row


def _shape_size(where: str, el: ET.Element) -> tuple[float, float]:
    rect = el.find("shape/rectangle")
    if rect is not None:
        return _float(f"{where}/length", rect.find("length")), _float(
            f"{where}/width", rect.find("width")
        )
    circle = el.find("shape/circle")
    if circle is not None:
        d = 2.0 * _float(f"{where}/radius", circle.find("radius"))
        return d, d
    poly = el.find("shape/polygon")
    if poly is not None:
        pts = np.array(
            [(_float(where, p.find("x")), _float(where, p.find("y"))) for p in poly.iter("point")]
        )
        ext = pts.max(axis=0) - pts.min(axis=0)
        return float(ext[0]), float(ext[1])
    raise ValueError(f"{where}: obstacle shape is not a rectangle, circle or polygon")


def _obstacles(
    path: Path, root: ET.Element
) -> list[tuple[int, AgentClass, bool, dict[int, FloatArray]]]:
    out = []
    for el in root:
        if el.tag == "obstacle":
            dynamic = (el.findtext("role") or "").strip() == "dynamic"
        elif el.tag in ("dynamicObstacle", "staticObstacle"):
            dynamic = el.tag == "dynamicObstacle"
        else:
            continue
        oid = int(el.get("id", "-1"))
        where = f"{path}: obstacle {oid}"
        cls = COMMONROAD_CLASSES.get((el.findtext("type") or "").strip(), AgentClass.UNKNOWN)
        if not dynamic and cls == AgentClass.UNKNOWN:
            cls = AgentClass.STATIC
        length, width = _shape_size(where, el)
        init = el.find("initialState")
        if init is None:
            raise ValueError(f"{where}: missing initialState")
        samples: dict[int, FloatArray] = {}
        step, row = _state_row(f"{where}/initialState", init, length, width)
        samples[step] = row
        for k, state in enumerate(el.findall("trajectory/state")):
            step, row = _state_row(f"{where}/trajectory/state[{k}]", state, length, width)
            samples[step] = row
        out.append((oid, cls, dynamic, samples))
    return out


def _rect_polygon(where: str, el: ET.Element) -> FloatArray:
    length = _float(f"{where}/length", el.find("length"))
    width = _float(f"{where}/width", el.find("width"))
    yaw = (
        _float(f"{where}/orientation", el.find("orientation"))
        if el.find("orientation") is not None
        else 0.0
    )
    cx = _float(f"{where}/center/x", el.find("center/x"))
    cy = _float(f"{where}/center/y", el.find("center/y"))
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64) * [
        0.5 * length,
        0.5 * width,
    ]
    return np.stack(
        [cx + c * local[:, 0] - s * local[:, 1], cy + s * local[:, 0] + c * local[:, 1]], axis=-1
    )


def _interval(where: str, el: ET.Element | None) -> tuple[float, float] | None:
    if el is None:
        return None
    exact = el.find("exact")
    if exact is not None:
        v = _float(where, exact)
        return v, v
    return _float(where, el.find("intervalStart")), _float(where, el.find("intervalEnd"))


def _planning_problems(path: Path, root: ET.Element) -> tuple[PlanningProblem, ...]:
    out = []
    for el in root.iter("planningProblem"):
        pid = int(el.get("id", "-1"))
        where = f"{path}: planningProblem {pid}"
        init = el.find("initialState")
        if init is None:
            raise ValueError(f"{where}: missing initialState")
        step, row = _state_row(f"{where}/initialState", init, 0.0, 0.0)
        goals = []
        for k, g in enumerate(el.findall("goalState")):
            gw = f"{where}/goalState[{k}]"
            time = _interval(f"{gw}/time", g.find("time"))
            if time is None:
                raise ValueError(f"{gw}: missing time interval")
            polygons: list[FloatArray] = []
            lanelets: list[int] = []
            pos = g.find("position")
            if pos is not None:
                for shape in pos:
                    if shape.tag == "rectangle":
                        polygons.append(_rect_polygon(f"{gw}/rectangle", shape))
                    elif shape.tag == "polygon":
                        polygons.append(
                            np.array(
                                [
                                    (_float(gw, p.find("x")), _float(gw, p.find("y")))
                                    for p in shape.findall("point")
                                ]
                            )
                        )
                    elif shape.tag == "circle":
                        r = _float(f"{gw}/circle/radius", shape.find("radius"))
                        cx = _float(f"{gw}/circle/center/x", shape.find("center/x"))
                        cy = _float(f"{gw}/circle/center/y", shape.find("center/y"))
                        a = np.linspace(0.0, 2 * math.pi, 33)[:-1]
                        polygons.append(np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=-1))
                    elif shape.tag == "lanelet":
                        ref = _ref(shape)
                        if ref is not None:
                            lanelets.append(ref)
            goals.append(
                GoalRegion(
                    time_steps=(int(round(time[0])), int(round(time[1]))),
                    polygons=tuple(polygons),
                    lanelet_ids=tuple(lanelets),
                    velocity=_interval(f"{gw}/velocity", g.find("velocity")),
                    orientation=_interval(f"{gw}/orientation", g.find("orientation")),
                )
            )
        out.append(PlanningProblem(pid, row, step, tuple(goals)))
    return tuple(out)


def load_commonroad_scenario(path: Path | str) -> ReplayScenario:
    """A CommonRoad XML scenario (see the module docstring)."""
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"{p}: not a readable XML file ({exc})") from exc
    if root.tag != "commonRoad":
        raise ValueError(f"{p}: root element is <{root.tag}>, expected <commonRoad>")
    try:
        dt = float(root.get("timeStepSize", ""))
    except ValueError as exc:
        raise ValueError(f"{p}: <commonRoad timeStepSize> missing or not a number") from exc
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"{p}: timeStepSize must be > 0 s, got {dt}")
    dt_ns = int(round(dt * 1e9))
    try:
        road_map = LaneGraphMap(p.stem, _lanelets(p, root), source=str(p))
    except MapError as exc:
        raise ValueError(f"{p}: {exc}") from exc
    obstacles = _obstacles(p, root)
    problems = _planning_problems(p, root)
    last = max(
        [max(s) for *_r, s in obstacles]
        + [g.time_steps[1] for pp in problems for g in pp.goals]
        + [0]
    )
    if last > 100_000:
        raise ValueError(f"{p}: time step {last} is beyond any recording (100000 steps)")
    timestamps = dt_ns * np.arange(last + 1, dtype=np.int64)
    tracks = []
    for oid, cls, _dynamic, samples in obstacles:
        steps = sorted(samples)
        if steps[0] < 0:
            raise ValueError(f"{p}: obstacle {oid} has negative time step {steps[0]}")
        tracks.append(
            Track(
                oid,
                cls,
                timestamps[np.array(steps)],
                np.stack([samples[k] for k in steps]),
            )
        )
    current = int(round(OBSERVED_SECONDS / dt))
    horizon = min(int(round(PREDICTED_SECONDS / dt)), max(last - current, 1))
    end = current + horizon
    scored = tuple(
        oid
        for oid, _cls, dynamic, samples in obstacles
        if dynamic and current in samples and end in samples
    )
    protocol = ReplayProtocol(
        name="commonroad-recorded",
        step_seconds=dt,
        current_index=current,
        predicted_steps=horizon,
        scored_track_ids=scored,
        focal_track_ids=scored,
    )
    return ReplayScenario(
        name=root.get("benchmarkID", p.stem),
        source_format="commonroad",
        path=p,
        timestamps_ns=timestamps,
        tracks=tuple(tracks),
        ego_track=None,
        road_map=road_map,
        protocol=protocol,
        planning_problems=problems,
    )
