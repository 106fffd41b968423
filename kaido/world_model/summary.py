"""Parameters and forward FLOPs of :class:`~kaido.world_model.model.KaidoModel`, per part.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` over one forward pass
of an example batch (:func:`example_batch`) in eval mode: matrix multiplications, convolutions
and attention, two FLOPs per multiply-add; element-wise work, scatters and normalisations are not
counted. The default device is ``meta``: the model is built without memory, so even the large
configurations are summarised on a laptop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from kaido.logs.sample import (
    PAD_CLASS,
    SAMPLE_FIELDS,
    ActionIndex,
    BoxField,
    DetectionClass,
    EgoFeature,
)
from kaido.perception.lidar_encoder import LidarEncoder
from kaido.perception.pillars import pillarize_batch
from kaido.world_model.model import KaidoModel, ModelConfig

__all__ = [
    "PARTS",
    "ModelSummary",
    "PartSummary",
    "count_parameters",
    "example_batch",
    "summarize",
]

PARTS = (
    "lidar",
    "camera",
    "fusion",
    "backbone",
    "neck",
    "detection",
    "segmentation",
    "world_model",
    "forecast",
    "imitation",
    "light",
)
"""The parts of :class:`KaidoModel` (its child modules), in data-flow order."""


@dataclass(frozen=True)
class PartSummary:
    """One part of the model."""

    name: str
    """Child module name of :class:`KaidoModel`."""
    params: int
    """Parameters (trainable and frozen)."""
    flops: int
    """Forward FLOPs for the summary's batch."""


