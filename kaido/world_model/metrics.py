"""Validation metrics of the learned stack, accumulated over a whole validation pass.

* ``det/mAP``, ``det/AP/<class>``: nuScenes-style centre-distance AP (0.5/1/2/4 m) of the decoded
  detections against the valid ``boxes`` (:func:`kaido.perception.detection.detection_ap`).
* ``bev_iou/<class>``: IoU of the BEV segmentation masks (logit > 0) per :class:`BevClass`,
  pixels summed over the set; ``bev_iou/mean`` over the classes present.
* ``occ_iou/<t>s``: IoU of the imagined occupancy (logit > 0, actions as logged) against the
  future lidar occupancy at t = 1, 2, 3 s.
* ``forecast/minADE``, ``forecast/minFDE``, ``forecast/MR``: K = 6, miss at 2 m, over the agents
  with a valid future step (:func:`kaido.prediction.metrics.evaluate`, AV2's definitions).
* ``plan/L2_<t>s``: L2 [m] between the most probable imitation trajectory and the logged ego
  future at t = 1, 2, 3 s, averaged over samples (the per-time-step protocol, not the
  running-mean one: the name says which).
* ``light/accuracy``: share of samples whose most probable traffic-light class
  (:class:`TrafficLightClass`, NONE included) is the labelled one; ``light/red_recall`` and
  ``light/red_precision``: of the samples labelled red, the share called red, and of those
  called red, the share labelled red (what decides whether the ego stops). The confusion
  matrix is :meth:`ValidationMetrics.light_confusion`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kaido.logs.sample import BevClass, DetectionClass, TrafficLightClass
from kaido.perception.detection import decode_detections, detection_ap
from kaido.perception.segmentation import iou_counts
from kaido.prediction.metrics import evaluate

OCCUPANCY_SECONDS = (1.0, 2.0, 3.0)
PLAN_SECONDS = (1.0, 2.0, 3.0)


class ValidationMetrics:
    """Accumulates one validation pass; :meth:`compute` returns ``name → value``."""

    def __init__(self, step_seconds: float = 0.5) -> None:
        self.step_seconds = float(step_seconds)
        self.reset()

    def reset(self) -> None:
        self._detections: list[tuple[Any, Any, Any]] = []
        self._truth: list[tuple[Any, Any]] = []
        self._bev_inter = np.zeros(len(BevClass), dtype=np.int64)
        self._bev_union = np.zeros(len(BevClass), dtype=np.int64)
        self._occ_inter = np.zeros(len(OCCUPANCY_SECONDS), dtype=np.int64)
        self._occ_union = np.zeros(len(OCCUPANCY_SECONDS), dtype=np.int64)
        self._forecast: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._plan_l2: list[np.ndarray] = []
        self._light = np.zeros((len(TrafficLightClass), len(TrafficLightClass)), dtype=np.int64)

    def _step(self, seconds: float) -> int:
        return round(seconds / self.step_seconds) - 1

    def update(
        self, model: Any, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> None:
        """Add one batch: ``outputs`` of ``model`` on ``batch`` (a sequence: its last frame)."""
        if batch["ego_state"].dim() == 3:
            batch = {k: v[:, -1] for k, v in batch.items()}
        with torch.no_grad():
            self._update_detection(model, outputs, batch)
            self._update_bev(outputs, batch)
            self._update_occupancy(outputs, batch)
            self._update_forecast(outputs, batch)
            self._update_plan(outputs, batch)
            self._update_light(outputs, batch)

    def _update_detection(
        self, model: Any, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> None:
        if "boxes" not in batch:
            return
        cfg = model.cfg.perception.detection
        decoded = decode_detections(
            outputs["detection_heatmap"], outputs["detection_regression"], cfg
        )
        boxes, classes, mask = batch["boxes"], batch["box_class"], batch["box_mask"].bool()
        for i, det in enumerate(decoded):
            self._detections.append(tuple(t.cpu().numpy() for t in det))  # type: ignore[arg-type]
            keep = mask[i] & (classes[i] >= 0)
            self._truth.append((boxes[i][keep].cpu().numpy(), classes[i][keep].cpu().numpy()))

    def _update_bev(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> None:
        if "bev_semantics" not in batch:
            return
        inter, union = iou_counts(outputs["segmentation"], batch["bev_semantics"])
        self._bev_inter += inter.cpu().numpy()
        self._bev_union += union.cpu().numpy()

    def _update_occupancy(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> None:
        if "occupancy" not in outputs or "occupancy_future" not in batch:
            return
        logits, target = outputs["occupancy"], batch["occupancy_future"]
        for j, seconds in enumerate(OCCUPANCY_SECONDS):
            step = self._step(seconds)
            if step >= min(logits.shape[1], target.shape[1]):
                continue
            pred = logits[:, step] > 0
            truth = target[:, step] > 0
            self._occ_inter[j] += int((pred & truth).sum())
            self._occ_union[j] += int((pred | truth).sum())

    def _update_forecast(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> None:
        if "agent_future" not in batch or "forecast_modes" not in outputs:
            return
        modes = outputs["forecast_modes"].float().cpu().numpy().astype(np.float64)
        probs = outputs["forecast_logits"].float().softmax(-1).cpu().numpy().astype(np.float64)
        b, m, k, t, _ = modes.shape
        steps = (batch["agent_future_mask"].bool() & batch["box_mask"].bool()[..., None]).cpu()
        steps_np = steps.numpy().reshape(b * m, t)
        keep = steps_np.any(-1)
        if not keep.any():
            return
        gt = batch["agent_future"].float().cpu().numpy().astype(np.float64).reshape(b * m, t, 2)
        self._forecast.append(
            (
                modes.reshape(b * m, k, t, 2)[keep],
                gt[keep],
                steps_np[keep],
                probs.reshape(-1, k)[keep],
            )
        )

    def _update_plan(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> None:
        if "ego_future" not in batch or "plan_trajectories" not in outputs:
            return
        trajectories = outputs["plan_trajectories"].float()
        best = outputs["plan_logits"].argmax(-1)
        chosen = trajectories[torch.arange(trajectories.shape[0]), best]  # (B, T, 3)
        truth = batch["ego_future"].float()
        rows = []
        for seconds in PLAN_SECONDS:
            step = self._step(seconds)
            if step >= min(chosen.shape[1], truth.shape[1]):
                rows.append(torch.full((chosen.shape[0],), math.nan))
                continue
            rows.append(torch.linalg.norm(chosen[:, step, :2] - truth[:, step, :2], dim=-1).cpu())
        self._plan_l2.append(torch.stack(rows, dim=1).numpy())

    def _update_light(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> None:
        if "light_logits" not in outputs or "traffic_light" not in batch:
            return
        called = outputs["light_logits"].argmax(-1).cpu().numpy().astype(np.int64)
        truth = batch["traffic_light"].cpu().numpy().astype(np.int64).reshape(-1)
        n = len(TrafficLightClass)
        valid = (truth >= 0) & (truth < n)
        np.add.at(self._light, (truth[valid], called[valid]), 1)

    def light_confusion(self) -> np.ndarray:
        """``(C, C)`` counts: row = labelled :class:`TrafficLightClass`, column = called."""
        return self._light.copy()

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self._detections:
            metrics = detection_ap(self._detections, self._truth, num_classes=len(DetectionClass))
            out.update({f"det/{k}": v for k, v in metrics.as_dict().items()})
        if self._bev_union.any():
            ious = []
            for c in BevClass:
                union = self._bev_union[c]
                iou = self._bev_inter[c] / union if union else math.nan
                out[f"bev_iou/{c.name.lower()}"] = float(iou)
                if union:
                    ious.append(iou)
            out["bev_iou/mean"] = float(np.mean(ious)) if ious else math.nan
        for j, seconds in enumerate(OCCUPANCY_SECONDS):
            if self._occ_union[j]:
                out[f"occ_iou/{seconds:g}s"] = float(self._occ_inter[j] / self._occ_union[j])
        if self._forecast:
            modes, gt, valid, probs = (
                np.concatenate([f[i] for f in self._forecast]) for i in range(4)
            )
            fm = evaluate(modes, gt, valid, probs)
            out.update(
                {
                    "forecast/minADE": fm.min_ade,
                    "forecast/minFDE": fm.min_fde,
                    "forecast/MR": fm.miss_rate,
                }
            )
        if self._plan_l2:
            l2 = np.concatenate(self._plan_l2)
            for j, seconds in enumerate(PLAN_SECONDS):
                column = l2[:, j]
                column = column[np.isfinite(column)]
                if column.size:
                    out[f"plan/L2_{seconds:g}s"] = float(column.mean())
        total = int(self._light.sum())
        if total:
            red = int(TrafficLightClass.RED)
            out["light/accuracy"] = float(np.trace(self._light) / total)
            labelled_red = int(self._light[red].sum())
            called_red = int(self._light[:, red].sum())
            hit = int(self._light[red, red])
            out["light/red_recall"] = hit / labelled_red if labelled_red else math.nan
            out["light/red_precision"] = hit / called_red if called_red else math.nan
        return out
