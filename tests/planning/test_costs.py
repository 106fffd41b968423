"""Cost terms and scoring: every kernel against its reference, and hand-made driving cases."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import shapely

from kaido.planning import cost_kernels as ck
from kaido.planning import costs
from kaido.planning.costs import (
    ComfortIndex,
    CostConfig,
    Multiplier,
    SoftTerm,
    score_candidates,
)
from kaido.planning.types import (
    DrivableField,
    ModeIndex,
    OccupancyForecast,
    PlannerConfig,
    PlannerInput,
    PredictedAgents,
    ReferencePath,
    StopConstraint,
    StopKind,
    TrajIndex,
)
from kaido.scene.agents import AgentClass, EgoState
from kaido.scene.geometry import SE2, box2d_overlap
from kaido.scene.vehicle import VehicleProfile

PROFILE = VehicleProfile()
PLANNER = PlannerConfig()
T = PLANNER.num_points
DT = PLANNER.dt
LENGTH, WIDTH, REAR = PROFILE.length, PROFILE.width, PROFILE.rear_axle_to_center
FRONT = PROFILE.length - PROFILE.rear_overhang  # rear axle to front bumper [m]
COS_BEHIND = math.cos(CostConfig().behind_angle)
BEHIND = CostConfig().behind_angle
TAUS = np.asarray(DT * np.arange(1, 10), dtype=np.float64)


# -- builders --------------------------------------------------------------------------------------


def straight(
    v0: float, accel: float = 0.0, y: float = 0.0, x0: float = 0.0, drift: float = 0.0
) -> np.ndarray:
    """A candidate ``(T, 6)`` along +x from ``(x0, y)``: constant ``accel`` until it stops, and a
    lateral ``drift`` [m/s] (heading kept along x)."""
    t = PLANNER.times
    if accel < 0:
        t_stop = v0 / -accel
        tt = np.minimum(t, t_stop)
        x = x0 + v0 * tt + 0.5 * accel * tt**2
        v = np.maximum(v0 + accel * t, 0.0)
        a = np.where(t < t_stop, accel, 0.0)
    else:
        x = x0 + v0 * t + 0.5 * accel * t**2
        v = v0 + accel * t
        a = np.full(T, accel)
    out = np.zeros((T, len(TrajIndex)))
    out[:, TrajIndex.X] = x
    out[:, TrajIndex.Y] = y + drift * t
    out[:, TrajIndex.SPEED] = v
    out[:, TrajIndex.ACCEL] = a
    return out


def ego_states(*candidates: np.ndarray) -> np.ndarray:
    """Box states ``(N, T, len(BoxState))`` of the ego along candidates."""
    return np.asarray(costs.ego_box_states(np.stack(candidates), REAR))


def agent_track(x0: float, y0: float, v: float, yaw: float = 0.0) -> np.ndarray:
    """A constant-velocity mode ``(T, 4)`` of a box centre."""
    t = PLANNER.times
    out = np.zeros((T, len(ModeIndex)))
    out[:, ModeIndex.X] = x0 + v * math.cos(yaw) * t
    out[:, ModeIndex.Y] = y0 + v * math.sin(yaw) * t
    out[:, ModeIndex.YAW] = yaw
    out[:, ModeIndex.SPEED] = v
    return out


def agents_from(
    tracks: list[list[np.ndarray]],
    probs: list[list[float]] | None = None,
    classes: list[int] | None = None,
    sizes: list[tuple[float, float]] | None = None,
) -> PredictedAgents:
    a = len(tracks)
    if a == 0:
        return PredictedAgents.empty(T)
    k = max(len(m) for m in tracks)
    modes = np.zeros((a, k, T, len(ModeIndex)))
    p = np.zeros((a, k))
    for i, ms in enumerate(tracks):
        for j, m in enumerate(ms):
            modes[i, j] = m
        p[i, : len(ms)] = probs[i] if probs else 1.0 / len(ms)
    return PredictedAgents(
        ids=np.arange(a),
        classes=np.array(classes or [int(AgentClass.VEHICLE)] * a, np.int64),
        sizes=np.array(sizes or [(4.6, 1.9)] * a),
        modes=modes,
        probabilities=p,
    )


def road(length: float = 300.0, limit: float = 15.0) -> ReferencePath:
    x = np.arange(-20.0, length, 1.0)
    path = np.column_stack([x, np.zeros_like(x), np.zeros_like(x)])
    n = len(x)
    return ReferencePath(
        path=path,
        s=x + 20.0,
        speed_limits=np.full(n, limit),
        left_offsets=np.full(n, 3.5),
        right_offsets=np.full(n, np.nan),
    )


def corridor(y_min: float = -5.25, y_max: float = 5.25) -> DrivableField:
    """Signed distance of the band ``y_min <= y <= y_max`` on a raster around the origin."""
    res, h, w, orow, ocol = 0.5, 400, 120, 300.0, 60.0
    y = (ocol - np.arange(w) - 0.5) * res
    dist = np.minimum(y - y_min, y_max - y)[None, :].repeat(h, axis=0)
    return DrivableField(dist, np.zeros(3), res, orow, ocol)


def make_input(
    agents: PredictedAgents | None = None,
    drivable: DrivableField | None = None,
    occupancy: OccupancyForecast | None = None,
    stops: tuple[StopConstraint, ...] = (),
    v0: float = 10.0,
    reference: ReferencePath | None = None,
) -> PlannerInput:
    return PlannerInput(
        timestamp_ns=0,
        ego=EgoState(timestamp_ns=0, pose=SE2(0.0, 0.0, 0.0), velocity=(v0, 0.0)),
        reference=reference or road(),
        agents=agents if agents is not None else PredictedAgents.empty(T),
        drivable=drivable,
        occupancy=occupancy,
        stops=stops,
    )


def score(cands: list[np.ndarray], inp: PlannerInput, config: CostConfig | None = None):
    return score_candidates(np.stack(cands), inp, PROFILE, PLANNER, config or CostConfig())


def random_interaction_case(seed: int, n: int = 16, t: int = 25, a: int = 6, k: int = 3):
    """Random candidates near the origin and agents around them, as box states (ego, lateral
    at fault, agents, agent sizes, weights): overlaps of every kind."""
    rng = np.random.default_rng(seed)
    cand = np.zeros((n, t, len(TrajIndex)))
    yaw = rng.uniform(-0.6, 0.6, (n, 1)) + np.cumsum(rng.normal(0, 0.05, (n, t)), axis=1)
    v = rng.uniform(-1.0, 12.0, (n, 1)) + np.zeros((n, t))
    v[rng.random((n, t)) < 0.15] = 0.0
    cand[..., TrajIndex.X] = rng.uniform(-2, 2, (n, 1)) + np.cumsum(v * np.cos(yaw) * DT, axis=1)
    cand[..., TrajIndex.Y] = rng.uniform(-2, 2, (n, 1)) + np.cumsum(v * np.sin(yaw) * DT, axis=1)
    cand[..., TrajIndex.YAW] = yaw
    cand[..., TrajIndex.SPEED] = v
    modes = np.zeros((a, k, t, len(ModeIndex)))
    ayaw = rng.uniform(-np.pi, np.pi, (a, k, 1)) + np.zeros((a, k, t))
    av = rng.uniform(0, 10, (a, k, 1)) * (rng.random((a, k, 1)) > 0.25) + np.zeros((a, k, t))
    modes[..., ModeIndex.X] = rng.uniform(-12, 30, (a, k, 1)) + np.cumsum(
        av * np.cos(ayaw) * DT, axis=2
    )
    modes[..., ModeIndex.Y] = rng.uniform(-8, 8, (a, k, 1)) + np.cumsum(
        av * np.sin(ayaw) * DT, axis=2
    )
    modes[..., ModeIndex.YAW] = ayaw
    modes[..., ModeIndex.SPEED] = av
    sizes = np.column_stack([rng.uniform(0.5, 7.0, a), rng.uniform(0.5, 2.6, a)])
    weights = rng.dirichlet(np.ones(k), a) * rng.choice([0.5, 1.0], (a, 1))
    weights[rng.random((a, k)) < 0.1] = 0.0
    lateral = rng.random((n, t)) < 0.5
    ego = costs.ego_box_states(cand, REAR)
    return ego, lateral, costs.agent_box_states(modes), sizes, weights


# -- kernels against their references --------------------------------------------------------------


def test_box_pair_kernel_matches_shapely_and_geometry() -> None:
    rng = np.random.default_rng(0)
    m = 3000
    a = np.column_stack(
        [rng.uniform(-3, 3, m), rng.uniform(-3, 3, m), rng.uniform(-4, 4, m),
         rng.uniform(0.3, 6, m), rng.uniform(0.3, 3, m)]
    )  # fmt: skip
    b = np.column_stack(
        [rng.uniform(-3, 3, m), rng.uniform(-3, 3, m), rng.uniform(-4, 4, m),
         rng.uniform(0.3, 6, m), rng.uniform(0.3, 3, m)]
    )  # fmt: skip
    overlap, front = ck.box_pair_kernel(a, b, ck.OVERLAP_EPS)
    np.testing.assert_array_equal(overlap, box2d_overlap(a, b, ck.OVERLAP_EPS))
    ref_overlap, ref_front = costs.box_pair_reference(a, b)
    # shapely is exact; compare away from touching configurations (within 1e-6 m)
    poly_a = shapely.polygons(costs.box2d_corners(a))
    poly_b = shapely.polygons(costs.box2d_corners(b))
    edge = shapely.linestrings(costs.box2d_corners(a)[:, [0, 3]])
    clear = (shapely.distance(poly_a, poly_b) > 1e-6) | (
        shapely.area(shapely.intersection(poly_a, poly_b)) > 1e-6
    )
    clear_edge = (shapely.distance(edge, poly_b) > 1e-6) | (
        shapely.length(shapely.intersection(edge, poly_b)) > 1e-6
    )
    assert clear.sum() > 0.99 * m and clear_edge.sum() > 0.99 * m
    assert 0.2 * m < ref_overlap.sum() < 0.9 * m and ref_front.sum() > 0.1 * m
    np.testing.assert_array_equal(overlap[clear], ref_overlap[clear])
    np.testing.assert_array_equal(front[clear_edge], ref_front[clear_edge])


def test_box_pair_kernel_touching_boxes_overlap_and_nan_never() -> None:
    a = np.array([[0.0, 0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 2.0, 2.0]])
    b = np.array([[2.0, 0.0, 0.0, 2.0, 2.0], [np.nan, 0.0, 0.0, 2.0, 2.0]])
    overlap, front = ck.box_pair_kernel(a, b, ck.OVERLAP_EPS)
    assert overlap.tolist() == [True, False]
    assert front.tolist() == [True, False]


@pytest.mark.parametrize("seed", range(12))
def test_collision_kernel_matches_reference(seed: int) -> None:
    cand, lateral, modes, sizes, weights = random_interaction_case(seed)
    t = cand.shape[1]
    want = costs.collision_reference(
        cand, lateral, modes, sizes, weights, LENGTH, WIDTH, REAR, 0.05, BEHIND, t
    )
    for cell in (0.7, 6.0, 1000.0):
        got = ck.collision_kernel(
            cand, lateral, modes, 0.5 * sizes, weights, LENGTH, WIDTH, REAR, 0.05, COS_BEHIND,
            t, cell,
        )  # fmt: skip
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(got[1], want[1])
    # a shorter horizon checks fewer steps
    short = ck.collision_kernel(
        cand, lateral, modes, 0.5 * sizes, weights, LENGTH, WIDTH, REAR, 0.05, COS_BEHIND, 7, 6.0
    )
    want_short = costs.collision_reference(
        cand, lateral, modes, sizes, weights, LENGTH, WIDTH, REAR, 0.05, BEHIND, 7
    )
    np.testing.assert_allclose(short[0], want_short[0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(short[1], want_short[1])


def test_collision_cases_are_varied() -> None:
    """The random cases above exercise hits, misses and every at-fault rule."""
    hits = 0
    not_at_fault = 0
    for seed in range(12):
        cand, lateral, modes, sizes, weights = random_interaction_case(seed)
        t = cand.shape[1]
        measure, first = costs.collision_reference(
            cand, lateral, modes, sizes, weights, LENGTH, WIDTH, REAR, 0.05, BEHIND, t
        )
        everything = costs.collision_reference(
            cand, np.ones_like(lateral), modes, sizes, weights, LENGTH, WIDTH, REAR, -1.0,
            math.pi, t,
        )  # fmt: skip
        hits += int((first >= 0).sum())
        not_at_fault += int((everything[0] > measure + 1e-12).sum())
    assert hits > 30 and not_at_fault > 10


@pytest.mark.parametrize("seed", range(12))
def test_ttc_kernel_matches_reference(seed: int) -> None:
    cand, _lateral, modes, sizes, weights = random_interaction_case(seed + 100)
    t = cand.shape[1]
    want = costs.ttc_reference(
        cand, modes, sizes, weights, LENGTH, WIDTH, REAR, 0.05, BEHIND, t, TAUS
    )
    for cell in (0.7, 6.0, 1000.0):
        got = ck.ttc_kernel(
            cand, modes, 0.5 * sizes, weights, LENGTH, WIDTH, REAR, 0.05, COS_BEHIND, t, TAUS,
            cell,
        )  # fmt: skip
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(got[1], want[1])


def test_ttc_cases_are_varied() -> None:
    flagged = 0
    for seed in range(12):
        cand, _lateral, modes, sizes, weights = random_interaction_case(seed + 100)
        _, first = costs.ttc_reference(
            cand, modes, sizes, weights, LENGTH, WIDTH, REAR, 0.05, BEHIND, cand.shape[1], TAUS
        )
        flagged += int((first >= 0).sum())
    assert flagged > 20


def test_interaction_kernels_without_agents() -> None:
    cand = ego_states(straight(10.0))
    modes = np.zeros((0, 1, T, len(ck.BoxState)))
    empty = (np.zeros((0, 2)), np.zeros((0, 1)))
    m, f = ck.collision_kernel(
        cand, np.zeros((1, T), bool), modes, *empty, LENGTH, WIDTH, REAR, 0.05, COS_BEHIND, T, 6.0
    )
    assert m.tolist() == [0.0] and f.tolist() == [-1]
    m, f = ck.ttc_kernel(cand, modes, *empty, LENGTH, WIDTH, REAR, 0.05, COS_BEHIND, T, TAUS, 6.0)
    assert m.tolist() == [0.0] and f.tolist() == [-1]


@pytest.mark.parametrize("seed", range(8))
def test_interaction_kernel_matches_reference(seed: int) -> None:
    """Both measures in one pass, with separate weights (a mode may count for one measure only)
    and saturation: a saturated measure reads the saturation, the first steps stay exact."""
    cand, lateral, modes, sizes, weights = random_interaction_case(seed + 200, n=40, a=8)
    rng = np.random.default_rng(seed)
    ttc_weights = weights * (rng.random(weights.shape) > 0.2)
    collision_weights = weights * (rng.random(weights.shape) > 0.2)
    t = cand.shape[1]
    for saturation in (math.inf, 1.0, 0.3):
        want = costs.interaction_reference(
            cand, lateral, modes, 0.5 * sizes, collision_weights, ttc_weights, LENGTH, WIDTH,
            REAR, 0.05, COS_BEHIND, t, TAUS, saturation,
        )  # fmt: skip
        for cell in (0.7, 6.0):
            got = ck.interaction_kernel(
                cand, lateral, modes, 0.5 * sizes, collision_weights, ttc_weights, LENGTH,
                WIDTH, REAR, 0.05, COS_BEHIND, t, TAUS, cell, saturation,
            )  # fmt: skip
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)
    # saturation changes what it must: some measures are clipped, none of the first steps
    full = costs.interaction_reference(
        cand, lateral, modes, 0.5 * sizes, collision_weights, ttc_weights, LENGTH, WIDTH, REAR,
        0.05, COS_BEHIND, t, TAUS, math.inf,
    )  # fmt: skip
    assert np.any(full[0] > 0.3) and np.any(full[2] > 0.3)


def test_interaction_kernel_takes_rear_axle_poses() -> None:
    """Rear-axle candidates give what their box states give (box states computed inside)."""
    rng = np.random.default_rng(11)
    cand = np.zeros((30, 25, len(TrajIndex)))
    yaw = rng.uniform(-0.6, 0.6, (30, 1)) + np.cumsum(rng.normal(0, 0.05, (30, 25)), axis=1)
    v = rng.uniform(0.0, 12.0, (30, 1)) + np.zeros((30, 25))
    cand[..., TrajIndex.X] = rng.uniform(-2, 2, (30, 1)) + np.cumsum(v * np.cos(yaw) * DT, axis=1)
    cand[..., TrajIndex.Y] = rng.uniform(-2, 2, (30, 1)) + np.cumsum(v * np.sin(yaw) * DT, axis=1)
    cand[..., TrajIndex.YAW] = yaw
    cand[..., TrajIndex.SPEED] = v
    _, lateral, modes, sizes, weights = random_interaction_case(3, n=30)
    args = (lateral, modes, 0.5 * sizes, weights, weights, LENGTH, WIDTH, REAR, 0.05, COS_BEHIND,
            25, TAUS, 6.0, 1.0)  # fmt: skip
    from_poses = ck.interaction_kernel(cand, *args)
    from_boxes = ck.interaction_kernel(ego_states(*cand), *args)
    want = costs.interaction_reference(cand, *args[:-2], 1.0)
    for p, b, w in zip(from_poses, from_boxes, want, strict=True):
        np.testing.assert_allclose(p, b, rtol=0, atol=1e-12)
        np.testing.assert_allclose(p, w, rtol=0, atol=1e-12)
    assert (from_poses[1] >= 0).sum() > 3
    with pytest.raises(ValueError, match="ego must be"):
        ck.interaction_kernel(cand[..., :4].copy(), *args)


def test_interaction_kernel_blocks_and_windows_do_not_matter() -> None:
    """More candidates than a block, a horizon that is not a whole number of windows, and
    candidates in any order give the same rows."""
    cand, lateral, modes, sizes, weights = random_interaction_case(7, n=37, t=23)
    args = (modes, 0.5 * sizes, weights, weights, LENGTH, WIDTH, REAR, 0.05, COS_BEHIND, 23,
            TAUS, 6.0, 1.0)  # fmt: skip
    got = ck.interaction_kernel(cand, lateral, *args)
    perm = np.random.default_rng(0).permutation(37)
    shuffled = ck.interaction_kernel(
        np.ascontiguousarray(cand[perm]), np.ascontiguousarray(lateral[perm]), *args
    )
    for g, s in zip(got, shuffled, strict=True):
        np.testing.assert_array_equal(g[perm], s)
    assert (got[1] >= 0).sum() > 5 and (got[3] >= 0).sum() > 5


def test_mode_box_states_kernel_matches_reference() -> None:
    rng = np.random.default_rng(4)
    modes = rng.normal(scale=5.0, size=(5, 3, 11, len(ModeIndex)))
    modes[..., ModeIndex.YAW] = rng.uniform(-10, 10, (5, 3, 11))
    np.testing.assert_allclose(
        ck.mode_box_states_kernel(modes), costs.agent_box_states(modes), rtol=0, atol=1e-15
    )


def random_candidates_near(
    path: np.ndarray, s: np.ndarray, rng: np.random.Generator, n: int, t: int
) -> np.ndarray:
    """Candidates ``(n, t, 6)`` driving along ``path`` (some backwards, some stopped, some past
    either end) with lateral offsets and headings around the path's."""
    out = np.zeros((n, t, len(TrajIndex)))
    speed = rng.uniform(-3.0, 16.0, (n, 1)) * (rng.random((n, 1)) > 0.1)
    along = rng.uniform(-10.0, s[-1] - s[0] + 5.0, (n, 1)) + np.cumsum(
        np.broadcast_to(speed * DT, (n, t)), axis=1
    )
    index = np.interp(along, s - s[0], np.arange(len(s)))
    j = np.clip(index.astype(int), 0, len(s) - 2)
    frac = (index - j)[..., None]
    point = path[j, :2] + frac * (path[j + 1, :2] - path[j, :2])
    heading = path[j, 2]
    offset = rng.uniform(-3.0, 3.0, (n, 1)) + rng.normal(0, 0.3, (n, t))
    out[..., TrajIndex.X] = point[..., 0] - offset * np.sin(heading)
    out[..., TrajIndex.Y] = point[..., 1] + offset * np.cos(heading)
    out[..., TrajIndex.YAW] = heading + rng.normal(0, 0.2, (n, t)) + np.pi * (speed < 0)
    out[..., TrajIndex.SPEED] = np.abs(speed) + rng.normal(0, 0.5, (n, t))
    out[..., TrajIndex.ACCEL] = rng.normal(0, 2.0, (n, t))
    out[..., TrajIndex.CURVATURE] = rng.normal(0, 0.05, (n, t))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_candidate_terms_kernel_matches_reference(seed: int) -> None:
    path, s = _curvy_path(seed)
    rng = np.random.default_rng(seed + 70)
    cand = random_candidates_near(path, s, rng, n=45, t=30)
    cand[3:6, 0] = cand[2, 0]  # rows that start at the same pose share the start segment
    limits = np.where(rng.random(len(s)) < 0.2, np.inf, rng.uniform(3.0, 15.0, len(s)))
    index, coef = costs._savgol_band(30, DT, 5, 2)
    args = (np.ascontiguousarray(path[:, :2]), s, limits, REAR, FRONT, 0.5 * WIDTH, 1.75, 10,
            index, coef, True)  # fmt: skip
    got = ck.candidate_terms_kernel(cand, *args)
    want = costs.candidate_terms_reference(cand, *args)
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-12, atol=1e-9)
    # the lane test away from its threshold (where a last-bit difference may flip it)
    np.testing.assert_array_equal(got[1], want[1])
    assert got[1].any() and not got[1].all()
    assert got[3].all() and (got[2][:, ck.CandidateTerm.WRONG_WAY] > 2.0).any()
    assert (got[2][:, ck.CandidateTerm.MEAN_OVERSPEED] > 0.0).any()
    # a non-finite value anywhere in a row is reported for that row only
    bad = cand.copy()
    bad[7, 12, TrajIndex.CURVATURE] = np.nan
    bad[9, 0, TrajIndex.X] = np.inf
    finite = ck.candidate_terms_kernel(bad, *args)[3]
    assert finite.tolist() == [n not in (7, 9) for n in range(45)]
    # without box states the rest is the same
    lean = ck.candidate_terms_kernel(cand, *args[:-1], False)
    assert lean[0].shape == (0, 30, len(ck.BoxState))
    for a, b in zip(lean[1:], got[1:], strict=True):
        np.testing.assert_array_equal(a, b)


