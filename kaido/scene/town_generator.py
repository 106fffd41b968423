"""Procedural towns written as OpenDRIVE 1.4 text: kaido's own embedded maps.

kaido cannot ship CARLA's towns, so its default embedded map is generated here. The text loads
through ``carla.Map(name, text)`` (offline) and SUMO's ``netconvert``.

Coordinates are OpenDRIVE's: right-handed, x east, y north, headings counter-clockwise from +x in
radians (the same as kaido's frame). CARLA reads them into its left-handed frame as
``(x, -y)`` with yaw ``-heading`` in degrees.

Layouts
-------
``grid``
    ``rows`` x ``cols`` nodes joined by straight two-way roads along x (columns) and y (rows).
    Nodes with three or four roads are junctions; the four corners (and border nodes left with two
    collinear roads after a road was removed) are not junctions but ordinary roads: a quarter arc
    (corners) or a short straight piece, with sidewalks and lane links to both neighbours.
    ``t_junction_fraction`` removes roads next to interior junctions (chosen by ``seed``) so that
    about that share of the interior junctions become T junctions; a removal that would leave a
    node with fewer than two roads or split the network is never made.
``ring``
    A closed loop on the border of the ``rows`` x ``cols`` footprint with rounded corners (arc
    radius set by ``seed``), crossed by one straight road along every interior row; each cross road
    meets the loop in two T junctions. Needs ``rows >= 3``. ``t_junction_fraction`` is not used.

In both layouts ``seed`` jitters the spacing of the node columns and rows by up to
``block_jitter`` (the total width and height stay ``(cols - 1) * block_length`` and
``(rows - 1) * block_length``), and the town is centred on the origin.

Junctions
---------
Every junction joins every road to every other one (no U-turns) with single-lane connecting
roads: a line, or a line and a quarter arc, tangent-continuous with both lanes. A connecting
road's reference line runs along its lane's centre and a ``<laneOffset>`` of half a lane width
puts lane -1 on it, so CARLA's s along a connecting road is the distance driven. Lanes are counted
from the centre line: going straight maps lane ``k`` to lane ``k``; a turn maps lane ``k`` to lane
``k`` and, with several lanes, a left turn also lane ``k`` to ``k + 1`` and a right turn lane ``k``
to ``k - 1``. So every lane reaches every other one by lane links alone, without lane changes.
As in CARLA's towns, connecting roads carry road- and lane-level links to the roads they join,
while those roads link to the junction at road level only. Junction ids follow the last road id:
CARLA confuses a junction with a road of the same id, and the junction's lanes then lead nowhere.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "Arm",
    "TownEdge",
    "TownLayout",
    "TownNode",
    "TownSpec",
    "generate_town",
    "plan_town",
    "write_town",
]

#: [m] curb radius added beyond the carriageway and sidewalk to set a junction's size.
CORNER_CLEARANCE = 6.0
#: [m] shortest ordinary road allowed between two nodes.
MIN_ROAD_LENGTH = 10.0
#: Ring corner arc radius as a share of the smallest possible block, before the seed's factor.
RING_CORNER_SHARE = 0.4
#: Range of the seed's factor on the ring corner radius.
RING_CORNER_FACTOR = (0.75, 1.0)
#: [m] width written for painted lines.
MARK_WIDTH = 0.15
#: Lane-width range accepted [m].
LANE_WIDTH_RANGE = (2.0, 6.0)


@dataclass(frozen=True)
class TownSpec:
    """What town to generate.

    Attributes:
        layout: ``"grid"`` or ``"ring"`` (see the module docstring).
        rows: number of node rows (grid >= 2, ring >= 3); rows are spread along y.
        cols: number of node columns (>= 2); columns are spread along x.
        block_length: [m] mean distance between neighbouring node centres.
        lanes_per_direction: driving lanes on each side of every road, 1..3.
        lane_width: [m] width of every driving lane, 2..6.
        sidewalk_width: [m] width of the sidewalk on each side of ordinary roads; 0 disables them.
        speed_limit: [m/s] written as every road's ``<speed max>``.
        t_junction_fraction: grid only: share (0..1) of interior junctions turned into T
            junctions by removing a road.
        seed: seeds the block jitter, ring corner radius and which roads are removed (>= 0).
        name: map name written in the header.
        block_jitter: largest relative change of a single block length by the seed, 0..0.3.
    """

    layout: Literal["grid", "ring"] = "grid"
    rows: int = 3
    cols: int = 3
    block_length: float = 80.0
    lanes_per_direction: int = 1
    lane_width: float = 3.5
    sidewalk_width: float = 2.0
    speed_limit: float = 13.89
    t_junction_fraction: float = 0.0
    seed: int = 0
    name: str = "kaido_town"
    block_jitter: float = 0.2

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def junction_setback(self) -> float:
        """[m] distance from a junction centre to where its roads start."""
        carriageway = self.lanes_per_direction * self.lane_width
        return carriageway + self.sidewalk_width + CORNER_CLEARANCE

    @property
    def half_width(self) -> float:
        """[m] distance from a road's centre line to its outer sidewalk edge."""
        return self.lanes_per_direction * self.lane_width + self.sidewalk_width


