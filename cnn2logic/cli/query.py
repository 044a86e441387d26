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

from ._common import non_negative_int

QUESTIONS = ("implies", "conflicts", "necessary", "explain", "flip")




def register(sub: argparse._SubParsersAction) -> None:
    from ._common import positive_float

    p = sub.add_parser(
        "query", help="answer questions about an exported program with clingo",
        description="Run a shipped query program (programs/*.lp) or your own against an "
                    "exported ASP program and print the answer as a table or JSON. "
                    "PROGRAM is a .lp file from 'cnn2logic export' or a rules .json "
                    "(exported on the fly, with --activations for data).",
        epilog="questions: implies --class C | conflicts | necessary --class C "
               "[--when predicted|fires] | explain --image N | flip --image N --to C")
    p.add_argument("program", help="exported .lp program, or a rules .json")
    p.add_argument("question", nargs="?", choices=QUESTIONS, help="the question to ask")
    p.add_argument("--class", dest="cls", metavar="C",
                   help="class name as in the rules (e.g. 3), or its identifier (c_3)")
    p.add_argument("--image", metavar="N",
                   help="image id (img17), identifier (i_img17) or position in the data (17)")
    p.add_argument("--to", metavar="C", help="flip: the class wanted")
    p.add_argument("--when", choices=("predicted", "fires"), default="predicted",
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


def _load(args: argparse.Namespace):
    from ..errors import QueryError
    from ..query import Program

    path = Path(args.program)
    if path.suffix.lower() == ".json":
        from ..rules import load_rules
        from ..units import BinaryCodes

        codes = BinaryCodes.load(args.activations) if args.activations else None
        return Program.from_rules(load_rules(path), codes, unminimized=args.unminimized)
    if args.activations or args.unminimized:
        raise QueryError("--activations and --unminimized apply to a rules .json; an exported "
                         ".lp already holds its rules and data")
    return Program.from_file(path)


def _need(args: argparse.Namespace, *names: str) -> None:
    from ..errors import QueryError

    flags = {"cls": "--class", "image": "--image", "to": "--to"}
    missing = [flags[n] for n in names if getattr(args, n) in (None, "")]
    if missing:
        raise QueryError(f"{args.question} needs {' and '.join(missing)}")


def run(args: argparse.Namespace) -> int:
    from .. import query
    from ..errors import QueryError

    if args.user_program and args.question:
        raise QueryError("give either a question or --program, not both")
    if not args.user_program and not args.question:
        raise QueryError(f"say what to ask: one of {', '.join(QUESTIONS)}, or --program FILE.lp")
    if args.const and not args.user_program:
        raise QueryError("-c/--const applies to --program only")
    program = _load(args)
    timeout = args.timeout
    if args.user_program:
        consts = {}
        for item in args.const:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise QueryError(f"-c expects NAME=VALUE, got {item!r}")
            consts[name] = value
        result = query.run_program(program, args.user_program, consts=consts,
                                   models=args.models, timeout=timeout)
    elif args.question == "implies":
        _need(args, "cls")
        result = query.implies(program, args.cls, limit=args.limit, timeout=timeout)
    elif args.question == "conflicts":
        result = query.conflicts(program, limit=args.limit, max_pairs=args.max_pairs,
                                 data=args.data, timeout=timeout)
    elif args.question == "necessary":
        _need(args, "cls")
        result = query.necessary(program, args.cls, when=args.when, timeout=timeout)
    elif args.question == "explain":
        _need(args, "image")
        result = query.explain(program, args.image)
    else:
        _need(args, "image", "to")
        result = query.flip(program, args.image, args.to, limit=args.limit, timeout=timeout)
    if args.json:
        print(result.to_json(), end="")
    else:
        print(result.format(max_rows=args.rows or None))
        for warning in getattr(result, "warnings", []):
            print(f"clingo: {warning}")
    return 0
