"""Tests of the Frame container: validation against the rig, immutability, finiteness report."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from kaido.scene.agents import AgentClass, AgentIndex, AgentState, EgoState
from kaido.scene.frame import (
    CameraImage,
    Frame,
    GroundTruth,
    LidarIndex,
    LidarSweep,
    TrafficLightColor,
    TrafficLightState,
)
from kaido.scene.geometry import SE2, SE3, Box3D
from kaido.scene.sensors import CameraSpec, LidarSpec, SensorRig

T = 2_000_000_000


@pytest.fixture(scope="module")
def rig() -> SensorRig:
    """Two 256 x 160 cameras (front, rear) and a roof lidar: enough sensors to check a frame
    against, independent of the product's default rig."""
    return SensorRig(
        cameras=(
            CameraSpec.from_fov("front", 256, 160, 90.0, SE3.from_euler(1.5, 0, 1.6, 0, 0, 0)),
            CameraSpec.from_fov("rear", 256, 160, 90.0, SE3.from_euler(0, 0, 1.6, 0, 0, math.pi)),
        ),
        lidars=(
            LidarSpec(
                "top",
                SE3.from_euler(1.3, 0.0, 2.0, 0.0, 0.0, 0.0),
                32,
                math.radians(10.0),
                math.radians(-30.0),
                0.5,
                80.0,
                10.0,
                32 * 1024 * 10,
            ),
        ),
    )


def image(name: str = "front", h: int = 160, w: int = 256, **kw: Any) -> CameraImage:
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    return CameraImage(camera=name, timestamp_ns=T, rgb=rgb, **kw)


def sweep(name: str = "top", n: int = 100, **kw: Any) -> LidarSweep:
    pts = np.random.default_rng(0).normal(size=(n, len(LidarIndex))).astype(np.float32)
    return LidarSweep(lidar=name, timestamp_ns=T, points=pts, **kw)


def ego() -> EgoState:
    return EgoState(timestamp_ns=T, pose=SE2(1.0, 2.0, 0.5), velocity=(5.0, 0.0))


def car(track_id: int, vx: float = 3.0) -> AgentState:
    box = Box3D(10.0 + track_id, 0.0, 0.8, 0.0, 4.5, 1.9, 1.6)
    return AgentState(track_id, AgentClass.VEHICLE, box, (vx, 0.0), T)


def light(light_id: str | int = "sig-1", color: Any = TrafficLightColor.RED) -> TrafficLightState:
    return TrafficLightState(
        light_id=light_id,
        color=color,
        position=(20.0, 3.0, 5.0),
        stop_line=np.array([[18.0, 0.0], [18.0, 3.5]]),
        affected_lane_ids=("road1_lane-1",),
    )


def frame(rig: SensorRig, **overrides: Any) -> Frame:
    kwargs: dict[str, Any] = {
        "timestamp_ns": T,
        "ego": ego(),
        "images": {"front": image(), "rear": image("rear")},
        "lidar": {"top": sweep()},
        "rig": rig,
        "ground_truth": GroundTruth(agents=(car(1), car(2)), traffic_lights=(light(),)),
    }
    kwargs.update(overrides)
    return Frame(**kwargs)


def test_valid_frame_constructs(rig: SensorRig) -> None:
    depth = np.full((160, 256), 10.0, dtype=np.float32)
    semantic = np.zeros((160, 256), dtype=np.uint8)
    f = frame(rig, images={"front": image(depth=depth, semantic=semantic)})
    assert f.images["front"].shape == (160, 256)
    assert len(f.lidar["top"]) == 100
    assert f.ground_truth is not None
    assert f.ground_truth.agents_array().shape == (2, len(AgentIndex))
    assert f.check_finite() == []
    # Sensors may be absent from a frame; no ground truth is fine.
    empty = Frame(timestamp_ns=T, ego=ego(), images={}, lidar={}, rig=rig)
    assert empty.ground_truth is None
    assert empty.check_finite() == []


