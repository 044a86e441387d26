"""Contradictions on the data (``data_conflict/3``, ``data_example/3``) computed in Python.

``programs/conflicts.lp`` derives them by evaluating every class rule on every activation
pattern of the exported data.  On a large program that is slow for a reason that has
nothing to do with the rules: clingo must parse and ground every ``pattern_active/2`` fact
(about half of the kernels per pattern: 2.5 million facts, 84 MB, for 10,000 images of 512
kernels), which took 22 of the 24 s of the query.  Only the kernels the rules read matter,
and the rules are few, so :func:`data_conflicts` evaluates the exported rule lines on the
pattern lines directly (per pattern, a set of active kernels; per rule, its literals).

It reads the very ``fires(I, R) :- ...`` lines clingo would ground, not the ``pos/neg/need``
facts, and handles only the shapes the exporter writes (a conjunction, or ``#count { k :
lit; ... } >= M``).  Anything else (chained layers, hand-written rules, another layout)
returns None and the caller lets clingo do it, so the answers are those of the ASP program
either way; ``tests/test_query_ondata.py`` checks both routes agree.
"""

from __future__ import annotations

import re

import clingo

from .program import Program

_IDENT = r"[a-z][A-Za-z0-9_]*"
_FIRES = re.compile(r"^fires\(I, (\d+)\) :- evaluate\(I\)(.*)\.$", re.M)
_LIT = re.compile(rf"^(not )?active\(I, ({_IDENT})\)$")
_COUNT = re.compile(r"^#count \{ (.*) \} >= (\d+)$")
_RULE = re.compile(rf"^rule\((\d+), ({_IDENT})\)\.", re.M)
_SEP = re.compile(r"(?<=\)), ")
_CHAINED = re.compile(r"^(derives\(|derived\(I, |active\(I, )", re.M)
_PATTERN = re.compile(rf"^pattern\(p\((\d+)\), (\d+), ({_IDENT})\)$")


def _literals(text: str) -> list[tuple[str, bool]] | None:
    """``[(kernel, positive), ...]`` of ``active(I, k), not active(I, k2)``, or None."""
    out = []
    # Literals are separated by ", " which also occurs inside each one: split after ")".
    for part in _SEP.split(text) if text else []:
        m = _LIT.match(part)
        if m is None:
            return None
        out.append((m.group(2), m.group(1) is None))
    return out


def _rules(head: str) -> list[tuple[int, str, int | None, list[tuple[str, bool]]]] | None:
    """``(rank, class, need or None for a conjunction, literals)`` per class rule, or None."""
    if _CHAINED.search(head):
        return None  # chained layers: the rules read derived kernels; clingo does it
    classes = {int(r): c for r, c in _RULE.findall(head)}
    out = []
    for m in _FIRES.finditer(head):
        rank, body = int(m.group(1)), m.group(2)
        if body and not body.startswith(", "):
            return None
        body = body[2:]
        c = _COUNT.match(body)
        if c is None:
            lits, need = _literals(body), None
        else:
            need, lits = int(c.group(2)), []
            for element in c.group(1).split("; "):
                key, sep, lit = element.partition(" : ")
                one = _literals(lit) if sep else None
                if one is None or len(one) != 1 or one[0][0] != key:
                    return None
                lits += one
        if lits is None or rank not in classes:
            return None
        out.append((rank, classes.pop(rank), need, lits))
    if classes or len(re.findall(r"^fires\(", head, re.M)) != len(out):
        return None  # a class rule without its exporter line, or a fires rule of another shape
    return out


def _patterns(text: str):
    """Yield ``(n, count, first image, active kernels)`` per pattern line; None if malformed."""
    for line in text.splitlines():
        if not line.startswith("pattern("):
            if line and not line.startswith("%"):
                yield None
            continue
        facts = line.rstrip(".").split(". ")
        m = _PATTERN.match(facts[0])
        if m is None:
            yield None
            return
        prefix = f"pattern_active(p({m.group(1)}), "
        active = set()
        for f in facts[1:]:
            if not (f.startswith(prefix) and f.endswith(")")):
                yield None
                return
            active.add(f[len(prefix):-1])
        yield int(m.group(1)), int(m.group(2)), m.group(3), active


def data_conflicts(program: Program) -> list[tuple[str, str, int, str]] | None:
    """The program's ``data_conflict/3`` and ``data_example/3`` as conflicts.lp derives them.

    Parameters
    ----------
    program : Program
        An exported program with activation patterns.

    Returns
    -------
    list of (str, str, int, str) or None
        ``(c1, c2, images, first image)`` per pair of class identifiers (``c1 < c2`` in
        clingo's term order) whose rules both fire on some pattern, in that order; None when
        the program is not in the shape handled here (the caller then asks clingo).
    """
    if not program.layered or not program.pattern_text:
        return None
    rules = _rules(program.head_text)
    if rules is None:
        return None
    # The only kernels that matter; a pattern keeps just those (smaller sets, faster tests).
    used = {k for *_, lits in rules for k, _ in lits}
    compiled = []
    for _, cls, need, lits in rules:
        pos = frozenset(k for k, p in lits if p)
        neg = frozenset(k for k, p in lits if not p)
        # #count { k : lit } counts distinct kernels k whose literal holds.
        compiled.append((cls, need, pos, neg))
    sym = {c: clingo.parse_term(c) for c, *_ in compiled}
    found: dict[tuple[str, str], list[int | str]] = {}
    for item in _patterns(program.pattern_text):
        if item is None:
            return None
        n, count, first, active = item
        active &= used
        fired = set()
        for cls, need, pos, neg in compiled:
            if cls in fired:
                continue
            if need is None:
                ok = pos <= active and not (neg & active)
            else:
                # distinct kernels with a true literal: pos ones active, neg ones inactive
                ok = len((pos & active) | (neg - active)) >= need
            if ok:
                fired.add(cls)
        ordered = sorted(fired, key=lambda c: sym[c])
        for i, c1 in enumerate(ordered):
            for c2 in ordered[i + 1:]:
                entry = found.setdefault((c1, c2), [0, n, first])
                entry[0] += count
                if n < entry[1]:
                    entry[1:] = [n, first]
    return [(c1, c2, e[0], e[2]) for (c1, c2), e in
            sorted(found.items(), key=lambda kv: (sym[kv[0][0]], sym[kv[0][1]]))]