def _curvy_path(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ds = rng.uniform(0.5, 2.0, 120)
    kappa = np.repeat(rng.uniform(-0.03, 0.03, 12), 10)
    yaw = rng.uniform(-3, 3) + np.concatenate([[0.0], np.cumsum(kappa * ds)])
    step = np.column_stack([np.cos(yaw[:-1]), np.sin(yaw[:-1])]) * ds[:, None]
    xy = np.concatenate([[[0.0, 0.0]], np.cumsum(step, axis=0)])
    s = np.concatenate([[5.0], 5.0 + np.cumsum(ds)])
    return np.column_stack([xy, yaw]), s


@pytest.mark.parametrize("seed", range(6))
def test_path_projection_kernel_matches_reference(seed: int) -> None:
    path, s = _curvy_path(seed)
    rng = np.random.default_rng(seed + 50)
    # rows that move along the path with lateral offsets, some beyond either end
    base = np.clip(np.cumsum(rng.uniform(0.0, 2.0, (20, 30)), axis=1) - 10.0 + rng.uniform(
        -5, 100, (20, 1)), -15.0, s[-1] - s[0] + 15.0)  # fmt: skip
    along = np.interp(base, s - s[0], np.arange(len(s)))
    j = np.clip(along.astype(int), 0, len(s) - 2)
    frac = along - j
    point = path[j, :2] + frac[..., None] * (path[j + 1, :2] - path[j, :2])
    seg = path[j + 1, :2] - path[j, :2]
    seg /= np.linalg.norm(seg, axis=-1, keepdims=True)
    normal = np.stack([-seg[..., 1], seg[..., 0]], axis=-1)
    lateral_in = rng.uniform(-4, 4, (20, 30))
    beyond_start = base < 0
    beyond_end = base > s[-1] - s[0]
    point = np.where(beyond_start[..., None], path[0, :2] + base[..., None] * seg, point)
    point = np.where(
        beyond_end[..., None], path[-1, :2] + (base - (s[-1] - s[0]))[..., None] * seg, point
    )
    points = np.ascontiguousarray(point + lateral_in[..., None] * normal)
    got_s, got_l = ck.path_projection_kernel(points, np.ascontiguousarray(path[:, :2]), s)
    want_s, want_l = costs.path_projection_reference(points, path, s)
    np.testing.assert_allclose(got_s, want_s, atol=1e-9)
    np.testing.assert_allclose(got_l, want_l, atol=1e-9)
    # on this gently curved path the arc length is the one the points were built from
    interior = (base > 3.0) & (base < s[-1] - s[0] - 3.0)
    np.testing.assert_allclose((got_s - s[0])[interior], base[interior], atol=0.2)


def test_path_projection_straight_line_and_sides() -> None:
    path = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [20.0, 0.0, 0.0]])
    s = np.array([100.0, 110.0, 120.0])
    points = np.array([[[-5.0, 1.0], [5.0, -2.0], [15.0, 3.0], [25.0, -1.0]]])
    arc, lateral = ck.path_projection_kernel(points, path[:, :2].copy(), s)
    np.testing.assert_allclose(arc[0], [95.0, 105.0, 115.0, 125.0])
    np.testing.assert_allclose(lateral[0], [1.0, -2.0, 3.0, -1.0])


