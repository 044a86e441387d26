"""``conflicts``' contradictions on the data, computed in Python (``query.ondata``), equal a
brute-force evaluation of the rules on every image and the clingo route they replace.

The Python route exists for speed only (clingo spent 22 of 24 s grounding the pattern facts
of 10,000 images x 512 kernels), so every answer must be the one the ASP program gives.
"""

from __future__ import annotations

import dataclasses
from itertools import combinations

import numpy as np
import pytest

from cnn2logic import query
from cnn2logic.query import Program, ondata, questions
from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
from cnn2logic.units import BinaryCodes

CLASSES = ("0", "1", "cat-dog", "Zeta", "9")


def random_case(seed: int) -> tuple[RuleSet, BinaryCodes]:
    """Conjunctions, M-of-N (including 0-of and empty bodies), repeated activations."""
    rng = np.random.default_rng(seed)
    nk = 12
    var = tuple(Variable(f"k{i}", "conv", i) for i in range(nk))
    rules = []
    for r in range(14):
        ks = rng.choice(nk, size=int(rng.integers(2, 7)), replace=False)
        body = tuple(Literal(f"k{k}", bool(rng.random() < 0.6)) for k in ks)
        min_true = None if rng.random() < 0.4 else int(rng.integers(2, len(body) + 1))
        if seed >= 2 and r == 13:  # a rule that always fires: 0-of-N, or the empty body
            body, min_true = (body, 0) if seed == 3 else ((), None)
        rules.append(Rule(CLASSES[int(rng.integers(len(CLASSES) - 1))], body,
                          min_true=min_true))
    rs = RuleSet(variables=var, heads=tuple(Head(c, "class", "out", i)
                                            for i, c in enumerate(CLASSES)),
                 rules=tuple(rules), default="9")
    base = rng.random((40, nk)) < 0.5
    bits = base[rng.integers(0, 40, 300)]  # 300 images, at most 40 patterns
    labels = rng.integers(0, len(CLASSES), 300)
    codes = BinaryCodes(bits, var, CLASSES, labels, labels,
                        tuple(f"img{i}" for i in range(300)))
    return rs, codes


def brute_force(rs: RuleSet, codes: BinaryCodes) -> dict:
    """{class pair: (images, first image)} where rules of both classes fire."""
    col = {v.name: j for j, v in enumerate(codes.variables)}
    out: dict = {}
    for i, row in enumerate(codes.bits):
        fired = set()
        for rule in rs.rules:
            held = sum(bool(row[col[lit.var]]) == lit.positive for lit in rule.body)
            if held >= rule.threshold:
                fired.add(rule.head)
        for pair in combinations(sorted(fired), 2):
            n, first = out.get(frozenset(pair), (0, codes.ids[i]))
            out[frozenset(pair)] = (n + 1, first)
    return out


def via_clingo(prog, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(questions, "data_conflicts", lambda p: None)
        return query.conflicts(prog, limit=0)


def same(a, b) -> bool:
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    da.pop("seconds"), db.pop("seconds")
    return da == db


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_on_data_equals_brute_force_and_clingo(seed, monkeypatch):
    rs, codes = random_case(seed)
    prog = Program.from_rules(rs, codes)
    assert ondata.data_conflicts(prog) is not None  # the Python route is taken
    fast = query.conflicts(prog, limit=0)
    got = {frozenset(o["classes"]): (o["images"], o["example"]) for o in fast.on_data}
    assert got == brute_force(rs, codes)
    assert got and len(got) == len(fast.on_data) and fast.has_data
    assert same(fast, via_clingo(prog, monkeypatch))


def test_small_program_agrees(lp_small, monkeypatch):
    prog = Program.from_rules(*lp_small)
    assert ondata.data_conflicts(prog) is not None
    fast = query.conflicts(prog, limit=0)
    assert fast.on_data and same(fast, via_clingo(prog, monkeypatch))
    assert {frozenset(o["classes"]): (o["images"], o["example"]) for o in fast.on_data} \
        == brute_force(*lp_small)


def test_other_shapes_fall_back_to_clingo(lp_small, monkeypatch):
    rules, codes = lp_small
    text = Program.from_rules(rules, codes).text
    # A hand-written class rule the exporter would not write: clingo decides.
    edited = Program(text.replace("% ---- semantics",
                                  "fires(I, 3) :- evaluate(I), active(I, k_k1).\n"
                                  "% ---- semantics"))
    assert edited.layered and ondata.data_conflicts(edited) is None
    assert same(query.conflicts(edited, limit=0), via_clingo(edited, monkeypatch))
    # Chained layers (derived kernels) and programs without data or layout.
    chained = RuleSet(
        variables=(Variable("k1", "conv", 0), Variable("k2", "conv", 1),
                   Variable("h", "fc", 0)),
        heads=(Head("h", "kernel", "fc", 0), Head("a", "class", "out", 0),
               Head("b", "class", "out", 1)),
        rules=(Rule("h", (Literal("k1"), Literal("k2", False))), Rule("a", (Literal("h"),)),
               Rule("b", (Literal("k2"),))),
        default="b")
    bits = np.array([[1, 0], [1, 1], [0, 1]], dtype=bool)
    var = chained.variables[:2]
    ccodes = BinaryCodes(bits, var, ("a", "b"), np.array([0, 1, 1]), np.array([0, 1, 1]),
                         ("x", "y", "z"))
    cprog = Program.from_rules(chained, ccodes)
    assert ondata.data_conflicts(cprog) is None
    assert ondata.data_conflicts(Program.from_rules(rules)) is None
    assert ondata.data_conflicts(Program(text.replace("% ---- ", "% "))) is None
