"""Minimise each class's DNF with espresso (pyeda).

Two kinds of minimisation, and the result says which one was done:

``exact``
    espresso on the DNF itself: the result is logically equivalent to the input on every
    point of the cube.
``on-codes``
    espresso with the observed codes as ON- and OFF-set and every unobserved code as a
    don't-care: the result agrees with the input on the observed codes only, and is
    usually much shorter.

espresso cannot be interrupted from Python, so large problems run in a forked process
with a time cap; when the cap or the size cap is hit, the unminimised DNF is returned
with a warning.

pyeda objects stay inside this module: terms go in and come out as
``((variable index, polarity), ...)`` tuples.

Example
-------
>>> minimize_terms([((0, True), (1, True)), ((0, True), (1, False))], n_vars=2).terms
[((0, True),)]
"""

from __future__ import annotations

import multiprocessing
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .errors import ExtractionError
from .rules import Literal, Rule, RuleSet

#: A conjunction as ``((variable index, polarity), ...)``: how terms travel between the
#: extractors and espresso (the one definition; cnn2logic.extract uses this one).
Term = tuple[tuple[int, bool], ...]

_PC_ZERO, _PC_ONE, _PC_DC = 1, 2, 3
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_CUBES = 200_000


@dataclass(frozen=True)
class Minimized:
    """One class's DNF after minimisation: its terms, how it was minimised, sizes."""

    terms: list[Term]
    kind: str  # "exact", "on-codes", or "none" (fell back)
    note: str = ""
    before: int = 0
    after: int = 0


def _cube(term: Term, n: int) -> tuple[int, ...]:
    cube = [_PC_DC] * n
    for v, p in term:
        cube[v] = _PC_ONE if p else _PC_ZERO
    return tuple(cube)


def _terms_from_cover(cover: Iterable, n: int) -> list[Term]:
    out = []
    for invec, outvec in cover:
        if outvec[0] != 1:
            continue
        out.append(tuple((v, x == _PC_ONE) for v, x in enumerate(invec) if x != _PC_DC))
    return sorted(out, key=lambda t: (len(t), t))


def _espresso(n: int, cover: set, intype: int) -> list[Term]:
    from pyeda.boolalg.espresso import espresso

    return _terms_from_cover(espresso(n, 1, cover, intype=intype), n)


def _child(conn, jobs: list[tuple[int, set, int]]) -> None:  # pragma: no cover - subprocess
    for n, cover, intype in jobs:
        try:
            conn.send(("ok", _espresso(n, cover, intype)))
        except Exception as exc:
            conn.send(("error", repr(exc)))
    conn.close()


def _run_batch(jobs: list[tuple[int, set, int]], timeout: float) -> list[list[Term] | None]:
    """Run espresso jobs in a forked process; ``None`` for a job that exceeded ``timeout``.

    Two reasons for the fork.  espresso keeps state between calls inside one process
    (the same cover minimised twice can come back as two different, equally small
    covers), so every batch starts from the parent's untouched state and the output is
    reproducible.  And a C call cannot be interrupted, so a job over its time is killed.
    """
    results: list[list[Term] | None] = []
    ctx = multiprocessing.get_context("fork")
    while len(results) < len(jobs):
        pending = jobs[len(results):]
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(child, pending), daemon=True)
        proc.start()
        child.close()
        try:
            for _ in pending:
                if not parent.poll(timeout):
                    results.append(None)  # too slow: restart with the jobs after it
                    break
                status, payload = parent.recv()
                if status != "ok":
                    raise ExtractionError(f"espresso failed: {payload}")
                results.append(payload)
        except EOFError:
            raise ExtractionError("espresso process died (out of memory?)") from None
        finally:
            if proc.is_alive():
                proc.kill()
            proc.join()
            parent.close()
    return results


def _run(n: int, cover: set, intype: int, timeout: float) -> list[Term] | None:
    return _run_batch([(n, cover, intype)], timeout)[0]


