"""Physics prediction baselines: constant velocity, CTRV, lane following (generated, real towns)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.prediction.baselines import (
    PREDICTORS,
    ConstantTurnRate,
    ConstantTurnRateConfig,
    ConstantVelocity,
    LaneFollowing,
    LaneFollowingConfig,
    Predictor,
    constant_turn_rate_modes,
    lane_paths,
    make_predictor,
    predictor_names,
    register_predictor,
)
from kaido.scene.agents import AgentClass, AgentIndex, AgentState
from kaido.scene.forecast import ModeIndex, PredictedAgents
from kaido.scene.geometry import Box3D, wrap_angle
from kaido.scene.road_map import RoadMap
from kaido.scene.town_generator import TownSpec, generate_town
from tests.conftest import shared_file

TIMES = np.arange(81, dtype=np.float64) * 0.1
SETTINGS = settings(max_examples=100, deadline=None)


def make_agent(
    track_id: int,
    x: float,
    y: float,
    yaw: float,
    speed: float,
    agent_class: AgentClass = AgentClass.VEHICLE,
    timestamp_ns: int = 0,
    velocity_yaw: float | None = None,
) -> AgentState:
    heading = yaw if velocity_yaw is None else velocity_yaw
    size = (4.5, 1.9, 1.6) if agent_class != AgentClass.PEDESTRIAN else (0.5, 0.5, 1.8)
    return AgentState(
        track_id=track_id,
        agent_class=agent_class,
        box=Box3D(x, y, 0.8, yaw, *size),
        velocity=(speed * math.cos(heading), speed * math.sin(heading)),
        timestamp_ns=timestamp_ns,
    )


def spawn_agent(track_id: int, pose: np.ndarray, speed: float) -> AgentState:
    """A vehicle at a spawn pose ``(3,)`` [x, y, yaw] driving along it."""
    return make_agent(track_id, float(pose[0]), float(pose[1]), float(pose[2]), speed)


# ----------------------------------------------------------------------------------------------
# The interface
# ----------------------------------------------------------------------------------------------


def test_constant_velocity_is_exact_on_a_straight_line() -> None:
    agents = [
        make_agent(7, 10.0, -3.0, 0.4, 12.0),
        make_agent(9, -2.0, 5.0, -2.5, 1.3, AgentClass.PEDESTRIAN),
    ]
    pred = ConstantVelocity().predict(agents, TIMES)
    assert isinstance(pred, PredictedAgents)
    assert pred.modes.shape == (2, 1, len(TIMES), len(ModeIndex))
    np.testing.assert_array_equal(pred.ids, [7, 9])
    np.testing.assert_array_equal(pred.classes, [AgentClass.VEHICLE, AgentClass.PEDESTRIAN])
    np.testing.assert_allclose(pred.sizes, [[4.5, 1.9], [0.5, 0.5]])
    np.testing.assert_array_equal(pred.probabilities, [[1.0], [1.0]])
    for i, a in enumerate(agents):
        mode = pred.modes[i, 0]
        np.testing.assert_allclose(
            mode[:, ModeIndex.X], a.box.x + a.velocity[0] * TIMES, atol=1e-12
        )
        np.testing.assert_allclose(
            mode[:, ModeIndex.Y], a.box.y + a.velocity[1] * TIMES, atol=1e-12
        )
        np.testing.assert_allclose(mode[:, ModeIndex.YAW], a.box.yaw)
        np.testing.assert_allclose(mode[:, ModeIndex.SPEED], a.speed)


def test_no_agents_gives_an_empty_forecast_on_the_grid() -> None:
    pred = ConstantVelocity().predict([], TIMES)
    assert pred.num_agents == 0
    assert pred.modes.shape[2] == len(TIMES)


@pytest.mark.parametrize(
    ("times", "message"),
    [
        ([0.1, 0.2], "times\\[0\\] must be 0"),
        ([0.0, 0.2, 0.2], "strictly increasing"),
        ([[0.0, 0.1]], "1-D"),
        ([], "at least one"),
        ([0.0, math.nan], "finite"),
    ],
)
def test_bad_times_are_refused(times: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConstantVelocity().predict([make_agent(1, 0, 0, 0, 1)], times)


def test_bad_agents_are_refused() -> None:
    with pytest.raises(ValueError, match="repeats track_id 1"):
        ConstantVelocity().predict([make_agent(1, 0, 0, 0, 1), make_agent(1, 5, 0, 0, 1)], TIMES)
    with pytest.raises(TypeError, match="agents\\[0\\]"):
        ConstantVelocity().predict([(0.0, 0.0)], TIMES)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of AgentState"):
        ConstantVelocity().predict(make_agent(1, 0, 0, 0, 1), TIMES)  # type: ignore[arg-type]


def test_registry_builds_by_name_and_refuses_duplicates() -> None:
    assert {"constant_velocity", "constant_turn_rate", "lane_following"} <= set(predictor_names())
    assert isinstance(make_predictor("constant_velocity"), ConstantVelocity)
    cfg = ConstantTurnRateConfig(max_yaw_rate=0.5)
    ctrv = make_predictor("constant_turn_rate", config=cfg)
    assert isinstance(ctrv, ConstantTurnRate) and ctrv.config is cfg
    assert PREDICTORS["lane_following"] is LaneFollowing
    assert ConstantVelocity.name == "constant_velocity"
    with pytest.raises(ValueError, match=r"unknown predictor 'nope'.*constant_velocity"):
        make_predictor("nope")
    with pytest.raises(ValueError, match="already registered"):

        @register_predictor("constant_velocity")
        class Again(ConstantVelocity):
            pass

    with pytest.raises(TypeError, match="not a Predictor"):
        register_predictor("not_a_predictor")(int)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="non-empty"):
        register_predictor(" ")
    assert PREDICTORS["constant_velocity"] is ConstantVelocity


def test_a_registered_subclass_fills_in_one_method() -> None:
    try:

        @register_predictor("test_standing_still")
        class StandStill(Predictor):
            def _predict_modes(self, agents, states, times):
                modes = np.zeros((len(states), 1, len(times), len(ModeIndex)))
                modes[..., ModeIndex.X] = states[:, None, None, AgentIndex.X]
                modes[..., ModeIndex.Y] = states[:, None, None, AgentIndex.Y]
                return modes, np.ones((len(states), 1))

        @register_predictor("test_wrong_grid")
        class WrongGrid(StandStill):
            def _predict_modes(self, agents, states, times):
                modes, probs = super()._predict_modes(agents, states, times[:-1])
                return modes, probs

        agent = make_agent(3, 1, 2, 0.5, 4)
        pred = make_predictor("test_standing_still").predict([agent], TIMES)
        np.testing.assert_allclose(pred.modes[0, 0, :, ModeIndex.X], 1.0)
        np.testing.assert_allclose(pred.modes[0, 0, :, ModeIndex.Y], 2.0)
        with pytest.raises(ValueError, match=r"WrongGrid.*81 time points"):
            make_predictor("test_wrong_grid").predict([agent], TIMES)
    finally:
        PREDICTORS.pop("test_standing_still", None)
        PREDICTORS.pop("test_wrong_grid", None)


# ----------------------------------------------------------------------------------------------
# Constant turn rate
# ----------------------------------------------------------------------------------------------


def circle_agent(
    track_id: int, t: float, centre: tuple[float, float], radius: float, omega: float, v: float
) -> AgentState:
    """An agent driving a circle counter-clockwise (omega > 0) or clockwise, box on the tangent."""
    phase = 0.3 + omega * t
    x = centre[0] + radius * math.cos(phase)
    y = centre[1] + radius * math.sin(phase)
    yaw = float(wrap_angle(phase + math.copysign(math.pi / 2, omega)))
    return make_agent(track_id, x, y, yaw, v, timestamp_ns=round(t * 1e9))


@pytest.mark.parametrize("omega", [0.3, -0.45, 1.2])
def test_ctrv_follows_the_circle_after_observing_it(omega: float) -> None:
    v = 7.5
    radius = v / abs(omega)
    centre = (12.0, -4.0)
    ctrv = ConstantTurnRate()
    history = np.arange(-1.0, 1e-9, 0.1)
    for t in history:
        ctrv.observe([circle_agent(5, float(t), centre, radius, omega, v)], round(float(t) * 1e9))
    now = circle_agent(5, 0.0, centre, radius, omega, v)
    assert ctrv.yaw_rate(now) == pytest.approx(omega, abs=1e-9)
    pred = ctrv.predict([now], TIMES)
    truth = [circle_agent(5, float(t), centre, radius, omega, v) for t in TIMES]
    mode = pred.modes[0, 0]
    np.testing.assert_allclose(mode[:, ModeIndex.X], [a.box.x for a in truth], atol=1e-6)
    np.testing.assert_allclose(mode[:, ModeIndex.Y], [a.box.y for a in truth], atol=1e-6)
    yaw_err = wrap_angle(mode[:, ModeIndex.YAW] - np.array([a.box.yaw for a in truth]))
    np.testing.assert_allclose(yaw_err, 0.0, atol=1e-9)
    np.testing.assert_allclose(mode[:, ModeIndex.SPEED], v)
    # every point on the circle
    np.testing.assert_allclose(
        np.hypot(mode[:, ModeIndex.X] - centre[0], mode[:, ModeIndex.Y] - centre[1]),
        radius,
        rtol=1e-9,
    )


def test_ctrv_yaw_rate_across_the_pi_seam_and_without_history() -> None:
    ctrv = ConstantTurnRate()
    fresh = make_agent(1, 0.0, 0.0, 3.1, 10.0)
    assert ctrv.yaw_rate(fresh) == 0.0
    np.testing.assert_allclose(
        ctrv.predict([fresh], TIMES).modes, ConstantVelocity().predict([fresh], TIMES).modes
    )
    # yaw goes 3.0 → 3.3 (wrapped to about -2.98) in 0.5 s: +0.6 rad/s
    for k in range(6):
        yaw = float(wrap_angle(3.0 + 0.06 * k))
        ctrv.observe(
            [make_agent(1, 0, 0, yaw, 10.0, timestamp_ns=k * 100_000_000)], k * 100_000_000
        )
    now = make_agent(1, 0, 0, float(wrap_angle(3.3)), 10.0, timestamp_ns=500_000_000)
    assert ctrv.yaw_rate(now) == pytest.approx(0.6, abs=1e-9)


def test_ctrv_window_clip_and_speed_gate() -> None:
    cfg = ConstantTurnRateConfig(history_window=0.5, max_yaw_rate=0.5, min_speed=1.0)
    ctrv = ConstantTurnRate(cfg)
    # 1 rad/s for 1 s, but the yaw stood still before: only the last 0.5 s count
    for k in range(21):
        t_ns = k * 100_000_000
        yaw = 0.0 if k <= 10 else 0.2 * (k - 10)
        ctrv.observe([make_agent(2, 0, 0, yaw, 5.0, timestamp_ns=t_ns)], t_ns)
    now = make_agent(2, 0, 0, 2.0, 5.0, timestamp_ns=2_000_000_000)
    assert ctrv.yaw_rate(now) == pytest.approx(0.5)  # 2 rad/s clipped
    slow = make_agent(2, 0, 0, 2.0, 0.5, timestamp_ns=2_000_000_000)
    assert ctrv.yaw_rate(slow) == 0.0
    unclipped = ConstantTurnRate(ConstantTurnRateConfig(max_yaw_rate=5.0))
    for k in range(16, 21):
        t_ns = k * 100_000_000
        unclipped.observe([make_agent(2, 0, 0, 0.2 * (k - 10), 5.0)], t_ns)
    assert unclipped.yaw_rate(now) == pytest.approx(2.0)


def test_ctrv_history_rules() -> None:
    ctrv = ConstantTurnRate()
    ctrv.observe([make_agent(1, 0, 0, 0.0, 5.0)], 1_000_000_000)
    with pytest.raises(ValueError, match="before the last observation"):
        ctrv.observe([make_agent(1, 0, 0, 0.0, 5.0)], 900_000_000)
    with pytest.raises(TypeError, match="timestamp_ns"):
        ctrv.observe([], 1.5)  # type: ignore[arg-type]
    ctrv.observe([make_agent(1, 0, 0, 0.1, 5.0)], 1_100_000_000)
    assert ctrv.yaw_rate(make_agent(1, 0, 0, 0.1, 5.0, timestamp_ns=1_100_000_000)) > 0
    # a track unseen for max_track_age is forgotten
    ctrv.observe([], 1_100_000_000 + 3_000_000_000)
    assert ctrv.yaw_rate(make_agent(1, 0, 0, 0.1, 5.0, timestamp_ns=4_100_000_000)) == 0.0
    ctrv.reset()
    ctrv.observe([make_agent(1, 0, 0, 0.0, 5.0)], 0)  # allowed again after reset
    with pytest.raises(ValueError, match="min_history_span"):
        ConstantTurnRateConfig(history_window=0.1, min_history_span=0.2)


@SETTINGS
@given(
    x=st.floats(-100, 100),
    y=st.floats(-100, 100),
    yaw=st.floats(-math.pi, math.pi),
    v=st.floats(0.1, 30.0),
    omega=st.floats(0.01, 2.0) | st.floats(-2.0, -0.01),
)
def test_ctrv_closed_form_matches_the_textbook_formula(
    x: float, y: float, yaw: float, v: float, omega: float
) -> None:
    states = make_agent(1, x, y, yaw, v).as_array()[None]
    out = constant_turn_rate_modes(states, np.array([omega]), TIMES)[0, 0]
    theta = yaw + omega * TIMES
    np.testing.assert_allclose(
        out[:, ModeIndex.X], x + v / omega * (np.sin(theta) - math.sin(yaw)), atol=1e-7
    )
    np.testing.assert_allclose(
        out[:, ModeIndex.Y], y + v / omega * (math.cos(yaw) - np.cos(theta)), atol=1e-7
    )


# ----------------------------------------------------------------------------------------------
# Lane following
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def town() -> RoadMap:
    pytest.importorskip("carla")
    spec = TownSpec(rows=3, cols=3, seed=0, name="t")
    return RoadMap.from_opendrive(generate_town(spec), name="t")


@pytest.fixture(scope="module")
def town_two_lanes() -> RoadMap:
    pytest.importorskip("carla")
    spec = TownSpec(rows=3, cols=4, lanes_per_direction=2, t_junction_fraction=0.3, seed=2)
    return RoadMap.from_opendrive(generate_town(spec), name="t2")


def four_way_approach(road_map: RoadMap) -> int:
    """A lane that ends at a junction with three ways on (straight, left, right)."""
    for lane in road_map.driving_lanes:
        succ = lane.successors
        if not lane.in_junction and len(succ) == 3:
            if all(road_map.lanes[s].in_junction for s in succ):
                return lane.index
    raise AssertionError("the town has no four-way junction")


def on_lane_distance(road_map: RoadMap, xy: np.ndarray) -> np.ndarray:
    """Distance of each point ``(N, 2)`` to the nearest driving-lane centreline (any direction)."""
    out = []
    for x, y in xy:
        found = road_map.project(float(x), float(y), max_distance=3.0)
        out.append(found[0].distance if found else math.inf)
    return np.array(out)


def arc_lengths(xy: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])


def test_lane_following_branches_at_a_four_way_junction(town: RoadMap) -> None:
    lane = town.lanes[four_way_approach(town)]
    x, y, yaw = lane.interpolate(lane.length - 15.0)
    speed = 8.0
    pred = LaneFollowing(town).predict([make_agent(1, x, y, yaw, speed)], TIMES)
    k = pred.modes.shape[1]
    assert k >= 2
    np.testing.assert_allclose(pred.probabilities.sum(axis=1), 1.0)
    assert np.all(np.diff(pred.probabilities[0]) <= 1e-12)  # most likely first
    # straight, left and right: the end headings differ by about 0, +90 and -90 degrees
    turns = sorted(
        round(math.degrees(wrap_angle(float(pred.modes[0, m, -1, ModeIndex.YAW] - yaw))))
        for m in range(k)
    )
    assert turns == [-90, 0, 90]
    ends = pred.modes[0, :, -1, :2]
    assert (
        min(np.linalg.norm(ends[i] - ends[j]) for i in range(k) for j in range(k) if i < j) > 10.0
    )
    for m in range(k):
        mode = pred.modes[0, m]
        np.testing.assert_allclose(mode[0, :2], [x, y], atol=1e-9)
        assert on_lane_distance(town, mode[:, :2]).max() <= 0.5
        arc = arc_lengths(mode[:, :2])
        np.testing.assert_allclose(arc[1:], speed * TIMES[1:], rtol=0.02)
        np.testing.assert_allclose(mode[:, ModeIndex.SPEED], speed)
        # the yaw is the direction of travel
        travel = np.arctan2(np.diff(mode[:, 1]), np.diff(mode[:, 0]))
        mid_yaw = mode[:-1, ModeIndex.YAW] + 0.5 * wrap_angle(np.diff(mode[:, ModeIndex.YAW]))
        assert np.abs(wrap_angle(travel - mid_yaw)).max() < math.radians(3)


def test_lane_following_keeps_every_mode_on_lanes_for_many_agents(town: RoadMap) -> None:
    spawns = town.spawn_points(spacing=7.0)
    rng = np.random.default_rng(3)
    speeds = rng.uniform(2.0, 14.0, len(spawns))
    agents = [
        spawn_agent(i, p, float(v)) for i, (p, v) in enumerate(zip(spawns, speeds, strict=True))
    ]
    pred = LaneFollowing(town).predict(agents, TIMES)
    np.testing.assert_allclose(pred.probabilities.sum(axis=1), 1.0)
    assert pred.modes.shape[1] <= LaneFollowingConfig().max_modes
    live = pred.probabilities > 0
    assert np.all(live[:, 0])
    points = pred.modes[live][:, ::5, :2].reshape(-1, 2)
    assert on_lane_distance(town, points).max() <= 0.5
    for a, v in enumerate(speeds):
        for m in np.flatnonzero(live[a]):
            arc = arc_lengths(pred.modes[a, m, :, :2])
            np.testing.assert_allclose(arc[1:], v * TIMES[1:], rtol=0.02)
    # padded modes repeat mode 0 at probability 0
    for a in range(len(agents)):
        for m in np.flatnonzero(~live[a]):
            np.testing.assert_array_equal(pred.modes[a, m], pred.modes[a, 0])


def test_lane_following_falls_back_to_constant_velocity(town: RoadMap) -> None:
    lane = town.lanes[four_way_approach(town)]
    x, y, yaw = lane.interpolate(lane.length - 15.0)
    bounds = town.bounds
    agents = [
        make_agent(1, x, y, yaw, 8.0),  # lane follower with 3 modes
        make_agent(2, x, y, yaw, 1.4, AgentClass.PEDESTRIAN),  # on the lane, but on foot
        make_agent(3, bounds[2] + 50.0, 0.0, 0.0, 9.0),  # off the map
        make_agent(4, x, y, yaw, 0.1),  # standing
        make_agent(5, x, y, yaw, 5.0, velocity_yaw=yaw + math.pi),  # reversing
        make_agent(6, x, y, yaw + math.pi / 2, 5.0),  # across the lane
        make_agent(7, x, y, yaw, 0.0, AgentClass.STATIC),
    ]
    pred = LaneFollowing(town).predict(agents, TIMES)
    cv = ConstantVelocity().predict(agents, TIMES)
    assert pred.modes.shape[1] == 3
    for a in range(1, len(agents)):
        np.testing.assert_array_equal(pred.probabilities[a], [1.0, 0.0, 0.0])
        for m in range(3):
            np.testing.assert_allclose(pred.modes[a, m], cv.modes[a, 0])
    # cyclists follow lanes like vehicles by default; a config can turn that off
    bike = [make_agent(8, x, y, yaw, 5.0, AgentClass.CYCLIST)]
    assert LaneFollowing(town).predict(bike, TIMES).modes.shape[1] == 3
    cfg = LaneFollowingConfig(lane_classes=(AgentClass.VEHICLE,))
    assert LaneFollowing(town, cfg).predict(bike, TIMES).modes.shape[1] == 1


def test_lane_following_heading_picks_the_turn_inside_a_junction(town: RoadMap) -> None:
    approach = town.lanes[four_way_approach(town)]
    for succ in approach.successors:
        turn = town.lanes[succ]
        x, y, yaw = turn.interpolate(0.6 * turn.length)
        pred = LaneFollowing(town).predict([make_agent(1, x, y, yaw, 6.0)], TIMES)
        assert pred.probabilities[0, 0] > 0.95
        # mode 0 ends on the lane after the turn, heading its way
        after = town.lanes[turn.successors[0]]
        end = pred.modes[0, 0, -1]
        proj = town.project(float(end[0]), float(end[1]), max_distance=0.5, heading=end[2])
        assert proj and proj[0].lane in (after.index, *after.successors)


def test_lane_following_merges_candidates_at_a_lane_end(town: RoadMap) -> None:
    lane = town.lanes[four_way_approach(town)]
    for back in (0.2, 1.0, 3.0):
        x, y, yaw = lane.interpolate(lane.length - back)
        pred = LaneFollowing(town).predict([make_agent(1, x, y, yaw, 8.0)], TIMES)
        assert pred.modes.shape[1] == 3, back
        np.testing.assert_allclose(pred.probabilities[0], 1 / 3, atol=0.01)


def test_lane_following_lateral_offset_decays(town: RoadMap) -> None:
    lane = town.lanes[four_way_approach(town)]
    x, y, yaw = lane.interpolate(10.0)
    offset = 0.8
    px, py = x - math.sin(yaw) * offset, y + math.cos(yaw) * offset
    cfg = LaneFollowingConfig(lateral_decay_time=0.5)
    pred = LaneFollowing(town, cfg).predict([make_agent(1, px, py, yaw, 3.0)], TIMES)
    mode = pred.modes[0, 0]
    np.testing.assert_allclose(mode[0, :2], [px, py], atol=1e-9)
    dist = on_lane_distance(town, mode[:, :2])
    np.testing.assert_allclose(dist, offset * np.exp(-TIMES / 0.5), atol=1e-6)
    # the yaw turns towards the centreline (to the right of a left offset) and straightens
    assert wrap_angle(float(mode[0, ModeIndex.YAW] - yaw)) < -0.1
    assert abs(wrap_angle(float(mode[-1, ModeIndex.YAW] - yaw))) < 1e-6


def test_lane_paths_cap_branching_and_keep_every_first_branch(town: RoadMap) -> None:
    start = four_way_approach(town)
    paths = lane_paths(town, start, 400.0, max_paths=6)
    assert len(paths) <= 6
    assert sum(p.probability for p in paths) == pytest.approx(1.0)
    assert {p.lanes[1] for p in paths} == set(town.lanes[start].successors)
    for p in paths:
        for a, b in zip(p.lanes[:-1], p.lanes[1:], strict=True):
            assert b in town.lanes[a].successors
        assert p.length >= 400.0 or not town.lanes[p.lanes[-1]].successors
        np.testing.assert_allclose(p.lane_starts[0], 0.0)
        assert np.all(np.diff(p.s) > 0)
    assert [p.lanes for p in paths] == [p.lanes for p in lane_paths(town, start, 400.0, 6)]
    only = lane_paths(town, start, 400.0, max_paths=1)
    assert len(only) == 1 and only[0].probability == 1.0
    # the single path goes straight on at the junction
    turn = town.lanes[only[0].lanes[1]]
    assert abs(wrap_angle(float(turn.headings[-1] - turn.headings[0]))) < 0.1
    with pytest.raises(ValueError, match="not a driving lane"):
        lane_paths(town, -1, 10.0, 6)


def test_lane_following_is_deterministic_and_caches(town: RoadMap) -> None:
    spawns = town.spawn_points(spacing=11.0)
    agents = [spawn_agent(i, p, 9.0) for i, p in enumerate(spawns)]
    first = LaneFollowing(town)
    a = first.predict(agents, TIMES)
    b = first.predict(agents, TIMES)
    c = LaneFollowing(town).predict(agents[::-1], TIMES)
    np.testing.assert_array_equal(a.modes, b.modes)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    np.testing.assert_array_equal(a.modes, c.modes[::-1])
    tiny = LaneFollowing(town, LaneFollowingConfig(cache_size=1))
    d = tiny.predict(agents, TIMES)
    np.testing.assert_array_equal(a.modes, d.modes)


def test_lane_following_refuses_bad_construction(town: RoadMap) -> None:
    with pytest.raises(TypeError, match="RoadMap"):
        LaneFollowing("town")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="LaneFollowingConfig"):
        LaneFollowing(town, ConstantTurnRateConfig())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_modes"):
        LaneFollowingConfig(max_modes=0)
    with pytest.raises(ValueError, match="max_snap_distance"):
        LaneFollowingConfig(max_snap_distance=-1.0)
    with pytest.raises(ValueError, match="lane_classes"):
        LaneFollowingConfig(lane_classes=(42,))  # type: ignore[arg-type]


def assert_snap_matches_project(road_map: RoadMap, seed: int) -> None:
    lf = LaneFollowing(road_map)
    cfg = lf.config
    rng = np.random.default_rng(seed)
    lanes = road_map.driving_lanes
    picks = rng.integers(0, len(lanes), 400)
    points, headings = [], []
    for i in picks:
        lane = lanes[int(i)]
        x, y, yaw = lane.interpolate(rng.uniform(-2.0, lane.length + 2.0))
        points.append([x + rng.normal(0, 1.5), y + rng.normal(0, 1.5)])
        headings.append(yaw + rng.normal(0, 0.6))
    pts, hdg = np.array(points), np.array(headings)
    cand = lf.index.query(pts, hdg)
    for n in range(len(pts)):
        expect = road_map.project(
            float(pts[n, 0]),
            float(pts[n, 1]),
            max_distance=cfg.max_snap_distance,
            heading=float(hdg[n]),
            max_heading_error=cfg.max_heading_error,
        )
        got = np.flatnonzero(cand.agent == n)
        assert sorted(cand.lane[got].tolist()) == sorted(p.lane for p in expect)
        by_lane = {p.lane: p for p in expect}
        for c in got:
            p = by_lane[int(cand.lane[c])]
            assert cand.s[c] == pytest.approx(p.s, abs=1e-9)
            assert cand.lateral[c] == pytest.approx(p.lateral, abs=1e-9)
            assert cand.distance[c] == pytest.approx(p.distance, abs=1e-9)
        assert np.all(np.diff(cand.distance[got]) >= 0)


def test_batched_lane_snapping_agrees_with_road_map_project(
    town: RoadMap, town_two_lanes: RoadMap
) -> None:
    assert_snap_matches_project(town, 0)
    assert_snap_matches_project(town_two_lanes, 1)


def test_lane_following_on_a_real_carla_town() -> None:
    pytest.importorskip("carla")
    road_map = RoadMap.from_file(shared_file("maps/Town01.xodr"))
    assert_snap_matches_project(road_map, 2)
    spawns = road_map.spawn_points(spacing=25.0)
    agents = [spawn_agent(i, p, 10.0) for i, p in enumerate(spawns)]
    pred = LaneFollowing(road_map).predict(agents, TIMES)
    live = pred.probabilities > 0
    assert live.sum() > len(agents)  # branching somewhere
    assert on_lane_distance(road_map, pred.modes[live][:, ::10, :2].reshape(-1, 2)).max() <= 0.5
    for a in range(len(agents)):
        for m in np.flatnonzero(live[a]):
            arc = arc_lengths(pred.modes[a, m, :, :2])
            np.testing.assert_allclose(arc[1:], 10.0 * TIMES[1:], rtol=0.02)


def test_lane_following_on_two_lane_roads(town_two_lanes: RoadMap) -> None:
    spawns = town_two_lanes.spawn_points(spacing=9.0)
    agents = [spawn_agent(i, p, 8.0) for i, p in enumerate(spawns)]
    pred = LaneFollowing(town_two_lanes).predict(agents, TIMES)
    live = pred.probabilities > 0
    np.testing.assert_allclose(pred.probabilities.sum(axis=1), 1.0)
    assert on_lane_distance(town_two_lanes, pred.modes[live][:, ::5, :2].reshape(-1, 2)).max() < 0.5
    # each agent starts in its own lane: the snapped lane is the one it was spawned on
    states = np.stack([a.as_array() for a in agents])
    np.testing.assert_allclose(pred.modes[:, 0, 0, :2], states[:, [AgentIndex.X, AgentIndex.Y]])
