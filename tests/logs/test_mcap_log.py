"""Tests of the MCAP episode log: round trip, crash safety (SIGKILL), truncation, bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcap.reader import SeekingReader
from mcap_protobuf.decoder import DecoderFactory

from kaido.logs.mcap_log import (
    AGENT_CLASS_RGB,
    LOG_FORMAT,
    TOPIC_AGENTS,
    TOPIC_CONTROL,
    TOPIC_EGO_STATE,
    TOPIC_EVENTS,
    TOPIC_METRICS,
    TOPIC_PLAN,
    TOPIC_ROUTE,
    TOPIC_SCENE_PLAN,
    TOPIC_TF,
    TOPIC_TRAFFIC_LIGHTS,
    EpisodeRecorder,
    LogMessage,
    camera_calibration_topic,
    camera_frame_id,
    camera_image_topic,
    decode_image,
    decode_point_cloud,
    lidar_frame_id,
    lidar_topic,
    log_summary,
    read_log,
    read_log_with_report,
)
from kaido.scene.agents import AgentClass, AgentState, Control, EgoState
from kaido.scene.frame import (
    CameraImage,
    Frame,
    GroundTruth,
    LidarIndex,
    LidarSweep,
    TrafficLightColor,
    TrafficLightState,
)
from kaido.scene.geometry import SE2, Box3D, Quaternion
from kaido.scene.sensors import SensorRig, load_sensor_rig

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RIG = ROOT / "configs" / "sensors" / "default.yaml"
DT_NS = 100_000_000
N_AGENTS = 10


def rig() -> SensorRig:
    return load_sensor_rig(DEFAULT_RIG)


LIDAR = lidar_topic(rig().lidars[0].name)


def camera_rgb(h: int, w: int, i: int) -> np.ndarray:
    """A smooth image that changes with the tick (JPEG keeps it close)."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = (xx * 255 // max(w - 1, 1) + 3 * i) % 256
    g = yy * 255 // max(h - 1, 1)
    b = np.full_like(xx, (40 * i) % 256)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def make_tick(sensors: SensorRig, i: int) -> dict[str, Any]:
    """write_tick keyword arguments for tick ``i``, built from the rig's actual sensor sizes."""
    rng = np.random.default_rng(i)
    ts = 1_000_000_000 + i * DT_NS
    ego = EgoState(
        timestamp_ns=ts,
        pose=SE2(10.0 + 0.5 * i, -3.0 + 0.1 * i, 0.3 - 0.02 * i),
        velocity=(5.0 + 0.1 * i, 0.05),
        acceleration=(0.4, -0.1),
        yaw_rate=0.02 * i,
        steering_angle=-0.01 * i,
    )
    images = {
        c.name: CameraImage(c.name, ts - 1000, camera_rgb(c.height, c.width, i))
        for c in sensors.cameras
    }
    lidar = {}
    for spec in sensors.lidars:
        n = spec.points_per_sweep
        points = rng.normal(scale=20.0, size=(n, len(LidarIndex))).astype(np.float32)
        semantic = rng.integers(0, 23, size=n).astype(np.uint8)
        lidar[spec.name] = LidarSweep(spec.name, ts - 2000, points, semantic)
    agents = tuple(
        AgentState(
            track_id=100 + k,
            agent_class=AgentClass(k % len(AgentClass)),
            box=Box3D(5.0 * k + 0.1 * i, 3.0 - k, 0.8, 0.1 * k, 4.5, 1.9, 1.6),
            velocity=(1.0 + k, -0.5),
            timestamp_ns=ts,
        )
        for k in range(N_AGENTS)
    )
    color = TrafficLightColor.RED if i < 15 else TrafficLightColor.GREEN
    lights = (
        TrafficLightState("tl_1", color, (20.0, 5.0, 4.0), np.array([[18.0, 2.0], [18.0, 6.0]])),
        TrafficLightState(7, TrafficLightColor.YELLOW, (-20.0, 5.0, 4.0)),
    )
    frame = Frame(ts, ego, images, lidar, sensors, GroundTruth(agents, lights))
    route_x = np.linspace(0.0, 200.0, 101)
    route = np.stack([route_x, np.full_like(route_x, -3.0), np.zeros_like(route_x)], axis=-1)
    plan = np.stack([np.linspace(0, 20, 21) + i, np.zeros(21), np.full(21, 0.01 * i)], axis=-1)
    return {
        "timestamp_ns": ts,
        "frame": frame,
        "ego_box": Box3D(ego.pose.x + 1.4, ego.pose.y, 0.75, ego.pose.yaw, 4.6, 1.9, 1.5),
        "route_path": route,
        "control": Control(throttle=0.01 * i, steer=-0.5 + 0.02 * i, brake=0.0, reverse=i == 3),
        "plan": plan,
        "extra": {"route_completion": 0.5 * i, "ds": 100.0},
    }


