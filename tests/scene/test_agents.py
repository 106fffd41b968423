"""Tests of ego and agent states, tracks and the control command."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.scene.agents import (
    AgentClass,
    AgentIndex,
    AgentState,
    Control,
    EgoIndex,
    EgoState,
    Track,
)
from kaido.scene.geometry import SE2, Box3D, wrap_angle

# ---------------------------------------------------------------------------------------------
# EgoState and AgentState
# ---------------------------------------------------------------------------------------------


def test_ego_state_array_round_trip_and_speed() -> None:
    ego = EgoState(
        timestamp_ns=1_000_000_000,
        pose=SE2(10.0, -2.0, 0.3),
        velocity=(3.0, 4.0),
        acceleration=(0.5, -0.1),
        yaw_rate=0.05,
        steering_angle=-0.02,
    )
    assert ego.speed == pytest.approx(5.0)
    arr = ego.as_array()
    assert arr.shape == (len(EgoIndex),)
    assert arr[EgoIndex.X] == 10.0
    assert arr[EgoIndex.YAW] == 0.3
    assert arr[EgoIndex.VY] == 4.0
    assert arr[EgoIndex.AX] == 0.5
    assert arr[EgoIndex.STEER] == -0.02
    assert EgoState.from_array(1_000_000_000, arr) == ego
    assert ego.is_finite()


def test_ego_state_validation() -> None:
    pose = SE2(0.0, 0.0, 0.0)
    with pytest.raises(TypeError, match="timestamp_ns"):
        EgoState(timestamp_ns=1.5, pose=pose)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pose"):
        EgoState(timestamp_ns=0, pose=(0.0, 0.0, 0.0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="velocity"):
        EgoState(timestamp_ns=0, pose=pose, velocity=(1.0,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape \(9,\)"):
        EgoState.from_array(0, np.zeros(7))
    # Non-finite sensor values are carried, not rejected; is_finite reports them.
    assert not EgoState(timestamp_ns=0, pose=pose, yaw_rate=math.nan).is_finite()


def test_agent_state_array() -> None:
    agent = AgentState(
        track_id=7,
        agent_class=1,  # type: ignore[arg-type]
        box=Box3D(5.0, 6.0, 0.9, 1.2, 0.8, 0.6, 1.8),
        velocity=(0.0, 1.4),
        timestamp_ns=5,
    )
    assert agent.agent_class is AgentClass.PEDESTRIAN
    assert agent.speed == pytest.approx(1.4)
    arr = agent.as_array()
    assert arr.shape == (len(AgentIndex),)
    np.testing.assert_array_equal(
        arr[[AgentIndex.X, AgentIndex.Y, AgentIndex.YAW, AgentIndex.LENGTH, AgentIndex.WIDTH]],
        [5.0, 6.0, 1.2, 0.8, 0.6],
    )
    assert arr[AgentIndex.VY] == 1.4
    with pytest.raises(ValueError, match="agent_class"):
        AgentState(7, 42, agent.box, (0.0, 0.0), 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="box"):
        AgentState(7, AgentClass.VEHICLE, None, (0.0, 0.0), 5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Track
# ---------------------------------------------------------------------------------------------


def make_track(yaws: list[float], t0: int = 0, dt: int = 100_000_000) -> Track:
    n = len(yaws)
    states = np.zeros((n, len(AgentIndex)))
    states[:, AgentIndex.X] = np.arange(n) * 2.0
    states[:, AgentIndex.Y] = -np.arange(n) * 1.0
    states[:, AgentIndex.YAW] = yaws
    states[:, AgentIndex.VX] = 20.0
    states[:, AgentIndex.LENGTH] = 4.5
    states[:, AgentIndex.WIDTH] = 1.9
    times = t0 + np.arange(n, dtype=np.int64) * dt
    return Track(3, AgentClass.VEHICLE, times, states)


def test_track_hits_samples_exactly() -> None:
    track = make_track([0.1, 0.2, 0.35, -0.4])
    for i, t in enumerate(track.timestamps_ns):
        np.testing.assert_array_equal(track.at(int(t)), track.states[i])
    assert len(track) == 4
    assert (track.start_ns, track.end_ns) == (0, 300_000_000)


def test_track_interpolates_linearly() -> None:
    track = make_track([0.0, 0.4])
    mid = track.at(25_000_000)
    assert mid[AgentIndex.X] == pytest.approx(0.5)
    assert mid[AgentIndex.Y] == pytest.approx(-0.25)
    assert mid[AgentIndex.YAW] == pytest.approx(0.1)
    assert mid[AgentIndex.LENGTH] == pytest.approx(4.5)


def test_track_interpolates_yaw_across_pi() -> None:
    track = make_track([math.pi - 0.1, -math.pi + 0.1])
    mid = track.at(50_000_000)
    # The short way round passes through pi, not through 0.
    assert abs(wrap_angle(mid[AgentIndex.YAW] - math.pi)) == pytest.approx(0.0, abs=1e-12)
    quarter = track.at(25_000_000)
    assert wrap_angle(quarter[AgentIndex.YAW] - (math.pi - 0.05)) == pytest.approx(0.0, abs=1e-12)
    assert -math.pi <= quarter[AgentIndex.YAW] < math.pi


@settings(max_examples=100, deadline=None)
@given(
    yaw0=st.floats(-math.pi, math.pi, exclude_max=True),
    dyaw=st.floats(-3.0, 3.0),
    alpha=st.floats(0.0, 1.0),
)
def test_track_yaw_interpolation_is_on_the_short_arc(
    yaw0: float, dyaw: float, alpha: float
) -> None:
    track = make_track([yaw0, wrap_angle(yaw0 + dyaw)], dt=1_000_000)
    t = round(alpha * 1_000_000)
    yaw = track.at(t)[AgentIndex.YAW]
    expected = yaw0 + dyaw * t / 1_000_000
    assert abs(wrap_angle(yaw - expected)) < 1e-9
    assert -math.pi <= yaw < math.pi


def test_track_at_outside_span() -> None:
    track = make_track([0.0, 0.1], t0=1_000)
    with pytest.raises(ValueError, match="outside"):
        track.at(999)
    with pytest.raises(ValueError, match="outside"):
        track.at(track.end_ns + 1)


def test_track_slice() -> None:
    track = make_track([0.0, 0.1, 0.2, 0.3, 0.4])
    part = track.slice(100_000_000, 300_000_000)
    assert part.timestamps_ns.tolist() == [100_000_000, 200_000_000, 300_000_000]
    np.testing.assert_array_equal(part.states, track.states[1:4])
    assert part.track_id == 3
    assert part.agent_class is AgentClass.VEHICLE
    with pytest.raises(ValueError, match="no sample"):
        track.slice(10, 20)
    with pytest.raises(ValueError, match="before"):
        track.slice(20, 10)


def test_track_arrays_are_copied_and_read_only() -> None:
    times = np.array([0, 10], dtype=np.int64)
    states = np.zeros((2, len(AgentIndex)))
    track = Track(1, AgentClass.CYCLIST, times, states)
    states[0, 0] = 99.0
    assert track.states[0, 0] == 0.0
    with pytest.raises(ValueError):
        track.states[0, 0] = 1.0


@pytest.mark.parametrize(
    ("times", "states", "message"),
    [
        (np.array([0, 10], dtype=np.int32), np.zeros((2, 7)), "timestamps_ns: expected int64"),
        (np.array([0.0, 10.0]), np.zeros((2, 7)), "timestamps_ns: expected int64"),
        (np.zeros((0,), dtype=np.int64), np.zeros((0, 7)), r"T >= 1"),
        (np.array([0, 10], dtype=np.int64), np.zeros((2, 6)), r"states: expected float64 \(2, 7\)"),
        (np.array([0, 10], dtype=np.int64), np.zeros((3, 7)), r"states: expected float64 \(2, 7\)"),
        (
            np.array([0, 10], dtype=np.int64),
            np.zeros((2, 7), dtype=np.float32),
            "states: expected float64",
        ),
        (np.array([0, 10, 10], dtype=np.int64), np.zeros((3, 7)), "strictly increasing"),
        (np.array([0, 10, 5], dtype=np.int64), np.zeros((3, 7)), r"timestamps_ns\[1\]=10"),
    ],
)
def test_track_validation(times: np.ndarray, states: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Track(1, AgentClass.VEHICLE, times, states)


def test_track_rejects_non_finite_states() -> None:
    states = np.zeros((2, len(AgentIndex)))
    states[1, AgentIndex.VX] = math.inf
    with pytest.raises(ValueError, match=r"states: non-finite value inf at \[1, AgentIndex.VX\]"):
        Track(1, AgentClass.VEHICLE, np.array([0, 1], dtype=np.int64), states)


# ---------------------------------------------------------------------------------------------
# Control
# ---------------------------------------------------------------------------------------------


def test_control_defaults_and_constants() -> None:
    assert Control() == Control(0.0, 0.0, 0.0, False, False)
    assert Control.brake_full() == Control(throttle=0.0, steer=0.0, brake=1.0)
    assert Control.coast() == Control()
    hold = Control.hold()
    assert hold.brake == 1.0 and hold.hand_brake


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"throttle": 1.5}, ValueError, r"Control.throttle: must be in \[0.0, 1.0\], got 1.5"),
        ({"steer": -1.01}, ValueError, "Control.steer"),
        ({"brake": -0.1}, ValueError, "Control.brake"),
        ({"steer": math.nan}, ValueError, "Control.steer: must be finite"),
        ({"throttle": math.inf}, ValueError, "Control.throttle: must be finite"),
        ({"throttle": "0.5"}, TypeError, "Control.throttle"),
        ({"brake": True}, TypeError, "Control.brake"),
        ({"reverse": 1}, TypeError, "Control.reverse"),
        ({"hand_brake": None}, TypeError, "Control.hand_brake"),
    ],
)
def test_control_validation(kwargs: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Control(**kwargs)  # type: ignore[arg-type]


def test_control_clipped_counts_clipped_fields() -> None:
    control, changed = Control.clipped(throttle=1.3, steer=-2.0, brake=0.2)
    assert control == Control(throttle=1.0, steer=-1.0, brake=0.2)
    assert changed == ["throttle", "steer"]
    control, changed = Control.clipped(0.4, 0.1, 0.0, reverse=True)
    assert control == Control(0.4, 0.1, 0.0, reverse=True)
    assert changed == []
    control, changed = Control.clipped(np.float32(0.5), 0, -0.0)  # type: ignore[arg-type]
    assert control == Control(0.5, 0.0, 0.0)
    assert changed == []


@pytest.mark.parametrize(
    ("raw", "rejected"),
    [
        ((math.nan, 0.2, 0.0), ["throttle"]),
        ((0.5, math.nan, 0.0), ["steer"]),
        ((0.5, 0.0, math.nan), ["brake"]),
        ((math.inf, -math.inf, 0.0), ["throttle", "steer"]),
        ((math.nan, math.nan, math.nan), ["throttle", "steer", "brake"]),
    ],
)
def test_control_clipped_non_finite_is_a_full_stop(
    raw: tuple[float, float, float], rejected: list[str]
) -> None:
    control, changed = Control.clipped(*raw, hand_brake=True)
    assert control == Control(throttle=0.0, steer=0.0, brake=1.0, hand_brake=True)
    assert changed == rejected


@settings(max_examples=200, deadline=None)
@given(
    throttle=st.floats(allow_nan=True, allow_infinity=True),
    steer=st.floats(allow_nan=True, allow_infinity=True),
    brake=st.floats(allow_nan=True, allow_infinity=True),
)
def test_control_clipped_always_valid(throttle: float, steer: float, brake: float) -> None:
    control, changed = Control.clipped(throttle, steer, brake)
    assert 0.0 <= control.throttle <= 1.0
    assert -1.0 <= control.steer <= 1.0
    assert 0.0 <= control.brake <= 1.0
    raw = {"throttle": throttle, "steer": steer, "brake": brake}
    non_finite = [name for name, value in raw.items() if not math.isfinite(value)]
    if non_finite:
        assert control == Control.brake_full()
        assert changed == non_finite
    else:
        for name, value in raw.items():
            assert (name in changed) == (getattr(control, name) != value)
