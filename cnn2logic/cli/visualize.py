"""``cnn2logic visualize``: each kernel's maximising image, filter and top images."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .._io import refuse_overwriting_inputs
from ._data_args import add_data_args, data_from_args
from ._model_args import add_model_args, model_from_args
from ..errors import VisualizationError
from ..units import REDUCTIONS
from ..visual.kernels import visualize
from ..visual.saliency import (BASES, DEFAULT_BASE, DEFAULT_TOP, SMOOTHGRAD_SAMPLES,
                               SMOOTHGRAD_STDEV)
from ..visual.visuals import write_visuals
from ._common import add_progress_arg, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``visualize`` subcommand to ``sub``."""
    p = sub.add_parser(
        "visualize", help="SmoothGrad maximising image of every kernel unit",
        description="Per kernel of --layer: the SmoothGrad image of its pooled unit (the "
                    "paper's maximising image; noise mean 0, std 0.1, 100 samples by "
                    "default), its filter when the kernel sees the input directly, the data "
                    "images that activate it most, and optionally an activation-maximisation "
                    "image. Writes kernels/*.png, grid.png, visuals.npz and visuals.json "
                    "into --out.")
    p.add_argument("model", help="checkpoint written by 'cnn2logic train' (or, with "
                                 "--factory, any state dict, TorchScript or .pt2 file)")
    add_model_args(p)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--layer", default="pool",
                   help="layer whose kernels are the rule variables (default pool; for your "
                        "own model, a name from model.named_modules())")
    add_data_args(p, none_ok=True, test_size=False,
                  data_help="training images for the top-activating images and the "
                            "'mean'/'top' bases (all in memory: use --train-size)")
    p.add_argument("--base", choices=BASES, default=None,
                   help=f"image the noise is added to (default {DEFAULT_BASE!r}; 'zeros' "
                        "when --data none)")
    p.add_argument("--samples", type=positive_int, default=SMOOTHGRAD_SAMPLES,
                   help=f"noisy copies per base image (default {SMOOTHGRAD_SAMPLES})")
    p.add_argument("--stdev", type=positive_float, default=SMOOTHGRAD_STDEV,
                   help=f"noise standard deviation (default {SMOOTHGRAD_STDEV})")
    p.add_argument("--top", type=int, default=DEFAULT_TOP,
                   help=f"top-activating data images per kernel (default {DEFAULT_TOP}, 0: none)")
    p.add_argument("--actmax", action="store_true",
                   help="also compute activation-maximisation images (gradient ascent)")
    p.add_argument("--actmax-steps", type=positive_int, default=200)
    p.add_argument("--reduce", choices=tuple(r for r in REDUCTIONS if r != "position"),
                   default="max", help="how a kernel's map becomes one unit (as in extract; "
                                       "one image per kernel, so not 'position')")
    p.add_argument("--batch-size", type=positive_int, default=1000,
                   help="noisy images per forward/backward pass (bounds memory)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute and write the visuals of the model named by ``args``; print a summary.

    Raises
    ------
    Cnn2LogicError
        An unreadable model or data, or a bad visualisation parameter.
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.top < 0:
        raise VisualizationError(f"--top must be >= 0, got {args.top}")
    refuse_overwriting_inputs([Path(args.out) / n for n in ("grid.png", "visuals.json")],
                              [args.model])
    model = model_from_args(args)  # a cnn2logic checkpoint, or --factory / .pt2 (any CNN)
    data = data_from_args(args, "cnn2logic visualize", batch_size=args.batch_size)
    images = data.train if data is not None else None
    base = args.base or (DEFAULT_BASE if images is not None else "zeros")
    vis = visualize(model, args.layer, images, base=base, samples=args.samples,
                    stdev=args.stdev, top=args.top, actmax=args.actmax,
                    actmax_steps=args.actmax_steps, reduce=args.reduce,
                    batch_size=args.batch_size, seed=args.seed, progress=args.progress)
    vis = write_visuals(vis, args.out, progress=args.progress)
    print(f"{len(vis)} kernels of layer {vis.layer!r}; SmoothGrad base {base!r}, "
          f"{args.samples} samples, noise std {args.stdev}: "
          f"{vis.seconds.get('smoothgrad', 0.0):.2f} s")
    if vis.correlation is not None:
        per = " ".join(f"{n}={c:.2f}" for n, c in zip(vis.names, vis.correlation))
        print(f"correlation with filter: {per}; mean {float(np.mean(vis.correlation)):.3f}")
    print(f"own image activates its unit: {vis.selectivity:.0%} of kernels")
    print(f"wrote {args.out}/grid.png, {args.out}/kernels/*.png, {args.out}/visuals.json")
    return 0
