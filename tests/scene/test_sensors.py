"""Tests of camera and lidar calibration and the sensor rig (YAML round trips included)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.scene.geometry import SE3
from kaido.scene.sensors import (
    CameraSpec,
    LidarSpec,
    SensorRig,
    dump_sensor_rig,
    load_sensor_rig,
    se3_from_dict,
    se3_to_dict,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RIG = ROOT / "configs" / "sensors" / "default.yaml"


def front_camera(**overrides: object) -> CameraSpec:
    kwargs: dict[str, object] = {
        "name": "front",
        "width": 256,
        "height": 160,
        "fx": 128.0,
        "fy": 128.0,
        "cx": 128.0,
        "cy": 80.0,
        "extrinsics": SE3.from_euler(1.5, 0.0, 1.6, 0.0, 0.0, 0.0),
    }
    kwargs.update(overrides)
    return CameraSpec(**kwargs)  # type: ignore[arg-type]


def roof_lidar(**overrides: object) -> LidarSpec:
    kwargs: dict[str, object] = {
        "name": "top",
        "extrinsics": SE3.from_euler(1.3, 0.0, 2.0, 0.0, 0.0, 0.0),
        "channels": 32,
        "upper_fov": math.radians(10.0),
        "lower_fov": math.radians(-30.0),
        "range_min": 0.0,
        "range_max": 80.0,
        "rotation_frequency": 10.0,
        "points_per_second": 288_000,
    }
    kwargs.update(overrides)
    return LidarSpec(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# CameraSpec
# ---------------------------------------------------------------------------------------------


def test_from_fov_matches_carla_intrinsics() -> None:
    cam = CameraSpec.from_fov("front", 256, 160, 90.0, SE3.identity())
    # CARLA: f = width / (2 tan(fov / 2)), principal point at the image centre.
    assert cam.fx == pytest.approx(128.0)
    assert cam.fy == pytest.approx(128.0)
    assert (cam.cx, cam.cy) == (128.0, 80.0)
    assert cam.horizontal_fov == pytest.approx(math.pi / 2)
    assert cam.vertical_fov == pytest.approx(2 * math.atan(80.0 / 128.0))
    np.testing.assert_allclose(
        cam.intrinsic_matrix(), [[128.0, 0.0, 128.0], [0.0, 128.0, 80.0], [0.0, 0.0, 1.0]]
    )
    assert cam.image_shape == (160, 256)


def test_point_straight_ahead_projects_to_principal_point() -> None:
    cam = front_camera()
    uv, depth, valid = cam.project(np.array([[1.5 + 12.0, 0.0, 1.6]]))
    np.testing.assert_allclose(uv, [[cam.cx, cam.cy]], atol=1e-12)
    np.testing.assert_allclose(depth, [12.0])
    assert valid.tolist() == [True]


def test_projection_axes_follow_opencv() -> None:
    cam = front_camera()
    # A point to the left of the axis lands left of centre (smaller u); a point above, higher up
    # the image (smaller v). Behind the camera is invalid with NaN pixels.
    pts = np.array([[11.5, 1.0, 1.6], [11.5, 0.0, 2.6], [-5.0, 0.0, 1.6], [11.5, 50.0, 1.6]])
    uv, depth, valid = cam.project(pts)
    assert uv[0, 0] == pytest.approx(cam.cx - cam.fx * 1.0 / 10.0)
    assert uv[0, 1] == pytest.approx(cam.cy)
    assert uv[1, 1] == pytest.approx(cam.cy - cam.fy * 1.0 / 10.0)
    assert depth[2] == pytest.approx(-6.5)
    assert np.isnan(uv[2]).all()
    assert valid.tolist() == [True, True, False, False]
    _, _, valid = cam.project(np.array([[np.nan, 0.0, 1.6], [np.inf, 0.0, 1.6]]))
    assert valid.tolist() == [False, False]


def test_project_matches_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    cam = front_camera(fx=140.0, cy=70.0, extrinsics=SE3.from_euler(1.5, 0.2, 1.6, 0.02, 0.1, -0.3))
    rng = np.random.default_rng(3)
    pts = rng.uniform([5.0, -10.0, -1.0], [40.0, 10.0, 4.0], size=(50, 3))
    e2o = cam.ego_to_optical()
    rvec, _ = cv2.Rodrigues(np.asarray(e2o.rotation))
    expected, _ = cv2.projectPoints(
        pts, rvec, np.asarray(e2o.translation), cam.intrinsic_matrix(), np.zeros(5)
    )
    uv, _, _ = cam.project(pts)
    np.testing.assert_allclose(uv, expected.reshape(-1, 2), atol=1e-9)


def test_ego_to_optical_axes() -> None:
    cam = front_camera(extrinsics=SE3.identity())
    # Ego forward is optical z, ego left is optical -x, ego up is optical -y.
    p = cam.ego_to_optical().transform_points(np.eye(3))
    np.testing.assert_allclose(p, [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    assert cam.optical_to_ego().compose(cam.ego_to_optical()).allclose(SE3.identity())


@settings(max_examples=150, deadline=None)
@given(
    # Pixels a hair inside the image, so rounding cannot push them across its edge.
    u=st.floats(1e-6, 256.0 - 1e-6),
    v=st.floats(1e-6, 160.0 - 1e-6),
    depth=st.floats(0.1, 200.0),
    yaw=st.floats(-math.pi, math.pi),
    pitch=st.floats(-0.5, 0.5),
    roll=st.floats(-0.3, 0.3),
)
def test_project_unproject_round_trip(
    u: float, v: float, depth: float, yaw: float, pitch: float, roll: float
) -> None:
    cam = front_camera(extrinsics=SE3.from_euler(0.4, -0.3, 1.7, roll, pitch, yaw))
    pts = cam.unproject(np.array([[u, v]]), np.array([depth]))
    uv, d, valid = cam.project(pts)
    np.testing.assert_allclose(uv, [[u, v]], atol=1e-6)
    np.testing.assert_allclose(d, [depth], rtol=1e-9)
    assert valid.tolist() == [True]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("width", 0, "width"),
        ("height", -3, "height"),
        ("width", 12.5, "width"),
        ("fx", 0.0, "fx"),
        ("fy", math.nan, "fy"),
        ("cx", 256.0, "cx"),
        ("cy", -1.0, "cy"),
        ("cx", math.inf, "cx"),
        ("name", "", "name"),
    ],
)
def test_camera_validation(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        front_camera(**{field: value})


def test_camera_extrinsics_type_checked() -> None:
    with pytest.raises(TypeError, match="extrinsics"):
        front_camera(extrinsics=np.eye(4))


def test_from_fov_rejects_bad_fov() -> None:
    with pytest.raises(ValueError, match="fov_deg"):
        CameraSpec.from_fov("front", 256, 160, 180.0, SE3.identity())


def test_project_shape_errors() -> None:
    cam = front_camera()
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        cam.project(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="depth"):
        cam.unproject(np.zeros((4, 2)), np.zeros(3))


# ---------------------------------------------------------------------------------------------
# LidarSpec
# ---------------------------------------------------------------------------------------------


def test_lidar_derived_quantities() -> None:
    lidar = roof_lidar()
    assert lidar.azimuth_count == 900
    assert lidar.points_per_sweep == 32 * 900
    assert lidar.horizontal_resolution == pytest.approx(math.radians(0.4))
    elev = lidar.elevation_angles()
    assert elev.shape == (32,)
    assert elev[0] == pytest.approx(math.radians(-30.0))
    assert elev[-1] == pytest.approx(math.radians(10.0))
    assert lidar.vertical_resolution == pytest.approx(math.radians(40.0 / 31.0))
    az = lidar.azimuth_angles()
    assert az.shape == (900,)
    assert az[0] == pytest.approx(-math.pi)
    assert az[-1] < math.pi


def test_single_channel_lidar() -> None:
    lidar = roof_lidar(channels=1, upper_fov=0.0, lower_fov=0.0, points_per_second=3600)
    np.testing.assert_allclose(lidar.elevation_angles(), [0.0])
    assert lidar.vertical_resolution == 0.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("channels", 0),
        ("upper_fov", math.radians(-40.0)),
        ("lower_fov", math.radians(10.0)),
        ("upper_fov", 2.0),
        ("range_min", -1.0),
        ("range_max", 0.0),
        ("rotation_frequency", 0.0),
        ("points_per_second", 100),
        ("range_max", math.nan),
    ],
)
def test_lidar_validation(field: str, value: object) -> None:
    with pytest.raises(ValueError) as info:
        roof_lidar(**{field: value})
    message = str(info.value)
    assert "top" in message
    # A point budget too small is reported on points_per_second; fov order on upper_fov.
    assert field in message or (field == "lower_fov" and "upper_fov" in message)


# ---------------------------------------------------------------------------------------------
# SensorRig
# ---------------------------------------------------------------------------------------------


def test_rig_lookup_and_duplicates() -> None:
    rig = SensorRig(cameras=(front_camera(),), lidars=(roof_lidar(),))
    assert rig.camera("front").width == 256
    assert rig.lidar("top").channels == 32
    assert rig.camera_names == ("front",)
    with pytest.raises(KeyError, match=r"'rear'.*front"):
        rig.camera("rear")
    with pytest.raises(KeyError, match=r"'front'.*top"):
        rig.lidar("front")
    with pytest.raises(ValueError, match="duplicate sensor name 'front'"):
        SensorRig(cameras=(front_camera(), front_camera(width=320, cx=160.0)))
    with pytest.raises(ValueError, match="duplicate sensor name 'top'"):
        SensorRig(cameras=(front_camera(name="top"),), lidars=(roof_lidar(),))
    with pytest.raises(TypeError, match=r"cameras\[0\]"):
        SensorRig(cameras=(roof_lidar(),))  # type: ignore[arg-type]


def test_rig_is_hashable_and_compares_exactly() -> None:
    a = SensorRig(cameras=(front_camera(),), lidars=(roof_lidar(),))
    b = SensorRig(cameras=[front_camera()], lidars=[roof_lidar()])  # type: ignore[arg-type]
    assert a == b
    assert hash(a) == hash(b)
    assert a != SensorRig(cameras=(front_camera(fx=100.0),), lidars=(roof_lidar(),))


def test_default_rig_loads() -> None:
    rig = load_sensor_rig(DEFAULT_RIG)
    # The product's rig: one forward camera and one roof lidar.
    assert rig.camera_names == ("front",)
    assert rig.lidar_names == ("top",)
    front = rig.camera("front")
    assert (front.width, front.height) == (640, 360)
    assert front.horizontal_fov == pytest.approx(math.pi / 2)
    np.testing.assert_allclose(front.extrinsics.translation, [1.5, 0.0, 1.6])
    top = rig.lidar("top")
    assert top.channels == 32
    assert top.azimuth_count == 1024
    assert top.points_per_sweep == 32 * 1024
    assert top.upper_fov == pytest.approx(math.radians(10.0))
    assert top.lower_fov == pytest.approx(math.radians(-30.0))
    assert (top.range_min, top.range_max, top.rotation_frequency) == (0.5, 80.0, 10.0)
    np.testing.assert_allclose(top.extrinsics.translation[2], 2.0)
    # The camera looks straight ahead: a point 10 m along its axis projects to its centre, and
    # the road 10 m ahead of it lands below the centre (the lower half sees the ground).
    axis = front.extrinsics.rotation[:, 0]
    uv, _, valid = front.project((front.extrinsics.translation + 10.0 * axis)[None])
    np.testing.assert_allclose(uv[0], [front.cx, front.cy], atol=1e-9)
    assert valid[0]
    uv, _, valid = front.project(np.array([[1.5 + 10.0, 0.0, 0.0]]))
    assert valid[0] and uv[0, 1] > front.cy
    # The lowest beam meets flat ground well inside the lidar's range, the horizontal beams
    # reach range_max.
    mount_z = float(top.extrinsics.translation[2])
    assert top.range_min < mount_z / math.sin(-top.lower_fov) < top.range_max


def test_rig_dict_round_trip() -> None:
    rig = SensorRig(
        cameras=(
            front_camera(extrinsics=SE3.from_euler(1.5, 0.1, 1.6, 0.01, -0.05, 0.2)),
            CameraSpec.from_fov("rear", 320, 200, 110.0, SE3.from_euler(0, 0, 1.6, 0, 0, math.pi)),
        ),
        lidars=(roof_lidar(),),
    )
    d = rig.to_dict()
    again = SensorRig.from_dict(d)
    assert again.allclose(rig, atol=1e-12)
    assert again.camera("front").fx == rig.camera("front").fx
    assert [c["name"] for c in again.to_dict()["cameras"]] == ["front", "rear"]
    assert again.to_dict()["cameras"][1]["cx"] == 160.0


def test_extrinsics_yaml_round_trip(tmp_path: Path) -> None:
    default = load_sensor_rig(DEFAULT_RIG)
    side = CameraSpec.from_fov("left", 256, 160, 90.0, SE3.from_euler(1.2, 0.5, 1.6, 0, 0, 1.5708))
    rig = SensorRig(cameras=(*default.cameras, side), lidars=default.lidars)
    path = tmp_path / "rig.yaml"
    dump_sensor_rig(rig, path)
    again = load_sensor_rig(path)
    assert again.allclose(rig, atol=1e-12)
    text = yaml.safe_load(path.read_text())
    assert text["cameras"][1]["extrinsics"]["yaw_deg"] == pytest.approx(90.0, abs=1e-3)
    assert text["lidars"][0]["upper_fov_deg"] == pytest.approx(10.0)


@settings(max_examples=100, deadline=None)
@given(
    xyz=st.tuples(*[st.floats(-5.0, 5.0)] * 3),
    roll=st.floats(-math.pi, math.pi),
    pitch=st.floats(-1.5, 1.5),
    yaw=st.floats(-math.pi, math.pi),
)
def test_se3_dict_round_trip(
    xyz: tuple[float, float, float], roll: float, pitch: float, yaw: float
) -> None:
    pose = SE3.from_euler(*xyz, roll, pitch, yaw)
    d = yaml.safe_load(yaml.safe_dump(se3_to_dict(pose)))
    assert se3_from_dict(d).allclose(pose, atol=1e-9)


def test_se3_from_dict_defaults_and_unknown_keys() -> None:
    assert se3_from_dict({"z": 2.0}).allclose(SE3.from_euler(0, 0, 2.0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"extrinsics: unknown keys \['yaw'\]"):
        se3_from_dict({"yaw": 90.0})


def _write_rig(tmp_path: Path, mutate: object) -> Path:
    data = yaml.safe_load(DEFAULT_RIG.read_text())
    assert callable(mutate)
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["cameras"][0].update(width=-256), r"cameras\[0\].*width"),
        (
            lambda d: d["cameras"].append({"name": "rear", "width": 64, "fov_deg": 90.0}),
            r"cameras\[1\]\.height: missing",
        ),
        (lambda d: d["cameras"][0].update(fx=100.0), r"cameras\[0\].*fov_deg or fx"),
        (lambda d: d["cameras"][0].update(fov=90.0), r"cameras\[0\]: unknown keys \['fov'\]"),
        (lambda d: d["cameras"][0]["extrinsics"].update(yaw="left"), r"cameras\[0\]\.extrinsics"),
        (lambda d: d["cameras"][0]["extrinsics"].update(x="far"), r"cameras\[0\]\.extrinsics\.x"),
        (lambda d: d["lidars"][0].update(range_max=-1.0), r"lidars\[0\].*range_max"),
        (lambda d: d["lidars"][0].update(upper_fov_deg="up"), r"lidars\[0\]\.upper_fov_deg"),
        (lambda d: d["lidars"][0].pop("channels"), r"lidars\[0\]\.channels: missing"),
        (lambda d: d.update(radars=[]), r"unknown keys \['radars'\]"),
        (lambda d: d["cameras"][0].update(name="top"), "duplicate sensor name 'top'"),
    ],
)
def test_load_errors_name_file_and_field(tmp_path: Path, mutate: object, expected: str) -> None:
    path = _write_rig(tmp_path, mutate)
    with pytest.raises(ValueError, match=expected) as info:
        load_sensor_rig(path)
    assert str(path) in str(info.value)


def test_load_missing_and_malformed_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_sensor_rig(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("cameras: [\n")
    with pytest.raises(ValueError, match=r"broken\.yaml: invalid YAML"):
        load_sensor_rig(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.yaml: empty"):
        load_sensor_rig(empty)
