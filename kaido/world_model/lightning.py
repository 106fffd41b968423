"""The thin Lightning layer: ``KaidoLightningModule`` over :class:`KaidoModel`, a data module over
the dataset shards, and :func:`train`, the body of ``kaido train``.

Everything that is the model lives in ``model.py``; this file only wires it to Lightning:
optimiser and schedule, logging, the validation metrics, provenance in every checkpoint, and a
resumable sampling order so that a run killed mid-epoch continues with exactly the batches it
would have seen (``resume equality``: killed-and-resumed weights equal an uninterrupted run's).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from kaido.provenance import provenance, to_jsonable
from kaido.world_model.data import ShardDataset
from kaido.world_model.metrics import ValidationMetrics
from kaido.world_model.model import KaidoModel, ModelConfig
from kaido.world_model.training import TrainConfig

CHECKPOINT_KEY = "kaido"
"""Key of kaido's own block in a Lightning checkpoint: provenance, configs and sample spec."""


class EpochSampler(Sampler[int]):
    """A permutation that depends only on ``(seed, epoch)``, able to start part-way through.

    ``epoch_of()`` returns the current epoch (the trainer's); :meth:`skip` makes the next
    iteration drop the first ``n`` indices of that epoch's order (a resumed run).
    """

    def __init__(self, size: int, seed: int, shuffle: bool, epoch_of: Any) -> None:
        self.size = int(size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self._epoch_of = epoch_of
        self._skip = 0

    def skip(self, n: int) -> None:
        self._skip = max(0, int(n))

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[int]:
        order = self.order(int(self._epoch_of()))
        start, self._skip = self._skip, 0
        return iter(order[start:].tolist())

    def __len__(self) -> int:
        return self.size


class KaidoDataModule(L.LightningDataModule):
    """Train/val loaders over ``kaido dataset build`` shards with a resumable order."""

    def __init__(self, train: TrainConfig) -> None:
        super().__init__()
        self.train_config = train
        self.data_dir = Path(train.data_dir)
        self._train: ShardDataset | None = None
        self._val: ShardDataset | None = None
        self._sampler: EpochSampler | None = None
        self._resume_batches = 0

    def _load(self) -> None:
        if self._train is None:
            manifest = self.data_dir / "manifest.json"
            if not manifest.is_file():
                raise FileNotFoundError(
                    f"{manifest}: no dataset here (build one with `kaido dataset build`)"
                )
            seq = self.train_config.sequence
            self._train = ShardDataset(self.data_dir, "train", sequence=seq)
            self._val = ShardDataset(self.data_dir, "val", sequence=seq)
            if len(self._train) == 0:
                raise ValueError(f"{manifest}: the train split is empty")

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def _epoch(self) -> int:
        trainer = self.trainer
        return int(trainer.current_epoch) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader[Any]:
        self._load()
        assert self._train is not None
        self._sampler = EpochSampler(len(self._train), self.train_config.seed, True, self._epoch)
        if self._resume_batches:
            self._sampler.skip(self._resume_batches * self.train_config.batch_size)
            self._resume_batches = 0
        return DataLoader(
            self._train,
            batch_size=self.train_config.batch_size,
            sampler=self._sampler,
            num_workers=self.train_config.num_workers,
            drop_last=True,
            persistent_workers=False,
        )

    def val_dataloader(self) -> DataLoader[Any]:
        self._load()
        assert self._val is not None
        return DataLoader(
            self._val,
            batch_size=self.train_config.batch_size,
            shuffle=False,
            num_workers=self.train_config.num_workers,
        )

    def state_dict(self) -> dict[str, Any]:
        trainer = self.trainer
        if trainer is None:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        done = int(getattr(progress, "processed", progress.completed))
        return {"epoch": int(trainer.current_epoch), "batches": done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_batches = int(state_dict.get("batches", 0))


class KaidoLightningModule(L.LightningModule):
    """Optimisation, logging and validation metrics around :class:`KaidoModel`."""

    def __init__(
        self,
        model_config: ModelConfig,
        train: TrainConfig,
        spec: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model_config = model_config
        self.train_config = train
        self.spec = dict(spec or {})
        self.model = KaidoModel(model_config)
        self.metrics = ValidationMetrics()
        self.save_hyperparameters(
            {"model": to_jsonable(model_config), "train": to_jsonable(train), "spec": self.spec}
        )

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model(batch)

    def _step(self, batch: Mapping[str, torch.Tensor], stage: str) -> tuple[Any, Any]:
        outputs = self.model(batch)
        losses = self.model.losses(outputs, batch)
        size = int(next(iter(batch.values())).shape[0])
        for name, value in losses.items():
            self.log(
                f"{stage}/loss_{name}" if name != "total" else f"{stage}/loss",
                value.detach(),
                batch_size=size,
                prog_bar=name == "total",
                on_step=stage == "train",
                on_epoch=True,
                sync_dist=stage == "val",
            )
        return outputs, losses

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, losses = self._step(batch, "train")
        return losses["total"]

    def on_validation_epoch_start(self) -> None:
        self.metrics.reset()

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        outputs, _ = self._step(batch, "val")
        self.metrics.update(self.model, outputs, batch)

    def on_validation_epoch_end(self) -> None:
        for name, value in self.metrics.compute().items():
            if math.isfinite(value):
                self.log(f"val/{name}", value, sync_dist=True)

    def configure_optimizers(self) -> Any:
        cfg = self.train_config
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
        optimiser = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
        )
        total = self._total_steps()
        warmup = min(cfg.warmup_steps, max(total - 1, 0))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
        return {
            "optimizer": optimiser,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _total_steps(self) -> int:
        cfg = self.train_config
        if cfg.max_steps > 0:
            return cfg.max_steps
        trainer = self._trainer
        if trainer is not None:
            estimated = trainer.estimated_stepping_batches
            if math.isfinite(estimated):
                return int(estimated)
        return 1000

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "provenance": provenance(
                {"model": self.model_config, "train": self.train_config, "spec": self.spec}
            ),
            "model_config": to_jsonable(self.model_config),
            "train_config": to_jsonable(self.train_config),
            "spec": self.spec,
        }


def _read_spec(data_dir: Path) -> dict[str, Any]:
    manifest = Path(data_dir) / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{manifest}: no dataset here (build one with `kaido dataset build`)"
        ) from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{manifest}: not valid JSON ({err})") from None
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise ValueError(f"{manifest}: missing the 'spec' block")
    return spec


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    out_dir: Path,
    *,
    resume: bool = True,
    progress: bool = True,
    callbacks: list[L.Callback] | None = None,
) -> Path:
    """Train (or resume) into ``out_dir``; returns the path of the final checkpoint.

    ``out_dir/last.ckpt`` is written every ``checkpoint_every_steps`` steps and at each epoch
    end; when it exists and ``resume`` is set, training continues from it (weights, optimiser,
    schedule, epoch, step and the position in the epoch's sampling order).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if train_config.threads:
        torch.set_num_threads(train_config.threads)
    L.seed_everything(train_config.seed, workers=True, verbose=False)
    spec = _read_spec(Path(train_config.data_dir))
    module = KaidoLightningModule(model_config, train_config, spec)
    data = KaidoDataModule(train_config)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=out_dir,
        filename="step{step:06d}",
        auto_insert_metric_name=False,
        save_last=True,
        save_top_k=0,
        every_n_train_steps=train_config.checkpoint_every_steps,
        save_on_train_epoch_end=True,
    )
    logger = L.pytorch.loggers.CSVLogger(out_dir, name="logs", version="")
    trainer = L.Trainer(
        accelerator=train_config.accelerator,
        devices=train_config.devices,
        num_nodes=train_config.num_nodes,
        strategy=train_config.strategy,
        precision=train_config.precision,  # type: ignore[arg-type]
        max_epochs=train_config.max_epochs,
        max_steps=train_config.max_steps,
        gradient_clip_val=train_config.grad_clip or None,
        check_val_every_n_epoch=train_config.val_every_epochs,
        limit_val_batches=train_config.limit_val_batches,
        log_every_n_steps=train_config.log_every_steps,
        callbacks=[*(callbacks or []), checkpoint],
        logger=logger,
        default_root_dir=out_dir,
        enable_progress_bar=progress,
        enable_model_summary=progress,
        deterministic=False,
        num_sanity_val_steps=0,
    )
    last = out_dir / "last.ckpt"
    ckpt_path = str(last) if resume and last.is_file() else None
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    # a last validation of the final weights (the run may stop mid-epoch at max_steps)
    trainer.validate(module, datamodule=data, verbose=False)
    if trainer.global_rank == 0:
        trainer.save_checkpoint(last)
        (out_dir / "train.json").write_text(
            json.dumps(
                {
                    "checkpoint": str(last),
                    "global_step": int(trainer.global_step),
                    "epoch": int(trainer.current_epoch),
                    "metrics": {
                        k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1
                    },
                    "provenance": provenance(
                        {"model": model_config, "train": train_config, "spec": spec}
                    ),
                },
                indent=2,
            )
        )
    return last


def load_checkpoint(path: Path, map_location: str = "cpu") -> tuple[KaidoModel, dict[str, Any]]:
    """``(model in eval mode, kaido block)`` from a checkpoint written by :func:`train`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        data = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for damaged files
        raise ValueError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {err})"
        ) from None
    block = data.get(CHECKPOINT_KEY) if isinstance(data, dict) else None
    if not isinstance(block, dict) or "model_config" not in block:
        raise ValueError(f"{path}: not a kaido checkpoint (no '{CHECKPOINT_KEY}' block)")
    config = ModelConfig.from_dict(block["model_config"])
    model = KaidoModel(config)
    state = {
        k.removeprefix("model."): v for k, v in data["state_dict"].items() if k.startswith("model.")
    }
    model.load_state_dict(state)
    model.eval()
    return model, block


def default_threads() -> int:
    """CPU threads to use for inference: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def save_model_checkpoint(
    model: KaidoModel,
    spec: Mapping[str, Any],
    path: Path,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the weights of ``model`` with kaido's block (provenance, config, sample spec) and
    no optimiser state: what ships, and what :func:`load_checkpoint` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    block = {
        "provenance": provenance({"model": model.cfg, "spec": dict(spec), **dict(extra or {})}),
        "model_config": to_jsonable(model.cfg),
        "spec": dict(spec),
        **{k: to_jsonable(v) for k, v in (extra or {}).items()},
    }
    state = {f"model.{k}": v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, CHECKPOINT_KEY: block}, path)
    return path
