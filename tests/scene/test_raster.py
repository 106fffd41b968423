"""Ego-centred BEV rasters: the Numba kernel against the shapely oracle, hand-checked layouts,
the spatial hash's culling, and input checks.

Real data: Town06 (``maps/Town06.xodr``), turned into lane quads and line segments with
``benchmarks.bench_raster.town_geometry`` (the geometry ``RoadMap.rasterize`` draws).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_raster import run as run_benchmark
from benchmarks.bench_raster import sample_poses, town_geometry
from kaido.scene import raster_kernels
from kaido.scene.geometry import SE2
from kaido.scene.raster import (
    DRIVABLE,
    MapGeometryIndex,
    RasterSpec,
    pixel_centres_world,
    quad_triangles,
    raster_footprint,
    rasterize_bev,
    rasterize_bev_cv2,
    rasterize_bev_reference,
    world_to_pixel,
)
from tests.conftest import shared_file

FloatArray = npt.NDArray[np.float64]
MaskArray = npt.NDArray[np.uint8]
KERNEL_3X3 = np.ones((3, 3), np.uint8)


@dataclass(frozen=True)
class Town:
    quads: FloatArray
    layers: dict[str, FloatArray]
    lane_poses: FloatArray
    index: MapGeometryIndex


@pytest.fixture(scope="module")
def town06() -> Town:
    quads, layers, lane_poses = town_geometry(shared_file("maps/Town06.xodr"))
    return Town(quads, layers, lane_poses, MapGeometryIndex(quads, layers))


def dilate(mask: MaskArray) -> MaskArray:
    """``mask`` grown by one pixel in all 8 directions."""
    return np.asarray(cv2.dilate(mask, KERNEL_3X3), dtype=np.uint8)


def neighbourhood_coverage(a: MaskArray, b: MaskArray) -> float:
    """Fraction of ``a``'s set pixels that have a set pixel of ``b`` within 1 px (8-neighbours)."""
    if a.sum() == 0:
        return 1.0
    return float((a & dilate(b)).sum() / a.sum())


def assert_agree(kernel: MaskArray, ref: MaskArray, layers: Sequence[str]) -> None:
    """The agreement the rasters promise: <= 0.5 % of drivable pixels differ; >= 99 % of line
    pixels of either have one of the other within 1 px."""
    assert kernel.shape == ref.shape
    assert kernel.dtype == np.uint8
    assert set(np.unique(kernel)) <= {0, 1}
    for channel, name in enumerate(layers):
        if name == DRIVABLE:
            assert np.mean(kernel[channel] != ref[channel]) <= 0.005, name
        else:
            assert neighbourhood_coverage(ref[channel], kernel[channel]) >= 0.99, name
            assert neighbourhood_coverage(kernel[channel], ref[channel]) >= 0.99, name


def rotation(yaw: float) -> FloatArray:
    return np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])


def to_world(ego_points: npt.ArrayLike, pose: FloatArray) -> FloatArray:
    """Ego-frame points ``(..., 2)`` [m] to the world for an ego at ``pose`` ``[x, y, yaw]``."""
    return np.asarray(ego_points, dtype=np.float64) @ rotation(pose[2]).T + pose[:2]


# -- the kernel against the oracle -----------------------------------------------------------------

TOWN_SPECS = {
    "default": (RasterSpec(), 24),
    "offset_fine_thick": (
        RasterSpec(
            height=120, width=80, resolution=0.25, ego_row=90.0, ego_col=40.0, line_width_px=3
        ),
        20,
    ),
    "coarse_fractional": (
        RasterSpec(
            height=64, width=96, resolution=1.3, ego_row=10.5, ego_col=70.25, line_width_px=2
        ),
        20,
    ),
}


