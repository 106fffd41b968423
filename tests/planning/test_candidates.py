"""Candidate generation: kernels agree with their NumPy references; every candidate is feasible
and does what its kind says (keeps its offset, stops before a stop, follows a leader)."""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.planning import candidate_kernels as kernels
from kaido.planning import candidates as candidates_module
from kaido.planning.candidate_kernels import LateralIndex, SpeedProfileParam
from kaido.planning.candidates import (
    CandidateConfig,
    CandidateInfo,
    CandidateKind,
    build_reference_grid,
    generate_candidates,
    generate_candidates_reference,
    idm_profiles_reference,
    project_agents_reference,
    project_on_path,
    rollout_params,
    rollout_reference,
    speed_profiles_reference,
)
from kaido.planning.types import (
    PlannerConfig,
    PlannerInput,
    PredictedAgents,
    ReferencePath,
    StopConstraint,
    StopKind,
    TrajIndex,
)
from kaido.scene.agents import EgoState
from kaido.scene.geometry import SE2
from kaido.scene.road_map import RoadMap
from kaido.scene.town_generator import TownSpec, generate_town
from kaido.scene.vehicle import VehicleProfile

PROFILE = VehicleProfile()
PLANNER = PlannerConfig()
T = PLANNER.num_points
FRONT = PROFILE.rear_axle_to_center + 0.5 * PROFILE.length


# -- scenes --------------------------------------------------------------------------------------


def straight_reference(
    limit: float = 10.0, left: float = math.nan, right: float = math.nan, length: float = 300.0
) -> ReferencePath:
    s = np.arange(-20.0, length, 0.5)
    n = len(s)
    path = np.stack([s, np.zeros(n), np.zeros(n)], axis=1)
    return ReferencePath(path, s - s[0], np.full(n, limit), np.full(n, left), np.full(n, right))


def arc_reference(
    radius: float = 60.0, length: float = 300.0, limit: float = 15.0
) -> ReferencePath:
    """A left arc from the origin heading +x (s = 0 at the origin)."""
    s = np.arange(0.0, length, 0.5)
    th = s / radius
    path = np.stack([radius * np.sin(th), radius - radius * np.cos(th), th], axis=1)
    n = len(s)
    return ReferencePath(path, s, np.full(n, limit), np.full(n, 3.5), np.full(n, -3.5))


def route_reference() -> ReferencePath:
    """A real route through a generated town (with junction turns), no neighbour lanes."""
    town = RoadMap.from_opendrive(generate_town(TownSpec(rows=3, cols=3, seed=0, name="t")), "t")
    spawns = town.spawn_points(spacing=20.0)
    route = town.plan_route(spawns[[0, 7], :2], yaws=spawns[[0, 7], 2])
    nan = np.full(len(route.s), np.nan)
    return ReferencePath(route.path, route.s, route.speed_limits, nan, nan)


def ego_state(x: float, y: float, yaw: float, speed: float, steer: float = 0.0) -> EgoState:
    return EgoState(0, SE2(x, y, yaw), velocity=(speed, 0.0), steering_angle=steer)


def agents_at(*boxes: tuple[float, float, float, float]) -> PredictedAgents:
    """Agents driving straight at constant speed: (x, y, yaw, speed) each, 4.5 x 1.9 m; a
    second, less likely mode drives the other way (it must be ignored)."""
    a = len(boxes)
    t = PLANNER.times
    modes = np.zeros((a, 2, T, 4))
    for i, (x, y, yaw, v) in enumerate(boxes):
        for k, sign in enumerate((1.0, -1.0)):
            modes[i, k, :, 0] = x + sign * v * t * math.cos(yaw)
            modes[i, k, :, 1] = y + sign * v * t * math.sin(yaw)
            modes[i, k, :, 2] = yaw
            modes[i, k, :, 3] = v
    return PredictedAgents(
        ids=np.arange(a),
        classes=np.zeros(a, np.int64),
        sizes=np.tile([4.5, 1.9], (a, 1)),
        modes=modes,
        probabilities=np.tile([0.8, 0.2], (a, 1)),
    )


def planner_input(
    reference: ReferencePath,
    ego: EgoState,
    agents: PredictedAgents | None = None,
    stops: tuple[StopConstraint, ...] = (),
) -> PlannerInput:
    return PlannerInput(
        timestamp_ns=0,
        ego=ego,
        reference=reference,
        agents=agents if agents is not None else PredictedAgents.empty(T),
        stops=stops,
        ego_length=PROFILE.length,
        ego_width=PROFILE.width,
        rear_axle_to_center=PROFILE.rear_axle_to_center,
    )


def scenes() -> dict[str, PlannerInput]:
    straight = straight_reference(left=3.5)
    arc = arc_reference()
    route = route_reference()
    x, y, yaw = route.path[3]
    return {
        "straight": planner_input(
            straight,
            ego_state(0.0, 0.0, 0.0, 8.0),
            agents_at((45.0, 0.3, 0.0, 3.0), (30.0, 3.5, 0.0, 9.0)),
            (StopConstraint(70.0, StopKind.RED_LIGHT),),
        ),
        "curve_offset_steering": planner_input(
            arc,
            ego_state(0.5, 0.6, 0.12, 12.0, steer=-0.3),
            agents_at((35.0, 12.0, 0.6, 2.0)),
            (StopConstraint(90.0, StopKind.STOP_LINE),),
        ),
        "standstill_heading_error": planner_input(
            straight, ego_state(0.0, -0.8, -0.4, 0.0, steer=0.5)
        ),
        "over_the_limit": planner_input(arc, ego_state(0.0, 0.0, 0.0, 20.0)),
        "route": planner_input(route, ego_state(float(x), float(y), float(yaw), 6.0)),
    }