class Arm(IntEnum):
    """Direction from a node centre towards one of its roads (counter-clockwise order)."""

    EAST = 0
    NORTH = 1
    WEST = 2
    SOUTH = 3

    @property
    def unit(self) -> tuple[float, float]:
        """Unit vector (x, y) of the direction."""
        return _ARM_UNIT[self]

    @property
    def heading(self) -> float:
        """[rad] heading of the direction, counter-clockwise from +x."""
        return self.value * math.pi / 2.0

    @property
    def opposite(self) -> Arm:
        """The direction pointing the other way."""
        return Arm((self.value + 2) % 4)


_ARM_UNIT: dict[Arm, tuple[float, float]] = {
    Arm.EAST: (1.0, 0.0),
    Arm.NORTH: (0.0, 1.0),
    Arm.WEST: (-1.0, 0.0),
    Arm.SOUTH: (0.0, -1.0),
}


@dataclass(frozen=True)
class TownNode:
    """A place where roads meet: a junction (3-4 arms) or a bend / straight piece (2 arms).

    Attributes:
        row: row index in the layout grid.
        col: column index in the layout grid.
        x: [m] centre, OpenDRIVE x (east).
        y: [m] centre, OpenDRIVE y (north).
        arms: directions of the roads that meet here, sorted.
        setback: [m] distance from the centre to where the ordinary roads start.
        interior: True for nodes not on the border of the layout grid.
    """

    row: int
    col: int
    x: float
    y: float
    arms: tuple[Arm, ...]
    setback: float
    interior: bool

    @property
    def is_junction(self) -> bool:
        """True when three or more roads meet here."""
        return len(self.arms) >= 3


@dataclass(frozen=True)
class TownEdge:
    """A straight two-way road from node ``start`` to node ``end`` (east- or northwards)."""

    start: int
    end: int
    arm: Arm


