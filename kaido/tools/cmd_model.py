"""``kaido model summary CONFIG``: parameters and forward FLOPs of the learned stack, per part.

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


def register(sub: Any) -> None:
    """Add ``kaido model`` (``summary``) to the command line's subparsers."""
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