SCENES = scenes()


def project(reference: ReferencePath, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc length and signed offset of ``points`` ``(P, 2)`` on the nearest reference segment
    (brute force over all segments)."""
    p = reference.path[:, :2]
    e = np.diff(p, axis=0)
    length2 = np.sum(e * e, axis=1)
    rel = points[:, None, :] - p[None, :-1]
    u = np.clip(np.sum(rel * e, axis=-1) / length2, 0.0, 1.0)
    dist2 = np.sum((rel - u[..., None] * e) ** 2, axis=-1)
    i = np.argmin(dist2, axis=1)
    r = np.arange(len(points))
    s = reference.s[i] + u[r, i] * np.diff(reference.s)[i]
    d = (e[i, 0] * rel[r, i, 1] - e[i, 1] * rel[r, i, 0]) / np.sqrt(length2[i])
    return s, d


def front_bumper_s(reference: ReferencePath, trajectory: np.ndarray) -> np.ndarray:
    yaw = trajectory[:, TrajIndex.YAW]
    front = trajectory[:, :2] + FRONT * np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
    return project(reference, front)[0]


def wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def assert_feasible(trajectories: np.ndarray, ego: EgoState, profile: VehicleProfile) -> None:
    dt = PLANNER.dt
    x = trajectories[..., TrajIndex.X]
    y = trajectories[..., TrajIndex.Y]
    yaw = trajectories[..., TrajIndex.YAW]
    v = trajectories[..., TrajIndex.SPEED]
    a = trajectories[..., TrajIndex.ACCEL]
    kappa = trajectories[..., TrajIndex.CURVATURE]
    assert np.all(np.isfinite(trajectories))
    assert np.all(v >= 0.0)
    assert np.all(a >= profile.envelope_accel_min - 1e-6)
    assert np.all(a <= profile.envelope_accel_max + 1e-6)
    # the acceleration column is the speed's finite difference
    np.testing.assert_allclose(a[:, :-1], np.diff(v, axis=1) / dt, atol=1e-9)
    # steering: range and rate (from the ego's wheel angle)
    assert np.all(np.abs(kappa) <= math.tan(profile.max_steer) / profile.wheelbase + 1e-12)
    steer = np.arctan(kappa * profile.wheelbase)
    start = np.clip(ego.steering_angle, -profile.max_steer, profile.max_steer)
    steer = np.concatenate([np.full((len(steer), 1), start), steer], axis=1)
    assert np.all(np.abs(np.diff(steer, axis=1)) <= profile.max_steer_rate * dt + 1e-9)
    # yaw consistent with the xy path: each chord points along the mean yaw of its ends, the
    # yaw turns by curvature × distance, and a chord is no longer than the speed allows
    dx, dy = np.diff(x, axis=1), np.diff(y, axis=1)
    chord = np.hypot(dx, dy)
    turn = wrap(np.diff(yaw, axis=1))
    moving = chord > 1e-6
    heading = np.arctan2(dy, dx)
    mid = yaw[:, :-1] + 0.5 * turn
    assert np.all(np.abs(wrap(heading - mid))[moving] < 1e-6)
    np.testing.assert_allclose(turn, kappa[:, :-1] * chord, atol=1e-9, rtol=1e-2)
    assert np.all(chord <= 0.5 * (v[:, :-1] + v[:, 1:]) * dt + 1e-9)


# -- kernels vs references -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCENES))
def test_kernels_match_numpy_references_end_to_end(name: str) -> None:
    inp = SCENES[name]
    fast, info = generate_candidates(inp, PROFILE)
    slow, info_ref = generate_candidates_reference(inp, PROFILE)
    np.testing.assert_allclose(fast, slow, rtol=0.0, atol=1e-9)
    for field in dataclasses.fields(CandidateInfo):
        np.testing.assert_array_equal(getattr(info, field.name), getattr(info_ref, field.name))


def random_grid(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A wiggly reference grid: xy, normals, s0, ds."""
    ds = 0.5
    n = 400
    curvature = 0.04 * np.sin(np.arange(n) * ds / rng.uniform(8.0, 30.0)) + rng.uniform(-0.02, 0.02)
    yaw = rng.uniform(-np.pi, np.pi) + np.cumsum(curvature) * ds
    xy = np.cumsum(ds * np.stack([np.cos(yaw), np.sin(yaw)], axis=1), axis=0)
    normal = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
    return xy, normal, float(rng.uniform(-20.0, 20.0)), ds


@pytest.mark.parametrize("seed", range(4))
def test_each_kernel_matches_its_reference_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    xy, normal, s0, ds = random_grid(rng)
    cap = rng.uniform(3.0, 15.0, len(xy))
    num = 40
    i0 = 20
    start = np.array(
        [
            xy[i0, 0] + rng.normal(0.0, 0.5),
            xy[i0, 1] + rng.normal(0.0, 0.5),
            math.atan2(normal[i0, 0], -normal[i0, 1]) + rng.normal(0.0, 0.2),
            rng.uniform(0.0, 15.0),
            rng.uniform(-0.6, 0.6),
        ]
    )
    s_ego = s0 + i0 * ds

    # speed profiles
    params = np.array([0.1, -3.5, 2.0, 1.5, 2.0, 0.5])
    fractions = rng.uniform(0.0, 1.2, 12)
    targets = np.where(rng.random(12) < 0.5, np.inf, s_ego + rng.uniform(-5.0, 80.0, 12))
    args = (cap, s0, ds, s_ego, float(start[3]), fractions, targets, params, T)
    profiles = kernels.speed_profiles_kernel(*args)
    np.testing.assert_allclose(profiles, speed_profiles_reference(*args), rtol=0.0, atol=1e-9)

    # agents: projection, then IDM
    a = 6
    states = np.zeros((a, T, 4))
    idx = rng.integers(30, 300, a)
    offset = rng.uniform(-4.0, 4.0, a)
    speed = rng.uniform(-2.0, 12.0, a)
    heading = np.arctan2(normal[idx, 0], -normal[idx, 1]) + rng.normal(0.0, 0.3, a)
    for k in range(T):
        states[:, k, 0] = xy[idx, 0] + offset * normal[idx, 0] + speed * 0.1 * k * np.cos(heading)
        states[:, k, 1] = xy[idx, 1] + offset * normal[idx, 1] + speed * 0.1 * k * np.sin(heading)
        states[:, k, 2] = heading
        states[:, k, 3] = speed
    sizes = rng.uniform(0.5, 6.0, (a, 2))
    projected = kernels.project_agents_kernel(xy, s0, ds, states, sizes)
    np.testing.assert_allclose(
        projected, project_agents_reference(xy, s0, ds, states, sizes), rtol=0.0, atol=1e-9
    )
    idm_params = np.array([0.1, -3.5, 2.0, 1.5, 3.0, 1.5, 2.5, 1.75, FRONT, 1.425])
    stops = s_ego + rng.uniform(5.0, 100.0, int(rng.integers(0, 3)))
    idm_args = (cap, s0, ds, s_ego, float(start[3]), fractions[:5], projected, sizes[:, 1] / 2,
                stops, idm_params, T)  # fmt: skip
    idm = kernels.idm_profiles_kernel(*idm_args)
    np.testing.assert_allclose(idm, idm_profiles_reference(*idm_args), rtol=0.0, atol=1e-9)

    # rollout
    all_profiles = np.concatenate([profiles, idm])
    lateral = np.empty((num, len(LateralIndex)))
    lateral[:, LateralIndex.D_START] = rng.uniform(-1.0, 1.0, num)
    lateral[:, LateralIndex.SLOPE_START] = rng.uniform(-0.5, 0.5, num)
    lateral[:, LateralIndex.D_TARGET] = rng.uniform(-4.0, 4.0, num)
    lateral[:, LateralIndex.S_START] = s_ego
    lateral[:, LateralIndex.LENGTH] = rng.uniform(8.0, 60.0, num)
    index = rng.integers(0, len(all_profiles), num).astype(np.int64)
    limits = np.where(rng.random(num) < 0.5, np.inf, s_ego + rng.uniform(-2.0, 60.0, num))
    roll = (xy, normal, s0, ds, i0, start, lateral, index, all_profiles, limits,
            rollout_params(PROFILE, PLANNER, CandidateConfig()))  # fmt: skip
    fast = kernels.rollout_kernel(*roll)
    np.testing.assert_allclose(fast, rollout_reference(*roll), rtol=0.0, atol=1e-9)
    assert_feasible(fast, ego_state(0.0, 0.0, 0.0, 0.0, float(start[4])), PROFILE)


@numba.njit(cache=True)
def _elementary(x: np.ndarray) -> np.ndarray:
    """``(len(x), 4)``: the kernels' sin, cos, atan and (for |x| <= pi/4) sin(x)/x."""
    out = np.full((x.shape[0], 4), np.nan)
    for i in range(x.shape[0]):
        out[i, 0], out[i, 1] = kernels.sincos(x[i])
        out[i, 2] = kernels.arctan(x[i])
        if abs(x[i]) <= 0.25 * math.pi:
            out[i, 3] = kernels.sinc_small(x[i])
    return out


def test_branch_free_elementary_functions_match_numpy() -> None:
    rng = np.random.default_rng(0)
    quarter = 0.25 * math.pi
    edges = [0.0, -0.0, 1e-300, 1e-9, quarter, -quarter, 0.5 * math.pi, math.pi, -math.pi,
             2.0 * math.pi, 0.66, 2.414213562373095, 2.4142135623730954, 1e5, -1e5]  # fmt: skip
    x = np.concatenate(
        [edges, rng.uniform(-1.0, 1.0, 4000), rng.uniform(-8.0, 8.0, 4000),
         np.sign(rng.normal(size=2000)) * 10.0 ** rng.uniform(-8.0, 5.0, 2000)]
    )  # fmt: skip
    got = _elementary(x)
    # within two ulp of 1 (the reduction by pi/4 in three parts keeps large arguments exact)
    assert np.all(np.abs(got[:, 0] - np.sin(x)) <= 4.5e-16)
    assert np.all(np.abs(got[:, 1] - np.cos(x)) <= 4.5e-16)
    np.testing.assert_allclose(got[:, 2], np.arctan(x), rtol=4e-16, atol=0.0)
    small = np.abs(x) <= quarter
    with np.errstate(invalid="ignore"):
        sinc = np.where(x == 0.0, 1.0, np.sin(x) / np.where(x == 0.0, 1.0, x))
    np.testing.assert_allclose(got[small, 3], sinc[small], rtol=4e-16, atol=0.0)
    assert got[0, 0] == 0.0 and got[0, 1] == 1.0 and got[0, 2] == 0.0


def test_rollout_turns_beyond_the_polynomials_range_match_the_reference() -> None:
    """A wheel angle beyond 45° and half-turns beyond 45° per step take the library path."""
    rng = np.random.default_rng(5)
    xy, normal, s0, ds = random_grid(rng)
    num = 70  # more than two blocks of lanes
    i0 = 20
    start = np.array([xy[i0, 0], xy[i0, 1], math.atan2(normal[i0, 0], -normal[i0, 1]), 14.0, 0.0])
    s_ego = s0 + i0 * ds
    cap = np.full(len(xy), 14.0)
    params = np.array([0.1, -3.5, 2.0, 1.5, 2.0, 0.5])
    fractions = rng.uniform(0.6, 1.0, 5)
    profiles = kernels.speed_profiles_kernel(
        cap, s0, ds, s_ego, 14.0, fractions, np.full(5, np.inf), params, T
    )
    lateral = np.empty((num, len(LateralIndex)))
    lateral[:, LateralIndex.D_START] = 0.0
    lateral[:, LateralIndex.SLOPE_START] = 0.0
    lateral[:, LateralIndex.D_TARGET] = rng.uniform(-12.0, 12.0, num)
    lateral[:, LateralIndex.S_START] = s_ego
    lateral[:, LateralIndex.LENGTH] = rng.uniform(3.0, 6.0, num)
    nimble = dataclasses.replace(
        PROFILE,
        wheelbase=1.2,
        cg_to_rear_axle=0.7,
        max_steer=math.radians(59.0),
        max_steer_rate=math.radians(900.0),
    )
    params_roll = rollout_params(
        nimble,
        PLANNER,
        dataclasses.replace(CandidateConfig(), min_lookahead=1.0, lookahead_gain=0.05),
    )
    roll = (xy, normal, s0, ds, i0, start, lateral, rng.integers(0, 5, num).astype(np.int64),
            profiles, np.full(num, np.inf), params_roll)  # fmt: skip
    # the first steps: these spinning candidates amplify last-bit differences exponentially
    # (a chaotic system), so that later steps of any two implementations part
    steps = 12
    fast = kernels.rollout_kernel(*roll)[:, :steps]
    np.testing.assert_allclose(fast, rollout_reference(*roll)[:, :steps], rtol=0.0, atol=1e-9)
    kappa = fast[..., TrajIndex.CURVATURE]
    half_turn = 0.5 * kappa * fast[..., TrajIndex.SPEED] * PLANNER.dt
    assert np.sum(np.abs(np.arctan(kappa * nimble.wheelbase)) > 0.25 * math.pi) > 20
    assert np.sum(np.abs(half_turn) > 0.25 * math.pi) > 10


def test_generation_is_deterministic() -> None:
    inp = SCENES["curve_offset_steering"]
    config = CandidateConfig().dense(21, 20)
    first, _ = generate_candidates(inp, PROFILE, config=config)
    second, _ = generate_candidates(inp, PROFILE, config=config)
    np.testing.assert_array_equal(first, second)


# -- feasibility ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCENES))
def test_every_candidate_is_feasible_and_starts_at_the_ego(name: str) -> None:
    inp = SCENES[name]
    trajectories, info = generate_candidates(inp, PROFILE)
    assert trajectories.shape == (len(info), T, len(TrajIndex))
    assert_feasible(trajectories, inp.ego, PROFILE)
    first = trajectories[:, 0]
    np.testing.assert_array_equal(first[:, TrajIndex.X], inp.ego.pose.x)
    np.testing.assert_array_equal(first[:, TrajIndex.Y], inp.ego.pose.y)
    np.testing.assert_allclose(first[:, TrajIndex.YAW], wrap(np.array(inp.ego.pose.yaw)))
    np.testing.assert_array_equal(first[:, TrajIndex.SPEED], max(inp.ego.velocity[0], 0.0))


@settings(max_examples=40, deadline=None)
@given(
    offset=st.floats(-2.0, 2.0),
    heading=st.floats(-0.6, 0.6),
    speed=st.floats(0.0, 25.0),
    steer=st.floats(-0.7, 0.7),
    radius=st.sampled_from([15.0, 40.0, 200.0]),
)
def test_feasible_from_any_start_state(
    offset: float, heading: float, speed: float, steer: float, radius: float
) -> None:
    reference = arc_reference(radius=radius, length=min(300.0, 5.5 * radius))
    ego = ego_state(0.0, offset, heading, speed, steer)
    trajectories, _ = generate_candidates(planner_input(reference, ego), PROFILE)
    assert_feasible(trajectories, ego, PROFILE)


def test_a_tighter_vehicle_profile_is_respected() -> None:
    profile = dataclasses.replace(
        PROFILE,
        max_steer=math.radians(20.0),
        max_steer_rate=math.radians(15.0),
        envelope_accel_min=-2.0,
        envelope_accel_max=1.0,
    )
    inp = planner_input(arc_reference(radius=12.0, length=60.0), ego_state(0.0, 1.5, 0.5, 10.0))
    trajectories, _ = generate_candidates(inp, profile)
    assert_feasible(trajectories, inp.ego, profile)
    # the limits bind: some candidate steers at full lock and some brakes at the envelope
    kappa_max = math.tan(profile.max_steer) / profile.wheelbase
    assert np.isclose(np.abs(trajectories[..., TrajIndex.CURVATURE]).max(), kappa_max)
    assert np.isclose(trajectories[..., TrajIndex.ACCEL].min(), -2.0)


# -- behaviour -----------------------------------------------------------------------------------


def test_centre_candidates_stay_on_a_straight_reference() -> None:
    reference = straight_reference(limit=10.0)
    inp = planner_input(reference, ego_state(0.0, 0.0, 0.0, 10.0))
    trajectories, info = generate_candidates(inp, PROFILE)
    centre = np.flatnonzero(info.lateral_offset == 0.0)
    constant = centre[np.isclose(info.target_speed[centre], 10.0)]
    assert len(constant) >= 2  # the lattice's 1.0 and the IDM's 1.0
    for n in centre:
        assert np.abs(trajectories[n, :, TrajIndex.Y]).max() < 0.05
    for n in constant:
        np.testing.assert_allclose(trajectories[n, :, TrajIndex.SPEED], 10.0, atol=1e-9)
        np.testing.assert_allclose(trajectories[n, -1, TrajIndex.X], 80.0, atol=1e-6)


@pytest.mark.parametrize("reference", [straight_reference(), arc_reference()], ids=["line", "arc"])
def test_lateral_offset_candidates_end_at_their_offset(reference: ReferencePath) -> None:
    inp = planner_input(reference, ego_state(0.0, 0.0, 0.0, 8.0))
    config = CandidateConfig(lateral_offsets=(-1.5, -0.7, 0.0, 0.4, 1.2))
    trajectories, info = generate_candidates(inp, PROFILE, config=config)
    moving = (info.kind == CandidateKind.LATTICE) & (info.target_speed >= 3.0)
    assert set(info.lateral_offset[moving]) == set(config.lateral_offsets)
    for n in np.flatnonzero(moving):
        _, d = project(reference, trajectories[n, -3:, :2])
        np.testing.assert_allclose(d, info.lateral_offset[n], atol=0.05)


def test_a_curve_lowers_the_speed_cap() -> None:
    """On a 60 m arc the 2 m/s² lateral limit caps speed at √120 ≈ 11 m/s below the 15 m/s
    posted limit; the lattice's 1.0 centre candidate settles there."""
    reference = arc_reference(radius=60.0, limit=15.0)
    x, y, yaw = reference.path[40]  # 20 m into the arc
    inp = planner_input(reference, ego_state(float(x), float(y), float(yaw), 11.0))
    trajectories, info = generate_candidates(inp, PROFILE)
    (n,) = np.flatnonzero(
        (info.kind == CandidateKind.LATTICE)
        & (info.lateral_offset == 0.0)
        & np.isclose(info.target_speed, math.sqrt(120.0), atol=0.05)
    )
    np.testing.assert_allclose(trajectories[n, -10:, TrajIndex.SPEED], math.sqrt(120.0), atol=0.1)


@pytest.mark.parametrize(
    ("reference", "stop_s", "speed"),
    [
        (straight_reference(), 60.0, 10.0),
        (arc_reference(), 55.0, 12.0),
        (straight_reference(), 32.0, 3.0),
    ],
    ids=["line", "arc", "close"],
)
def test_stop_candidates_stop_before_the_stop_constraint(
    reference: ReferencePath, stop_s: float, speed: float
) -> None:
    inp = planner_input(
        reference,
        ego_state(0.0, 0.0, 0.0, speed),
        stops=(
            StopConstraint(stop_s, StopKind.RED_LIGHT),
            StopConstraint(-5.0, StopKind.STOP_LINE),
        ),
    )
    trajectories, info = generate_candidates(inp, PROFILE)
    stop = np.flatnonzero(info.stop_s == stop_s)
    # one stop profile per lateral target, as for the end of the path; none for the stop behind
    assert len(stop) == np.count_nonzero(info.stop_s == reference.s[-1]) > 0
    assert set(info.stop_s[np.isfinite(info.stop_s)]) == {stop_s, reference.s[-1]}
    assert np.all(np.isin(info.kind[stop], [CandidateKind.STOP, CandidateKind.LANE_CHANGE_LEFT,
                                             CandidateKind.LANE_CHANGE_RIGHT]))  # fmt: skip
    for n in stop:
        front = front_bumper_s(reference, trajectories[n])
        assert front.max() <= stop_s
        assert trajectories[n, -1, TrajIndex.SPEED] == 0.0
    # the centre one stops close to the margin (it does not stop absurdly early)
    centre = stop[(info.lateral_offset[stop] == 0.0)]
    front = front_bumper_s(reference, trajectories[centre[0]])
    assert stop_s - CandidateConfig().stop_margin - 0.3 <= front[-1] <= stop_s


def test_the_end_of_the_reference_is_a_stop() -> None:
    reference = straight_reference(length=45.0)  # ends at x = 44.5
    inp = planner_input(reference, ego_state(0.0, 0.0, 0.0, 8.0))
    trajectories, info = generate_candidates(inp, PROFILE)
    stop = np.flatnonzero(info.kind == CandidateKind.STOP)
    assert len(stop) == len(CandidateConfig().lateral_offsets)
    np.testing.assert_array_equal(info.stop_s[stop], reference.s[-1])
    for n in stop:
        assert trajectories[n, :, TrajIndex.X].max() + FRONT <= 44.5
        assert trajectories[n, -1, TrajIndex.SPEED] == 0.0


@pytest.mark.parametrize(
    ("left", "right", "kinds"),
    [
        (math.nan, math.nan, set()),
        (3.5, math.nan, {CandidateKind.LANE_CHANGE_LEFT}),
        (math.nan, -3.2, {CandidateKind.LANE_CHANGE_RIGHT}),
        (3.5, -3.2, {CandidateKind.LANE_CHANGE_LEFT, CandidateKind.LANE_CHANGE_RIGHT}),
    ],
)
def test_lane_changes_exist_only_where_the_neighbour_lane_does(
    left: float, right: float, kinds: set[CandidateKind]
) -> None:
    reference = straight_reference(left=left, right=right)
    inp = planner_input(reference, ego_state(0.0, 0.0, 0.0, 8.0))
    trajectories, info = generate_candidates(inp, PROFILE)
    changes = info.kind >= CandidateKind.LANE_CHANGE_LEFT
    assert set(info.kind[changes].tolist()) == kinds
    for n in np.flatnonzero(changes & (info.target_speed >= 3.0)):
        target = left if info.kind[n] == CandidateKind.LANE_CHANGE_LEFT else right
        assert info.lateral_offset[n] == target
        np.testing.assert_allclose(trajectories[n, -1, TrajIndex.Y], target, atol=0.05)
        np.testing.assert_allclose(trajectories[n, -1, TrajIndex.YAW], 0.0, atol=0.01)


def test_no_lane_change_into_a_lane_that_ends() -> None:
    reference = straight_reference(left=3.5)
    left = np.array(reference.left_offsets)
    left[reference.s > 30.0] = np.nan  # the neighbour ends 10 m ahead of the ego
    short = dataclasses.replace(reference, left_offsets=left)
    _, info = generate_candidates(planner_input(short, ego_state(0.0, 0.0, 0.0, 8.0)), PROFILE)
    assert not np.any(info.kind == CandidateKind.LANE_CHANGE_LEFT)


def test_idm_stops_behind_a_stopped_agent_in_the_lane() -> None:
    reference = straight_reference(limit=12.0)
    # a stopped car 35 m ahead in the lane, a slow one in the next lane (ignored)
    agents = agents_at((35.0, 0.4, 0.0, 0.0), (20.0, 3.6, 0.0, 1.0))
    inp = planner_input(reference, ego_state(0.0, 0.0, 0.0, 10.0), agents)
    trajectories, info = generate_candidates(inp, PROFILE)
    idm = np.flatnonzero(info.kind == CandidateKind.IDM)
    assert len(idm) == 9
    rear = 35.0 - 2.25
    for n in idm:
        front = trajectories[n, :, TrajIndex.X] + FRONT
        assert front.max() < rear - 1.0
        assert trajectories[n, -1, TrajIndex.SPEED] < 0.2  # the IDM's approach is asymptotic
        # it stops near the IDM's standstill gap, not far away
        assert front[-1] > rear - 2.0 * CandidateConfig().idm_min_gap
    # without the stopped car the IDM drives on, past where it stood
    free, free_info = generate_candidates(
        planner_input(reference, ego_state(0.0, 0.0, 0.0, 10.0), agents_at((20.0, 3.6, 0.0, 1.0))),
        PROFILE,
    )
    fastest = np.flatnonzero(free_info.kind == CandidateKind.IDM)[-1]
    assert free[fastest, -1, TrajIndex.X] > 45.0


def test_idm_follows_a_moving_leader() -> None:
    reference = straight_reference(limit=15.0)
    inp = planner_input(reference, ego_state(0.0, 0.0, 0.0, 12.0), agents_at((30.0, 0.0, 0.0, 6.0)))
    trajectories, info = generate_candidates(inp, PROFILE)
    for n in np.flatnonzero(info.kind == CandidateKind.IDM):
        leader_rear = 30.0 + 6.0 * PLANNER.times - 2.25
        gap = leader_rear - (trajectories[n, :, TrajIndex.X] + FRONT)
        assert gap.min() > CandidateConfig().idm_min_gap * 0.8
        assert trajectories[n, -1, TrajIndex.SPEED] < 6.0 + 1.0


def test_idm_stops_at_a_red_light() -> None:
    inp = planner_input(
        straight_reference(),
        ego_state(0.0, 0.0, 0.0, 8.0),
        stops=(StopConstraint(50.0, StopKind.RED_LIGHT),),
    )
    trajectories, info = generate_candidates(inp, PROFILE)
    for n in np.flatnonzero(info.kind == CandidateKind.IDM):
        assert trajectories[n, :, TrajIndex.X].max() + FRONT <= 50.0


def test_route_candidates_follow_the_route() -> None:
    inp = SCENES["route"]
    trajectories, info = generate_candidates(inp, PROFILE)
    reference = inp.reference
    assert not np.any(info.kind >= CandidateKind.LANE_CHANGE_LEFT)  # NaN neighbour offsets
    centre = np.flatnonzero((info.lateral_offset == 0.0) & (info.target_speed > 0.0))
    for n in centre:
        _, d = project(reference, trajectories[n, :, :2])
        assert np.abs(d).max() < 0.3
    # the route turns within the horizon, and the candidates turn with it
    yaw = np.unwrap(reference.path[:, 2])
    assert np.ptp(yaw[reference.s < 120.0]) > 1.0
    heading_change = np.ptp(np.unwrap(trajectories[centre[-1], :, TrajIndex.YAW]))
    assert heading_change > 1.0


# -- counts and inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        CandidateConfig(),
        CandidateConfig(lateral_offsets=(0.0,), speed_fractions=(), idm_speed_fractions=()),
        CandidateConfig(idm_offsets=()),
        CandidateConfig().dense(21, 30),
    ],
    ids=["default", "minimal", "no-idm", "dense"],
)
def test_candidate_count_matches_the_config(config: CandidateConfig) -> None:
    inp = SCENES["straight"]  # one stop ahead, a left neighbour lane
    trajectories, info = generate_candidates(inp, PROFILE, config=config)
    lateral = len(config.lateral_offsets) + 1
    longitudinal = len(config.speed_fractions) + 1 + 1
    expected = lateral * longitudinal + len(config.idm_speed_fractions) * len(config.idm_offsets)
    assert len(info) == trajectories.shape[0] == expected
    assert info.lateral_offset.shape == info.target_speed.shape == info.stop_s.shape == (expected,)


