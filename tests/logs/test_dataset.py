"""``kaido dataset build``: shards from real embedded-simulator logs, checked field by field
against what the logs hold (geometry that can fail), plus the pure helpers against references.

:func:`built_dataset` (shared with the ShardDataset tests) builds once per pytest run from the
episodes of :func:`tests.simulation.test_collect.collected_logs`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
import yaml
from mcap.reader import make_reader
from mcap.writer import Writer

from kaido.logs.dataset import (
    DATASET_FORMAT,
    MAX_CURVATURE,
    actions_from_trajectory,
    box_footprint_mask,
    build_dataset,
    load_shard,
    points_occupancy,
    read_manifest,
    rollout_actions,
    route_points,
)
from kaido.logs.mcap_log import TOPIC_AGENTS, TOPIC_EGO_STATE, lidar_topic, read_log
from kaido.logs.sample import (
    SAMPLE_FIELDS,
    BevClass,
    BoxField,
    DetectionClass,
    EgoFeature,
    SampleSpec,
    check_sample,
    field_layout,
)
from kaido.scene.raster import RasterSpec
from kaido.tools import cmd_data
from tests.simulation.test_collect import collected_logs

TEST_SPEC = SampleSpec(
    image_hw=(48, 80),
    max_lidar_points=4096,
    max_agents=32,
    future_steps=4,
    past_steps=2,
    occupancy_steps=4,
    route_points=8,
)
"""Small sizes for 5 s logs: samples at 1.0 .. 2.5 s."""


def built_dataset(root: Path) -> Path:
    """``root/dataset`` built from :func:`collected_logs` with two workers (once per run)."""
    out = root / "dataset"
    summary = build_dataset(
        collected_logs(root), out, TEST_SPEC, workers=2, val_fraction=0.5, progress=False
    )
    assert summary.failed == (), summary.failed
    return out


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_dataset(tmp_path_factory.getbasetemp() / "kaido-data")


def shard(data_dir: Path, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    folder = data_dir / "shards" / name
    meta = json.loads((folder / "shard.json").read_text())
    return meta, load_shard(folder, SampleSpec.from_dict(meta["spec"]))


def logged_ego(log: Path) -> dict[int, tuple[float, float, float, float]]:
    return {
        m.log_time_ns: (m.message["x"], m.message["y"], m.message["yaw"], m.message["speed"])
        for m in read_log(log, topics=[TOPIC_EGO_STATE])
    }


def to_ego(pose: tuple[float, ...], x: float, y: float) -> tuple[float, float]:
    c, s = math.cos(pose[2]), math.sin(pose[2])
    dx, dy = x - pose[0], y - pose[1]
    return c * dx + s * dy, -s * dx + c * dy


STEP_NS = TEST_SPEC.step_ns


# -- the built dataset --------------------------------------------------------------------------


def test_manifest_and_shards_hold_every_field_with_its_dtype_and_shape(data_dir: Path) -> None:
    manifest = read_manifest(data_dir)
    assert manifest["format"] == DATASET_FORMAT
    assert SampleSpec.from_dict(manifest["spec"]) == TEST_SPEC
    assert manifest["fields"] == field_layout(TEST_SPEC)
    assert manifest["failed"] == []
    names = {s["name"] for s in manifest["shards"]}
    assert names == {"stopped", "traffic"}
    total = 0
    for entry in manifest["shards"]:
        assert entry["samples"] == 4  # 1.0, 1.5, 2.0, 2.5 s of a 5 s log
        assert entry["complete"] and entry["read_error"] is None and entry["missing"] == {}
        folder = data_dir / entry["path"]
        for name, f in SAMPLE_FIELDS.items():
            array = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            assert array.dtype == f.dtype and array.shape == (4, *f.shape(TEST_SPEC)), name
        _, arrays = shard(data_dir, entry["name"])
        for i in range(entry["samples"]):
            check_sample({k: np.asarray(v[i]) for k, v in arrays.items()}, TEST_SPEC)
        check_sample({k: np.asarray(v) for k, v in arrays.items()}, TEST_SPEC, batch_shape=(4,))
        assert arrays["camera_mask"].all() and (arrays["lidar_count"] > 1000).all()
        total += entry["samples"]
    counts = manifest["counts"]
    assert counts["samples"] == total == 8
    payload = sum(f.dtype.itemsize * math.prod(f.shape(TEST_SPEC)) for f in SAMPLE_FIELDS.values())
    assert payload <= counts["bytes_per_sample"] < payload + 2000  # + .npy headers


def test_split_has_no_log_in_both(data_dir: Path) -> None:
    manifest = read_manifest(data_dir)
    train, val = manifest["splits"]["train"], manifest["splits"]["val"]
    assert set(train["shards"]).isdisjoint(val["shards"])
    assert len(train["shards"]) == len(val["shards"]) == 1  # val_fraction 0.5 of two groups
    assert train["samples"] + val["samples"] == manifest["counts"]["samples"]
    groups = {s["split"]: s["group"] for s in manifest["shards"]}
    assert groups["train"] != groups["val"]


def test_ego_past_and_future_are_the_logged_poses_in_the_ego_frame(data_dir: Path) -> None:
    logs = data_dir.parent / "logs"
    for name in ("stopped", "traffic"):
        meta, arrays = shard(data_dir, name)
        ego = logged_ego(logs / name / "run.mcap")
        assert meta["timestamps_ns"] == [1_000_000_000, 1_500_000_000, 2_000_000_000, 2_500_000_000]
        for i, t in enumerate(meta["timestamps_ns"]):
            now = ego[t]
            assert arrays["ego_state"][i, EgoFeature.SPEED] == pytest.approx(now[3], abs=1e-5)
            assert arrays["ego_state"][i, EgoFeature.SPEED_LIMIT] == pytest.approx(13.89)
            for field, offsets in (
                ("ego_future", range(1, TEST_SPEC.future_steps + 1)),
                ("ego_past", range(-TEST_SPEC.past_steps, 0)),
            ):
                for row, k in enumerate(offsets):
                    then = ego[t + k * STEP_NS]
                    x, y = to_ego(now, then[0], then[1])
                    yaw = math.remainder(then[2] - now[2], math.tau)
                    np.testing.assert_allclose(arrays[field][i, row], [x, y, yaw], atol=1e-4)
        # the expert drives off: the future is ahead and non-trivial
        assert (arrays["ego_future"][:, -1, 0] > 2.0).all()


def test_actions_roll_out_to_the_logged_future(data_dir: Path) -> None:
    for name in ("stopped", "traffic"):
        _, arrays = shard(data_dir, name)
        for i in range(len(arrays["actions"])):
            rolled = rollout_actions(
                float(arrays["ego_state"][i, EgoFeature.SPEED]),
                arrays["actions"][i],
                TEST_SPEC.step_seconds,
            )
            future = arrays["ego_future"][i]
            assert np.hypot(*(rolled[:, :2] - future[:, :2]).T).max() < 0.25
            assert np.abs(rolled[:, 2] - future[:, 2]).max() < 0.02


def test_boxes_are_the_logged_agents_and_lie_on_their_bev_layer(data_dir: Path) -> None:
    log = data_dir.parent / "logs" / "traffic" / "run.mcap"
    meta, arrays = shard(data_dir, "traffic")
    ego = logged_ego(log)
    wanted = set(meta["timestamps_ns"])
    logged: dict[int, list[tuple[str, float, float]]] = {}
    for m in read_log(log, topics=[TOPIC_AGENTS]):
        if m.log_time_ns in wanted:
            logged[m.log_time_ns] = [
                (
                    {kv.key: kv.value for kv in e.metadata}["class"],
                    e.cubes[0].pose.position.x,
                    e.cubes[0].pose.position.y,
                )
                for e in m.message.entities
                if e.id.startswith("agent/")
            ]
    classes = {c.name.lower(): c for c in DetectionClass}
    layer = {
        DetectionClass.VEHICLE: BevClass.VEHICLE,
        DetectionClass.CYCLIST: BevClass.VEHICLE,
        DetectionClass.PEDESTRIAN: BevClass.PEDESTRIAN,
    }
    grid = TEST_SPEC.grid
    seen = dict.fromkeys(DetectionClass, 0)
    for i, t in enumerate(meta["timestamps_ns"]):
        expected = []
        for cls, x, y in logged[t]:
            ex, ey = to_ego(ego[t], x, y)
            if cls in classes and -16.0 <= ex < 48.0 and -32.0 <= ey < 32.0:
                expected.append((classes[cls], ex, ey))
        mask = arrays["box_mask"][i]
        assert mask.sum() == len(expected) > 0  # fewer than max_agents in these scenes
        got = sorted(
            (int(c), round(float(b[BoxField.X]), 3), round(float(b[BoxField.Y]), 3))
            for b, c in zip(arrays["boxes"][i][mask], arrays["box_class"][i][mask], strict=True)
        )
        assert got == sorted((int(c), round(x, 3), round(y, 3)) for c, x, y in expected)
        for b, c in zip(arrays["boxes"][i][mask], arrays["box_class"][i][mask], strict=True):
            row = math.floor(grid.origin_row - float(b[BoxField.X]) / grid.resolution)
            col = math.floor(grid.origin_col - float(b[BoxField.Y]) / grid.resolution)
            assert arrays["bev_semantics"][i, layer[DetectionClass(int(c))], row, col] == 1
            seen[DetectionClass(int(c))] += 1
        # agents' future positions start next to where they are now
        valid = arrays["agent_future_mask"][i, :, 0] & mask
        step = np.hypot(*(arrays["agent_future"][i, valid, 0] - arrays["boxes"][i, valid, :2]).T)
        assert (step < 0.5 * 20.0).all()
    assert seen[DetectionClass.VEHICLE] > 0 and seen[DetectionClass.PEDESTRIAN] > 0


def test_occupancy_future_holds_the_stopped_vehicle_and_little_else_on_the_road(
    data_dir: Path,
) -> None:
    _, arrays = shard(data_dir, "stopped")
    grid = TEST_SPEC.grid
    for i in range(len(arrays["boxes"])):
        mask = arrays["box_mask"][i]
        boxes = arrays["boxes"][i][mask]
        assert len(boxes) == 1  # the stopped vehicle, nothing else on an empty road
        box = boxes[0]
        assert box[BoxField.X] > 5.0 and abs(box[BoxField.Y]) < 2.0  # ahead in the ego's lane
        assert np.hypot(box[BoxField.VX], box[BoxField.VY]) < 0.1
        footprint = box_footprint_mask(
            [[box[BoxField.X], box[BoxField.Y], box[BoxField.YAW], box[BoxField.LENGTH] + 2.0,
              box[BoxField.WIDTH] + 2.0]], grid,
        ).astype(bool)  # fmt: skip
        road = arrays["bev_semantics"][i, BevClass.DRIVABLE].astype(bool) & ~footprint
        for k in range(TEST_SPEC.occupancy_steps):
            occupancy = arrays["occupancy_future"][i, k].astype(bool)
            # the vehicle stands still, so it stays where it is in the frame of time t: the
            # lidar sees its rear face (two pixels wide), wherever the ego has moved by then
            assert (occupancy & footprint).sum() >= 2
            assert (occupancy & road).sum() <= 0.02 * road.sum()


def test_a_truncated_log_builds_a_prefix_in_the_same_split_as_its_episode(
    data_dir: Path, tmp_path: Path
) -> None:
    logs = data_dir.parent / "logs"
    source = logs / "stopped" / "run.mcap"
    copies = tmp_path / "logs"
    for name in ("stopped", "traffic"):
        (copies / name).mkdir(parents=True)
        os.symlink(logs / name / "run.mcap", copies / name / "run.mcap")
    (copies / "cut").mkdir()
    data = source.read_bytes()
    (copies / "cut" / "run.mcap").write_bytes(data[: int(0.8 * len(data))])
    (copies / "junk").mkdir()
    (copies / "junk" / "run.mcap").write_text("not an mcap file")
    out = tmp_path / "dataset"
    summary = build_dataset(copies, out, TEST_SPEC, workers=1, val_fraction=0.5, progress=False)
    manifest = read_manifest(out)
    entries = {s["name"]: s for s in manifest["shards"]}
    assert set(entries) == {"stopped", "traffic", "cut"}
    assert [f["log"] for f in manifest["failed"]] == ["junk/run.mcap"]
    assert "not an MCAP file" in manifest["failed"][0]["error"]
    assert summary.failed == (("junk/run.mcap", manifest["failed"][0]["error"]),)
    cut = entries["cut"]
    assert not cut["complete"] and "truncated" in cut["read_error"]
    assert manifest["counts"]["truncated_logs"] == 1
    assert 0 < cut["samples"] < entries["stopped"]["samples"]
    # the same episode (town and seed): the same split
    assert cut["group"] == entries["stopped"]["group"]
    assert cut["split"] == entries["stopped"]["split"]
    cut_meta, cut_arrays = shard(out, "cut")
    full_meta, full_arrays = shard(out, "stopped")
    n = cut["samples"]
    assert cut_meta["timestamps_ns"] == full_meta["timestamps_ns"][:n]
    for name in SAMPLE_FIELDS:
        np.testing.assert_array_equal(cut_arrays[name], full_arrays[name][:n], err_msg=name)


def strip_topics(source: Path, target: Path, drop: set[str]) -> None:
    """Copy an MCAP log without the ``drop`` topics (metadata, schemas and channels kept)."""
    with open(source, "rb") as f_in, open(target, "wb") as f_out:
        reader = make_reader(f_in)
        writer = Writer(f_out)
        writer.start(profile="", library="test")
        for record in reader.iter_metadata():
            writer.add_metadata(record.name, dict(record.metadata))
        schemas: dict[int, int] = {}
        channels: dict[int, int] = {}
        for schema, channel, message in reader.iter_messages():
            if channel.topic in drop:
                continue
            if channel.id not in channels:
                if schema is not None and schema.id not in schemas:
                    schemas[schema.id] = writer.register_schema(
                        schema.name, schema.encoding, schema.data
                    )
                channels[channel.id] = writer.register_channel(
                    channel.topic,
                    channel.message_encoding,
                    schemas[schema.id] if schema is not None else 0,
                )
            writer.add_message(
                channels[channel.id], message.log_time, message.data, message.publish_time
            )
        writer.finish()


def test_a_log_without_lidar_and_a_camera_the_rig_lacks_build_masked(
    data_dir: Path, tmp_path: Path
) -> None:
    source = data_dir.parent / "logs" / "traffic" / "run.mcap"
    (tmp_path / "logs" / "nolidar").mkdir(parents=True)
    strip_topics(source, tmp_path / "logs" / "nolidar" / "run.mcap", {lidar_topic("top")})
    spec = SampleSpec.from_dict({**TEST_SPEC.to_dict(), "cameras": ["front", "rear"]})
    build_dataset(tmp_path / "logs", tmp_path / "dataset", spec, workers=1, progress=False)
    manifest = read_manifest(tmp_path / "dataset")
    (entry,) = manifest["shards"]
    assert entry["samples"] == 4
    assert entry["missing"] == {"camera:rear": 4, "lidar": 4, "occupancy": 16}
    _, arrays = shard(tmp_path / "dataset", "nolidar")
    check_sample({k: np.asarray(v[0]) for k, v in arrays.items()}, spec)
    assert (arrays["lidar_count"] == 0).all() and not arrays["lidar_points"].any()
    assert not arrays["occupancy_future"].any()
    assert arrays["camera_mask"][:, 0].all() and not arrays["camera_mask"][:, 1].any()
    assert not arrays["camera_images"][:, 1].any() and arrays["camera_images"][:, 0].any()
    _, full = shard(data_dir, "traffic")
    np.testing.assert_array_equal(arrays["camera_images"][:, 0], full["camera_images"][:, 0])
    np.testing.assert_array_equal(arrays["boxes"], full["boxes"])


def test_rebuilding_keeps_unchanged_shards(data_dir: Path) -> None:
    files = sorted((data_dir / "shards").rglob("*.npy"))
    before = [p.stat().st_mtime_ns for p in files]
    summary = build_dataset(
        data_dir.parent / "logs", data_dir, TEST_SPEC, workers=2, val_fraction=0.5, progress=False
    )
    assert summary.samples == 8
    assert [p.stat().st_mtime_ns for p in files] == before


def test_build_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_dataset(tmp_path / "nowhere", tmp_path / "out", TEST_SPEC)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.mcap logs"):
        build_dataset(tmp_path / "empty", tmp_path / "out", TEST_SPEC)
    with pytest.raises(ValueError, match="every"):
        build_dataset(tmp_path / "empty", tmp_path / "out", TEST_SPEC, every=0)


def test_dataset_build_command(data_dir: Path, tmp_path: Path, capsys: Any) -> None:
    parser = argparse.ArgumentParser(prog="kaido")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd_data.register(sub)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(TEST_SPEC.to_dict()))
    logs = data_dir.parent / "logs"
    out = str(tmp_path / "d")
    command = ["dataset", "build", str(logs), "--out", out, "--spec", str(spec_file)]
    args = parser.parse_args([*command, "--every", "2", "--workers", "1", "--quiet"])
    assert args.func(args) == 0
    assert "built 4 samples" in capsys.readouterr().out  # every 2nd: 1.0 and 2.0 s of each log
    shutil.rmtree(tmp_path / "d")
    args = parser.parse_args(["collect", "--out", str(tmp_path / "c"), "--episodes", "3"])
    assert (args.episodes, args.seconds, args.seed) == (3, 60.0, 0)
    with pytest.raises(SystemExit):
        parser.parse_args(["dataset", "build", str(logs), "--out", "x", "--every", "0"])


# -- the helpers against references -------------------------------------------------------------


def test_box_footprint_matches_shapely_on_pixel_centres() -> None:
    grid = RasterSpec(height=40, width=30, resolution=0.5, ego_row=30, ego_col=15)
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    cx = (grid.origin_row - rows - 0.5) * grid.resolution
    cy = (grid.origin_col - cols - 0.5) * grid.resolution
    for _ in range(40):
        box = [rng.uniform(-6, 16), rng.uniform(-8, 8), rng.uniform(-4, 4),
               rng.uniform(0.3, 6), rng.uniform(0.3, 3)]  # fmt: skip
        got = box_footprint_mask([box], grid)
        x, y, yaw, length, width = box
        c, s = math.cos(yaw), math.sin(yaw)
        corners = [
            (
                x + c * dx * length / 2 - s * dy * width / 2,
                y + s * dx * length / 2 + c * dy * width / 2,
            )
            for dx, dy in ((1, 1), (-1, 1), (-1, -1), (1, -1))
        ]
        polygon = shapely.Polygon(corners)
        want = shapely.covers(polygon, shapely.points(cx, cy)).astype(np.uint8)
        r = math.floor(grid.origin_row - x / grid.resolution)
        q = math.floor(grid.origin_col - y / grid.resolution)
        if 0 <= r < grid.height and 0 <= q < grid.width:
            want[r, q] = 1
        assert (got != want).sum() <= 1, box  # a centre exactly on an edge may round either way


def test_points_occupancy_uses_the_raster_pixel_convention() -> None:
    grid = TEST_SPEC.grid  # 64 x 64, 1 m, ego at row 48, col 32
    occupancy = points_occupancy([[0.5, 0.5], [47.9, -31.9], [-15.5, 31.5], [48.5, 0.0]], grid)
    assert occupancy[47, 31] == 1  # just ahead-left of the ego origin
    assert occupancy[0, 63] == 1  # far front, far right
    assert occupancy[63, 0] == 1  # far rear, far left
    assert occupancy.sum() == 3  # the point 48.5 m ahead is outside


def test_route_points_resample_ahead_and_hold_at_the_end() -> None:
    path = np.stack([np.linspace(0, 30, 31), np.full(31, 5.0)], axis=1)
    local, s0 = route_points(path, [10.2, 4.0, math.pi / 2], count=6, spacing=4.0)
    assert s0 == pytest.approx(10.2)
    # the pose faces +y: the route runs to its right (ego -y) from 1 m ahead
    np.testing.assert_allclose(local[:, 0], 1.0, atol=1e-9)
    np.testing.assert_allclose(local[:, 1], [0.0, -4.0, -8.0, -12.0, -16.0, -19.8], atol=1e-9)


def test_actions_from_a_circle_roll_back_to_it() -> None:
    radius, speed, dt = 20.0, 5.0, 0.5
    angles = speed * dt * np.arange(9) / radius
    poses = np.stack([radius * np.sin(angles), radius * (1 - np.cos(angles)), angles], axis=1)
    actions = actions_from_trajectory(poses, np.full(9, speed), dt)
    np.testing.assert_allclose(actions[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(actions[:, 1], 1.0 / radius, rtol=1e-9)
    rolled = rollout_actions(speed, actions, dt)
    np.testing.assert_allclose(rolled, poses[1:], atol=1e-9)
    braking = actions_from_trajectory(poses[:3], [5.0, 4.0, 2.5], dt)
    np.testing.assert_allclose(braking[:, 0], [-2.0, -3.0])
    standing = actions_from_trajectory(np.zeros((3, 3)), np.zeros(3), dt)
    assert not standing.any()
    sharp = actions_from_trajectory(np.array([[0, 0, 0], [0.1, 0, 1.0]]), np.full(2, 0.2), dt)
    assert sharp[0, 1] == MAX_CURVATURE


@pytest.mark.slow
def test_default_spec_from_default_rig_logs_on_a_carla_town(tmp_path: Path) -> None:
    from kaido.simulation.collect import CollectConfig, collect, make_plan
    from tests.conftest import shared_file

    town01 = shared_file("maps/Town01.xodr")
    routes = shared_file("routes/lb1_routes_devtest.xml")
    config = CollectConfig(episodes=2, seconds=12.0, seed=3, maps=(town01,), routes=routes)
    plans = make_plan(config)
    plans[0] = type(plans[0]).from_dict(
        {**plans[0].to_dict(), "town": None, "map_path": str(town01.resolve()),
         "routes": str(routes.resolve()), "route_id": "0"}
    )  # fmt: skip
    summary = collect(plans, tmp_path / "logs", workers=2, progress=False)
    assert summary.failed == 0, summary.failures
    built = build_dataset(tmp_path / "logs", tmp_path / "data", workers=2, progress=False)
    assert built.failed == () and built.samples == 2 * 4  # 2.0 .. 3.5 s of 12 s logs
    spec = SampleSpec()
    manifest = read_manifest(tmp_path / "data")
    assert "Town01" in {s["town"] for s in manifest["shards"]}
    for entry in manifest["shards"]:
        _, arrays = shard(tmp_path / "data", entry["name"])
        for i in range(entry["samples"]):
            sample = {k: np.asarray(v[i]) for k, v in arrays.items()}
            check_sample(sample, spec)
            assert sample["camera_mask"].all() and sample["lidar_count"] == spec.max_lidar_points
            assert sample["occupancy_future"].any(axis=(1, 2)).all()
            assert sample["bev_semantics"][BevClass.DRIVABLE].any()
    assert 200_000 < built.bytes_per_sample < 260_000


def test_light_ahead_is_the_first_stop_line_on_the_route_within_range() -> None:
    from kaido.logs.dataset import light_ahead
    from kaido.logs.sample import TRAFFIC_LIGHT_RANGE, TrafficLightClass

    route = np.stack([np.arange(0.0, 200.0, 1.0), np.zeros(200)], axis=1)

    def line(x: float) -> np.ndarray:
        return np.array([[x, -2.0], [x, 2.0]])

    red, green = int(TrafficLightClass.RED), int(TrafficLightClass.GREEN)
    assert light_ahead(route, 10.0, [(red, line(40.0))]) == red
    assert light_ahead(route, 10.0, [(red, line(50.0)), (green, line(30.0))]) == green
    # behind the ego, beyond the range, or beside the route: no light
    assert light_ahead(route, 45.0, [(red, line(40.0))]) == int(TrafficLightClass.NONE)
    far = 10.0 + TRAFFIC_LIGHT_RANGE + 1.0
    assert light_ahead(route, 10.0, [(red, line(far))]) == int(TrafficLightClass.NONE)
    aside = np.array([[40.0, 5.0], [40.0, 9.0]])
    assert light_ahead(route, 10.0, [(red, aside)]) == int(TrafficLightClass.NONE)