def test_path_projection_follows_a_hairpin() -> None:
    """A row driving out along one leg of a hairpin stays on it though the other leg is near."""
    x = np.arange(0.0, 41.0)
    out = np.column_stack([x, np.zeros_like(x)])
    back = np.column_stack([x[::-1], np.full_like(x, 3.0)])
    path = np.concatenate([out, back])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    row = np.column_stack([np.linspace(2.0, 30.0, 15), np.full(15, 1.6)])[None]
    row[0, 0, 1] = 0.5  # the first point is matched globally: clearly on the way out
    arc, lateral = ck.path_projection_kernel(np.ascontiguousarray(row), path, s)
    np.testing.assert_allclose(arc[0], row[0, :, 0], atol=1e-9)
    np.testing.assert_allclose(lateral[0], row[0, :, 1], atol=1e-9)
    # a global search would put every later point on the way back (1.4 m < 1.6 m away)
    global_arc, _ = costs.path_projection_reference(row, path, s)
    assert np.all(global_arc[0, 1:] > 40.0)


@pytest.mark.parametrize("seed", range(4))
def test_footprint_sample_kernel_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g, h, w = 3, int(rng.integers(1, 40)), int(rng.integers(1, 40))
    grid = rng.normal(size=(g, h, w))
    t = 7
    layer = rng.integers(0, g, t).astype(np.int64)
    raw = np.zeros((5, t, len(TrajIndex)))
    raw[..., :2] = rng.uniform(-15, 15, (5, t, 2))
    raw[..., TrajIndex.YAW] = rng.uniform(-4, 4, (5, t))
    cand = costs.ego_box_states(raw, REAR)
    local = rng.uniform(-3, 3, (6, 2))
    pose = np.array([rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-3, 3)])
    res = float(rng.uniform(0.2, 1.0))
    orow, ocol = float(rng.uniform(0, h)), float(rng.uniform(0, w))
    got = ck.footprint_sample_kernel(cand, local, grid, layer, pose, res, orow, ocol)
    want = costs.footprint_sample_reference(cand, local, grid, layer, pose, res, orow, ocol)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got).any() and (~np.isnan(got)).any()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_footprint_sample_reads_pixel_centres() -> None:
    grid = np.arange(12.0).reshape(1, 3, 4)
    # raster frame = world; pixel (r, c) centre at x = (2 - r - 0.5), y = (2 - c - 0.5)
    cand = costs.ego_box_states(np.zeros((1, 1, len(TrajIndex))), 0.0)
    local = np.array([[1.5, 1.5], [-0.5, -1.5], [0.5, 1.0], [9.0, 0.0]])
    out = ck.footprint_sample_kernel(cand, local, grid, np.zeros(1, np.int64), np.zeros(3),
                                     1.0, 2.0, 2.0)[0, 0]  # fmt: skip
    assert out[0] == grid[0, 0, 0] and out[1] == grid[0, 2, 3]
    assert out[2] == pytest.approx(0.5 * (grid[0, 1, 0] + grid[0, 1, 1]))
    assert math.isnan(out[3])