def write_log(path: Path, ticks: int) -> list[dict[str, Any]]:
    sensors = rig()
    written = [make_tick(sensors, i) for i in range(ticks)]
    with EpisodeRecorder(path, rig=sensors, metadata={"git_commit": "abc123", "seed": "7"}) as rec:
        for i, kw in enumerate(written):
            rec.write_tick(**kw)
            if i == 2:
                rec.write_event(kw["timestamp_ns"], "mode", "fallback engaged", {"level": 2})
    return written


def yaw_of(q: Any) -> float:
    return Quaternion(q.w, q.x, q.y, q.z).to_euler()[2]


def fingerprint(m: LogMessage) -> tuple[str, int, str, Any]:
    """A comparable form of a message (protobuf classes differ between reads)."""
    payload = m.message if isinstance(m.message, dict) else m.message.SerializeToString()
    return (m.topic, m.log_time_ns, m.schema_name, payload)


TICK_TOPICS_PER_SENSOR = (camera_image_topic, camera_calibration_topic)
TICK_TOPICS = (
    TOPIC_TF,
    TOPIC_AGENTS,
    TOPIC_TRAFFIC_LIGHTS,
    TOPIC_SCENE_PLAN,
    TOPIC_PLAN,
    TOPIC_EGO_STATE,
    TOPIC_CONTROL,
    TOPIC_METRICS,
)


def tick_topics(sensors: SensorRig) -> list[str]:
    topics = list(TICK_TOPICS)
    for c in sensors.cameras:
        topics += [f(c.name) for f in TICK_TOPICS_PER_SENSOR]
    topics += [lidar_topic(x.name) for x in sensors.lidars]
    return topics


