"""``cnn2logic extract-part``: the rules of some classes only, from saved codes (one job).

Imports of the package sit inside :func:`register` and :func:`run` on purpose: the parser of
every subcommand is built at start-up, and only the command that runs should pay for torch.
"""

from __future__ import annotations

import argparse

from ._common import add_progress_arg, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``extract-part`` subcommand to ``sub``."""
    from ._model_args import add_model_args
    from ..extract.approximation import MODES

    p = sub.add_parser(
        "extract-part", help="extract the rules of some classes from saved codes (one job)",
        description="Approximation-method rules for the selected classes only, ranked on "
                    "the training codes. Classes are independent, so jobs over disjoint "
                    "class sets can run on different machines; 'cnn2logic merge' joins "
                    "their outputs into one rules.json.")
    p.add_argument("model", help="checkpoint (for the output layer's weights)")
    add_model_args(p)
    p.add_argument("--codes", required=True, metavar="NPZ",
                   help="training codes (from 'cnn2logic merge' or 'extract')")
    p.add_argument("--classes", required=True,
                   help="'3', '0,2,5', '0-4', or 'I/N' (every class whose position mod N is I)")
    p.add_argument("--out", required=True, help="rule part JSON to write")
    p.add_argument("--output", default="auto",
                   help="the linear layer the rules replace (default: the model's own, or the "
                        "one nn.Linear from the kernels to the classes)")
    p.add_argument("--order", "-k", type=positive_int, default=3)
    p.add_argument("--mode", choices=MODES, default="argmax")
    p.add_argument("--search", choices=("pruned", "naive"), default="pruned")
    p.add_argument("--minimize", choices=("exact", "none"), default="exact")
    p.add_argument("--minimize-timeout", type=positive_float, default=60.0)
    p.add_argument("--max-terms", type=positive_int, default=None)
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``cnn2logic extract-part``: extract one job's classes and write the rule part.

    Returns
    -------
    int
        0 on success (a :class:`~cnn2logic.errors.Cnn2LogicError` is exit status 2).
    """
    import time

    from .._io import atomic_write_text, refuse_overwriting_inputs
    from ._common import note_found_layers
    from ._model_args import model_from_args
    from ..extract.layers import output_layer
    from ..extract.parts import extract_part, parse_classes
    from ..model.layers import AUTO, linear_reading
    from ..units import BinaryCodes

    refuse_overwriting_inputs([args.out], [args.codes, args.model])
    codes = BinaryCodes.load(args.codes)
    model = model_from_args(args)
    layer = codes.variables[0].layer if codes.variables else ""
    if args.output == AUTO:
        args.output = linear_reading(model, len(codes.names), len(codes.classes))
        note_found_layers(model, layer, args.output)
    W, b = output_layer(model, args.output, len(codes.names))
    heads = (tuple(codes.classes) if len(codes.classes) == W.shape[0]
             else tuple(str(c) for c in range(W.shape[0])))
    classes = parse_classes(args.classes, heads)
    start = time.perf_counter()
    part = extract_part(W, b, codes, classes, order=args.order, mode=args.mode,
                        search=args.search, minimize=args.minimize,
                        minimize_timeout=args.minimize_timeout, max_terms=args.max_terms,
                        layer_names=(layer, args.output))
    atomic_write_text(args.out, part.to_json())
    print(f"wrote {args.out}: {len(part.rules)} rules for classes {', '.join(classes)} "
          f"({time.perf_counter() - start:.2f} s)")
    return 0