def test_comfort_kernel_matches_reference() -> None:
    rng = np.random.default_rng(3)
    cand = rng.normal(size=(40, T, len(TrajIndex)))
    index, coef = costs._savgol_band(T, DT, 5, 2)
    got = ck.comfort_kernel(cand, index, coef)
    np.testing.assert_allclose(got, costs.comfort_metrics(cand, DT, 5), rtol=1e-12, atol=1e-9)


def test_savgol_derivative_is_exact_on_quadratics() -> None:
    for t_count, window in ((81, 5), (9, 7), (4, 5), (3, 5)):
        t = np.arange(t_count) * DT
        y = 2.0 * t**2 - 3.0 * t + 1.0
        d = y @ costs.savgol_derivative_matrix(t_count, DT, window).T
        np.testing.assert_allclose(d, 4.0 * t - 3.0, atol=1e-9)
    # interior weights of a 5-point quadratic fit: (-2, -1, 0, 1, 2) / (10 dt)
    row = costs.savgol_derivative_matrix(9, DT, 5)[4]
    np.testing.assert_allclose(row[2:7] * 10 * DT, [-2, -1, 0, 1, 2], atol=1e-12)


# -- scoring: hand-made cases ---------------------------------------------------------------------


def test_candidate_through_stopped_agent_collides_at_the_right_step() -> None:
    agent = agents_from([[agent_track(30.0, 0.0, 0.0)]])
    result = score([straight(10.0)], make_input(agent))
    # front bumper (rear axle + 3.85 m) reaches the agent's rear (30 - 2.3) at t = 2.385 s
    assert result.collision_time[0] == math.ceil((30.0 - 2.3 - FRONT) / 10.0 / DT)
    assert result.multipliers[0, Multiplier.NO_AT_FAULT_COLLISION] == 0.0
    assert result.scores[0] == 0.0


