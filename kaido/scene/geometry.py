"""Geometry vocabulary of kaido: angles, SE(2)/SE(3) poses, quaternions and oriented boxes.

Pure NumPy. Frame convention (ISO 8855, right-handed): x forward/east, y left/north, z up.
Lengths are in metres and angles in radians everywhere.

Axis vocabulary used in shapes: ``...`` = any leading batch axes (they broadcast where said),
``N`` = points, ``B`` = boxes.

Poses map *local* coordinates to *parent* coordinates: for a pose ``T`` of a vehicle in the
world, ``T.transform_points(p_vehicle)`` gives world coordinates. Composition ``a @ b`` is the
matrix product: the pose of frame ``b`` (given in frame ``a``) expressed in ``a``'s parent.

Packed arrays use named columns (:class:`PoseIndex`, :class:`BoxIndex`, :class:`Box3DIndex`,
:class:`EulerIndex`) instead of bare column numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, overload

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Tolerance [m] under which boxes count as touching/containing (closed sets with slack).
GEOMETRY_EPS = 1e-9
#: Tolerance on ``R^T R - I`` and ``det(R) - 1`` for a rotation matrix to be accepted.
ROTATION_TOLERANCE = 1e-6
#: Below this ``cos(pitch)`` the Z-Y-X Euler decomposition is in gimbal lock (roll is set to 0).
_GIMBAL_EPS = 1e-9

_TWO_PI = 2.0 * math.pi


# ----------------------------------------------------------------------------------------------
# Named indices
# ----------------------------------------------------------------------------------------------


class PoseIndex(IntEnum):
    """Columns of a packed SE(2) pose vector ``(..., 3)``: metres, metres, radians."""

    X = 0
    Y = 1
    YAW = 2


class BoxIndex(IntEnum):
    """Columns of a packed 2D oriented box ``(..., 5)``: centre [m], heading [rad], size [m]."""

    X = 0
    Y = 1
    YAW = 2
    LENGTH = 3
    WIDTH = 4


class Box3DIndex(IntEnum):
    """Columns of a packed 3D box ``(..., 7)``; ``Z`` is the centre height [m]."""

    X = 0
    Y = 1
    Z = 2
    YAW = 3
    LENGTH = 4
    WIDTH = 5
    HEIGHT = 6


class EulerIndex(IntEnum):
    """Columns of packed Euler angles ``(..., 3)`` [rad], intrinsic Z-Y-X convention."""

    ROLL = 0
    PITCH = 1
    YAW = 2


class BoxCorner(IntEnum):
    """Order of box corners: counter-clockwise seen from above, starting front-left."""

    FRONT_LEFT = 0
    REAR_LEFT = 1
    REAR_RIGHT = 2
    FRONT_RIGHT = 3


# ----------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------


def _finite_float(value: Any, name: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a real number, got {value!r}") from error
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result!r}")
    return result


def _size_float(value: Any, name: str) -> float:
    result = _finite_float(value, name)
    if result < 0.0:
        raise ValueError(f"{name} must be non-negative, got {result!r}")
    return result


def _float_array(value: Any, name: str) -> FloatArray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of real numbers, got {value!r}") from error


def _check_last_axis(array: FloatArray, size: int, name: str) -> None:
    if array.ndim == 0 or array.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}), got {array.shape}")


def _check_rotation(matrix: FloatArray, name: str) -> None:
    if matrix.shape != (3, 3):
        raise ValueError(f"{name} must have shape (3, 3), got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} must be finite, got {matrix.tolist()}")
    error = float(np.max(np.abs(matrix.T @ matrix - np.eye(3))))
    if error > ROTATION_TOLERANCE:
        raise ValueError(f"{name} must be orthonormal (max |R^T R - I| = {error:.3g})")
    det = float(np.linalg.det(matrix))
    if abs(det - 1.0) > ROTATION_TOLERANCE:
        raise ValueError(f"{name} must be a proper rotation with det +1, got det {det:.6g}")


def _readonly(array: FloatArray) -> FloatArray:
    array.setflags(write=False)
    return array


# ----------------------------------------------------------------------------------------------
# Angles
# ----------------------------------------------------------------------------------------------


@overload
def wrap_angle(angle: float) -> float: ...


@overload
def wrap_angle(angle: FloatArray) -> FloatArray: ...


def wrap_angle(angle: float | FloatArray) -> float | FloatArray:
    """Wrap angles [rad] to ``[-pi, pi)``; a float in gives a float out, an array an array."""
    if isinstance(angle, np.ndarray):
        wrapped = np.mod(angle + math.pi, _TWO_PI) - math.pi
        # np.mod may round up to exactly 2*pi for tiny negative inputs, which would give +pi.
        return np.where(wrapped >= math.pi, wrapped - _TWO_PI, wrapped)
    value = float(angle)
    result = (value + math.pi) % _TWO_PI - math.pi
    return result - _TWO_PI if result >= math.pi else result


def _rotation_2d(yaw: float) -> FloatArray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


# ----------------------------------------------------------------------------------------------
# SE(2)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SE2:
    """A rigid transform in the plane: rotation by ``yaw`` then translation by ``(x, y)``.

    Maps points from this pose's local frame to its parent frame. ``yaw`` is stored as given;
    results of :meth:`compose`, :meth:`inverse` and :meth:`from_matrix` are wrapped to
    ``[-pi, pi)``.
    """

    x: float
    """Translation along the parent x axis [m]."""
    y: float
    """Translation along the parent y axis [m]."""
    yaw: float
    """Rotation about +z, counter-clockwise from the parent x axis [rad]."""

    def __post_init__(self) -> None:
        for name in ("x", "y", "yaw"):
            object.__setattr__(self, name, _finite_float(getattr(self, name), f"SE2.{name}"))

    @staticmethod
    def identity() -> SE2:
        return SE2(0.0, 0.0, 0.0)

    @staticmethod
    def from_array(array: npt.ArrayLike) -> SE2:
        """Build from a packed pose ``(3,)`` indexed by :class:`PoseIndex`."""
        a = _float_array(array, "pose")
        if a.shape != (3,):
            raise ValueError(f"pose must have shape (3,), got {a.shape}")
        return SE2(float(a[PoseIndex.X]), float(a[PoseIndex.Y]), float(a[PoseIndex.YAW]))

    @staticmethod
    def from_matrix(matrix: npt.ArrayLike) -> SE2:
        """Build from a homogeneous ``(3, 3)`` matrix whose upper-left block is a rotation."""
        m = _float_array(matrix, "matrix")
        if m.shape != (3, 3):
            raise ValueError(f"matrix must have shape (3, 3), got {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ValueError("matrix must be finite")
        if not np.allclose(m[2], [0.0, 0.0, 1.0], atol=ROTATION_TOLERANCE):
            raise ValueError(f"matrix last row must be [0, 0, 1], got {m[2].tolist()}")
        r = m[:2, :2]
        error = float(np.max(np.abs(r.T @ r - np.eye(2))))
        if error > ROTATION_TOLERANCE or np.linalg.det(r) < 0.0:
            raise ValueError(f"matrix rotation block must be a proper rotation, got {r.tolist()}")
        return SE2(float(m[0, 2]), float(m[1, 2]), math.atan2(float(r[1, 0]), float(r[0, 0])))

    def as_matrix(self) -> FloatArray:
        """Homogeneous matrix ``(3, 3)``."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, -s, self.x], [s, c, self.y], [0.0, 0.0, 1.0]])

    def as_array(self) -> FloatArray:
        """Packed pose ``(3,)`` indexed by :class:`PoseIndex`."""
        return np.array([self.x, self.y, self.yaw])

    def compose(self, other: SE2) -> SE2:
        """``self ∘ other`` (the matrix product ``self @ other``)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return SE2(
            self.x + c * other.x - s * other.y,
            self.y + s * other.x + c * other.y,
            wrap_angle(self.yaw + other.yaw),
        )

    def __matmul__(self, other: SE2) -> SE2:
        return self.compose(other)

    def inverse(self) -> SE2:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return SE2(-(c * self.x + s * self.y), s * self.x - c * self.y, wrap_angle(-self.yaw))

    def transform_points(self, points: npt.ArrayLike) -> FloatArray:
        """Map points ``(..., 2)`` from this pose's local frame to the parent frame."""
        p = _float_array(points, "points")
        _check_last_axis(p, 2, "points")
        return p @ _rotation_2d(self.yaw).T + np.array([self.x, self.y])

    def inverse_transform_points(self, points: npt.ArrayLike) -> FloatArray:
        """Map points ``(..., 2)`` from the parent frame into this pose's local frame."""
        p = _float_array(points, "points")
        _check_last_axis(p, 2, "points")
        return (p - np.array([self.x, self.y])) @ _rotation_2d(self.yaw)

    @overload
    def transform_yaw(self, yaw: float) -> float: ...

    @overload
    def transform_yaw(self, yaw: FloatArray) -> FloatArray: ...

    def transform_yaw(self, yaw: float | FloatArray) -> float | FloatArray:
        """Map headings [rad] from the local frame to the parent frame, wrapped to [-pi, pi)."""
        return wrap_angle(yaw + self.yaw)


