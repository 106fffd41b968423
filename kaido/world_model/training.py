"""Training configuration: the ``train:`` section of a model YAML (``configs/model/*.yaml``).

One YAML file holds a whole experiment: ``model:`` (read by :class:`ModelConfig`) and ``train:``
(read here). Scaling from a laptop to a cluster changes only this section: ``accelerator``,
``devices``, ``num_nodes``, ``strategy`` (``auto``, ``ddp``, ``fsdp``, ...) and ``precision``
(``32-true``, ``bf16-mixed``) are handed to Lightning's ``Trainer`` as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class TrainConfig:
    """How to train: data, optimiser, schedule, hardware, checkpoints."""

    data_dir: str = "out/dataset"
    """Folder written by ``kaido dataset build`` (holds ``manifest.json``)."""
    batch_size: int = 8
    """Samples per optimiser step and device."""
    num_workers: int = 0
    """Data loader worker processes per device (0 = load in the training process)."""
    sequence: int = 1
    """Consecutive frames per sample (> 1 trains the backbone's temporal memory)."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_steps: int = 50
    """Linear warm-up [optimiser steps] before the cosine decay."""
    max_epochs: int = 10
    """Epochs to train (the run stops at whichever of ``max_epochs``/``max_steps`` comes first)."""
    max_steps: int = -1
    """Optimiser steps to train (-1: no limit)."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0: off)."""
    seed: int = 0
    """Seed for weights, sampling order and augmentation."""
    accelerator: str = "auto"
    """Lightning accelerator: ``cpu``, ``gpu``, ``auto``."""
    devices: int | str = 1
    """Devices per node (an int, or ``auto``)."""
    num_nodes: int = 1
    """Machines (multi-node runs start one process per device on every node)."""
    strategy: str = "auto"
    """Lightning strategy: ``auto``, ``ddp``, ``fsdp``, ``deepspeed_stage_2``, ..."""
    precision: str = "32-true"
    """Lightning precision: ``32-true``, ``bf16-mixed``, ``16-mixed``."""
    checkpoint_every_steps: int = 50
    """Write ``last.ckpt`` every this many optimiser steps (and at each epoch end)."""
    val_every_epochs: int = 1
    """Validate every this many epochs."""
    limit_val_batches: int | float = 1.0
    """Validation batches per validation (a count, or a fraction of the set)."""
    log_every_steps: int = 10
    """Log training losses every this many steps."""
    threads: int = 0
    """torch intra-op threads (0: leave torch's default)."""

    def __post_init__(self) -> None:
        positive = ("batch_size", "sequence", "max_epochs", "num_nodes", "checkpoint_every_steps")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"train.{name}: expected an integer >= 1, got {value!r}")
        for name in ("num_workers", "warmup_steps", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"train.{name}: expected an integer >= 0, got {value!r}")
        if not isinstance(self.max_steps, int) or self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(
                f"train.max_steps: expected -1 or an integer >= 1, got {self.max_steps!r}"
            )
        for name in ("lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"train.{name}: expected a number >= 0, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"train.lr: expected a positive number, got {self.lr!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "train") -> TrainConfig:
        """Build from a mapping; unknown keys are an error that names them."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)


def read_experiment(path: Path) -> tuple[dict[str, Any], TrainConfig]:
    """``(model section as a dict, TrainConfig)`` of an experiment YAML."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such experiment config") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    model = data.get("model", {})
    if not isinstance(model, dict):
        raise ValueError(f"{path}: 'model' must be a mapping")
    try:
        train = TrainConfig.from_dict(data.get("train"), where=f"{path}: train")
    except (TypeError, ValueError) as err:
        message = str(err)
        raise ValueError(message if str(path) in message else f"{path}: {message}") from None
    return model, train


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (VALUE parsed as YAML) → ``(KEY, value)``; the error names the text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r}: expected KEY=VALUE, e.g. train.max_steps=100")
    return key.strip(), yaml.safe_load(value)
