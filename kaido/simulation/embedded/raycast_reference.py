"""Plain NumPy oracles of the ray-caster kernels in
:mod:`kaido.simulation.embedded.raycast_kernels`.

Same scene, same ray conventions, same shading and intensity formulas, but every ray is tested
against the ground and *every* box (no grid, no early exit), vectorised over rays x boxes in
chunks. Slow; for tests and the benchmark's reference timings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from kaido.scene.geometry import SE3
from kaido.scene.sensors import CameraSpec, LidarSpec
from kaido.simulation.embedded.raycast import (
    SKY_ZENITH,
    SUN_DIRECTION,
    Actors,
    CameraShading,
    LidarNoise,
    draw_lidar_noise,
    light_vector,
    optical_to_world,
    scene_boxes,
)
from kaido.simulation.embedded.raycast_kernels import (
    GROUND_HIT,
    NO_HIT,
    PARALLEL_EPS,
    BoxParam,
    Face,
)
from kaido.simulation.embedded.world import CLASS_COLORS, GROUND_TEXTURE, RenderWorld

__all__ = [
    "cell_noise_reference",
    "render_camera_reference",
    "render_lidar_reference",
    "trace_rays_reference",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UInt8Array = npt.NDArray[np.uint8]


def _slab(
    o: FloatArray, d: FloatArray, h: FloatArray
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Entry, exit ``(R, B)`` and "not parallel-and-outside" of one axis's slab."""
    parallel = np.abs(d) <= PARALLEL_EPS
    safe = np.where(parallel, 1.0, d)
    t1 = (-h - o) / safe
    t2 = (h - o) / safe
    lo = np.where(parallel, -np.inf, np.minimum(t1, t2))
    hi = np.where(parallel, np.inf, np.maximum(t1, t2))
    ok = ~parallel | (np.abs(o) <= h)
    return lo, hi, ok