@dataclass(frozen=True)
class ModelSummary:
    """Parameters and FLOPs of a model, per part and in total."""

    name: str
    """The config's name."""
    parts: tuple[PartSummary, ...]
    """One entry per :data:`PARTS` item."""
    batch_size: int
    """Samples in the batch the FLOPs were counted on."""
    cameras: int
    """Cameras per sample in that batch."""

    @property
    def total_params(self) -> int:
        return sum(p.params for p in self.parts)

    @property
    def total_flops(self) -> int:
        return sum(p.flops for p in self.parts)

    def table(self) -> str:
        """A fixed-width text table: part, parameters [M], GFLOPs, share of the FLOPs."""
        total_flops = max(self.total_flops, 1)
        lines = [
            f"model {self.name}: batch {self.batch_size}, {self.cameras} camera(s)",
            f"{'part':<14}{'params':>14}{'GFLOPs':>12}{'flops %':>9}",
        ]
        for p in (*self.parts, PartSummary("total", self.total_params, self.total_flops)):
            if p.name == "total":
                lines.append("-" * 49)
            lines.append(
                f"{p.name:<14}{p.params / 1e6:>13.3f}M{p.flops / 1e9:>12.3f}"
                f"{100.0 * p.flops / total_flops:>8.1f}%"
            )
        return "\n".join(lines)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module`` (works on the meta device)."""
    return sum(p.numel() for p in module.parameters())


CAMERA_KEYS = ("camera_images", "camera_intrinsics", "camera_to_ego", "camera_mask")
"""Batch keys of the camera input."""


def example_batch(
    cfg: ModelConfig,
    batch_size: int = 2,
    cameras: int = 1,
    *,
    seed: int = 0,
    pillars: bool = False,
    device: str | torch.device = "cpu",
) -> dict[str, Tensor]:
    """A plausible random batch with every field of the sample contract for ``cfg``.

    Sizes come from :meth:`ModelConfig.sample_spec`. One forward-looking camera per slot
    (90° horizontal field of view, 1.6 m up), lidar points spread over the grid, a quarter of the
    agent rows valid with constant-velocity futures, the ego on a straight route. With
    ``pillars`` the batch also holds the pillar tensors of the lidar points. Generated on the
    CPU from ``seed`` and moved to ``device`` (on ``meta`` only the shapes remain). With
    ``cameras=0`` the batch has no camera fields.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    spec = cfg.sample_spec(cameras)
    rng = np.random.default_rng(seed)
    b, c = batch_size, len(spec.cameras)
    h, w = spec.image_hw
    grid = spec.grid
    x_lo, x_hi = spec.grid_x_range
    y_lo, y_hi = spec.grid_y_range
    dt = spec.step_seconds
    out: dict[str, np.ndarray] = {}

    out["camera_images"] = rng.integers(0, 256, (b, c, 3, h, w), dtype=np.uint8)
    k = np.array([[w / 2.0, 0.0, w / 2.0], [0.0, w / 2.0, h / 2.0], [0.0, 0.0, 1.0]])
    out["camera_intrinsics"] = np.broadcast_to(k, (b, c, 3, 3)).astype(np.float32)
    optical_to_ego = np.eye(4)
    optical_to_ego[:3, :3] = [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]
    optical_to_ego[:3, 3] = [1.5, 0.0, 1.6]
    out["camera_to_ego"] = np.broadcast_to(optical_to_ego, (b, c, 4, 4)).astype(np.float32)
    out["camera_mask"] = np.ones((b, c), dtype=bool)
    out["traffic_light"] = rng.integers(0, 4, size=b).astype(np.int64)

    n = spec.max_lidar_points
    points = np.zeros((b, n, 4), dtype=np.float32)
    counts = rng.integers(n // 4, n // 2 + 1, size=b).astype(np.int32)
    for i in range(b):
        m = int(counts[i])
        points[i, :m, 0] = rng.uniform(x_lo, x_hi, m)
        points[i, :m, 1] = rng.uniform(y_lo, y_hi, m)
        points[i, :m, 2] = rng.uniform(-0.5, 3.0, m)
        points[i, :m, 3] = rng.uniform(0.0, 1.0, m)
    points = points.astype(np.float16).astype(np.float32)  # the dataset stores float16
    out["lidar_points"] = points.astype(np.float16)
    out["lidar_count"] = counts

    speed = rng.uniform(0.0, 12.0, b)
    ego_state = np.zeros((b, len(EgoFeature)), dtype=np.float32)
    ego_state[:, EgoFeature.SPEED] = speed
    ego_state[:, EgoFeature.ACCEL] = rng.normal(0.0, 1.0, b)
    ego_state[:, EgoFeature.YAW_RATE] = rng.normal(0.0, 0.05, b)
    ego_state[:, EgoFeature.SPEED_LIMIT] = 13.9
    out["ego_state"] = ego_state
    r = np.arange(spec.route_points) * spec.route_spacing
    out["route"] = np.stack([np.broadcast_to(r, (b, r.size)), np.zeros((b, r.size))], -1).astype(
        np.float32
    )
    past_t = -dt * np.arange(spec.past_steps, 0, -1)
    future_t = dt * np.arange(1, spec.future_steps + 1)
    out["ego_past"] = np.zeros((b, spec.past_steps, 3), dtype=np.float32)
    out["ego_past"][..., 0] = speed[:, None] * past_t
    out["ego_future"] = np.zeros((b, spec.future_steps, 3), dtype=np.float32)
    out["ego_future"][..., 0] = speed[:, None] * future_t
    actions = np.zeros((b, spec.future_steps, len(ActionIndex)), dtype=np.float32)
    actions[..., ActionIndex.ACCEL] = rng.normal(0.0, 1.0, (b, spec.future_steps))
    actions[..., ActionIndex.CURVATURE] = rng.normal(0.0, 0.02, (b, spec.future_steps))
    out["actions"] = actions

    m = spec.max_agents
    valid = np.zeros((b, m), dtype=bool)
    valid[:, : max(1, m // 4)] = True
    boxes = np.zeros((b, m, len(BoxField)), dtype=np.float32)
    boxes[..., BoxField.X] = rng.uniform(x_lo + 1.0, x_hi - 1.0, (b, m))
    boxes[..., BoxField.Y] = rng.uniform(y_lo + 1.0, y_hi - 1.0, (b, m))
    boxes[..., BoxField.LENGTH] = rng.uniform(0.6, 5.0, (b, m))
    boxes[..., BoxField.WIDTH] = rng.uniform(0.6, 2.0, (b, m))
    boxes[..., BoxField.YAW] = rng.uniform(-math.pi, math.pi, (b, m))
    boxes[..., BoxField.VX] = rng.normal(0.0, 4.0, (b, m))
    boxes[..., BoxField.VY] = rng.normal(0.0, 1.0, (b, m))
    boxes[~valid] = 0.0
    out["boxes"] = boxes
    classes = rng.integers(0, len(DetectionClass), (b, m)).astype(np.int64)
    out["box_class"] = np.where(valid, classes, PAD_CLASS)
    out["box_mask"] = valid
    centre = boxes[..., [BoxField.X, BoxField.Y]]
    velocity = boxes[..., [BoxField.VX, BoxField.VY]]
    out["agent_future"] = (centre[:, :, None] + velocity[:, :, None] * future_t[:, None]).astype(
        np.float32
    )
    out["agent_future_mask"] = np.broadcast_to(valid[..., None], (b, m, spec.future_steps)).copy()
    semantics = rng.random((b, 4, grid.height, grid.width)) < 0.1
    out["bev_semantics"] = semantics.astype(np.uint8)
    occupancy = rng.random((b, spec.occupancy_steps, grid.height, grid.width)) < 0.05
    out["occupancy_future"] = occupancy.astype(np.uint8)

    if c == 0:  # no camera at all: the batch has no camera fields
        for name in CAMERA_KEYS:
            del out[name]
    for name in out:
        f = SAMPLE_FIELDS[name]
        want = (b, *f.shape(spec))
        if out[name].shape != want or out[name].dtype != f.dtype:
            raise AssertionError(f"example_batch {name}: {out[name].dtype} {out[name].shape}")

    if pillars:
        lc = cfg.perception.lidar
        pb = pillarize_batch(
            points, counts, lc.grid, lc.z_min, lc.z_max, lc.max_pillars, lc.max_points
        )
        out["pillar_features"] = pb.features
        out["pillar_coords"] = pb.coords.astype(np.int64)
        out["pillar_points"] = pb.num_points.astype(np.int64)
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in out.items()}


def _flops(module: nn.Module, *args: object) -> dict[str, int]:
    """FLOPs of ``module(*args)`` per module name (the root is ``type(module).__name__``)."""
    counter = FlopCounterMode(display=False)
    with counter:
        module(*args)
    return {name: int(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}


LIDAR_KEYS = ("lidar_points", "lidar_count", "pillar_features", "pillar_coords", "pillar_points")
"""Batch keys of the lidar input."""


def summarize(
    cfg: ModelConfig, batch_size: int = 1, cameras: int = 1, device: str | torch.device = "meta"
) -> ModelSummary:
    """Parameters and forward FLOPs per part of ``KaidoModel(cfg)`` on an example batch.

    On the ``meta`` device the lidar encoder (whose input check reads tensor values) is counted
    on its own with real CPU tensors, and the rest of the model without a lidar input (the
    fusion's FLOPs do not depend on whether a modality is present).
    """
    device = torch.device(device)
    with device:
        model = KaidoModel(cfg)
    model.eval()
    root = type(model).__name__
    batch = example_batch(cfg, batch_size, cameras, pillars=True, device="cpu")
    lidar_flops: int | None = None
    if device.type == "meta":
        lidar = LidarEncoder(cfg.perception.lidar).eval()
        lidar_flops = _flops(
            lidar, batch["pillar_features"], batch["pillar_coords"], batch["pillar_points"]
        ).get(type(lidar).__name__, 0)
        batch = {k: v for k, v in batch.items() if k not in LIDAR_KEYS}
    counts = _flops(model, {k: v.to(device) for k, v in batch.items()})
    parts = []
    for name in PARTS:
        flops = counts.get(f"{root}.{name}", 0)
        if name == "lidar" and lidar_flops is not None:
            flops = lidar_flops
        parts.append(PartSummary(name, count_parameters(getattr(model, name)), flops))
    return ModelSummary(cfg.name, tuple(parts), batch_size, cameras)