def test_max_candidates_keeps_the_first_ones() -> None:
    inp = SCENES["curve_offset_steering"]
    config = CandidateConfig().dense(41, 50)
    full, info = generate_candidates(inp, PROFILE, config=config)
    assert len(full) > 2048
    cut, cut_info = generate_candidates(
        inp, PROFILE, config=dataclasses.replace(config, max_candidates=2048)
    )
    assert cut.shape == (2048, T, len(TrajIndex))
    np.testing.assert_array_equal(cut, full[:2048])
    np.testing.assert_array_equal(cut_info.kind, info.kind[:2048])
    # the IDM block comes first, then lateral targets by increasing |offset|
    assert np.all(info.kind[:9] == CandidateKind.IDM)
    lattice = np.isin(info.kind, [CandidateKind.LATTICE, CandidateKind.STOP])
    assert not np.any(lattice[:9])
    lattice_offsets = np.abs(info.lateral_offset[lattice])
    assert np.all(np.diff(lattice_offsets) >= 0.0)


def _nan_pose_input(field: str) -> PlannerInput:
    pose = SE2(0.0, 0.0, 0.0)
    object.__setattr__(pose, field, math.nan)  # SE2 refuses NaN: corrupt it after the fact
    return planner_input(straight_reference(), EgoState(0, pose, velocity=(5.0, 0.0)))