@pytest.fixture(scope="module")
def log30(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    path = tmp_path_factory.mktemp("log") / "run.mcap"
    return path, write_log(path, 30)


def test_every_topic_present_with_the_right_count(log30: tuple[Path, list[dict[str, Any]]]):
    path, written = log30
    sensors = rig()
    messages, report = read_log_with_report(path)
    assert report.complete and report.error is None
    assert report.messages == len(messages)
    counts = Counter(m.topic for m in messages)
    expected = {t: 30 for t in tick_topics(sensors)}
    expected[TOPIC_ROUTE] = 1  # same route every tick: written once
    expected[TOPIC_EVENTS] = 1
    assert dict(counts) == expected
    summary = log_summary(path)
    assert {t: v["count"] for t, v in summary["topics"].items()} == expected
    assert summary["messages"] == len(messages)
    assert summary["start_ns"] == written[0]["timestamp_ns"]
    assert summary["end_ns"] == written[-1]["timestamp_ns"]
    assert summary["complete"] and summary["error"] is None
    assert summary["topics"][TOPIC_EGO_STATE]["message_encoding"] == "json"
    assert summary["topics"][LIDAR]["schema"] == "foxglove.PointCloud"
    meta = summary["metadata"]["kaido"]
    assert meta["git_commit"] == "abc123" and meta["seed"] == "7"
    assert meta["log_format"] == LOG_FORMAT
    assert SensorRig.from_dict(json.loads(meta["sensor_rig"])).allclose(sensors)
    # log time = the tick's sim time, ticks in order
    ego_times = [m.log_time_ns for m in messages if m.topic == TOPIC_EGO_STATE]
    assert ego_times == [kw["timestamp_ns"] for kw in written]


def test_decoded_values_equal_what_was_written(log30: tuple[Path, list[dict[str, Any]]]):
    path, written = log30
    sensors = rig()
    by_topic: dict[str, list[LogMessage]] = {}
    for m in read_log(path):
        by_topic.setdefault(m.topic, []).append(m)
    for i, kw in enumerate(written):
        frame: Frame = kw["frame"]
        ego = frame.ego
        state = by_topic[TOPIC_EGO_STATE][i].message
        sec, nsec = divmod(kw["timestamp_ns"], 1_000_000_000)
        assert state["timestamp"] == {"sec": sec, "nsec": nsec}
        assert (state["x"], state["y"], state["yaw"]) == (ego.pose.x, ego.pose.y, ego.pose.yaw)
        assert (state["vx"], state["vy"]) == ego.velocity
        assert (state["ax"], state["ay"]) == ego.acceleration
        assert state["yaw_rate"] == ego.yaw_rate
        assert state["steering_angle"] == ego.steering_angle
        assert state["speed"] == pytest.approx(ego.speed)

        control = by_topic[TOPIC_CONTROL][i].message
        c: Control = kw["control"]
        assert control["throttle"] == c.throttle and control["steer"] == c.steer
        assert control["brake"] == c.brake
        assert control["reverse"] is c.reverse and control["hand_brake"] is c.hand_brake

        plan = by_topic[TOPIC_PLAN][i].message
        assert plan["frame_id"] == "world"
        got_plan = np.array([[p["x"], p["y"], p["yaw"]] for p in plan["points"]])
        np.testing.assert_array_equal(got_plan, kw["plan"])
        scene_plan = by_topic[TOPIC_SCENE_PLAN][i].message.entities[0].lines[0].points
        np.testing.assert_array_equal([[p.x, p.y] for p in scene_plan], kw["plan"][:, :2])

        assert by_topic[TOPIC_METRICS][i].message == {
            "timestamp": {"sec": sec, "nsec": nsec},
            **kw["extra"],
        }

        # transforms: world -> ego from the pose, ego -> sensors from the rig
        tf = {t.child_frame_id: t for t in by_topic[TOPIC_TF][i].message.transforms}
        world_ego = tf["ego"]
        assert world_ego.parent_frame_id == "world"
        assert (world_ego.translation.x, world_ego.translation.y) == (ego.pose.x, ego.pose.y)
        assert yaw_of(world_ego.rotation) == pytest.approx(ego.pose.yaw, abs=1e-12)
        for cam in sensors.cameras:
            t = tf[camera_frame_id(cam.name)]
            assert t.parent_frame_id == "ego"
            pose = cam.optical_to_ego()
            np.testing.assert_allclose(
                [t.translation.x, t.translation.y, t.translation.z], pose.translation, atol=1e-12
            )
            q = t.rotation
            rot = Quaternion(q.w, q.x, q.y, q.z).to_rotation_matrix()
            np.testing.assert_allclose(rot, pose.rotation, atol=1e-9)
        for spec in sensors.lidars:
            t = tf[lidar_frame_id(spec.name)]
            np.testing.assert_allclose(
                [t.translation.x, t.translation.y, t.translation.z],
                spec.extrinsics.translation,
                atol=1e-12,
            )

        for cam in sensors.cameras:
            image = by_topic[camera_image_topic(cam.name)][i].message
            assert image.format == "jpeg" and image.frame_id == camera_frame_id(cam.name)
            assert image.timestamp.ToNanoseconds() == frame.images[cam.name].timestamp_ns
            rgb = decode_image(image)
            original = frame.images[cam.name].rgb
            assert rgb.shape == original.shape and rgb.dtype == np.uint8
            assert np.abs(rgb.astype(int) - original.astype(int)).mean() < 3.0
            calib = by_topic[camera_calibration_topic(cam.name)][i].message
            assert (calib.width, calib.height) == (cam.width, cam.height)
            assert calib.frame_id == camera_frame_id(cam.name)
            np.testing.assert_array_equal(np.reshape(calib.K, (3, 3)), cam.intrinsic_matrix())
            p_matrix = np.reshape(calib.P, (3, 4))
            np.testing.assert_array_equal(p_matrix[:, :3], cam.intrinsic_matrix())

        for spec in sensors.lidars:
            cloud = by_topic[lidar_topic(spec.name)][i].message
            sweep = frame.lidar[spec.name]
            assert cloud.frame_id == lidar_frame_id(spec.name)
            assert cloud.timestamp.ToNanoseconds() == sweep.timestamp_ns
            fields = decode_point_cloud(cloud)
            assert list(fields) == ["x", "y", "z", "intensity", "semantic"]
            got = np.stack([fields[k] for k in ("x", "y", "z", "intensity")], axis=-1)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, sweep.points)
            np.testing.assert_array_equal(fields["semantic"], sweep.semantic)

        gt = frame.ground_truth
        assert gt is not None
        scene = by_topic[TOPIC_AGENTS][i].message
        assert [d.type for d in scene.deletions] == [1]  # ALL earlier entities
        entities = {e.id: e for e in scene.entities}
        assert set(entities) == {"ego"} | {f"agent/{a.track_id}" for a in gt.agents}
        for agent in gt.agents:
            cube = entities[f"agent/{agent.track_id}"].cubes[0]
            b = agent.box
            assert (cube.pose.position.x, cube.pose.position.y, cube.pose.position.z) == (
                b.x,
                b.y,
                b.z,
            )
            assert yaw_of(cube.pose.orientation) == pytest.approx(b.yaw, abs=1e-12)
            assert (cube.size.x, cube.size.y, cube.size.z) == (b.length, b.width, b.height)
            color = AGENT_CLASS_RGB[agent.agent_class]
            assert round(cube.color.r * 255) == color[0] and round(cube.color.b * 255) == color[2]
            meta = {kv.key: kv.value for kv in entities[f"agent/{agent.track_id}"].metadata}
            assert meta["track_id"] == str(agent.track_id)
        ego_cube = entities["ego"].cubes[0]
        assert ego_cube.pose.position.x == kw["ego_box"].x

        lights = by_topic[TOPIC_TRAFFIC_LIGHTS][i].message
        light = {e.id: e for e in lights.entities}["traffic_light/tl_1"]
        expected_red = 1.0 if i < 15 else 0.0
        assert light.spheres[0].color.r == pytest.approx(expected_red)
        assert [[p.x, p.y] for p in light.lines[0].points] == [[18.0, 2.0], [18.0, 6.0]]

    route = by_topic[TOPIC_ROUTE][0].message.entities[0]
    assert route.id == "route"
    np.testing.assert_array_equal(
        [[p.x, p.y] for p in route.lines[0].points], written[0]["route_path"][:, :2]
    )
    event = by_topic[TOPIC_EVENTS][0]
    assert event.schema_name == "kaido.Event"
    assert event.message["kind"] == "mode" and event.message["data"] == {"level": 2}


