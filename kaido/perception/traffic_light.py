"""Traffic-light state head: the colour of the light that governs the ego's route ahead.

A light's colour is a few pixels of one camera image; lifted into a 1 m BEV grid it is gone. So
the head looks at the images directly: a small strided CNN per camera (shared weights), global
max-pooled (a lit signal head anywhere in the view counts), max over the present cameras
(masked cameras contribute nothing), concatenated with the backbone's ego token (speed, route:
whether a light is near and relevant) → logits over :class:`kaido.logs.sample.TrafficLightClass`
(``NONE``, ``GREEN``, ``YELLOW``, ``RED``). Trained with cross-entropy on the dataset's
``traffic_light`` label (the first light whose stop line crosses the route within 50 m ahead).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LIGHT_CLASSES = 4
"""NONE, GREEN, YELLOW, RED (:class:`kaido.logs.sample.TrafficLightClass`)."""


@dataclass(frozen=True)
class TrafficLightConfig:
    """The traffic-light head."""

    channels: tuple[int, ...] = (16, 32, 32, 32)
    """Output channels of the stride-2 conv blocks of the image CNN."""
    hidden: int = 64
    """Width of the classifier MLP."""
    dim: int = 64
    """D: the ego token's width (the backbone's)."""

    def __post_init__(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"TrafficLightConfig.channels must be positive, got {self.channels}")
        for name in ("hidden", "dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrafficLightConfig.{name} must be >= 1")


class TrafficLightHead(nn.Module):
    """``forward(images (B, C, 3, h, w) float [0, 1], mask (B, C) bool, ego (B, D)) ->
    logits (B, 4)``."""

    def __init__(self, cfg: TrafficLightConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = 3
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(1, c), nn.ReLU()]
            c_in = c
        self.cnn = nn.Sequential(*layers)
        self.mlp = nn.Sequential(
            nn.Linear(c_in + cfg.dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, LIGHT_CLASSES)
        )

    def forward(self, images: Tensor, mask: Tensor, ego: Tensor) -> Tensor:
        b, c = images.shape[:2]
        features = self.cnn(images.reshape(b * c, *images.shape[2:]))
        pooled = features.amax(dim=(2, 3)).reshape(b, c, -1)
        pooled = torch.where(mask[..., None], pooled, torch.full_like(pooled, -1e4))
        image = pooled.amax(dim=1)
        image = torch.where(mask.any(dim=1, keepdim=True), image, torch.zeros_like(image))
        out: Tensor = self.mlp(torch.cat([image, ego], dim=-1))
        return out


def traffic_light_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of ``logits (B, 4)`` against the class ``target (B,)`` (−1 = unlabelled)."""
    target = target.long().reshape(-1)
    if bool((target >= 0).any()):
        return F.cross_entropy(logits.float(), target, ignore_index=-1)
    return logits.sum() * 0.0
