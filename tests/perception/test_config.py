"""Perception configs: defaults, from_dict, errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from kaido.perception.config import (
    TINY_GRID,
    CameraEncoderConfig,
    DetectionHeadConfig,
    FusionConfig,
    LidarEncoderConfig,
    PerceptionConfig,
    SegmentationHeadConfig,
)
from kaido.scene.raster import RasterSpec


def test_defaults_agree_with_each_other() -> None:
    cfg = PerceptionConfig()
    assert cfg.grid == TINY_GRID
    assert cfg.stride == 2
    assert cfg.camera.feature_shape == (12, 20)
    assert cfg.camera.image_stride == 8


def test_from_dict_reads_nested_values_and_shared_grid() -> None:
    cfg = PerceptionConfig.from_dict(
        {
            "grid": {"height": 32, "width": 48, "resolution": 0.5, "ego_row": 24, "ego_col": 24},
            "stride": 4,
            "lidar": {"max_pillars": 100, "z_min": -2},
            "camera": {"image_channels": [8, 8], "image_height": 64, "image_width": 64},
            "fusion": {"out_channels": 16},
            "detection": {"in_channels": 16, "score_threshold": 0.3},
            "segmentation": {"in_channels": 16},
        }
    )
    grid = RasterSpec(height=32, width=48, resolution=0.5, ego_row=24, ego_col=24)
    assert cfg.lidar.grid == grid and cfg.segmentation.grid == grid
    assert cfg.stride == 4 and cfg.camera.stride == 4
    assert cfg.lidar.max_pillars == 100 and cfg.lidar.z_min == -2.0
    assert isinstance(cfg.lidar.z_min, float)
    assert cfg.camera.image_channels == (8, 8) and cfg.camera.image_stride == 4
    assert cfg.detection.score_threshold == 0.3


def test_single_config_from_dict_keeps_defaults() -> None:
    assert LidarEncoderConfig.from_dict(None) == LidarEncoderConfig()
    assert FusionConfig.from_dict({"out_channels": 8}).out_channels == 8
    assert SegmentationHeadConfig.from_dict({"dice_weight": 0}).dice_weight == 0.0


@pytest.mark.parametrize(
    ("cls", "data", "match"),
    [
        (LidarEncoderConfig, {"max_pilars": 3}, "unknown keys \\['max_pilars'\\]"),
        (LidarEncoderConfig, {"max_pillars": 2.5}, "lidar.max_pillars: expected an integer"),
        (LidarEncoderConfig, {"max_pillars": 0}, "max_pillars must be a positive integer"),
        (LidarEncoderConfig, {"z_min": 5.0}, "z_min 5.0 must be below z_max"),
        (LidarEncoderConfig, {"stride": 3}, "stride must be a power of two"),
        (LidarEncoderConfig, {"grid": {"height": 9}}, "stride 2 must divide"),
        (LidarEncoderConfig, {"grid": {"heigth": 10}}, "lidar.grid: unknown keys"),
        (CameraEncoderConfig, {"image_height": 100}, "divisible by the image stride 8"),
        (CameraEncoderConfig, {"depth_min": 0.0}, "0 < depth_min < depth_max"),
        (CameraEncoderConfig, {"image_channels": "abc"}, "camera.image_channels: expected a list"),
        (DetectionHeadConfig, {"nms_kernel": 2}, "nms_kernel must be odd"),
        (DetectionHeadConfig, {"gaussian_overlap": 1.5}, "gaussian_overlap must be in"),
        (DetectionHeadConfig, {"score_threshold": True}, "expected a number"),
        (SegmentationHeadConfig, {"bce_weight": -1}, "bce_weight must be >= 0"),
    ],
)
def test_from_dict_errors_name_the_field(cls: Any, data: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls.from_dict(data)


def test_perception_config_rejects_disagreeing_parts() -> None:
    with pytest.raises(ValueError, match=r"fusion\.lidar_channels is 8, must equal 32"):
        PerceptionConfig.from_dict({"fusion": {"lidar_channels": 8}})
    with pytest.raises(ValueError, match=r"camera\.stride 4 != lidar\.stride 2"):
        PerceptionConfig.from_dict({"camera": {"stride": 4}})
    with pytest.raises(ValueError, match="unknown keys \\['heads'\\]"):
        PerceptionConfig.from_dict({"heads": {}})
