"""The vehicle command boundary: envelope + rate limiter, and the message schema."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.planning.envelope import SafetyEnvelope
from kaido.scene.agents import Control
from kaido.scene.vehicle import VehicleProfile, vehicle_profiles
from kaido.stack.command import (
    JERK,
    SCHEMA_NAME,
    WHEEL_RATE,
    CommandBuilder,
    RateLimits,
    VehicleCommand,
)

PROFILES = list(vehicle_profiles().values())
SEDAN = VehicleProfile()
TICK_NS = 20_000_000  # 50 Hz

wild = st.one_of(
    st.floats(-50.0, 50.0),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1e9, -1e9]),
)
speeds = st.one_of(st.floats(0.0, 45.0), st.sampled_from([math.nan, math.inf, 0.0]))
steps = st.one_of(
    st.integers(1, 200_000_000), st.sampled_from([TICK_NS, TICK_NS, TICK_NS, 0, -TICK_NS])
)
tick = st.tuples(wild, wild, speeds, steps)


@settings(max_examples=200, deadline=None)
@given(
    profile=st.sampled_from(PROFILES),
    ticks=st.lists(tick, min_size=1, max_size=40),
    jerk=st.floats(0.5, 20.0),
    wheel_rate=st.one_of(st.none(), st.floats(0.2, 10.0)),
)
def test_every_command_is_inside_the_envelope_and_rate_limited(
    profile: VehicleProfile,
    ticks: list[tuple[float, float, float, int]],
    jerk: float,
    wheel_rate: float | None,
) -> None:
    builder = CommandBuilder(profile, RateLimits(max_jerk=jerk, max_steering_wheel_rate=wheel_rate))
    now = 1_000_000_000
    builder.reset(now, wheel_angle=0.05, speed=10.0)
    prev_accel, prev_wheel, prev_t = 0.0, 0.05, now
    for sequence, (accel, wheel, speed, step) in enumerate(ticks):
        now = max(now + step, 0)
        cmd = builder.build(now, accel, wheel, speed)
        assert cmd.sequence == sequence
        assert cmd.within_envelope(profile), cmd
        c = cmd.control
        assert 0.0 <= c.throttle <= 1.0 and 0.0 <= c.brake <= 1.0 and c.throttle * c.brake == 0
        assert c.steer == pytest.approx(-cmd.wheel_angle / profile.max_steer)
        dt = (now - prev_t) * 1e-9
        bad_input = not all(math.isfinite(x) for x in (accel, wheel, speed)) or dt <= 0
        assert (cmd.fault is not None) == bad_input
        if cmd.fault is not None:
            # a controlled stop, at once
            assert cmd.accel == profile.envelope_accel_min
        else:
            assert abs(cmd.accel - prev_accel) <= jerk * dt + 1e-9
        h = max(dt, 0.0)
        hard = profile.max_steer
        if math.isfinite(speed) and speed * speed > 0:
            hard = min(hard, math.atan(3.0 * profile.wheelbase / speed**2))
        at_hard_bound = abs(abs(cmd.wheel_angle) - hard) < 1e-12
        rate = profile.max_steer_rate
        if wheel_rate is not None:
            rate = min(rate, wheel_rate / profile.steering_ratio)
        if not at_hard_bound:
            assert abs(cmd.wheel_angle - prev_wheel) <= rate * h + 1e-9
        prev_accel, prev_wheel = cmd.accel, cmd.wheel_angle
        prev_t = max(prev_t, now)
        # the message survives its documented JSON form unchanged
        assert VehicleCommand.from_dict(json.loads(json.dumps(cmd.to_dict()))) == cmd


def test_a_steady_command_passes_unchanged_and_ramps_are_limited() -> None:
    builder = CommandBuilder(SEDAN, RateLimits(max_jerk=5.0))
    builder.reset(0, wheel_angle=0.01, speed=10.0)
    cmd = builder.build(TICK_NS, 0.0, 0.01, 10.0)
    assert cmd.limited == () and cmd.fault is None
    assert cmd.accel == 0.0 and cmd.wheel_angle == 0.01
    assert cmd.curvature == pytest.approx(math.tan(0.01) / SEDAN.wheelbase)
    assert cmd.steering_wheel_angle == pytest.approx(0.01 * SEDAN.steering_ratio)
    assert cmd.lateral_accel == pytest.approx(100.0 * cmd.curvature)
    # a step to full acceleration ramps at 5 m/s³: 0.1 m/s² per 20 ms tick
    accels = [builder.build((2 + i) * TICK_NS, 10.0, 0.01, 10.0).accel for i in range(25)]
    assert accels[0] == pytest.approx(0.1)
    assert accels[-1] == pytest.approx(SEDAN.envelope_accel_max)
    last = builder.build(27 * TICK_NS, 10.0, 0.01, 10.0)
    assert "accel_max" in last.limited and JERK not in last.limited
    assert last.control.throttle > 0 and last.control.brake == 0


def test_steering_wheel_rate_limit_and_fault_stop() -> None:
    ratio = SEDAN.steering_ratio
    builder = CommandBuilder(SEDAN, RateLimits(max_steering_wheel_rate=math.radians(180.0)))
    builder.reset(0, speed=5.0, accel=1.0)
    cmd = builder.build(TICK_NS, 1.0, 0.3, 5.0)
    assert WHEEL_RATE in cmd.limited
    assert cmd.steering_wheel_angle == pytest.approx(math.radians(180.0) * 0.02)
    assert cmd.wheel_angle == pytest.approx(math.radians(180.0) * 0.02 / ratio)
    stop = builder.build(2 * TICK_NS, math.nan, 0.3, 5.0)
    assert stop.fault is not None and "accel" in stop.fault
    assert stop.accel == SEDAN.envelope_accel_min
    assert stop.control.brake > 0 and stop.control.throttle == 0
    again = builder.build(2 * TICK_NS, 0.0, 0.0, 5.0)  # the clock did not advance
    assert again.fault is not None and "dt" in again.fault


def test_the_builder_matches_the_envelope_when_the_rate_limits_are_loose() -> None:
    builder = CommandBuilder(SEDAN, RateLimits(max_jerk=1e6))
    env = SafetyEnvelope(SEDAN)
    state = env.initial_state(0.0, 25.0)
    builder.reset(0, speed=25.0)
    for i, (accel, wheel) in enumerate([(1.0, 0.2), (-9.0, -0.1), (0.5, 0.02), (3.0, 0.5)]):
        cmd = builder.build((i + 1) * TICK_NS, accel, wheel, 25.0)
        ref = env.apply(accel, wheel, 25.0, state, 0.02)
        state = ref.state
        assert cmd.accel == pytest.approx(ref.accel)
        assert cmd.wheel_angle == pytest.approx(ref.wheel_angle)
        assert set(ref.clamped) <= set(cmd.limited)


def test_schema_errors_name_the_key() -> None:
    builder = CommandBuilder(SEDAN)
    with pytest.raises(RuntimeError, match="reset"):
        builder.build(0, 0.0, 0.0, 0.0)
    builder.reset(0)
    data = builder.build(TICK_NS, 0.0, 0.0, 0.0).to_dict()
    assert data["schema"] == SCHEMA_NAME and data["version"] == 1
    with pytest.raises(ValueError, match=r"missing keys \['accel'\]"):
        VehicleCommand.from_dict({k: v for k, v in data.items() if k != "accel"})
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        VehicleCommand.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="version: this reader knows 1, got 2"):
        VehicleCommand.from_dict({**data, "version": 2})
    with pytest.raises(ValueError, match=r"VehicleCommand\.accel: expected a finite number"):
        VehicleCommand.from_dict({**data, "accel": math.nan})
    with pytest.raises(ValueError, match=r"VehicleCommand\.control: Control\.steer"):
        VehicleCommand.from_dict({**data, "control": {**data["control"], "steer": 2.0}})
    with pytest.raises(ValueError, match=r"VehicleCommand\.sequence"):
        VehicleCommand.from_dict({**data, "sequence": -1})
    with pytest.raises(ValueError, match=r"RateLimits\.max_jerk"):
        RateLimits(max_jerk=0.0)
    assert isinstance(VehicleCommand.from_dict(data).control, Control)