def espresso_cover(on: np.ndarray, off: np.ndarray, n_vars: int, *,
                   timeout: float = DEFAULT_TIMEOUT) -> list[Term] | None:
    """espresso with the rows of ``on`` as ON-set and of ``off`` as OFF-set.

    Every other point of the cube is a don't-care.  Runs in a forked process with a
    time cap (see :func:`_run_batch` for why).

    Parameters
    ----------
    on, off : (rows, n_vars) bool arrays
        Disjoint sets of codes.
    n_vars : int
        Number of variables.
    timeout : float
        Seconds before giving up.

    Returns
    -------
    list of Term or None
        The minimised DNF, or None when espresso took longer than ``timeout``.

    Raises
    ------
    ExtractionError
        espresso failed or its process died.
    """
    from pyeda.boolalg.espresso import FTYPE, RTYPE

    cover = set()
    for rows, val in ((on, (1,)), (off, (0,))):
        for row in rows:
            cover.add((tuple(_PC_ONE if x else _PC_ZERO for x in row), val))
    return _run(n_vars, cover, FTYPE | RTYPE, timeout)


def _terms_job(terms: Sequence[Term], n_vars: int, max_cubes: int):
    """A :class:`Minimized` that needs no espresso, or the espresso job to run."""
    terms = list(terms)
    if not terms:
        return Minimized([], "exact", "constant false", 0, 0)
    if any(len(t) == 0 for t in terms):
        return Minimized([()], "exact", "constant true", len(terms), 1)
    if len(terms) > max_cubes:
        return _fallback(terms, f"{len(terms)} terms exceed the cap of {max_cubes}")
    from pyeda.boolalg.espresso import FTYPE

    return (n_vars, {(_cube(t, n_vars), (1,)) for t in terms}, FTYPE)


def _codes_job(terms: Sequence[Term], codes: np.ndarray, max_cubes: int):
    codes = np.unique(np.asarray(codes, dtype=bool), axis=0)
    on = _dnf_value(terms, codes)
    if on.all():
        return Minimized([()], "on-codes", "true on every observed code", len(terms), 1)
    if not on.any():
        return Minimized([], "on-codes", "false on every observed code", len(terms), 0)
    if len(codes) > max_cubes:
        return _fallback(list(terms), f"{len(codes)} distinct codes exceed the cap of {max_cubes}")
    from pyeda.boolalg.espresso import FTYPE, RTYPE

    cover = {(tuple(_PC_ONE if x else _PC_ZERO for x in row), (1,) if val else (0,))
             for row, val in zip(codes, on)}
    return (codes.shape[1], cover, FTYPE | RTYPE)


def _minimize_many(problems: list[tuple[Sequence[Term], object]], kind: str, timeout: float,
                   max_cubes: int) -> list[Minimized]:
    prepared = [(_terms_job(t, arg, max_cubes) if kind == "exact"
                 else _codes_job(t, arg, max_cubes)) for t, arg in problems]
    jobs = [p for p in prepared if not isinstance(p, Minimized)]
    outputs = iter(_run_batch(jobs, timeout) if jobs else [])
    results = []
    for (terms, _), prep in zip(problems, prepared):
        if isinstance(prep, Minimized):
            results.append(prep)
            continue
        out = next(outputs)
        if out is None:
            results.append(_fallback(list(terms), f"espresso took longer than {timeout:g} s"))
        else:
            results.append(Minimized(out, kind, "", len(terms), len(out)))
    return results


def minimize_terms(terms: Sequence[Term], n_vars: int, *, timeout: float = DEFAULT_TIMEOUT,
                   max_cubes: int = DEFAULT_MAX_CUBES) -> Minimized:
    """espresso on a DNF; the result is equivalent to the input everywhere.

    Falls back to the input (``kind="none"``, with a warning) past ``max_cubes`` terms or
    ``timeout`` seconds.
    """
    return _minimize_many([(terms, n_vars)], "exact", timeout, max_cubes)[0]