@pytest.mark.parametrize("field", ["x", "y", "yaw"])
def test_nan_ego_pose_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(ValueError, match=rf"PlannerInput\.ego\.pose\.{field} must be finite"):
        generate_candidates(_nan_pose_input(field), PROFILE)


def test_other_bad_inputs_are_refused_naming_the_field() -> None:
    reference = straight_reference()
    nan_speed = planner_input(reference, EgoState(0, SE2(0, 0, 0), velocity=(math.nan, 0.0)))
    with pytest.raises(ValueError, match=r"ego\.velocity\[0\]"):
        generate_candidates(nan_speed, PROFILE)
    limits = np.array(reference.speed_limits)
    limits[3] = math.nan
    bad_limits = dataclasses.replace(reference, speed_limits=limits)
    with pytest.raises(ValueError, match=r"ReferencePath\.speed_limits"):
        generate_candidates(planner_input(bad_limits, ego_state(0, 0, 0, 5.0)), PROFILE)
    nan_stop = planner_input(
        reference, ego_state(0, 0, 0, 5.0), stops=(StopConstraint(math.nan, StopKind.STOP_LINE),)
    )
    with pytest.raises(ValueError, match=r"stops\[0\]\.s"):
        generate_candidates(nan_stop, PROFILE)
    agents = agents_at((10.0, 0.0, 0.0, 1.0))
    short = planner_input(
        reference,
        ego_state(0, 0, 0, 5.0),
        dataclasses.replace(agents, modes=agents.modes[:, :, :-1]),
    )
    with pytest.raises(ValueError, match=r"PredictedAgents\.modes: expected 81 time points"):
        generate_candidates(short, PROFILE)
    modes = np.array(agents.modes)
    modes[0, 1, 5, 0] = math.nan
    with pytest.raises(ValueError, match=r"PredictedAgents\.modes: must be finite"):
        generate_candidates(
            planner_input(
                reference, ego_state(0, 0, 0, 5.0), dataclasses.replace(agents, modes=modes)
            ),
            PROFILE,
        )
    with pytest.raises(TypeError, match=r"generate_candidates\.profile"):
        generate_candidates(planner_input(reference, ego_state(0, 0, 0, 5.0)), None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lateral_offsets": ()}, r"lateral_offsets: needs at least one"),
        ({"speed_fractions": (0.5, -0.1)}, r"speed_fractions: every entry must be finite and >= 0"),
        ({"idm_offsets": (math.nan,)}, r"idm_offsets: every entry must be finite"),
        ({"idm_decel": 0.0}, r"idm_decel: must be finite and > 0"),
        ({"stop_margin": -1.0}, r"stop_margin: must be finite and >= 0"),
        ({"path_resolution": math.inf}, r"path_resolution: must be finite"),
        ({"max_candidates": 0}, r"max_candidates: must be None or an int >= 1"),
    ],
)
def test_bad_config_is_refused_naming_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=rf"CandidateConfig\.{match}"):
        CandidateConfig(**kwargs)  # type: ignore[arg-type]


