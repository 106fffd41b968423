"""Frozen, typed configs of the perception modules (defaults = the ``tiny`` model).

Every config carries the BEV grid (:class:`~kaido.scene.raster.RasterSpec`) it works on and the
output stride ``s`` of its BEV features: a module's BEV output is ``(B, C, H / s, W / s)`` for a
grid of ``H x W`` cells. ``from_dict`` builds a config from plain data (a YAML block): unknown
keys, wrong types and bad values raise ``ValueError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kaido.scene.raster import RasterSpec

__all__ = [
    "TINY_GRID",
    "CameraEncoderConfig",
    "DetectionHeadConfig",
    "FusionConfig",
    "LidarEncoderConfig",
    "PerceptionConfig",
    "SegmentationHeadConfig",
    "grid_from_dict",
]

TINY_GRID = RasterSpec(height=64, width=64, resolution=1.0, ego_row=48, ego_col=32)
"""The tiny model's BEV grid: 64 x 64 cells of 1 m, 48 m ahead, 16 m behind, 32 m each side."""

_GRID_KEYS = ("height", "width", "resolution", "ego_row", "ego_col", "line_width_px")

_C = TypeVar("_C")


def grid_from_dict(data: Any, where: str = "grid") -> RasterSpec:
    """A :class:`RasterSpec` from a mapping with keys among ``height, width, resolution, ego_row,
    ego_col, line_width_px``; a ``RasterSpec`` passes through."""
    if isinstance(data, RasterSpec):
        return data
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    unknown = sorted(str(k) for k in set(data) - set(_GRID_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed keys are {list(_GRID_KEYS)}")
    try:
        return RasterSpec(**{str(k): v for k, v in data.items()})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against (and converted to) the type ``hint``; ValueError naming it."""
    if hint is RasterSpec:
        return grid_from_dict(value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is types.UnionType or origin is typing.Union:
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, where)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        return _dataclass_from_dict(hint, value, where)
    raise TypeError(f"{where}: unsupported config field type {hint!r}")


def _dataclass_from_dict(cls: type[_C], data: Any, where: str) -> _C:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in set(data) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed keys are {names}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _check_positive(owner: str, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")


def _check_finite(owner: str, **values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{owner}.{name} must be a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"{owner}.{name} must be finite, got {value!r}")


def _check_stride(owner: str, stride: int, grid: RasterSpec) -> None:
    _check_positive(owner, stride=stride)
    if stride & (stride - 1):
        raise ValueError(f"{owner}.stride must be a power of two, got {stride}")
    if grid.height % stride or grid.width % stride:
        raise ValueError(
            f"{owner}.stride {stride} must divide the grid's {grid.height} x {grid.width} cells"
        )


def _check_grid(owner: str, grid: object) -> None:
    if not isinstance(grid, RasterSpec):
        raise ValueError(f"{owner}.grid must be a RasterSpec, got {type(grid).__name__}")


def _check_channels(owner: str, name: str, channels: tuple[int, ...]) -> None:
    if not isinstance(channels, tuple) or not channels:
        raise ValueError(f"{owner}.{name} must be a non-empty tuple of integers, got {channels!r}")
    for i, c in enumerate(channels):
        _check_positive(owner, **{f"{name}[{i}]": c})


@dataclass(frozen=True)
class LidarEncoderConfig:
    """Pillarization and the pillar encoder (PointNet → BEV scatter → CNN)."""

    grid: RasterSpec = TINY_GRID
    """The BEV grid; pillars are its cells."""
    z_min: float = -1.0
    """Lowest point height kept [m] (ego frame, ground at 0)."""
    z_max: float = 4.0
    """Points at or above this height are dropped [m]."""
    max_pillars: int = 2048
    """P: non-empty pillars kept per sweep (the first ones in point order)."""
    max_points: int = 8
    """M: points kept per pillar (the first ones in point order)."""
    pillar_channels: int = 32
    """Channels of the PointNet pillar feature."""
    hidden_channels: int = 32
    """Channels of the BEV CNN."""
    out_channels: int = 32
    """C_lidar: channels of the encoder's output."""
    stride: int = 2
    """s: output stride of the BEV CNN (a power of two dividing H and W)."""

    def __post_init__(self) -> None:
        owner = "LidarEncoderConfig"
        _check_grid(owner, self.grid)
        _check_finite(owner, z_min=self.z_min, z_max=self.z_max)
        if not self.z_min < self.z_max:
            raise ValueError(f"{owner}: z_min {self.z_min} must be below z_max {self.z_max}")
        _check_positive(
            owner,
            max_pillars=self.max_pillars,
            max_points=self.max_points,
            pillar_channels=self.pillar_channels,
            hidden_channels=self.hidden_channels,
            out_channels=self.out_channels,
        )
        _check_stride(owner, self.stride, self.grid)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "lidar") -> LidarEncoderConfig:
        """The config from plain data; missing keys keep their defaults."""
        return _dataclass_from_dict(cls, data, where)


@dataclass(frozen=True)
class CameraEncoderConfig:
    """Per-camera CNN, depth distribution, lift-splat onto the BEV grid, BEV CNN."""

    grid: RasterSpec = TINY_GRID
    """The BEV grid the frustum points are splatted on."""
    image_height: int = 96
    """h: input image rows [px] (divisible by ``image_stride``)."""
    image_width: int = 160
    """w: input image columns [px] (divisible by ``image_stride``)."""
    image_channels: tuple[int, ...] = (16, 32, 64)
    """Channels of the image CNN's stages; each halves the resolution."""
    depth_min: float = 2.0
    """Near edge of the first depth bin [m] (optical-frame z)."""
    depth_max: float = 50.0
    """Far edge of the last depth bin [m]."""
    depth_bins: int = 24
    """D: number of uniform depth bins; frustum points sit at the bin centres."""
    context_channels: int = 32
    """Channels of the per-pixel context feature that is lifted."""
    z_min: float = -2.0
    """Frustum points below this ego height are dropped [m]."""
    z_max: float = 4.0
    """Frustum points at or above this ego height are dropped [m]."""
    hidden_channels: int = 32
    """Channels of the BEV CNN."""
    out_channels: int = 32
    """C_cam: channels of the encoder's output."""
    stride: int = 2
    """s: output stride of the BEV CNN (a power of two dividing H and W)."""

    def __post_init__(self) -> None:
        owner = "CameraEncoderConfig"
        _check_grid(owner, self.grid)
        _check_positive(
            owner,
            image_height=self.image_height,
            image_width=self.image_width,
            depth_bins=self.depth_bins,
            context_channels=self.context_channels,
            hidden_channels=self.hidden_channels,
            out_channels=self.out_channels,
        )
        _check_channels(owner, "image_channels", self.image_channels)
        f = self.image_stride
        if self.image_height % f or self.image_width % f:
            raise ValueError(
                f"{owner}: image {self.image_height} x {self.image_width} px must be divisible "
                f"by the image stride {f} (2 ** len(image_channels))"
            )
        _check_finite(
            owner,
            depth_min=self.depth_min,
            depth_max=self.depth_max,
            z_min=self.z_min,
            z_max=self.z_max,
        )
        if not 0.0 < self.depth_min < self.depth_max:
            raise ValueError(
                f"{owner}: need 0 < depth_min < depth_max, got {self.depth_min}, {self.depth_max}"
            )
        if not self.z_min < self.z_max:
            raise ValueError(f"{owner}: z_min {self.z_min} must be below z_max {self.z_max}")
        _check_stride(owner, self.stride, self.grid)

    @property
    def image_stride(self) -> int:
        """Pixels per image-feature cell along each axis: ``2 ** len(image_channels)``."""
        return 2 ** len(self.image_channels)

    @property
    def feature_shape(self) -> tuple[int, int]:
        """``(h', w')``: rows and columns of the image feature map."""
        return (self.image_height // self.image_stride, self.image_width // self.image_stride)

    @property
    def depth_bin_size(self) -> float:
        """Width of one depth bin [m]."""
        return (self.depth_max - self.depth_min) / self.depth_bins

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, where: str = "camera"
    ) -> CameraEncoderConfig:
        """The config from plain data; missing keys keep their defaults."""
        return _dataclass_from_dict(cls, data, where)


@dataclass(frozen=True)
class FusionConfig:
    """Concatenation of the lidar and camera BEV features followed by a small CNN."""

    grid: RasterSpec = TINY_GRID
    """The BEV grid of the inputs."""
    stride: int = 2
    """s: the inputs' stride; they are ``(B, C, H / s, W / s)``."""
    lidar_channels: int = 32
    """C_lidar: channels of the lidar BEV input."""
    camera_channels: int = 32
    """C_cam: channels of the camera BEV input."""
    out_channels: int = 64
    """D: channels of the fused BEV feature."""

    def __post_init__(self) -> None:
        _check_grid("FusionConfig", self.grid)
        _check_stride("FusionConfig", self.stride, self.grid)
        _check_positive(
            "FusionConfig",
            lidar_channels=self.lidar_channels,
            camera_channels=self.camera_channels,
            out_channels=self.out_channels,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "fusion") -> FusionConfig:
        """The config from plain data; missing keys keep their defaults."""
        return _dataclass_from_dict(cls, data, where)


@dataclass(frozen=True)
class DetectionHeadConfig:
    """CenterPoint-style detection head: targets, losses and decoding."""

    grid: RasterSpec = TINY_GRID
    """The BEV grid; the head works on its cells at stride ``stride``."""
    stride: int = 2
    """s: the head's input stride (one heatmap cell = s x s grid cells)."""
    in_channels: int = 64
    """Channels of the BEV feature the head reads."""
    hidden_channels: int = 32
    """Channels of the head's shared conv."""
    num_classes: int = 3
    """K: heatmap channels, one per ``DetectionClass``."""
    gaussian_overlap: float = 0.1
    """Minimum box IoU for CenterNet's gaussian radius rule (CenterPoint uses 0.1)."""
    min_radius: int = 2
    """Smallest gaussian radius [heatmap cells]."""
    max_detections: int = 100
    """Top-k detections decoded per sample."""
    score_threshold: float = 0.1
    """Decoded detections score at least this (sigmoid heatmap value)."""
    nms_kernel: int = 3
    """Side of the max-pool window of the heatmap peak test [cells] (odd)."""
    focal_alpha: float = 2.0
    """Exponent of (1 - p) on positives of the CenterNet focal loss."""
    focal_beta: float = 4.0
    """Exponent of (1 - target) on negatives of the CenterNet focal loss."""
    heatmap_weight: float = 1.0
    """Weight of the heatmap focal loss."""
    regression_weight: float = 0.25
    """Weight of the L1 box regression loss."""

    def __post_init__(self) -> None:
        owner = "DetectionHeadConfig"
        _check_grid(owner, self.grid)
        _check_stride(owner, self.stride, self.grid)
        _check_positive(
            owner,
            in_channels=self.in_channels,
            hidden_channels=self.hidden_channels,
            num_classes=self.num_classes,
            min_radius=self.min_radius,
            max_detections=self.max_detections,
            nms_kernel=self.nms_kernel,
        )
        if self.nms_kernel % 2 == 0:
            raise ValueError(f"{owner}.nms_kernel must be odd, got {self.nms_kernel}")
        _check_finite(
            owner,
            gaussian_overlap=self.gaussian_overlap,
            score_threshold=self.score_threshold,
            focal_alpha=self.focal_alpha,
            focal_beta=self.focal_beta,
            heatmap_weight=self.heatmap_weight,
            regression_weight=self.regression_weight,
        )
        if not 0.0 < self.gaussian_overlap < 1.0:
            raise ValueError(
                f"{owner}.gaussian_overlap must be in (0, 1), got {self.gaussian_overlap}"
            )
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(
                f"{owner}.score_threshold must be in [0, 1), got {self.score_threshold}"
            )
        for name in ("focal_alpha", "focal_beta", "heatmap_weight", "regression_weight"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{owner}.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, where: str = "detection"
    ) -> DetectionHeadConfig:
        """The config from plain data; missing keys keep their defaults."""
        return _dataclass_from_dict(cls, data, where)


@dataclass(frozen=True)
class SegmentationHeadConfig:
    """BEV segmentation head: logits per ``BevClass`` at the full grid resolution."""

    grid: RasterSpec = TINY_GRID
    """The BEV grid of the output logits (H x W)."""
    stride: int = 2
    """s: the head's input stride; the head upsamples by s."""
    in_channels: int = 64
    """Channels of the BEV feature the head reads."""
    hidden_channels: int = 32
    """Channels of the head's convs."""
    num_classes: int = 4
    """Output channels, one per ``BevClass``."""
    bce_weight: float = 1.0
    """Weight of the per-pixel binary cross-entropy."""
    dice_weight: float = 1.0
    """Weight of the soft dice loss (mean over classes)."""

    def __post_init__(self) -> None:
        owner = "SegmentationHeadConfig"
        _check_grid(owner, self.grid)
        _check_stride(owner, self.stride, self.grid)
        _check_positive(
            owner,
            in_channels=self.in_channels,
            hidden_channels=self.hidden_channels,
            num_classes=self.num_classes,
        )
        _check_finite(owner, bce_weight=self.bce_weight, dice_weight=self.dice_weight)
        for name in ("bce_weight", "dice_weight"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{owner}.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, where: str = "segmentation"
    ) -> SegmentationHeadConfig:
        """The config from plain data; missing keys keep their defaults."""
        return _dataclass_from_dict(cls, data, where)


@dataclass(frozen=True)
class PerceptionConfig:
    """All perception configs together, checked for agreeing grids, strides and channels."""

    lidar: LidarEncoderConfig = LidarEncoderConfig()
    camera: CameraEncoderConfig = CameraEncoderConfig()
    fusion: FusionConfig = FusionConfig()
    detection: DetectionHeadConfig = DetectionHeadConfig()
    segmentation: SegmentationHeadConfig = SegmentationHeadConfig()

    def __post_init__(self) -> None:
        owner = "PerceptionConfig"
        grid = self.lidar.grid
        for name in ("camera", "fusion", "detection", "segmentation"):
            if getattr(self, name).grid != grid:
                raise ValueError(
                    f"{owner}: {name}.grid {getattr(self, name).grid} != lidar.grid {grid}"
                )
        for name in ("camera", "fusion", "detection", "segmentation"):
            if getattr(self, name).stride != self.lidar.stride:
                raise ValueError(
                    f"{owner}: {name}.stride {getattr(self, name).stride} != lidar.stride "
                    f"{self.lidar.stride}"
                )
        pairs = (
            ("fusion.lidar_channels", self.fusion.lidar_channels, self.lidar.out_channels),
            ("fusion.camera_channels", self.fusion.camera_channels, self.camera.out_channels),
            ("detection.in_channels", self.detection.in_channels, self.fusion.out_channels),
            ("segmentation.in_channels", self.segmentation.in_channels, self.fusion.out_channels),
        )
        for name, got, want in pairs:
            if got != want:
                raise ValueError(f"{owner}: {name} is {got}, must equal {want}")

    @property
    def grid(self) -> RasterSpec:
        """The BEV grid shared by every part."""
        return self.lidar.grid

    @property
    def stride(self) -> int:
        """s: the stride of the fused BEV feature."""
        return self.lidar.stride

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, where: str = "perception"
    ) -> PerceptionConfig:
        """The config from plain data. A top-level ``grid`` and ``stride`` (optional) are given
        to every part that has them, unless the part sets its own."""
        data = dict(data or {})
        shared: dict[str, Any] = {}
        for key in ("grid", "stride"):
            if key in data:
                shared[key] = data.pop(key)
        parts: dict[str, Any] = {}
        for name in ("lidar", "camera", "fusion", "detection", "segmentation"):
            block = data.pop(name, None)
            if block is not None and not isinstance(block, Mapping):
                raise ValueError(f"{where}.{name}: expected a mapping, got {block!r}")
            parts[name] = {**shared, **dict(block or {})}
        if data:
            raise ValueError(
                f"{where}: unknown keys {sorted(data)}; allowed keys are "
                "['grid', 'stride', 'lidar', 'camera', 'fusion', 'detection', 'segmentation']"
            )
        return _dataclass_from_dict(cls, parts, where)