def test_candidate_passing_one_metre_beside_does_not_collide() -> None:
    gap_y = 0.5 * WIDTH + 0.5 * 1.9 + 1.0
    agent = agents_from([[agent_track(30.0, -gap_y, 0.0)]])
    result = score([straight(10.0)], make_input(agent))
    assert result.collision_time[0] == -1
    assert result.multipliers[0, Multiplier.NO_AT_FAULT_COLLISION] == 1.0
    assert result.scores[0] > 0.5


def test_a_mode_with_probability_a_tenth_gives_a_tenth() -> None:
    agent = agents_from(
        [[agent_track(30.0, 0.0, 0.0), agent_track(30.0, 40.0, 0.0)]], probs=[[0.1, 0.9]]
    )
    result = score([straight(10.0)], make_input(agent))
    assert result.raw["collision_measure"][0] == pytest.approx(0.1)
    assert result.multipliers[0, Multiplier.NO_AT_FAULT_COLLISION] == pytest.approx(0.9)


def test_static_objects_weigh_half() -> None:
    agent = agents_from([[agent_track(30.0, 0.0, 0.0)]], classes=[int(AgentClass.STATIC)])
    result = score([straight(10.0)], make_input(agent))
    assert result.multipliers[0, Multiplier.NO_AT_FAULT_COLLISION] == pytest.approx(0.5)


