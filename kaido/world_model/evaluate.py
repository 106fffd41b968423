"""Validation metrics of a trained checkpoint on a dataset split, without a training run.

``kaido model evaluate CHECKPOINT --data DIR`` runs the checkpoint's model over every sample of
the split (``val`` by default) of a ``kaido dataset build`` folder and reports the same metrics
as validation during training (:class:`~kaido.world_model.metrics.ValidationMetrics`: detection
AP, BEV IoU, occupancy IoU, forecasting, the imitation prior's L2, the traffic-light state), plus
the traffic-light confusion matrix. The dataset's sample spec must be the checkpoint's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from kaido.logs.sample import SampleSpec, TrafficLightClass
from kaido.provenance import provenance
from kaido.world_model.data import ShardDataset
from kaido.world_model.lightning import load_checkpoint
from kaido.world_model.metrics import ValidationMetrics


def evaluate(
    checkpoint: Path,
    data_dir: Path,
    split: str = "val",
    batch_size: int = 8,
    max_batches: int | None = None,
) -> dict[str, Any]:
    """Metrics of ``checkpoint`` over ``split`` of ``data_dir`` (at most ``max_batches``
    batches): ``{"metrics": {name: value}, "light_confusion": rows, "samples": n, ...}``."""
    if batch_size < 1:
        raise ValueError(f"evaluate: batch_size must be >= 1, got {batch_size}")
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"evaluate: max_batches must be >= 1 or None, got {max_batches}")
    model, block = load_checkpoint(Path(checkpoint))
    spec = SampleSpec.from_dict(block["spec"])
    model.cfg.check_sample_spec(spec)
    sequence = int(dict(block.get("train_config") or {}).get("sequence", 1))
    dataset = ShardDataset(Path(data_dir), split, sequence=sequence)
    if len(dataset) == 0:
        raise ValueError(f"{data_dir}: the {split} split is empty")
    if dataset.spec != spec:
        raise ValueError(
            f"{data_dir}: the dataset's sample spec differs from the checkpoint's ({checkpoint})"
        )
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    metrics = ValidationMetrics(step_seconds=spec.step_seconds)
    samples = 0
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            outputs = model(batch)
            metrics.update(model, outputs, batch)
            samples += int(batch["ego_state"].shape[0])
    return {
        "checkpoint": str(checkpoint),
        "checkpoint_provenance": block.get("provenance"),
        "data": str(data_dir),
        "split": split,
        "samples": samples,
        "metrics": metrics.compute(),
        "light_confusion": {
            "classes": [c.name.lower() for c in TrafficLightClass],
            "rows_labelled_columns_called": metrics.light_confusion().tolist(),
        },
        "provenance": provenance(),
    }