def test_frame_is_immutable(rig: SensorRig) -> None:
    images = {"front": image()}
    f = frame(rig, images=images)
    images["rear"] = image("rear")
    assert list(f.images) == ["front"]
    with pytest.raises(TypeError):
        f.images["rear"] = image("rear")  # type: ignore[index]
    with pytest.raises(ValueError):
        f.images["front"].rgb[0, 0, 0] = 1
    with pytest.raises(ValueError):
        f.lidar["top"].points[0, 0] = 1.0
    with pytest.raises(AttributeError):
        f.timestamp_ns = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: {"images": {"front": image(h=100)}},
            r"Frame.images\['front'\].rgb: expected uint8 \(160, 256, 3\) per the rig, "
            r"got uint8 \(100, 256, 3\)",
        ),
        (
            lambda: {"images": {"front": image(depth=np.zeros((100, 200), np.float32))}},
            r"CameraImage\['front'\].depth: expected float32 \(160, 256\), "
            r"got float32 \(100, 200\)",
        ),
        (
            lambda: {"images": {"back": image("back")}},
            r"Frame.images\['back'\]: no camera 'back' in the rig",
        ),
        (
            lambda: {"images": {"front": image("rear")}},
            r"Frame.images\['front'\].camera: 'rear' does not match its key",
        ),
        (
            lambda: {"lidar": {"roof": sweep("roof")}},
            r"Frame.lidar\['roof'\]: no lidar 'roof' in the rig",
        ),
        (
            lambda: {"lidar": {"top": sweep("front")}},
            r"Frame.lidar\['top'\].lidar: 'front' does not match its key",
        ),
        (
            lambda: {"images": {"top": image("top")}},
            r"Frame.images\['top'\]: no camera 'top' in the rig",
        ),
    ],
)
def test_frame_rejects_inconsistent_sensors(rig: SensorRig, make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        frame(rig, **make())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: CameraImage("front", T, np.zeros((160, 256), dtype=np.float64)),
            r"CameraImage\['front'\].rgb: expected uint8 \(H, W, 3\), got float64 \(160, 256\)",
        ),
        (
            lambda: CameraImage("front", T, np.zeros((160, 256, 4), dtype=np.uint8)),
            r"CameraImage\['front'\].rgb: expected uint8 \(H, W, 3\), got uint8 \(160, 256, 4\)",
        ),
        (
            lambda: CameraImage("front", T, [[0, 0, 0]]),  # type: ignore[arg-type]
            r"CameraImage\['front'\].rgb: .*got list \(not an ndarray\)",
        ),
        (
            lambda: image(depth=np.zeros((160, 256), dtype=np.float64)),
            r"CameraImage\['front'\].depth: expected float32 \(160, 256\), got float64",
        ),
        (
            lambda: image(semantic=np.zeros((160, 256, 1), dtype=np.uint8)),
            r"CameraImage\['front'\].semantic: expected uint8 \(160, 256\)",
        ),
        (
            lambda: LidarSweep("top", T, np.zeros((10, 3), dtype=np.float32)),
            r"LidarSweep\['top'\].points: expected float32 \(N, 4\), got float32 \(10, 3\)",
        ),
        (
            lambda: LidarSweep("top", T, np.zeros((10, 4), dtype=np.float64)),
            r"LidarSweep\['top'\].points: expected float32 \(N, 4\), got float64 \(10, 4\)",
        ),
        (
            lambda: sweep(semantic=np.zeros(99, dtype=np.uint8)),
            r"LidarSweep\['top'\].semantic: expected uint8 \(100,\)",
        ),
        (lambda: CameraImage("", T, np.zeros((2, 2, 3), np.uint8)), "CameraImage.camera"),
    ],
)
def test_sensor_data_shape_and_dtype_errors(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_timestamps_must_be_int(rig: SensorRig) -> None:
    with pytest.raises(TypeError, match=r"Frame.timestamp_ns: expected an int"):
        frame(rig, timestamp_ns=2.0)
    with pytest.raises(TypeError, match=r"CameraImage\['front'\].timestamp_ns"):
        CameraImage("front", 1.0, np.zeros((2, 2, 3), np.uint8))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"LidarSweep\['top'\].timestamp_ns"):
        LidarSweep("top", True, np.zeros((0, 4), np.float32))
    f = frame(rig, timestamp_ns=np.int64(T))
    assert type(f.timestamp_ns) is int


