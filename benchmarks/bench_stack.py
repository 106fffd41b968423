"""Benchmark: the learned stack's latency per stage and the tiny model's training throughput.

Latency: the learned stack (the shipped tiny checkpoint when present, else the tiny config with
random weights: the cost does not depend on the weights) drives the embedded simulator with the
default rig (one 640×360 camera, one 32×1024 lidar) and moderate traffic; every planning cycle
(10 Hz) is timed per stage: inputs (image resize, lidar crop), perception (encoders, fusion,
backbone), prediction (detection decoding, forecasts, prior, light), world model (imagined
occupancy and re-scoring of the top candidates), planning, control. Reported: p50 and p99 of
each stage and of the whole cycle (goal ≤ 100 ms end to end on 2 cores). The reference point is
the pillarization kernel against its NumPy reference on the cycle's lidar input
(``ratio_vs_reference``).

Training: forward + backward + AdamW step of the tiny model on batches of 8 contract-shaped
samples; samples per second.

Prints a table and writes ``stack.json``. Usage: ``kaido bench stack [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kaido.logs.sample import SampleSpec
from kaido.perception.pillars import pillarize, pillarize_reference
from kaido.provenance import REPO_ROOT, provenance
from kaido.scene.sensors import load_sensor_rig
from kaido.scene.town_generator import TownSpec, write_town
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.backend import Scenario
from kaido.simulation.drive import DEFAULT_RIG
from kaido.simulation.embedded.backend import EmbeddedBackend, EmbeddedConfig
from kaido.stack.learned import LearnedStack
from kaido.world_model.lightning import load_checkpoint
from kaido.world_model.model import KaidoModel, ModelConfig
from kaido.world_model.summary import example_batch
from kaido.world_model.training import read_experiment

STAGES = ("inputs", "perception", "prediction", "world_model", "planning", "control")
CHECKPOINT = REPO_ROOT / "checkpoints" / "tiny.ckpt"
TINY = REPO_ROOT / "configs" / "model" / "tiny.yaml"
DT = 0.1


def _model() -> tuple[KaidoModel, SampleSpec, str]:
    if CHECKPOINT.is_file():
        model, block = load_checkpoint(CHECKPOINT)
        return model, SampleSpec.from_dict(block["spec"]), str(CHECKPOINT)
    model_dict, _ = read_experiment(TINY)
    cfg = ModelConfig.from_dict(model_dict)
    torch.manual_seed(0)
    return KaidoModel(cfg).eval(), cfg.sample_spec(1), "tiny (random weights)"


def latency(cycles: int = 60, seed: int = 0) -> dict[str, Any]:
    model, spec, source = _model()
    rig = load_sensor_rig(DEFAULT_RIG)
    profile = VehicleProfile()
    with tempfile.TemporaryDirectory() as tmp:
        town = Path(tmp) / "town.xodr"
        write_town(TownSpec(rows=3, cols=4, seed=seed, name="town"), town)
        backend = EmbeddedBackend(EmbeddedConfig(rig=rig, sensor_period=DT, vehicle=profile))
        scenario = Scenario(name="bench", map_path=town, traffic_density=20.0, seed=seed, dt=DT)
        rows: list[dict[str, float]] = []
        pillar_kernel: list[float] = []
        pillar_reference: list[float] = []
        with backend:
            obs = backend.reset(scenario)
            assert backend.road_map is not None
            stack = LearnedStack(model, spec, backend.road_map, profile, rig)
            stack.reset(obs.route)
            lights = obs.ground_truth.traffic_lights
            for step in range(cycles + 2):
                frame = obs.frame
                t0 = time.perf_counter()
                control, _ = stack.step(frame, obs.sim_time_s, DT, lights)
                total = 1e3 * (time.perf_counter() - t0)
                if step >= 2:  # the first cycles load and compile
                    rows.append({**{s: stack.timings.get(s, 0.0) for s in STAGES}, "total": total})
                    batch = stack.batch(frame, obs.sim_time_s)
                    points = batch["lidar_points"][0].float().numpy()
                    count = int(batch["lidar_count"][0])
                    lc = model.cfg.perception.lidar
                    args = (
                        points,
                        count,
                        lc.grid,
                        lc.z_min,
                        lc.z_max,
                        lc.max_pillars,
                        lc.max_points,
                    )
                    t1 = time.perf_counter()
                    pillarize(*args)
                    t2 = time.perf_counter()
                    if step % 10 == 2:
                        pillarize_reference(*args)
                        pillar_reference.append(1e3 * (time.perf_counter() - t2))
                    pillar_kernel.append(1e3 * (t2 - t1))
                obs = backend.step(control)
                lights = obs.ground_truth.traffic_lights
    table = {
        name: {
            "p50_ms": float(np.percentile([r[name] for r in rows], 50)),
            "p99_ms": float(np.percentile([r[name] for r in rows], 99)),
        }
        for name in (*STAGES, "total")
    }
    kernel = float(np.median(pillar_kernel))
    reference = float(np.median(pillar_reference))
    return {
        "model": source,
        "cycles": len(rows),
        "stages": table,
        "median_ms": table["total"]["p50_ms"],
        "p99_ms": table["total"]["p99_ms"],
        "pillarize_median_ms": kernel,
        "pillarize_reference_median_ms": reference,
        "ratio_vs_reference": reference / kernel if kernel > 0 else float("nan"),
    }


def training(steps: int = 10, batch_size: int = 8) -> dict[str, Any]:
    model_dict, _ = read_experiment(TINY)
    cfg = ModelConfig.from_dict(model_dict)
    torch.manual_seed(0)
    model = KaidoModel(cfg).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = example_batch(cfg, batch_size, pillars=False)
    times = []
    for step in range(steps + 2):
        t0 = time.perf_counter()
        out = model(batch)
        loss = model.losses(out, batch)["total"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step >= 2:
            times.append(time.perf_counter() - t0)
    median = float(np.median(times))
    return {
        "batch_size": batch_size,
        "median_step_ms": 1e3 * median,
        "samples_per_s": batch_size / median,
        "threads": torch.get_num_threads(),
    }


def run(out_dir: Path | None = None, cycles: int = 60) -> dict[str, Any]:
    lat = latency(cycles)
    train = training()
    result = {
        "benchmark": "stack",
        "latency": lat,
        "training": train,
        "median_ms": lat["median_ms"],
        "ratio_vs_reference": lat["ratio_vs_reference"],
        "goal": {"end_to_end_p50_ms": 100.0},
        "provenance": provenance({"cycles": cycles, "threads": torch.get_num_threads()}),
    }
    print(f"learned stack, {lat['model']}, {lat['cycles']} cycles, {train['threads']} threads")
    print(f"{'stage':<14}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in lat["stages"].items():
        print(f"{name:<14}{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}")
    print(
        f"pillarize: {lat['pillarize_median_ms']:.2f} ms vs reference "
        f"{lat['pillarize_reference_median_ms']:.1f} ms ({lat['ratio_vs_reference']:.0f}x)"
    )
    print(
        f"training: {train['samples_per_s']:.1f} samples/s "
        f"(batch {train['batch_size']}, {train['median_step_ms']:.0f} ms/step)"
    )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "stack.json").write_text(json.dumps(result, indent=2))
        print(f"wrote {out_dir / 'stack.json'}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--cycles", type=int, default=60)
    args = parser.parse_args(argv)
    run(args.out, args.cycles)


if __name__ == "__main__":
    main()