def wiggly_reference(seed: int) -> ReferencePath:
    """A winding path whose yaw wraps past ±π, with uneven spacing, a curvy speed limit and
    neighbour lanes that come and go."""
    rng = np.random.default_rng(seed)
    step = rng.uniform(0.4, 2.0, 150)
    heading = rng.uniform(-np.pi, np.pi) + np.cumsum(rng.normal(0.0, 0.08, 150))
    xy = np.cumsum(np.column_stack([np.cos(heading), np.sin(heading)]) * step[:, None], axis=0)
    yaw = (heading + np.pi) % (2 * np.pi) - np.pi  # wrapped, as a map gives it
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))]) + 7.0
    limits = np.clip(12.0 + 4.0 * np.sin(s / 17.0), 0.0, None)
    left = np.where(np.sin(s / 23.0) > 0.0, 3.5, np.nan)
    right = np.where(np.cos(s / 31.0) > 0.3, -3.2, np.nan)
    return ReferencePath(np.column_stack([xy, yaw]), s, limits, left, right)


@pytest.mark.parametrize("seed", range(4))
def test_reference_grid_and_pose_kernels_match_numpy(seed: int) -> None:
    reference = wiggly_reference(seed)
    config = CandidateConfig()
    rng = np.random.default_rng(seed + 10)
    for s_from, s_to in ((-15.0, 60.0), (40.0, 400.0), (float(rng.uniform(0, 100)), 140.0)):
        fast = candidates_module._build_reference_grid_kernel(reference, s_from, s_to, config)
        slow = build_reference_grid(reference, s_from, s_to, config)
        assert fast.s0 == slow.s0 and fast.ds == slow.ds
        for name in ("xy", "normal", "speed_limit", "speed_cap", "left_offsets", "right_offsets"):
            got, want = getattr(fast, name), getattr(slow, name)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9, err_msg=name)
    assert (slow.speed_cap < slow.speed_limit - 0.1).any()  # the curves lower the cap
    for _ in range(40):
        i = int(rng.integers(0, len(reference.s)))
        x, y = reference.path[i, :2] + rng.normal(0.0, 3.0, 2)
        yaw = float(reference.path[i, 2] + rng.normal(0.0, 1.0) + rng.choice([0.0, np.pi]))
        fast_p = candidates_module._project_on_path_kernel(reference, x, y, yaw)
        slow_p = project_on_path(reference, x, y, yaw)
        assert fast_p.segment == slow_p.segment
        np.testing.assert_allclose(
            [fast_p.s, fast_p.d, fast_p.heading_error],
            [slow_p.s, slow_p.d, slow_p.heading_error],
            rtol=0.0, atol=1e-9,
        )  # fmt: skip


