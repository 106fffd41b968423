"""Export of the neural part with ``torch.export`` and a loader that needs no model source.

:func:`export_model` writes a folder:

* ``frame.pt2``: one frame. Inputs (``B`` = 1) are the model's batch fields with lidar as
  pillar tensors, plus the temporal memory: ``pillar_features (1, P, Mp, 9)`` float32,
  ``pillar_coords (1, P, 2)`` int64, ``pillar_points (1, P)`` int64, ``camera_images
  (1, C, 3, H, W)`` uint8, ``camera_intrinsics (1, C, 3, 3)`` float32, ``camera_to_ego
  (1, C, 4, 4)`` float32, ``camera_mask (1, C)`` bool, ``ego_state (1, 4)``, ``route (1, R, 2)``,
  ``ego_past (1, T_p, 3)`` and ``memory (1, Mm, D)`` float32. Outputs: what
  ``KaidoModel._heads(..., segmentation=False)`` returns at inference (``detection_heatmap``,
  ``detection_regression``, ``forecast_modes``, ``forecast_logits``, ``agent_boxes``,
  ``agent_class``, ``agent_mask``, ``plan_trajectories``, ``plan_logits``, ``light_logits``,
  ``memory``) plus the backbone state the world model needs (``tokens (1, N, D)``, ``ego (1, D)``,
  ``route_tokens (1, R, D)``).
* ``imagine.pt2``: imagination. ``tokens (1, N, D)`` and ``actions (K, T_o, 2)`` with ``K``
  dynamic (1..``MAX_IMAGINED``) → ``occupancy (K, T_o, H, W)`` logits, as
  ``model.world_model.imagine(state, actions)``.
* ``initial_memory.npy``: the learned memory of a first frame ``(1, Mm, D)`` float32.
* ``metadata.json``: input/output names, shapes and dtypes of both programs, the sample spec, the
  sensor rig (when given), the model config, the lidar pillarization settings, the checkpoint
  (path and SHA-256), and provenance (git commit, library versions).

Detection decoding: ``decode_detections`` returns a data-dependent number of boxes per sample
(boolean masking), which ``torch.export`` cannot trace with static shapes. The exported graph
uses :func:`decode_queries` instead, a plain-torch static-shape equivalent of
``decode_detections`` followed by ``detections_to_queries`` (the top-``max_detections`` peaks
are already sorted by score, so the kept ones are a prefix: mask instead of slicing). The eager
pair and the exported graph are tested to agree on recorded frames.

:class:`ExportedModel` loads the folder with ``torch.export.load`` and imports neither
``kaido.world_model`` nor ``kaido.perception`` when given pillar tensors. Its methods mirror what
the learned stack calls: :meth:`ExportedModel.run` for ``model.encode`` + ``model._heads``
(returns the outputs and an :class:`ExportedState` with the fields of the backbone state) and
:meth:`ExportedModel.imagine` for ``model.world_model.imagine``. A batch with raw
``lidar_points``/``lidar_count`` (as ``LearnedStack.batch`` makes) is pillarized with
``kaido.perception.pillars`` (a NumPy/Numba kernel, not a model class), imported only then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "EXPORT_FORMAT",
    "FRAME_INPUTS",
    "FRAME_OUTPUTS",
    "IMAGINE_INPUTS",
    "IMAGINE_OUTPUTS",
    "MAX_IMAGINED",
    "ExportSummary",
    "ExportedModel",
    "ExportedState",
    "decode_queries",
    "export_checkpoint",
    "export_model",
]

EXPORT_FORMAT = 1
"""Version of the folder layout and metadata (``metadata.json`` ``format``)."""
MAX_IMAGINED = 256
"""Largest number of action sequences ``K`` one :meth:`ExportedModel.imagine` call takes."""

FRAME_INPUTS = (
    "pillar_features",
    "pillar_coords",
    "pillar_points",
    "camera_images",
    "camera_intrinsics",
    "camera_to_ego",
    "camera_mask",
    "ego_state",
    "route",
    "ego_past",
    "memory",
)
FRAME_OUTPUTS = (
    "detection_heatmap",
    "detection_regression",
    "forecast_modes",
    "forecast_logits",
    "agent_boxes",
    "agent_class",
    "agent_mask",
    "plan_trajectories",
    "plan_logits",
    "light_logits",
    "memory",
    "tokens",
    "ego",
    "route_tokens",
)
IMAGINE_INPUTS = ("tokens", "actions")
IMAGINE_OUTPUTS = ("occupancy",)
_PILLAR_KEYS = ("pillar_features", "pillar_coords", "pillar_points")


@dataclass(frozen=True)
class DecodeConfig:
    """Static settings of :func:`decode_queries` (from the detection head's config)."""

    nms_kernel: int
    max_detections: int
    score_threshold: float
    stride: int
    origin_row: float
    origin_col: float
    resolution: float
    max_agents: int
    pad_class: int


# box fields (kaido.logs.sample.BoxField) and regression channels
# (kaido.perception.detection.BoxRegression) by name; checked against the enums at export
_BOX = {"X": 0, "Y": 1, "LENGTH": 2, "WIDTH": 3, "YAW": 4, "VX": 5, "VY": 6}
_REG = {
    "OFFSET_ROW": 0,
    "OFFSET_COL": 1,
    "LOG_LENGTH": 2,
    "LOG_WIDTH": 3,
    "SIN_YAW": 4,
    "COS_YAW": 5,
    "VX": 6,
    "VY": 7,
}


def decode_queries(
    heatmap: Tensor, regression: Tensor, cfg: DecodeConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """Forecast queries from ``heatmap (B, K, h, w)`` logits and ``regression (B, 8, h, w)``
    with static shapes: ``boxes (B, M, 7)`` float32 (BoxField, zeros where padded), ``classes
    (B, M)`` int64 (``pad_class`` where padded), ``mask (B, M)`` bool, ``M = max_agents``.
    Equal to ``detections_to_queries(decode_detections(...), max_agents)``."""
    b, k, hs, ws = heatmap.shape
    heat = torch.sigmoid(heatmap.float())
    pad = cfg.nms_kernel // 2
    peak = torch.nn.functional.max_pool2d(heat, cfg.nms_kernel, stride=1, padding=pad)
    heat = torch.where(heat == peak, heat, torch.zeros_like(heat))
    top = min(cfg.max_detections, k * hs * ws)
    scores, flat = heat.reshape(b, -1).topk(top, dim=1)  # (B, top), descending
    classes = flat // (hs * ws)
    cell = flat % (hs * ws)
    reg = regression.float().flatten(2).transpose(1, 2)  # (B, h*w, 8)
    reg = torch.gather(reg, 1, cell[..., None].expand(-1, -1, reg.shape[-1]))  # (B, top, 8)
    rows = (cell // ws).float() + reg[..., _REG["OFFSET_ROW"]]
    cols = (cell % ws).float() + reg[..., _REG["OFFSET_COL"]]
    res = cfg.resolution
    fields = [torch.zeros_like(rows)] * len(_BOX)
    fields[_BOX["X"]] = (cfg.origin_row - rows * cfg.stride) * res
    fields[_BOX["Y"]] = (cfg.origin_col - cols * cfg.stride) * res
    fields[_BOX["LENGTH"]] = torch.exp(reg[..., _REG["LOG_LENGTH"]].clamp(max=10.0))
    fields[_BOX["WIDTH"]] = torch.exp(reg[..., _REG["LOG_WIDTH"]].clamp(max=10.0))
    fields[_BOX["YAW"]] = torch.atan2(reg[..., _REG["SIN_YAW"]], reg[..., _REG["COS_YAW"]])
    fields[_BOX["VX"]] = reg[..., _REG["VX"]]
    fields[_BOX["VY"]] = reg[..., _REG["VY"]]
    boxes = torch.stack(fields, dim=-1)  # (B, top, 7)
    keep = scores >= cfg.score_threshold
    m = cfg.max_agents
    if top >= m:
        boxes, classes, keep = boxes[:, :m], classes[:, :m], keep[:, :m]
    else:
        boxes = torch.cat([boxes, boxes.new_zeros(b, m - top, boxes.shape[-1])], dim=1)
        classes = torch.cat([classes, classes.new_zeros(b, m - top)], dim=1)
        keep = torch.cat([keep, keep.new_zeros(b, m - top)], dim=1)
    boxes = torch.where(keep[..., None], boxes, torch.zeros_like(boxes))
    classes = torch.where(keep, classes, torch.full_like(classes, cfg.pad_class))
    return boxes, classes.long(), keep


class _FrameProgram(nn.Module):
    """``model.encode`` + ``model._heads(segmentation=False)`` with pillar inputs, static
    decoding (:func:`decode_queries`) and the backbone state as outputs (FRAME_OUTPUTS)."""

    def __init__(self, model: nn.Module, decode: DecodeConfig) -> None:
        super().__init__()
        self.model = model
        self.decode = decode

    def forward(
        self,
        pillar_features: Tensor,
        pillar_coords: Tensor,
        pillar_points: Tensor,
        camera_images: Tensor,
        camera_intrinsics: Tensor,
        camera_to_ego: Tensor,
        camera_mask: Tensor,
        ego_state: Tensor,
        route: Tensor,
        ego_past: Tensor,
        memory: Tensor,
    ) -> tuple[Tensor, ...]:
        m: Any = self.model
        b = ego_state.shape[0]
        lidar_bev = m.lidar(pillar_features.float(), pillar_coords.long(), pillar_points.long())
        images = camera_images.float() / 255.0
        mask = camera_mask.bool()
        camera_bev = m.camera(images, camera_intrinsics.float(), camera_to_ego.float(), mask)
        fused = m.fusion(lidar_bev, camera_bev, batch_size=b)
        state = m.backbone(fused, ego_state.float(), route.float(), ego_past.float(), memory)
        bev = m.neck(fused, state.tokens)
        detection = m.detection(bev)
        boxes, classes, agents = decode_queries(
            detection.heatmap, detection.regression, self.decode
        )
        context = state.context()
        forecast = m.forecast(context, bev, boxes, classes, agents)
        plan = m.imitation(state.ego, context, ego_state.float())
        light = m.light(images, mask, state.ego)
        return (
            detection.heatmap,
            detection.regression,
            forecast.modes,
            forecast.logits,
            boxes,
            classes,
            agents,
            plan.trajectories,
            plan.logits,
            light,
            state.memory,
            state.tokens,
            state.ego,
            state.route,
        )


class _ImaginationProgram(nn.Module):
    """``model.world_model.imagine`` from the patch tokens of one scene and ``K`` action
    sequences (the tokens are broadcast over ``K``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, actions: Tensor) -> Tensor:
        from kaido.world_model.backbone import BackboneOutput

        k = actions.shape[0]
        expanded = tokens.expand(k, -1, -1)
        unused = expanded[:, :1]
        state = BackboneOutput(tokens=expanded, ego=expanded[:, 0], memory=unused, route=unused)
        model: Any = self.model
        out: Tensor = model.world_model.imagine(state, actions)
        return out


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_model` wrote."""

    out_dir: Path
    frame_path: Path
    imagine_path: Path
    metadata_path: Path
    seconds: float
    """[s] spent exporting."""


def _describe(names: tuple[str, ...], tensors: tuple[Tensor, ...]) -> list[dict[str, Any]]:
    return [
        {"name": n, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
        for n, t in zip(names, tensors, strict=True)
    ]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def example_frame_inputs(model: nn.Module, spec: Any) -> tuple[Tensor, ...]:
    """Zero inputs of the frame program's shapes and dtypes (FRAME_INPUTS order)."""
    from kaido.logs.sample import EgoFeature

    cfg: Any = model.cfg
    lc = cfg.perception.lidar
    c = len(spec.cameras)
    h, w = spec.image_hw
    backbone: Any = model.backbone
    memory = backbone.initial_memory(1).detach().clone()
    return (
        torch.zeros(1, lc.max_pillars, lc.max_points, 9),
        torch.zeros(1, lc.max_pillars, 2, dtype=torch.int64),
        torch.zeros(1, lc.max_pillars, dtype=torch.int64),
        torch.zeros(1, c, 3, h, w, dtype=torch.uint8),
        torch.eye(3).repeat(1, c, 1, 1),
        torch.eye(4).repeat(1, c, 1, 1),
        torch.ones(1, c, dtype=torch.bool),
        torch.zeros(1, len(EgoFeature)),
        torch.zeros(1, spec.route_points, 2),
        torch.zeros(1, spec.past_steps, 3),
        memory,
    )


def export_model(
    model: nn.Module,
    spec: Any,
    out_dir: Path | str,
    *,
    rig: Any = None,
    checkpoint: Path | None = None,
    example: Mapping[str, Tensor] | None = None,
) -> ExportSummary:
    """Export ``model`` (a :class:`~kaido.world_model.model.KaidoModel`) for the sample
    ``spec`` (:class:`~kaido.logs.sample.SampleSpec`) into ``out_dir`` (module docstring).

    ``example``: a frame's inputs by FRAME_INPUTS name to trace with (default: zeros); ``rig``
    (:class:`~kaido.scene.sensors.SensorRig`) and ``checkpoint`` are recorded in the metadata."""
    import time

    from kaido.logs.sample import PAD_CLASS, BoxField
    from kaido.perception.detection import BoxRegression
    from kaido.provenance import provenance, to_jsonable
    from kaido.world_model.model import KaidoModel

    if not isinstance(model, KaidoModel):
        raise TypeError(f"export_model: expected a KaidoModel, got {type(model).__name__}")
    model.cfg.check_sample_spec(spec)
    if {k: int(v) for k, v in _BOX.items()} != {f.name: int(f) for f in BoxField}:
        raise RuntimeError("export_model: BoxField changed; update kaido.stack.export._BOX")
    if _REG != {f.name: int(f) for f in BoxRegression}:
        raise RuntimeError("export_model: BoxRegression changed; update kaido.stack.export._REG")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    det = cfg.perception.detection
    grid = det.grid
    decode = DecodeConfig(
        nms_kernel=int(det.nms_kernel),
        max_detections=int(det.max_detections),
        score_threshold=float(det.score_threshold),
        stride=int(det.stride),
        origin_row=float(grid.origin_row),
        origin_col=float(grid.origin_col),
        resolution=float(grid.resolution),
        max_agents=int(cfg.max_agents),
        pad_class=int(PAD_CLASS),
    )
    model = model.eval()
    args = example_frame_inputs(model, spec)
    if example is not None:
        missing = [name for name in FRAME_INPUTS if name not in example]
        if missing:
            raise ValueError(f"export_model: example lacks {missing}")
        args = tuple(example[name] for name in FRAME_INPUTS)
    frame = _FrameProgram(model, decode).eval()
    imagine = _ImaginationProgram(model).eval()
    with torch.no_grad():
        frame_program = torch.export.export(frame, args)
        frame_out = frame(*args)
        n_tok, dim = frame_out[FRAME_OUTPUTS.index("tokens")].shape[1:]
        steps = cfg.world_model.steps
        imagine_args = (torch.zeros(1, n_tok, dim), torch.zeros(2, steps, 2))
        k = torch.export.Dim("K", min=1, max=MAX_IMAGINED)
        imagine_program = torch.export.export(
            imagine, imagine_args, dynamic_shapes={"tokens": {}, "actions": {0: k}}
        )
        imagine_out = imagine(*imagine_args)
    frame_path = out / "frame.pt2"
    imagine_path = out / "imagine.pt2"
    torch.export.save(frame_program, frame_path)
    torch.export.save(imagine_program, imagine_path)
    memory = model.backbone.initial_memory(1).detach().float().numpy()
    np.save(out / "initial_memory.npy", memory, allow_pickle=False)
    imagine_outputs = _describe(IMAGINE_OUTPUTS, (imagine_out,))
    imagine_outputs[0]["shape"][0] = "K"
    imagine_inputs = _describe(IMAGINE_INPUTS, imagine_args)
    imagine_inputs[1]["shape"][0] = "K"
    lc = cfg.perception.lidar
    metadata: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "programs": {
            "frame": {
                "file": frame_path.name,
                "inputs": _describe(FRAME_INPUTS, args),
                "outputs": _describe(FRAME_OUTPUTS, frame_out),
            },
            "imagine": {
                "file": imagine_path.name,
                "inputs": imagine_inputs,
                "outputs": imagine_outputs,
                "dynamic": {"K": [1, MAX_IMAGINED]},
            },
        },
        "initial_memory": {"file": "initial_memory.npy", "shape": list(memory.shape)},
        "pillars": {
            "z_min": float(lc.z_min),
            "z_max": float(lc.z_max),
            "max_pillars": int(lc.max_pillars),
            "max_points": int(lc.max_points),
        },
        "decode": to_jsonable(decode),
        "sample_spec": spec.to_dict(),
        "sensor_rig": rig.to_dict() if rig is not None else None,
        "model_config": to_jsonable(cfg),
        "checkpoint": (
            {"path": str(checkpoint), "sha256": _sha256(Path(checkpoint))}
            if checkpoint is not None
            else None
        ),
        "provenance": provenance(),
    }
    metadata_path = out / "metadata.json"
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n")
    return ExportSummary(
        out_dir=out,
        frame_path=frame_path,
        imagine_path=imagine_path,
        metadata_path=metadata_path,
        seconds=time.perf_counter() - start,
    )


def export_checkpoint(
    checkpoint: Path | str, out_dir: Path | str, rig_path: Path | str | None = None
) -> ExportSummary:
    """Load a training checkpoint (``kaido.world_model.lightning.load_checkpoint``) and
    :func:`export_model` it with its own sample spec (and the sensor rig at ``rig_path``)."""
    from kaido.logs.sample import SampleSpec
    from kaido.scene.sensors import load_sensor_rig
    from kaido.world_model.lightning import load_checkpoint

    path = Path(checkpoint)
    model, block = load_checkpoint(path)
    spec = SampleSpec.from_dict(block["spec"])
    rig = load_sensor_rig(Path(rig_path)) if rig_path is not None else None
    return export_model(model, spec, out_dir, rig=rig, checkpoint=path)


# -- the loader (no model source) -------------------------------------------------------------


class ExportedState(NamedTuple):
    """The backbone state of one frame, as the exported frame program returns it."""

    tokens: Tensor
    """``(1, N, D)`` patch tokens."""
    ego: Tensor
    """``(1, D)`` ego token."""
    memory: Tensor
    """``(1, Mm, D)`` memory for the next frame."""
    route: Tensor
    """``(1, R, D)`` route tokens."""


class ExportedModel:
    """The exported model of a folder written by :func:`export_model` (module docstring)."""

    def __init__(self, folder: Path | str) -> None:
        folder = Path(folder)
        meta_path = folder / "metadata.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: no export metadata (run `kaido export`)")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{meta_path}: malformed JSON: {err}") from None
        if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else None
            raise ValueError(f"{meta_path}: format {got!r}, this loader reads {EXPORT_FORMAT}")
        self.folder = folder
        self.metadata: dict[str, Any] = meta
        programs = meta["programs"]
        for name, names in (("frame", (FRAME_INPUTS, FRAME_OUTPUTS)), ("imagine", None)):
            if names is not None:
                got_in = tuple(d["name"] for d in programs[name]["inputs"])
                got_out = tuple(d["name"] for d in programs[name]["outputs"])
                if (got_in, got_out) != names:
                    raise ValueError(
                        f"{meta_path}: {name} program names {got_in} -> {got_out} differ from "
                        f"this loader's {names}"
                    )
        self._frame = torch.export.load(folder / programs["frame"]["file"]).module()
        self._imagine = torch.export.load(folder / programs["imagine"]["file"]).module()
        memory = np.load(folder / meta["initial_memory"]["file"], allow_pickle=False)
        self._initial_memory = torch.from_numpy(np.ascontiguousarray(memory, dtype=np.float32))
        self._inputs = {d["name"]: d for d in programs["frame"]["inputs"]}
        self.imagined_steps = int(programs["imagine"]["inputs"][1]["shape"][1])
        """T_o: the imagined steps ``imagine`` takes."""

    def initial_memory(self) -> Tensor:
        """``(1, Mm, D)`` the learned memory of a first frame."""
        return self._initial_memory.clone()

    def _pillars(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        if all(k in batch for k in _PILLAR_KEYS):
            return (
                batch["pillar_features"].float(),
                batch["pillar_coords"].long(),
                batch["pillar_points"].long(),
            )
        if "lidar_points" not in batch or "lidar_count" not in batch:
            raise ValueError(
                "ExportedModel: the batch needs pillar_features/pillar_coords/pillar_points or "
                "lidar_points with lidar_count"
            )
        from kaido.logs.sample import SampleSpec
        from kaido.perception.pillars import pillarize_batch

        grid = SampleSpec.from_dict(self.metadata["sample_spec"]).grid
        pc = self.metadata["pillars"]
        pillars = pillarize_batch(
            batch["lidar_points"].detach().float().cpu().numpy(),
            batch["lidar_count"].detach().cpu().numpy().astype(np.int64).reshape(-1),
            grid,
            pc["z_min"],
            pc["z_max"],
            pc["max_pillars"],
            pc["max_points"],
        )
        return (
            torch.from_numpy(pillars.features),
            torch.from_numpy(pillars.coords).long(),
            torch.from_numpy(pillars.num_points).long(),
        )

    def frame_inputs(
        self, batch: Mapping[str, Tensor], memory: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        """The frame program's inputs (FRAME_INPUTS order) from a model batch (B = 1), with
        shapes and dtypes checked against the metadata; ValueError naming the field."""
        pillars = self._pillars(batch)
        values: dict[str, Tensor] = dict(zip(_PILLAR_KEYS, pillars, strict=True))
        for name in FRAME_INPUTS[3:-1]:
            if name not in batch:
                raise ValueError(f"ExportedModel: the batch lacks {name!r}")
            values[name] = batch[name]
        values["memory"] = self.initial_memory() if memory is None else memory
        out = []
        for name in FRAME_INPUTS:
            want = self._inputs[name]
            dtype = getattr(torch, want["dtype"])
            tensor = values[name].to(dtype)
            if list(tensor.shape) != want["shape"]:
                raise ValueError(
                    f"ExportedModel: {name} has shape {tuple(tensor.shape)}, the export takes "
                    f"{tuple(want['shape'])}"
                )
            out.append(tensor.contiguous())
        return tuple(out)

    def run(
        self, batch: Mapping[str, Tensor], memory: Tensor | None = None
    ) -> tuple[dict[str, Tensor], ExportedState]:
        """One frame: ``(outputs by FRAME_OUTPUTS name, backbone state)``, as
        ``model.encode(batch, memory)`` followed by ``model._heads(batch, fused, state,
        segmentation=False)``; ``memory`` None is the learned initial memory."""
        with torch.no_grad():
            values = self._frame(*self.frame_inputs(batch, memory))
        outputs = dict(zip(FRAME_OUTPUTS, values, strict=True))
        state = ExportedState(
            tokens=outputs["tokens"],
            ego=outputs["ego"],
            memory=outputs["memory"],
            route=outputs["route_tokens"],
        )
        return outputs, state

    def imagine(self, state: ExportedState | Tensor, actions: Tensor) -> Tensor:
        """Occupancy logits ``(K, T_o, H, W)`` under ``actions (K, T_o, 2)`` from a frame's
        state (or its tokens ``(1, N, D)``), as ``model.world_model.imagine``."""
        tokens = state.tokens if isinstance(state, ExportedState) else state
        k = int(actions.shape[0]) if actions.dim() == 3 else -1
        if k < 1 or k > MAX_IMAGINED or actions.shape[1:] != (self.imagined_steps, 2):
            raise ValueError(
                f"ExportedModel.imagine: actions must be (K, {self.imagined_steps}, 2) with "
                f"1 <= K <= {MAX_IMAGINED}, got {tuple(actions.shape)}"
            )
        if not bool(torch.isfinite(actions).all()):
            raise ValueError("ExportedModel.imagine: actions must be finite")
        with torch.no_grad():
            out: Tensor = self._imagine(tokens.float(), actions.float())
        return out