def test_rear_end_by_agent_is_not_at_fault() -> None:
    # the ego at 5 m/s; an agent 15 m behind at 15 m/s runs into it
    chaser = agents_from([[agent_track(-15.0, 0.0, 15.0)]])
    result = score([straight(5.0)], make_input(chaser, v0=5.0))
    assert result.collision_time[0] == -1
    assert result.multipliers[0, Multiplier.NO_AT_FAULT_COLLISION] == 1.0
    # the boxes do collide: blaming every collision finds it
    _, first = costs.collision_reference(
        ego_states(straight(5.0)), np.ones((1, T), bool), costs.agent_box_states(chaser.modes),
        chaser.sizes, chaser.probabilities,
        LENGTH, WIDTH, REAR, -1.0, math.pi, T,
    )  # fmt: skip
    assert first[0] == math.ceil((15.0 - 2.3 - PROFILE.rear_overhang) / 10.0 / DT)


def test_stationary_ego_is_never_at_fault() -> None:
    # an agent crossing from the right runs into the ego's side
    crossing = agents_from([[agent_track(1.5, -20.0, 10.0, yaw=math.pi / 2)]])
    standing = score([straight(0.0)], make_input(crossing, v0=0.0))
    assert standing.collision_time[0] == -1
    # moving slowly in its lane, a side impact is not the ego's fault either (nuPlan lateral)
    in_lane = score([straight(1.0)], make_input(crossing, v0=1.0))
    assert in_lane.collision_time[0] == -1
    # straddling two lanes it is
    straddling = score([straight(1.0, y=1.2)], make_input(crossing, v0=1.0))
    assert straddling.collision_time[0] > 0


def test_lateral_collision_fault_follows_the_lane_test() -> None:
    """An agent drifting into the ego's flank: at fault only where the ego straddles lanes."""
    side = agent_track(-1.0, -4.0, 8.0)
    side[:, ModeIndex.Y] = -4.0 + 0.5 * PLANNER.times
    cand = ego_states(straight(8.0))
    args = (costs.agent_box_states(side[None, None]), np.array([[2.3, 0.95]]), np.ones((1, 1)),
            LENGTH, WIDTH, REAR, 0.05, COS_BEHIND, T, 6.0)  # fmt: skip
    inside_lane = ck.collision_kernel(cand, np.zeros((1, T), bool), *args)
    straddling = ck.collision_kernel(cand, np.ones((1, T), bool), *args)
    assert inside_lane[1][0] == -1
    # the flanks touch when the agent's left side reaches y = -width / 2
    assert straddling[1][0] == math.ceil((4.0 - 0.95 - 0.5 * WIDTH) / 0.5 / DT - 1e-9)
    assert straddling[0][0] == 1.0


def test_ego_front_into_a_slower_agent_is_at_fault() -> None:
    slower = agents_from([[agent_track(20.0, 0.0, 3.0)]])
    result = score([straight(10.0)], make_input(slower))
    assert result.collision_time[0] > 0
    assert result.multipliers[0, Multiplier.NO_AT_FAULT_COLLISION] == 0.0


def test_collision_horizon_limits_the_check() -> None:
    agent = agents_from([[agent_track(60.0, 0.0, 0.0)]])
    late = score([straight(10.0)], make_input(agent))
    assert late.collision_time[0] > 50
    short = score([straight(10.0)], make_input(agent), CostConfig(collision_horizon=4.0))
    assert short.collision_time[0] == -1


def test_leaving_the_drivable_field_is_zeroed() -> None:
    inp = make_input(drivable=corridor())
    result = score([straight(10.0), straight(10.0, drift=2.0)], inp)
    assert result.multipliers[:, Multiplier.DRIVABLE_AREA].tolist() == [1.0, 0.0]
    assert result.scores[1] == 0.0 and result.scores[0] > 0.5
    assert result.raw["drivable_min_margin_m"][1] < -CostConfig().drivable_margin
    assert 0.0 < result.raw["offroad_fraction"][1] < 1.0


def test_already_off_the_drivable_area_may_recover() -> None:
    inp = make_input(drivable=corridor(y_min=0.5, y_max=10.0))  # the ego sticks out on the right
    result = score([straight(5.0, drift=1.0), straight(5.0, drift=-1.0)], inp)
    assert result.multipliers[:, Multiplier.DRIVABLE_AREA].tolist() == [1.0, 0.0]


def test_crossing_a_red_light_stop_is_zeroed_stopping_before_is_not() -> None:
    stops = (StopConstraint(s=20.0 + 40.0, kind=StopKind.RED_LIGHT),)  # x = 40 on the road
    inp = make_input(stops=stops)
    go = straight(10.0)
    halt = straight(10.0, accel=-2.5)  # stops after 20 m: front bumper at 23.85 m
    result = score([go, halt], inp)
    assert result.multipliers[:, Multiplier.STOPS].tolist() == [0.0, 1.0]
    assert result.scores[0] == 0.0 and result.scores[1] > 0.0


def test_a_stop_line_already_passed_is_ignored() -> None:
    stops = (StopConstraint(s=20.0 + 2.0, kind=StopKind.STOP_LINE),)  # behind the front bumper
    result = score([straight(10.0)], make_input(stops=stops))
    assert result.multipliers[0, Multiplier.STOPS] == 1.0


def test_the_faster_candidate_wins_progress() -> None:
    result = score([straight(5.0), straight(10.0)], make_input())
    progress = result.soft[:, SoftTerm.PROGRESS]
    assert progress[1] == 1.0
    assert progress[0] == pytest.approx(0.5, abs=1e-6)
    np.testing.assert_allclose(result.raw["progress_m"], [40.0, 80.0], atol=1e-9)


