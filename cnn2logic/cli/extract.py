"""``cnn2logic extract``: rules from a trained model, as JSON + Markdown + binary codes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dataclasses import fields

from .._io import atomic_directory, atomic_write_text, refuse_overwriting_inputs
from ._model_args import add_model_args, model_from_args
from ..errors import ExtractionError
from ..export.markdown import metrics_table, table1, to_markdown
from ..extract import REGISTRY
from ..extract.config import SECTIONS, ExtractConfig
from ..extract.run import extract_model
from ..labels import LABELS_HELP, read_labels
from ..model.spec import PAPER_FIGURES
from ._common import add_progress_arg, note_found_layers, positive_float, positive_int
from ._data_args import add_data_args, data_from_args


def fraction(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value

# How a settings field's ``parse`` (cnn2logic.extract.config.setting) reads its option.
_PARSERS = {"str": str, "int": int, "float": float, "positive_int": positive_int,
            "positive_float": positive_float}


#: The files one run writes into --out, replaced together.
OUTPUTS = ("rules.json", "rules.md", "codes-train.npz", "codes-test.npz")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cnn2logic extract``; its extraction options come from the settings sections."""
    p = sub.add_parser("extract", help="extract Boolean rules from a trained model",
                       description="Capture and binarise kernel units, extract rules for the "
                                   "output layer, minimise and evaluate them. Writes "
                                   "rules.json, rules.md, codes-train.npz and codes-test.npz "
                                   "into --out.")
    p.add_argument("model", help="checkpoint written by 'cnn2logic train' (or, with "
                                 "--factory, any state dict, TorchScript or .pt2 file)")
    add_model_args(p)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--labels", metavar="FILE", help=LABELS_HELP)
    add_data_args(p, batch_size=True)
    method_group = p.add_argument_group("method",
                                        "which extractor, and the settings of the others")
    for section in SECTIONS:
        group = p if section.GROUP == "main" else method_group
        for f in fields(section):
            _add_setting(group, f)
    add_progress_arg(p)
    p.set_defaults(func=run)


def _add_setting(group, f) -> None:
    """One ``--option`` for the settings field ``f`` (its declaration in config.py)."""
    meta = f.metadata
    flags = ("--" + f.name.replace("_", "-"),) + tuple(meta["flags"])
    kwargs: dict = {"default": f.default}
    if meta["help"] is not None:
        kwargs["help"] = meta["help"]
    if f.name == "method":
        kwargs["choices"] = tuple(REGISTRY)
        kwargs["help"] = ", ".join(f"{m.name} ({m.summary})" for m in REGISTRY.values())
    elif meta["parse"] == "flag":
        kwargs = {"action": "store_true", "help": meta["help"]}
    elif meta["parse"] == "optional_fraction":
        kwargs.update(nargs="?", const=meta["const"], type=fraction, metavar="SHARE")
    elif meta["parse"] != "names":
        kwargs["type"] = _PARSERS[meta["parse"]]
        if meta["choices"] is not None:
            kwargs["choices"] = tuple(meta["choices"])
    group.add_argument(*flags, **kwargs)


def _settings_from(args: argparse.Namespace) -> ExtractConfig:
    """The :class:`ExtractConfig` of the parsed options (validated on construction)."""
    values = {}
    for section in SECTIONS:
        for f in fields(section):
            value = getattr(args, f.name)
            if f.metadata["parse"] == "names" and value:
                # a comma-separated list of names; empty entries are dropped
                value = tuple(name.strip() for name in value.split(",") if name.strip())
            elif f.metadata["parse"] == "names":
                value = None
            values[f.name] = value
    return ExtractConfig(**values)


def _layers_of(model, config: ExtractConfig, data) -> ExtractConfig:
    """``config`` with the layers found on the model, saying which when they were guessed."""
    from ..model.layers import AUTO
    from ..extract.run import resolve_config_layers

    resolved = resolve_config_layers(model, config, data.train.images[:1])
    if AUTO in (config.layer, config.output):
        note_found_layers(model, resolved.layer, resolved.output)
    return resolved


def run(args: argparse.Namespace) -> int:
    """Run ``cnn2logic extract``: extract, write the four files, print the tables.

    Returns
    -------
    int
        0.

    Raises
    ------
    ExtractionError
        Bad settings, a method that cannot apply, or ``--out`` is a file.
    """
    if args.order is not None and args.order < 1:
        raise ExtractionError(f"order k must be ≥ 1, got {args.order}")
    config = _settings_from(args)
    out = Path(args.out)
    # Before any work: extraction can take long.
    if out.exists() and not out.is_dir():
        raise ExtractionError(f"--out {out} exists and is not a directory")
    refuse_overwriting_inputs([out / name for name in OUTPUTS], [args.model])
    user_labels = read_labels(args.labels) if args.labels else None  # names: once captured
    model = model_from_args(args)  # a cnn2logic checkpoint, or --factory / .pt2 (any CNN)
    data = data_from_args(args, "cnn2logic extract")
    config = _layers_of(model, config, data)
    result = extract_model(model, data, config, progress=args.progress,
                           model_name=Path(args.model).name, labels=user_labels)
    # The four files are one set: written into a temporary sibling folder and moved in
    # together at the end, so an interrupted run never mixes new files with old ones.
    with atomic_directory(out) as tmp:
        atomic_write_text(tmp / "rules.json", result.rules.to_json())
        atomic_write_text(tmp / "rules.md", to_markdown(result.rules))
        result.train_codes.save(tmp / "codes-train.npz")
        result.test_codes.save(tmp / "codes-test.npz")
    arch = result.rules.meta.get("architecture", "")
    print(metrics_table(result.metrics, PAPER_FIGURES.get(arch)))
    print()
    print(table1(result.table))
    _print_method_summary(result.rules.meta)
    print(f"\nwrote {out}/rules.json, rules.md, codes-train.npz, codes-test.npz "
          f"({len(result.rules.rules)} rules, {result.seconds['total']:.1f} s)")
    for warning in result.warnings:  # never silently useless
        print(f"cnn2logic extract: warning: {warning}", file=sys.stderr)
    return 0


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
