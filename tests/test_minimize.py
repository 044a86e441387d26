"""espresso minimisation is checked for logical equivalence by brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn2logic.extract.approximation import vertices
from cnn2logic.minimize import (dnf_value, espresso_truth_table, minimize_on_codes,
                                minimize_ruleset, minimize_terms)
from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable


@st.composite
def dnfs(draw, max_n=9):
    n = draw(st.integers(1, max_n))
    terms = []
    for _ in range(draw(st.integers(0, 12))):
        vars_ = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
        terms.append(tuple(sorted((v, draw(st.booleans())) for v in vars_)))
    return n, terms


@settings(max_examples=80, deadline=None)
@given(dnfs())
def test_exact_minimisation_is_equivalent(dnf):
    n, terms = dnf
    V = vertices(n)
    res = minimize_terms(terms, n)
    assert res.kind == "exact"
    assert (dnf_value(res.terms, V) == dnf_value(terms, V)).all()
    assert len(res.terms) <= max(len(set(terms)), 1)


@settings(max_examples=40, deadline=None)
@given(dnfs(max_n=8), st.integers(0, 2**31 - 1))
def test_on_codes_minimisation_agrees_on_observed_codes(dnf, seed):
    n, terms = dnf
    rng = np.random.default_rng(seed)
    codes = rng.random((rng.integers(1, 40), n)) < 0.5
    res = minimize_on_codes(terms, codes)
    assert res.kind == "on-codes"
    assert (dnf_value(res.terms, codes) == dnf_value(terms, codes)).all()


def test_truth_table_espresso_reproduces_the_table():
    rng = np.random.default_rng(0)
    for n in (3, 6, 9):
        column = rng.random(2 ** n) < 0.4
        terms = espresso_truth_table(column, n)
        assert (dnf_value(terms, vertices(n)) == column).all()


def test_known_simplification():
    # x0 x1 + x0 ¬x1 + ¬x0 x1  ==  x0 + x1
    res = minimize_terms([((0, True), (1, True)), ((0, True), (1, False)),
                          ((0, False), (1, True))], 2)
    assert sorted(res.terms) == [((0, True),), ((1, True),)]


def test_size_cap_falls_back_with_a_warning():
    terms = [((0, True), (1, True)), ((0, True), (1, False))]
    with pytest.warns(UserWarning, match="unminimised"):
        res = minimize_terms(terms, 2, max_cubes=1)
    assert res.kind == "none" and sorted(res.terms) == sorted(terms)


def test_minimize_ruleset_keeps_mofn_rules_and_meaning():
    vs = tuple(Variable(f"k{i}") for i in range(1, 5))
    rules = RuleSet(vs, (Head("a"), Head("b")), (
        Rule("a", (Literal("k1"), Literal("k2"))),
        Rule("a", (Literal("k1"), Literal("k2", False))),
        Rule("b", (Literal("k3"), Literal("k4"), Literal("k1")), min_true=2),
    ), default="a")
    small, report = minimize_ruleset(rules)
    assert [str(r) for r in small.rules_for("a")] == ["a ← k1"]
    assert small.rules_for("b") == rules.rules_for("b")
    assert report["a"] == {"kind": "exact", "before": 2, "after": 1, "note": ""}
    V = vertices(4)
    assert (small.fires(V) == rules.fires(V)).all()
