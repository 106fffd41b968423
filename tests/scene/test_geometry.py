"""Tests of kaido.scene.geometry: round trips, batched-vs-scalar agreement and a shapely oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, Polygon

from kaido.scene.geometry import (
    SE2,
    SE3,
    Box2D,
    Box3D,
    BoxCorner,
    BoxIndex,
    EulerIndex,
    PoseIndex,
    Quaternion,
    box2d_contains,
    box2d_corners,
    box2d_overlap,
    box3d_contains,
    box3d_corners,
    box3d_overlap,
    euler_from_rotation_matrix,
    quaternions_to_rotation_matrices,
    rotation_matrices_to_euler,
    rotation_matrix_from_euler,
    se2_compose,
    se2_inverse,
    se2_relative,
    se2_transform_points,
    wrap_angle,
)

SETTINGS = settings(max_examples=200, deadline=None)

coords = st.floats(-100.0, 100.0, allow_nan=False)
angles = st.floats(-10.0, 10.0, allow_nan=False)
# Pitch kept clear of gimbal lock (|pitch| < ~86 deg) where Euler angles are unique.
pitches = st.floats(-1.5, 1.5, allow_nan=False)
sizes = st.floats(0.1, 10.0, allow_nan=False)

se2s = st.builds(SE2, coords, coords, angles)
se3s = st.builds(SE3.from_euler, coords, coords, coords, angles, st.floats(-3.0, 3.0), angles)
quaternions = (
    st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1))
    .filter(lambda c: math.hypot(*c) > 0.1)
    .map(lambda c: Quaternion(*c))
)
boxes2d = st.builds(
    Box2D,
    st.floats(-10.0, 10.0),
    st.floats(-10.0, 10.0),
    angles,
    sizes,
    sizes,
)


def angle_close(a: float, b: float, atol: float = 1e-9) -> bool:
    return abs(wrap_angle(a - b)) <= atol or abs(abs(wrap_angle(a - b)) - 2 * math.pi) <= atol


def se2_close(a: SE2, b: SE2, atol: float = 1e-9) -> bool:
    return abs(a.x - b.x) <= atol and abs(a.y - b.y) <= atol and angle_close(a.yaw, b.yaw, atol)


def points2d(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-20.0, 20.0, size=(n, 2))


# ------------------------------------------------------------------------------------------------
# wrap_angle
# ------------------------------------------------------------------------------------------------


@SETTINGS
@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_wrap_angle_range_and_equivalence(angle: float) -> None:
    wrapped = wrap_angle(angle)
    assert isinstance(wrapped, float)
    assert -math.pi <= wrapped < math.pi
    # Same direction: equal sine and cosine.
    assert math.isclose(math.sin(wrapped), math.sin(angle), abs_tol=1e-9)
    assert math.isclose(math.cos(wrapped), math.cos(angle), abs_tol=1e-9)
    # An integer number of turns apart.
    turns = (angle - wrapped) / (2 * math.pi)
    assert abs(turns - round(turns)) < 1e-9


def test_wrap_angle_edges_and_arrays() -> None:
    assert wrap_angle(math.pi) == -math.pi
    assert wrap_angle(-math.pi) == -math.pi
    assert wrap_angle(0.0) == 0.0
    # Just below -pi, the modulo rounds up to a full turn; the result must still be < pi.
    below = float(np.nextafter(-math.pi, -math.inf))
    assert -math.pi <= wrap_angle(below) < math.pi
    edges = wrap_angle(np.array([below, 3 * math.pi, -3 * math.pi, 0.5]))
    assert np.all(edges >= -math.pi) and np.all(edges < math.pi)
    np.testing.assert_allclose(edges, [-math.pi, -math.pi, -math.pi, 0.5], atol=1e-12)
    values = np.linspace(-50, 50, 1001).reshape(7, 11, 13)
    out = wrap_angle(values)
    assert out.shape == values.shape
    np.testing.assert_allclose(out.ravel(), [wrap_angle(float(v)) for v in values.ravel()])


# ------------------------------------------------------------------------------------------------
# SE2
# ------------------------------------------------------------------------------------------------


@SETTINGS
@given(se2s)
def test_se2_inverse_round_trip(pose: SE2) -> None:
    assert se2_close(pose @ pose.inverse(), SE2.identity())
    assert se2_close(pose.inverse() @ pose, SE2.identity())
    assert se2_close(pose.inverse().inverse(), pose)
    assert se2_close(SE2.from_matrix(pose.as_matrix()), pose)
    np.testing.assert_allclose(
        pose.inverse().as_matrix(), np.linalg.inv(pose.as_matrix()), atol=1e-9
    )


@SETTINGS
@given(se2s, se2s, se2s)
def test_se2_compose_matches_matrices_and_is_associative(a: SE2, b: SE2, c: SE2) -> None:
    np.testing.assert_allclose((a @ b).as_matrix(), a.as_matrix() @ b.as_matrix(), atol=1e-9)
    assert se2_close((a @ b) @ c, a @ (b @ c), atol=1e-8)
    assert -math.pi <= (a @ b).yaw < math.pi


@SETTINGS
@given(se2s, st.integers(0, 2**31))
def test_se2_points_round_trip(pose: SE2, seed: int) -> None:
    pts = points2d(17, seed).reshape(17, 1, 2)
    out = pose.transform_points(pts)
    assert out.shape == pts.shape
    homogeneous = np.concatenate([pts[:, 0], np.ones((17, 1))], axis=1) @ pose.as_matrix().T
    np.testing.assert_allclose(out[:, 0], homogeneous[:, :2], atol=1e-9)
    np.testing.assert_allclose(pose.inverse_transform_points(out), pts, atol=1e-9)
    np.testing.assert_allclose(pose.inverse().transform_points(out), pts, atol=1e-9)


def test_se2_semantics() -> None:
    # A vehicle at (10, 5) heading north (+y): a point 2 m ahead is at (10, 7); 1 m to its left
    # (kaido y left) is at (9, 5).
    pose = SE2(10.0, 5.0, math.pi / 2)
    np.testing.assert_allclose(pose.transform_points([[2.0, 0.0], [0.0, 1.0]]), [[10, 7], [9, 5]])
    assert math.isclose(pose.transform_yaw(math.pi / 2), -math.pi)
    np.testing.assert_allclose(pose.transform_yaw(np.array([0.0, -math.pi / 2])), [math.pi / 2, 0])
    np.testing.assert_array_equal(pose.as_array()[[PoseIndex.X, PoseIndex.Y]], [10.0, 5.0])
    assert SE2.from_array(pose.as_array()) == pose


@SETTINGS
@given(st.lists(se2s, min_size=1, max_size=6), st.lists(se2s, min_size=1, max_size=6))
def test_batched_se2_matches_scalar(first: list[SE2], second: list[SE2]) -> None:
    n = min(len(first), len(second))
    a = np.stack([p.as_array() for p in first[:n]])
    b = np.stack([p.as_array() for p in second[:n]])
    composed = se2_compose(a, b)
    inverted = se2_inverse(a)
    relative = se2_relative(a[0], b)
    for i in range(n):
        assert se2_close(SE2.from_array(composed[i]), first[i] @ second[i])
        assert se2_close(SE2.from_array(inverted[i]), first[i].inverse())
        assert se2_close(SE2.from_array(relative[i]), first[0].inverse() @ second[i])
    # Broadcasting: all pairs.
    pairs = se2_compose(a[:, None], b[None, :])
    assert pairs.shape == (n, n, 3)
    assert se2_close(SE2.from_array(pairs[n - 1, 0]), first[n - 1] @ second[0])


def test_se2_transform_points_broadcasting() -> None:
    rng = np.random.default_rng(0)
    poses = np.stack([rng.uniform(-5, 5, 4), rng.uniform(-5, 5, 4), rng.uniform(-4, 4, 4)], -1)
    pts = rng.uniform(-3, 3, (4, 6, 2))
    per_agent = se2_transform_points(poses, pts)
    assert per_agent.shape == (4, 6, 2)
    for i in range(4):
        np.testing.assert_allclose(per_agent[i], SE2.from_array(poses[i]).transform_points(pts[i]))
    shared = se2_transform_points(poses[0], pts)
    np.testing.assert_allclose(shared[2], SE2.from_array(poses[0]).transform_points(pts[2]))
    # Poses (4, 3) against one point set (6, 2): every pose maps every point.
    fan = se2_transform_points(poses, pts[0])
    assert fan.shape == (4, 6, 2)
    np.testing.assert_allclose(fan[3], SE2.from_array(poses[3]).transform_points(pts[0]))
    with pytest.raises(ValueError, match="points"):
        se2_transform_points(poses, pts[..., :1])
    with pytest.raises(ValueError, match="poses"):
        se2_transform_points(poses[:, :2], pts)


# ------------------------------------------------------------------------------------------------
# Rotations
# ------------------------------------------------------------------------------------------------


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@SETTINGS
@given(angles, pitches, angles)
def test_euler_matrix_quaternion_round_trips(roll: float, pitch: float, yaw: float) -> None:
    r = rotation_matrix_from_euler(roll, pitch, yaw)
    np.testing.assert_allclose(r, _rz(yaw) @ _ry(pitch) @ _rx(roll), atol=1e-12)
    back = euler_from_rotation_matrix(r)
    expected = (roll, pitch, yaw)
    for got, want in zip(back, expected, strict=True):
        assert angle_close(got, want, 1e-9)
    q = Quaternion.from_euler(roll, pitch, yaw)
    assert math.isclose(q.norm(), 1.0, abs_tol=1e-12)
    np.testing.assert_allclose(q.to_rotation_matrix(), r, atol=1e-12)
    assert Quaternion.from_rotation_matrix(r).allclose(q, atol=1e-9)
    for got, want in zip(q.to_euler(), expected, strict=True):
        assert angle_close(got, want, 1e-9)


@SETTINGS
@given(quaternions, quaternions, st.integers(0, 2**31))
def test_quaternion_algebra(p: Quaternion, q: Quaternion, seed: int) -> None:
    pu, qu = p.normalized(), q.normalized()
    np.testing.assert_allclose(
        (pu * qu).to_rotation_matrix(), pu.to_rotation_matrix() @ qu.to_rotation_matrix(), atol=1e-9
    )
    assert (p * p.inverse()).allclose(Quaternion.identity(), atol=1e-9)
    assert pu.conjugate().allclose(pu.inverse(), atol=1e-12)
    pts = np.random.default_rng(seed).normal(size=(5, 3))
    np.testing.assert_allclose(p.rotate(pts), pts @ p.to_rotation_matrix().T, atol=1e-12)
    # The sandwich product q v q* rotates v like the matrix does.
    v = pts[0]
    sandwich = pu * Quaternion(0.0, *v) * pu.conjugate()
    np.testing.assert_allclose(sandwich.as_array()[1:], pu.rotate(v), atol=1e-9)
    assert abs(sandwich.w) < 1e-9
    # Matrix round trip; q and -q are the same rotation.
    assert Quaternion.from_rotation_matrix(p.to_rotation_matrix()).allclose(p, atol=1e-9)
    batched = quaternions_to_rotation_matrices(np.stack([p.as_array(), q.as_array()]))
    np.testing.assert_allclose(batched[1], q.to_rotation_matrix(), atol=1e-12)


def test_batched_euler_and_gimbal_lock() -> None:
    rng = np.random.default_rng(1)
    e = np.stack([rng.uniform(-3, 3, 20), rng.uniform(-1.5, 1.5, 20), rng.uniform(-3, 3, 20)], -1)
    mats = rotation_matrix_from_euler(
        e[:, EulerIndex.ROLL], e[:, EulerIndex.PITCH], e[:, EulerIndex.YAW]
    )
    assert mats.shape == (20, 3, 3)
    np.testing.assert_allclose(rotation_matrices_to_euler(mats), e, atol=1e-9)
    # Pitch +-90 deg: roll is folded into yaw; the rotation is still reproduced.
    for pitch in (math.pi / 2, -math.pi / 2):
        r = rotation_matrix_from_euler(0.3, pitch, 1.1)
        roll2, pitch2, yaw2 = euler_from_rotation_matrix(r)
        assert roll2 == 0.0
        assert math.isclose(pitch2, pitch, abs_tol=1e-7)
        np.testing.assert_allclose(rotation_matrix_from_euler(roll2, pitch2, yaw2), r, atol=1e-9)


def test_rotation_validation() -> None:
    with pytest.raises(ValueError, match="orthonormal"):
        Quaternion.from_rotation_matrix(np.eye(3) * 2)
    with pytest.raises(ValueError, match="det"):
        euler_from_rotation_matrix(np.diag([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match=r"Quaternion\.y"):
        Quaternion(1.0, 0.0, math.nan, 0.0)
    with pytest.raises(ValueError, match="non-zero"):
        Quaternion(0.0, 0.0, 0.0, 0.0)


# ------------------------------------------------------------------------------------------------
# SE3
# ------------------------------------------------------------------------------------------------


@SETTINGS
@given(se3s, se3s, se3s, st.integers(0, 2**31))
def test_se3_round_trips_and_associativity(a: SE3, b: SE3, c: SE3, seed: int) -> None:
    assert (a @ a.inverse()).allclose(SE3.identity(), atol=1e-9)
    assert a.inverse().inverse().allclose(a, atol=1e-9)
    np.testing.assert_allclose((a @ b).as_matrix(), a.as_matrix() @ b.as_matrix(), atol=1e-9)
    assert ((a @ b) @ c).allclose(a @ (b @ c), atol=1e-8)
    assert SE3.from_matrix(a.as_matrix()) == a
    assert SE3.from_quaternion(a.quaternion, a.translation).allclose(a, atol=1e-9)
    tx, ty, tz = a.translation.tolist()
    roll, pitch, yaw = a.euler
    assert SE3.from_euler(tx, ty, tz, roll, pitch, yaw).allclose(a, atol=1e-9)
    pts = np.random.default_rng(seed).uniform(-50, 50, (3, 4, 3))
    moved = a.transform_points(pts)
    assert moved.shape == pts.shape
    np.testing.assert_allclose(moved, pts @ a.rotation.T + a.translation, atol=1e-9)
    np.testing.assert_allclose(a.inverse_transform_points(moved), pts, atol=1e-9)
    np.testing.assert_allclose(
        (a @ b).transform_points(pts), a.transform_points(b.transform_points(pts)), atol=1e-8
    )


@SETTINGS
@given(coords, coords, coords, angles, angles)
def test_se3_to_se2_planar(x: float, y: float, z: float, yaw: float, other: float) -> None:
    pose = SE3.from_euler(x, y, z, 0.0, 0.0, yaw)
    assert se2_close(pose.to_se2(), SE2(x, y, yaw))
    assert SE3.from_se2(SE2(x, y, yaw), z).allclose(pose, atol=1e-12)
    # Planar poses compose like SE2.
    second = SE3.from_euler(y, x, 0.0, 0.0, 0.0, other)
    assert se2_close((pose @ second).to_se2(), pose.to_se2() @ second.to_se2(), atol=1e-8)
    # Roll and pitch do not change the heading of the x axis in the plane.
    tilted = SE3.from_euler(x, y, z, 0.4, -0.3, yaw)
    assert angle_close(tilted.to_se2().yaw, yaw, 1e-9)


def test_se3_equality_hash_and_immutability() -> None:
    a = SE3.from_euler(1.0, 2.0, 3.0, 0.1, 0.2, 0.3)
    b = SE3(a.rotation.copy(), a.translation.copy())
    assert a == b and hash(a) == hash(b)
    assert SE3(np.eye(3), np.array([0.0, -0.0, 0.0])) == SE3.identity()
    assert hash(SE3(np.eye(3), np.array([0.0, -0.0, 0.0]))) == hash(SE3.identity())
    assert a != SE3.identity()
    assert len({a, b, SE3.identity()}) == 2
    with pytest.raises(ValueError):
        a.translation[0] = 5.0
    source = np.zeros(3)
    c = SE3(np.eye(3), source)
    source[0] = 1.0
    assert c.translation[0] == 0.0
    assert "SE3(" in repr(a)


def test_se3_validation_names_field() -> None:
    with pytest.raises(ValueError, match=r"SE3\.rotation.*shape"):
        SE3(np.eye(2), np.zeros(3))
    with pytest.raises(ValueError, match=r"SE3\.rotation.*finite"):
        SE3(np.full((3, 3), np.nan), np.zeros(3))
    with pytest.raises(ValueError, match=r"SE3\.rotation.*orthonormal"):
        SE3(np.eye(3) + 1e-3, np.zeros(3))
    with pytest.raises(ValueError, match=r"SE3\.rotation.*det"):
        SE3(np.diag([1.0, 1.0, -1.0]), np.zeros(3))
    with pytest.raises(ValueError, match=r"SE3\.translation.*shape"):
        SE3(np.eye(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"SE3\.translation.*finite"):
        SE3(np.eye(3), np.array([0.0, np.inf, 0.0]))
    with pytest.raises(ValueError, match="last row"):
        SE3.from_matrix(np.ones((4, 4)))
    with pytest.raises(ValueError, match="pitch"):
        SE3.from_euler(0, 0, 0, 0, math.nan, 0)
    with pytest.raises(ValueError, match=r"SE2\.yaw"):
        SE2(0.0, 0.0, math.inf)
    with pytest.raises(TypeError, match=r"SE2\.x"):
        SE2("north", 0.0, 0.0)  # type: ignore[arg-type]
    # A rotation within the 1e-6 tolerance is accepted.
    SE3(rotation_matrix_from_euler(0.1, 0.2, 0.3) * (1 + 1e-8), np.zeros(3))


# ------------------------------------------------------------------------------------------------
# Boxes
# ------------------------------------------------------------------------------------------------


def _shoelace(corners: np.ndarray) -> float:
    x, y = corners[:, 0], corners[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


@SETTINGS
@given(boxes2d)
def test_box2d_corners(box: Box2D) -> None:
    corners = box.corners()
    assert corners.shape == (4, 2)
    # Signed area positive: counter-clockwise; magnitude = length * width.
    assert math.isclose(_shoelace(corners), box.length * box.width, rel_tol=1e-9)
    assert math.isclose(Polygon(corners).area, box.area, rel_tol=1e-9)
    np.testing.assert_allclose(corners.mean(axis=0), [box.x, box.y], atol=1e-9)
    local = box.pose.inverse_transform_points(corners)
    half = np.array([box.length, box.width]) / 2
    np.testing.assert_allclose(local[BoxCorner.FRONT_LEFT], half * [1, 1], atol=1e-9)
    np.testing.assert_allclose(local[BoxCorner.REAR_LEFT], half * [-1, 1], atol=1e-9)
    np.testing.assert_allclose(local[BoxCorner.REAR_RIGHT], half * [-1, -1], atol=1e-9)
    np.testing.assert_allclose(local[BoxCorner.FRONT_RIGHT], half * [1, -1], atol=1e-9)
    assert np.all(box.contains(corners))


@SETTINGS
@given(
    boxes2d,
    st.floats(-0.99, 0.99),
    st.floats(-0.99, 0.99),
    st.floats(1e-3, 5.0),
    st.integers(0, 2**31),
)
def test_box2d_contains(box: Box2D, u: float, v: float, margin: float, seed: int) -> None:
    pose = box.pose
    assert box.contains([box.x, box.y])
    inside = pose.transform_points([u * box.length / 2, v * box.width / 2])
    assert box.contains(inside)
    # Just outside along each side.
    outside = pose.transform_points(
        [
            [box.length / 2 + margin, v * box.width / 2],
            [-box.length / 2 - margin, v * box.width / 2],
            [u * box.length / 2, box.width / 2 + margin],
            [u * box.length / 2, -box.width / 2 - margin],
        ]
    )
    assert not np.any(box.contains(outside))
    # Against shapely for random points (away from the boundary).
    pts = points2d(64, seed)
    poly = Polygon(box.corners())
    shapely_points = [Point(float(p[0]), float(p[1])) for p in pts]
    distance = np.array([poly.exterior.distance(p) for p in shapely_points])
    expected = np.array([poly.contains(p) for p in shapely_points])
    got = box.contains(pts)
    clear = distance > 1e-6
    np.testing.assert_array_equal(got[clear], expected[clear])


def test_box2d_contains_shapes() -> None:
    box = Box2D(0.0, 0.0, 0.0, 4.0, 2.0)
    grid = np.zeros((3, 5, 2))
    assert box.contains(grid).shape == (3, 5)
    assert box.contains([2.0, 1.0])  # a corner is inside (closed box)
    assert not box.contains([2.0 + 1e-6, 0.0])
    boxes = np.stack([box.as_array(), Box2D(10.0, 0.0, 1.0, 1.0, 1.0).as_array()])
    pts = np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 5.0]])
    np.testing.assert_array_equal(
        box2d_contains(boxes, pts), [[True, False, False], [False, True, False]]
    )
    np.testing.assert_array_equal(box2d_contains(np.full(5, np.nan), pts), [False] * 3)


@SETTINGS
@given(boxes2d, boxes2d)
def test_box2d_overlap_matches_shapely(a: Box2D, b: Box2D) -> None:
    pa, pb = Polygon(a.corners()), Polygon(b.corners())
    # Exclude near-touching pairs, where the answer depends on the tolerance.
    gap = pa.distance(pb)
    area = pa.intersection(pb).area
    assume(gap > 1e-6 or area > 1e-6)
    expected = area > 1e-6
    assert a.overlaps(b) == expected
    assert b.overlaps(a) == expected
    batched = box2d_overlap(a.as_array(), b.as_array())
    assert batched.shape == () and bool(batched) == expected


def test_box2d_overlap_touching_and_separated() -> None:
    a = Box2D(0.0, 0.0, 0.0, 2.0, 2.0)
    assert a.overlaps(Box2D(2.0, 0.0, 0.0, 2.0, 2.0))  # sharing an edge
    assert a.overlaps(Box2D(2.0, 2.0, 0.0, 2.0, 2.0))  # sharing a corner
    assert not a.overlaps(Box2D(2.0 + 1e-6, 0.0, 0.0, 2.0, 2.0))
    # Diamond whose tip touches the square's side.
    diamond = Box2D(1.0 + math.sqrt(2.0), 0.0, math.pi / 4, 2.0, 2.0)
    assert a.overlaps(diamond)
    assert not a.overlaps(Box2D(1.0 + math.sqrt(2.0) + 1e-6, 0.0, math.pi / 4, 2.0, 2.0))
    # Diagonal separation that only a rotated box's axis reveals.
    assert not a.overlaps(Box2D(2.3, 2.3, math.pi / 4, 2.0, 0.5))
    assert a.overlaps(Box2D(0.0, 0.0, 0.3, 0.5, 0.5))  # one inside the other
    assert a.overlaps(Box2D(0.0, 0.0, 0.0, 0.0, 0.0))  # a point box at the centre


def test_box2d_batched_matches_scalar() -> None:
    rng = np.random.default_rng(7)
    n = 40
    packed = np.stack(
        [
            rng.uniform(-8, 8, n),
            rng.uniform(-8, 8, n),
            rng.uniform(-4, 4, n),
            rng.uniform(0.5, 6, n),
            rng.uniform(0.5, 3, n),
        ],
        axis=-1,
    )
    boxes = [Box2D.from_array(row) for row in packed]
    corners = box2d_corners(packed)
    assert corners.shape == (n, 4, 2)
    for i, box in enumerate(boxes):
        np.testing.assert_allclose(corners[i], box.corners())
    pairs = box2d_overlap(packed[:, None], packed[None, :])
    assert pairs.shape == (n, n)
    np.testing.assert_array_equal(pairs, pairs.T)
    assert np.all(np.diag(pairs))
    expected = np.array([[a.overlaps(b) for b in boxes] for a in boxes])
    np.testing.assert_array_equal(pairs, expected)
    assert 0 < pairs.sum() < n * n  # both outcomes occur in this sample
    pts = points2d(50, 3)
    np.testing.assert_array_equal(
        box2d_contains(packed, pts), np.stack([box.contains(pts) for box in boxes])
    )
    nan_box = packed[0].copy()
    nan_box[BoxIndex.LENGTH] = np.nan
    assert not box2d_overlap(nan_box, packed[0])


def test_box3d() -> None:
    box = Box3D(1.0, 2.0, 0.75, math.pi / 2, 4.0, 2.0, 1.5)
    corners = box.corners()
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners[:4, 2], 0.0)
    np.testing.assert_allclose(corners[4:, 2], 1.5)
    np.testing.assert_allclose(corners[:4, :2], box.footprint().corners())
    np.testing.assert_allclose(corners[4:, :2], box.footprint().corners())
    # Front-left of a box heading +y is at +y (front) and -x (left).
    np.testing.assert_allclose(corners[BoxCorner.FRONT_LEFT], [0.0, 4.0, 0.0], atol=1e-12)
    assert math.isclose(box.volume, 12.0)
    assert Box3D.from_array(box.as_array()) == box
    assert box.footprint() == Box2D(1.0, 2.0, math.pi / 2, 4.0, 2.0)
    assert box.contains([1.0, 2.0, 0.75])
    assert box.contains([1.0, 3.9, 1.5])
    assert not box.contains([1.0, 2.0, 1.5 + 1e-6])
    assert not box.contains([1.0, 4.1, 0.75])
    assert box.contains(np.zeros((2, 3, 3))).shape == (2, 3)
    np.testing.assert_array_equal(
        box3d_contains(box.as_array()[None], np.array([[1.0, 2.0, 0.0], [1.0, 2.0, -0.1]])),
        [[True, False]],
    )
    np.testing.assert_allclose(box3d_corners(box.as_array()[None])[0], corners)


@SETTINGS
@given(boxes2d, boxes2d, st.floats(-5, 5), st.floats(-5, 5), sizes, sizes)
def test_box3d_overlap(a2: Box2D, b2: Box2D, za: float, zb: float, ha: float, hb: float) -> None:
    a = Box3D(a2.x, a2.y, za, a2.yaw, a2.length, a2.width, ha)
    b = Box3D(b2.x, b2.y, zb, b2.yaw, b2.length, b2.width, hb)
    z_gap = abs(za - zb) - (ha + hb) / 2
    assume(abs(z_gap) > 1e-6)
    expected = a2.overlaps(b2) and z_gap < 0
    assert a.overlaps(b) == expected
    assert b.overlaps(a) == expected
    assert bool(box3d_overlap(a.as_array(), b.as_array())) == expected


def test_box3d_z_separation() -> None:
    car = Box3D(0.0, 0.0, 0.75, 0.0, 4.5, 1.8, 1.5)
    bridge = Box3D(0.0, 0.0, 6.0, 0.3, 20.0, 8.0, 1.0)
    assert car.footprint().overlaps(bridge.footprint())
    assert not car.overlaps(bridge)
    stacked = Box3D(0.0, 0.0, 2.25, 0.0, 4.5, 1.8, 1.5)  # resting on the car's roof
    assert car.overlaps(stacked)
    assert not car.overlaps(Box3D(0.0, 0.0, 2.25 + 1e-6, 0.0, 4.5, 1.8, 1.5))


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: Box2D(0, 0, 0, -1.0, 1.0), "Box2D.length"),
        (lambda: Box2D(0, 0, 0, 1.0, math.nan), "Box2D.width"),
        (lambda: Box2D(math.inf, 0, 0, 1.0, 1.0), "Box2D.x"),
        (lambda: Box2D(0, 0, math.nan, 1.0, 1.0), "Box2D.yaw"),
        (lambda: Box3D(0, 0, 0, 0, 1.0, 1.0, -0.5), "Box3D.height"),
        (lambda: Box3D(0, 0, math.nan, 0, 1.0, 1.0, 1.0), "Box3D.z"),
        (lambda: Box3D(0, 0, 0, 0, 1.0, -1e-3, 1.0), "Box3D.width"),
    ],
)
def test_box_validation_names_field(factory, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        factory()


def test_packed_shape_validation() -> None:
    with pytest.raises(ValueError, match=r"boxes must have shape \(\.\.\., 5\)"):
        box2d_corners(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"points must have shape \(N, 2\)"):
        box2d_contains(np.zeros(5), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="b must have shape"):
        box2d_overlap(np.zeros(5), np.zeros(7))
    with pytest.raises(ValueError, match="a must have shape"):
        se2_compose(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match=r"box must have shape \(5,\)"):
        Box2D.from_array(np.zeros(6))