# ----------------------------------------------------------------------------------------------
# Batched SE(2) on packed arrays (..., 3)
# ----------------------------------------------------------------------------------------------


def _packed_poses(poses: npt.ArrayLike, name: str) -> FloatArray:
    a = _float_array(poses, name)
    _check_last_axis(a, 3, name)
    return a


def se2_compose(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """``a ∘ b`` for packed poses; leading axes broadcast: ``(..., 3), (..., 3) -> (..., 3)``."""
    pa = _packed_poses(a, "a")
    pb = _packed_poses(b, "b")
    yaw = pa[..., PoseIndex.YAW]
    c, s = np.cos(yaw), np.sin(yaw)
    bx, by = pb[..., PoseIndex.X], pb[..., PoseIndex.Y]
    x = pa[..., PoseIndex.X] + c * bx - s * by
    y = pa[..., PoseIndex.Y] + s * bx + c * by
    return np.stack([x, y, wrap_angle(yaw + pb[..., PoseIndex.YAW])], axis=-1)


def se2_inverse(a: npt.ArrayLike) -> FloatArray:
    """Inverse of packed poses ``(..., 3) -> (..., 3)``, yaw wrapped to [-pi, pi)."""
    pa = _packed_poses(a, "a")
    x, y, yaw = pa[..., PoseIndex.X], pa[..., PoseIndex.Y], pa[..., PoseIndex.YAW]
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([-(c * x + s * y), s * x - c * y, wrap_angle(-yaw)], axis=-1)


def se2_transform_points(poses: npt.ArrayLike, points: npt.ArrayLike) -> FloatArray:
    """Map points from each pose's local frame to its parent frame.

    ``poses`` ``(..., 3)`` and ``points`` ``(..., N, 2)``: the leading axes of ``poses`` broadcast
    against the leading axes of ``points`` excluding ``N``; the result is ``(..., N, 2)`` with
    the broadcast leading shape. E.g. poses ``(A, 3)`` with points ``(A, N, 2)`` maps each
    agent's points by its own pose; poses ``(3,)`` maps all points by one pose.
    """
    pa = _packed_poses(poses, "poses")
    pts = _float_array(points, "points")
    if pts.ndim < 2 or pts.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., N, 2), got {pts.shape}")
    yaw = pa[..., None, PoseIndex.YAW]
    c, s = np.cos(yaw), np.sin(yaw)
    px, py = pts[..., 0], pts[..., 1]
    x = pa[..., None, PoseIndex.X] + c * px - s * py
    y = pa[..., None, PoseIndex.Y] + s * px + c * py
    return np.stack([x, y], axis=-1)