def test_unwrap_kernel_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    angles = np.concatenate(
        [rng.uniform(-np.pi, np.pi, 500), [0.0, np.pi, -np.pi, np.pi, 0.0, -np.pi, 3.0]]
    )
    np.testing.assert_array_equal(kernels.unwrap_kernel(angles), np.unwrap(angles))
    np.testing.assert_array_equal(kernels.unwrap_kernel(np.zeros(0)), np.zeros(0))


def test_reference_grid_extends_straight_past_the_path() -> None:
    reference = straight_reference(length=20.0)  # x from -20 to 19.5
    grid = build_reference_grid(reference, -10.0, 60.0, CandidateConfig())
    np.testing.assert_allclose(grid.xy[:, 0], grid.s - 20.0, atol=1e-12)
    np.testing.assert_allclose(grid.xy[:, 1], 0.0)
    np.testing.assert_allclose(grid.normal, np.tile([0.0, 1.0], (len(grid.s), 1)), atol=1e-12)
    np.testing.assert_allclose(grid.speed_cap, 10.0)


def test_speed_profile_kernel_settles_on_its_target_and_stops_exactly() -> None:
    cap = np.full(400, 10.0)
    params = np.empty(len(SpeedProfileParam))
    params[:] = [0.1, -3.5, 2.0, 1.5, 2.0, 0.5]
    out = kernels.speed_profiles_kernel(
        cap, 0.0, 0.5, 0.0, 8.0, np.array([0.0, 0.5, 1.0]), np.array([np.inf, np.inf, 40.0]),
        params, T,
    )  # fmt: skip
    assert out[0, -1, 1] == 0.0  # stop: settles at exactly 0
    np.testing.assert_allclose(out[1, -1, 1], 5.0, atol=1e-12)
    np.testing.assert_allclose(out[2, -1, 0], 40.0, atol=1e-9)  # stop profile: exactly there
    assert out[2, -1, 1] == 0.0
