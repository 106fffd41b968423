"""kaido's generated towns, loaded through the real ``carla.Map`` (offline, no server)."""

from __future__ import annotations

import itertools
import math
import random
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kaido.scene.town_generator import (
    Arm,
    TownLayout,
    TownSpec,
    generate_town,
    plan_town,
    write_town,
)

carla = pytest.importorskip("carla")

CASES: dict[str, TownSpec] = {
    "grid1": TownSpec(),
    "grid2": TownSpec(lanes_per_direction=2, seed=4),
    "grid3": TownSpec(rows=3, cols=4, lanes_per_direction=3, block_length=100.0, seed=2),
    "grid1_t": TownSpec(rows=4, cols=5, t_junction_fraction=0.5, seed=3),
    "grid2_t": TownSpec(
        rows=4, cols=4, lanes_per_direction=2, t_junction_fraction=1.0, sidewalk_width=0.0, seed=1
    ),
    "grid3_t": TownSpec(
        rows=3, cols=3, lanes_per_direction=3, block_length=110.0, t_junction_fraction=1.0
    ),
    "ring1": TownSpec(layout="ring"),
    "ring2": TownSpec(layout="ring", rows=4, cols=3, lanes_per_direction=2, lane_width=3.2, seed=5),
}

LaneKey = tuple[int, int, int]


@dataclass
class Town:
    spec: TownSpec
    layout: TownLayout
    text: str
    map: Any
    waypoints: list[Any]


def _key(wp: Any) -> LaneKey:
    return (wp.road_id, wp.section_id, wp.lane_id)


