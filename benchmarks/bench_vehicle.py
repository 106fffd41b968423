"""Benchmark: the kinematic bicycle of the RAV4 profile against a real car (comma2k19).

The comma2k19 segment in ``../shared/data/comma2k19`` (one minute of a Toyota RAV4 on a
freeway: CAN speed and steering-wheel angle, IMU, 20 Hz fused global pose) is cut into every
window of 5 s and of 10 s that starts at a logged pose (a sliding window, one per 20 Hz pose).
Each window starts at the logged pose (position of the device, heading = the direction of
travel) and is integrated open loop at 100 Hz from the logged signals only. Models:

* ``bicycle``: the kinematic bicycle of ``configs/vehicles/rav4.yaml`` (the simulator's law:
  rear-axle reference, yaw rate ``v · tan(δ) / L``, road-wheel angle ``δ`` = CAN
  steering-wheel angle / the profile's steering ratio), driven by the CAN speed.
* ``bicycle_fitted``: the same with a steering ratio and a steering-angle offset fitted by least
  squares to the segment's own yaw rate (in-sample: it shows how much of the drift is the
  profile's ratio and the CAN angle sensor's offset, not a validation).
* ``straight`` (the reference): a straight line along the start heading at the CAN speed.
* ``imu_ctrv``: constant yaw rate, the gyro's (projected on the local vertical) mean over the
  0.5 s before the window.
* ``gyro``: dead reckoning with the logged gyro yaw rate throughout (an odometry upper bound).

The bicycle integrates the rear axle; the logged position is the device's (on the windscreen,
``DEVICE_AHEAD_OF_REAR_AXLE`` ahead of the rear axle), so the model's device position is its rear
axle plus that lever arm along its heading. The drift of a window is the horizontal distance
between the model's and the logged device position at the window's end. Reported per model and
window length: median, p90 and max drift [m], and ``ratio_vs_reference`` = the reference's
median drift / the bicycle's. Prints a table and writes ``vehicle.json``.

Usage: ``kaido bench vehicle [--out DIR]`` or ``python -m benchmarks.bench_vehicle``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.logs.comma2k19 import Comma2k19Segment, load_comma2k19_segment
from kaido.provenance import REPO_ROOT, provenance
from kaido.scene.vehicle import VEHICLES_DIR, VehicleProfile, load_vehicle_profile

FloatArray = npt.NDArray[np.float64]

SEGMENT = Path("comma2k19") / "b0c9d2329ad1606b_2018-08-02--08-34-47" / "40"
PROFILE = VEHICLES_DIR / "rav4.yaml"
WINDOWS_S = (5.0, 10.0)
STEP_S = 0.01
"""[s] integration step (the CAN speed's 100 Hz)."""
DEVICE_AHEAD_OF_REAR_AXLE = 1.2
"""[m] the comma device on the RAV4's windscreen, ahead of the rear axle."""
IMU_AVERAGE_S = 0.5
"""[s] the constant-yaw-rate reference averages the gyro over this long before the window."""
MODELS = ("bicycle", "bicycle_fitted", "straight", "imu_ctrv", "gyro")
REFERENCE = "straight"


def shared_data_dir() -> Path:
    """The shared data folder (``KAIDO_SHARED_DATA`` or ``../shared/data`` beside the repo)."""
    return Path(os.environ.get("KAIDO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def integrate(
    x0: FloatArray, y0: FloatArray, yaw0: FloatArray, speed: FloatArray, yaw_rate: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Planar poses after driving ``(W, S)`` steps of ``STEP_S`` from ``(W,)`` start poses.

    ``speed`` [m/s] and ``yaw_rate`` [rad/s] are ``(W, S + 1)`` samples at the step boundaries;
    each step follows the exact arc at the step's mean speed and yaw rate (the embedded
    simulator's pose update). Returns the final ``(x, y, yaw)``, each ``(W,)``."""
    x, y, yaw = x0.copy(), y0.copy(), yaw0.copy()
    for j in range(speed.shape[1] - 1):
        v = 0.5 * (speed[:, j] + speed[:, j + 1])
        w = 0.5 * (yaw_rate[:, j] + yaw_rate[:, j + 1])
        distance = v * STEP_S
        turn = w * STEP_S
        half = 0.5 * turn
        safe = np.where(np.abs(half) < 1e-6, 1.0, half)
        chord = distance * np.where(
            np.abs(half) < 1e-6, 1.0 - half * half / 6.0, np.sin(safe) / safe
        )
        heading = yaw + half
        x = x + chord * np.cos(heading)
        y = y + chord * np.sin(heading)
        yaw = yaw + turn
    return x, y, yaw


def fit_steering(segment: Comma2k19Segment, wheelbase: float) -> tuple[float, float]:
    """Least-squares ``(steering ratio, steering-wheel offset [rad])`` with which
    ``v · (θ - offset) / (ratio · L)`` matches the device's yaw rate (small-angle bicycle)."""
    t = segment.pose.times
    yaw_rate = np.gradient(np.unwrap(segment.device_yaw()), t)
    v = segment.speed.at(t)
    wheel = np.radians(segment.steering_angle.at(t))
    design = np.stack([v * wheel / wheelbase, v / wheelbase], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, yaw_rate, rcond=None)
    return float(1.0 / a), float(-b / a)


def window_drift(
    segment: Comma2k19Segment, profile: VehicleProfile, seconds: float, fitted: tuple[float, float]
) -> dict[str, FloatArray]:
    """Error at the end of every ``seconds`` window, per model: ``(W, 3)`` each, columns the
    drift [m], its component along the logged heading and across it [m] (signed, left +)."""
    times = segment.pose.times
    end = min(segment.speed.t[-1], segment.steering_angle.t[-1], segment.gyro.t[-1], times[-1])
    begin = max(segment.speed.t[0], segment.steering_angle.t[0], segment.gyro.t[0] + IMU_AVERAGE_S)
    starts = np.flatnonzero((times >= begin) & (times + seconds <= end))
    if len(starts) == 0:
        raise ValueError(f"segment {segment.path}: no {seconds} s window fits")
    steps = int(round(seconds / STEP_S))
    t0 = times[starts]
    grid = t0[:, None] + STEP_S * np.arange(steps + 1)[None, :]  # (W, S + 1)
    speed = segment.speed.at(grid)
    wheel = np.radians(segment.steering_angle.at(grid))
    gyro = segment.yaw_rate(grid.reshape(-1)).reshape(grid.shape)
    before = t0[:, None] - IMU_AVERAGE_S + STEP_S * np.arange(int(IMU_AVERAGE_S / STEP_S))
    ctrv = segment.yaw_rate(before.reshape(-1)).reshape(before.shape).mean(axis=1)
    poses = segment.local_poses()
    x0, y0, yaw0 = poses[starts, 0], poses[starts, 1], poses[starts, 2]
    t_end = t0 + seconds
    x_log = np.interp(t_end, times, poses[:, 0])
    y_log = np.interp(t_end, times, poses[:, 1])
    yaw_log = np.interp(t_end, times, np.unwrap(poses[:, 2]))
    base = profile.wheelbase
    ratio_fit, offset_fit = fitted
    yaw_rates = {
        "bicycle": speed * np.tan(wheel / profile.steering_ratio) / base,
        "bicycle_fitted": speed * np.tan((wheel - offset_fit) / ratio_fit) / base,
        "straight": np.zeros_like(speed),
        "imu_ctrv": np.repeat(ctrv[:, None], steps + 1, axis=1),
        "gyro": gyro,
    }
    arm = DEVICE_AHEAD_OF_REAR_AXLE
    out: dict[str, FloatArray] = {}
    for name in MODELS:
        # the rear axle starts `arm` behind the logged device position
        rx, ry = x0 - arm * np.cos(yaw0), y0 - arm * np.sin(yaw0)
        x, y, yaw = integrate(rx, ry, yaw0, speed, yaw_rates[name])
        dx = x + arm * np.cos(yaw) - x_log
        dy = y + arm * np.sin(yaw) - y_log
        along = dx * np.cos(yaw_log) + dy * np.sin(yaw_log)
        across = -dx * np.sin(yaw_log) + dy * np.cos(yaw_log)
        out[name] = np.stack([np.hypot(dx, dy), along, across], axis=1)
    return out


def run(out_dir: Path | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write ``out_dir/vehicle.json``; the report."""
    folder = (data_dir or shared_data_dir()) / SEGMENT
    segment = load_comma2k19_segment(folder)
    profile = load_vehicle_profile(PROFILE)
    fitted = fit_steering(segment, profile.wheelbase)
    speed = segment.speed.value
    windows: dict[str, Any] = {}
    for seconds in WINDOWS_S:
        drift = window_drift(segment, profile, seconds, fitted)
        stats = {
            name: {
                "median_m": float(np.median(d[:, 0])),
                "p90_m": float(np.percentile(d[:, 0], 90)),
                "max_m": float(np.max(d[:, 0])),
                "along_median_abs_m": float(np.median(np.abs(d[:, 1]))),
                "across_median_abs_m": float(np.median(np.abs(d[:, 2]))),
                "across_p90_abs_m": float(np.percentile(np.abs(d[:, 2]), 90)),
            }
            for name, d in drift.items()
        }
        windows[f"{seconds:g}s"] = {
            "windows": int(len(drift["bicycle"])),
            "along_bias_median_m": float(np.median(drift["bicycle"][:, 1])),
            "drift": stats,
            "ratio_vs_reference": stats[REFERENCE]["median_m"] / stats["bicycle"]["median_m"],
        }
    report: dict[str, Any] = {
        "benchmark": "vehicle",
        "windows": windows,
        "reference": REFERENCE,
        "fitted_steering": {
            "steering_ratio": fitted[0],
            "wheel_offset_deg": math.degrees(fitted[1]),
            "note": "in-sample least squares on this segment (not a validation)",
        },
        "segment": {
            "path": str(SEGMENT),
            "duration_s": segment.duration,
            "distance_m": float(np.trapezoid(segment.speed.value, segment.speed.t)),
            "speed_m_s": {"min": float(speed.min()), "max": float(speed.max())},
            "steering_wheel_deg": {
                "min": float(segment.steering_angle.value.min()),
                "max": float(segment.steering_angle.value.max()),
            },
            "heading_change_deg": float(
                math.degrees(np.ptp(np.unwrap(segment.local_poses()[:, 2])))
            ),
        },
        "params": {
            "profile": str(PROFILE.relative_to(REPO_ROOT)),
            "wheelbase_m": profile.wheelbase,
            "steering_ratio": profile.steering_ratio,
            "step_s": STEP_S,
            "device_ahead_of_rear_axle_m": DEVICE_AHEAD_OF_REAR_AXLE,
            "imu_average_s": IMU_AVERAGE_S,
        },
        "provenance": provenance({"profile": profile}),
    }
    header = (
        f"{'window':<7} {'model':<15} {'median_m':>9} {'p90_m':>8} {'max_m':>8} "
        f"{'|along|_m':>10} {'|across|_m':>11} {'across_p90':>11}"
    )
    print(header)
    for key, block in windows.items():
        for name in MODELS:
            s = block["drift"][name]
            print(
                f"{key:<7} {name:<15} {s['median_m']:>9.2f} {s['p90_m']:>8.2f} {s['max_m']:>8.2f} "
                f"{s['along_median_abs_m']:>10.2f} {s['across_median_abs_m']:>11.2f} "
                f"{s['across_p90_abs_m']:>11.2f}"
            )
    for key, block in windows.items():
        print(
            f"{key}: {block['windows']} windows; median drift {REFERENCE} / bicycle = "
            f"{block['ratio_vs_reference']:.2f}; bicycle along-track bias "
            f"{block['along_bias_median_m']:+.2f} m (CAN speed scale)"
        )
    seg = report["segment"]
    print(
        f"segment: {seg['duration_s']:.0f} s, {seg['distance_m']:.0f} m at "
        f"{seg['speed_m_s']['min']:.1f}-{seg['speed_m_s']['max']:.1f} m/s, steering wheel "
        f"{seg['steering_wheel_deg']['min']:.1f}..{seg['steering_wheel_deg']['max']:.1f} deg; "
        f"fitted ratio {fitted[0]:.1f} (profile {profile.steering_ratio}), offset "
        f"{math.degrees(fitted[1]):.2f} deg"
    )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "vehicle.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None, help="shared data folder")
    args = parser.parse_args(argv)
    run(args.out, args.data)


if __name__ == "__main__":
    main()