def test_indexed_read_by_the_mcap_library(log30: tuple[Path, list[dict[str, Any]]]):
    """Viewers (Foxglove) seek through the summary: chunk indexes, statistics, schemas."""
    path, _ = log30
    with open(path, "rb") as f:
        reader = SeekingReader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        ours = list(read_log(path))
        assert summary.statistics.message_count == len(ours)
        assert len(summary.chunk_indexes) == 30 + 1  # one chunk per tick, one for the event
        indexed = [
            (channel.topic, message.log_time)
            for _, channel, message in reader.iter_messages(log_time_order=False)
        ]
        assert indexed == [(m.topic, m.log_time_ns) for m in ours]
        decoded = [d for _, _, _, d in reader.iter_decoded_messages(topics=[LIDAR])]
        assert len(decoded) == 30 and type(decoded[0]).__name__ == "PointCloud"
        for schema in summary.schemas.values():
            if schema.encoding == "jsonschema":
                assert json.loads(schema.data)["type"] == "object"
            else:
                assert schema.encoding == "protobuf" and schema.name.startswith("foxglove.")
        assert reader.get_header().library.startswith("kaido/")


def test_topic_filter_and_json_schemas(log30: tuple[Path, list[dict[str, Any]]]):
    path, _ = log30
    only = list(read_log(path, topics=[TOPIC_CONTROL, LIDAR]))
    assert Counter(m.topic for m in only) == {TOPIC_CONTROL: 30, LIDAR: 30}
    with pytest.raises(TypeError, match="topics"):
        read_log(path, topics=TOPIC_CONTROL)


def test_route_written_again_when_it_changes(tmp_path: Path):
    sensors = rig()
    path = tmp_path / "route.mcap"
    with EpisodeRecorder(path, rig=sensors, metadata={}) as rec:
        for i in range(6):
            kw = make_tick(sensors, i)
            if i >= 3:
                kw["route_path"] = kw["route_path"] + 1.0
            if i in (1, 4):
                kw["route_path"] = None
            if i == 5:
                kw["plan"] = None
            rec.write_tick(**kw)
    messages = list(read_log(path))
    routes = [m for m in messages if m.topic == TOPIC_ROUTE]
    assert [m.log_time_ns for m in routes] == [1_000_000_000, 1_000_000_000 + 3 * DT_NS]
    # the plan vanishes: its scene entity is deleted, no /kaido/plan message
    scene_plans = [m.message for m in messages if m.topic == TOPIC_SCENE_PLAN]
    assert len(scene_plans) == 6 and not scene_plans[-1].entities
    assert [d.type for d in scene_plans[-1].deletions] == [1]
    assert sum(m.topic == TOPIC_PLAN for m in messages) == 5


