"""Numba kernels of the embedded simulator's ray caster: pure array-in/array-out functions.

The scene (see :mod:`kaido.simulation.embedded.world`), in the world frame [m]:

* the ground plane ``z = 0``, hit from above only (``dz < 0``), classed by a grid
  ``ground_classes (GH, GW)`` uint8 with corner ``(gx0, gy0)`` and cell ``ground_res``; outside
  the grid its class is ``ground_default``;
* ``B`` oriented boxes ``params (B, len(BoxParam))`` (:func:`box_params`), rotated about z only.
  A ray that starts inside a box does not see it (its faces are seen from outside only).

Boxes are found along a ray by a uniform grid over the xy plane (``n_cols x n_rows`` square cells
of ``cell`` metres from ``(bx0, by0)``, CSR lists ``cell_start (G + 1,)``/``cell_items (K,)``
built by :func:`kaido.scene.raster_kernels.build_grid`), walked cell by cell in the order the ray
crosses them (Amanatides & Woo's 3D-DDA, in 2D); the walk stops once the nearest hit lies before
the current cell's exit, when the ray climbs above every box (``z_top``), or when it leaves the
grid. Boxes not wholly inside the grid are listed in ``outside (O,)`` and tested on every ray.

Every hit is a ray parameter ``t``, an item and a face. Rays are ``o + t d`` with ``d`` not
necessarily of unit length; a hit counts when ``t_near < t < t_far`` and it is the nearest (ties
go to the item tested first: the ground, then boxes in the order met). Item ids: ``>= 0`` a box,
:data:`GROUND_HIT` the ground, :data:`NO_HIT` nothing. Faces: :class:`Face` in the box's own frame
(the ground's face is ``TOP``).

Rendering kernels loop over rows (camera) or azimuth steps (lidar) with ``prange``; every ray is
independent and every random number is drawn by the caller beforehand, so the results do not
depend on the number of threads. Plain NumPy oracles of these kernels are in
:mod:`kaido.simulation.embedded.raycast_reference`.
"""

from __future__ import annotations

import math
from enum import IntEnum

import numba
import numpy as np
import numpy.typing as npt

from kaido.scene.geometry import Box3DIndex

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UInt8Array = npt.NDArray[np.uint8]

NO_HIT = -1
"""Item id of a ray that hit nothing."""
GROUND_HIT = -2
"""Item id of a ray that hit the ground."""

PARALLEL_EPS = 1e-12
"""A direction component of at most this magnitude counts as parallel to a slab."""


class BoxParam(IntEnum):
    """Columns of the packed ray-test form of a box ``(B, len(BoxParam))``: centre [m], cosine and
    sine of the yaw, half length, half width, half height [m]."""

    CX = 0
    CY = 1
    CZ = 2
    COS = 3
    SIN = 4
    HALF_LENGTH = 5
    HALF_WIDTH = 6
    HALF_HEIGHT = 7


class Face(IntEnum):
    """The face of a box a ray enters, in the box's frame (x along its length, z up)."""

    FRONT = 0  # +x
    BACK = 1  # -x
    LEFT = 2  # +y
    RIGHT = 3  # -y
    TOP = 4  # +z
    BOTTOM = 5  # -z


