"""``cnn2logic train``: train a network with the paper's defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_data_args, add_progress_arg, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a CNN (paper1, paper3 or a JSON spec)",
                       description="Train a CNN and write a safetensors checkpoint (weights + "
                                   "spec) with a metrics JSON beside it.")
    p.add_argument("arch", help="paper1, paper3, a JSON spec file, or inline JSON")
    p.add_argument("--out", required=True, help="checkpoint path (.safetensors)")
    add_data_args(p)
    p.add_argument("--iterations", type=positive_int, default=None,
                   help="minibatch steps (default: the paper's, 10000 for paper1, 15000 "
                        "for paper3, else 10000)")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._io import atomic_write_text
    from ..data import load_data
    from ..models import PAPER_ITERATIONS, save_checkpoint, spec_from_arg
    from ..training import TrainConfig, metrics_json, train

    spec = spec_from_arg(args.arch)
    data = load_data(args.data, train_size=args.train_size, test_size=args.test_size)
    iterations = args.iterations or PAPER_ITERATIONS.get(spec.name, 10_000)
    config = TrainConfig(iterations=iterations, batch_size=args.batch_size, lr=args.lr,
                         optimizer=args.optimizer, seed=args.seed, progress=args.progress,
                         threads=args.threads)
    model, metrics = train(spec, data, config)
    out = Path(args.out)
    save_checkpoint(model, out)
    metrics_path = metrics_file(out)
    atomic_write_text(metrics_path, metrics_json(metrics))
    print(f"test accuracy {metrics['test_accuracy']:.4f} after {iterations} iterations "
          f"({metrics['train_seconds']:.1f} s)")
    print(f"wrote {out} and {metrics_path}")
    return 0


def metrics_file(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.stem + ".metrics.json")
