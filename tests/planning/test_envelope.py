"""The safety envelope: unit behaviour, and properties over >= 10^5 fuzzed commands."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kaido.planning.envelope import (
    EnvelopeState,
    SafetyEnvelope,
    apply_envelope_batch,
    lateral_accel,
)
from kaido.scene.vehicle import VehicleProfile

SEDAN = VehicleProfile()
TRUCK = VehicleProfile(
    name="truck",
    length=9.0,
    width=2.5,
    height=3.2,
    wheelbase=5.5,
    rear_overhang=2.0,
    max_steer=math.radians(40.0),
    max_steer_rate=math.radians(30.0),
    max_accel=2.0,
    max_decel=6.0,
    envelope_accel_min=-2.5,
    envelope_accel_max=1.2,
    envelope_lateral_accel=2.0,
    envelope_lateral_jerk=2.5,
)
ENV = SafetyEnvelope(SEDAN)
L = SEDAN.wheelbase


def state_at(wheel: float, speed: float) -> EnvelopeState:
    return EnvelopeState(wheel, lateral_accel(speed, wheel, L))


# -- unit behaviour --------------------------------------------------------------------------


def test_command_inside_the_envelope_passes_unchanged():
    prev = state_at(0.01, 10.0)
    result = ENV.apply(1.0, 0.012, 10.0, prev, 0.02)
    assert result.accel == 1.0
    assert result.wheel_angle == 0.012
    assert result.clamped == ()
    assert result.fault is None
    assert result.state.lateral_accel == pytest.approx(100.0 * math.tan(0.012) / L)


@pytest.mark.parametrize(
    ("accel", "expected", "tag"),
    [(5.0, SEDAN.envelope_accel_max, "accel_max"), (-9.0, SEDAN.envelope_accel_min, "accel_min")],
)
def test_accel_is_clipped_to_the_envelope(accel, expected, tag):
    result = ENV.apply(accel, 0.0, 10.0, state_at(0.0, 10.0), 0.02)
    assert result.accel == expected
    assert result.clamped == (tag,)


def test_lateral_accel_bounds_the_wheel_angle_at_speed():
    # a long dt so that only the absolute bounds act
    for sign in (1.0, -1.0):
        result = ENV.apply(0.0, sign * 0.5, 20.0, state_at(0.0, 20.0), 10.0)
        assert result.clamped == ("lateral_accel",)
        assert result.state.lateral_accel == pytest.approx(sign * SEDAN.envelope_lateral_accel)
        assert math.copysign(1.0, result.wheel_angle) == sign


def test_steering_lock_bounds_the_wheel_angle_at_low_speed():
    result = ENV.apply(0.0, 1.0, 1.0, state_at(0.0, 1.0), 10.0)
    assert result.wheel_angle == SEDAN.max_steer
    assert result.clamped == ("steer_max",)
    assert abs(result.state.lateral_accel) < SEDAN.envelope_lateral_accel


def test_steering_rate_is_limited_at_standstill():
    result = ENV.apply(0.0, -0.3, 0.0, state_at(0.0, 0.0), 0.02)
    assert result.wheel_angle == pytest.approx(-SEDAN.max_steer_rate * 0.02)
    assert result.clamped == ("steer_rate",)


def test_lateral_jerk_is_limited_at_speed():
    wheel = math.atan(2.0 * L / 100.0)  # 2 m/s² at 10 m/s, from straight
    result = ENV.apply(0.0, wheel, 10.0, state_at(0.0, 10.0), 0.02)
    assert result.clamped == ("lateral_jerk",)
    assert result.state.lateral_accel == pytest.approx(SEDAN.envelope_lateral_jerk * 0.02)
    assert abs(result.wheel_angle) <= SEDAN.max_steer_rate * 0.02


def test_previous_output_outside_the_envelope_moves_back_to_it():
    # the speed rose since the previous output: the hard bound wins over the rate limits
    prev = state_at(0.3, 5.0)
    result = ENV.apply(0.0, 0.3, 25.0, prev, 0.02)
    bound = math.atan(SEDAN.envelope_lateral_accel * L / 625.0)
    assert result.wheel_angle == pytest.approx(bound)
    assert result.clamped == ("lateral_accel",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("accel", math.nan),
        ("wheel_angle", math.inf),
        ("dt", math.nan),
        ("dt", -0.02),
        ("state.lateral_accel", math.nan),
    ],
)
def test_non_finite_input_gives_a_controlled_stop_with_the_wheel_held(field, value):
    args = {"accel": 1.0, "wheel_angle": -0.05, "dt": 0.02}
    prev = state_at(0.04, 8.0)
    if field == "state.lateral_accel":
        prev = EnvelopeState(0.04, value)
    else:
        args[field] = value
    result = ENV.apply(args["accel"], args["wheel_angle"], 8.0, prev, args["dt"])
    assert result.accel == SEDAN.envelope_accel_min
    assert result.wheel_angle == pytest.approx(0.04)
    assert result.fault is not None and field in result.fault
    assert f"fault:{field}" in result.clamped
    assert math.isfinite(result.state.lateral_accel)


def test_unknown_speed_holds_the_wheel_and_carries_the_lateral_estimate():
    result = ENV.apply(0.5, 0.2, math.nan, EnvelopeState(0.9, 7.0), 0.02)
    assert result.accel == SEDAN.envelope_accel_min
    assert result.wheel_angle == SEDAN.max_steer
    assert result.state.lateral_accel == SEDAN.envelope_lateral_accel
    assert result.clamped == ("fault:speed",)


def test_non_finite_previous_wheel_is_replaced_by_straight():
    result = ENV.apply(0.5, 0.2, 3.0, EnvelopeState(math.nan, 0.0), 0.02)
    assert result.wheel_angle == 0.0
    assert result.accel == SEDAN.envelope_accel_min


def test_initial_state_matches_the_bicycle_model():
    state = ENV.initial_state(0.05, 12.0)
    assert state.lateral_accel == pytest.approx(144.0 * math.tan(0.05) / L)
    assert ENV.initial_state(math.nan, 12.0) == EnvelopeState(0.0, 0.0)


def test_bad_arguments_are_rejected_with_a_clear_message():
    with pytest.raises(TypeError, match="VehicleProfile"):
        SafetyEnvelope("sedan")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="EnvelopeState"):
        ENV.apply(0.0, 0.0, 0.0, (0.0, 0.0), 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wheel_angle"):
        apply_envelope_batch(SEDAN, np.zeros(3), np.zeros(4), np.zeros(3), np.zeros(3), 0, 0.1)
    with pytest.raises(ValueError, match="dt"):
        z = np.zeros(3)
        apply_envelope_batch(SEDAN, z, z, z, z, z, np.zeros(4))


# -- properties over fuzzed batches ----------------------------------------------------------

BATCH = 500
"""Values generated per example from its seed (plus ``DIRECT`` drawn by hypothesis itself)."""
DIRECT = 24
EXAMPLES = 200
"""200 examples × (500 + 24) rows ≈ 1.05 × 10^5 fuzzed commands."""

EDGE = np.array(
    [
        math.nan,
        math.inf,
        -math.inf,
        0.0,
        -0.0,
        1e-300,
        -5e-324,
        1e154,
        -1.5e154,
        1e300,
        -1e300,
        1.7976931348623157e308,
        -1.7976931348623157e308,
        1.0,
        -1.0,
    ]
)
DT_CHOICES = np.array([0.0, 1e-12, 1e-3, 0.01, 0.02, 0.05, 0.1, 1.0, 60.0, 1e6, 1e308])


def _mix(rng: np.random.Generator, normal: np.ndarray, edge_fraction: float) -> np.ndarray:
    out = normal.copy()
    pick = rng.random(len(out)) < edge_fraction
    out[pick] = rng.choice(EDGE, int(pick.sum()))
    return out


def _fuzz(profile: VehicleProfile, seed: int, direct: list[np.ndarray]) -> list[np.ndarray]:
    """``(accel, wheel, speed, prev_wheel, prev_lat, dt)`` rows: random, edge values, huge
    values, negative speeds, dt extremes, and rows built inside the envelope."""
    rng = np.random.default_rng(seed)
    n = BATCH
    wb = profile.wheelbase
    speed = np.where(
        rng.random(n) < 0.8,
        rng.uniform(-10.0, 60.0, n),
        rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3.0, 200.0, n),
    )
    speed = _mix(rng, speed, 0.03)
    accel = _mix(rng, rng.normal(0.0, 5.0, n) * 10.0 ** rng.integers(0, 3, n), 0.03)
    prev_wheel = _mix(rng, rng.uniform(-0.8, 0.8, n), 0.03)
    with np.errstate(all="ignore"):
        consistent = speed * speed * np.tan(prev_wheel) / wb * rng.uniform(0.9, 1.1, n)
    prev_lat = np.where(rng.random(n) < 0.6, consistent, rng.uniform(-5.0, 5.0, n))
    prev_lat = _mix(rng, prev_lat, 0.03)
    wheel = _mix(rng, prev_wheel + rng.normal(0.0, 0.2, n), 0.03)
    dt = rng.choice(DT_CHOICES, n)
    dt[rng.random(n) < 0.02] = rng.choice([math.nan, math.inf, -0.02, -1e300], 1)[0]

    # rows inside the envelope (must pass unchanged)
    k = n // 5
    v = rng.uniform(0.0, 30.0, k)
    step = rng.choice([0.01, 0.02, 0.05, 0.1], k)
    bound = np.minimum(
        np.arctan(profile.envelope_lateral_accel * wb / np.maximum(v * v, 1e-12)),
        profile.max_steer,
    )
    pw = rng.uniform(-0.8, 0.8, k) * bound
    pl = v * v * np.tan(pw) / wb
    small = rng.uniform(-0.4, 0.4, k)
    target_lat = np.clip(
        pl + small * profile.envelope_lateral_jerk * step,
        -0.9 * profile.envelope_lateral_accel,
        0.9 * profile.envelope_lateral_accel,
    )
    w = np.where(
        v > 0.5,
        np.arctan(target_lat * wb / np.maximum(v * v, 1e-12)),
        pw + small * profile.max_steer_rate * step,
    )
    rows = slice(0, k)
    speed[rows], prev_wheel[rows], prev_lat[rows], wheel[rows], dt[rows] = v, pw, pl, w, step
    accel[rows] = rng.uniform(profile.envelope_accel_min, profile.envelope_accel_max, k)

    columns = [accel, wheel, speed, prev_wheel, prev_lat, dt]
    return [np.concatenate([c, d]) for c, d in zip(columns, direct, strict=True)]


def _lat(speed: np.ndarray, wheel: np.ndarray, wb: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.where(wheel == 0.0, 0.0, speed * speed * np.tan(wheel) / wb)


def _check_batch(profile: VehicleProfile, rows: list[np.ndarray]) -> None:
    accel, wheel, speed, pw, pl, dt = rows
    a_out, w_out, lat_out = apply_envelope_batch(profile, accel, wheel, speed, pw, pl, dt)
    wb = profile.wheelbase
    a_max, a_min = profile.envelope_accel_max, profile.envelope_accel_min
    lat_max, jerk = profile.envelope_lateral_accel, profile.envelope_lateral_jerk
    rate = profile.max_steer_rate

    # always: finite, inside the hard bounds
    assert (
        np.all(np.isfinite(a_out)) and np.all(np.isfinite(w_out)) and np.all(np.isfinite(lat_out))
    )
    assert np.all((a_out >= a_min) & (a_out <= a_max))
    assert np.all(np.abs(w_out) <= profile.max_steer)
    known = np.isfinite(speed)
    lat_check = _lat(speed, w_out, wb)
    assert np.all(np.abs(lat_check[known]) <= lat_max + 1e-9)
    assert np.all(np.abs(lat_out) <= lat_max + 1e-9)
    np.testing.assert_allclose(lat_out[known], lat_check[known], rtol=1e-9, atol=1e-12)

    with np.errstate(all="ignore"):
        fault = ~(
            np.isfinite(accel)
            & np.isfinite(wheel)
            & known
            & np.isfinite(pw)
            & np.isfinite(pl)
            & np.isfinite(dt)
            & (dt >= 0.0)
        )
        ok = ~fault
        # faults: a controlled stop, the wheel held (within the hard bounds and the rates)
        assert np.all(a_out[fault] == a_min)
        held = np.where(np.isfinite(pw), pw, 0.0)
        v2 = np.where(known, speed * speed, 0.0)
        hard = np.where(v2 > 0.0, np.minimum(np.arctan(lat_max * wb / v2), profile.max_steer), 1.0)
        hard = np.minimum(hard, profile.max_steer)
        held_in = np.clip(held, -hard, hard)
        frozen = fault & (~np.isfinite(dt) | (dt < 0.0) | ~known)
        np.testing.assert_array_equal(w_out[frozen], held_in[frozen])
        moving = fault & ~frozen
        assert np.all(np.abs(w_out[moving] - held_in[moving]) <= rate * dt[moving] + 1e-12)

        # valid commands: accel clipped, never more than clipped
        np.testing.assert_array_equal(a_out[ok], np.clip(accel[ok], a_min, a_max))

        # steering rate: holds wherever it can together with the hard bounds
        lo = np.maximum(pw - rate * dt, -hard)
        hi = np.minimum(pw + rate * dt, hard)
        rate_ok = ok & (lo < hi - 1e-12)
        excess = np.abs(w_out - pw) - rate * dt
        assert np.all(excess[rate_ok] <= 1e-12 + 1e-12 * np.abs(pw[rate_ok]))

        # lateral jerk: holds wherever it can together with the above
        lat_lo, lat_hi = _lat(speed, lo, wb), _lat(speed, hi, wb)
        jerk_ok = rate_ok & (
            np.maximum(lat_lo, pl - jerk * dt) < np.minimum(lat_hi, pl + jerk * dt) - 1e-9
        )
        tol = 1e-9 * np.maximum(1.0, np.abs(pl))
        assert np.all((np.abs(lat_check - pl) - jerk * dt)[jerk_ok] <= tol[jerk_ok])

        # commands strictly inside every limit pass unchanged
        margin = 1.0 - 1e-9
        inside = (
            ok
            & (np.abs(wheel) <= hard * margin)
            & (np.abs(wheel - pw) <= rate * dt * margin)
            & (np.abs(_lat(speed, wheel, wb) - pl) <= jerk * dt * margin - 1e-12)
        )
    np.testing.assert_array_equal(w_out[inside], wheel[inside])
    assert inside.sum() >= BATCH // 20, "the fuzzer must also produce commands inside the envelope"

    # the scalar API agrees with the batch API row by row
    envelope = SafetyEnvelope(profile)
    for i in range(len(accel)):
        result = envelope.apply(accel[i], wheel[i], speed[i], EnvelopeState(pw[i], pl[i]), dt[i])
        assert result.accel == a_out[i]
        assert result.wheel_angle == pytest.approx(w_out[i], rel=1e-9, abs=1e-12)
        assert result.state.lateral_accel == pytest.approx(lat_out[i], rel=1e-9, abs=1e-12)
        assert (result.fault is not None) == bool(fault[i])


_DIRECT = arrays(np.float64, DIRECT, elements=st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    profile=st.sampled_from([SEDAN, TRUCK]),
    seed=st.integers(0, 2**32 - 1),
    direct=st.lists(_DIRECT, min_size=6, max_size=6),
)
def test_fuzzed_commands_never_leave_the_envelope(profile, seed, direct):
    rows = _fuzz(profile, seed, direct)
    assert all(len(r) >= BATCH for r in rows)
    _check_batch(profile, rows)


def test_batch_accepts_a_scalar_dt():
    n = 8
    rng = np.random.default_rng(0)
    a, w, v = rng.normal(0, 3, n), rng.normal(0, 0.3, n), rng.uniform(0, 30, n)
    pw, pl = np.zeros(n), np.zeros(n)
    scalar = apply_envelope_batch(SEDAN, a, w, v, pw, pl, 0.05)
    array = apply_envelope_batch(SEDAN, a, w, v, pw, pl, np.full(n, 0.05))
    for x, y in zip(scalar, array, strict=True):
        np.testing.assert_array_equal(x, y)
