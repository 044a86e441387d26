"""The compact rule list (cnn2logic.extract.rulelist) and the fidelity thresholds.

Small hand-made cases only: planted decision lists are recovered (same prediction on every
code), the budget holds, fits are deterministic, the RuleSet's predictions equal a
brute-force walk down the list, and the exported ASP program run in clingo answers what
Python answers.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnn2logic.errors import ActivationError, ExtractionError, NotFittedError
from cnn2logic.extract.rulelist import RuleListExtractor
from cnn2logic.units.fidelity import fit_fidelity_thresholds, infogain_split
from cnn2logic.rules import RuleSet
from cnn2logic.units import BinaryCodes

from .test_extractor_contract import clingo_predictions


def all_codes(k: int) -> np.ndarray:
    return np.array(list(itertools.product((0, 1), repeat=k)), dtype=bool)


def planted(X: np.ndarray) -> np.ndarray:
    """A decision list: a conjunction, a 2-of-3 rule, a conjunction with a negation.

    The first rule is an exception to the second (codes where both hold answer ``c0``).
    """
    y = np.full(len(X), 3)                                # default c3
    third = ~X[:, 5] & X[:, 6]                            # c2 <- ¬k6 ∧ k7
    second = X[:, [2, 3, 4]].sum(axis=1) >= 2             # c1 <- 2-of(k3, k4, k5)
    first = X[:, 0] & X[:, 1]                             # c0 <- k1 ∧ k2
    y[third] = 2
    y[second] = 1
    y[first] = 0
    return y


def brute_force(rs: RuleSet, X: np.ndarray) -> list:
    """Walk the list rule by rule for every row."""
    index = {v: j for j, v in enumerate(rs.variable_names)}
    out = []
    for row in X:
        answer = rs.default
        for rule in rs.rules:
            true = sum(bool(row[index[lit.var]]) == lit.positive for lit in rule.body)
            if true >= rule.threshold:
                answer = rule.head
                break
        out.append(answer)
    return out


@pytest.fixture(scope="module")
def fitted():
    X = all_codes(8)
    rng = np.random.default_rng(0)
    weights = rng.integers(1, 20, len(X)).astype(float)  # distinct codes with counts
    y = planted(X)
    ext = RuleListExtractor(max_rules=6).fit(X, y, sample_weight=weights,
                                             heads=["a", "b", "c", "d"])
    return X, y, weights, ext


def test_recovers_planted_list(fitted):
    X, y, _, ext = fitted
    assert (ext.predict(X) == y).all()
    assert len(ext.rules_.rules) <= 3  # the planted list has three rules and a default
    assert ext.curve_[-1]["train_fidelity"] == 1.0


def test_recovers_planted_conjunctions_exactly():
    X = all_codes(5)
    y = np.where(X[:, 0] & X[:, 1], 0, np.where(X[:, 2] & ~X[:, 3], 1, 2))
    rs = RuleListExtractor(max_rules=4, max_n=0).fit(X, y).rules_
    assert [r.format() for r in rs.rules] == ["k1 ∧ k2", "k3 ∧ ¬k4"]
    assert [r.head for r in rs.rules] == ["c0", "c1"] and rs.default == "c2"


def test_budget_is_respected():
    rng = np.random.default_rng(1)
    X = rng.random((3000, 12)) < 0.5
    y = (X[:, :6].astype(int) @ np.arange(1, 7) + rng.integers(0, 3, 3000)) % 5
    for rules, literals in ((3, 100), (30, 12), (5, 5)):
        ext = RuleListExtractor(max_rules=rules, max_literals=literals).fit(X, y)
        assert len(ext.rules_.rules) <= rules
        assert sum(len(r.body) for r in ext.rules_.rules) <= literals
        sizes = [(p["rules"], p["literals"]) for p in ext.curve_]
        assert sizes[0] == (0, 0) and sizes[-1][0] == len(ext.rules_.rules)
        fid = [p["train_fidelity"] for p in ext.curve_]
        assert fid[-1] == max(fid) or fid[-1] >= fid[0]


def test_one_cap_on_the_longest_rule():
    # class 1 when at least 9 of 16 bits are on: the default list reads it with one long
    # M-of-N rule; capped at 5 literals, every rule (conjunction or M-of-N) stays short
    rng = np.random.default_rng(2)
    X = rng.random((4000, 16)) < 0.5
    y = (X.sum(axis=1) >= 9).astype(int)
    free = RuleListExtractor().fit(X, y).rules_
    assert max(len(r.body) for r in free.rules) > 5
    assert "max_rule_literals" not in free.meta["rulelist"]  # older files unchanged
    capped = RuleListExtractor(max_rule_literals=5).fit(X, y).rules_
    assert capped.rules and max(len(r.body) for r in capped.rules) <= 5
    assert capped.meta["rulelist"]["max_rule_literals"] == 5
    with pytest.raises(ExtractionError, match="max_rule_literals"):
        RuleListExtractor(max_rule_literals=0)


def test_deterministic(fitted):
    X, y, weights, ext = fitted
    again = RuleListExtractor(max_rules=6).fit(X, y, sample_weight=weights,
                                               heads=["a", "b", "c", "d"])
    assert again.rules_.to_json() == ext.rules_.to_json()


def test_predictions_equal_brute_force():
    rng = np.random.default_rng(2)
    X = rng.random((2000, 9)) < 0.4
    y = (X[:, 0] * 2 + X[:, 3] + (X[:, 5] & X[:, 7]) * 3) % 4
    rs = RuleListExtractor(max_rules=8, max_literals=40).fit(X, y).rules_
    assert any(not r.is_conjunction for r in rs.rules) or len(rs.rules) > 0
    Xt = all_codes(9)
    assert list(rs.predict(Xt)) == brute_force(rs, Xt)


def test_asp_export_agrees_with_python(fitted):
    X, _, _, ext = fitted
    rs = ext.rules_
    ids = tuple(f"img{i}" for i in range(len(X)))
    codes = BinaryCodes(X, rs.variables, rs.head_names, ids=ids)
    asp = clingo_predictions(rs, codes)
    python = dict(zip(ids, (str(p) for p in rs.predict(X))))
    # images where only the default answers may carry no prediction atom in ASP; every
    # image with one must agree, and the defaults must be the default class
    assert all(asp.get(i, rs.default) == python[i] for i in ids)
    assert any(not r.is_conjunction for r in rs.rules)  # the 2-of-3 rule went through too


def test_bad_input_and_unfitted():
    with pytest.raises(ExtractionError):
        RuleListExtractor(max_rules=0)
    with pytest.raises(ExtractionError):
        RuleListExtractor(alphas=())
    with pytest.raises(ExtractionError):
        RuleListExtractor().fit(np.array([[0, 2]]), np.array([0]))
    with pytest.raises(ExtractionError):
        RuleListExtractor().fit(np.zeros((2, 2), bool), np.array([0, 1]), sample_weight=np.array([1, -1]))
    with pytest.raises(NotFittedError):
        RuleListExtractor().predict(np.zeros((1, 2), bool))


# -- fidelity thresholds ------------------------------------------------------------------
def test_infogain_split_known_best():
    # class 1 exactly when the value is >= 5 on an unbounded scale: the best split lies
    # between 4 and 5, with the full entropy as gain
    values = np.array([-3.0, 0.0, 2.0, 4.0, 5.0, 9.0, 30.0, 100.0])
    target = (values >= 5).astype(int)
    split, gain = infogain_split(values, target, 2, candidates=64)
    assert 4.0 < split <= 5.0
    assert gain == pytest.approx(np.log(2))
    th = fit_fidelity_thresholds(values[:, None], target, candidates=64)
    assert (th.apply(values[:, None])[:, 0] == target.astype(bool)).all()


def test_lookup_thresholds_improve_the_joint_code():
    # three classes from two units: 0 below 7 on the first, else 1 or 2 by the second at
    # 3; the joint lookup search must find both cuts (the lookup table is then exact)
    rng = np.random.default_rng(3)
    U = rng.random((4000, 2)) * 10
    target = np.where(U[:, 0] < 7, 0, np.where(U[:, 1] >= 3, 1, 2))
    gain = fit_fidelity_thresholds(U, target, "infogain", candidates=20)
    th = fit_fidelity_thresholds(U, target, "lookup", candidates=20)
    assert th.method == "lookup" and th.params["train_lookup_fidelity"] > 0.97
    bits = th.apply(U)
    assert (bits[:, 0] == (U[:, 0] >= 7)).mean() > 0.97
    assert (bits[:, 1] == (U[:, 1] >= 3)).mean() > 0.97
    assert gain.method == "infogain"
    wide = fit_fidelity_thresholds(np.tile(U, (1, 9)), target, "lookup", candidates=8)
    assert wide.method == "infogain" and "lookup_skipped" in wide.params


def test_thresholds_bad_input():
    with pytest.raises(ActivationError):
        fit_fidelity_thresholds(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(ActivationError):
        fit_fidelity_thresholds(np.zeros((2, 2)), np.array([0, 1]), "nope")
    with pytest.raises(ActivationError):
        fit_fidelity_thresholds(np.array([[np.nan]]), np.array([0]))
