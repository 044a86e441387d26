"""``cnn2logic export``: a rules file as an ASP program (clingo) or a Prolog module."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write the rules as an ASP (.lp) or Prolog (.pl) program",
        description="Write RULES (a rules.json from 'cnn2logic extract') as an ASP program "
                    "for clingo or a Prolog module for SWI-Prolog, optionally with the "
                    "binarised activations of a data set. Same input, same bytes.")
    p.add_argument("rules", help="rules JSON file")
    p.add_argument("--out", required=True,
                   help="output file (.lp or .pl), or '-' for standard output")
    p.add_argument("--format", choices=("lp", "pl"), default=None,
                   help="lp: ASP for clingo; pl: SWI-Prolog module (default: from --out)")
    p.add_argument("--activations", metavar="DATA", default=None,
                   help="binarised activations (.npz, e.g. codes-test.npz from extract): "
                        "adds image, label, network-prediction and active/2 facts")
    p.add_argument("--unminimized", action="store_true",
                   help="export the rules as extracted, before minimisation")
    p.add_argument("--module", default=None,
                   help="Prolog module name (default: cnn2logic_program)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ExportError
    from ..export._common import basename
    from ..export.logic import program_text, write_program
    from ..export.prolog import DEFAULT_MODULE
    from ..rules import load_rules
    from ..units import BinaryCodes

    fmt = args.format
    if fmt is None:
        suffix = Path(args.out).suffix.lower().lstrip(".")
        if args.out == "-" or suffix not in ("lp", "pl"):
            raise ExportError(f"cannot tell the format from --out {args.out!r}: "
                              "add --format lp or --format pl")
        fmt = suffix
    if args.module is not None and fmt != "pl":
        raise ExportError("--module applies to Prolog output only (--format pl)")
    rules = load_rules(args.rules)
    codes = BinaryCodes.load(args.activations) if args.activations else None
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
    what = "ASP program" if fmt == "lp" else "Prolog module"
    images = f", {len(codes)} images" if codes is not None else ""
    print(f"wrote {what} {args.out}: {n_rules} rules over {len(rules.variables)} kernels"
          f"{images}")
    return 0
