"""Benchmark: one full planning cycle (candidates + scoring) with the Numba kernels vs NumPy.

Scene: a straight three-lane road, the ego at 10 m/s in the middle lane, 64 agents (on the
ego's road and on cross streets) with 6 predicted modes each, 2048 candidates × 81 points
(8 s at 10 Hz). The kernel cycle is ``generate_candidates`` + ``score_candidates``; the
reference cycle is the same pipeline with the project's own NumPy references in place of
every Numba kernel (``generate_candidates_reference``; ``score_candidates`` with
``costs.REFERENCE_KERNELS``: the per-candidate terms, interaction (collision and TTC),
mode-state and footprint references). Also reported: the median of each stage (candidate
generation and its rollout; scoring and its per-candidate terms, interactions and the rest),
timed in separate instrumented cycles, and the first-call compile time, with the on-disk Numba
cache (this process) and without it (a fresh process with an empty ``NUMBA_CACHE_DIR``).
Prints a table and writes ``planner.json``.

Usage: ``kaido bench planner [--out DIR]`` or ``python -m benchmarks.bench_planner``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np

from kaido.planning import candidates, costs
from kaido.planning.candidates import (
    CandidateConfig,
    generate_candidates,
    generate_candidates_reference,
)
from kaido.planning.costs import CostConfig, score_candidates
from kaido.planning.types import PlannerConfig, PlannerInput, ReferencePath
from kaido.provenance import provenance
from kaido.scene.agents import EgoState
from kaido.scene.forecast import ModeIndex, PredictedAgents
from kaido.scene.geometry import SE2
from kaido.scene.vehicle import VehicleProfile

CANDIDATES = 2048
AGENTS = 64
MODES = 6


def scene(seed: int = 0) -> tuple[PlannerInput, CandidateConfig]:
    """The benchmark's planner input and a candidate config that yields exactly 2048."""
    planner = PlannerConfig()
    rng = np.random.default_rng(seed)
    s = np.arange(0.0, 250.0, 1.0)
    path = np.stack([s - 20.0, np.zeros_like(s), np.zeros_like(s)], axis=1)
    reference = ReferencePath(
        path=path,
        s=s,
        speed_limits=np.full_like(s, 13.9),
        left_offsets=np.full_like(s, 3.5),
        right_offsets=np.full_like(s, -3.5),
    )
    times = planner.times
    modes = np.zeros((AGENTS, MODES, len(times), len(ModeIndex)))
    for a in range(AGENTS):
        on_road = a < AGENTS // 2
        if on_road:
            x0, y0 = rng.uniform(-10.0, 120.0), rng.choice([-3.5, 0.0, 3.5])
            yaw0, v = 0.0, rng.uniform(0.0, 12.0)
        else:
            x0, y0 = rng.uniform(10.0, 120.0), rng.choice([-40.0, 40.0])
            yaw0, v = (math.pi / 2 if y0 < 0 else -math.pi / 2), rng.uniform(3.0, 10.0)
        for k in range(MODES):
            yaw_rate = (k - MODES // 2) * 0.05
            yaw = yaw0 + yaw_rate * times
            speed = v * (0.7 + 0.1 * k)
            modes[a, k, :, ModeIndex.X] = (
                x0
                + np.cumsum(speed * np.cos(yaw) * planner.dt)
                - (speed * np.cos(yaw[0]) * planner.dt)
            )
            modes[a, k, :, ModeIndex.Y] = (
                y0
                + np.cumsum(speed * np.sin(yaw) * planner.dt)
                - (speed * np.sin(yaw[0]) * planner.dt)
            )
            modes[a, k, :, ModeIndex.YAW] = yaw
            modes[a, k, :, ModeIndex.SPEED] = speed
    agents = PredictedAgents(
        ids=np.arange(AGENTS),
        classes=np.zeros(AGENTS, np.int64),
        sizes=np.tile([4.6, 1.9], (AGENTS, 1)),
        modes=modes,
        probabilities=np.full((AGENTS, MODES), 1.0 / MODES),
    )
    ego = EgoState(timestamp_ns=0, pose=SE2(0.0, 0.0, 0.0), velocity=(10.0, 0.0))
    inp = PlannerInput(timestamp_ns=0, ego=ego, reference=reference, agents=agents)
    config = CandidateConfig(max_candidates=CANDIDATES).dense(num_offsets=24, num_speeds=96)
    return inp, config


@contextlib.contextmanager
def _numpy_scoring() -> Iterator[None]:
    saved = costs.cost_kernels
    costs.cost_kernels = costs.REFERENCE_KERNELS  # type: ignore[assignment]
    try:
        yield
    finally:
        costs.cost_kernels = saved


@contextlib.contextmanager
def _stage_timers(spent: dict[str, list[float]]) -> Iterator[None]:
    """Time the kernels behind the stages (appending [ms] to ``spent[name]``)."""

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*args)
            spent.setdefault(name, []).append(1e3 * (time.perf_counter() - t0))
            return out

        return call

    saved_costs = costs.cost_kernels
    saved_impl = candidates._KERNELS
    costs.cost_kernels = SimpleNamespace(  # type: ignore[assignment]
        candidate_terms_kernel=timed("terms", saved_costs.candidate_terms_kernel),
        interaction_kernel=timed("interactions", saved_costs.interaction_kernel),
        mode_box_states_kernel=saved_costs.mode_box_states_kernel,
        footprint_sample_kernel=saved_costs.footprint_sample_kernel,
    )
    candidates._KERNELS = dataclasses.replace(
        saved_impl, rollout=timed("rollout", saved_impl.rollout)
    )
    try:
        yield
    finally:
        costs.cost_kernels = saved_costs
        candidates._KERNELS = saved_impl


