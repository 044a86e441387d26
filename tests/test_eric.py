"""ERIC-style extraction: quantisation, CART rules with negation, planted rules recovered."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnn2logic.errors import ActivationError, ExtractionError, NotFittedError
from cnn2logic.extract.approximation import vertices
from cnn2logic.extract.eric import EricExtractor
from cnn2logic.rules import Literal, Rule
from cnn2logic.units import capture


def planted_norms(rng, n_samples=2000, n=6):
    """Kernel norms around 1 (on) or 0 (off); classes: 2 <- k3, 1 <- k1 & ¬k3, else 0."""
    bits = rng.random((n_samples, n)) < 0.5
    norms = bits * 1.0 + 0.1 * rng.standard_normal((n_samples, n))
    y = np.where(bits[:, 2], 2, np.where(bits[:, 0], 1, 0))
    return norms, bits, y


def test_planted_rules_are_recovered_from_norms():
    rng = np.random.default_rng(0)
    norms, bits, y = planted_norms(rng)
    # alpha = 1, gamma = 0: the threshold is each kernel's mean norm (about 0.5)
    ext = EricExtractor(alpha=1.0, gamma=0.0).fit(norms, y)
    assert (ext.transform(norms) == bits).all()
    rules = {str(r) for r in ext.rules_.rules}
    # the class with the most literals (0: ¬k1 ∧ ¬k3) is the default and has no rule
    assert ext.rules_.default == "c0"
    assert rules == {"c2 ← k3", "c1 ← k1 ∧ ¬k3"}
    assert Rule("c1", (Literal("k1"), Literal("k3", False))) in ext.rules_.rules
    assert ext.stats_["train_agreement"] == 1.0


def test_rules_predict_exactly_what_the_tree_predicts_everywhere():
    rng = np.random.default_rng(1)
    X = rng.random((1500, 7)) < 0.4
    y = rng.integers(0, 4, len(X))  # no structure: a deep, irregular tree
    for drop in (True, False):
        ext = EricExtractor(max_depth=6, min_samples_leaf=3, drop_default=drop).fit(X, y)
        V = vertices(7)
        assert (ext.rules_.predict_index(V) == ext.predict_tree(V)).all()
        assert ext.stats_["depth"] <= 6
        # leaves are disjoint: at most one rule fires on any input
        assert (ext.rules_.rule_matrix(V).sum(axis=1) <= 1).all()


def test_default_thresholds_are_alpha_mean_plus_gamma_std():
    rng = np.random.default_rng(2)
    U = rng.random((500, 4)) * 3
    ext = EricExtractor().fit(U, rng.integers(0, 2, 500))
    expected = 0.6 * U.mean(axis=0) + 0.7 * U.std(axis=0)
    assert ext.thresholds_.values == pytest.approx(expected)
    assert (ext.transform(U) == (U >= expected)).all()


def test_deterministic():
    rng = np.random.default_rng(3)
    X = rng.random((800, 6)) < 0.5
    y = rng.integers(0, 3, len(X))
    a = EricExtractor(max_depth=5).fit(X, y).rules_.to_json()
    b = EricExtractor(max_depth=5).fit(X, y).rules_.to_json()
    assert a == b


def test_capture_norm_reductions_match_torch():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU())
    x = torch.randn(5, 1, 6, 6)
    with torch.no_grad():
        maps = net(x)
    l1 = capture(net, "1", x, reduce="l1", progress=False).values
    l2 = capture(net, "1", x, reduce="l2", progress=False).values
    assert l1 == pytest.approx(maps.abs().sum(dim=(2, 3)).numpy(), rel=1e-5)
    assert l2 == pytest.approx(maps.pow(2).sum(dim=(2, 3)).sqrt().numpy(), rel=1e-5)
    with pytest.raises(ActivationError):
        capture(net, "1", x, reduce="l3", progress=False)


def test_bad_settings():
    with pytest.raises(ExtractionError):
        EricExtractor(max_depth=0)
    with pytest.raises(ExtractionError):
        EricExtractor(criterion="chi2")
    with pytest.raises(ExtractionError):
        EricExtractor(alpha=float("inf"))
    with pytest.raises(NotFittedError):
        EricExtractor().rules
    with pytest.raises(ExtractionError):
        EricExtractor().fit(np.zeros((3, 2)), np.array([0, 1]))


def test_pipeline_eric(meth_extractions):
    r = meth_extractions["eric"]
    assert r.rules.meta["method"] == "eric"
    th = r.rules.meta["thresholds"]
    assert th["method"] == "eric" and th["params"]["norm"] == "l2"
    assert th["params"]["alpha"] == 0.6 and th["params"]["gamma"] == 0.7
    # with the tree's leaves as rules, the rules are exactly the tree on every code
    ext = r.extractor
    codes = r.test_codes.bits
    assert (r.unminimized.predict_index(codes) == ext.predict_tree(codes)).all()
    assert r.metrics["fidelity"] > 0.5
    assert any(not lit.positive for rule in r.rules.rules for lit in rule.body)