def _trace_chunk(
    origin: FloatArray, d: FloatArray, t_near: float, t_far: float, params: FloatArray
) -> tuple[FloatArray, IntArray, IntArray]:
    n = d.shape[0]
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    t_best = np.full(n, t_far)
    item = np.full(n, NO_HIT, dtype=np.int64)
    face = np.full(n, -1, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = np.where(dz < 0.0, -origin[2] / np.where(dz < 0.0, dz, -1.0), np.inf)
    ground = (dz < 0.0) & (tg > t_near) & (tg < t_best)
    t_best = np.where(ground, tg, t_best)
    item[ground] = GROUND_HIT
    face[ground] = Face.TOP
    if params.shape[0] == 0:
        return t_best, item, face
    c = params[None, :, BoxParam.COS]
    s = params[None, :, BoxParam.SIN]
    rx = origin[0] - params[None, :, BoxParam.CX]
    ry = origin[1] - params[None, :, BoxParam.CY]
    lx = c * rx + s * ry
    ly = -s * rx + c * ry
    lz = origin[2] - params[None, :, BoxParam.CZ]
    ldx = c * dx[:, None] + s * dy[:, None]
    ldy = -s * dx[:, None] + c * dy[:, None]
    ldz = np.broadcast_to(dz[:, None], ldx.shape)
    lo_x, hi_x, ok_x = _slab(lx, ldx, params[None, :, BoxParam.HALF_LENGTH])
    lo_y, hi_y, ok_y = _slab(ly, ldy, params[None, :, BoxParam.HALF_WIDTH])
    lo_z, hi_z, ok_z = _slab(lz, ldz, params[None, :, BoxParam.HALF_HEIGHT])
    t_in = lo_x
    box_face = np.where(ldx < 0.0, Face.FRONT, Face.BACK)
    take_y = lo_y > t_in
    t_in = np.where(take_y, lo_y, t_in)
    box_face = np.where(take_y, np.where(ldy < 0.0, Face.LEFT, Face.RIGHT), box_face)
    take_z = lo_z > t_in
    t_in = np.where(take_z, lo_z, t_in)
    box_face = np.where(take_z, np.where(ldz < 0.0, Face.TOP, Face.BOTTOM), box_face)
    t_out = np.minimum(np.minimum(hi_x, hi_y), hi_z)
    hit = ok_x & ok_y & ok_z & (t_in <= t_out) & (t_in > t_near)
    t_box = np.where(hit, t_in, np.inf)
    nearest = np.argmin(t_box, axis=1)
    rows = np.arange(n)
    t_min = t_box[rows, nearest]
    better = t_min < t_best
    t_best = np.where(better, t_min, t_best)
    item[better] = nearest[better]
    face[better] = box_face[rows, nearest][better]
    return t_best, item, face


def trace_rays_reference(
    origin: npt.ArrayLike,
    directions: npt.ArrayLike,
    t_near: float,
    t_far: float,
    params: FloatArray,
    chunk: int = 2048,
) -> tuple[FloatArray, IntArray, IntArray]:
    """The nearest hits ``(t (R,), item (R,), face (R,))`` of rays from ``origin (3,)`` along
    ``directions (R, 3)``, by testing the ground and every box ``params (B, 8)``; conventions of
    :func:`kaido.simulation.embedded.raycast_kernels.trace_ray`."""
    o = np.asarray(origin, dtype=np.float64)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    parts = [
        _trace_chunk(o, d[i : i + chunk], t_near, t_far, params)
        for i in range(0, d.shape[0], chunk)
    ]
    if not parts:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def cell_noise_reference(col: IntArray, row: IntArray) -> FloatArray:
    """NumPy form of :func:`raycast_kernels.cell_noise`."""
    h = ((col * 73856093) ^ (row * 19349663)) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    return np.asarray(((h >> 8) & 255) / 127.5 - 1.0, dtype=np.float64)


def _ground_lookup(
    world: RenderWorld, x: FloatArray, y: FloatArray
) -> tuple[IntArray, IntArray, IntArray]:
    col = np.floor((x - world.ground_origin[0]) / world.ground_resolution).astype(np.int64)
    row = np.floor((y - world.ground_origin[1]) / world.ground_resolution).astype(np.int64)
    h, w = world.ground_classes.shape
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    cls = np.full(x.shape, int(world.ground_default), dtype=np.int64)
    cls[inside] = world.ground_classes[row[inside], col[inside]]
    return cls, col, row


def _to_uint8(value: FloatArray) -> UInt8Array:
    return np.clip(np.floor(value + 0.5), 0.0, 255.0).astype(np.uint8)


def render_camera_reference(
    world: RenderWorld,
    actors: Actors,
    camera: CameraSpec,
    camera_to_world: SE3,
    light_dir: Sequence[float] = SUN_DIRECTION,
    shading: CameraShading | None = None,
) -> tuple[UInt8Array, npt.NDArray[np.float32], UInt8Array]:
    """The oracle of :func:`kaido.simulation.embedded.raycast.render_camera` (same outputs)."""
    shading = CameraShading() if shading is None else shading
    pose = optical_to_world(camera, camera_to_world)
    light = light_vector(light_dir)
    scene = scene_boxes(world, actors)
    rot = pose.rotation
    v, u = np.meshgrid(
        np.arange(camera.height, dtype=np.float64) + 0.5,
        np.arange(camera.width, dtype=np.float64) + 0.5,
        indexing="ij",
    )
    xn = ((u - camera.cx) / camera.fx).ravel()
    yn = ((v - camera.cy) / camera.fy).ravel()
    d = np.stack([rot[k, 0] * xn + rot[k, 1] * yn + rot[k, 2] for k in range(3)], axis=1)
    t, item, face = trace_rays_reference(
        pose.translation, d, shading.near, shading.far, scene.params
    )
    n = t.shape[0]
    rgb = np.zeros((n, 3), dtype=np.float64)
    semantic = np.zeros(n, dtype=np.uint8)
    depth = np.where(item == NO_HIT, np.inf, t).astype(np.float32)

    sky = item == NO_HIT
    w = np.maximum(0.0, d[sky, 2] / np.sqrt(d[sky, 0] ** 2 + d[sky, 1] ** 2 + d[sky, 2] ** 2))
    zenith = np.array(SKY_ZENITH, dtype=np.float64)
    horizon = CLASS_COLORS[0].astype(np.float64)
    rgb[sky] = (1.0 - w)[:, None] * horizon + w[:, None] * zenith

    ground = item == GROUND_HIT
    o = pose.translation
    cls, col, row = _ground_lookup(
        world, o[0] + t[ground] * d[ground, 0], o[1] + t[ground] * d[ground, 1]
    )
    semantic[ground] = cls
    ground_shade = shading.ambient + (1.0 - shading.ambient) * max(0.0, float(light[2]))
    factor = ground_shade * (1.0 + GROUND_TEXTURE[cls] * cell_noise_reference(col, row))
    rgb[ground] = CLASS_COLORS[cls].astype(np.float64) * factor[:, None]

    boxes = item >= 0
    ids = item[boxes]
    f = face[boxes]
    semantic[boxes] = scene.classes[ids]
    c = scene.params[ids, BoxParam.COS]
    s = scene.params[ids, BoxParam.SIN]
    sign = np.where(f % 2 == 0, 1.0, -1.0)
    ndotl = np.where(
        f <= Face.BACK,
        sign * (c * light[0] + s * light[1]),
        np.where(f <= Face.RIGHT, sign * (-s * light[0] + c * light[1]), sign * light[2]),
    )
    shade = shading.ambient + (1.0 - shading.ambient) * np.maximum(0.0, ndotl)
    rgb[boxes] = scene.colors[ids].astype(np.float64) * shade[:, None]
    shape = camera.image_shape
    return (
        _to_uint8(rgb).reshape(*shape, 3),
        depth.reshape(shape),
        semantic.reshape(shape),
    )


def render_lidar_reference(
    world: RenderWorld,
    actors: Actors,
    lidar: LidarSpec,
    sensor_to_world: SE3,
    rng: np.random.Generator,
    noise: LidarNoise | None = None,
) -> tuple[npt.NDArray[np.float32], UInt8Array]:
    """The oracle of :func:`kaido.simulation.embedded.raycast.render_lidar` (same outputs; the
    same generator state gives the same noise)."""
    noise = LidarNoise() if noise is None else noise
    scene = scene_boxes(world, actors)
    range_noise, keep = draw_lidar_noise(rng, lidar.points_per_sweep, noise)
    az = lidar.azimuth_angles()
    el = lidar.elevation_angles()
    ca = np.repeat(np.cos(az), el.shape[0])
    sa = np.repeat(np.sin(az), el.shape[0])
    ce = np.tile(np.cos(el), az.shape[0])
    se = np.tile(np.sin(el), az.shape[0])
    unit = np.stack([ce * ca, ce * sa, se], axis=1)  # (R, 3), ray r = a * C + c
    rot = sensor_to_world.rotation
    d = np.stack(
        [
            rot[k, 0] * unit[:, 0] + rot[k, 1] * unit[:, 1] + rot[k, 2] * unit[:, 2]
            for k in range(3)
        ],
        axis=1,
    )
    o = sensor_to_world.translation
    t, item, face = trace_rays_reference(o, d, 0.0, lidar.range_max, scene.params)
    valid = (item != NO_HIT) & (t >= lidar.range_min) & keep
    cls = np.zeros(t.shape[0], dtype=np.int64)
    cos_inc = np.abs(d[:, 2])
    ground = valid & (item == GROUND_HIT)
    cls[ground] = _ground_lookup(world, o[0] + t[ground] * d[ground, 0],
                                 o[1] + t[ground] * d[ground, 1])[0]  # fmt: skip
    boxes = valid & (item >= 0)
    ids = item[boxes]
    cls[boxes] = scene.classes[ids]
    cb = scene.params[ids, BoxParam.COS]
    sb = scene.params[ids, BoxParam.SIN]
    f = face[boxes]
    cos_inc[boxes] = np.where(
        f <= Face.BACK,
        np.abs(cb * d[boxes, 0] + sb * d[boxes, 1]),
        np.where(f <= Face.RIGHT, np.abs(-sb * d[boxes, 0] + cb * d[boxes, 1]), cos_inc[boxes]),
    )
    refl = np.array(noise.reflectivity, dtype=np.float64)
    rng_m = t + range_noise
    points = np.zeros((t.shape[0], 4), dtype=np.float32)
    points[:, :3] = rng_m[:, None] * unit
    points[:, 3] = refl[cls] * cos_inc * np.exp(-noise.attenuation * t)
    return np.ascontiguousarray(points[valid]), cls[valid].astype(np.uint8)