def box_params(boxes: FloatArray) -> FloatArray:
    """The ray-test form ``(B, len(BoxParam))`` of boxes ``(B, 7)`` (:class:`Box3DIndex`)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    out = np.empty((b.shape[0], len(BoxParam)), dtype=np.float64)
    out[:, BoxParam.CX] = b[:, Box3DIndex.X]
    out[:, BoxParam.CY] = b[:, Box3DIndex.Y]
    out[:, BoxParam.CZ] = b[:, Box3DIndex.Z]
    out[:, BoxParam.COS] = np.cos(b[:, Box3DIndex.YAW])
    out[:, BoxParam.SIN] = np.sin(b[:, Box3DIndex.YAW])
    out[:, BoxParam.HALF_LENGTH] = 0.5 * b[:, Box3DIndex.LENGTH]
    out[:, BoxParam.HALF_WIDTH] = 0.5 * b[:, Box3DIndex.WIDTH]
    out[:, BoxParam.HALF_HEIGHT] = 0.5 * b[:, Box3DIndex.HEIGHT]
    return out


def face_normals(params: FloatArray, faces: npt.NDArray[np.integer]) -> FloatArray:
    """World unit normals ``(N, 3)`` of the faces ``(N,)`` of the boxes ``params (N, 8)``."""
    c = params[:, BoxParam.COS]
    s = params[:, BoxParam.SIN]
    f = np.asarray(faces)
    out = np.zeros((f.shape[0], 3), dtype=np.float64)
    sign = np.where(f % 2 == 0, 1.0, -1.0)
    along = f <= Face.BACK
    across = (f == Face.LEFT) | (f == Face.RIGHT)
    up = f >= Face.TOP
    out[:, 0] = np.where(along, sign * c, np.where(across, -sign * s, 0.0))
    out[:, 1] = np.where(along, sign * s, np.where(across, sign * c, 0.0))
    out[:, 2] = np.where(up, sign, 0.0)
    return out


# -- one ray -------------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _slab(o: float, d: float, h: float) -> tuple[float, float, bool]:
    """Entry and exit ``t`` of the slab ``[-h, h]`` along one axis; False when parallel and
    outside it."""
    if abs(d) <= PARALLEL_EPS:
        if abs(o) > h:
            return 0.0, 0.0, False
        return -math.inf, math.inf, True
    t1 = (-h - o) / d
    t2 = (h - o) / d
    if t1 > t2:
        return t2, t1, True
    return t1, t2, True


@numba.njit(cache=True, inline="always")
def _hit_box(
    params: FloatArray,
    i: int,
    ox: float,
    oy: float,
    oz: float,
    dx: float,
    dy: float,
    dz: float,
    t_near: float,
    t_best: float,
) -> tuple[float, int]:
    """``(t, face)`` of the ray entering box ``i`` at ``t_near < t < t_best``;
    ``(inf, -1)`` when it does not."""
    c = params[i, 3]
    s = params[i, 4]
    rx = ox - params[i, 0]
    ry = oy - params[i, 1]
    lx = c * rx + s * ry
    ly = -s * rx + c * ry
    lz = oz - params[i, 2]
    ldx = c * dx + s * dy
    ldy = -s * dx + c * dy
    ta, tb, ok = _slab(lx, ldx, params[i, 5])
    if not ok:
        return math.inf, -1
    t_in = ta
    t_out = tb
    face = 0 if ldx < 0.0 else 1
    ta, tb, ok = _slab(ly, ldy, params[i, 6])
    if not ok:
        return math.inf, -1
    if ta > t_in:
        t_in = ta
        face = 2 if ldy < 0.0 else 3
    t_out = min(t_out, tb)
    ta, tb, ok = _slab(lz, dz, params[i, 7])
    if not ok:
        return math.inf, -1
    if ta > t_in:
        t_in = ta
        face = 4 if dz < 0.0 else 5
    t_out = min(t_out, tb)
    if t_in > t_out or t_in <= t_near or t_in >= t_best:
        return math.inf, -1
    return t_in, face


@numba.njit(cache=True)
def trace_ray(
    ox: float,
    oy: float,
    oz: float,
    dx: float,
    dy: float,
    dz: float,
    t_near: float,
    t_far: float,
    params: FloatArray,
    cell_start: IntArray,
    cell_items: IntArray,
    outside: IntArray,
    bx0: float,
    by0: float,
    cell: float,
    n_cols: int,
    n_rows: int,
    z_top: float,
) -> tuple[float, int, int]:
    """The nearest hit ``(t, item, face)`` of the ray ``o + t d`` (see the module docstring).

    With no hit, ``t`` is ``t_far``, the item :data:`NO_HIT` and the face -1.
    """
    t_best = t_far
    item = NO_HIT
    face = -1
    if dz < 0.0:
        tg = -oz / dz
        if t_near < tg < t_best:
            t_best = tg
            item = GROUND_HIT
            face = 4
    for k in range(outside.shape[0]):
        t, f = _hit_box(params, outside[k], ox, oy, oz, dx, dy, dz, t_near, t_best)
        if t < t_best:
            t_best = t
            item = outside[k]
            face = f
    # the part of the ray that may meet a box in the grid
    t0 = t_near
    t1 = t_best
    if dz > 0.0:
        t1 = min(t1, (z_top - oz) / dz)
    x_hi = bx0 + n_cols * cell
    y_hi = by0 + n_rows * cell
    if abs(dx) <= PARALLEL_EPS:
        if ox < bx0 or ox > x_hi:
            return t_best, item, face
    else:
        ta = (bx0 - ox) / dx
        tb = (x_hi - ox) / dx
        t0 = max(t0, min(ta, tb))
        t1 = min(t1, max(ta, tb))
    if abs(dy) <= PARALLEL_EPS:
        if oy < by0 or oy > y_hi:
            return t_best, item, face
    else:
        ta = (by0 - oy) / dy
        tb = (y_hi - oy) / dy
        t0 = max(t0, min(ta, tb))
        t1 = min(t1, max(ta, tb))
    if t0 >= t1:
        return t_best, item, face
    inv = 1.0 / cell
    ix = min(max(int(math.floor((ox + t0 * dx - bx0) * inv)), 0), n_cols - 1)
    iy = min(max(int(math.floor((oy + t0 * dy - by0) * inv)), 0), n_rows - 1)
    if abs(dx) <= PARALLEL_EPS:
        step_x = 0
        t_max_x = math.inf
        t_delta_x = math.inf
    elif dx > 0.0:
        step_x = 1
        t_max_x = (bx0 + (ix + 1) * cell - ox) / dx
        t_delta_x = cell / dx
    else:
        step_x = -1
        t_max_x = (bx0 + ix * cell - ox) / dx
        t_delta_x = -cell / dx
    if abs(dy) <= PARALLEL_EPS:
        step_y = 0
        t_max_y = math.inf
        t_delta_y = math.inf
    elif dy > 0.0:
        step_y = 1
        t_max_y = (by0 + (iy + 1) * cell - oy) / dy
        t_delta_y = cell / dy
    else:
        step_y = -1
        t_max_y = (by0 + iy * cell - oy) / dy
        t_delta_y = -cell / dy
    while True:
        g = iy * n_cols + ix
        for j in range(cell_start[g], cell_start[g + 1]):
            b = cell_items[j]
            t, f = _hit_box(params, b, ox, oy, oz, dx, dy, dz, t_near, t_best)
            if t < t_best:
                t_best = t
                item = b
                face = f
        t_exit = min(t_max_x, t_max_y)
        if t_exit >= t_best or t_exit >= t1:
            break
        if t_max_x < t_max_y:
            ix += step_x
            if ix < 0 or ix >= n_cols:
                break
            t_max_x += t_delta_x
        else:
            iy += step_y
            if iy < 0 or iy >= n_rows:
                break
            t_max_y += t_delta_y
    return t_best, item, face


@numba.njit(cache=True, inline="always")
def ground_class(
    x: float,
    y: float,
    ground_classes: UInt8Array,
    gx0: float,
    gy0: float,
    ground_res: float,
    ground_default: int,
) -> tuple[int, int, int]:
    """``(class, col, row)`` of the ground cell under ``(x, y)`` (class ``ground_default``
    outside the grid; col and row are then still the cell's indices on the grid's lattice)."""
    col = int(math.floor((x - gx0) / ground_res))
    row = int(math.floor((y - gy0) / ground_res))
    if 0 <= row < ground_classes.shape[0] and 0 <= col < ground_classes.shape[1]:
        return int(ground_classes[row, col]), col, row
    return ground_default, col, row


@numba.njit(cache=True, inline="always")
def cell_noise(col: int, row: int) -> float:
    """A value in ``[-1, 1]`` hashed from a ground cell's indices (the ground's texture)."""
    h = ((col * 73856093) ^ (row * 19349663)) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    return ((h >> 8) & 255) / 127.5 - 1.0


@numba.njit(cache=True, inline="always")
def _to_uint8(value: float) -> np.uint8:
    return np.uint8(min(max(math.floor(value + 0.5), 0.0), 255.0))


# -- camera ----------------------------------------------------------------------------------------


@numba.njit(cache=True, parallel=True)
def render_camera_kernel(
    origin: FloatArray,
    rotation: FloatArray,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    height: int,
    width: int,
    near: float,
    far: float,
    ground_classes: UInt8Array,
    gx0: float,
    gy0: float,
    ground_res: float,
    ground_default: int,
    params: FloatArray,
    box_classes: UInt8Array,
    box_colors: UInt8Array,
    cell_start: IntArray,
    cell_items: IntArray,
    outside: IntArray,
    bx0: float,
    by0: float,
    cell: float,
    n_cols: int,
    n_rows: int,
    z_top: float,
    class_colors: UInt8Array,
    ground_texture: FloatArray,
    light: FloatArray,
    ambient: float,
    sky_zenith: FloatArray,
) -> tuple[UInt8Array, npt.NDArray[np.float32], UInt8Array]:
    """Render a pinhole camera: ``rgb (H, W, 3)`` uint8, ``depth (H, W)`` float32, ``semantic
    (H, W)`` uint8.

    ``origin (3,)`` and ``rotation (3, 3)`` are the optical frame's pose in the world (x right,
    y down, z forward); pixel ``(row, col)`` casts the ray through its centre
    ``(u, v) = (col + 0.5, row + 0.5)`` with direction ``rotation @ ((u - cx) / fx,
    (v - cy) / fy, 1)``, so the ray parameter ``t`` is the optical-frame depth. Depth is ``inf``
    and the class 0 where nothing is hit between ``near`` and ``far`` [m of depth].

    Shading: a box face shows the box's colour times ``ambient + (1 - ambient) max(0, n . l)``
    (``light (3,)`` unit vector towards the light); the ground its class's colour from
    ``class_colors`` times ``1 + ground_texture[class] * cell_noise`` and the same Lambert term
    with ``n = +z``; the sky blends ``class_colors[0]`` at the horizon into ``sky_zenith`` with
    the sine of the ray's elevation.
    """
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    depth = np.empty((height, width), dtype=np.float32)
    semantic = np.empty((height, width), dtype=np.uint8)
    ox = origin[0]
    oy = origin[1]
    oz = origin[2]
    ground_shade = ambient + (1.0 - ambient) * max(0.0, light[2])
    for row in numba.prange(height):
        yn = (row + 0.5 - cy) / fy
        for col in range(width):
            xn = (col + 0.5 - cx) / fx
            dx = rotation[0, 0] * xn + rotation[0, 1] * yn + rotation[0, 2]
            dy = rotation[1, 0] * xn + rotation[1, 1] * yn + rotation[1, 2]
            dz = rotation[2, 0] * xn + rotation[2, 1] * yn + rotation[2, 2]
            t, item, face = trace_ray(
                ox, oy, oz, dx, dy, dz, near, far, params, cell_start, cell_items, outside,
                bx0, by0, cell, n_cols, n_rows, z_top,
            )  # fmt: skip
            if item == NO_HIT:
                depth[row, col] = np.inf
                semantic[row, col] = 0
                w = max(0.0, dz / math.sqrt(dx * dx + dy * dy + dz * dz))
                for k in range(3):
                    rgb[row, col, k] = _to_uint8((1.0 - w) * class_colors[0, k] + w * sky_zenith[k])
                continue
            depth[row, col] = t
            if item == GROUND_HIT:
                cls, gcol, grow = ground_class(
                    ox + t * dx, oy + t * dy, ground_classes, gx0, gy0, ground_res, ground_default
                )
                semantic[row, col] = cls
                factor = ground_shade * (1.0 + ground_texture[cls] * cell_noise(gcol, grow))
                for k in range(3):
                    rgb[row, col, k] = _to_uint8(class_colors[cls, k] * factor)
                continue
            semantic[row, col] = box_classes[item]
            c = params[item, 3]
            s = params[item, 4]
            sign = 1.0 if face % 2 == 0 else -1.0
            if face <= 1:
                ndotl = sign * (c * light[0] + s * light[1])
            elif face <= 3:
                ndotl = sign * (-s * light[0] + c * light[1])
            else:
                ndotl = sign * light[2]
            shade = ambient + (1.0 - ambient) * max(0.0, ndotl)
            for k in range(3):
                rgb[row, col, k] = _to_uint8(box_colors[item, k] * shade)
    return rgb, depth, semantic


# -- lidar -----------------------------------------------------------------------------------------


@numba.njit(cache=True, parallel=True)
def cast_lidar_kernel(
    origin: FloatArray,
    rotation: FloatArray,
    elevations: FloatArray,
    azimuths: FloatArray,
    range_min: float,
    range_max: float,
    range_noise: FloatArray,
    keep: npt.NDArray[np.bool_],
    ground_classes: UInt8Array,
    gx0: float,
    gy0: float,
    ground_res: float,
    ground_default: int,
    params: FloatArray,
    box_classes: UInt8Array,
    cell_start: IntArray,
    cell_items: IntArray,
    outside: IntArray,
    bx0: float,
    by0: float,
    cell: float,
    n_cols: int,
    n_rows: int,
    z_top: float,
    reflectivity: FloatArray,
    attenuation: float,
) -> tuple[npt.NDArray[np.float32], UInt8Array, npt.NDArray[np.bool_]]:
    """Cast one lidar sweep: ``points (R, 4)`` float32 (x, y, z [m] in the sensor frame,
    intensity), ``semantic (R,)`` uint8 and ``valid (R,)`` bool, ``R = A * C``.

    Ray ``r = a * C + c`` fires at azimuth ``azimuths[a]`` and elevation ``elevations[c]``
    [rad] from the sensor at ``origin (3,)`` with axes ``rotation (3, 3)`` (sensor to world),
    along the unit vector ``(cos el cos az, cos el sin az, sin el)`` of the sensor frame. A ray
    is valid when it hits something at a true range in ``[range_min, range_max]`` and
    ``keep[r]`` (the caller's dropout draw). Its point lies at range ``t + range_noise[r]`` along
    the ray; its intensity is ``reflectivity[class] * |cos(incidence)| * exp(-attenuation * t)``.
    Invalid rays hold zeros.
    """
    n_az = azimuths.shape[0]
    n_ch = elevations.shape[0]
    points = np.zeros((n_az * n_ch, 4), dtype=np.float32)
    semantic = np.zeros(n_az * n_ch, dtype=np.uint8)
    valid = np.zeros(n_az * n_ch, dtype=np.bool_)
    ox = origin[0]
    oy = origin[1]
    oz = origin[2]
    for a in numba.prange(n_az):
        ca = math.cos(azimuths[a])
        sa = math.sin(azimuths[a])
        for c in range(n_ch):
            r = a * n_ch + c
            ce = math.cos(elevations[c])
            ux = ce * ca
            uy = ce * sa
            uz = math.sin(elevations[c])
            dx = rotation[0, 0] * ux + rotation[0, 1] * uy + rotation[0, 2] * uz
            dy = rotation[1, 0] * ux + rotation[1, 1] * uy + rotation[1, 2] * uz
            dz = rotation[2, 0] * ux + rotation[2, 1] * uy + rotation[2, 2] * uz
            t, item, face = trace_ray(
                ox, oy, oz, dx, dy, dz, 0.0, range_max, params, cell_start, cell_items, outside,
                bx0, by0, cell, n_cols, n_rows, z_top,
            )  # fmt: skip
            if item == NO_HIT or t < range_min or not keep[r]:
                continue
            if item == GROUND_HIT:
                cls, _, _ = ground_class(
                    ox + t * dx, oy + t * dy, ground_classes, gx0, gy0, ground_res, ground_default
                )
                cos_inc = abs(dz)
            else:
                cls = box_classes[item]
                cb = params[item, 3]
                sb = params[item, 4]
                if face <= 1:
                    cos_inc = abs(cb * dx + sb * dy)
                elif face <= 3:
                    cos_inc = abs(-sb * dx + cb * dy)
                else:
                    cos_inc = abs(dz)
            rng = t + range_noise[r]
            points[r, 0] = rng * ux
            points[r, 1] = rng * uy
            points[r, 2] = rng * uz
            points[r, 3] = reflectivity[cls] * cos_inc * math.exp(-attenuation * t)
            semantic[r] = cls
            valid[r] = True
    return points, semantic, valid