def minimize_on_codes(terms: Sequence[Term], codes: np.ndarray, *,
                      timeout: float = DEFAULT_TIMEOUT,
                      max_cubes: int = DEFAULT_MAX_CUBES) -> Minimized:
    """espresso with the observed ``codes`` as ON/OFF-set, unseen codes as don't-cares.

    The result agrees with ``terms`` on every row of ``codes`` (not necessarily elsewhere).
    """
    return _minimize_many([(terms, codes)], "on-codes", timeout, max_cubes)[0]


def espresso_truth_table(column: np.ndarray, n_vars: int, *,
                         timeout: float = DEFAULT_TIMEOUT) -> list[Term]:
    """Minimal DNF of a full truth table (rows in :func:`approximation.vertices` order)."""
    column = np.asarray(column, dtype=bool)
    if column.shape != (2 ** n_vars,):
        raise ExtractionError(f"truth table needs {2 ** n_vars} rows, got {column.shape}")
    if column.all():
        return [()]
    if not column.any():
        return []
    from pyeda.boolalg.espresso import FTYPE, RTYPE

    idx = np.arange(2 ** n_vars)
    bits = ((idx[:, None] >> np.arange(n_vars - 1, -1, -1)) & 1).astype(bool)
    cover = {(tuple(_PC_ONE if x else _PC_ZERO for x in row), (1,) if v else (0,))
             for row, v in zip(bits, column)}
    result = _run(n_vars, cover, FTYPE | RTYPE, timeout)
    if result is None:
        raise ExtractionError(f"espresso on the {n_vars}-variable truth table took over {timeout:g} s")
    return result


def _fallback(terms: list[Term], why: str) -> Minimized:
    warnings.warn(f"minimisation skipped, unminimised DNF kept: {why}", stacklevel=3)
    return Minimized(sorted(terms, key=lambda t: (len(t), t)), "none", why, len(terms),
                     len(terms))


def _dnf_value(terms: Sequence[Term], X: np.ndarray) -> np.ndarray:
    out = np.zeros(len(X), bool)
    for t in terms:
        cover = np.ones(len(X), bool)
        for v, p in t:
            cover &= X[:, v] if p else ~X[:, v]
        out |= cover
    return out


def dnf_value(terms: Sequence[Term], X: np.ndarray) -> np.ndarray:
    """Evaluate a DNF given as index terms on the rows of a bool matrix."""
    return _dnf_value(terms, np.asarray(X, dtype=bool))


def minimize_ruleset(rules: RuleSet, *, codes: np.ndarray | None = None,
                     timeout: float = DEFAULT_TIMEOUT) -> tuple[RuleSet, dict]:
    """Minimise every head's conjunctions; M-of-N rules are left as they are.

    With ``codes``, minimisation is ``on-codes`` (don't-cares off the observed codes);
    otherwise ``exact``.  Returns the new rule set (same head order, rules grouped per
    head in the input's rank order of heads' first rules) and a report per head.
    """
    index = {name: i for i, name in enumerate(rules.variable_names)}
    names = rules.variable_names
    n = len(names)
    groups = []
    for head in rules.head_names:
        own = [r for r in rules.rules if r.head == head]
        terms = [tuple((index[l.var], l.positive) for l in r.body) for r in own
                 if r.is_conjunction]
        groups.append((head, terms, [r for r in own if not r.is_conjunction]))
    kind = "on-codes" if codes is not None else "exact"
    arg = codes if codes is not None else n
    results = _minimize_many([(terms, arg) for _, terms, _ in groups], kind, timeout,
                             DEFAULT_MAX_CUBES)
    report: dict[str, dict] = {}
    new_rules: list[Rule] = []
    for (head, _, other), res in zip(groups, results):
        report[head] = {"kind": res.kind, "before": res.before, "after": res.after,
                        "note": res.note}
        new_rules.extend(Rule(head, tuple(Literal(names[v], p) for v, p in t)) for t in res.terms)
        new_rules.extend(other)
    return rules.replace(rules=tuple(new_rules)), report