def test_progress_is_normalised_among_admissible_candidates() -> None:
    stops = (StopConstraint(s=20.0 + 60.0, kind=StopKind.RED_LIGHT),)
    result = score([straight(5.0), straight(10.0)], make_input(stops=stops))
    assert result.multipliers[1, Multiplier.STOPS] == 0.0
    assert result.soft[0, SoftTerm.PROGRESS] == 1.0  # the fast one runs the light


def test_little_progress_everywhere_is_neutral() -> None:
    result = score([straight(0.0), straight(0.5)], make_input(v0=0.0))
    assert result.soft[:, SoftTerm.PROGRESS].tolist() == [1.0, 1.0]


def test_hard_braking_fails_comfort() -> None:
    result = score([straight(10.0, accel=-1.0), straight(14.0, accel=-6.0)], make_input())
    assert result.soft[:, SoftTerm.COMFORT].tolist() == [1.0, 0.0]
    assert result.raw["min_lon_accel_mps2"][1] == -6.0


def test_comfort_bounds_each_signal() -> None:
    base = straight(10.0)
    curvy = base.copy()
    curvy[:, TrajIndex.CURVATURE] = 0.06  # lateral acceleration 6 m/s² > 4.89
    jerky = base.copy()
    jerky[40:, TrajIndex.ACCEL] = 2.0  # a 2 m/s² step: jerk ~ 2 / (0.2 s ...) > 4.13
    metrics = costs.comfort_metrics(np.stack([base, curvy, jerky]), DT)
    assert metrics[1, ComfortIndex.MAX_ABS_LAT_ACCEL] == pytest.approx(6.0)
    assert metrics[1, ComfortIndex.MAX_ABS_YAW_RATE] == pytest.approx(0.6)
    assert metrics[2, ComfortIndex.MAX_ABS_LON_JERK] > CostConfig().max_abs_lon_jerk
    result = score([base, curvy, jerky], make_input())
    assert result.soft[:, SoftTerm.COMFORT].tolist() == [1.0, 0.0, 0.0]


def test_ttc_flags_an_approaching_leader() -> None:
    leader = agents_from([[agent_track(15.0, 0.0, 8.0)]])
    result = score([straight(10.0), straight(6.0)], make_input(leader))
    assert result.soft[0, SoftTerm.TTC] == 0.0
    assert result.soft[1, SoftTerm.TTC] == 1.0
    # it is flagged before the collision itself
    _, ttc_first = ck.ttc_kernel(
        ego_states(straight(10.0)), costs.agent_box_states(leader.modes), 0.5 * leader.sizes,
        leader.probabilities,
        LENGTH, WIDTH, REAR, 0.05, COS_BEHIND, T, TAUS, 6.0,
    )  # fmt: skip
    assert 0 <= ttc_first[0] < result.collision_time[0]


def test_speed_limit_term() -> None:
    result = score([straight(14.0), straight(16.0), straight(20.0)], make_input())
    np.testing.assert_allclose(result.raw["mean_overspeed_mps"], [0.0, 1.0, 5.0], atol=1e-9)
    np.testing.assert_allclose(
        result.soft[:, SoftTerm.SPEED_LIMIT], [1.0, 1.0 - 1.0 / 2.23, 0.0], atol=1e-9
    )


def test_driving_against_the_reference() -> None:
    result = score([straight(5.0), straight(-3.0), straight(-8.0)], make_input(v0=0.0))
    assert result.multipliers[:, Multiplier.DRIVING_DIRECTION].tolist() == [1.0, 0.5, 0.0]
    np.testing.assert_allclose(result.raw["wrong_way_m"], [0.0, 3.0, 8.0], atol=1e-9)


def test_lane_centering_prefers_the_centre() -> None:
    result = score([straight(10.0), straight(10.0, drift=0.2)], make_input())
    lane = result.soft[:, SoftTerm.LANE_CENTER]
    assert lane[0] == 1.0 and 0.0 < lane[1] < 1.0


def test_occupancy_forecast_lowers_the_term_under_the_footprint() -> None:
    res, h, w = 0.5, 300, 60
    prob = np.zeros((T, h, w))
    prob[:, :, 30:] = 0.8  # the right half (y < 0) of the raster is occupied
    occ = OccupancyForecast(prob, np.zeros(3), res, 250.0, 30.0)
    result = score([straight(10.0, y=2.0), straight(10.0, y=-2.0)], make_input(occupancy=occ))
    term = result.soft[:, SoftTerm.OCCUPANCY]
    assert term[0] == pytest.approx(1.0) and term[1] == pytest.approx(0.2)
    assert result.soft_weights[SoftTerm.OCCUPANCY] == CostConfig().occupancy_weight
    assert result.scores[0] > result.scores[1]


def test_without_agents_drivable_and_occupancy_the_terms_are_neutral() -> None:
    result = score([straight(10.0), straight(12.0)], make_input())
    assert np.all(result.multipliers == 1.0)
    assert np.all(result.soft[:, SoftTerm.TTC] == 1.0)
    assert np.all(result.soft[:, SoftTerm.OCCUPANCY] == 1.0)
    assert result.soft_weights[SoftTerm.OCCUPANCY] == 0.0
    assert result.collision_time.tolist() == [-1, -1]
    weights = result.soft_weights
    np.testing.assert_allclose(result.scores, result.soft @ weights / weights.sum())


def test_scores_lie_in_the_unit_interval() -> None:
    rng = np.random.default_rng(7)
    n = 64
    cands = []
    for _ in range(n):
        c = straight(rng.uniform(0, 20), rng.uniform(-7, 3), drift=rng.uniform(-2, 2))
        c[:, TrajIndex.CURVATURE] = rng.uniform(-0.05, 0.05)
        cands.append(c)
    tracks = [[agent_track(rng.uniform(-20, 80), rng.uniform(-6, 6), rng.uniform(0, 12),
                           rng.uniform(-3, 3)) for _ in range(3)] for _ in range(12)]  # fmt: skip
    agents = agents_from(tracks, classes=list(rng.integers(0, 5, 12)))
    occ = OccupancyForecast(rng.random((T, 100, 40)), np.zeros(3), 1.0, 80.0, 20.0)
    stops = (StopConstraint(s=90.0, kind=StopKind.RED_LIGHT),)
    result = score(cands, make_input(agents, corridor(), occ, stops))
    for values in (result.scores, result.multipliers, result.soft):
        assert np.all((values >= 0.0) & (values <= 1.0))
    assert 0 < (result.scores > 0).sum() < n
    product = result.multipliers.prod(axis=1)
    np.testing.assert_allclose(
        result.scores, product * (result.soft @ result.soft_weights) / result.soft_weights.sum()
    )
    assert not result.scores.flags.writeable


