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
    p.add_argument("model", help="checkpoint written by 'cnn2logic train' (or, with "
                                 "--factory, any state dict, TorchScript or .pt2 file)")
    from ._model_args import add_model_args

    add_model_args(p)
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
    _add_method_args(p)
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._io import atomic_write_text
    from ..data import load_data
    from ..errors import ExtractionError
    from ..export.markdown import metrics_table, table1, to_markdown
    from ..model.spec import PAPER_FIGURES
    from ..pipeline import ExtractConfig, extract_model

    if args.order is not None and args.order < 1:
        raise ExtractionError(f"order k must be ≥ 1, got {args.order}")
    config = ExtractConfig(layer=args.layer, output=args.output, threshold=args.threshold,
                           reduce=args.reduce, order=args.order, mode=args.mode,
                           search=args.search, data_limited=args.data_limited,
                           min_support=args.min_support, max_terms=args.max_terms,
                           minimize=args.minimize, minimize_timeout=args.minimize_timeout)
    config = _with_method_args(config, args)
    from ._model_args import model_from_args

    model = model_from_args(args)  # a cnn2logic checkpoint, or --factory / .pt2 (any CNN)
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
    _print_method_summary(result.rules.meta)
    print(f"\nwrote {out}/rules.json, rules.md, codes-train.npz, codes-test.npz "
          f"({len(result.rules.rules)} rules, {result.seconds['total']:.1f} s)")
    return 0


def _add_method_args(p: argparse.ArgumentParser) -> None:
    """``--method`` and the other methods' options (cnn2logic.extract.dispatch)."""
    from ..extract import METHODS
    from ..extract.chaining import LEARNERS
    from ..extract.dispatch import TARGETS
    from ..units import REDUCTIONS, THRESHOLDS

    g = p.add_argument_group("method", "which extractor, and the settings of the others")
    g.add_argument("--method", choices=tuple(METHODS), default="approximation",
                   help="approximation (the paper's), mofn (M-of-N, Odense), eric (CART "
                        "tree over quantised kernels), chaining (layer by layer, composed), "
                        "pedagogical (observed codes minimised)")
    g.add_argument("--beta", type=float, default=0.01,
                   help="mofn: loss = error + BETA * complexity")
    g.add_argument("--max-n", type=positive_int, default=None,
                   help="mofn: largest N of an M-of-N rule (default: all inputs)")
    g.add_argument("--alpha", type=float, default=0.6,
                   help="eric: threshold ALPHA * mean + GAMMA * std of each kernel's norm")
    g.add_argument("--gamma", type=float, default=0.7)
    g.add_argument("--norm", choices=REDUCTIONS, default="l2",
                   help="eric / chaining: norm of a kernel's activation map")
    g.add_argument("--max-depth", type=positive_int, default=None,
                   help="eric / chaining: depth limit of the CART trees (default: "
                        "unlimited for eric, 6 for chaining)")
    g.add_argument("--min-samples-leaf", type=positive_int, default=1,
                   help="eric / chaining: fewest training images per leaf")
    g.add_argument("--chain-layers", default=None,
                   help="chaining: comma-separated layers, lowest first (default: "
                        "act1,...,pool for conv stacks, pool,hidden_act1,... with hidden "
                        "FC layers)")
    g.add_argument("--chain-threshold", default="median",
                   choices=tuple(t for t in THRESHOLDS if t != "half"),
                   help="chaining: binarisation of intermediate conv maps")
    g.add_argument("--learner", choices=LEARNERS, default="auto",
                   help="chaining: approximation method (linear layers) or CART trees")
    g.add_argument("--target", choices=TARGETS, default="prediction",
                   help="learned methods fit the network's prediction (fidelity) or the "
                        "true label")


def _with_method_args(config, args: argparse.Namespace):
    """``config`` with the method options of ``args`` (validated by ExtractConfig)."""
    from dataclasses import replace

    chain = None
    if args.chain_layers:
        chain = tuple(name.strip() for name in args.chain_layers.split(",") if name.strip())
    return replace(config, method=args.method, beta=args.beta, max_n=args.max_n,
                   alpha=args.alpha, gamma=args.gamma, norm=args.norm,
                   max_depth=args.max_depth, min_samples_leaf=args.min_samples_leaf,
                   chain_layers=chain, chain_threshold=args.chain_threshold,
                   learner=args.learner, target=args.target)


def _print_method_summary(meta) -> None:
    """What only some methods report: the chain's fidelity per depth, M-of-N's choice."""
    chain = meta.get("chaining")
    if isinstance(chain, dict) and chain.get("depth_test"):
        print("\nchain fidelity per depth (test; depth 0 reads the top layer's true bits):")
        for d in chain["depth_test"]:
            print(f"  depth {d['depth']} (reads {d['reads']}): fidelity {d['fidelity']:.4f}, "
                  f"accuracy {d.get('accuracy', float('nan')):.4f}")
    mofn = meta.get("mofn")
    if isinstance(mofn, dict) and mofn.get("chosen"):
        picks = ", ".join(f"{h}: {c['M']}-of-{c['N']}" for h, c in mofn["chosen"].items())
        print(f"\nM-of-N rules chosen at beta={meta['settings'].get('beta')}: {picks}")
