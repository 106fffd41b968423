"""Benchmark: ego-centred BEV map rasters per second (Numba kernel vs the oracle vs OpenCV).

Times :func:`kaido.scene.raster.rasterize_bev` on a 200 x 200 px, 0.5 m/px raster (drivable area
plus the line layers) at random poses on a town's lanes, against
:func:`~kaido.scene.raster.rasterize_bev_reference` (the exact shapely oracle) and
:func:`~kaido.scene.raster.rasterize_bev_cv2` (conventional OpenCV drawing). The one-off JIT
compile (and the first call, which may load it from Numba's cache) is timed separately. Prints
a table and writes ``raster.json``.

Usage: ``python -m benchmarks.bench_raster [--out DIR] [--repeats N] [--poses N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.provenance import provenance
from kaido.scene import raster_kernels
from kaido.scene.raster import (
    MapGeometryIndex,
    RasterSpec,
    rasterize_bev,
    rasterize_bev_cv2,
    rasterize_bev_reference,
)
from kaido.scene.road_map import RoadMap

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MAP = ROOT.parent / "shared" / "data" / "maps" / "Town06.xodr"
LINE_LAYERS = ("lane_dividers", "centerlines", "road_edges")

FloatArray = npt.NDArray[np.float64]


# -- geometry (kept apart from the timing code) ----------------------------------------------------


def town_geometry(xodr: Path) -> tuple[FloatArray, dict[str, FloatArray], FloatArray]:
    """Lane quads, line-segment layers and lane-centre poses of an OpenDRIVE town.

    Exactly what :meth:`kaido.scene.road_map.RoadMap.rasterize` draws: ``quads (Q, 4, 2)`` [m]
    from :meth:`RoadMap.lane_quads`, the ``(S, 2, 2)`` [m] layers ``lane_dividers``,
    ``centerlines`` and ``road_edges`` from :meth:`RoadMap.segment_layers`, and the driving
    lanes' centreline samples as poses ``(N, 3)`` [x, y, yaw], kaido's frame.
    """
    road_map = RoadMap.from_file(xodr)
    poses = np.concatenate(
        [
            np.column_stack([lane.centerline[:, :2], lane.headings])
            for lane in road_map.driving_lanes
        ]
    )
    return road_map.lane_quads(), road_map.segment_layers(), poses


def sample_poses(lane_poses: FloatArray, n: int, seed: int = 0) -> FloatArray:
    """``(n, 3)`` poses on the road: random lane-centre samples jittered by <= 1 m and 0.3 rad."""
    rng = np.random.default_rng(seed)
    picks = lane_poses[rng.integers(0, len(lane_poses), n)]
    jitter = rng.uniform(-1.0, 1.0, (n, 3)) * np.array([1.0, 1.0, 0.3])
    return picks + jitter


# -- timing ----------------------------------------------------------------------------------------


def _time_calls(fn: Callable[[FloatArray], Any], poses: FloatArray, repeats: int) -> FloatArray:
    """Wall time [ms] of each call ``fn(pose)`` over ``repeats`` passes through ``poses``."""
    times = []
    for _ in range(repeats):
        for pose in poses:
            t0 = time.perf_counter()
            fn(pose)
            times.append((time.perf_counter() - t0) * 1e3)
    return np.array(times)


def _summary(times_ms: FloatArray) -> dict[str, float]:
    median = float(np.median(times_ms))
    return {
        "median_ms": median,
        "p90_ms": float(np.percentile(times_ms, 90)),
        "mean_ms": float(np.mean(times_ms)),
        "rasters_per_s": 1e3 / median,
        "calls": len(times_ms),
    }


def _fresh_compile_s() -> float:
    """Seconds to JIT-compile the per-tick kernels from scratch (no on-disk cache), for the
    signatures they have been called with."""
    import numba

    t0 = time.perf_counter()
    for kernel in (
        raster_kernels.cull_items,
        raster_kernels.raster_quads,
        raster_kernels.raster_segments,
    ):
        fresh = numba.njit(kernel.py_func)
        for signature in kernel.signatures:
            fresh.compile(signature)
    return time.perf_counter() - t0


def _machine() -> dict[str, Any]:
    import numba

    return {
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
    }


def run(
    out_dir: Path | None = None,
    repeats: int = 3,
    *,
    quads: FloatArray | None = None,
    segment_layers: Mapping[str, FloatArray] | None = None,
    poses: FloatArray | None = None,
    n_poses: int = 200,
    reference_poses: int | None = None,
    spec: RasterSpec | None = None,
    xodr: Path = DEFAULT_MAP,
    seed: int = 0,
    time_compile: bool = True,
) -> dict[str, Any]:
    """Time the raster kernel, the oracle and OpenCV; print a table; write ``raster.json``.

    Geometry comes from ``quads``/``segment_layers`` when given, otherwise from
    :func:`town_geometry` on ``xodr``; ``poses`` ``(N, 3)`` default to ``n_poses`` random poses
    on its lanes (when the geometry is given without poses, on its quads' centres). The kernel
    runs ``repeats`` passes over all poses; the two slower baselines one pass over the first
    ``reference_poses`` poses (default: all of them). ``time_compile`` recompiles the kernels
    from scratch once to report ``compile_s`` (None when off).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    spec = spec or RasterSpec(height=200, width=200, resolution=0.5)
    t0 = time.perf_counter()
    if quads is None or segment_layers is None:
        if not xodr.is_file():
            raise FileNotFoundError(f"OpenDRIVE map {xodr} not found (pass xodr= or quads=)")
        quads, segment_layers, lane_poses = town_geometry(xodr)
        source = str(xodr)
    else:
        quads = np.asarray(quads, dtype=np.float64)
        centres = quads.mean(axis=1)
        heading = quads[:, 1] - quads[:, 0]
        lane_poses = np.column_stack([centres, np.arctan2(heading[:, 1], heading[:, 0])])
        source = "given"
    geometry_s = time.perf_counter() - t0
    if poses is None:
        poses = sample_poses(lane_poses, n_poses, seed)
    poses = np.asarray(poses, dtype=np.float64)
    n_ref = len(poses) if reference_poses is None else min(reference_poses, len(poses))

    t0 = time.perf_counter()
    index = MapGeometryIndex(quads, segment_layers)
    index_s = time.perf_counter() - t0
    layers = index.layer_names

    t0 = time.perf_counter()
    rasterize_bev(index, poses[0], spec, layers)
    first_call_s = time.perf_counter() - t0

    def kernel(pose: FloatArray) -> Any:
        return rasterize_bev(index, pose, spec, layers)

    def reference(pose: FloatArray) -> Any:
        return rasterize_bev_reference(quads, segment_layers, pose, spec, layers)

    def opencv(pose: FloatArray) -> Any:
        return rasterize_bev_cv2(quads, segment_layers, pose, spec, layers)

    for pose in poses[:5]:  # warm caches
        kernel(pose)
    compile_s = _fresh_compile_s() if time_compile else None
    results = {
        "kernel": _summary(_time_calls(kernel, poses, repeats)),
        "reference": _summary(_time_calls(reference, poses[:n_ref], 1)),
        "cv2": _summary(_time_calls(opencv, poses[:n_ref], 1)),
    }
    drivable = np.mean([kernel(p)[0].mean() for p in poses])
    report: dict[str, Any] = {
        "benchmark": "raster",
        **results,
        "ratio_vs_reference": results["reference"]["median_ms"] / results["kernel"]["median_ms"],
        "ratio_vs_cv2": results["cv2"]["median_ms"] / results["kernel"]["median_ms"],
        "first_call_s": first_call_s,
        "compile_s": compile_s,
        "index_build_s": index_s,
        "geometry_build_s": geometry_s,
        "machine": _machine(),
        "provenance": provenance(),
        "params": {
            "height": spec.height,
            "width": spec.width,
            "resolution_m_per_px": spec.resolution,
            "line_width_px": spec.line_width_px,
            "layers": list(layers),
            "poses": len(poses),
            "repeats": repeats,
            "reference_poses": n_ref,
            "seed": seed,
            "geometry": source,
            "quads": len(quads),
            "segments": {name: len(s) for name, s in segment_layers.items()},
            "cell_size_m": index.cell_size,
            "mean_drivable_fraction": float(drivable),
        },
    }
    _print_table(report)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "raster.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _print_table(report: Mapping[str, Any]) -> None:
    print(f"{'name':<10} {'median_ms':>10} {'p90_ms':>10} {'rasters_per_s':>14}")
    for name in ("kernel", "reference", "cv2"):
        row = report[name]
        print(
            f"{name:<10} {row['median_ms']:>10.3f} {row['p90_ms']:>10.3f} "
            f"{row['rasters_per_s']:>14.1f}"
        )
    print(
        f"speed-up vs reference {report['ratio_vs_reference']:.1f}x, vs cv2 "
        f"{report['ratio_vs_cv2']:.1f}x; JIT compile "
        + ("-" if report["compile_s"] is None else f"{report['compile_s']:.2f} s")
        + f", first call (compile or cache load) {report['first_call_s']:.2f} s, index build "
        f"{report['index_build_s'] * 1e3:.1f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for raster.json")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the poses")
    parser.add_argument("--poses", type=int, default=200, help="random poses on the lanes")
    parser.add_argument(
        "--reference-poses", type=int, default=None, help="poses for the baselines (default all)"
    )
    parser.add_argument("--map", type=Path, default=DEFAULT_MAP, help="OpenDRIVE town")
    args = parser.parse_args(argv)
    run(
        args.out,
        args.repeats,
        n_poses=args.poses,
        reference_poses=args.reference_poses,
        xodr=args.map,
    )


if __name__ == "__main__":
    main()