@dataclass(frozen=True)
class TownLayout:
    """The road network before it is written as OpenDRIVE.

    Attributes:
        nodes: every node (N).
        edges: every road between two nodes (E).
        removed: (row, col) pairs of the grid roads removed to make T junctions.
        width: [m] distance between the westmost and eastmost node centres.
        height: [m] distance between the southmost and northmost node centres.
    """

    nodes: tuple[TownNode, ...]
    edges: tuple[TownEdge, ...]
    removed: tuple[tuple[tuple[int, int], tuple[int, int]], ...]
    width: float
    height: float

    @property
    def junction_count(self) -> int:
        """Number of nodes written as OpenDRIVE junctions."""
        return sum(node.is_junction for node in self.nodes)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) [m] of the node centres."""
        xs = [node.x for node in self.nodes]
        ys = [node.y for node in self.nodes]
        return min(xs), min(ys), max(xs), max(ys)


# --------------------------------------------------------------------------------------------
# validation


def _check_int(spec: TownSpec, field: str, low: int, high: int | None = None) -> None:
    value = getattr(spec, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"TownSpec.{field} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"TownSpec.{field} must be {bound}, got {value}")


def _check_float(
    spec: TownSpec, field: str, low: float, high: float | None = None, *, strict: bool = False
) -> None:
    value = getattr(spec, field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"TownSpec.{field} must be a number, got {value!r}")
    too_low = value <= low if strict else value < low
    if not math.isfinite(value) or too_low or (high is not None and value > high):
        bound = f"{'>' if strict else '>='} {low}" + ("" if high is None else f" and <= {high}")
        raise ValueError(f"TownSpec.{field} must be finite and {bound}, got {value}")


def _validate(spec: TownSpec) -> None:
    if spec.layout not in ("grid", "ring"):
        raise ValueError(f"TownSpec.layout must be 'grid' or 'ring', got {spec.layout!r}")
    _check_int(spec, "rows", 3 if spec.layout == "ring" else 2)
    _check_int(spec, "cols", 2)
    if spec.layout == "grid" and spec.rows == 2 and spec.cols == 2:
        raise ValueError(
            "TownSpec.rows and TownSpec.cols: a 2 x 2 grid is a single loop without junctions; "
            "use at least 3 rows or columns"
        )
    _check_int(spec, "lanes_per_direction", 1, 3)
    _check_int(spec, "seed", 0)
    _check_float(spec, "block_length", 0.0, strict=True)
    _check_float(spec, "lane_width", *LANE_WIDTH_RANGE)
    _check_float(spec, "sidewalk_width", 0.0, 10.0)
    _check_float(spec, "speed_limit", 0.0, strict=True)
    _check_float(spec, "t_junction_fraction", 0.0, 1.0)
    _check_float(spec, "block_jitter", 0.0, 0.3)
    if not isinstance(spec.name, str) or not spec.name.strip():
        raise ValueError(f"TownSpec.name must be a non-empty string, got {spec.name!r}")
    shortest_block = spec.block_length * (1.0 - spec.block_jitter)
    setback = spec.junction_setback
    shortest_road = shortest_block - 2.0 * setback
    if spec.layout == "ring":
        corner = max(setback, RING_CORNER_SHARE * shortest_block)
        shortest_road = min(shortest_road, shortest_block - 2.0 * corner)
        shortest_road = min(shortest_road, shortest_block - corner - setback)
    if shortest_road < MIN_ROAD_LENGTH:
        raise ValueError(
            f"TownSpec.block_length={spec.block_length} is too short: with "
            f"{spec.lanes_per_direction} lane(s) of {spec.lane_width} m, {spec.sidewalk_width} m "
            f"sidewalks and {spec.block_jitter} jitter the shortest road would be "
            f"{shortest_road:.1f} m (< {MIN_ROAD_LENGTH} m)"
        )


# --------------------------------------------------------------------------------------------
# layout


def _spacing(
    count: int, block_length: float, jitter: float, rng: np.random.Generator
) -> list[float]:
    """Centred coordinates of ``count`` node lines whose gaps are jittered but sum as unjittered."""
    gaps = count - 1
    deviation = rng.uniform(-jitter, jitter, size=gaps)
    deviation -= deviation.mean()
    largest = float(np.abs(deviation).max())
    if largest > jitter > 0.0:
        deviation *= jitter / largest
    lengths = block_length * (1.0 + deviation)
    coords = np.concatenate([[0.0], np.cumsum(lengths)])
    coords -= 0.5 * gaps * block_length
    coords[-1] = 0.5 * gaps * block_length
    return [float(c) for c in coords]


def _connected(keys: list[tuple[int, int]], links: set[frozenset[tuple[int, int]]]) -> bool:
    neighbours: dict[tuple[int, int], list[tuple[int, int]]] = {key: [] for key in keys}
    for link in links:
        a, b = tuple(link)
        neighbours[a].append(b)
        neighbours[b].append(a)
    seen = {keys[0]}
    queue = deque([keys[0]])
    while queue:
        for other in neighbours[queue.popleft()]:
            if other not in seen:
                seen.add(other)
                queue.append(other)
    return len(seen) == len(keys)


def _arm_between(a: tuple[int, int], b: tuple[int, int]) -> Arm:
    """Direction from grid cell a=(row, col) to its neighbour b."""
    d_row, d_col = b[0] - a[0], b[1] - a[1]
    if d_row == 0:
        return Arm.EAST if d_col > 0 else Arm.WEST
    return Arm.NORTH if d_row > 0 else Arm.SOUTH


def _remove_roads(
    spec: TownSpec, links: set[frozenset[tuple[int, int]]], rng: np.random.Generator
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Remove grid roads so that about ``t_junction_fraction`` of interior junctions become Ts."""

    def interior(key: tuple[int, int]) -> bool:
        return 0 < key[0] < spec.rows - 1 and 0 < key[1] < spec.cols - 1

    keys = [(r, c) for r in range(spec.rows) for c in range(spec.cols)]
    target = round(spec.t_junction_fraction * sum(interior(k) for k in keys))
    if target == 0:
        return []
    degree = {key: sum(key in link for link in links) for key in keys}
    candidates = sorted(
        (tuple(sorted(link)) for link in links if any(interior(k) for k in link)),
    )
    order = rng.permutation(len(candidates))
    removed: list[tuple[tuple[int, int], tuple[int, int]]] = []
    converted = 0
    for index in order:
        a, b = candidates[int(index)]
        ends = (a, b)
        # An interior node must still be a 4-way junction (it becomes a T); a border node must be
        # a T (it becomes a straight piece); corners are never touched.
        if any(degree[k] != (4 if interior(k) else 3) for k in ends):
            continue
        gain = sum(interior(k) for k in ends)
        if converted + gain > target:
            continue
        link = frozenset(ends)
        links.discard(link)
        if not _connected(keys, links):
            links.add(link)
            continue
        for k in ends:
            degree[k] -= 1
        removed.append((a, b))
        converted += gain
        if converted == target:
            break
    return sorted(removed)


