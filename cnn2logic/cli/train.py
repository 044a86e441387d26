"""``cnn2logic train``: train a network with the paper's defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .._io import atomic_write_text, check_parents
from ..errors import ModelError
from ..model import (PAPER_ITERATIONS, TrainConfig, build_from_factory, metrics_json,
                     parse_factory_kwargs, save_checkpoint, save_weights, spec_from_arg, train)
from ..model.logic_training import MODES
from ._common import add_progress_arg, positive_float, positive_int
from ._data_args import add_data_args, data_from_args
from ._model_args import add_model_args


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``cnn2logic`` subparsers.
    """
    p = sub.add_parser("train", help="train a CNN (paper1, paper3 or a JSON spec)",
                       description="Train a CNN and write a safetensors checkpoint (weights + "
                                   "spec) with a metrics JSON beside it.")
    p.add_argument("arch", nargs="?", default=None,
                   help="paper1, paper3, a JSON spec file, or inline JSON (omit with --factory)")
    p.add_argument("--out", required=True, help="checkpoint path (.safetensors)")
    add_data_args(p)
    p.add_argument("--iterations", type=positive_int, default=None,
                   help="minibatch steps (default: the paper's, 10000 for paper1, 15000 "
                        "for paper3, else 10000)")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="cosine: the learning rate decays to 0 over the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    _add_beyond_args(p)
    add_progress_arg(p)
    p.set_defaults(func=run)


def _train_config(args: argparse.Namespace, iterations: int):
    return TrainConfig(iterations=iterations, batch_size=args.batch_size, lr=args.lr,
                       lr_schedule=args.lr_schedule, optimizer=args.optimizer, seed=args.seed,
                       progress=args.progress, threads=args.threads, **_beyond_options(args))


def run(args: argparse.Namespace) -> int:
    """Train a spec (or, with ``--factory``, the user's module) and write the checkpoint.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed ``train`` options.

    Returns
    -------
    int
        Exit code 0.

    Raises
    ------
    Cnn2LogicError
        Bad architecture, factory, data or training option (the CLI exits 2).
    """
    _check_out(args.out)
    if getattr(args, "factory", None) or args.arch is None:
        return _run_factory(args)
    spec = spec_from_arg(args.arch)
    data = data_from_args(args, "cnn2logic train")
    iterations = args.iterations or PAPER_ITERATIONS.get(spec.name, 10_000)
    config = _train_config(args, iterations)
    model, metrics = train(spec, data, config)
    out = Path(args.out)
    save_checkpoint(model, out)
    metrics_path = metrics_file(out)
    atomic_write_text(metrics_path, metrics_json(metrics))
    print(f"test accuracy {metrics['test_accuracy']:.4f} after {iterations} iterations "
          f"({metrics['train_seconds']:.1f} s)")
    print(f"wrote {out} and {metrics_path}")
    return 0


def _add_beyond_args(p: argparse.ArgumentParser) -> None:
    """Bring-your-own-CNN, logic-friendly training and interpretable-filter options."""
    add_model_args(p)
    p.add_argument("--binary-units", choices=MODES, default="none",
                   help="logic-friendly training: the network decides through hard 0/1 "
                        "kernel units (a 'binarize' layer after 'pool'); the mode is how it "
                        "is trained: ste (straight-through), noise (pre-sigmoid noise) or "
                        "penalty (u(1-u) loss)")
    p.add_argument("--binary-noise", type=float, default=2.0,
                   help="noise mode: standard deviation of the pre-sigmoid noise")
    p.add_argument("--binary-penalty", type=float, default=1.0,
                   help="penalty mode: weight of the mean u(1-u) term")
    p.add_argument("--binary-warmup", type=int, default=0, metavar="STEPS",
                   help="train the first STEPS iterations with continuous units, then binary")
    p.add_argument("--filter-loss", type=float, default=0.0, metavar="WEIGHT",
                   help="interpretable filters (Zhang et al.): weight of the filter loss on "
                        "the top conv layer (adds its template mask layer)")


def _beyond_options(args: argparse.Namespace) -> dict:
    return {"binary_units": args.binary_units, "binary_noise": args.binary_noise,
            "binary_penalty": args.binary_penalty, "binary_warmup": args.binary_warmup,
            "filter_loss": args.filter_loss}


def _check_out(out: str) -> None:
    # Before training, not after minutes of it: the checkpoint must be writable as a file.
    path = Path(out)
    if path.is_dir():
        raise ModelError(f"--out {out} is a directory; give the checkpoint's file name, "
                         f"e.g. {path / 'model.safetensors'}")
    check_parents(path)


def _run_factory(args: argparse.Namespace) -> int:
    """Train a user's own ``nn.Module`` built by ``--factory``; save a plain state dict."""
    if not getattr(args, "factory", None):
        raise ModelError("give an architecture (paper1, paper3, a spec) or --factory "
                         "package.module:function")
    if args.arch is not None:
        raise ModelError("give either an architecture or --factory, not both")
    kwargs = parse_factory_kwargs(args.factory_kwargs)
    torch.manual_seed(args.seed)
    model = build_from_factory(args.factory, kwargs)
    data = data_from_args(args, "cnn2logic train")
    iterations = args.iterations or 10_000
    config = _train_config(args, iterations)
    model, metrics = train(model, data, config)
    metrics["factory"] = args.factory
    metrics["factory_kwargs"] = kwargs
    out = Path(args.out)
    save_weights(model, out, factory=args.factory, factory_kwargs=kwargs)
    metrics_path = metrics_file(out)
    atomic_write_text(metrics_path, metrics_json(metrics))
    print(f"test accuracy {metrics['test_accuracy']:.4f} after {iterations} iterations "
          f"({metrics['train_seconds']:.1f} s)")
    print(f"wrote {out} (state dict; load it with --factory {args.factory}) and {metrics_path}")
    return 0


def metrics_file(checkpoint: Path) -> Path:
    """The metrics JSON written beside ``checkpoint`` (``x.safetensors`` -> ``x.metrics.json``).

    Parameters
    ----------
    checkpoint : Path

    Returns
    -------
    Path
    """
    return checkpoint.with_name(checkpoint.stem + ".metrics.json")
