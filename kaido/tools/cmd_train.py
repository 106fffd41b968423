"""``kaido train CONFIG``: train the learned stack from an experiment YAML (``configs/model/``).

The YAML's ``model:`` section builds the model, its ``train:`` section the run (data folder,
optimiser, epochs, devices, strategy, precision). ``--set train.max_steps=200`` (repeatable)
overrides one key; ``--data`` and ``--out`` are shortcuts. Re-running the same command after a
kill resumes from ``OUT/last.ckpt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register", "resolve_experiment"]


def _apply_override(model: dict[str, Any], train: dict[str, Any], key: str, value: Any) -> None:
    section, _, rest = key.partition(".")
    if section not in ("model", "train") or not rest:
        raise ValueError(f"--set {key}: keys start with 'model.' or 'train.'")
    target = model if section == "model" else train
    parts = rest.split(".")
    for part in parts[:-1]:
        node = target.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {key}: {part!r} is not a section")
        target = node
    target[parts[-1]] = value


def resolve_experiment(
    config: Path, overrides: list[str] | None = None, **train_changes: Any
) -> tuple[Any, Any]:
    """``(ModelConfig, TrainConfig)`` from a YAML plus ``KEY=VALUE`` overrides."""
    from kaido.world_model.model import ModelConfig
    from kaido.world_model.training import TrainConfig, parse_override, read_experiment

    model_dict, train_config = read_experiment(config)
    train_dict = {k: getattr(train_config, k) for k in train_config.__dataclass_fields__}
    for text in overrides or []:
        key, value = parse_override(text)
        _apply_override(model_dict, train_dict, key, value)
    train_dict.update({k: v for k, v in train_changes.items() if v is not None})
    return ModelConfig.from_dict(model_dict), TrainConfig.from_dict(train_dict)


def _cmd_train(args: argparse.Namespace) -> int:
    from kaido.world_model.lightning import train

    changes: dict[str, Any] = {"data_dir": args.data}
    model_config, train_config = resolve_experiment(Path(args.config), args.set, **changes)
    last = train(
        model_config,
        train_config,
        Path(args.out),
        resume=not args.no_resume,
        progress=not args.quiet,
    )
    print(f"checkpoint: {last}")
    return 0


def register(sub: Any) -> None:
    """Add ``kaido train`` to the command line's subparsers."""
    parser = sub.add_parser("train", help="train the learned stack from an experiment YAML")
    parser.add_argument("config", help="experiment YAML, e.g. configs/model/tiny.yaml")
    parser.add_argument("--data", help="dataset folder (overrides train.data_dir)")
    parser.add_argument("--out", default="out/train", help="run folder (checkpoints, logs)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. train.max_steps=200 (repeatable)",
    )
    parser.add_argument("--no-resume", action="store_true", help="ignore OUT/last.ckpt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_cmd_train)