def plan_town(spec: TownSpec) -> TownLayout:
    """The nodes and roads of the town ``spec`` describes (deterministic for a given spec)."""
    rng = np.random.default_rng(spec.seed)
    xs = _spacing(spec.cols, spec.block_length, spec.block_jitter, rng)
    ys = _spacing(spec.rows, spec.block_length, spec.block_jitter, rng)
    setback = spec.junction_setback
    last_row, last_col = spec.rows - 1, spec.cols - 1
    links: set[frozenset[tuple[int, int]]] = set()
    removed: list[tuple[tuple[int, int], tuple[int, int]]] = []
    corner_setback = setback
    if spec.layout == "grid":
        for r in range(spec.rows):
            for c in range(spec.cols):
                if c < last_col:
                    links.add(frozenset({(r, c), (r, c + 1)}))
                if r < last_row:
                    links.add(frozenset({(r, c), (r + 1, c)}))
        removed = _remove_roads(spec, links, rng)
    else:
        shortest_block = spec.block_length * (1.0 - spec.block_jitter)
        factor = float(rng.uniform(*RING_CORNER_FACTOR))
        corner_setback = max(setback, factor * RING_CORNER_SHARE * shortest_block)
        for c in (0, last_col):
            for r in range(last_row):
                links.add(frozenset({(r, c), (r + 1, c)}))
        for r in range(spec.rows):
            links.add(frozenset({(r, 0), (r, last_col)}))

    arms: dict[tuple[int, int], list[Arm]] = {}
    for link in links:
        a, b = sorted(link)
        arms.setdefault(a, []).append(_arm_between(a, b))
        arms.setdefault(b, []).append(_arm_between(b, a))
    keys = sorted(arms)
    index = {key: i for i, key in enumerate(keys)}
    nodes = []
    for r, c in keys:
        is_corner = r in (0, last_row) and c in (0, last_col)
        nodes.append(
            TownNode(
                row=r,
                col=c,
                x=xs[c],
                y=ys[r],
                arms=tuple(sorted(arms[(r, c)])),
                setback=corner_setback if is_corner else setback,
                interior=0 < r < last_row and 0 < c < last_col,
            )
        )
    edges = [
        TownEdge(start=index[a], end=index[b], arm=_arm_between(a, b))
        for a, b in (sorted(link) for link in links)
    ]
    return TownLayout(
        nodes=tuple(nodes),
        edges=tuple(sorted(edges, key=lambda e: (e.start, e.end))),
        removed=tuple(removed),
        width=xs[-1] - xs[0],
        height=ys[-1] - ys[0],
    )