def test_non_finite_numbers_are_written_as_null(tmp_path: Path):
    sensors = rig()
    path = tmp_path / "nan.mcap"
    kw = make_tick(sensors, 0)
    frame: Frame = kw["frame"]
    ego = EgoState(frame.timestamp_ns, frame.ego.pose, velocity=(math.nan, 0.0))
    kw["frame"] = Frame(frame.timestamp_ns, ego, frame.images, frame.lidar, sensors)
    kw["extra"] = {"ttc": math.inf}
    with EpisodeRecorder(path, rig=sensors, metadata={}) as rec:
        rec.write_tick(**kw)
        rec.write_event(5, "infraction", "collision", {"speed": math.nan, "ids": (1, 2)})
    by_topic = {m.topic: m.message for m in read_log(path)}
    assert by_topic[TOPIC_EGO_STATE]["vx"] is None and by_topic[TOPIC_EGO_STATE]["speed"] is None
    assert by_topic[TOPIC_METRICS]["ttc"] is None
    assert by_topic[TOPIC_EVENTS]["data"] == {"speed": None, "ids": [1, 2]}
    # no ground truth: only the ego box, no traffic-light topic
    assert [e.id for e in by_topic[TOPIC_AGENTS].entities] == ["ego"]
    assert TOPIC_TRAFFIC_LIGHTS not in by_topic


def test_bad_ticks_are_rejected_and_leave_the_file_unchanged(tmp_path: Path):
    sensors = rig()
    path = tmp_path / "bad.mcap"
    rec = EpisodeRecorder(path, rig=sensors, metadata={"a": "b"})
    rec.write_tick(**make_tick(sensors, 0))
    size = path.stat().st_size
    kw = make_tick(sensors, 1)
    with pytest.raises(ValueError, match=r"write_tick\.plan"):
        rec.write_tick(**{**kw, "plan": np.zeros((5, 2))})
    with pytest.raises(ValueError, match=r"write_tick\.route_path"):
        rec.write_tick(**{**kw, "route_path": np.full((4, 3), np.nan)})
    with pytest.raises(TypeError, match=r"write_tick\.control"):
        rec.write_tick(**{**kw, "control": (0.0, 0.0, 0.0)})
    with pytest.raises(ValueError, match=r"write_tick\.timestamp_ns"):
        rec.write_tick(**{**kw, "timestamp_ns": -1})
    with pytest.raises(TypeError, match=r"extra\['x'\]"):
        rec.write_tick(**{**kw, "extra": {"x": "fast"}})
    with pytest.raises(TypeError, match=r"write_event\.data"):
        rec.write_event(0, "k", "m", {"obj": object()})
    other = SensorRig(cameras=(), lidars=sensors.lidars)
    with pytest.raises(ValueError, match="no such camera"):
        EpisodeRecorder(tmp_path / "x.mcap", rig=other, metadata={}).write_tick(**kw)
    assert path.stat().st_size == size
    rec.close()
    rec.close()
    with pytest.raises(RuntimeError, match="closed"):
        rec.write_tick(**kw)
    messages, report = read_log_with_report(path)
    assert report.complete
    assert Counter(m.topic for m in messages)[TOPIC_EGO_STATE] == 1
    with pytest.raises(ValueError, match="reserved"):
        EpisodeRecorder(tmp_path / "y.mcap", rig=sensors, metadata={"sensor_rig": "x"})
    with pytest.raises(TypeError, match="metadata"):
        EpisodeRecorder(tmp_path / "z.mcap", rig=sensors, metadata={"seed": 3})  # type: ignore[dict-item]


def test_not_an_mcap_file_is_a_clear_error(tmp_path: Path):
    text = tmp_path / "notes.mcap"
    text.write_text("hello, this is not a log\n")
    with pytest.raises(ValueError, match=r"notes\.mcap.*not an MCAP file"):
        read_log(text)
    with pytest.raises(ValueError, match="not an MCAP file"):
        read_log_with_report(text)
    with pytest.raises(ValueError, match="not an MCAP file"):
        log_summary(text)
    with pytest.raises(FileNotFoundError):
        read_log(tmp_path / "missing.mcap")


