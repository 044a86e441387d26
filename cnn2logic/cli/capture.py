"""``cnn2logic capture``: kernel units of one shard of a split, streamed, as an .npz shard.

Imports of the package sit inside :func:`register` and :func:`run` on purpose: the parser of
every subcommand is built at start-up, and only the command that runs should pay for torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_progress_arg, note_found_layers, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``capture`` subcommand to ``sub``."""
    from ._data_args import add_data_args
    from ._model_args import add_model_args
    from ..units import REDUCTIONS

    p = sub.add_parser(
        "capture", help="capture one shard of a split's kernel units (for several machines)",
        description="Run the model over images start..stop of one split (shard i of n, "
                    "read batch by batch) and write the kernel units of --layer as a shard "
                    "file. With --threshold half or --thresholds FILE the units are "
                    "binarised on the fly; otherwise the raw units are kept and "
                    "'cnn2logic merge' fits the thresholds over all shards.")
    p.add_argument("model", help="checkpoint ('cnn2logic train', or a state dict with --factory)")
    add_model_args(p)
    p.add_argument("--out", required=True, help="shard file to write (.npz)")
    add_data_args(p, sizes=False)
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--size", type=positive_int, default=None,
                   help="use only the first N images of the split")
    p.add_argument("--shard", default="0/1", metavar="I/N",
                   help="which contiguous part of the split: shard I (0-based) of N")
    p.add_argument("--layer", default="auto",
                   help="layer whose kernels are the rule variables (default 'auto': a spec "
                        "net's 'pool', else the last map after the last convolution)")
    p.add_argument("--reduce", choices=REDUCTIONS, default="max")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--threshold", choices=("half",), default=None,
                       help="binarise at 0.5 now (sigmoid units)")
    group.add_argument("--thresholds", default=None, metavar="FILE",
                       help="binarise with fitted thresholds: a file from 'cnn2logic merge "
                            "--thresholds-out' or a rules.json")
    p.add_argument("--batch-size", type=positive_int, default=500)
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``cnn2logic capture``: capture one shard of a split and write it.

    Returns
    -------
    int
        0 on success (a :class:`~cnn2logic.errors.Cnn2LogicError` is exit status 2).
    """
    from .._io import refuse_overwriting_inputs
    from ..model import file_digest
    from ._model_args import model_from_args
    from ..errors import ActivationError
    from ..data import iter_batches
    from ..model.layers import AUTO, resolve_layers
    from ..units import capture_shard, load_thresholds, parse_shard

    refuse_overwriting_inputs([args.out], [args.model, args.thresholds])
    shard = parse_shard(args.shard)
    model = model_from_args(args)
    source, images = _source(args)
    if args.layer == AUTO:  # the same on every shard: it depends on the model only
        first = (next(iter(iter_batches(source, args.split, 0, 1, 1)), (None,))[0]
                 if source is not None else images.images[:1])
        if first is not None and len(first):  # else capture_shard says the split is empty
            args.layer = resolve_layers(model, AUTO, AUTO, first)[0]
            note_found_layers(model, args.layer)
    thresholds = None
    if args.thresholds:
        thresholds, info = load_thresholds(args.thresholds)
        for key, mine in (("layer", args.layer), ("reduce", args.reduce)):
            if info.get(key) and info[key] != mine:
                raise ActivationError(f"{args.thresholds} was fitted on {key} {info[key]!r}, "
                                      f"not {mine!r}")
    result = capture_shard(model, args.layer, images, source=source, split=args.split,
                           size=args.size, shard=shard, reduce=args.reduce,
                           threshold=args.threshold, thresholds=thresholds,
                           batch_size=args.batch_size, model_digest=file_digest(args.model),
                           progress=args.progress)
    result.save(Path(args.out))
    start, stop = int(result.indices[0]), int(result.indices[-1]) + 1
    print(f"wrote {args.out}: shard {shard[0]}/{shard[1]}, images {start}..{stop - 1} of "
          f"{result.total}, {len(result.names)} units of {args.layer} as {result.kind}")
    return 0


def _source(args: argparse.Namespace):
    """``(source, None)`` for MNIST read piecewise from its files (embedded, IDX, no
    preprocessing), else ``(None, split)``: the split of an image folder, an ``.npz`` or
    preprocessed MNIST, streamed by its DataLoader."""
    from ..data import EMBEDDED, has_idx
    from ._data_args import data_from_args, transform_from_args

    plain = transform_from_args(args).identity
    path = Path(args.data)
    if plain and (args.data == EMBEDDED or (path.is_dir() and has_idx(path))):
        return args.data, None
    data = data_from_args(args, "cnn2logic capture", batch_size=args.batch_size)
    return None, (data.train if args.split == "train" else data.test)
