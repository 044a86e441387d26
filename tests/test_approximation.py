"""The approximation method against brute force over the whole Boolean cube."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn2logic.errors import ExtractionError
from cnn2logic.extract.approximation import (ApproximationExtractor, class_conditions,
                                             naive_terms, pruned_terms, truth_table, vertices)
from cnn2logic.minimize import dnf_value

# Weights on a grid of eighths are exact in binary floating point, so every summation
# order gives the same value and ties (z exactly 0) are decided the same way everywhere.
eighths = st.integers(-24, 24).map(lambda v: v / 8)


@st.composite
def layers(draw, max_n=10, max_c=4):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(2, max_c))
    W = np.array(draw(st.lists(eighths, min_size=c * n, max_size=c * n))).reshape(c, n)
    b = np.array(draw(st.lists(eighths, min_size=c, max_size=c)))
    return W, b


def term_mask(term, X):
    mask = np.ones(len(X), bool)
    for v, p in term:
        mask &= X[:, v] if p else ~X[:, v]
    return mask


@settings(max_examples=60, deadline=None)
@given(layers(), st.sampled_from(["argmax", "per-logit"]), st.integers(1, 4))
def test_every_term_is_a_true_prime_implicant(layer, mode, order):
    W, b = layer
    n = W.shape[1]
    V = vertices(n)
    table = truth_table(W, b, mode)
    ext = ApproximationExtractor(order=order, mode=mode).fit(output=(W, b))
    for c in range(W.shape[0]):
        for term in ext.terms_[f"c{c}"]:
            assert len(term) <= order
            covered = term_mask(term, V)
            assert table[covered, c].all(), f"{term} is not an implicant of class {c}"
            for i in range(len(term)):  # prime: no literal can be dropped
                shorter = term[:i] + term[i + 1:]
                assert not table[term_mask(shorter, V), c].all()


@settings(max_examples=40, deadline=None)
@given(layers(max_n=9), st.sampled_from(["argmax", "per-logit"]))
def test_full_order_dnf_equals_truth_table(layer, mode):
    W, b = layer
    n = W.shape[1]
    V = vertices(n)
    table = truth_table(W, b, mode)
    ext = ApproximationExtractor(order=n, mode=mode).fit(output=(W, b))
    for c in range(W.shape[0]):
        assert (dnf_value(ext.terms_[f"c{c}"], V) == table[:, c]).all()


@settings(max_examples=40, deadline=None)
@given(layers(max_n=9), st.sampled_from(["argmax", "per-logit"]), st.integers(1, 3))
def test_pruned_and_naive_return_the_same_terms(layer, mode, order):
    W, b = layer
    pruned = ApproximationExtractor(order=order, mode=mode, search="pruned").fit(output=(W, b))
    naive = ApproximationExtractor(order=order, mode=mode, search="naive").fit(output=(W, b))
    assert pruned.terms_ == naive.terms_


@pytest.mark.parametrize("seed", range(3))
def test_random_real_weights_n12(seed):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(10, 12)), rng.normal(size=10)
    V = vertices(12)
    for mode in ("argmax", "per-logit"):
        table = truth_table(W, b, mode)
        ext = ApproximationExtractor(order=12, mode=mode).fit(output=(W, b))
        fires = ext.rules_.fires(V)
        assert (fires == table).all()
        if mode == "argmax":  # argmax-sound terms of two classes never fire together
            assert fires.sum(axis=1).max() <= 1


def test_truth_table_search_is_exact():
    rng = np.random.default_rng(7)
    W, b = rng.normal(size=(4, 8)), rng.normal(size=4)
    V = vertices(8)
    for mode in ("argmax", "per-logit"):
        ext = ApproximationExtractor(mode=mode, search="truth-table").fit(output=(W, b))
        assert (ext.rules_.fires(V) == truth_table(W, b, mode)).all()


def test_per_logit_uses_only_the_weight_polarity():
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(5, 10)), rng.normal(size=5) + 2
    ext = ApproximationExtractor(order=4, mode="per-logit").fit(output=(W, b))
    for c in range(5):
        for term in ext.terms_[f"c{c}"]:
            for v, positive in term:
                assert positive == (W[c, v] > 0)


def test_constant_true_and_false_units():
    W = np.array([[1.0, 1.0], [-1.0, -1.0]])
    b = np.array([5.0, -5.0])
    ext = ApproximationExtractor(order=2, mode="per-logit").fit(output=(W, b))
    assert ext.terms_ == {"c0": [()], "c1": []}
    rules = ext.rules_
    assert [r.format() for r in rules.rules_for("c0")] == ["⊤"]
    assert rules.rules_for("c1") == ()


def test_hand_computed_conditions():
    # z0 = 2 x1 - 3 x2 + 1 ; per-logit: z0 >= 0. Worst case base = 1 - 3 = -2.
    W = np.array([[2.0, -3.0], [0.0, 0.0]])
    b = np.array([1.0, 0.0])
    cond = class_conditions(W, b, 0, "per-logit")
    assert cond.base.tolist() == [-2.0]
    assert sorted(zip(cond.var.tolist(), cond.positive.tolist(), cond.gains[:, 0].tolist())) == [
        (0, True, 2.0), (1, False, 3.0)]
    # ¬x2 alone: 1 + 2*x1 >= 0 always -> prime; x1 alone: 3 - 3 = 0 >= 0 -> prime too.
    assert sorted(pruned_terms(cond, 2)) == [((0, True),), ((1, False),)]
    assert sorted(naive_terms(cond, 2)) == [((0, True),), ((1, False),)]


def test_data_limited_terms_hold_on_every_covered_code():
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    X = rng.random((400, 6)) < 0.5
    Z = X @ W.T + b
    y = Z.argmax(1)
    for mode in ("argmax", "per-logit"):
        ext = ApproximationExtractor(order=3, mode=mode, data_limited=True, min_support=2)
        ext.fit(X, y, output=(W, b))
        for c in range(3):
            ok = Z[:, c] >= 0 if mode == "per-logit" else y == c
            for term in ext.terms_[f"c{c}"]:
                cover = term_mask(term, X)
                assert cover.sum() >= 2
                assert ok[cover].all()
        # the data-limited variant is weaker than the cube: cube terms are kept or shortened
        cube = ApproximationExtractor(order=3, mode=mode).fit(output=(W, b))
        for c in range(3):
            for term in cube.terms_[f"c{c}"]:
                cover = term_mask(term, X)
                if cover.sum() >= 2:
                    assert any(set(t) <= set(term) for t in ext.terms_[f"c{c}"])


def test_rules_are_ranked_by_precision_then_support():
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(4, 8)), rng.normal(size=4)
    X = rng.random((500, 8)) < 0.5
    y = (X @ W.T + b).argmax(1)
    rules = ApproximationExtractor(order=8).fit(X, y, output=(W, b)).rules_
    keys = [(-r.stats["precision"], -r.stats["support"]) for r in rules.rules]
    assert keys == sorted(keys)


def test_max_terms_keeps_the_best_ranked():
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(3, 10)), rng.normal(size=3)
    X = rng.random((300, 10)) < 0.5
    y = (X @ W.T + b).argmax(1)
    full = ApproximationExtractor(order=10).fit(X, y, output=(W, b))
    capped = ApproximationExtractor(order=10, max_terms=2).fit(X, y, output=(W, b))
    for head in full.rules_.head_names:
        assert capped.rules_.rules_for(head) == full.rules_.rules_for(head)[:2]
    assert sum(capped.stats_["truncated"].values()) == len(full.rules_.rules) - len(
        capped.rules_.rules)


@pytest.mark.parametrize("kwargs, match", [
    ({"order": 0}, "order"), ({"mode": "softmax"}, "mode"), ({"search": "magic"}, "search"),
    ({"data_limited": True, "search": "truth-table"}, "data_limited"),
    ({"max_terms": 0}, "max_terms"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ExtractionError, match=match):
        ApproximationExtractor(**kwargs)


def test_bad_fit_arguments():
    with pytest.raises(ExtractionError, match="bias"):
        ApproximationExtractor().fit(output=(np.zeros((2, 3)), np.zeros(3)))
    with pytest.raises(ExtractionError, match="NaN"):
        ApproximationExtractor().fit(output=(np.full((2, 3), np.nan), np.zeros(2)))
    with pytest.raises(ExtractionError, match="needs the training codes"):
        ApproximationExtractor(data_limited=True).fit(output=(np.ones((2, 3)), np.zeros(2)))
    with pytest.raises(Exception, match="not binary"):
        ApproximationExtractor().fit(np.full((4, 3), 0.3), output=(np.ones((2, 3)), np.zeros(2)))


# Decimal weights (tenths) are not exact in binary floating point: sums that are exactly 0
# come out as ±1e-17 depending on order.  The reference here is exact rational arithmetic
# on the float64 values themselves, so it is the truth about the layer the extractor sees.
tenths = st.integers(-9, 9).map(lambda v: v / 10)


@st.composite
def decimal_layers(draw, max_n=7, max_c=3):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(2, max_c))
    W = np.array(draw(st.lists(tenths, min_size=c * n, max_size=c * n))).reshape(c, n)
    b = np.array(draw(st.lists(tenths, min_size=c, max_size=c)))
    return W, b


def exact_table(W, b, mode):
    from fractions import Fraction

    V = vertices(W.shape[1])
    Wf = [[Fraction(float(w)) for w in row] for row in W]
    bf = [Fraction(float(v)) for v in b]
    Z = [[bf[c] + sum(Wf[c][j] for j in np.flatnonzero(x)) for c in range(len(bf))] for x in V]
    if mode == "per-logit":
        return V, np.array([[z >= 0 for z in row] for row in Z])
    return V, np.array([[all(row[c] > row[k] for k in range(len(row)) if k != c)
                         for c in range(len(row))] for row in Z])


def test_exact_tie_is_not_an_implicant():
    """The issue's case: both logits are exactly 0 at the all-off vertex."""
    W, b = np.array([[0, 0, 0], [0.1, 0.4, 0.2]]), np.array([0.0, 0.0])
    for search in ("pruned", "naive", "truth-table"):
        ext = ApproximationExtractor(order=3, search=search).fit(output=(W, b))
        assert ext.terms_["c0"] == [], search


@settings(max_examples=150, deadline=None)
@given(decimal_layers(), st.sampled_from(["argmax", "per-logit"]), st.integers(1, 4),
       st.sampled_from(["pruned", "naive", "truth-table"]))
def test_decimal_weights_never_give_an_unsound_term(layer, mode, order, search):
    W, b = layer
    V, table = exact_table(W, b, mode)
    ext = ApproximationExtractor(order=order, mode=mode, search=search).fit(output=(W, b))
    for c in range(W.shape[0]):
        for term in ext.terms_[f"c{c}"]:
            assert table[term_mask(term, V), c].all(), f"{term} is unsound for class {c}"
