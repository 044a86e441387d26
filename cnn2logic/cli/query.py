"""``cnn2logic query``: ask clingo about an exported program.

Examples::

    cnn2logic query rules.lp implies --class 3
    cnn2logic query rules.lp conflicts
    cnn2logic query rules.lp necessary --class 3
    cnn2logic query rules.lp explain --image img17
    cnn2logic query rules.lp flip --image img17 --to 8
    cnn2logic query rules.lp --program mine.lp -c k=3
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import QueryError
from ..query import QUESTIONS, WHEN, Program, run_program
from ..rules import load_rules
from ._common import non_negative_int, positive_float


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``query`` subcommand to ``sub``; its questions come from ``QUESTIONS``."""
    p = sub.add_parser(
        "query", help="answer questions about an exported program with clingo",
        description="Run a shipped query program (programs/*.lp) or your own against an "
                    "exported ASP program and print the answer as a table or JSON. "
                    "PROGRAM is a .lp file from 'cnn2logic export' or a rules .json "
                    "(exported on the fly, with --activations for data).",
        epilog="questions: " + " | ".join(q.usage for q in QUESTIONS.values()))
    p.add_argument("program", help="exported .lp program, or a rules .json")
    p.add_argument("question", nargs="?", choices=tuple(QUESTIONS),
                   help="the question to ask")
    p.add_argument("--class", dest="cls", metavar="C",
                   help="class name as in the rules (e.g. 3), or its identifier (c_3)")
    p.add_argument("--image", metavar="N",
                   help="image id (img17), identifier (i_img17) or position in the data (17)")
    p.add_argument("--to", metavar="C", help="flip: the class wanted")
    p.add_argument("--when", choices=WHEN, default="predicted",
                   help="necessary: the rules predict the class (rank order, default), "
                        "or some rule for it fires")
    p.add_argument("--program", dest="user_program", metavar="FILE.lp",
                   help="run your own query program against PROGRAM instead")
    p.add_argument("-c", "--const", action="append", default=[], metavar="NAME=VALUE",
                   help="--program: a clingo constant (repeatable)")
    p.add_argument("--models", type=non_negative_int, default=1,
                   help="--program: number of answers to compute, 0 for all (default 1)")
    p.add_argument("--limit", type=non_negative_int, default=20,
                   help="most sets / solutions to enumerate, 0 for all (default 20)")
    p.add_argument("--max-pairs", type=non_negative_int, default=10_000,
                   help="conflicts: list kernel pairs never used together only when there "
                        "are at most N, 0 for always (default 10000; the count is always "
                        "printed)")
    p.add_argument("--no-data", dest="data", action="store_false",
                   help="conflicts: skip the contradictions on the data (they cost images x "
                        "rules; the rest of the answer is about the rules alone)")
    p.add_argument("--rows", type=non_negative_int, default=20,
                   help="most table rows to print per section, 0 for all (default 20)")
    p.add_argument("--timeout", type=positive_float, default=None,
                   help="stop clingo's search after this many seconds")
    p.add_argument("--activations", metavar="DATA",
                   help="with a rules .json: binarised activations (.npz) to include")
    p.add_argument("--unminimized", action="store_true",
                   help="with a rules .json: use the rules as extracted, before minimisation")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _load(args: argparse.Namespace) -> Program:
    path = Path(args.program)
    if path.suffix.lower() == ".json":
        # Deferred on purpose: cnn2logic.units imports torch, needed only for a rules .json.
        from ..units import BinaryCodes

        rules = load_rules(path)
        codes = BinaryCodes.load(args.activations) if args.activations else None
        if codes is not None:
            codes.check_fits(rules, args.activations)
        return Program.from_rules(rules, codes, unminimized=args.unminimized)
    if args.activations or args.unminimized:
        raise QueryError("--activations and --unminimized apply to a rules .json; an exported "
                         ".lp already holds its rules and data")
    return Program.from_file(path)


def _need(args: argparse.Namespace, *names: str) -> None:
    flags = {"cls": "--class", "image": "--image", "to": "--to"}
    missing = [flags[n] for n in names if getattr(args, n) in (None, "")]
    if missing:
        raise QueryError(f"{args.question} needs {' and '.join(missing)}")


def run(args: argparse.Namespace) -> int:
    """Ask what ``args`` say and print the answer; return the exit status.

    Raises
    ------
    QueryError
        The options do not fit together, a question lacks a value it needs, or see
        :mod:`cnn2logic.query`.
    SolverError
        clingo rejects a program.
    """
    if args.user_program and args.question:
        raise QueryError("give either a question or --program, not both")
    if not args.user_program and not args.question:
        raise QueryError(f"say what to ask: one of {', '.join(QUESTIONS)}, or --program FILE.lp")
    if args.const and not args.user_program:
        raise QueryError("-c/--const applies to --program only")
    program = _load(args)
    if args.user_program:
        consts = {}
        for item in args.const:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise QueryError(f"-c expects NAME=VALUE, got {item!r}")
            consts[name] = value
        result = run_program(program, args.user_program, consts=consts, models=args.models,
                             timeout=args.timeout)
    else:
        question = QUESTIONS[args.question]
        _need(args, *question.needs)
        result = question.run(program, vars(args))
    if args.json:
        print(result.to_json(), end="")
    else:
        print(result.format(max_rows=args.rows or None))
        for warning in getattr(result, "warnings", []):
            print(f"clingo: {warning}")
    return 0
