"""``cnn2logic visualize``: each kernel's maximising image, filter, top images and evidence."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .._io import refuse_overwriting_inputs
from ._data_args import add_data_args, data_from_args
from ._model_args import add_model_args, model_from_args
from ..errors import VisualizationError
from ..model.layers import AUTO, resolve_layers
from ..units import REDUCTIONS
from ..visual.evidence import BACKGROUNDS
from ..visual.kernels import visualize
from ..visual.saliency import (BASES, DEFAULT_BASE, DEFAULT_TOP, SMOOTHGRAD_SAMPLES,
                               SMOOTHGRAD_STDEV)
from ..visual.visuals import write_visuals
from ._common import add_progress_arg, note_found_layers, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``visualize`` subcommand to ``sub``."""
    p = sub.add_parser(
        "visualize", help="SmoothGrad maximising image of every kernel unit",
        description="Per kernel of --layer: the SmoothGrad image of its pooled unit (the "
                    "paper's maximising image; noise mean 0, std 0.1, 100 samples by "
                    "default), its filter when the kernel sees the input directly, the data "
                    "images that activate it most, and optionally an activation-maximisation "
                    "image; with data, the evidence a person can look at (top patches, class profile, "
                    "selectivity of each kind). Writes kernels/*.png, grid.png, visuals.npz, "
                    "evidence.json and visuals.json into --out.")
    p.add_argument("model", help="checkpoint written by 'cnn2logic train' (or, with "
                                 "--factory, any state dict, TorchScript or .pt2 file)")
    add_model_args(p)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--layer", default="auto",
                   help="layer whose kernels are the rule variables (default 'auto': a spec "
                        "net's 'pool', else the last map after the last convolution; or a "
                        "name from model.named_modules())")
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
    p.add_argument("--actmax", action="store_true", default=None,
                   help="compute contrastive activation-maximisation images (default: with "
                        "the evidence, i.e. when there are data)")
    p.add_argument("--no-actmax", dest="actmax", action="store_false")
    p.add_argument("--actmax-steps", type=positive_int, default=200)
    p.add_argument("--reduce", choices=tuple(r for r in REDUCTIONS if r != "position"),
                   default="max", help="how a kernel's map becomes one unit (as in extract; "
                                       "one image per kernel, so not 'position')")
    p.add_argument("--batch-size", type=positive_int, default=1000,
                   help="noisy images per forward/backward pass (bounds memory)")
    p.add_argument("--no-evidence", dest="evidence", action="store_false",
                   help="skip the evidence (top patches, class profiles, selectivity of each "
                        "kind; needs data): evidence.json, kernels/*_patches.png, *_profile.png")
    p.add_argument("--background", choices=BACKGROUNDS, default="zeros",
                   help="what a top patch is pasted on when its selectivity is measured "
                        "(default zeros: black, the MNIST background)")
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
    layer = args.layer
    if layer == AUTO:
        layer = resolve_layers(model, AUTO, AUTO,
                               images.images[:1] if images is not None else None)[0]
        note_found_layers(model, layer)
    vis = visualize(model, layer, images, base=base, samples=args.samples,
                    stdev=args.stdev, top=args.top, actmax=args.actmax,
                    actmax_steps=args.actmax_steps, reduce=args.reduce,
                    batch_size=args.batch_size, seed=args.seed, progress=args.progress,
                    evidence=args.evidence, background=args.background)
    vis = write_visuals(vis, args.out, progress=args.progress)
    print(f"{len(vis)} kernels of layer {vis.layer!r}; SmoothGrad base {base!r}, "
          f"{args.samples} samples, noise std {args.stdev}: "
          f"{vis.seconds.get('smoothgrad', 0.0):.2f} s")
    if vis.correlation is not None:
        per = " ".join(f"{n}={c:.2f}" for n, c in zip(vis.names, vis.correlation))
        print(f"correlation with filter: {per}; mean {float(np.mean(vis.correlation)):.3f}")
    print(f"SmoothGrad image drives its own unit most: {vis.smoothgrad_selectivity:.0%} of "
          "kernels")
    if vis.evidence is not None:
        ev = vis.evidence
        kinds = ", ".join(f"{k} {ev.selectivity(k):.0%}" for k in ev.kinds)
        print(f"evidence selective ({kinds}); shown first per kernel: "
              f"{ev.selectivity():.0%} of kernels; receptive field {ev.receptive.size[0]}x"
              f"{ev.receptive.size[1]} of {ev.map_layer!r}; {ev.seconds.get('total', 0.0):.2f} s")
    print(f"wrote {args.out}/grid.png, {args.out}/kernels/*.png, {args.out}/visuals.json")
    return 0
