"""The boundary between CARLA's left-handed frame and kaido's right-handed frame.

CARLA (Unreal Engine): x forward, y right, z up, left-handed; lengths in metres; rotations in
degrees as ``carla.Rotation(pitch, yaw, roll)``. ``carla.Transform.get_matrix()`` is the 4x4
matrix (in CARLA coordinates) ``R_carla = Rz(yaw) Ry(-pitch) Rx(-roll)`` with translation, where
``Rz``, ``Ry``, ``Rx`` are the usual right-hand-rule rotation matrices applied to CARLA's
coordinate triples.

kaido (ISO 8855): x forward, y left, z up, right-handed; radians. The two frames differ by the
reflection ``M = diag(1, -1, 1)``: a point ``p_carla`` is ``M p_carla`` in kaido, and a transform
matrix ``T_carla`` is ``M4 T_carla M4`` with ``M4 = diag(1, -1, 1, 1)``. Conjugating by ``M``
flips the sign of rotations about z and x and keeps rotations about y, so

    ``M R_carla M = Rz(-yaw) Ry(-pitch) Rx(roll)``,

i.e. kaido ``yaw = -yaw_carla``, ``pitch = -pitch_carla`` (CARLA's nose-up is positive, ISO's
nose-down is positive) and ``roll = +roll_carla``, all converted to radians.

This module is pure NumPy: it does not import ``carla``; callers pass plain numbers.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from kaido.scene.geometry import SE2, SE3, FloatArray, wrap_angle

#: Reflection between CARLA and kaido coordinates (its own inverse).
REFLECT_Y = np.diag([1.0, -1.0, 1.0])
#: Homogeneous form of :data:`REFLECT_Y`.
REFLECT_Y4 = np.diag([1.0, -1.0, 1.0, 1.0])

_FLIP = np.array([1.0, -1.0, 1.0])


def _wrap_degrees(angle: float) -> float:
    """Wrap degrees to ``[-180, 180)``."""
    return math.degrees(wrap_angle(math.radians(angle)))


def _points(points: npt.ArrayLike, name: str) -> FloatArray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {array.shape}")
    return array


def carla_location_to_kaido(x: float, y: float, z: float) -> FloatArray:
    """A CARLA location (or velocity/acceleration vector) ``(x, y, z)`` [m] as kaido ``(3,)``."""
    return np.array([float(x), -float(y), float(z)])


def carla_points_to_kaido(points: npt.ArrayLike) -> FloatArray:
    """CARLA points or vectors ``(..., 3)`` to kaido ``(..., 3)`` (y negated)."""
    return _points(points, "points") * _FLIP


def kaido_points_to_carla(points: npt.ArrayLike) -> FloatArray:
    """kaido points or vectors ``(..., 3)`` to CARLA ``(..., 3)`` (y negated)."""
    return _points(points, "points") * _FLIP


def kaido_location_to_carla(point: npt.ArrayLike) -> tuple[float, float, float]:
    """A kaido point ``(3,)`` [m] as the CARLA ``(x, y, z)`` of a ``carla.Location``."""
    p = _points(point, "point")
    if p.shape != (3,):
        raise ValueError(f"point must have shape (3,), got {p.shape}")
    return float(p[0]), -float(p[1]), float(p[2])


def carla_yaw_to_kaido(yaw_deg: npt.ArrayLike) -> FloatArray:
    """CARLA yaws [deg, clockwise seen from above] as kaido yaws [rad] in ``[-pi, pi)``.

    Works on scalars and arrays alike (returns a 0-d array for a scalar).
    """
    return np.asarray(wrap_angle(0.0 - np.radians(np.asarray(yaw_deg, dtype=np.float64))))


def kaido_yaw_to_carla(yaw: npt.ArrayLike) -> FloatArray:
    """kaido yaws [rad] as CARLA yaws [deg] in ``(-180, 180]``."""
    return np.asarray(0.0 - np.degrees(wrap_angle(np.asarray(yaw, dtype=np.float64))))


def carla_rotation_to_kaido(
    pitch_deg: float, yaw_deg: float, roll_deg: float
) -> tuple[float, float, float]:
    """A ``carla.Rotation(pitch, yaw, roll)`` [deg] as kaido ``(roll, pitch, yaw)`` [rad].

    The result satisfies ``rotation_matrix_from_euler(roll, pitch, yaw) = M R_carla M``; each
    angle is wrapped to ``[-pi, pi)``.
    """
    return (
        wrap_angle(math.radians(roll_deg)),
        wrap_angle(-math.radians(pitch_deg)),
        wrap_angle(-math.radians(yaw_deg)),
    )


def kaido_rotation_to_carla(roll: float, pitch: float, yaw: float) -> tuple[float, float, float]:
    """kaido ``(roll, pitch, yaw)`` [rad] as CARLA ``(pitch, yaw, roll)`` [deg] in ``[-180, 180)``.

    Inverse of :func:`carla_rotation_to_kaido` up to multiples of 360 degrees.
    """
    return (
        _wrap_degrees(-math.degrees(pitch)),
        _wrap_degrees(-math.degrees(yaw)),
        _wrap_degrees(math.degrees(roll)),
    )


def carla_transform_to_kaido(
    x: float, y: float, z: float, pitch_deg: float, yaw_deg: float, roll_deg: float
) -> SE3:
    """A ``carla.Transform`` (location [m], rotation [deg]) as a kaido :class:`SE3`.

    Its matrix equals ``M4 @ carla.Transform(...).get_matrix() @ M4``.
    """
    roll, pitch, yaw = carla_rotation_to_kaido(pitch_deg, yaw_deg, roll_deg)
    return SE3.from_euler(float(x), -float(y), float(z), roll, pitch, yaw)


def kaido_to_carla_transform(pose: SE3) -> tuple[float, float, float, float, float, float]:
    """A kaido :class:`SE3` as CARLA ``(x, y, z, pitch_deg, yaw_deg, roll_deg)``.

    Pitch comes back in ``[-90, 90]``, yaw and roll in ``[-180, 180)``; build the transform with
    ``carla.Transform(carla.Location(x, y, z), carla.Rotation(pitch=..., yaw=..., roll=...))``.
    """
    x, y, z = kaido_location_to_carla(pose.translation)
    roll, pitch, yaw = pose.euler
    pitch_deg, yaw_deg, roll_deg = kaido_rotation_to_carla(roll, pitch, yaw)
    return x, y, z, pitch_deg, yaw_deg, roll_deg


def carla_pose_to_se2(x: float, y: float, yaw_deg: float) -> SE2:
    """A CARLA planar pose (location [m], yaw [deg]) as a kaido :class:`SE2`."""
    return SE2(float(x), -float(y), wrap_angle(-math.radians(yaw_deg)))


def se2_to_carla_pose(pose: SE2) -> tuple[float, float, float]:
    """A kaido :class:`SE2` as CARLA ``(x, y, yaw_deg)`` with yaw in ``[-180, 180)``."""
    return pose.x, -pose.y, _wrap_degrees(-math.degrees(pose.yaw))
