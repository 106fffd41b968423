"""``kaido model summary CONFIG``: parameters and forward FLOPs of the learned stack, per part;
``kaido model evaluate CHECKPOINT --data DIR``: a checkpoint's validation metrics on a dataset.

CONFIG is an experiment YAML (``configs/model/{tiny,base,large}.yaml``); its ``model:`` section
builds the model on the ``meta`` device (no memory, any size), and one forward pass of an
example batch is counted with ``torch.utils.flop_counter.FlopCounterMode``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _cmd_model_summary(args: argparse.Namespace) -> int:
    from kaido.world_model.model import ModelConfig
    from kaido.world_model.summary import summarize
    from kaido.world_model.training import read_experiment

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.cameras < 0:
        raise ValueError(f"--cameras must be >= 0, got {args.cameras}")
    model_dict, _ = read_experiment(Path(args.config))
    config = ModelConfig.from_dict(model_dict, where=f"{args.config}: model")
    summary = summarize(config, batch_size=args.batch_size, cameras=args.cameras)
    if args.json:
        print(
            json.dumps(
                {
                    "name": summary.name,
                    "batch_size": summary.batch_size,
                    "cameras": summary.cameras,
                    "parts": {
                        p.name: {"params": p.params, "flops": p.flops} for p in summary.parts
                    },
                    "total": {"params": summary.total_params, "flops": summary.total_flops},
                },
                indent=2,
            )
        )
    else:
        print(summary.table())
    return 0


def _cmd_model_evaluate(args: argparse.Namespace) -> int:
    from kaido.world_model.evaluate import evaluate

    report = evaluate(
        Path(args.checkpoint),
        Path(args.data),
        split=args.split,
        batch_size=args.batch_size,
        max_batches=args.max_batches,
    )
    for name, value in sorted(report["metrics"].items()):
        print(f"{name:<24} {value:.4f}")
    print(f"{report['samples']} {args.split} samples")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {out}")
    return 0


def register(sub: Any) -> None:
    """Add ``kaido model`` (``summary``, ``evaluate``) to the command line's subparsers."""
    parser = sub.add_parser("model", help="inspect the learned stack's models")
    model_sub = parser.add_subparsers(
        dest="model_command", required=True, parser_class=type(parser)
    )
    summary = model_sub.add_parser(
        "summary", help="print parameters and forward FLOPs per part and in total"
    )
    summary.add_argument("config", help="experiment YAML, e.g. configs/model/tiny.yaml")
    summary.add_argument("--batch-size", type=int, default=1, help="samples per forward pass")
    summary.add_argument("--cameras", type=int, default=1, help="cameras per sample")
    summary.add_argument("--json", action="store_true", help="print the numbers as JSON")
    summary.set_defaults(func=_cmd_model_summary)
    evaluate = model_sub.add_parser(
        "evaluate", help="validation metrics of a checkpoint on a dataset split"
    )
    evaluate.add_argument("checkpoint", help="checkpoint written by `kaido train`")
    evaluate.add_argument("--data", required=True, help="folder of `kaido dataset build`")
    evaluate.add_argument("--split", choices=("train", "val"), default="val")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--max-batches", type=int, help="stop after this many batches")
    evaluate.add_argument("--out", help="write the report as JSON here")
    evaluate.set_defaults(func=_cmd_model_evaluate)
