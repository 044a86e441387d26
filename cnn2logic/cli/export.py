"""``cnn2logic export``: a rules file as an ASP program (clingo) or a Prolog module.

The languages, their ``--format`` choices and help come from
:data:`cnn2logic.export.logic.FORMATS`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._io import refuse_overwriting_inputs
from ..errors import ExportError
from ..export.logic import FORMATS, program_text, write_program
from ..export.model import basename
from ..export.prolog import DEFAULT_MODULE
from ..labels import LABELS_HELP, apply_label_file
from ..rules import load_rules


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand to ``sub``."""
    p = sub.add_parser(
        "export", help="write the rules as an "
                       + " or ".join(f"{f.language} (.{f.name})" for f in FORMATS.values())
                       + " program",
        description="Write RULES (a rules.json from 'cnn2logic extract') as an ASP program "
                    "for clingo or a Prolog module for SWI-Prolog, optionally with the "
                    "binarised activations of a data set. Same input, same bytes.")
    p.add_argument("rules", help="rules JSON file")
    p.add_argument("--out", required=True,
                   help="output file (" + " or ".join(f".{f}" for f in FORMATS)
                        + "), or '-' for standard output")
    p.add_argument("--format", choices=tuple(FORMATS), default=None,
                   help="; ".join(f"{f.name}: {f.help}" for f in FORMATS.values())
                        + " (default: from --out)")
    p.add_argument("--activations", metavar="DATA", default=None,
                   help="binarised activations (.npz, e.g. codes-test.npz from extract): "
                        "adds image, label, network-prediction and active/2 facts")
    p.add_argument("--unminimized", action="store_true",
                   help="export the rules as extracted, before minimisation")
    p.add_argument("--module", default=None,
                   help="Prolog module name (default: cnn2logic_program)")
    p.add_argument("--labels", metavar="FILE", help=LABELS_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the program ``args`` describe; return the exit status.

    Raises
    ------
    ExportError
        The format cannot be told from ``--out``, ``--module`` is given for a language
        without modules, or the rules cannot be exported.
    """
    # Deferred on purpose: cnn2logic.units imports torch, needed only with --activations.
    from ..units import BinaryCodes

    fmt = args.format
    if fmt is None:
        suffix = Path(args.out).suffix.lower().lstrip(".")
        if args.out == "-" or suffix not in FORMATS:
            choices = " or ".join(f"--format {f}" for f in FORMATS)
            raise ExportError(f"cannot tell the format from --out {args.out!r}: add {choices}")
        fmt = suffix
    if args.module is not None and "module" not in FORMATS[fmt].options:
        raise ExportError("--module applies to Prolog output only (--format pl)")
    refuse_overwriting_inputs([args.out], [args.rules, args.activations, args.labels])
    rules = apply_label_file(load_rules(args.rules), args.labels)
    codes = BinaryCodes.load(args.activations) if args.activations else None
    if codes is not None:
        codes.check_fits(rules, args.activations)
    sources = {"rules file": basename(args.rules)}
    if args.activations:
        sources["activations file"] = basename(args.activations)
    options = dict(format=fmt, unminimized=args.unminimized, sources=sources,
                   module=args.module or DEFAULT_MODULE)
    if args.out == "-":
        sys.stdout.write(program_text(rules, codes, **options))
        return 0
    write_program(args.out, rules, codes, **options)
    n_rules = len(rules.meta.get("unminimized_rules", [])) if args.unminimized \
        else len(rules.rules)
    images = f", {len(codes)} images" if codes is not None else ""
    print(f"wrote {FORMATS[fmt].kind} {args.out}: {n_rules} rules over "
          f"{len(rules.variables)} kernels{images}")
    return 0
