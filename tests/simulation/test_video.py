"""Tests of the BEV episode video: frame count, geometry (ego centred, heading up), colours."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from kaido.logs.mcap_log import AGENT_CLASS_RGB, EGO_RGB, TRAFFIC_LIGHT_RGB
from kaido.scene.agents import AgentClass, AgentState
from kaido.scene.frame import TrafficLightColor, TrafficLightState
from kaido.scene.geometry import SE2, Box3D
from kaido.scene.road_map import RASTER_LAYER_NAMES, MapLayer, RoadMap
from kaido.scene.town_generator import TownSpec, generate_town
from kaido.simulation.video import BevVideoWriter

SIZE = 512
METERS = 80.0
RES = METERS / SIZE


@pytest.fixture(scope="module")
def road_map() -> RoadMap:
    return RoadMap.from_opendrive(
        generate_town(TownSpec(rows=3, cols=3, seed=0, name="t")), name="t"
    )


def to_world(pose: SE2, forward: float, left: float) -> tuple[float, float]:
    """World point at ``forward``, ``left`` [m] in the frame of ``pose``."""
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    return pose.x + c * forward - s * left, pose.y + s * forward + c * left


def expected_pixel(forward: float, left: float) -> tuple[int, int]:
    """(row, col) of the pixel holding the ego-frame point (forward, left), heading up."""
    return int(math.floor(SIZE / 2 - forward / RES)), int(math.floor(SIZE / 2 - left / RES))


def ego_box(pose: SE2) -> Box3D:
    x, y = to_world(pose, 1.4, 0.0)
    return Box3D(x, y, 0.75, pose.yaw, 4.6, 1.9, 1.5)


def agent(pose: SE2, track_id: int, cls: AgentClass, forward: float, left: float) -> AgentState:
    x, y = to_world(pose, forward, left)
    return AgentState(track_id, cls, Box3D(x, y, 0.8, pose.yaw + 0.3, 4.0, 2.0, 1.6), (0.0, 0.0), 0)


def scene(pose: SE2, **overrides: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "ego_pose": pose,
        "ego_box": ego_box(pose),
        "agents": (),
        "traffic_lights": (),
        "route_path": None,
        "trajectory": None,
        "plan": None,
        "camera_rgb": None,
        "text": (),
    }
    kw.update(overrides)
    return kw


def read_video(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_frames_written_equal_frames_read_back(road_map: RoadMap, tmp_path: Path):
    start = SE2(*road_map.spawn_points()[0])
    route = np.array([(*to_world(start, 3.0 * k, 0.0), start.yaw) for k in range(30)])
    camera = np.full((160, 256, 3), 120, dtype=np.uint8)
    path = tmp_path / "out" / "bev.mp4"
    writer = BevVideoWriter(path, road_map, fps=10.0)
    trail: list[tuple[float, float]] = []
    for i in range(12):
        pose = SE2(*to_world(start, 1.0 * i, 0.0), start.yaw)
        trail.append((pose.x, pose.y))
        writer.write(
            **scene(
                pose,
                agents=[agent(pose, 1, AgentClass.VEHICLE, 15.0, 0.0)],
                route_path=route,
                trajectory=np.array(trail),
                plan=route[i : i + 10],
                camera_rgb=camera,
                text=(f"t {i / 10:.1f} s", "DS 100.0"),
            )
        )
    assert writer.frames == 12
    assert writer.close() == path
    writer.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(**scene(start))
    frames = read_video(path)
    assert len(frames) == 12
    assert all(f.shape == (SIZE, SIZE, 3) for f in frames)
    assert int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT)) == 12


def test_ego_is_at_the_centre_heading_up(road_map: RoadMap, tmp_path: Path):
    pose = SE2(123.0, -45.0, 2.2)
    writer = BevVideoWriter(tmp_path / "ego.mp4", road_map)
    agents = [
        agent(pose, 1, AgentClass.VEHICLE, 15.0, 0.0),  # ahead: above the centre
        agent(pose, 2, AgentClass.CYCLIST, 0.0, 15.0),  # left: left of the centre
        agent(pose, 3, AgentClass.STATIC, -15.0, -15.0),  # behind right: below right
    ]
    img = writer.render(**scene(pose, agents=agents))
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    centre = img[SIZE // 2 - 1 : SIZE // 2 + 1, SIZE // 2 - 1 : SIZE // 2 + 1].reshape(-1, 3)
    assert (centre == EGO_RGB).all()
    # the ego box reaches 1.4 + 2.3 m ahead of the rear axle and 0.9 m behind it
    assert tuple(img[expected_pixel(3.4, 0.6)]) == EGO_RGB
    assert tuple(img[expected_pixel(-1.5, 0.0)]) != EGO_RGB
    for a, (forward, left) in zip(agents, [(15.0, 0.0), (0.0, 15.0), (-15.0, -15.0)], strict=True):
        # beside the box centre (the heading tick runs from the centre to the front)
        assert tuple(img[expected_pixel(forward, left + 0.6)]) == AGENT_CLASS_RGB[a.agent_class]
    assert tuple(img[expected_pixel(0.0, -15.0)]) != AGENT_CLASS_RGB[AgentClass.CYCLIST]


def test_red_light_draws_red_at_its_stop_line(road_map: RoadMap, tmp_path: Path):
    pose = SE2(*road_map.spawn_points()[3])
    line = np.array([to_world(pose, 20.0, 1.5), to_world(pose, 20.0, -4.5)])  # mid (20, -1.5)
    red = TrafficLightState("a", TrafficLightColor.RED, (*to_world(pose, 22.0, -6.0), 4.0), line)
    green = TrafficLightState(2, TrafficLightColor.GREEN, (*to_world(pose, -10.0, 10.0), 4.0))
    path = tmp_path / "lights.mp4"
    with BevVideoWriter(path, road_map) as writer:
        kw = scene(pose, traffic_lights=[red, green])
        img = writer.render(**kw)
        writer.write(**kw)
        dark = writer.render(**scene(pose))
    r, c = expected_pixel(20.0, -1.5)
    assert tuple(img[r, c]) == TRAFFIC_LIGHT_RGB[TrafficLightColor.RED]
    assert tuple(img[expected_pixel(20.0, 1.0)]) == TRAFFIC_LIGHT_RGB[TrafficLightColor.RED]
    assert tuple(img[expected_pixel(-10.0, 10.0)]) == TRAFFIC_LIGHT_RGB[TrafficLightColor.GREEN]
    assert tuple(dark[r, c]) != TRAFFIC_LIGHT_RGB[TrafficLightColor.RED]
    # only the lights made pure-red pixels, and they are all near the stop line
    reds = np.argwhere(np.all(img == TRAFFIC_LIGHT_RGB[TrafficLightColor.RED], axis=-1))
    assert len(reds) > 0
    assert np.abs(reds - [r, c]).max() <= 4.5 / RES
    # the encoded video keeps it red there (lossy: a patch, loose bounds)
    (frame,) = read_video(path)
    b, g, rr = frame[r - 1 : r + 2, c - 1 : c + 2].reshape(-1, 3).mean(axis=0)
    assert rr > 180 and g < 80 and b < 80


def test_map_layers_drawn_from_the_raster(road_map: RoadMap, tmp_path: Path):
    pose = SE2(*road_map.spawn_points()[5])
    writer = BevVideoWriter(tmp_path / "map.mp4", road_map, size_px=256, meters=60.0)
    img = writer.render(**scene(pose, ego_box=Box3D(1e4, 1e4, 0.0, 0.0, 1.0, 1.0, 1.0)))
    names = [RASTER_LAYER_NAMES[k] for k in (MapLayer.DRIVABLE, MapLayer.LANE_DIVIDERS)]
    drivable, dividers = road_map.rasterize(pose, writer.spec, names)
    edges = road_map.rasterize(pose, writer.spec, [RASTER_LAYER_NAMES[MapLayer.ROAD_EDGES]])[0]
    keep = np.ones(drivable.shape, bool)
    keep[-30:, :] = False  # the scale bar
    plain_road = (drivable == 1) & (dividers == 0) & (edges == 0) & keep
    off_road = (drivable == 0) & (dividers == 0) & (edges == 0) & keep
    assert plain_road.sum() > 500 and off_road.sum() > 500
    road_colours = np.unique(img[plain_road], axis=0)
    ground_colours = np.unique(img[off_road], axis=0)
    assert len(road_colours) == 1 and len(ground_colours) == 1
    assert not np.array_equal(road_colours, ground_colours)
    assert len(np.unique(img[(dividers == 1) & (edges == 0) & keep], axis=0)) == 1


def test_route_plan_inset_and_text_are_drawn(road_map: RoadMap, tmp_path: Path):
    pose = SE2(500.0, 500.0, -0.7)  # off the map
    writer = BevVideoWriter(tmp_path / "overlay.mp4", road_map)
    base = writer.render(**scene(pose))
    route = np.array([(*to_world(pose, float(k), 10.0), 0.0) for k in range(-30, 30)])
    route[-1] = (1e7, -1e7, 0.0)  # far off the view: still fine
    blue = np.zeros((90, 160, 3), dtype=np.uint8)
    blue[..., 2] = 255
    img = writer.render(
        **scene(pose, route_path=route, camera_rgb=blue, text=("v 30.0 km/h", "DS 92.1"))
    )
    # route: the band 10 m to the left changes the pixel there
    assert tuple(img[expected_pixel(5.0, 10.0)]) != tuple(base[expected_pixel(5.0, 10.0)])
    # camera inset in the top-right corner
    inset = img[10:60, SIZE - 150 : SIZE - 10].reshape(-1, 3)
    assert (inset == (0, 0, 255)).all()
    assert not (base[10:60, SIZE - 150 : SIZE - 10] == (0, 0, 255)).all()
    # text panel top left
    assert not np.array_equal(img[:30, :100], base[:30, :100])
    no_inset = BevVideoWriter(tmp_path / "no_inset.mp4", road_map, camera_inset=False)
    img2 = no_inset.render(**scene(pose, camera_rgb=blue))
    assert np.array_equal(img2, base)


def test_bad_arguments_are_rejected(road_map: RoadMap, tmp_path: Path):
    for size in (511, 32):
        with pytest.raises(ValueError, match="size_px"):
            BevVideoWriter(tmp_path / "a.mp4", road_map, size_px=size)
    with pytest.raises(ValueError, match="meters"):
        BevVideoWriter(tmp_path / "a.mp4", road_map, meters=0.0)
    with pytest.raises(ValueError, match="fps"):
        BevVideoWriter(tmp_path / "a.mp4", road_map, fps=math.nan)
    with BevVideoWriter(tmp_path / "b.mp4", road_map) as writer:
        pose = SE2(0.0, 0.0, 0.0)
        with pytest.raises(ValueError, match="camera_rgb"):
            writer.render(**scene(pose, camera_rgb=np.zeros((10, 10), np.uint8)))
        with pytest.raises(ValueError, match="plan"):
            writer.render(**scene(pose, plan=np.zeros((5, 1))))
        with pytest.raises(TypeError, match="agents"):
            writer.render(**scene(pose, agents=[object()]))
        with pytest.raises(TypeError, match="ego_pose"):
            writer.render(**{**scene(pose), "ego_pose": (0.0, 0.0, 0.0)})
        # paths entirely out of view draw nothing
        far = np.array([[1e5, 1e5, 0.0], [1e5 + 1.0, 1e5, 0.0]])
        assert np.array_equal(
            writer.render(**scene(pose, plan=far, route_path=far, trajectory=far[:, :2])),
            writer.render(**scene(pose)),
        )
        # an empty trail (no ticks yet) draws nothing
        empty = writer.render(**scene(pose, trajectory=np.array([])))
        assert np.array_equal(empty, writer.render(**scene(pose)))
        assert writer.frames == 0
