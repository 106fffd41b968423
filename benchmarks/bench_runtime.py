"""Benchmark: the fixed-rate runtime's per-stage latency and deadline misses over a 60 s drive,
and the exported model's latency against the eager model in the same run.

Drive: the ``runtime`` agent with the learned core (the shipped tiny checkpoint, eager) on the
embedded simulator with the default rig (one 640×360 camera, one 32×1024 lidar) and moderate
traffic, control at 50 Hz (``dt`` 0.02 s), planning at 10 Hz, the stages timed on the wall
clock (``time.perf_counter_ns``) against the deadlines of ``configs/runtime/default.yaml``.
Deadlines are counted, not enforced (``enforce_deadlines = False``): a miss would otherwise
discard the plan and the car would stop, ending the measurement. Reported per stage (inputs,
perception, prediction, world_model, planning, control) and for the whole cycle: p50, p99, max
[ms] and deadline misses; the time spent in each runtime mode.

Exported vs eager: every 10th planning cycle's model batch is kept; after the drive, the model
part of a cycle (frame program + imagination of 1 and 4 action sequences) runs on each kept
batch with the eager model and with the ``kaido export`` of the same checkpoint (made in a
temporary folder); p50/p99 of both and ``ratio_vs_reference`` = eager p50 / exported p50.

Prints a table and writes ``runtime.json``. Usage: ``kaido bench runtime [--out DIR]
[--seconds S]`` or ``python -m benchmarks.bench_runtime``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kaido.provenance import REPO_ROOT, provenance
from kaido.scene.sensors import load_sensor_rig
from kaido.scene.town_generator import TownSpec, write_town
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.backend import Scenario
from kaido.simulation.drive import DEFAULT_RIG
from kaido.simulation.embedded.backend import EmbeddedBackend, EmbeddedConfig
from kaido.simulation.runner import EpisodeOptions, run_episode
from kaido.simulation.runtime_agent import RuntimeAgent
from kaido.stack.export import export_checkpoint
from kaido.stack.learned import LearnedStack
from kaido.stack.runtime import STAGES, latency_summary, load_runtime_config

CHECKPOINT = REPO_ROOT / "checkpoints" / "tiny.ckpt"
KEEP_EVERY = 10


def _percentiles(values: list[float]) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) == 0:
        return {"p50_ms": None, "p99_ms": None, "count": 0}
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "count": int(len(arr)),
    }


def _model_latency(
    stack: LearnedStack, model: Any, batches: list[dict[str, torch.Tensor]]
) -> list[float]:
    """[ms] the model part of one cycle on each batch: frame + imagination (K = 1 and 4)."""
    out = []
    steps = stack.imagined_steps
    rng = torch.Generator().manual_seed(0)
    actions = [torch.randn(k, steps, 2, generator=rng) * 0.5 for k in (1, 4)]
    exported = not hasattr(model, "encode")
    memory = None
    for batch in batches:
        start = time.perf_counter()
        with torch.no_grad():
            if exported:
                outputs, state = model.run(batch, memory)
                for a in actions:
                    model.imagine(state, a)
            else:
                fused, state = model.encode(batch, memory)
                outputs = model._heads(batch, fused, state, segmentation=False)
                for a in actions:
                    model.world_model.imagine(state, a)
        out.append(1e3 * (time.perf_counter() - start))
        memory = outputs["memory"]
    return out


def run(out_dir: Path | None = None, seconds: float = 60.0, threads: int = 1) -> dict[str, Any]:
    torch.set_num_threads(threads)
    rig_path = DEFAULT_RIG
    rig = load_sensor_rig(rig_path)
    profile = VehicleProfile()
    config = dataclasses.replace(load_runtime_config(), enforce_deadlines=False)
    kept: list[dict[str, torch.Tensor]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        town = folder / "town.xodr"
        write_town(TownSpec(rows=3, cols=4, seed=0, name="town"), town)
        agent = RuntimeAgent(core="learned", checkpoint=CHECKPOINT, rig=rig_path, config=config,
                             clock="wall")  # fmt: skip
        backend = EmbeddedBackend(EmbeddedConfig(rig=rig, vehicle=profile))
        scenario = Scenario(
            name="bench-runtime", map_path=town, traffic_density=15.0, pedestrians=5.0, seed=0,
            dt=config.control_period,
        )  # fmt: skip
        cycles = [0]

        def keep_batches(stack: LearnedStack) -> None:
            original = stack.batch

            def batch(frame: Any, time_s: float) -> dict[str, torch.Tensor]:
                out = original(frame, time_s)
                if cycles[0] % KEEP_EVERY == 0:
                    kept.append(out)
                cycles[0] += 1
                return out

            stack.batch = batch  # type: ignore[method-assign]

        setup = agent.setup

        def setup_and_keep(**kwargs: Any) -> None:
            setup(**kwargs)
            assert agent.runtime is not None
            keep_batches(agent.runtime.core)  # type: ignore[arg-type]

        agent.setup = setup_and_keep  # type: ignore[method-assign]
        wall = time.perf_counter()
        with backend:
            episode = run_episode(
                backend,
                agent,
                scenario,
                EpisodeOptions(
                    out_dir=folder / "drive",
                    record_mcap=False,
                    record_video=False,
                    max_seconds=seconds,
                    progress=False,
                ),
                road_map_of=lambda b: b.road_map,  # type: ignore[attr-defined]
                vehicle=profile,
            )
        drive_wall = time.perf_counter() - wall
        runtime = agent.runtime
        assert runtime is not None
        stats = runtime.stats
        stages = latency_summary(stats)
        stack = runtime.core
        assert isinstance(stack, LearnedStack)
        export_dir = folder / "export"
        export_checkpoint(CHECKPOINT, export_dir, rig_path)
        from kaido.stack.export import ExportedModel

        exported = ExportedModel(export_dir)
        _model_latency(stack, exported, kept[:1])  # warm-up
        _model_latency(stack, stack.model, kept[:1])
        eager_ms = _model_latency(stack, stack.model, kept)
        exported_ms = _model_latency(stack, exported, kept)
    eager, export = _percentiles(eager_ms), _percentiles(exported_ms)
    report: dict[str, Any] = {
        "name": "runtime",
        "stages": stages,
        "median_ms": stages["cycle"]["p50_ms"],
        "p99_ms": stages["cycle"]["p99_ms"],
        "deadline_misses": {s: stages[s]["deadline_misses"] for s in (*STAGES, "cycle")},
        "deadlines_ms": {s: 1e3 * config.deadlines[s] for s in STAGES}
        | {"cycle": 1e3 * config.cycle_deadline},
        "mode_seconds": {m: n * config.control_period for m, n in stats.mode_ticks.items()},
        "drive": {
            "sim_seconds": episode.sim_seconds,
            "wall_seconds": drive_wall,
            "control_ticks": stats.ticks,
            "planning_cycles": stats.cycles,
            "plans": stats.plans,
            "envelope_violations": stats.envelope_violations,
            "route_completion": episode.result.route_completion,
            "infractions": len(episode.result.infractions),
        },
        "model": {
            "eager": eager,
            "exported": export,
            "batches": len(kept),
            "what": "frame program + imagination (K=1 and K=4) per cycle",
        },
        "ratio_vs_reference": (
            eager["p50_ms"] / export["p50_ms"] if eager["p50_ms"] and export["p50_ms"] else None
        ),
        "params": {
            "seconds": seconds,
            "torch_threads": threads,
            "rig": str(rig_path),
            "checkpoint": str(CHECKPOINT),
            "enforce_deadlines": False,
        },
        "provenance": provenance(dataclasses.asdict(config)),
    }
    print(f"{'stage':<12} {'p50_ms':>8} {'p99_ms':>8} {'max_ms':>8} {'deadline':>9} {'misses':>7}")
    for stage in (*STAGES, "cycle"):
        s = stages[stage]
        if s["count"] == 0:
            continue
        print(
            f"{stage:<12} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.2f} "
            f"{report['deadlines_ms'][stage]:>9.0f} {s['deadline_misses']:>4}/{s['count']}"
        )
    print(
        f"model per cycle on {len(kept)} recorded batches: eager p50 {eager['p50_ms']:.1f} ms "
        f"p99 {eager['p99_ms']:.1f} ms; exported p50 {export['p50_ms']:.1f} ms p99 "
        f"{export['p99_ms']:.1f} ms (eager/exported {report['ratio_vs_reference']:.2f}x)"
    )
    print(
        f"{episode.sim_seconds:.0f} s drive in {drive_wall:.0f} s wall; modes "
        + ", ".join(f"{m} {t:.1f} s" for m, t in report["mode_seconds"].items() if t)
    )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "runtime.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    run(args.out, args.seconds, args.threads)


if __name__ == "__main__":
    main()