def _yaw_gap(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.fixture(scope="module", params=sorted(CASES))
def town(request: pytest.FixtureRequest) -> Town:
    spec = CASES[request.param]
    text = generate_town(spec)
    carla_map = carla.Map(spec.name, text)
    return Town(spec, plan_town(spec), text, carla_map, carla_map.generate_waypoints(2.0))


# ------------------------------------------------------------------------------------------------
# every town


def test_text_is_opendrive_1_4(town: Town) -> None:
    root = ET.fromstring(town.text)
    assert root.tag == "OpenDRIVE"
    header = root.find("header")
    assert header is not None
    assert (header.get("revMajor"), header.get("revMinor")) == ("1", "4")
    assert header.get("name") == town.spec.name
    geo = header.find("geoReference")
    assert geo is not None and geo.text is not None and geo.text.startswith("+proj=tmerc")
    road_ids = {road.get("id") for road in root.iter("road")}
    junction_ids = {junction.get("id") for junction in root.iter("junction")}
    assert len(junction_ids) == town.layout.junction_count
    assert not road_ids & junction_ids, "road and junction ids must not collide in CARLA"


def test_roads_carry_speed_marks_and_sidewalks(town: Town) -> None:
    root = ET.fromstring(town.text)
    n = town.spec.lanes_per_direction
    for road in root.iter("road"):
        speed = road.find("type/speed")
        assert speed is not None
        assert float(speed.get("max", "nan")) == pytest.approx(town.spec.speed_limit)
        assert speed.get("unit") == "m/s"
        lanes = {int(lane.get("id", "")): lane for lane in road.iter("lane")}
        types = {lane_id: lane.get("type") for lane_id, lane in lanes.items()}
        marks = {k: mark.get("type") for k, lane in lanes.items() for mark in lane.iter("roadMark")}
        if road.get("junction") != "-1":
            assert types == {0: "none", -1: "driving"}
            assert set(marks.values()) == {"none"}
            continue
        sidewalks = {k for k, t in types.items() if t == "sidewalk"}
        assert sidewalks == ({-(n + 1), n + 1} if town.spec.sidewalk_width > 0 else set())
        assert marks[0] == "solid"
        for k in range(1, n + 1):
            assert types[k] == types[-k] == "driving"
            expected = "solid" if k == n else "broken"
            assert marks[k] == marks[-k] == expected


def test_carla_loads_and_has_waypoints(town: Town) -> None:
    assert len(town.waypoints) > 100
    assert all(wp.lane_type == carla.LaneType.Driving for wp in town.waypoints)


def _lane_end(start: Any) -> Any:
    """The last waypoint of the lane that ``start`` begins."""
    return start.next_until_lane_end(0.5)[-1]


def test_no_dead_ends(town: Town) -> None:
    topology = town.map.get_topology()
    assert topology
    starts = {_key(a): a for a, _ in topology} | {_key(b): b for _, b in topology}
    for key, start in starts.items():
        end = _lane_end(start)
        assert end.next(1.0), f"lane {key} ends at {end.transform.location}"


def test_lanes_join_without_gaps(town: Town) -> None:
    """Each topology edge (lane start, next lane start) meets where the first lane ends."""
    for a, b in town.map.get_topology():
        end = _lane_end(a)
        gap = end.transform.location.distance(b.transform.location)
        assert gap < 0.6, f"{_key(a)} ends {gap:.2f} m from {_key(b)}"
        following = [wp for wp in end.next(1.0) if _key(wp) == _key(b)] or end.next(1.0)
        assert following
        heading = end.transform.rotation.yaw
        assert min(_yaw_gap(heading, wp.transform.rotation.yaw) for wp in following) < 10.0


def test_lane_graph_is_strongly_connected(town: Town) -> None:
    forward: dict[LaneKey, set[LaneKey]] = defaultdict(set)
    backward: dict[LaneKey, set[LaneKey]] = defaultdict(set)
    lanes: set[LaneKey] = set()
    for a, b in town.map.get_topology():
        forward[_key(a)].add(_key(b))
        backward[_key(b)].add(_key(a))
        lanes |= {_key(a), _key(b)}

    def reachable(start: LaneKey, graph: dict[LaneKey, set[LaneKey]]) -> set[LaneKey]:
        seen, stack = {start}, [start]
        while stack:
            for other in graph[stack.pop()]:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        return seen

    start = min(lanes)
    assert reachable(start, forward) == lanes
    assert reachable(start, backward) == lanes
    # Every driving lane outside junctions shows up in the topology.
    assert {_key(wp) for wp in town.waypoints} <= lanes


def test_random_drives_of_two_km_never_get_stuck(town: Town) -> None:
    rng = random.Random(0)
    starts = town.waypoints[:: max(1, len(town.waypoints) // 25)]
    for start in starts:
        wp = start
        for _ in range(1000):  # 1000 steps of 2 m
            options = wp.next(2.0)
            assert options, f"stuck on lane {_key(wp)} at {wp.transform.location}"
            wp = rng.choice(options)


def test_junction_count(town: Town) -> None:
    spec, layout = town.spec, town.layout
    carla_junctions = {wp.get_junction().id for wp in town.waypoints if wp.is_junction}
    if spec.layout == "ring":
        expected = 2 * (spec.rows - 2)
    else:

        def border(cell: tuple[int, int]) -> bool:
            return cell[0] in (0, spec.rows - 1) or cell[1] in (0, spec.cols - 1)

        lost = sum(border(cell) for pair in layout.removed for cell in pair)
        expected = spec.rows * spec.cols - 4 - lost
    assert len(carla_junctions) == layout.junction_count == expected
    assert expected >= 1


def test_headings_and_positions_continuous_along_lanes(town: Town) -> None:
    """1 m steps (in the road's s, so shorter or longer on curved lanes) move smoothly ahead."""
    for wp in town.map.generate_waypoints(1.0):
        here = wp.transform
        yaw = math.radians(here.rotation.yaw)
        for nxt in wp.next(1.0):
            dx = nxt.transform.location.x - here.location.x
            dy = nxt.transform.location.y - here.location.y
            ahead = dx * math.cos(yaw) + dy * math.sin(yaw)
            aside = -dx * math.sin(yaw) + dy * math.cos(yaw)
            where = f"after {_key(wp)} s={wp.s:.2f}"
            assert 0.4 < ahead < 2.0, f"step {ahead:.2f} m {where}"
            assert abs(aside) < 0.25, f"sideways jump {aside:.2f} m {where}"
            gap = _yaw_gap(here.rotation.yaw, nxt.transform.rotation.yaw)
            assert gap <= 20.0, f"heading jumps {gap:.1f} deg {where}"


def test_lane_and_sidewalk_widths(town: Town) -> None:
    spec = town.spec
    for wp in town.map.generate_waypoints(5.0):
        assert wp.lane_width == pytest.approx(spec.lane_width, abs=1e-6)
        if wp.is_junction or abs(wp.lane_id) != spec.lanes_per_direction:
            continue
        outer = wp.get_right_lane()
        if spec.sidewalk_width > 0:
            assert outer is not None and outer.lane_type == carla.LaneType.Sidewalk
            assert outer.lane_width == pytest.approx(spec.sidewalk_width, abs=1e-6)
        else:
            assert outer is None or outer.lane_type != carla.LaneType.Sidewalk


def test_bounding_box_matches_spec(town: Town) -> None:
    spec, layout = town.spec, town.layout
    half_x = 0.5 * (spec.cols - 1) * spec.block_length
    half_y = 0.5 * (spec.rows - 1) * spec.block_length
    assert layout.width == pytest.approx(2 * half_x)
    assert layout.height == pytest.approx(2 * half_y)
    outer_lane = (spec.lanes_per_direction - 0.5) * spec.lane_width
    xs = [wp.transform.location.x for wp in town.waypoints]
    ys = [wp.transform.location.y for wp in town.waypoints]
    assert min(xs) == pytest.approx(-half_x - outer_lane, abs=0.01)
    assert max(xs) == pytest.approx(half_x + outer_lane, abs=0.01)
    assert min(ys) == pytest.approx(-half_y - outer_lane, abs=0.01)
    assert max(ys) == pytest.approx(half_y + outer_lane, abs=0.01)
    header = ET.fromstring(town.text).find("header")
    assert header is not None
    margin = spec.half_width
    assert float(header.get("west", "nan")) == pytest.approx(-half_x - margin)
    assert float(header.get("east", "nan")) == pytest.approx(half_x + margin)
    assert float(header.get("south", "nan")) == pytest.approx(-half_y - margin)
    assert float(header.get("north", "nan")) == pytest.approx(half_y + margin)


# ------------------------------------------------------------------------------------------------
# the coordinate convention


def test_carla_negates_opendrive_y_and_heading() -> None:
    """An east-bound and a north-bound lane beside a junction land where the convention says."""
    spec = CASES["grid1"]
    layout = plan_town(spec)
    carla_map = carla.Map(spec.name, generate_town(spec))
    node = next(n for n in layout.nodes if n.interior)
    w = spec.lane_width
    ahead = node.setback + 5.0
    # OpenDRIVE: the east-bound lane (right of heading +x) lies south of the centre line.
    east = carla_map.get_waypoint(
        carla.Location(x=node.x + ahead, y=-(node.y - 0.5 * w), z=0.0), project_to_road=False
    )
    assert east is not None
    assert east.transform.location.y == pytest.approx(-(node.y - 0.5 * w), abs=1e-3)
    assert _yaw_gap(east.transform.rotation.yaw, 0.0) < 1e-3
    # OpenDRIVE: the north-bound lane (right of heading +y) lies east of the centre line;
    # CARLA puts it at y = -(y + ahead) facing yaw -90 degrees.
    north = carla_map.get_waypoint(
        carla.Location(x=node.x + 0.5 * w, y=-(node.y + ahead), z=0.0), project_to_road=False
    )
    assert north is not None
    assert north.transform.location.x == pytest.approx(node.x + 0.5 * w, abs=1e-3)
    assert _yaw_gap(north.transform.rotation.yaw, -math.degrees(Arm.NORTH.heading)) < 1e-3


# ------------------------------------------------------------------------------------------------
# layout, determinism, files, errors


def test_same_spec_gives_identical_text() -> None:
    for spec in CASES.values():
        assert generate_town(spec) == generate_town(TownSpec(**vars(spec)))


@pytest.mark.parametrize(
    "spec",
    [
        TownSpec(rows=3, cols=4),
        TownSpec(rows=5, cols=5, t_junction_fraction=0.4),
        TownSpec(layout="ring", rows=4),
    ],
)
def test_seed_changes_the_town(spec: TownSpec) -> None:
    texts = {generate_town(TownSpec(**{**vars(spec), "seed": seed})) for seed in range(4)}
    assert len(texts) == 4


def test_seed_without_randomisation_changes_nothing() -> None:
    texts = {generate_town(TownSpec(block_jitter=0.0, seed=seed)) for seed in range(3)}
    assert len(texts) == 1


@pytest.mark.parametrize("seed", range(6))
def test_t_junctions_reach_the_asked_share(seed: int) -> None:
    spec = TownSpec(rows=5, cols=6, t_junction_fraction=0.5, seed=seed)
    layout = plan_town(spec)
    interior = [n for n in layout.nodes if n.interior]
    t_junctions = [n for n in interior if len(n.arms) == 3]
    assert len(interior) == 12
    assert len(t_junctions) == 6
    assert all(len(n.arms) >= 2 for n in layout.nodes)
    corners = {(0, 0), (0, 5), (4, 0), (4, 5)}
    assert not corners & {cell for pair in layout.removed for cell in pair}


def test_jitter_keeps_blocks_within_bounds() -> None:
    for seed in range(20):
        spec = TownSpec(rows=4, cols=6, seed=seed)
        layout = plan_town(spec)
        xs = sorted({n.x for n in layout.nodes})
        gaps = [b - a for a, b in itertools.pairwise(xs)]
        assert min(gaps) >= spec.block_length * (1 - spec.block_jitter) - 1e-9
        assert max(gaps) <= spec.block_length * (1 + spec.block_jitter) + 1e-9
        assert sum(gaps) == pytest.approx(5 * spec.block_length)


def test_write_town(tmp_path: Path) -> None:
    spec = CASES["ring1"]
    path = write_town(spec, tmp_path / "maps" / "ring.xodr")
    assert path.read_text(encoding="utf-8") == generate_town(spec)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rows": 1}, "rows"),
        ({"cols": 0}, "cols"),
        ({"rows": 2, "cols": 2}, "rows"),
        ({"layout": "ring", "rows": 2}, "rows"),
        ({"layout": "spiral"}, "layout"),
        ({"lanes_per_direction": 0}, "lanes_per_direction"),
        ({"lanes_per_direction": 4}, "lanes_per_direction"),
        ({"block_length": -80.0}, "block_length"),
        ({"block_length": 30.0}, "block_length"),
        ({"lane_width": -3.5}, "lane_width"),
        ({"lane_width": math.nan}, "lane_width"),
        ({"sidewalk_width": -1.0}, "sidewalk_width"),
        ({"speed_limit": 0.0}, "speed_limit"),
        ({"t_junction_fraction": 1.5}, "t_junction_fraction"),
        ({"seed": -1}, "seed"),
        ({"name": ""}, "name"),
        ({"block_jitter": 0.5}, "block_jitter"),
    ],
)
def test_invalid_specs_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TownSpec(**kwargs)


def test_wrong_types_are_rejected() -> None:
    with pytest.raises(TypeError, match="rows"):
        TownSpec(rows=3.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lane_width"):
        TownSpec(lane_width="3.5")  # type: ignore[arg-type]
