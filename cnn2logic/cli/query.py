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
import functools
from pathlib import Path

from ..errors import QueryError
from ..labels import LABELS_HELP, apply_label_file, read_labels
from ..query import QUESTIONS, WHEN, Program, run_program
from ..query.bounded import default_memory_mb, run_bounded
from ..rules import load_rules
from ._common import non_negative_int, positive_float, positive_int


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
    which = p.add_mutually_exclusive_group()
    which.add_argument("--image", metavar="N",
                       help="image id (img17), identifier (i_img17) or position in the data "
                            "(17); a number that is one image's id and another's position "
                            "is refused as ambiguous")
    which.add_argument("--image-id", metavar="ID", help="the image with this id, exactly")
    which.add_argument("--image-index", metavar="N", type=non_negative_int,
                       help="the image at this position in the data (0, 1, ...)")
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
                   help="stop after this many seconds: the search returns what it found so "
                        "far; loading or grounding that takes too long is stopped with an "
                        "error")
    p.add_argument("--max-memory", type=positive_int, default=None, metavar="MB",
                   help="most memory (address space) clingo may use, in MiB (default: 3/4 "
                        "of the physical memory)")
    p.add_argument("--activations", metavar="DATA",
                   help="with a rules .json: binarised activations (.npz) to include")
    p.add_argument("--unminimized", action="store_true",
                   help="with a rules .json: use the rules as extracted, before minimisation")
    p.add_argument("--labels", metavar="FILE", help=LABELS_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _load(args: argparse.Namespace) -> Program:
    path = Path(args.program)
    if path.suffix.lower() == ".json":
        # Deferred on purpose: cnn2logic.units imports torch, needed only for a rules .json.
        from ..units import BinaryCodes

        rules = load_rules(path)
        rules = apply_label_file(rules, args.labels)
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
    if args.image_id is not None:
        args.image, args.image_by = args.image_id, "id"
    elif args.image_index is not None:
        args.image, args.image_by = str(args.image_index), "index"
    else:
        args.image_by = "any"
    program = _load(args)
    args.labels = read_labels(args.labels) if args.labels else None  # explain checks names
    # clingo runs in a child process: --timeout then bounds loading and grounding too
    # (clingo's own limit stops the search only) and the memory is capped.
    bounds = {"timeout": args.timeout,
              "memory_mb": args.max_memory if args.max_memory else default_memory_mb()}
    if args.user_program:
        consts = {}
        for item in args.const:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise QueryError(f"-c expects NAME=VALUE, got {item!r}")
            consts[name] = value
        ask = functools.partial(run_program, program, args.user_program, consts=consts,
                                models=args.models, timeout=args.timeout)
        result = run_bounded(ask, **bounds)
    else:
        question = QUESTIONS[args.question]
        _need(args, *question.needs)
        result = run_bounded(functools.partial(question.run, program, vars(args)), **bounds)
    if args.json:
        print(result.to_json(), end="")
    else:
        print(result.format(max_rows=args.rows or None))
        for warning in getattr(result, "warnings", []):
            print(f"clingo: {warning}")
    return 0
