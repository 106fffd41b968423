"""The sample contract: sizes, the field table, (de)serialising the spec, the checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from kaido.logs.sample import (
    PAD_CLASS,
    SAMPLE_FIELDS,
    ActionIndex,
    BevClass,
    BoxField,
    DetectionClass,
    EgoFeature,
    SampleSpec,
    check_sample,
    empty_sample,
    field_layout,
    load_sample_spec,
)
from kaido.scene.raster import RasterSpec

# The table of the learned-stack contract, written out for the tiny default sizes:
# C=1 camera, 96x160 images, N=16384, M=64, T_f=16, T_p=4, R=16, T_o=6, a 64x64 grid.
CONTRACT = {
    "camera_images": ("uint8", (1, 3, 96, 160)),
    "camera_intrinsics": ("float32", (1, 3, 3)),
    "camera_to_ego": ("float32", (1, 4, 4)),
    "camera_mask": ("bool", (1,)),
    "lidar_points": ("float16", (16384, 4)),
    "lidar_count": ("int32", ()),
    "ego_state": ("float32", (4,)),
    "route": ("float32", (16, 2)),
    "ego_past": ("float32", (4, 3)),
    "ego_future": ("float32", (16, 3)),
    "actions": ("float32", (16, 2)),
    "boxes": ("float32", (64, 7)),
    "box_class": ("int64", (64,)),
    "box_mask": ("bool", (64,)),
    "agent_future": ("float32", (64, 16, 2)),
    "agent_future_mask": ("bool", (64, 16)),
    "traffic_light": ("int64", ()),
    "bev_semantics": ("uint8", (4, 64, 64)),
    "occupancy_future": ("uint8", (6, 64, 64)),
}


def test_default_spec_is_the_tiny_contract() -> None:
    spec = SampleSpec()
    assert spec.grid == RasterSpec(height=64, width=64, resolution=1.0, ego_row=48, ego_col=32)
    assert spec.grid_x_range == (-16.0, 48.0) and spec.grid_y_range == (-32.0, 32.0)
    assert spec.step_ns == 500_000_000 and spec.horizon_steps == 16
    layout = {name: (f["dtype"], tuple(f["shape"])) for name, f in field_layout(spec).items()}
    assert layout == CONTRACT
    assert list(SAMPLE_FIELDS) == list(CONTRACT)  # table order


def test_named_indices_follow_the_contract() -> None:
    assert [e.name for e in EgoFeature] == ["SPEED", "ACCEL", "YAW_RATE", "SPEED_LIMIT"]
    assert [e.name for e in ActionIndex] == ["ACCEL", "CURVATURE"]
    assert [e.name for e in BoxField] == ["X", "Y", "LENGTH", "WIDTH", "YAW", "VX", "VY"]
    assert [(e.name, e.value) for e in DetectionClass] == [
        ("VEHICLE", 0),
        ("PEDESTRIAN", 1),
        ("CYCLIST", 2),
    ]
    assert [e.name for e in BevClass] == ["DRIVABLE", "LANE_DIVIDER", "VEHICLE", "PEDESTRIAN"]
    assert PAD_CLASS == -1
    from kaido.logs.sample import TrafficLightClass

    assert [(e.name, e.value) for e in TrafficLightClass] == [
        ("NONE", 0),
        ("GREEN", 1),
        ("YELLOW", 2),
        ("RED", 3),
    ]


def test_shapes_follow_the_spec() -> None:
    spec = SampleSpec(
        grid=RasterSpec(height=32, width=48, resolution=0.5, ego_row=24, ego_col=24),
        cameras=("front", "left", "right"),
        image_hw=(64, 96),
        max_lidar_points=100,
        max_agents=5,
        future_steps=3,
        past_steps=2,
        route_points=7,
        occupancy_steps=2,
    )
    sample = empty_sample(spec)
    assert sample["camera_images"].shape == (3, 3, 64, 96)
    assert sample["bev_semantics"].shape == (4, 32, 48)
    assert sample["occupancy_future"].shape == (2, 32, 48)
    assert sample["agent_future"].shape == (5, 3, 2)
    assert sample["route"].shape == (7, 2)
    assert (sample["box_class"] == PAD_CLASS).all() and not sample["box_mask"].any()
    check_sample(sample, spec)


def test_spec_round_trips_through_json_and_yaml(tmp_path: Path) -> None:
    spec = SampleSpec(
        grid=RasterSpec(height=100, width=80, resolution=0.5, ego_row=70.0, ego_col=40.0),
        cameras=("front", "rear"),
        image_hw=(128, 224),
        step_seconds=0.25,
    )
    data = spec.to_dict()
    assert SampleSpec.from_dict(json.loads(json.dumps(data))) == spec
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))
    assert load_sample_spec(tmp_path / "spec.yaml") == spec
    (tmp_path / "manifest.json").write_text(json.dumps({"spec": data, "shards": []}))
    assert load_sample_spec(tmp_path / "manifest.json") == spec
    (tmp_path / "partial.yaml").write_text("future_steps: 8\n")
    assert load_sample_spec(tmp_path / "partial.yaml") == SampleSpec(future_steps=8)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"futre_steps": 3}, r"unknown keys \['futre_steps'\]"),
        ({"future_steps": 0}, r"SampleSpec\.future_steps"),
        ({"image_hw": [96]}, r"SampleSpec\.image_hw"),
        ({"cameras": ["front", "front"]}, "duplicate"),
        ({"step_seconds": -0.5}, r"SampleSpec\.step_seconds"),
        ({"grid": {"height": 0}}, r"grid: RasterSpec\.height"),
        ({"grid": {"rows": 3}}, r"grid: unknown keys \['rows'\]"),
        ({"occupancy_z_min": 3.0}, "occupancy_z_min"),
    ],
)
def test_bad_specs_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SampleSpec.from_dict(data, where="spec.yaml")
    with pytest.raises(ValueError, match=r"spec\.yaml"):
        SampleSpec.from_dict(data, where="spec.yaml")


def test_load_sample_spec_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        load_sample_spec(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("grid: [1, 2\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        load_sample_spec(tmp_path / "bad.yaml")


def test_check_sample_names_the_field_the_expectation_and_what_it_got() -> None:
    spec = SampleSpec()
    good = empty_sample(spec)
    check_sample(good, spec)
    batch = {k: np.stack([v, v]) for k, v in good.items()}
    check_sample(batch, spec, batch_shape=(2,))
    with pytest.raises(ValueError, match=r"'camera_images': expected uint8 \(2, 1, 3, 96, 160\)"):
        check_sample(good, spec, batch_shape=(2,))

    def broken(name: str, value: object) -> dict[str, object]:
        return {**good, name: value}

    with pytest.raises(
        ValueError, match=r"'boxes': expected float32 \(64, 7\), got float64 \(64, 7\)"
    ):
        check_sample(broken("boxes", np.zeros((64, 7))), spec)
    with pytest.raises(
        ValueError, match=r"'route': expected float32 \(16, 2\), got float32 \(8, 2\)"
    ):
        check_sample(broken("route", np.zeros((8, 2), np.float32)), spec)
    with pytest.raises(ValueError, match=r"missing fields \['occupancy_future'\]"):
        check_sample({k: v for k, v in good.items() if k != "occupancy_future"}, spec)
    with pytest.raises(TypeError, match="'camera_mask': expected a numpy array"):
        check_sample(broken("camera_mask", [True]), spec)
    nan = good["ego_future"].copy()
    nan[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"'ego_future': non-finite value at index \(3, 1\)"):
        check_sample(broken("ego_future", nan), spec)
    with pytest.raises(ValueError, match="'lidar_count'"):
        check_sample(broken("lidar_count", np.array(20000, np.int32)), spec)
    classes = good["box_class"].copy()
    classes[0] = 7
    with pytest.raises(ValueError, match=r"'box_class'.*got 7"):
        check_sample(broken("box_class", classes), spec)
    mask = good["box_mask"].copy()
    mask[0] = True
    with pytest.raises(ValueError, match="'box_mask'"):
        check_sample(broken("box_mask", mask), spec)
    bev = good["bev_semantics"].copy()
    bev[0, 0, 0] = 255
    with pytest.raises(ValueError, match="'bev_semantics': expected 0/1"):
        check_sample(broken("bev_semantics", bev), spec)