def test_frame_type_errors(rig: SensorRig) -> None:
    with pytest.raises(TypeError, match=r"Frame\.ego"):
        frame(rig, ego=SE2(0.0, 0.0, 0.0))
    with pytest.raises(TypeError, match=r"Frame\.rig"):
        Frame(T, ego(), {}, {}, rig.to_dict())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Frame.images\['front'\]: expected CameraImage"):
        frame(rig, images={"front": np.zeros((160, 256, 3), np.uint8)})
    with pytest.raises(TypeError, match=r"Frame\.ground_truth"):
        frame(rig, ground_truth=[car(1)])


def test_ground_truth_validation() -> None:
    with pytest.raises(ValueError, match=r"agents\[1\]: duplicate track_id 1"):
        GroundTruth(agents=(car(1), car(1)))
    with pytest.raises(ValueError, match=r"traffic_lights\[1\]: duplicate light_id 'sig-1'"):
        GroundTruth(traffic_lights=(light(), light()))
    with pytest.raises(TypeError, match=r"GroundTruth.agents\[0\]"):
        GroundTruth(agents=(light(),))  # type: ignore[arg-type]
    assert GroundTruth().agents_array().shape == (0, len(AgentIndex))


def test_traffic_light_validation() -> None:
    assert light(color=2).color is TrafficLightColor.GREEN
    with pytest.raises(ValueError, match="color"):
        light(color=9)
    with pytest.raises(ValueError, match=r"stop_line: expected float64 \(2, 2\)"):
        TrafficLightState(1, TrafficLightColor.RED, (0.0, 0.0, 0.0), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="stop_line: must be finite"):
        TrafficLightState(1, TrafficLightColor.RED, (0.0, 0.0, 0.0), np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="position"):
        TrafficLightState(1, TrafficLightColor.RED, (0.0, math.inf, 0.0))
    with pytest.raises(TypeError, match="light_id"):
        TrafficLightState(None, TrafficLightColor.RED, (0.0, 0.0, 0.0))  # type: ignore[arg-type]


def test_check_finite_lists_bad_fields(rig: SensorRig) -> None:
    pts = np.zeros((5, len(LidarIndex)), dtype=np.float32)
    pts[2, LidarIndex.Z] = np.nan
    depth = np.ones((160, 256), dtype=np.float32)
    depth[3, 4] = np.inf
    bad_ego = EgoState(timestamp_ns=T, pose=SE2(0.0, 0.0, 0.0), velocity=(math.nan, 0.0))
    # Non-finite points are accepted at construction and reported here.
    f = frame(
        rig,
        ego=bad_ego,
        images={"front": image(depth=depth), "rear": image("rear")},
        lidar={"top": LidarSweep("top", T, pts)},
        ground_truth=GroundTruth(agents=(car(1), car(2, vx=math.nan))),
    )
    assert f.check_finite() == [
        "Frame.ego.velocity",
        "Frame.images['front'].depth",
        "Frame.lidar['top'].points",
        "Frame.ground_truth.agents[1].velocity",
    ]


def test_lidar_points_in_ego_frame(rig: SensorRig) -> None:
    pts = np.array([[1.0, 0.0, 0.0, 0.5], [0.0, 2.0, -1.0, 0.1]], dtype=np.float32)
    f = frame(rig, lidar={"top": LidarSweep("top", T, pts)})
    mount = rig.lidar("top").extrinsics.translation
    np.testing.assert_allclose(f.lidar_points_ego("top"), pts[:, :3] + mount, atol=1e-6)
    np.testing.assert_array_equal(f.lidar["top"].xyz, pts[:, :3])
    with pytest.raises(KeyError, match="no sweep from lidar 'side'"):
        f.lidar_points_ego("side")


def test_rotated_lidar_mount() -> None:
    spec = LidarSpec(
        "tilted",
        SE3.from_euler(0.0, 0.0, 2.0, 0.0, 0.0, math.pi / 2),
        16,
        0.2,
        -0.2,
        0.5,
        50.0,
        10.0,
        16 * 10 * 360,
    )
    rig = SensorRig(lidars=(spec,))
    pts = np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    f = Frame(T, ego(), {}, {"tilted": LidarSweep("tilted", T, pts)}, rig)
    # The lidar's forward axis points along the ego's left (+y).
    np.testing.assert_allclose(f.lidar_points_ego("tilted"), [[0.0, 1.0, 2.0]], atol=1e-12)
