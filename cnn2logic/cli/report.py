"""``cnn2logic report``: one self-contained HTML report for a model and its rules."""

from __future__ import annotations

import argparse

from ._common import add_progress_arg, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from ._model_args import add_model_args
    from ..units import REDUCTIONS
    from ..visualize import BASES, DEFAULT_TOP, SMOOTHGRAD_SAMPLES

    p = sub.add_parser(
        "report", help="self-contained HTML report (rules read with the kernels' images)",
        description="Metrics beside the paper's figures, each class's rule with every "
                    "literal shown as its kernel's SmoothGrad image, all rules, the SmoothGrad "
                    "grid, the kernel-relation graph and rules-vs-network confusion, in one "
                    "HTML file with every image embedded (opens with no network access).")
    p.add_argument("model", help="checkpoint the rules were extracted from (with --factory, "
                                 "any state dict, TorchScript or .pt2 file)")
    p.add_argument("rules", help="rules JSON written by 'cnn2logic extract'")
    add_model_args(p)
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--data", default="embedded",
                   help="images for top-activating images, the SmoothGrad 'mean' base and "
                        "metrics missing from the rules file: 'embedded' (default), a "
                        "directory of MNIST IDX files, or 'none'")
    p.add_argument("--train-size", type=positive_int, default=None,
                   help="use only the first N training images")
    p.add_argument("--test-size", type=positive_int, default=None,
                   help="use only the first N test images")
    p.add_argument("--visuals", default=None, metavar="DIR",
                   help="reuse (or write) 'cnn2logic visualize' output in DIR")
    p.add_argument("--layer", default=None, help="default: the layer recorded in the rules")
    p.add_argument("--reduce", choices=REDUCTIONS, default=None,
                   help="how a kernel's map becomes one unit (default: the reduction "
                        "recorded in the rules, else max)")
    p.add_argument("--base", choices=BASES, default=None,
                   help="SmoothGrad base image (default 'mean' with data, else 'zeros')")
    p.add_argument("--samples", type=positive_int, default=SMOOTHGRAD_SAMPLES)
    p.add_argument("--top", type=int, default=DEFAULT_TOP)
    p.add_argument("--actmax", action="store_true", help="add activation-maximisation images")
    p.add_argument("--max-rules", type=positive_int, default=40,
                   help="rules listed per class (default 40)")
    p.add_argument("--title", default=None)
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ._model_args import model_from_args
    from ..data import load_data
    from ..report import build_report
    from ..rules import load_rules

    rules = load_rules(args.rules)
    model = model_from_args(args)  # a cnn2logic checkpoint, or --factory / .pt2 (any CNN)
    data = None
    if args.data != "none":
        data = load_data(args.data, train_size=args.train_size, test_size=args.test_size)
    path = build_report(model, rules, data, args.out, visuals_dir=args.visuals,
                        layer=args.layer, reduce=args.reduce, base=args.base,
                        samples=args.samples, top=args.top, actmax=args.actmax,
                        title=args.title, max_rules=args.max_rules, progress=args.progress)
    print(f"wrote {path}")
    return 0
