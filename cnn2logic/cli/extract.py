"""``cnn2logic extract``: rules from a trained model, as JSON + Markdown + binary codes."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_data_args, add_progress_arg, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from ..extract.approximation import MODES, SEARCHES
    from ..pipeline import MINIMIZE
    from ..units import REDUCTIONS, THRESHOLDS

    p = sub.add_parser("extract", help="extract Boolean rules from a trained model",
                       description="Capture and binarise kernel units, extract rules for the "
                                   "output layer, minimise and evaluate them. Writes "
                                   "rules.json, rules.md, codes-train.npz and codes-test.npz "
                                   "into --out.")
    p.add_argument("model", help="checkpoint written by 'cnn2logic train'")
    p.add_argument("--out", required=True, help="output directory")
    add_data_args(p)
    p.add_argument("--layer", default="pool", help="layer whose kernels are the rule variables")
    p.add_argument("--output", default="out", help="linear layer the rules replace")
    p.add_argument("--threshold", choices=THRESHOLDS, default="half",
                   help="binarisation: 'half' (0.5, sigmoid units, the paper) or per-kernel")
    p.add_argument("--reduce", choices=REDUCTIONS, default="max",
                   help="how a kernel's map becomes one unit")
    p.add_argument("--order", "-k", type=int, default=None,
                   help="largest term order k (default: all units when ≤ 12, else 3)")
    p.add_argument("--mode", choices=MODES, default="argmax",
                   help="softmax treatment: argmax-sound or per-logit sigmoid")
    p.add_argument("--search", choices=SEARCHES, default="pruned")
    p.add_argument("--data-limited", action="store_true",
                   help="worst case over covered training codes instead of the whole cube")
    p.add_argument("--min-support", type=positive_int, default=1)
    p.add_argument("--max-terms", type=positive_int, default=None,
                   help="keep at most N terms per class (best ranked)")
    p.add_argument("--minimize", choices=("exact", "on-codes", "none"), default="exact",
                   help="espresso: exact equivalence, or don't-cares off the observed codes")
    p.add_argument("--minimize-timeout", type=positive_float, default=60.0)
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._io import atomic_write_text
    from ..data import load_data
    from ..errors import ExtractionError
    from ..export.markdown import metrics_table, table1, to_markdown
    from ..models import PAPER_FIGURES, load_checkpoint
    from ..pipeline import ExtractConfig, extract_model

    if args.order is not None and args.order < 1:
        raise ExtractionError(f"order k must be ≥ 1, got {args.order}")
    config = ExtractConfig(layer=args.layer, output=args.output, threshold=args.threshold,
                           reduce=args.reduce, order=args.order, mode=args.mode,
                           search=args.search, data_limited=args.data_limited,
                           min_support=args.min_support, max_terms=args.max_terms,
                           minimize=args.minimize, minimize_timeout=args.minimize_timeout)
    model = load_checkpoint(args.model)
    data = load_data(args.data, train_size=args.train_size, test_size=args.test_size)
    result = extract_model(model, data, config, progress=args.progress,
                           model_name=Path(args.model).name)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ExtractionError(f"--out {out} exists and is not a directory")
    atomic_write_text(out / "rules.json", result.rules.to_json())
    atomic_write_text(out / "rules.md", to_markdown(result.rules))
    result.train_codes.save(out / "codes-train.npz")
    result.test_codes.save(out / "codes-test.npz")
    arch = result.rules.meta.get("architecture", "")
    print(metrics_table(result.metrics, PAPER_FIGURES.get(arch)))
    print()
    print(table1(result.table))
    print(f"\nwrote {out}/rules.json, rules.md, codes-train.npz, codes-test.npz "
          f"({len(result.rules.rules)} rules, {result.seconds['total']:.1f} s)")
    return 0