@pytest.mark.parametrize("spec_name", list(TOWN_SPECS))
def test_kernel_matches_oracle_on_town06(town06: Town, spec_name: str) -> None:
    spec, n_poses = TOWN_SPECS[spec_name]
    poses = sample_poses(town06.lane_poses, n_poses, seed=7)
    layers = town06.index.layer_names
    mismatched = 0
    drawn = 0
    for pose in poses:
        kernel = rasterize_bev(town06.index, pose, spec, layers)
        ref = rasterize_bev_reference(town06.quads, town06.layers, pose, spec, layers)
        assert_agree(kernel, ref, layers)
        mismatched += int((kernel != ref).sum())
        drawn += int(ref.sum())
    assert drawn > 0.05 * len(poses) * spec.height * spec.width  # the poses do see roads
    # both implement the same pixel-centre rules: only exact ties could differ
    assert mismatched <= 1e-4 * ref.size * len(poses)


@pytest.mark.parametrize("seed", range(6))
def test_kernel_matches_oracle_on_random_geometry(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    centres = rng.uniform(-40.0, 40.0, (n, 1, 2))
    kinds = rng.integers(0, 4, n)
    # convex quads of either winding: corners at increasing angles, then maybe reversed
    angles = np.sort(rng.uniform(0.0, 2.0 * math.pi, (n, 4)), axis=1)
    radii = rng.uniform(0.3, 6.0, (n, 4))
    quads = centres + radii[..., None] * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    reverse = rng.random(n) < 0.5
    quads[reverse] = quads[reverse][:, ::-1]
    # kind 1: mostly non-convex (pull a corner towards the centre); 2: bow tie (swap two
    # corners); 3: degenerate (a repeated corner or three collinear ones)
    for i in np.flatnonzero(kinds == 1):
        quads[i, 1] = centres[i, 0] + 0.2 * (quads[i, 1] - centres[i, 0])
    for i in np.flatnonzero(kinds == 2):
        quads[i, [1, 2]] = quads[i, [2, 1]]
    for i in np.flatnonzero(kinds == 3):
        if rng.random() < 0.5:
            quads[i, 2] = quads[i, 1]
        else:
            quads[i, 1] = 0.3 * quads[i, 0] + 0.7 * quads[i, 2]
    segments = {
        "lines": centres + rng.uniform(-8.0, 8.0, (n, 2, 2)),
        "dots": np.repeat(rng.uniform(-40.0, 40.0, (10, 1, 2)), 2, axis=1),  # zero length
    }
    index = MapGeometryIndex(quads, segments, cell_size=float(rng.uniform(3.0, 50.0)))
    layers = index.layer_names
    for _ in range(4):
        spec = RasterSpec(
            height=int(rng.integers(20, 90)),
            width=int(rng.integers(20, 90)),
            resolution=float(rng.uniform(0.2, 1.5)),
            ego_row=float(rng.uniform(-10.0, 100.0)),
            ego_col=float(rng.uniform(-10.0, 100.0)),
            line_width_px=int(rng.integers(1, 5)),
        )
        pose = np.array([*rng.uniform(-20.0, 20.0, 2), rng.uniform(-math.pi, math.pi)])
        kernel = rasterize_bev(index, pose, spec, layers)
        ref = rasterize_bev_reference(quads, segments, pose, spec, layers)
        assert_agree(kernel, ref, layers)
        np.testing.assert_array_equal(kernel, ref)


# corners on a 1/8 m grid and an axis-aligned pose: every coverage test is exact or a true tie
_coord = st.integers(-160, 160).map(lambda k: k / 8.0)
_point = st.tuples(_coord, _coord)


@settings(max_examples=150, deadline=None)
@given(
    quads=st.lists(st.tuples(_point, _point, _point, _point), min_size=1, max_size=4),
    segments=st.lists(st.tuples(_point, _point), min_size=0, max_size=4),
    line_width=st.integers(1, 4),
    ego=st.tuples(st.integers(-8, 48), st.integers(-8, 48)),
)
def test_kernel_equals_oracle_on_grid_aligned_geometry(
    quads: list[tuple[tuple[float, float], ...]],
    segments: list[tuple[tuple[float, float], ...]],
    line_width: int,
    ego: tuple[int, int],
) -> None:
    q = np.array(quads, dtype=np.float64).reshape(-1, 4, 2)
    s = {"lines": np.array(segments, dtype=np.float64).reshape(-1, 2, 2)}
    spec = RasterSpec(
        height=40,
        width=48,
        resolution=0.5,
        ego_row=ego[0] / 2,
        ego_col=ego[1] / 2,
        line_width_px=line_width,
    )
    pose = np.array([0.25, -0.5, 0.0])
    kernel = rasterize_bev(MapGeometryIndex(q, s, cell_size=4.0), pose, spec)
    ref = rasterize_bev_reference(q, s, pose, spec)
    np.testing.assert_array_equal(kernel, ref)


def test_opencv_drawing_agrees_within_a_pixel(town06: Town) -> None:
    spec = RasterSpec()
    layers = town06.index.layer_names
    for pose in sample_poses(town06.lane_poses, 8, seed=3):
        kernel = rasterize_bev(town06.index, pose, spec, layers)
        drawn = rasterize_bev_cv2(town06.quads, town06.layers, pose, spec, layers)
        for channel in range(len(layers)):
            assert neighbourhood_coverage(drawn[channel], kernel[channel]) >= 0.99
            assert neighbourhood_coverage(kernel[channel], drawn[channel]) >= 0.99
        # OpenCV's fill rule only adds pixels, and only along the outline (away from the image
        # border, beyond which the outline may lie)
        assert np.all(kernel[0] <= drawn[0])
        assert np.all(drawn[0, 1:-1, 1:-1] <= dilate(kernel[0])[1:-1, 1:-1])


@pytest.mark.parametrize(
    "quad",
    [
        [[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [0.0, 2.0]],  # convex, counter-clockwise
        [[0.0, 2.0], [4.0, 2.0], [4.0, 0.0], [0.0, 0.0]],  # convex, clockwise
        [[0.0, 0.0], [1.0, 1.0], [0.0, 3.0], [-1.0, 1.0]],  # reflex at p0: diagonal 0-2 inside
        [[0.0, 0.0], [2.0, 3.0], [0.0, 1.0], [-2.0, 3.0]],  # reflex at p2: diagonal 0-2 inside
        [[0.0, 1.0], [-2.0, 3.0], [0.0, 0.0], [2.0, 3.0]],  # reflex at p0 (rolled): 1-3 inside
        [[2.0, 3.0], [0.0, 1.0], [-2.0, 3.0], [0.0, 0.0]],  # reflex at p1: diagonal 1-3 inside
    ],
)
def test_quad_triangles_tile_simple_quads(quad: list[list[float]]) -> None:
    q = np.array([quad])
    tris = quad_triangles(q)
    assert tris.shape == (1, 2, 3, 2)
    polygon = shapely.Polygon(q[0])
    pieces = shapely.polygons(tris[0])
    assert shapely.union_all(pieces).symmetric_difference(polygon).area == pytest.approx(0.0)
    assert shapely.area(pieces).sum() == pytest.approx(polygon.area)


def test_quad_triangles_of_a_bow_tie_share_corner_0() -> None:
    bow_tie = np.array([[[0.0, 0.0], [2.0, 2.0], [2.0, 0.0], [0.0, 2.0]]])
    np.testing.assert_array_equal(quad_triangles(bow_tie)[0], bow_tie[0][[[0, 1, 2], [0, 2, 3]]])


# -- hand-checkable layouts ------------------------------------------------------------------------

SQUARE = np.array([[10.0, -5.0], [20.0, -5.0], [20.0, 5.0], [10.0, 5.0]])  # ego x 10..20, y -5..5


def expected(spec: RasterSpec, rows: slice, cols: slice) -> MaskArray:
    mask = np.zeros((spec.height, spec.width), np.uint8)
    mask[rows, cols] = 1
    return mask


@pytest.mark.parametrize("winding", [1, -1])
@pytest.mark.parametrize("start", range(4))
def test_square_in_front_fills_the_expected_block(winding: int, start: int) -> None:
    quad = np.roll(SQUARE[::winding], start, axis=0)
    spec = RasterSpec()  # 200 x 200 px at 0.5 m/px, ego at row 100, col 100
    pose = np.array([3.0, -7.0, 0.8])
    index = MapGeometryIndex(to_world(quad[None], pose), {})
    # rows: centre x = (100 - r - 0.5) * 0.5 in [10, 20] -> r in 60..79; cols: y in [-5, 5] ->
    # c in 90..109
    want = expected(spec, slice(60, 80), slice(90, 110))
    np.testing.assert_array_equal(rasterize_bev(index, pose, spec)[0], want)
    np.testing.assert_array_equal(
        rasterize_bev_reference(to_world(quad[None], pose), {}, pose, spec)[0], want
    )


def test_left_is_left_and_forward_is_up() -> None:
    # ego x in [2, 4] (ahead), y in [6, 10] (left): rows 92..95, cols 80..87
    quad = np.array([[2.0, 6.0], [4.0, 6.0], [4.0, 10.0], [2.0, 10.0]])
    spec = RasterSpec()
    got = rasterize_bev(MapGeometryIndex(quad[None], {}), np.zeros(3), spec)[0]
    np.testing.assert_array_equal(got, expected(spec, slice(92, 96), slice(80, 88)))
    # the same pixels through the public frame helpers
    centre = pixel_centres_world(np.zeros(3), spec)[93, 81]
    np.testing.assert_allclose(centre, [(100 - 93 - 0.5) * 0.5, (100 - 81 - 0.5) * 0.5])
    np.testing.assert_allclose(world_to_pixel(centre, np.zeros(3), spec), [93.0, 81.0])


def test_segment_covers_pixels_within_half_a_line_width() -> None:
    # along ego x from 10.1 m to 19.9 m at y = 0.25 m: column 99 (centre y = 0.25), rows 60..79
    seg = np.array([[[10.1, 0.25], [19.9, 0.25]]])
    pose = np.array([-4.0, 12.0, -2.0])
    index = MapGeometryIndex(np.zeros((0, 4, 2)), {"line": to_world(seg, pose)})
    got = rasterize_bev(index, pose, RasterSpec(), ("line",))[0]
    np.testing.assert_array_equal(got, expected(RasterSpec(), slice(60, 80), slice(99, 100)))
    # width 5: centres within 2.5 px. The body (rows 59.7..79.3) sets columns 97..101; the
    # rounded caps reach 1.7 px beyond the end rows, where they are 2 * 1.83 px wide
    thick = rasterize_bev(index, pose, RasterSpec(line_width_px=5), ("line",))[0]
    want = expected(RasterSpec(), slice(59, 81), slice(97, 102))
    want[[58, 81], 98:101] = 1
    np.testing.assert_array_equal(thick, want)


def test_ego_offsets_shift_the_content() -> None:
    quad = SQUARE[None]
    spec = RasterSpec(ego_row=150, ego_col=60)
    got = rasterize_bev(MapGeometryIndex(quad, {}), np.zeros(3), spec)[0]
    # rows shift by +50 (60..79 -> 110..129); cols: y in [-5, 5] -> c in 50..69
    np.testing.assert_array_equal(got, expected(spec, slice(110, 130), slice(50, 70)))


def test_ego_offsets_shift_town06_by_whole_pixels(town06: Town) -> None:
    base = RasterSpec(height=160, width=160)
    moved = RasterSpec(height=160, width=160, ego_row=80 + 13, ego_col=80 - 21)
    for pose in sample_poses(town06.lane_poses, 5, seed=11):
        a = rasterize_bev(town06.index, pose, base)
        b = rasterize_bev(town06.index, pose, moved)
        # b[r + 13, c - 21] == a[r, c]
        overlap_a = a[:, : 160 - 13, 21:]
        overlap_b = b[:, 13:, : 160 - 21]
        assert np.mean(overlap_a != overlap_b) <= 1e-4


def test_quarter_turn_rotates_the_raster(town06: Town) -> None:
    spec = RasterSpec(height=128, width=128, resolution=0.5)
    for pose in sample_poses(town06.lane_poses, 6, seed=5):
        a = rasterize_bev(town06.index, pose, spec)
        turned = pose + np.array([0.0, 0.0, math.pi / 2])
        b = rasterize_bev(town06.index, turned, spec)
        # turning the ego left moves what was ahead (up) to its right: a clockwise image turn
        assert np.mean(b != np.rot90(a, k=-1, axes=(1, 2))) <= 1e-4
        assert a[0].sum() > 0


def test_pose_far_from_the_map_gives_zeros(town06: Town) -> None:
    far = np.array([1e5, -3e5, 1.0])
    assert not rasterize_bev(town06.index, far).any()
    assert not rasterize_bev_reference(town06.quads, town06.layers, far).any()
    empty = MapGeometryIndex(np.zeros((0, 4, 2)), {"edges": np.zeros((0, 2, 2))})
    out = rasterize_bev(empty, np.zeros(3), RasterSpec(height=30, width=20))
    assert out.shape == (2, 30, 20)
    assert not out.any()


def test_layers_order_duplicates_and_pose_types(town06: Town) -> None:
    pose = sample_poses(town06.lane_poses, 1, seed=2)[0]
    spec = RasterSpec(height=64, width=64)
    full = rasterize_bev(town06.index, pose, spec)
    assert full.shape == (4, 64, 64)
    assert town06.index.layer_names == (DRIVABLE, "lane_dividers", "centerlines", "road_edges")
    picked = rasterize_bev(town06.index, pose, spec, ("road_edges", DRIVABLE, "road_edges"))
    np.testing.assert_array_equal(picked, full[[3, 0, 3]])
    np.testing.assert_array_equal(rasterize_bev(town06.index, SE2(*pose.tolist()), spec), full)
    np.testing.assert_array_equal(rasterize_bev(town06.index, list(pose), spec), full)


# -- culling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell_size", [8.0, 32.0, 150.0])
def test_culling_returns_a_superset_of_the_intersecting_items(
    town06: Town, cell_size: float
) -> None:
    index = MapGeometryIndex(town06.quads, town06.layers, cell_size=cell_size)
    polygons = shapely.polygons(town06.quads)
    lines = {name: shapely.linestrings(seg) for name, seg in town06.layers.items()}
    spec = RasterSpec(height=240, width=120, resolution=0.4, ego_row=200.0)
    for pose in sample_poses(town06.lane_poses, 10, seed=int(cell_size)):
        footprint = raster_footprint(pose, spec)
        area = shapely.Polygon(footprint)
        ids = index.query(DRIVABLE, footprint)
        truth = np.flatnonzero(shapely.intersects(polygons, area))
        assert len(truth) > 0
        assert set(truth.tolist()) <= set(ids.tolist())
        assert len(np.unique(ids)) == len(ids)
        assert len(ids) < 0.2 * len(town06.quads)  # it does cull
        for name, geoms in lines.items():
            ids = index.query(name, footprint)
            truth = np.flatnonzero(shapely.intersects(geoms, area))
            assert set(truth.tolist()) <= set(ids.tolist()), name


def test_culled_drawing_equals_drawing_everything(town06: Town) -> None:
    spec = RasterSpec()
    all_ids = np.arange(len(town06.quads), dtype=np.int64)
    args = (spec.height, spec.width, spec.resolution, spec.origin_row, spec.origin_col)
    for pose in sample_poses(town06.lane_poses, 5, seed=13):
        culled = rasterize_bev(town06.index, pose, spec, (DRIVABLE,))[0]
        everything = raster_kernels.raster_quads(town06.index.quads, all_ids, pose, *args)
        np.testing.assert_array_equal(culled, everything)


def test_footprint_corners_bound_the_pixel_centres() -> None:
    spec = RasterSpec(height=30, width=50, resolution=0.7, ego_row=4.5, ego_col=33.0)
    pose = np.array([12.0, -3.0, 2.2])
    area = shapely.Polygon(raster_footprint(pose, spec))
    centres = pixel_centres_world(pose, spec).reshape(-1, 2)
    assert shapely.contains_xy(area, centres[:, 0], centres[:, 1]).all()
    assert area.area == pytest.approx(30 * 50 * 0.7**2)


# -- bad input -------------------------------------------------------------------------------------

GOOD_QUADS = SQUARE[None]


@pytest.mark.parametrize(
    "quads",
    [
        np.zeros((3, 3, 2)),
        np.zeros((3, 4)),
        np.zeros((4, 2)),
        np.zeros((2, 4, 3)),
        np.zeros((2, 4, 2), dtype=bool),
        np.zeros((2, 4, 2), dtype=complex),
        np.full((2, 4, 2), "a"),
        np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, np.nan], [0.0, 1.0]]]),
        np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, np.inf], [0.0, 1.0]]]),
    ],
)
def test_bad_quads_raise_naming_quads(quads: npt.NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="quads"):
        MapGeometryIndex(quads, {})
    with pytest.raises(ValueError, match="quads"):
        rasterize_bev_reference(quads, {}, np.zeros(3))


