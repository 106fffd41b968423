"""The composed learned stack: :class:`ModelConfig` and :class:`KaidoModel` with its losses.

``KaidoModel(cfg)(batch)`` runs sensors → perception (lidar pillars + camera lift-splat → fused
BEV) → foundation backbone (with temporal memory) → a BEV refinement from the backbone's tokens →
detection and BEV-segmentation heads, the world model's imagined occupancy under the logged
actions, the agent forecasting head and the imitation prior.

The batch is the contract's (:mod:`kaido.logs.sample`, a leading ``B`` axis; see
``.agents/issue5.md``) as torch tensors. Rules of the forward pass:

* Sensors: any subset may be present. Lidar comes as pillar tensors ``pillar_features (B, P, M,
  9)``, ``pillar_coords (B, P, 2)`` and ``pillar_points (B, P)`` when the data loader produced
  them (:func:`kaido.perception.pillars.pillarize_batch` in the collate function), otherwise the
  model pillarizes ``lidar_points``/``lidar_count`` itself (NumPy/Numba on the CPU, then moved to
  the batch's device); with neither, lidar is absent. Cameras: ``camera_images`` uint8 (scaled to
  [0, 1] here; float images are taken as already in [0, 1]) with ``camera_intrinsics``,
  ``camera_to_ego`` and ``camera_mask``; absent keys mean no camera. A missing modality is zeros
  in the fusion, never a crash.
* Memory: ``forward(batch, memory)`` takes the previous tick's ``outputs["memory"]`` (None: the
  learned initial memory). A *sequence* batch (every field with a second axis ``S`` of
  consecutive frames, recognised by ``ego_state`` of shape ``(B, S, 4)``) runs the frames in
  order, feeding the memory forward (gradients flow through it), and returns the last frame's
  outputs; :meth:`KaidoModel.losses` then scores the last frame.
* Forecast queries: ground-truth ``boxes``/``box_class``/``box_mask`` when present (training,
  evaluation), else the decoded detections (inference), padded to ``max_agents``.
* Imagined occupancy: under the first ``world_model.steps`` of the logged ``actions`` when the
  batch has them (teacher forcing); a planner calls :meth:`KaidoModel.encode` and
  ``model.world_model.imagine(state, candidate_actions)`` instead.

Outputs (``B`` batch, ``M`` agents, ``K`` modes, ``T_f`` future steps, ``T_o`` imagined steps):
``detection_heatmap (B, 3, H/s, W/s)``, ``detection_regression (B, 8, H/s, W/s)``,
``segmentation (B, 4, H, W)``, ``occupancy (B, T_o, H, W)`` (logits, only with ``actions``),
``forecast_modes (B, M, K, T_f, 2)``, ``forecast_logits (B, M, K)``, ``agent_boxes (B, M, 7)``,
``agent_class (B, M)``, ``agent_mask (B, M)``, ``plan_trajectories (B, K_p, T_f, 3)``,
``plan_logits (B, K_p)``, ``memory (B, Mm, D)``, ``light_logits (B, 4)`` (with cameras).

:meth:`KaidoModel.losses` scores what the batch has targets for (a raw fleet log with only
``occupancy_future`` trains the world model alone) and sums the terms with
:class:`LossWeights` into ``"total"``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from kaido.logs.sample import SampleSpec
from kaido.perception.camera_encoder import CameraEncoder
from kaido.perception.config import PerceptionConfig, grid_from_dict
from kaido.perception.detection import (
    DetectionHead,
    DetectionOutput,
    decode_detections,
    detection_loss,
    detection_targets,
)
from kaido.perception.fusion import BevFusion
from kaido.perception.lidar_encoder import LidarEncoder
from kaido.perception.pillars import pillarize_batch
from kaido.perception.segmentation import SegmentationHead, segmentation_loss
from kaido.perception.traffic_light import (
    TrafficLightConfig,
    TrafficLightHead,
    traffic_light_loss,
)
from kaido.prediction.learned import (
    ForecastConfig,
    ForecastHead,
    ForecastOutput,
    detections_to_queries,
    forecast_loss,
)
from kaido.scene.raster import RasterSpec
from kaido.world_model.backbone import BackboneConfig, BackboneOutput, FoundationBackbone
from kaido.world_model.dynamics import WorldModel, WorldModelConfig, occupancy_loss
from kaido.world_model.imitation import (
    ImitationConfig,
    ImitationHead,
    ImitationOutput,
    imitation_loss,
)

__all__ = ["LOSS_TERMS", "KaidoModel", "LossWeights", "ModelConfig", "TokenToBev"]

LOSS_TERMS = (
    "detection",
    "segmentation",
    "occupancy",
    "forecast_regression",
    "forecast_classification",
    "imitation_regression",
    "imitation_classification",
    "traffic_light",
)
"""Names of the loss terms (keys of :meth:`KaidoModel.losses` besides ``"total"``)."""


@dataclass(frozen=True)
class LossWeights:
    """Weight of each loss term in ``"total"`` (0 switches a term off)."""

    detection: float = 1.0
    """Detection head (its own focal + regression mix, :func:`detection_loss` ``total``)."""
    segmentation: float = 1.0
    """BEV segmentation (its own BCE + dice mix)."""
    occupancy: float = 1.0
    """World model: imagined occupancy BCE against ``occupancy_future``."""
    forecast_regression: float = 0.5
    """Forecasting: winner-takes-all mean displacement [m]."""
    forecast_classification: float = 0.5
    """Forecasting: cross-entropy on the winning mode."""
    imitation_regression: float = 0.5
    """Imitation prior: winner-takes-all pose error [m]."""
    imitation_classification: float = 0.5
    """Imitation prior: cross-entropy on the winning mode."""
    traffic_light: float = 0.5
    """Traffic-light state: cross-entropy on the light ahead."""

    def __post_init__(self) -> None:
        for name in LOSS_TERMS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"LossWeights.{name} must be a number, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"LossWeights.{name} must be finite and >= 0, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """The whole model. Built from the ``model:`` section of ``configs/model/*.yaml`` by
    :meth:`from_dict`, which derives what the parts share (see there)."""

    name: str = "tiny"
    """A label for the size (``tiny``, ``base``, ``large``, ...)."""
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    """Encoders, fusion, detection and segmentation heads (and the BEV grid)."""
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    """The foundation backbone."""
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    """Latent dynamics and occupancy decoder."""
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    """Agent forecasting head."""
    imitation: ImitationConfig = field(default_factory=ImitationConfig)
    """Imitation prior head."""
    traffic_light: TrafficLightConfig = field(default_factory=TrafficLightConfig)
    """Traffic-light state head (reads the camera images)."""
    loss: LossWeights = field(default_factory=LossWeights)
    """Loss weights."""
    max_agents: int = 64
    """M: forecast queries at inference (the highest-scoring detections)."""

    def __post_init__(self) -> None:
        p, bb, wm = self.perception, self.backbone, self.world_model
        grid = p.grid
        bev_shape = (grid.height // p.stride, grid.width // p.stride)
        checks: list[tuple[str, object, object]] = [
            ("backbone.in_channels", bb.in_channels, p.fusion.out_channels),
            ("backbone.bev_shape", tuple(bb.bev_shape), bev_shape),
            ("world_model.dim", wm.dim, bb.dim),
            ("world_model.token_shape", tuple(wm.token_shape), bb.token_shape),
            ("world_model.grid_shape", tuple(wm.grid_shape), (grid.height, grid.width)),
            ("forecast.dim", self.forecast.dim, bb.dim),
            ("forecast.bev_channels", self.forecast.bev_channels, p.fusion.out_channels),
            ("forecast.grid", self.forecast.grid, grid),
            ("imitation.dim", self.imitation.dim, bb.dim),
            ("traffic_light.dim", self.traffic_light.dim, bb.dim),
        ]
        for name, got, want in checks:
            if got != want:
                raise ValueError(f"ModelConfig: {name} is {got}, must be {want}")
        if isinstance(self.max_agents, bool) or not isinstance(self.max_agents, int):
            raise ValueError(f"ModelConfig.max_agents must be an integer, got {self.max_agents!r}")
        if self.max_agents < 1:
            raise ValueError(f"ModelConfig.max_agents must be >= 1, got {self.max_agents}")

    @property
    def grid(self) -> RasterSpec:
        """The BEV grid."""
        return self.perception.grid

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "model") -> ModelConfig:
        """The config from plain data (a YAML ``model:`` block or :func:`to_jsonable` output).

        Missing keys keep their defaults. Derived from the perception block unless given:
        ``backbone.in_channels`` and ``forecast.bev_channels`` (the fusion's ``out_channels``),
        ``backbone.bev_shape`` (grid / stride), ``forecast.grid`` (the grid); from the backbone:
        ``dim`` of the world model and heads, ``heads`` of the world model and heads,
        ``world_model.token_shape``; ``world_model.grid_shape`` is the grid's ``(H, W)``.
        Unknown keys and bad values raise ``ValueError`` naming the key.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; allowed keys are {sorted(known)}")
        for key in ("backbone", "world_model", "forecast", "imitation", "traffic_light", "loss"):
            if data.get(key) is not None and not isinstance(data[key], Mapping):
                raise ValueError(f"{where}.{key}: expected a mapping, got {data[key]!r}")
        perception = PerceptionConfig.from_dict(data.get("perception"), f"{where}.perception")
        grid = perception.grid
        bev_shape = [grid.height // perception.stride, grid.width // perception.stride]
        fused = perception.fusion.out_channels

        bb_data = {"in_channels": fused, "bev_shape": bev_shape, **dict(data.get("backbone") or {})}
        backbone = _dataclass_from_dict(BackboneConfig, bb_data, f"{where}.backbone")
        shared = {"dim": backbone.dim, "heads": backbone.heads}
        wm_data = {
            **shared,
            "token_shape": list(backbone.token_shape),
            "grid_shape": [grid.height, grid.width],
            **dict(data.get("world_model") or {}),
        }
        fc_data = {
            **shared,
            "bev_channels": fused,
            "grid": grid,
            **dict(data.get("forecast") or {}),
        }
        im_data = {**shared, **dict(data.get("imitation") or {})}
        tl_data = {"dim": backbone.dim, **dict(data.get("traffic_light") or {})}
        kwargs: dict[str, Any] = {
            "perception": perception,
            "backbone": backbone,
            "world_model": _dataclass_from_dict(WorldModelConfig, wm_data, f"{where}.world_model"),
            "forecast": _dataclass_from_dict(ForecastConfig, fc_data, f"{where}.forecast"),
            "imitation": _dataclass_from_dict(ImitationConfig, im_data, f"{where}.imitation"),
            "traffic_light": _dataclass_from_dict(
                TrafficLightConfig, tl_data, f"{where}.traffic_light"
            ),
            "loss": _dataclass_from_dict(LossWeights, data.get("loss"), f"{where}.loss"),
        }
        for key in ("name", "max_agents"):
            if key in data:
                kwargs[key] = _convert(data[key], typing.get_type_hints(cls)[key], f"{where}.{key}")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from exc

    def sample_spec(self, cameras: int = 1) -> SampleSpec:
        """A :class:`SampleSpec` that fits this model (``cameras`` named ``cam0..``; one camera
        is named ``front`` as in the default rig)."""
        if isinstance(cameras, bool) or not isinstance(cameras, int) or cameras < 0:
            raise ValueError(f"cameras must be an integer >= 0, got {cameras!r}")
        names = ("front",) if cameras == 1 else tuple(f"cam{i}" for i in range(cameras))
        cam = self.perception.camera
        return SampleSpec(
            grid=self.grid,
            cameras=names,
            image_hw=(cam.image_height, cam.image_width),
            max_agents=self.max_agents,
            future_steps=self.forecast.future_steps,
            past_steps=self.backbone.past_steps,
            step_seconds=self.forecast.step_seconds,
            route_points=self.backbone.route_points,
            occupancy_steps=self.world_model.steps,
        )

    def check_sample_spec(self, spec: SampleSpec) -> None:
        """ValueError naming the first size where the dataset's ``spec`` and this model differ."""
        cam = self.perception.camera
        checks: list[tuple[str, object, object]] = [
            ("grid", spec.grid, self.grid),
            ("image_hw", tuple(spec.image_hw), (cam.image_height, cam.image_width)),
            ("route_points", spec.route_points, self.backbone.route_points),
            ("past_steps", spec.past_steps, self.backbone.past_steps),
            ("future_steps", spec.future_steps, self.forecast.future_steps),
            ("future_steps", spec.future_steps, self.imitation.future_steps),
            ("step_seconds", spec.step_seconds, self.forecast.step_seconds),
            ("step_seconds", spec.step_seconds, self.imitation.step_seconds),
        ]
        for name, got, want in checks:
            if got != want:
                raise ValueError(
                    f"sample spec {name} is {got}, the model {self.name!r} needs {want}"
                )
        if spec.occupancy_steps < self.world_model.steps:
            raise ValueError(
                f"sample spec occupancy_steps is {spec.occupancy_steps}, the model "
                f"{self.name!r} imagines {self.world_model.steps}"
            )


_C = TypeVar("_C")


def _convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against (and converted to) the type ``hint``; ValueError naming it."""
    if hint is RasterSpec:
        return grid_from_dict(value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
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


class TokenToBev(nn.Module):
    """Backbone patch tokens back onto the fused BEV map as a residual:
    ``forward(fused (B, C, h, w), tokens (B, N, D)) -> (B, C, h, w)`` (1x1 conv of the token
    grid, nearest upsampling by the patch size, added to ``fused``)."""

    def __init__(self, backbone: BackboneConfig) -> None:
        super().__init__()
        self.token_shape = backbone.token_shape
        self.patch = backbone.patch
        self.proj = nn.Conv2d(backbone.dim, backbone.in_channels, 1)

    def forward(self, fused: Tensor, tokens: Tensor) -> Tensor:
        b, _, d = tokens.shape
        rows, cols = self.token_shape
        grid = tokens.transpose(1, 2).reshape(b, d, rows, cols)
        up = self.proj(grid)
        if self.patch > 1:
            up = up.repeat_interleave(self.patch, dim=2).repeat_interleave(self.patch, dim=3)
        out: Tensor = fused + up
        return out


def _is_sequence(batch: Mapping[str, Tensor]) -> bool:
    if "ego_state" not in batch:
        raise ValueError("batch: missing 'ego_state' (B, 4)")
    dim = batch["ego_state"].dim()
    if dim not in (2, 3):
        raise ValueError(
            f"batch 'ego_state': expected shape (B, 4) or (B, S, 4), got "
            f"{tuple(batch['ego_state'].shape)}"
        )
    return dim == 3


def _frame(batch: Mapping[str, Tensor], index: int) -> dict[str, Tensor]:
    return {k: v[:, index] for k, v in batch.items()}


class KaidoModel(nn.Module):
    """The composed model (see the module docstring for the batch, outputs and losses)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"KaidoModel: cfg must be a ModelConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        p = cfg.perception
        self.lidar = LidarEncoder(p.lidar)
        self.camera = CameraEncoder(p.camera)
        self.fusion = BevFusion(p.fusion)
        self.backbone = FoundationBackbone(cfg.backbone)
        self.neck = TokenToBev(cfg.backbone)
        self.detection = DetectionHead(p.detection)
        self.segmentation = SegmentationHead(p.segmentation)
        self.world_model = WorldModel(cfg.world_model)
        self.forecast = ForecastHead(cfg.forecast)
        self.imitation = ImitationHead(cfg.imitation)
        self.light = TrafficLightHead(cfg.traffic_light)

    # -- sensors -----------------------------------------------------------------------------

    def _lidar_bev(self, batch: Mapping[str, Tensor], device: torch.device) -> Tensor | None:
        if "pillar_features" in batch:
            return self.lidar(
                batch["pillar_features"].float(),
                batch["pillar_coords"].long(),
                batch["pillar_points"].long(),
            )
        if "lidar_points" not in batch:
            return None
        if "lidar_count" not in batch:
            raise ValueError("batch: 'lidar_points' needs 'lidar_count'")
        lc = self.cfg.perception.lidar
        pillars = pillarize_batch(
            batch["lidar_points"].detach().float().cpu().numpy(),
            batch["lidar_count"].detach().cpu().numpy().astype(np.int64).reshape(-1),
            lc.grid,
            lc.z_min,
            lc.z_max,
            lc.max_pillars,
            lc.max_points,
        )
        return self.lidar(
            torch.from_numpy(pillars.features).to(device),
            torch.from_numpy(pillars.coords).to(device).long(),
            torch.from_numpy(pillars.num_points).to(device).long(),
        )

    def _camera_bev(self, batch: Mapping[str, Tensor]) -> Tensor | None:
        if "camera_images" not in batch:
            return None
        images = batch["camera_images"]
        images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        mask = batch.get("camera_mask")
        if mask is None:
            mask = torch.ones(images.shape[:2], dtype=torch.bool, device=images.device)
        return self.camera(
            images, batch["camera_intrinsics"].float(), batch["camera_to_ego"].float(), mask.bool()
        )

    # -- the passes ----------------------------------------------------------------------------

    def encode(
        self, batch: Mapping[str, Tensor], memory: Tensor | None = None
    ) -> tuple[Tensor, BackboneOutput]:
        """One frame's ``(fused BEV (B, C, h, w), backbone state)``."""
        ego_state = batch["ego_state"].float()
        b = ego_state.shape[0]
        lidar_bev = self._lidar_bev(batch, ego_state.device)
        camera_bev = self._camera_bev(batch)
        fused = self.fusion(lidar_bev, camera_bev, batch_size=b)
        state = self.backbone(
            fused, ego_state, batch["route"].float(), batch["ego_past"].float(), memory
        )
        return fused, state

    def forward(
        self, batch: Mapping[str, Tensor], memory: Tensor | None = None
    ) -> dict[str, Tensor]:
        if _is_sequence(batch):
            steps = batch["ego_state"].shape[1]
            for s in range(steps - 1):
                _, state = self.encode(_frame(batch, s), memory)
                memory = state.memory
            batch = _frame(batch, steps - 1)
        fused, state = self.encode(batch, memory)
        return self._heads(batch, fused, state)

    def _heads(
        self,
        batch: Mapping[str, Tensor],
        fused: Tensor,
        state: BackboneOutput,
        segmentation: bool = True,
    ) -> dict[str, Tensor]:
        cfg = self.cfg
        bev = self.neck(fused, state.tokens)
        detection = self.detection(bev)
        out: dict[str, Tensor] = {
            "detection_heatmap": detection.heatmap,
            "detection_regression": detection.regression,
            "memory": state.memory,
        }
        if segmentation:
            out["segmentation"] = self.segmentation(bev)
        if "actions" in batch:
            actions = batch["actions"].float()[:, : cfg.world_model.steps]
            out["occupancy"] = self.world_model(state, actions)
        if "boxes" in batch:
            boxes = batch["boxes"].float()
            classes = batch["box_class"].long()
            mask = batch["box_mask"].bool()
        else:
            detections = decode_detections(
                detection.heatmap, detection.regression, cfg.perception.detection
            )
            boxes, classes, mask = detections_to_queries(detections, cfg.max_agents, bev.device)
        context = state.context()
        forecast = self.forecast(context, bev, boxes, classes, mask)
        out.update(
            forecast_modes=forecast.modes,
            forecast_logits=forecast.logits,
            agent_boxes=boxes,
            agent_class=classes,
            agent_mask=mask,
        )
        plan = self.imitation(state.ego, context, batch["ego_state"].float())
        out.update(plan_trajectories=plan.trajectories, plan_logits=plan.logits)
        if "camera_images" in batch:
            images = batch["camera_images"]
            images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
            given = batch.get("camera_mask")
            present = (
                given.bool()
                if given is not None
                else torch.ones(images.shape[:2], dtype=torch.bool, device=images.device)
            )
            out["light_logits"] = self.light(images, present, state.ego)
        return out

    # -- losses --------------------------------------------------------------------------------

    def losses(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """The loss terms the batch has targets for (:data:`LOSS_TERMS`) and their weighted
        sum ``"total"`` (:class:`LossWeights`); a sequence batch is scored on its last frame."""
        cfg = self.cfg
        if _is_sequence(batch):
            batch = _frame(batch, batch["ego_state"].shape[1] - 1)
        terms: dict[str, Tensor] = {}
        det_cfg = cfg.perception.detection
        if "boxes" in batch:
            targets = detection_targets(
                batch["boxes"].float(), batch["box_class"].long(), batch["box_mask"].bool(), det_cfg
            )
            prediction = DetectionOutput(
                outputs["detection_heatmap"], outputs["detection_regression"]
            )
            terms["detection"] = detection_loss(prediction, targets, det_cfg)["total"]
        if "bev_semantics" in batch:
            terms["segmentation"] = segmentation_loss(
                outputs["segmentation"], batch["bev_semantics"], cfg.perception.segmentation
            )["total"]
        if "occupancy" in outputs and "occupancy_future" in batch:
            logits = outputs["occupancy"]
            steps = min(logits.shape[1], batch["occupancy_future"].shape[1])
            terms["occupancy"] = occupancy_loss(
                logits[:, :steps], batch["occupancy_future"][:, :steps], cfg.world_model.pos_weight
            )
        if "boxes" in batch and "agent_future" in batch:
            forecast = ForecastOutput(outputs["forecast_modes"], outputs["forecast_logits"])
            reg, cls = forecast_loss(
                forecast,
                batch["agent_future"].float(),
                batch["agent_future_mask"].bool(),
                batch["box_mask"].bool(),
            )
            terms["forecast_regression"] = reg
            terms["forecast_classification"] = cls
        if "ego_future" in batch:
            plan = ImitationOutput(outputs["plan_trajectories"], outputs["plan_logits"])
            reg, cls = imitation_loss(plan, batch["ego_future"].float(), cfg.imitation.yaw_weight)
            terms["imitation_regression"] = reg
            terms["imitation_classification"] = cls
        if "light_logits" in outputs and "traffic_light" in batch:
            terms["traffic_light"] = traffic_light_loss(
                outputs["light_logits"], batch["traffic_light"]
            )
        if not terms:
            raise ValueError(
                "batch: no training targets (need any of boxes, bev_semantics, "
                "occupancy_future with actions, agent_future, ego_future)"
            )
        weights = cfg.loss
        total = sum(
            (getattr(weights, name) * value for name, value in terms.items()),
            start=torch.zeros((), device=next(iter(terms.values())).device),
        )
        return {**terms, "total": total}