def test_empty_file_reads_as_a_log_cut_before_anything(tmp_path: Path):
    empty = tmp_path / "empty.mcap"
    empty.write_bytes(b"")
    messages, report = read_log_with_report(empty)
    assert messages == [] and not report.complete
    assert report.error is not None and "magic" in report.error


@pytest.fixture(scope="module")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[LogMessage]]:
    path = tmp_path_factory.mktemp("small") / "small.mcap"
    write_log(path, 6)
    return path.read_bytes(), list(read_log(path))


def check_prefix(messages: list[LogMessage], full: list[LogMessage]) -> None:
    assert len(messages) <= len(full)
    for got, want in zip(messages, full, strict=False):
        assert fingerprint(got) == fingerprint(want)


def test_truncated_copies_yield_a_prefix_of_whole_ticks(
    small_log: tuple[bytes, list[LogMessage]], tmp_path: Path
):
    data, full = small_log
    sensors = rig()
    rng = np.random.default_rng(1)
    offsets = sorted(
        {0, 3, 8, 20, len(data) - 1, len(data) - 8, len(data) - 30}
        | set(rng.integers(0, len(data), size=20).tolist())
    )
    cut = tmp_path / "cut.mcap"
    seen_counts = set()
    for offset in offsets:
        cut.write_bytes(data[:offset])
        messages, report = read_log_with_report(cut)
        check_prefix(messages, full)
        assert not report.complete
        assert report.error is not None and "byte" in report.error
        assert report.messages == len(messages)
        # every tick is one chunk: a cut never leaves half a tick
        counts = Counter(m.topic for m in messages)
        assert len({counts[t] for t in tick_topics(sensors)}) == 1
        seen_counts.add(counts[TOPIC_EGO_STATE])
        # streaming gives the same, without raising
        assert [fingerprint(m) for m in read_log(cut)] == [fingerprint(m) for m in messages]
    assert len(seen_counts) > 2  # the cuts fell at different ticks
    cut.write_bytes(data)
    messages, report = read_log_with_report(cut)
    assert report.complete and len(messages) == len(full)


def test_corrupted_bytes_stop_the_read_without_raising(
    small_log: tuple[bytes, list[LogMessage]], tmp_path: Path
):
    data, full = small_log
    rng = np.random.default_rng(2)
    bad = tmp_path / "bad.mcap"
    stopped = 0
    for offset in rng.integers(len(data) // 4, len(data) - 100, size=10).tolist():
        corrupted = bytearray(data)
        corrupted[offset] ^= 0xFF
        bad.write_bytes(bytes(corrupted))
        messages, report = read_log_with_report(bad)
        check_prefix(messages, full)
        if not report.complete:
            assert report.error is not None and "byte" in report.error
            stopped += len(messages) < len(full)
    assert stopped > 0


# -- crash safety --------------------------------------------------------------------------------


def kill_target(path: str) -> None:
    """Child process: write ticks forever, printing the count after each returns."""
    sensors = rig()
    ticks = [make_tick(sensors, i) for i in range(4)]
    rec = EpisodeRecorder(Path(path), rig=sensors, metadata={"run": "killed"})
    i = 0
    while True:
        kw = dict(ticks[i % len(ticks)])
        kw["timestamp_ns"] = 1_000_000_000 + i * DT_NS
        rec.write_tick(**kw)
        if i % 3 == 0:
            rec.write_event(kw["timestamp_ns"], "tick", f"tick {i}")
        i += 1
        print(i, flush=True)


def test_sigkill_leaves_every_complete_tick_readable(tmp_path: Path):
    path = tmp_path / "killed.mcap"
    target = 12
    code = f"from tests.logs.test_mcap_log import kill_target; kill_target({str(path)!r})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    written = 0
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60.0
        while written < target and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            written = int(line)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert written >= target, proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL
    saved = tmp_path / "copy.mcap"
    shutil.copy(path, saved)  # what was on disk at the kill
    messages, report = read_log_with_report(saved)
    assert not report.complete
    assert report.error is not None and "byte" in report.error
    counts = Counter(m.topic for m in messages)
    for topic in tick_topics(rig()):
        assert counts[topic] >= written, topic
    assert counts[TOPIC_EVENTS] >= (written + 2) // 3
    ego_times = [m.log_time_ns for m in messages if m.topic == TOPIC_EGO_STATE]
    assert ego_times == [1_000_000_000 + i * DT_NS for i in range(len(ego_times))]
    summary = log_summary(saved)
    assert summary["metadata"]["kaido"]["run"] == "killed"
    assert not summary["complete"]
