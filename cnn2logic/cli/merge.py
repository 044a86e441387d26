"""``cnn2logic merge``: join activation shards into codes, or per-class rule parts into rules.

Imports of the package sit inside :func:`register` and :func:`run` on purpose: the parser of
every subcommand is built at start-up, and only the command that runs should pay for torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``merge`` subcommand to ``sub``."""
    from ..units import THRESHOLDS

    p = sub.add_parser(
        "merge", help="merge activation shards (.npz) or per-class rule parts (.json)",
        description="Activation shards from 'cnn2logic capture' become one codes .npz (the "
                    "format 'cnn2logic extract' writes), after checking that they agree and "
                    "cover every image once; raw units are binarised with thresholds fitted "
                    "over all shards. Rule parts from 'cnn2logic extract-part' become one "
                    "rules.json, ranked on --codes (the training codes the parts used).")
    p.add_argument("inputs", nargs="+", help="shard .npz files, or rule part .json files")
    p.add_argument("--out", required=True, help="codes .npz or rules .json to write")
    p.add_argument("--threshold", choices=THRESHOLDS, default=None,
                   help="shards of raw units: how to fit thresholds over all of them "
                        "(default half)")
    p.add_argument("--thresholds", default=None, metavar="FILE",
                   help="shards of raw units: binarise with these fitted thresholds instead")
    p.add_argument("--thresholds-out", default=None, metavar="FILE",
                   help="write the thresholds used (give them to 'capture --thresholds' "
                        "for the test split)")
    p.add_argument("--codes", default=None, metavar="NPZ",
                   help="rule parts: the training codes they were ranked on (required)")
    p.add_argument("--test-codes", default=None, metavar="NPZ",
                   help="rule parts: test codes to evaluate the merged rules on")
    p.set_defaults(func=run)


def _is_json(path: str) -> bool:
    p = Path(path)
    if not p.is_file():
        return path.endswith(".json")
    with open(p, "rb") as fh:
        return fh.read(1) in (b"{", b"[")


def run(args: argparse.Namespace) -> int:
    """Run ``cnn2logic merge``: merge shards into codes, or rule parts into rules.

    Returns
    -------
    int
        0 on success (a :class:`~cnn2logic.errors.Cnn2LogicError` is exit status 2).
    """
    from .._io import atomic_write_text, refuse_overwriting_inputs
    from ..errors import ActivationError, RulesFileError
    from ..rules import load_rules
    from ..extract.parts import merge_rule_parts
    from ..units import (ActivationShard, BinaryCodes, load_thresholds, merge_shards,
                         save_thresholds)

    refuse_overwriting_inputs([args.out, args.thresholds_out],
                              [*args.inputs, args.codes, args.thresholds])
    kinds = {_is_json(p) for p in args.inputs}
    if len(kinds) > 1:
        raise ActivationError("mix of rule parts (.json) and activation shards (.npz); merge "
                              "one kind at a time")
    if kinds == {True}:
        if args.codes is None:
            raise RulesFileError("merging rule parts needs --codes (the training codes the "
                                 "parts were ranked on)")
        parts = [load_rules(p) for p in args.inputs]
        codes = BinaryCodes.load(args.codes)
        test = BinaryCodes.load(args.test_codes) if args.test_codes else None
        rules = merge_rule_parts(parts, codes, test)
        atomic_write_text(args.out, rules.to_json())
        line = f"wrote {args.out}: {len(rules.rules)} rules from {len(parts)} parts"
        metrics = rules.meta.get("metrics")
        if metrics:
            line += (f"; rule accuracy {metrics['rule_accuracy']:.4f}, fidelity "
                     f"{metrics.get('fidelity', float('nan')):.4f}")
        print(line)
        return 0
    thresholds = load_thresholds(args.thresholds)[0] if args.thresholds else None
    codes, fitted = merge_shards(args.inputs, threshold=args.threshold, thresholds=thresholds)
    codes.save(args.out)
    if args.thresholds_out:
        layer = codes.variables[0].layer if codes.variables else ""
        reduce = ActivationShard.load(args.inputs[0]).reduce
        save_thresholds(fitted, args.thresholds_out, layer=layer, reduce=reduce,
                        names=codes.names)
    print(f"wrote {args.out}: {len(codes)} images x {len(codes.names)} units from "
          f"{len(args.inputs)} shards (thresholds: {fitted.method})"
          + (f"; thresholds in {args.thresholds_out}" if args.thresholds_out else ""))
    return 0