# --------------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class _Segment:
    """One planView record: a line (curvature 0) or an arc."""

    x: float
    y: float
    hdg: float
    length: float
    curvature: float

    def end(self) -> tuple[float, float, float]:
        """(x, y, heading) at the end of the segment."""
        if self.curvature == 0.0:
            return (
                self.x + self.length * math.cos(self.hdg),
                self.y + self.length * math.sin(self.hdg),
                self.hdg,
            )
        radius = 1.0 / self.curvature
        hdg = self.hdg + self.length * self.curvature
        return (
            self.x + radius * (math.sin(hdg) - math.sin(self.hdg)),
            self.y - radius * (math.cos(hdg) - math.cos(self.hdg)),
            hdg,
        )


def _left(hdg: float) -> tuple[float, float]:
    return -math.sin(hdg), math.cos(hdg)


def _path(x0: float, y0: float, h0: float, x1: float, y1: float, h1: float) -> list[_Segment]:
    """Tangent-continuous line and/or quarter arc from pose 0 to pose 1.

    Pose 1 must lie ahead of pose 0 and its heading must equal ``h0`` (then it must lie on the
    line) or ``h0 +- pi/2``.
    """
    dx, dy = x1 - x0, y1 - y0
    ahead = dx * math.cos(h0) + dy * math.sin(h0)
    lateral = -dx * math.sin(h0) + dy * math.cos(h0)
    turn = math.remainder(h1 - h0, 2.0 * math.pi)
    if abs(turn) < 1e-9:
        if abs(lateral) > 1e-6 or ahead <= 0.0:
            raise ValueError(f"no straight path from {(x0, y0)} to {(x1, y1)}")
        return [_Segment(x0, y0, h0, ahead, 0.0)]
    if abs(abs(turn) - math.pi / 2.0) > 1e-9 or turn * lateral <= 0.0 or ahead <= 0.0:
        raise ValueError(f"no quarter turn from {(x0, y0, h0)} to {(x1, y1, h1)}")
    side = abs(lateral)
    sign = 1.0 if turn > 0.0 else -1.0
    segments: list[_Segment] = []
    if ahead > side + 1e-9:
        segments.append(_Segment(x0, y0, h0, ahead - side, 0.0))
        x0, y0, h0 = segments[-1].end()
        radius = side
    else:
        radius = ahead
    arc = _Segment(x0, y0, h0, radius * math.pi / 2.0, sign / radius)
    segments.append(arc)
    if side > ahead + 1e-9:
        x2, y2, h2 = arc.end()
        segments.append(_Segment(x2, y2, h2, side - ahead, 0.0))
    return segments


# --------------------------------------------------------------------------------------------
# OpenDRIVE writing