def test_bad_segment_layers_raise_naming_them() -> None:
    with pytest.raises(ValueError, match=r"segment_layers\['edges'\]"):
        MapGeometryIndex(GOOD_QUADS, {"edges": np.zeros((3, 3, 2))})
    with pytest.raises(ValueError, match=r"segment_layers\['edges'\].*non-finite"):
        MapGeometryIndex(GOOD_QUADS, {"edges": np.array([[[0.0, np.nan], [1.0, 1.0]]])})
    with pytest.raises(ValueError, match="reserved"):
        MapGeometryIndex(GOOD_QUADS, {DRIVABLE: np.zeros((1, 2, 2))})
    with pytest.raises(ValueError, match="segment_layers"):
        MapGeometryIndex(GOOD_QUADS, [np.zeros((1, 2, 2))])  # type: ignore[arg-type]


@pytest.mark.parametrize("resolution", [0.0, -0.5, math.nan, math.inf])
def test_non_positive_resolution_raises(resolution: float) -> None:
    with pytest.raises(ValueError, match="resolution"):
        RasterSpec(resolution=resolution)


@pytest.mark.parametrize(
    ("field", "value"),
    [("height", 0), ("width", -3), ("height", 2.5), ("line_width_px", 0), ("ego_row", math.nan)],
)
def test_bad_spec_fields_raise_naming_them(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        RasterSpec(**{field: value})  # type: ignore[arg-type]


def test_bad_calls_raise() -> None:
    index = MapGeometryIndex(GOOD_QUADS, {"edges": np.zeros((0, 2, 2))})
    with pytest.raises(ValueError, match="unknown raster layer 'lanes'"):
        rasterize_bev(index, np.zeros(3), RasterSpec(), ("lanes",))
    with pytest.raises(ValueError, match="sequence of layer names"):
        rasterize_bev(index, np.zeros(3), RasterSpec(), DRIVABLE)
    with pytest.raises(ValueError, match="pose"):
        rasterize_bev(index, np.zeros(2))
    with pytest.raises(ValueError, match="pose"):
        rasterize_bev(index, np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="spec"):
        rasterize_bev(index, np.zeros(3), spec=(200, 200))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cell_size"):
        MapGeometryIndex(GOOD_QUADS, {}, cell_size=0.0)
    with pytest.raises(ValueError, match="cell_size"):
        MapGeometryIndex(np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1e6, 1e6]]]), {}, 1.0)


# -- the benchmark's contract ----------------------------------------------------------------------


def test_benchmark_writes_its_report(town06: Town, tmp_path: Path) -> None:
    report = run_benchmark(
        tmp_path,
        repeats=1,
        quads=town06.quads,
        segment_layers=town06.layers,
        n_poses=4,
        reference_poses=2,
        spec=RasterSpec(height=48, width=48),
        time_compile=False,
    )
    saved = json.loads((tmp_path / "raster.json").read_text())
    assert saved["benchmark"] == "raster"
    for name in ("kernel", "reference", "cv2"):
        assert saved[name]["median_ms"] > 0.0
        assert saved[name]["p90_ms"] >= saved[name]["median_ms"]
        assert saved[name]["rasters_per_s"] == pytest.approx(1e3 / saved[name]["median_ms"])
    assert saved["ratio_vs_reference"] == pytest.approx(
        saved["reference"]["median_ms"] / saved["kernel"]["median_ms"]
    )
    assert saved["params"]["layers"] == list(town06.index.layer_names)
    assert saved["params"]["poses"] == 4
    assert report["kernel"] == saved["kernel"]