def se2_relative(reference: npt.ArrayLike, poses: npt.ArrayLike) -> FloatArray:
    """Express poses in the frame of ``reference``: ``reference^-1 ∘ poses``.

    ``reference`` ``(3,)`` (or any shape broadcasting with ``poses``), ``poses`` ``(..., 3)``.
    """
    return se2_compose(se2_inverse(reference), poses)


# ----------------------------------------------------------------------------------------------
# Rotations: Euler angles, matrices and quaternions
# ----------------------------------------------------------------------------------------------


def rotation_matrix_from_euler(
    roll: float | FloatArray, pitch: float | FloatArray, yaw: float | FloatArray
) -> FloatArray:
    """Rotation ``R = Rz(yaw) Ry(pitch) Rx(roll)`` (intrinsic Z-Y-X) [rad].

    Scalars give ``(3, 3)``; arrays broadcast to ``(...)`` and give ``(..., 3, 3)``.
    """
    r, p, y = np.broadcast_arrays(
        np.asarray(roll, dtype=np.float64),
        np.asarray(pitch, dtype=np.float64),
        np.asarray(yaw, dtype=np.float64),
    )
    cr, sr = np.cos(r), np.sin(r)
    cp, sp = np.cos(p), np.sin(p)
    cy, sy = np.cos(y), np.sin(y)
    rows = [
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def rotation_matrices_to_euler(matrices: npt.ArrayLike) -> FloatArray:
    """Euler angles ``(..., 3)`` (:class:`EulerIndex`) of rotation matrices ``(..., 3, 3)``.

    Pitch lies in ``[-pi/2, pi/2]``, roll and yaw in ``[-pi, pi]``. In gimbal lock
    (``|cos(pitch)| < 1e-9``) roll is set to 0 and the whole rotation about z goes to yaw.
    The matrices are not validated here; see :func:`euler_from_rotation_matrix`.
    """
    m = _float_array(matrices, "matrices")
    if m.ndim < 2 or m.shape[-2:] != (3, 3):
        raise ValueError(f"matrices must have shape (..., 3, 3), got {m.shape}")
    cos_pitch = np.hypot(m[..., 0, 0], m[..., 1, 0])
    pitch = np.arctan2(-m[..., 2, 0], cos_pitch)
    locked = cos_pitch < _GIMBAL_EPS
    yaw = np.where(
        locked,
        np.arctan2(-m[..., 0, 1], m[..., 1, 1]),
        np.arctan2(m[..., 1, 0], m[..., 0, 0]),
    )
    roll = np.where(locked, 0.0, np.arctan2(m[..., 2, 1], m[..., 2, 2]))
    return np.stack([roll, pitch, yaw], axis=-1)


def euler_from_rotation_matrix(matrix: npt.ArrayLike) -> tuple[float, float, float]:
    """``(roll, pitch, yaw)`` [rad] of a rotation matrix ``(3, 3)``, intrinsic Z-Y-X.

    Inverse of :func:`rotation_matrix_from_euler` for pitch in ``(-pi/2, pi/2)``; ranges and
    gimbal lock as in :func:`rotation_matrices_to_euler`. Raises ValueError if ``matrix`` is not
    a proper rotation.
    """
    m = _float_array(matrix, "matrix")
    _check_rotation(m, "matrix")
    roll, pitch, yaw = rotation_matrices_to_euler(m)
    return float(roll), float(pitch), float(yaw)


def quaternions_to_rotation_matrices(quaternions: npt.ArrayLike) -> FloatArray:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``(..., 4)`` ordered ``(w, x, y, z)``.

    Quaternions are normalised first; zero-norm rows give NaN.
    """
    q = _float_array(quaternions, "quaternions")
    _check_last_axis(q, 4, "quaternions")
    with np.errstate(invalid="ignore", divide="ignore"):
        q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


@dataclass(frozen=True)
class Quaternion:
    """A Hamilton quaternion ``w + x i + y j + z k`` (dimensionless).

    Rotations use unit quaternions; any finite, non-zero quaternion is accepted, and
    :meth:`rotate`, :meth:`to_rotation_matrix` and :meth:`to_euler` use its normalised form.
    """

    w: float
    """Scalar part."""
    x: float
    """Coefficient of i."""
    y: float
    """Coefficient of j."""
    z: float
    """Coefficient of k."""

    def __post_init__(self) -> None:
        for name in ("w", "x", "y", "z"):
            object.__setattr__(self, name, _finite_float(getattr(self, name), f"Quaternion.{name}"))
        if self.norm() == 0.0:
            raise ValueError("Quaternion must be non-zero, got (0, 0, 0, 0)")

    @staticmethod
    def identity() -> Quaternion:
        return Quaternion(1.0, 0.0, 0.0, 0.0)

    @staticmethod
    def from_array(array: npt.ArrayLike) -> Quaternion:
        """Build from ``(4,)`` ordered ``(w, x, y, z)``."""
        a = _float_array(array, "quaternion")
        if a.shape != (4,):
            raise ValueError(f"quaternion must have shape (4,), got {a.shape}")
        return Quaternion(float(a[0]), float(a[1]), float(a[2]), float(a[3]))

    @staticmethod
    def from_euler(roll: float, pitch: float, yaw: float) -> Quaternion:
        """Unit quaternion of ``R = Rz(yaw) Ry(pitch) Rx(roll)`` [rad]."""
        hr, hp, hy = 0.5 * roll, 0.5 * pitch, 0.5 * yaw
        qx = Quaternion(math.cos(hr), math.sin(hr), 0.0, 0.0)
        qy = Quaternion(math.cos(hp), 0.0, math.sin(hp), 0.0)
        qz = Quaternion(math.cos(hy), 0.0, 0.0, math.sin(hy))
        return qz * qy * qx

    @staticmethod
    def from_rotation_matrix(matrix: npt.ArrayLike) -> Quaternion:
        """Unit quaternion (with ``w >= 0``) of a proper rotation matrix ``(3, 3)``."""
        m = _float_array(matrix, "matrix")
        _check_rotation(m, "matrix")
        trace = float(np.trace(m))
        # Shepperd's method: pivot on the largest of w, x, y, z for numerical stability.
        if trace > 0.0:
            s = 2.0 * math.sqrt(1.0 + trace)
            w = 0.25 * s
            x = (m[2, 1] - m[1, 2]) / s
            y = (m[0, 2] - m[2, 0]) / s
            z = (m[1, 0] - m[0, 1]) / s
        elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
            s = 2.0 * math.sqrt(max(1.0 + m[0, 0] - m[1, 1] - m[2, 2], 0.0))
            w = (m[2, 1] - m[1, 2]) / s
            x = 0.25 * s
            y = (m[0, 1] + m[1, 0]) / s
            z = (m[0, 2] + m[2, 0]) / s
        elif m[1, 1] > m[2, 2]:
            s = 2.0 * math.sqrt(max(1.0 + m[1, 1] - m[0, 0] - m[2, 2], 0.0))
            w = (m[0, 2] - m[2, 0]) / s
            x = (m[0, 1] + m[1, 0]) / s
            y = 0.25 * s
            z = (m[1, 2] + m[2, 1]) / s
        else:
            s = 2.0 * math.sqrt(max(1.0 + m[2, 2] - m[0, 0] - m[1, 1], 0.0))
            w = (m[1, 0] - m[0, 1]) / s
            x = (m[0, 2] + m[2, 0]) / s
            y = (m[1, 2] + m[2, 1]) / s
            z = 0.25 * s
        q = Quaternion(float(w), float(x), float(y), float(z)).normalized()
        return q if q.w >= 0.0 else Quaternion(-q.w, -q.x, -q.y, -q.z)

    def norm(self) -> float:
        return math.hypot(self.w, self.x, self.y, self.z)

    def normalized(self) -> Quaternion:
        n = self.norm()
        return Quaternion(self.w / n, self.x / n, self.y / n, self.z / n)

    def as_array(self) -> FloatArray:
        """``(4,)`` ordered ``(w, x, y, z)``."""
        return np.array([self.w, self.x, self.y, self.z])

    def __mul__(self, other: Quaternion) -> Quaternion:
        """Hamilton product; as rotations, ``(a * b)`` applies ``b`` first, then ``a``."""
        if not isinstance(other, Quaternion):
            return NotImplemented
        aw, ax, ay, az = self.w, self.x, self.y, self.z
        bw, bx, by, bz = other.w, other.x, other.y, other.z
        return Quaternion(
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        )

    def conjugate(self) -> Quaternion:
        return Quaternion(self.w, -self.x, -self.y, -self.z)

    def inverse(self) -> Quaternion:
        """Multiplicative inverse (the conjugate for unit quaternions)."""
        n2 = self.norm() ** 2
        return Quaternion(self.w / n2, -self.x / n2, -self.y / n2, -self.z / n2)

    def to_rotation_matrix(self) -> FloatArray:
        """Rotation matrix ``(3, 3)``."""
        return quaternions_to_rotation_matrices(self.as_array())

    def to_euler(self) -> tuple[float, float, float]:
        """``(roll, pitch, yaw)`` [rad], intrinsic Z-Y-X; see :func:`euler_from_rotation_matrix`."""
        roll, pitch, yaw = rotation_matrices_to_euler(self.to_rotation_matrix())
        return float(roll), float(pitch), float(yaw)

    def rotate(self, points: npt.ArrayLike) -> FloatArray:
        """Rotate points ``(..., 3)``."""
        p = _float_array(points, "points")
        _check_last_axis(p, 3, "points")
        return p @ self.to_rotation_matrix().T

    def allclose(self, other: Quaternion, atol: float = 1e-9) -> bool:
        """Whether both represent the same rotation (``q`` and ``-q`` are equal) within atol."""
        a, b = self.normalized().as_array(), other.normalized().as_array()
        return bool(np.allclose(a, b, rtol=0.0, atol=atol) or np.allclose(a, -b, rtol=0, atol=atol))


# ----------------------------------------------------------------------------------------------
# SE(3)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SE3:
    """A rigid transform in space: ``p_parent = rotation @ p_local + translation``.

    The arrays are copied to read-only float64 on construction. Equality is exact and hashing
    consistent with it; use :meth:`allclose` to compare with a tolerance.
    """

    rotation: FloatArray
    """Proper rotation matrix ``(3, 3)`` (orthonormal within 1e-6, det +1)."""
    translation: FloatArray
    """Translation ``(3,)`` [m]."""

    def __post_init__(self) -> None:
        rotation = _float_array(self.rotation, "SE3.rotation").copy()
        translation = _float_array(self.translation, "SE3.translation").copy()
        _check_rotation(rotation, "SE3.rotation")
        if translation.shape != (3,):
            raise ValueError(f"SE3.translation must have shape (3,), got {translation.shape}")
        if not np.all(np.isfinite(translation)):
            raise ValueError(f"SE3.translation must be finite, got {translation.tolist()}")
        object.__setattr__(self, "rotation", _readonly(rotation))
        object.__setattr__(self, "translation", _readonly(translation))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SE3):
            return NotImplemented
        return bool(
            np.array_equal(self.rotation, other.rotation)
            and np.array_equal(self.translation, other.translation)
        )

    def __hash__(self) -> int:
        # Adding 0.0 maps -0.0 to 0.0 so that equal transforms hash equally.
        return hash(((self.rotation + 0.0).tobytes(), (self.translation + 0.0).tobytes()))

    def __repr__(self) -> str:
        roll, pitch, yaw = self.euler
        x, y, z = self.translation.tolist()
        return (
            f"SE3(x={x:.6g}, y={y:.6g}, z={z:.6g}, "
            f"roll={roll:.6g}, pitch={pitch:.6g}, yaw={yaw:.6g})"
        )

    @staticmethod
    def identity() -> SE3:
        return SE3(np.eye(3), np.zeros(3))

    @staticmethod
    def from_euler(x: float, y: float, z: float, roll: float, pitch: float, yaw: float) -> SE3:
        """Translation [m] and intrinsic Z-Y-X Euler angles [rad]."""
        raw = {"x": x, "y": y, "z": z, "roll": roll, "pitch": pitch, "yaw": yaw}
        values = [_finite_float(v, n) for n, v in raw.items()]
        return SE3(rotation_matrix_from_euler(*values[3:]), np.array(values[:3]))

    @staticmethod
    def from_quaternion(quaternion: Quaternion, translation: npt.ArrayLike) -> SE3:
        """Rotation from a (normalised) quaternion, translation ``(3,)`` [m]."""
        return SE3(quaternion.to_rotation_matrix(), _float_array(translation, "translation"))

    @staticmethod
    def from_matrix(matrix: npt.ArrayLike) -> SE3:
        """Build from a homogeneous ``(4, 4)`` matrix."""
        m = _float_array(matrix, "matrix")
        if m.shape != (4, 4):
            raise ValueError(f"matrix must have shape (4, 4), got {m.shape}")
        if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], rtol=0.0, atol=ROTATION_TOLERANCE):
            raise ValueError(f"matrix last row must be [0, 0, 0, 1], got {m[3].tolist()}")
        return SE3(m[:3, :3], m[:3, 3])

    @staticmethod
    def from_se2(pose: SE2, z: float = 0.0) -> SE3:
        """Lift a planar pose to 3D at height ``z`` [m] (roll = pitch = 0)."""
        return SE3.from_euler(pose.x, pose.y, z, 0.0, 0.0, pose.yaw)

    def as_matrix(self) -> FloatArray:
        """Homogeneous matrix ``(4, 4)``."""
        m = np.eye(4)
        m[:3, :3] = self.rotation
        m[:3, 3] = self.translation
        return m

    def compose(self, other: SE3) -> SE3:
        """``self ∘ other`` (the matrix product ``self @ other``)."""
        return SE3(
            self.rotation @ other.rotation, self.rotation @ other.translation + self.translation
        )

    def __matmul__(self, other: SE3) -> SE3:
        return self.compose(other)

    def inverse(self) -> SE3:
        rt = self.rotation.T
        return SE3(rt, -(rt @ self.translation))

    def transform_points(self, points: npt.ArrayLike) -> FloatArray:
        """Map points ``(..., 3)`` from the local frame to the parent frame."""
        p = _float_array(points, "points")
        _check_last_axis(p, 3, "points")
        return p @ self.rotation.T + self.translation

    def inverse_transform_points(self, points: npt.ArrayLike) -> FloatArray:
        """Map points ``(..., 3)`` from the parent frame into the local frame."""
        p = _float_array(points, "points")
        _check_last_axis(p, 3, "points")
        return (p - self.translation) @ self.rotation

    def to_se2(self) -> SE2:
        """Planar projection: ``(x, y)`` and the heading of the local x axis in the x-y plane.

        For a pose looking straight up or down (no horizontal heading) the yaw of the Euler
        decomposition is used.
        """
        yaw = self.euler[EulerIndex.YAW]
        return SE2(float(self.translation[0]), float(self.translation[1]), yaw)

    @property
    def quaternion(self) -> Quaternion:
        return Quaternion.from_rotation_matrix(self.rotation)

    @property
    def euler(self) -> tuple[float, float, float]:
        """``(roll, pitch, yaw)`` [rad], intrinsic Z-Y-X."""
        roll, pitch, yaw = rotation_matrices_to_euler(self.rotation)
        return float(roll), float(pitch), float(yaw)

    def allclose(self, other: SE3, atol: float = 1e-9) -> bool:
        """Element-wise closeness of rotation and translation within ``atol``."""
        return bool(
            np.allclose(self.rotation, other.rotation, rtol=0.0, atol=atol)
            and np.allclose(self.translation, other.translation, rtol=0.0, atol=atol)
        )


# ----------------------------------------------------------------------------------------------
# Oriented boxes, batched
# ----------------------------------------------------------------------------------------------

# Corner signs along (length, width), in BoxCorner order.
_CORNER_SIGNS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


def _packed_boxes(boxes: npt.ArrayLike, size: int, name: str) -> FloatArray:
    a = _float_array(boxes, name)
    _check_last_axis(a, size, name)
    return a


def box2d_corners(boxes: npt.ArrayLike) -> FloatArray:
    """Corners ``(..., 4, 2)`` of boxes ``(..., 5)`` in :class:`BoxCorner` order."""
    b = _packed_boxes(boxes, 5, "boxes")
    yaw = b[..., None, BoxIndex.YAW]
    c, s = np.cos(yaw), np.sin(yaw)
    lx = 0.5 * b[..., None, BoxIndex.LENGTH] * _CORNER_SIGNS[:, 0]
    ly = 0.5 * b[..., None, BoxIndex.WIDTH] * _CORNER_SIGNS[:, 1]
    x = b[..., None, BoxIndex.X] + c * lx - s * ly
    y = b[..., None, BoxIndex.Y] + s * lx + c * ly
    return np.stack([x, y], axis=-1)


def box2d_contains(
    boxes: npt.ArrayLike, points: npt.ArrayLike, eps: float = GEOMETRY_EPS
) -> BoolArray:
    """Which points lie in which boxes: boxes ``(..., 5)``, points ``(N, 2)`` -> ``(..., N)``.

    Boxes are closed: a point on the boundary (within ``eps`` [m]) is inside. Rows with NaN
    contain nothing.
    """
    b = _packed_boxes(boxes, 5, "boxes")
    p = _float_array(points, "points")
    if p.ndim != 2 or p.shape[-1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {p.shape}")
    yaw = b[..., None, BoxIndex.YAW]
    c, s = np.cos(yaw), np.sin(yaw)
    dx = p[:, 0] - b[..., None, BoxIndex.X]
    dy = p[:, 1] - b[..., None, BoxIndex.Y]
    local_x = c * dx + s * dy
    local_y = -s * dx + c * dy
    inside_x = np.abs(local_x) <= 0.5 * b[..., None, BoxIndex.LENGTH] + eps
    inside_y = np.abs(local_y) <= 0.5 * b[..., None, BoxIndex.WIDTH] + eps
    return np.asarray(inside_x & inside_y)


def box2d_overlap(a: npt.ArrayLike, b: npt.ArrayLike, eps: float = GEOMETRY_EPS) -> BoolArray:
    """Whether oriented boxes intersect (separating axis theorem), broadcasting leading axes.

    ``a`` ``(..., 5)``, ``b`` ``(..., 5)`` -> ``(...)``; for all pairs pass ``a[:, None]`` and
    ``b[None, :]``. Boxes are closed: boxes that touch, or are apart by at most ``eps`` [m] along
    every candidate axis, overlap. Rows with NaN overlap nothing.
    """
    pa = _packed_boxes(a, 5, "a")
    pb = _packed_boxes(b, 5, "b")
    ca, sa = np.cos(pa[..., BoxIndex.YAW]), np.sin(pa[..., BoxIndex.YAW])
    cb, sb = np.cos(pb[..., BoxIndex.YAW]), np.sin(pb[..., BoxIndex.YAW])
    hla, hwa = 0.5 * pa[..., BoxIndex.LENGTH], 0.5 * pa[..., BoxIndex.WIDTH]
    hlb, hwb = 0.5 * pb[..., BoxIndex.LENGTH], 0.5 * pb[..., BoxIndex.WIDTH]
    dx = pb[..., BoxIndex.X] - pa[..., BoxIndex.X]
    dy = pb[..., BoxIndex.Y] - pa[..., BoxIndex.Y]
    # Dot products between the unit axes (forward u, left v) of a and b.
    uu = ca * cb + sa * sb  # u_a . u_b = cos(yaw_b - yaw_a)
    uv = -ca * sb + sa * cb  # u_a . v_b = sin(yaw_a - yaw_b)
    abs_uu, abs_uv = np.abs(uu), np.abs(uv)
    # |v_a . v_b| = |u_a . u_b| and |v_a . u_b| = |u_a . v_b| for planar rotations.
    axes = (
        (ca * dx + sa * dy, hla, hlb * abs_uu + hwb * abs_uv),  # u_a
        (-sa * dx + ca * dy, hwa, hlb * abs_uv + hwb * abs_uu),  # v_a
        (cb * dx + sb * dy, hla * abs_uu + hwa * abs_uv, hlb),  # u_b
        (-sb * dx + cb * dy, hla * abs_uv + hwa * abs_uu, hwb),  # v_b
    )
    result = np.ones(np.broadcast_shapes(pa.shape[:-1], pb.shape[:-1]), dtype=bool)
    for distance, radius_a, radius_b in axes:
        # Written as "<=" so that NaN compares False (no overlap).
        result &= np.abs(distance) <= radius_a + radius_b + eps
    return result


def _footprints(boxes: FloatArray) -> FloatArray:
    return boxes[
        ...,
        [Box3DIndex.X, Box3DIndex.Y, Box3DIndex.YAW, Box3DIndex.LENGTH, Box3DIndex.WIDTH],
    ]


def box3d_corners(boxes: npt.ArrayLike) -> FloatArray:
    """Corners ``(..., 8, 3)`` of boxes ``(..., 7)``: bottom four then top four, each in
    :class:`BoxCorner` order."""
    b = _packed_boxes(boxes, 7, "boxes")
    xy = box2d_corners(_footprints(b))
    half_h = 0.5 * b[..., None, Box3DIndex.HEIGHT]
    bottom = np.broadcast_to(b[..., None, Box3DIndex.Z] - half_h, xy.shape[:-1])
    top = np.broadcast_to(b[..., None, Box3DIndex.Z] + half_h, xy.shape[:-1])
    lower = np.concatenate([xy, bottom[..., None]], axis=-1)
    upper = np.concatenate([xy, top[..., None]], axis=-1)
    return np.concatenate([lower, upper], axis=-2)


def box3d_contains(
    boxes: npt.ArrayLike, points: npt.ArrayLike, eps: float = GEOMETRY_EPS
) -> BoolArray:
    """Which points lie in which 3D boxes: boxes ``(..., 7)``, points ``(N, 3)`` -> ``(..., N)``.

    Closed boxes with slack ``eps`` [m], as :func:`box2d_contains`.
    """
    b = _packed_boxes(boxes, 7, "boxes")
    p = _float_array(points, "points")
    if p.ndim != 2 or p.shape[-1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {p.shape}")
    in_footprint = box2d_contains(_footprints(b), p[:, :2], eps)
    dz = np.abs(p[:, 2] - b[..., None, Box3DIndex.Z])
    return in_footprint & (dz <= 0.5 * b[..., None, Box3DIndex.HEIGHT] + eps)


def box3d_overlap(a: npt.ArrayLike, b: npt.ArrayLike, eps: float = GEOMETRY_EPS) -> BoolArray:
    """Whether yaw-only 3D boxes intersect: footprints overlap (SAT) and z intervals overlap.

    ``a`` ``(..., 7)``, ``b`` ``(..., 7)`` -> ``(...)`` with broadcasting; closed boxes with
    slack ``eps`` [m].
    """
    pa = _packed_boxes(a, 7, "a")
    pb = _packed_boxes(b, 7, "b")
    footprint = box2d_overlap(_footprints(pa), _footprints(pb), eps)
    dz = np.abs(pb[..., Box3DIndex.Z] - pa[..., Box3DIndex.Z])
    half_heights = 0.5 * (pa[..., Box3DIndex.HEIGHT] + pb[..., Box3DIndex.HEIGHT])
    return footprint & (dz <= half_heights + eps)


# ----------------------------------------------------------------------------------------------
# Oriented boxes, one at a time
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box2D:
    """An oriented rectangle in the plane; ``length`` runs along the heading ``yaw``."""

    x: float
    """Centre x [m]."""
    y: float
    """Centre y [m]."""
    yaw: float
    """Heading of the length axis, counter-clockwise from +x [rad]."""
    length: float
    """Extent along the heading [m], >= 0."""
    width: float
    """Extent across the heading [m], >= 0."""

    def __post_init__(self) -> None:
        for name in ("x", "y", "yaw"):
            object.__setattr__(self, name, _finite_float(getattr(self, name), f"Box2D.{name}"))
        for name in ("length", "width"):
            object.__setattr__(self, name, _size_float(getattr(self, name), f"Box2D.{name}"))

    @staticmethod
    def from_array(array: npt.ArrayLike) -> Box2D:
        """Build from a packed box ``(5,)`` indexed by :class:`BoxIndex`."""
        a = _float_array(array, "box")
        if a.shape != (5,):
            raise ValueError(f"box must have shape (5,), got {a.shape}")
        return Box2D(*(float(a[i]) for i in BoxIndex))

    @property
    def pose(self) -> SE2:
        """Pose of the box centre and heading."""
        return SE2(self.x, self.y, self.yaw)

    @property
    def area(self) -> float:
        """Area [m^2]."""
        return self.length * self.width

    def as_array(self) -> FloatArray:
        """Packed box ``(5,)`` indexed by :class:`BoxIndex`."""
        return np.array([self.x, self.y, self.yaw, self.length, self.width])

    def corners(self) -> FloatArray:
        """Corners ``(4, 2)``: front-left, rear-left, rear-right, front-right (counter-clockwise
        seen from above, :class:`BoxCorner` order)."""
        return box2d_corners(self.as_array())

    def contains(self, points: npt.ArrayLike, eps: float = GEOMETRY_EPS) -> BoolArray:
        """Whether points ``(..., 2)`` lie inside or on the boundary (within ``eps`` [m])."""
        p = _float_array(points, "points")
        _check_last_axis(p, 2, "points")
        return box2d_contains(self.as_array(), p.reshape(-1, 2), eps).reshape(p.shape[:-1])

    def overlaps(self, other: Box2D, eps: float = GEOMETRY_EPS) -> bool:
        """Whether the boxes intersect; touching (within ``eps`` [m]) counts as overlap."""
        return bool(box2d_overlap(self.as_array(), other.as_array(), eps))


@dataclass(frozen=True)
class Box3D:
    """A box rotated about z only; ``z`` is the centre height, ``length`` runs along ``yaw``."""

    x: float
    """Centre x [m]."""
    y: float
    """Centre y [m]."""
    z: float
    """Centre z [m] (half-way between bottom and top)."""
    yaw: float
    """Heading of the length axis, counter-clockwise from +x [rad]."""
    length: float
    """Extent along the heading [m], >= 0."""
    width: float
    """Extent across the heading [m], >= 0."""
    height: float
    """Extent along z [m], >= 0."""

    def __post_init__(self) -> None:
        for name in ("x", "y", "z", "yaw"):
            object.__setattr__(self, name, _finite_float(getattr(self, name), f"Box3D.{name}"))
        for name in ("length", "width", "height"):
            object.__setattr__(self, name, _size_float(getattr(self, name), f"Box3D.{name}"))

    @staticmethod
    def from_array(array: npt.ArrayLike) -> Box3D:
        """Build from a packed box ``(7,)`` indexed by :class:`Box3DIndex`."""
        a = _float_array(array, "box")
        if a.shape != (7,):
            raise ValueError(f"box must have shape (7,), got {a.shape}")
        return Box3D(*(float(a[i]) for i in Box3DIndex))

    @property
    def volume(self) -> float:
        """Volume [m^3]."""
        return self.length * self.width * self.height

    def as_array(self) -> FloatArray:
        """Packed box ``(7,)`` indexed by :class:`Box3DIndex`."""
        return np.array([self.x, self.y, self.z, self.yaw, self.length, self.width, self.height])

    def footprint(self) -> Box2D:
        return Box2D(self.x, self.y, self.yaw, self.length, self.width)

    def corners(self) -> FloatArray:
        """Corners ``(8, 3)``: the bottom four then the top four, each in :class:`BoxCorner`
        order."""
        return box3d_corners(self.as_array())

    def contains(self, points: npt.ArrayLike, eps: float = GEOMETRY_EPS) -> BoolArray:
        """Whether points ``(..., 3)`` lie inside or on the boundary (within ``eps`` [m])."""
        p = _float_array(points, "points")
        _check_last_axis(p, 3, "points")
        return box3d_contains(self.as_array(), p.reshape(-1, 3), eps).reshape(p.shape[:-1])

    def overlaps(self, other: Box3D, eps: float = GEOMETRY_EPS) -> bool:
        """Footprints overlap (SAT) and z intervals overlap; touching counts as overlap."""
        return bool(box3d_overlap(self.as_array(), other.as_array(), eps))