def _time(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(1e3 * (time.perf_counter() - t0))
    return out


def _cold_compile_s() -> float:
    """First-cycle time [s] in a fresh process with an empty Numba cache."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "from benchmarks.bench_planner import scene\n"
        "from kaido.planning.candidates import generate_candidates\n"
        "from kaido.planning.costs import score_candidates\n"
        "from kaido.scene.vehicle import VehicleProfile\n"
        "inp, cfg = scene(); p = VehicleProfile()\n"
        "c, _ = generate_candidates(inp, p, config=cfg); score_candidates(c, inp, p)\n"
        "print(time.perf_counter() - t0)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
            check=True, timeout=600,
        )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def run(
    out_dir: Path | None = None, repeats: int = 20, reference_repeats: int = 1
) -> dict[str, Any]:
    profile = VehicleProfile()
    planner = PlannerConfig()
    cost_config = CostConfig()
    inp, cand_config = scene()

    def kernel_cycle() -> Any:
        trajectories, _ = generate_candidates(inp, profile, planner, cand_config)
        return score_candidates(trajectories, inp, profile, planner, cost_config)

    def reference_cycle() -> Any:
        trajectories, _ = generate_candidates_reference(inp, profile, planner, cand_config)
        with _numpy_scoring():
            return score_candidates(trajectories, inp, profile, planner, cost_config)

    t0 = time.perf_counter()
    scored = kernel_cycle()
    first_call_cached_s = time.perf_counter() - t0
    n = len(scored.scores)
    kernel_ms = _time(kernel_cycle, repeats)
    cand_ms = _time(lambda: generate_candidates(inp, profile, planner, cand_config), repeats)
    trajectories, _ = generate_candidates(inp, profile, planner, cand_config)
    score_ms = _time(
        lambda: score_candidates(trajectories, inp, profile, planner, cost_config), repeats
    )
    spent: dict[str, list[float]] = {}
    with _stage_timers(spent):
        _time(kernel_cycle, repeats)
    stages = {
        "candidates": float(np.median(cand_ms)),
        "rollout": float(np.median(spent["rollout"])),
        "scoring": float(np.median(score_ms)),
        "terms": float(np.median(spent["terms"])),
        "interactions": float(np.median(spent["interactions"])),
    }
    stages["scoring_rest"] = stages["scoring"] - stages["terms"] - stages["interactions"]
    reference_ms: list[float] = []
    reference_scores = np.zeros(n)
    for _ in range(reference_repeats):
        t0 = time.perf_counter()
        reference_scores = reference_cycle().scores
        reference_ms.append(1e3 * (time.perf_counter() - t0))
    agree = float(np.mean(np.isclose(reference_scores, scored.scores, atol=1e-6)))
    cold_s = _cold_compile_s()
    kernel_median = float(np.median(kernel_ms))
    report: dict[str, Any] = {
        "benchmark": "planner",
        "kernel": {
            "median_ms": kernel_median,
            "p90_ms": float(np.percentile(kernel_ms, 90)),
            "candidates_median_ms": stages["candidates"],
            "scoring_median_ms": stages["scoring"],
            "stages_median_ms": stages,
        },
        "reference": {"median_ms": float(np.median(reference_ms))},
        "ratio_vs_reference": float(np.median(reference_ms)) / kernel_median,
        "scores_agreeing_with_reference": agree,
        "first_call_s": {"numba_cache": first_call_cached_s, "empty_cache": cold_s},
        "goals": {"median_ms": 10.0, "ratio_vs_reference": 25.0},
        "params": {
            "candidates": n,
            "agents": AGENTS,
            "modes": MODES,
            "points": planner.num_points,
            "repeats": repeats,
            "numba_threads": numba.get_num_threads(),
            "cpu_count": os.cpu_count(),
        },
        "provenance": provenance(),
    }
    print(f"{'cycle':<10} {'median_ms':>10} {'p90_ms':>9}")
    print(f"{'kernel':<10} {kernel_median:>10.2f} {report['kernel']['p90_ms']:>9.2f}")
    print(f"{'reference':<10} {report['reference']['median_ms']:>10.1f} {'':>9}")
    print(f"{'stage':<14} {'median_ms':>10}")
    for name, value in stages.items():
        print(f"{name:<14} {value:>10.2f}")
    print(
        f"{n} candidates x {AGENTS} agents x {MODES} modes x {planner.num_points} points: "
        f"ratio {report['ratio_vs_reference']:.0f}x; first call {first_call_cached_s:.2f} s "
        f"(cache) / {cold_s:.2f} s (empty cache); scores agree {100 * agree:.1f} %"
    )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "planner.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    run(args.out, args.repeats)


if __name__ == "__main__":
    main()
