"""Run SWI-Prolog (``swipl``) on an exported program: the Prolog side of the cross-checks.

(Writing Prolog is :mod:`cnn2logic.export.prolog`; this module runs it.)

Only the ``swipl`` executable is needed (Debian: ``swi-prolog-nox``); nothing is imported
into Python.  :func:`check_program` loads a program with ``--on-warning=status`` so that a
single warning fails the load; :func:`prolog_predictions` asks for every image's
``prediction/2``.

Example
-------
>>> import shutil, tempfile, pathlib
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> from cnn2logic.export.prolog import to_prolog
>>> rs = RuleSet((Variable("k1"),), (Head("a"), Head("b")), (Rule("a", (Literal("k1"),)),),
...              default="b")
>>> path = pathlib.Path(tempfile.mkdtemp()) / "rules.pl"
>>> _ = path.write_text(to_prolog(rs), encoding="utf-8")
>>> shutil.which("swipl") is None or run_goal(path, "class_name(c_a, N), write(N)") == "a"
True
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from ..errors import QueryError, SolverError
from ..export.layout import check_complete

SWIPL = "swipl"


def swipl_path() -> str | None:
    """The ``swipl`` executable, or None when SWI-Prolog is not installed."""
    return shutil.which(SWIPL)


def _swipl() -> str:
    path = swipl_path()
    if path is None:
        raise SolverError("SWI-Prolog is not installed (no 'swipl' on PATH; on Debian: "
                          "apt-get install swi-prolog-nox)")
    return path


def run_goal(program: str | os.PathLike[str], goal: str, *, timeout: float = 300.0) -> str:
    """Load ``program`` with warnings as errors, run ``goal`` once and return its output.

    Raises
    ------
    SolverError
        ``swipl`` is missing, loading printed a warning or an error, the goal failed or
        raised, or it ran longer than ``timeout`` seconds.  The message quotes SWI-Prolog.
    QueryError
        ``program`` is an exported program that was cut short or lost lines.
    """
    _check_complete(program)
    wrapped = f"(catch(({goal}), E, (print_message(error, E), halt(3))) -> halt(0) ; halt(4))"
    try:
        proc = subprocess.run(
            [_swipl(), "--on-warning=status", "--on-error=status", "-q", "-g", wrapped,
             "-t", "halt(5)", str(program)],
            capture_output=True, text=True, encoding="utf-8", timeout=timeout,
            env={**os.environ, "LANG": "C.UTF-8"})
    except subprocess.TimeoutExpired:
        raise SolverError(f"swipl: {goal!r} on {program} ran longer than {timeout} s") from None
    if proc.returncode != 0 or proc.stderr.strip():
        reason = {4: "the goal failed", 3: "the goal raised an error"}.get(
            proc.returncode, f"exit status {proc.returncode}")
        detail = " ".join(proc.stderr.split())[:2000]
        raise SolverError(f"swipl on {program}: {reason}: {detail}")
    return proc.stdout


def _check_complete(program: str | os.PathLike[str]) -> None:
    # An exported module ends with a line counting its rules and images (as .lp does).
    try:
        with open(program, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return  # swipl reports what it cannot read, in its own words
    problem = check_complete(text)
    if problem is not None:
        raise QueryError(f"program {os.fspath(program)} is incomplete: {problem}")


def check_program(program: str | os.PathLike[str]) -> None:
    """Load ``program`` in SWI-Prolog; any warning or error raises :class:`SolverError`.

    Raises
    ------
    SolverError
        See :func:`run_goal`.
    """
    run_goal(program, "true")


def prolog_predictions(program: str | os.PathLike[str]) -> dict[str, str | None]:
    """Original image id -> predicted class name, as SWI-Prolog computes ``prediction/2``.

    Raises
    ------
    SolverError
        See :func:`run_goal`; also when an image gets more than one prediction.
    """
    # Names travel as code lists, so no quoting rules stand between Prolog and Python.
    goal = ("forall(image(I), (image_id(I, Id), atom_codes(Id, Ic), "
            "findall(Nc, (prediction(I, C), class_name(C, N), atom_codes(N, Nc)), Ps), "
            "format('~w\\t~w~n', [Ic, Ps])))")
    out: dict[str, str | None] = {}
    for line in run_goal(program, goal).splitlines():
        ident, preds = (json.loads(part) for part in line.split("\t"))
        if len(preds) > 1:
            raise SolverError(f"swipl: image {_decode(ident)!r} has {len(preds)} predictions")
        out[_decode(ident)] = _decode(preds[0]) if preds else None
    return out


def _decode(codes: list[int]) -> str:
    return "".join(map(chr, codes))