def _num(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class _Link:
    """A road-level link: to a road (with its contact point) or to a junction.

    ``element_id`` is a road id, or a junction's number (written after the last road id).
    """

    element_type: Literal["road", "junction"]
    element_id: int
    contact: Literal["start", "end"] | None = None


@dataclass
class _Road:
    """One road while it is assembled; ``junction`` is a junction number or -1."""

    id: int
    name: str
    segments: list[_Segment]
    junction: int
    lanes: int  # driving lanes on the right (and on the left when two_way)
    two_way: bool
    sidewalk: bool
    predecessor: _Link | None = None
    successor: _Link | None = None
    lane_predecessor: dict[int, int] = field(default_factory=dict)
    lane_successor: dict[int, int] = field(default_factory=dict)

    @property
    def length(self) -> float:
        return sum(seg.length for seg in self.segments)


@dataclass(frozen=True)
class _Connection:
    incoming: int
    connecting: int
    from_lane: int


class _TownWriter:
    """Turns a layout into OpenDRIVE roads and junctions."""

    def __init__(self, spec: TownSpec, layout: TownLayout) -> None:
        self.spec = spec
        self.layout = layout
        self.roads: list[_Road] = []
        # (junction number, node index, connections); ids are junction_base + number.
        self.junctions: list[tuple[int, int, list[_Connection]]] = []
        self.junction_base = 0
        # (node index, arm) -> (edge road id, whether the edge road starts at that node)
        self.arm_roads: dict[tuple[int, Arm], tuple[int, bool]] = {}

    def build(self) -> None:
        spec, layout = self.spec, self.layout
        for edge in layout.edges:
            a, b = layout.nodes[edge.start], layout.nodes[edge.end]
            ux, uy = edge.arm.unit
            x0, y0 = a.x + ux * a.setback, a.y + uy * a.setback
            length = math.hypot(b.x - a.x, b.y - a.y) - a.setback - b.setback
            road = _Road(
                id=len(self.roads),
                name=f"road {a.row},{a.col} - {b.row},{b.col}",
                segments=[_Segment(x0, y0, edge.arm.heading, length, 0.0)],
                junction=-1,
                lanes=spec.lanes_per_direction,
                two_way=True,
                sidewalk=spec.sidewalk_width > 0.0,
            )
            self.roads.append(road)
            self.arm_roads[(edge.start, edge.arm)] = (road.id, True)
            self.arm_roads[(edge.end, edge.arm.opposite)] = (road.id, False)
        # Junctions are numbered here; they get ids after the last road's when written, since
        # CARLA mixes up a junction and a road that share an id (the junction's lanes then end).
        junction_numbers: dict[int, int] = {}
        for i, node in enumerate(layout.nodes):
            if node.is_junction:
                junction_numbers[i] = len(junction_numbers)
        for i, node in enumerate(layout.nodes):
            if node.is_junction:
                self._junction(i, node, junction_numbers[i])
            else:
                self._bend(i, node)
        self.junction_base = len(self.roads)

    def _lane_ids(self, sidewalk: bool) -> list[int]:
        n = self.spec.lanes_per_direction + (1 if sidewalk else 0)
        return [k for k in range(-n, n + 1) if k != 0]

    def _bend(self, index: int, node: TownNode) -> None:
        """An ordinary road through a two-armed node: a quarter arc or a straight piece."""
        first, second = node.arms
        (x0, y0), (x1, y1) = first.unit, second.unit
        s = node.setback
        segments = _path(
            node.x + x0 * s,
            node.y + y0 * s,
            first.opposite.heading,
            node.x + x1 * s,
            node.y + y1 * s,
            second.heading,
        )
        road = _Road(
            id=len(self.roads),
            name=f"bend {node.row},{node.col}",
            segments=segments,
            junction=-1,
            lanes=self.spec.lanes_per_direction,
            two_way=True,
            sidewalk=self.spec.sidewalk_width > 0.0,
        )
        self.roads.append(road)
        lanes = self._lane_ids(road.sidewalk)
        for arm, at_start in ((first, True), (second, False)):
            edge_id, edge_starts_here = self.arm_roads[(index, arm)]
            edge = self.roads[edge_id]
            edge_contact: Literal["start", "end"] = "start" if edge_starts_here else "end"
            bend_contact: Literal["start", "end"] = "start" if at_start else "end"
            # Lane ids flip sign where two roads meet start-to-start or end-to-end.
            flip = -1 if edge_contact == bend_contact else 1
            link_to_edge = _Link("road", edge_id, edge_contact)
            link_to_bend = _Link("road", road.id, bend_contact)
            bend_lanes = road.lane_predecessor if at_start else road.lane_successor
            edge_lanes = edge.lane_predecessor if edge_starts_here else edge.lane_successor
            if at_start:
                road.predecessor = link_to_edge
            else:
                road.successor = link_to_edge
            if edge_starts_here:
                edge.predecessor = link_to_bend
            else:
                edge.successor = link_to_bend
            for lane in lanes:
                bend_lanes[lane] = flip * lane
                edge_lanes[flip * lane] = lane

    def _junction(self, index: int, node: TownNode, number: int) -> None:
        n = self.spec.lanes_per_direction
        w = self.spec.lane_width
        s = node.setback
        connections: list[_Connection] = []
        for arm_in in node.arms:
            in_road, in_starts_here = self.arm_roads[(index, arm_in)]
            if in_starts_here:
                self.roads[in_road].predecessor = _Link("junction", number)
            else:
                self.roads[in_road].successor = _Link("junction", number)
            h_in = arm_in.opposite.heading
            for arm_out in node.arms:
                if arm_out == arm_in:
                    continue
                out_road, out_starts_here = self.arm_roads[(index, arm_out)]
                h_out = arm_out.heading
                turn = (arm_out.value - arm_in.opposite.value) % 4  # 0 straight, 1 left, 3 right
                pairs = [(k, k) for k in range(1, n + 1)]
                if turn == 1:
                    pairs += [(k, k + 1) for k in range(1, n)]
                elif turn == 3:
                    pairs += [(k, k - 1) for k in range(2, n + 1)]
                for k_in, k_out in sorted(pairs):
                    lx, ly = _left(h_in)
                    ox, oy = _left(h_out)
                    ux, uy = arm_in.unit
                    vx, vy = arm_out.unit
                    centre_path = _path(
                        node.x + ux * s - lx * (k_in - 0.5) * w,
                        node.y + uy * s - ly * (k_in - 0.5) * w,
                        h_in,
                        node.x + vx * s - ox * (k_out - 0.5) * w,
                        node.y + vy * s - oy * (k_out - 0.5) * w,
                        h_out,
                    )
                    in_lane = k_in if in_starts_here else -k_in
                    out_lane = -k_out if out_starts_here else k_out
                    road = _Road(
                        id=len(self.roads),
                        name=f"junction {node.row},{node.col} {arm_in.name.lower()} lane {k_in}"
                        f" to {arm_out.name.lower()} lane {k_out}",
                        segments=centre_path,
                        junction=number,
                        lanes=1,
                        two_way=False,
                        sidewalk=False,
                        predecessor=_Link("road", in_road, "start" if in_starts_here else "end"),
                        successor=_Link("road", out_road, "start" if out_starts_here else "end"),
                        lane_predecessor={-1: in_lane},
                        lane_successor={-1: out_lane},
                    )
                    self.roads.append(road)
                    connections.append(_Connection(in_road, road.id, in_lane))
        self.junctions.append((number, index, connections))

    # ---------------------------------------------------------------------------------- XML

    def xml(self) -> str:
        spec, layout = self.spec, self.layout
        west, south, east, north = layout.bounds
        margin = spec.half_width
        root = ET.Element("OpenDRIVE")
        header = ET.SubElement(
            root,
            "header",
            revMajor="1",
            revMinor="4",
            name=spec.name,
            version="1",
            north=_num(north + margin),
            south=_num(south - margin),
            east=_num(east + margin),
            west=_num(west - margin),
            vendor="kaido",
        )
        ET.SubElement(header, "geoReference").text = (
            "+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m "
            "+vunits=m +no_defs"
        )
        for road in self.roads:
            self._road_xml(root, road)
        for number, node_index, connections in self.junctions:
            node = layout.nodes[node_index]
            element = ET.SubElement(
                root,
                "junction",
                id=str(self.junction_base + number),
                name=f"junction {node.row},{node.col}",
            )
            for i, conn in enumerate(connections):
                c = ET.SubElement(
                    element,
                    "connection",
                    id=str(i),
                    incomingRoad=str(conn.incoming),
                    connectingRoad=str(conn.connecting),
                    contactPoint="start",
                )
                ET.SubElement(c, "laneLink", attrib={"from": str(conn.from_lane), "to": "-1"})
        ET.indent(root, space="  ")
        body = ET.tostring(root, encoding="unicode")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"

    def _link_xml(self, parent: ET.Element, tag: str, link: _Link) -> None:
        element_id = link.element_id
        if link.element_type == "junction":
            element_id += self.junction_base
        attrib = {"elementType": link.element_type, "elementId": str(element_id)}
        if link.contact is not None:
            attrib["contactPoint"] = link.contact
        ET.SubElement(parent, tag, attrib=attrib)

    def _road_xml(self, root: ET.Element, road: _Road) -> None:
        spec = self.spec
        element = ET.SubElement(
            root,
            "road",
            name=road.name,
            length=_num(road.length),
            id=str(road.id),
            junction=str(self.junction_base + road.junction if road.junction >= 0 else -1),
        )
        link = ET.SubElement(element, "link")
        if road.predecessor is not None:
            self._link_xml(link, "predecessor", road.predecessor)
        if road.successor is not None:
            self._link_xml(link, "successor", road.successor)
        road_type = ET.SubElement(element, "type", s="0", type="town")
        ET.SubElement(road_type, "speed", max=_num(spec.speed_limit), unit="m/s")
        plan = ET.SubElement(element, "planView")
        s = 0.0
        for seg in road.segments:
            geometry = ET.SubElement(
                plan,
                "geometry",
                s=_num(s),
                x=_num(seg.x),
                y=_num(seg.y),
                hdg=_num(seg.hdg),
                length=_num(seg.length),
            )
            if seg.curvature == 0.0:
                ET.SubElement(geometry, "line")
            else:
                ET.SubElement(geometry, "arc", curvature=_num(seg.curvature))
            s += seg.length
        elevation = ET.SubElement(element, "elevationProfile")
        ET.SubElement(elevation, "elevation", s="0", a="0", b="0", c="0", d="0")
        ET.SubElement(element, "lateralProfile")
        lanes = ET.SubElement(element, "lanes")
        offset = _num(0.5 * spec.lane_width) if road.junction >= 0 else "0"
        ET.SubElement(lanes, "laneOffset", s="0", a=offset, b="0", c="0", d="0")
        section = ET.SubElement(lanes, "laneSection", s="0")
        painted = road.junction < 0
        n = road.lanes
        side_ids: dict[str, list[int]] = {"left": [], "right": []}
        if road.two_way:
            side_ids["left"] = list(range(n + (1 if road.sidewalk else 0), 0, -1))
        side_ids["right"] = list(range(-1, -n - (2 if road.sidewalk else 1), -1))
        if side_ids["left"]:
            left = ET.SubElement(section, "left")
            for lane_id in side_ids["left"]:
                self._lane_xml(left, road, lane_id, painted)
        center = ET.SubElement(section, "center")
        centre_lane = ET.SubElement(center, "lane", id="0", type="none", level="false")
        if painted:
            self._mark_xml(centre_lane, "solid", "yellow")
        else:
            self._mark_xml(centre_lane, "none", "standard")
        right = ET.SubElement(section, "right")
        for lane_id in side_ids["right"]:
            self._lane_xml(right, road, lane_id, painted)

    def _lane_xml(self, parent: ET.Element, road: _Road, lane_id: int, painted: bool) -> None:
        spec = self.spec
        sidewalk = abs(lane_id) > road.lanes
        lane = ET.SubElement(
            parent,
            "lane",
            id=str(lane_id),
            type="sidewalk" if sidewalk else "driving",
            level="false",
        )
        predecessor = road.lane_predecessor.get(lane_id)
        successor = road.lane_successor.get(lane_id)
        lane_link = ET.SubElement(lane, "link")
        if predecessor is not None:
            ET.SubElement(lane_link, "predecessor", id=str(predecessor))
        if successor is not None:
            ET.SubElement(lane_link, "successor", id=str(successor))
        width = spec.sidewalk_width if sidewalk else spec.lane_width
        ET.SubElement(lane, "width", sOffset="0", a=_num(width), b="0", c="0", d="0")
        if not painted or sidewalk:
            self._mark_xml(lane, "none", "standard")
        elif abs(lane_id) < road.lanes:
            self._mark_xml(lane, "broken", "standard")
        else:
            self._mark_xml(lane, "solid", "standard")
        ET.SubElement(lane, "speed", sOffset="0", max=_num(spec.speed_limit), unit="m/s")

    @staticmethod
    def _mark_xml(parent: ET.Element, kind: str, color: str) -> None:
        attrib = {"sOffset": "0", "type": kind, "weight": "standard", "color": color}
        if kind != "none":
            attrib["width"] = _num(MARK_WIDTH)
        attrib["laneChange"] = "both" if kind == "broken" else "none"
        ET.SubElement(parent, "roadMark", attrib=attrib)


def generate_town(spec: TownSpec) -> str:
    """OpenDRIVE 1.4 text of the town ``spec`` describes; the same spec gives the same text."""
    writer = _TownWriter(spec, plan_town(spec))
    writer.build()
    return writer.xml()


def write_town(spec: TownSpec, path: Path) -> Path:
    """Write :func:`generate_town` ``(spec)`` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate_town(spec), encoding="utf-8")
    return path