def _mixed_scene(seed: int) -> tuple[np.ndarray, PlannerInput]:
    rng = np.random.default_rng(seed)
    cands = []
    for _ in range(70):
        c = straight(rng.uniform(0, 20), rng.uniform(-7, 3), drift=rng.uniform(-2, 2))
        c[:, TrajIndex.CURVATURE] = rng.uniform(-0.05, 0.05)
        cands.append(c)
    tracks = [[agent_track(rng.uniform(-20, 80), rng.uniform(-6, 6), rng.uniform(0, 12),
                           rng.uniform(-3, 3)) for _ in range(2)] for _ in range(5)]  # fmt: skip
    agents = agents_from(tracks, classes=list(rng.integers(0, 5, 5)))
    occ = OccupancyForecast(rng.random((T, 100, 40)), np.zeros(3), 1.0, 80.0, 20.0)
    stops = (StopConstraint(s=90.0, kind=StopKind.RED_LIGHT),)
    return np.stack(cands), make_input(agents, corridor(y_min=-9.0, y_max=9.0), occ, stops)


@pytest.mark.parametrize("seed", range(3))
def test_scores_match_the_numpy_reference_path(seed: int, monkeypatch: Any) -> None:
    """The whole score with every kernel swapped for its NumPy reference."""
    cands, inp = _mixed_scene(seed)
    fast = score_candidates(cands, inp, PROFILE)
    monkeypatch.setattr(costs, "cost_kernels", costs.REFERENCE_KERNELS)
    slow = score_candidates(cands, inp, PROFILE)
    np.testing.assert_allclose(fast.scores, slow.scores, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.multipliers, slow.multipliers, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.soft, slow.soft, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(fast.collision_time, slow.collision_time)
    for name, values in fast.raw.items():
        np.testing.assert_allclose(values, slow.raw[name], rtol=1e-9, atol=1e-9, err_msg=name)
    assert (fast.collision_time >= 0).sum() > 3 and (fast.scores > 0).sum() > 3


def test_collision_and_ttc_measures_saturate_at_one() -> None:
    """Three certain hits: the measure reads 1 (the term is 0 either way), the first step is the
    first hit's."""
    agents = agents_from([[agent_track(x, 0.0, 0.0)] for x in (30.0, 45.0, 60.0)])
    result = score([straight(10.0)], make_input(agents))
    assert result.raw["collision_measure"][0] == 1.0
    assert result.raw["ttc_measure"][0] == 1.0
    assert result.collision_time[0] == math.ceil((30.0 - 2.3 - FRONT) / 10.0 / DT)
    assert result.multipliers[0, Multiplier.NO_AT_FAULT_COLLISION] == 0.0
    assert result.soft[0, SoftTerm.TTC] == 0.0
    # unsaturated, the kernels sum every hit
    ego = ego_states(straight(10.0))
    states = costs.agent_box_states(agents.modes)
    full = ck.collision_kernel(ego, np.zeros((1, T), bool), states, 0.5 * agents.sizes,
                               agents.probabilities, LENGTH, WIDTH, REAR, 0.05, COS_BEHIND, T,
                               6.0)  # fmt: skip
    assert full[0][0] == pytest.approx(3.0) and full[1][0] == result.collision_time[0]


def test_breakdown_names_every_term() -> None:
    result = score([straight(10.0)], make_input())
    parts = result.breakdown(0)
    for name in (*result.multiplier_names, *result.soft_names, "score", "collision_step"):
        assert name in parts
    assert result.multiplier_names == ("no_at_fault_collision", "drivable_area",
                                       "driving_direction", "stops")  # fmt: skip
    assert parts["score"] == result.scores[0]
    with pytest.raises(IndexError, match="out of range"):
        result.breakdown(1)


# -- bad input -------------------------------------------------------------------------------------


def test_bad_candidate_shapes_name_the_argument() -> None:
    inp = make_input()
    good = np.stack([straight(10.0)])
    for bad in (good[0], good[:, :-1], good[..., :5], np.zeros((0, T, 6))):
        with pytest.raises(ValueError, match="candidates"):
            score_candidates(bad, inp, PROFILE)
    nan = good.copy()
    nan[0, 5, TrajIndex.X] = np.nan
    with pytest.raises(ValueError, match="candidates: non-finite"):
        score_candidates(nan, inp, PROFILE)


def test_mismatched_time_axes_name_the_argument() -> None:
    modes = np.zeros((1, 1, 40, len(ModeIndex)))
    short = PredictedAgents(np.arange(1), np.zeros(1, np.int64), np.ones((1, 2)), modes,
                            np.ones((1, 1)))  # fmt: skip
    good = np.stack([straight(10.0)])
    with pytest.raises(ValueError, match=r"inp\.agents\.modes"):
        score_candidates(good, make_input(short), PROFILE)
    occ = OccupancyForecast(np.zeros((10, 4, 4)), np.zeros(3), 1.0, 2.0, 2.0)
    with pytest.raises(ValueError, match=r"inp\.occupancy\.probability"):
        score_candidates(good, make_input(occupancy=occ), PROFILE)
    with pytest.raises(TypeError, match="inp"):
        score_candidates(good, "not an input", PROFILE)  # type: ignore[arg-type]


def test_cost_config_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="ttc_weight"):
        CostConfig(ttc_weight=-1.0)
    with pytest.raises(ValueError, match="comfort_window"):
        CostConfig(comfort_window=4)
    with pytest.raises(ValueError, match="behind_angle"):
        CostConfig(behind_angle=1.0)
    with pytest.raises(ValueError, match="soft-term weight"):
        zero: dict[str, Any] = {f: 0.0 for f in costs._WEIGHT_FIELDS}
        CostConfig(**zero)
    with pytest.raises(ValueError, match="collision_horizon"):
        CostConfig(collision_horizon=-1.0)
    assert dataclasses.replace(CostConfig(), ttc_threshold=1.5).ttc_threshold == 1.5
