"""M-of-N extraction: planted rules, the DNF expansion, the complexity formula, the sweep."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn2logic.errors import ExtractionError, NotFittedError
from cnn2logic.extract.approximation import vertices
from cnn2logic.extract.mofn import MofNExtractor, complexity, mofn_value
from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable


def dnf_expansion(rule: Rule) -> list[Rule]:
    """``M``-of-``N`` as the disjunction of every conjunction of ``M`` of its literals."""
    return [Rule(rule.head, combo) for combo in itertools.combinations(rule.body, rule.threshold)]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 7).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.integers(1, n),
    st.integers(0, 2))))
def test_mofn_rule_equals_its_dnf_expansion_on_every_vertex(case):
    n_body, polarity, m, extra = case
    n = n_body + extra  # variables the rule does not read must not matter
    variables = tuple(Variable(f"k{j + 1}") for j in range(n))
    body = tuple(Literal(f"k{j + 1}", p) for j, p in enumerate(polarity))
    rule = Rule("a", body, m)
    mofn = RuleSet(variables, (Head("a"), Head("b")), (rule,), default="b")
    dnf = RuleSet(variables, (Head("a"), Head("b")), tuple(dnf_expansion(rule)), default="b")
    V = vertices(n)
    assert (mofn.fires(V) == dnf.fires(V)).all()
    assert (mofn.predict(V) == dnf.predict(V)).all()
    # and the brute-force count agrees with both
    lits = [(j, p) for j, p in enumerate(polarity)]
    assert (mofn.fires(V)[:, 0] == mofn_value(V, lits, m)).all()


def test_complexity_formula():
    # n = 4: M* = ceil(5/2) = 3, normaliser log(3 * C(4, 3)) = log 12.
    assert complexity(4, 1, 1) == 0.0
    assert complexity(4, 2, 1) == pytest.approx(math.log(2) / math.log(12))
    assert complexity(4, 3, 2) == pytest.approx(math.log(2 * 3) / math.log(12))
    assert complexity(4, 3, 3) == pytest.approx(math.log(3) / math.log(12))
    assert complexity(4, 4, 3) == pytest.approx(1.0)  # M* of all n is the reference
    assert complexity(1, 1, 1) == 0.0
    with pytest.raises(ExtractionError):
        complexity(4, 2, 3)


def planted(rng, n_samples=3000, n=8, noise=0.15):
    """Real-valued units; the target is 2-of-(x1, ¬x2, x3) on their bits at 0.6."""
    U = rng.random((n_samples, n))
    bits = U >= 0.6
    y = ((bits[:, 0].astype(int) + (~bits[:, 1]) + bits[:, 2]) >= 2).astype(int)
    # Weights: the planted inputs have the largest |w| with the planted signs.
    W = np.zeros((2, n))
    W[1] = [3.0, -2.5, 2.0] + list(noise * rng.standard_normal(n - 3))
    W[0] = -W[1]
    return U, W, y


def test_planted_mofn_rule_is_recovered_with_info_gain_splits():
    rng = np.random.default_rng(5)
    U, W, y = planted(rng)
    ext = MofNExtractor(beta=0.0).fit(U, y, output=(W, None))
    # the information-gain split finds the planted threshold of each planted input
    assert ext.splits_[:3] == pytest.approx([0.6, 0.6, 0.6], abs=0.01)
    c1 = ext.rules_.rules_for("c1")[0]
    assert c1 == Rule("c1", (Literal("k1"), Literal("k2", False), Literal("k3")), 2)
    assert ext.chosen_["c1"] == {"N": 3, "M": 2, "error": 0.0,
                                 "complexity": pytest.approx(complexity(8, 3, 2))}
    # the class-0 unit is the complement: 2-of(¬k1, k2, ¬k3)
    c0 = ext.rules_.rules_for("c0")[0]
    assert c0 == Rule("c0", (Literal("k1", False), Literal("k2"), Literal("k3", False)), 2)
    X = ext.transform(U)
    assert (ext.rules_.predict_index(X) == y).all()


def test_errors_table_matches_brute_force():
    rng = np.random.default_rng(1)
    U, W, y = planted(rng, n_samples=500, n=6, noise=1.0)
    ext = MofNExtractor(beta=0.0).fit(U, y, output=(W, None))
    X = ext.transform(U)
    for c in range(2):
        order = ext.order_[c]
        for N in range(1, 7):
            lits = [(int(j), bool(W[c, j] > 0)) for j in order[:N]]
            for M in range(1, N + 1):
                err = np.mean(mofn_value(X, lits, M) != (y == c))
                assert ext.errors_[c, N - 1, M - 1] == pytest.approx(err)
                assert ext.rule_for(c, N, M).threshold == M
            assert np.isnan(ext.errors_[c, N - 1, N:]).all()


def test_beta_sweep_traces_a_monotone_complexity_error_curve():
    rng = np.random.default_rng(2)
    U, W, y = planted(rng, n_samples=800, n=10, noise=1.0)
    y = np.where(rng.random(len(y)) < 0.1, 1 - y, y)  # label noise: no rule is perfect
    ext = MofNExtractor(beta=0.01).fit(U, y, output=(W, None))
    betas = [p["beta"] for p in ext.curve_]
    assert betas == sorted(betas) and 0.01 in betas
    errs = [p["mean_error"] for p in ext.curve_]
    cxs = [p["mean_complexity"] for p in ext.curve_]
    # a larger complexity weight never buys a more complex rule or a smaller error
    assert all(a >= b - 1e-12 for a, b in zip(cxs, cxs[1:]))
    assert all(a <= b + 1e-12 for a, b in zip(errs, errs[1:]))
    assert cxs[-1] < cxs[0]  # beta = 1 chooses simpler rules than beta = 0
    chosen = ext.curve_[betas.index(0.01)]["rules"]
    assert [[ext.chosen_[h]["N"], ext.chosen_[h]["M"]] for h in ("c0", "c1")] == chosen


def test_best_rule_with_few_inputs():
    rng = np.random.default_rng(3)
    U, W, y = planted(rng, n_samples=600)
    ext = MofNExtractor().fit(U, y, output=(W, None))
    N, M, err = ext.best_rule("c1", 3)
    assert (N, M, err) == (3, 2, 0.0)
    N1, M1, err1 = ext.best_rule(1, 1)
    assert (N1, M1) == (1, 1) and err1 > 0


def test_internal_layer_targets_and_kernel_heads():
    rng = np.random.default_rng(4)
    X = rng.random((600, 5)) < 0.5
    T = np.stack([X[:, 0] & X[:, 1], X[:, 2] | X[:, 3]], axis=1)  # 2-of-2 and 1-of-2
    W = np.array([[2.0, 2.0, 0.1, 0.1, 0.0], [0.1, 0.0, 2.0, 2.0, 0.1]])
    heads = (Head("h1", "kernel", "hidden", 0), Head("h2", "kernel", "hidden", 1))
    ext = MofNExtractor(beta=0.0).fit(X, T, output=(W, None), heads=heads)
    assert str(ext.rules_.rules_for("h1")[0]) == "h1 ← k1 ∧ k2"
    assert str(ext.rules_.rules_for("h2")[0]) == "h2 ← 1-of(k3, k4)"
    assert (ext.rules_.fires(X) == T).all()


def test_bad_settings_and_inputs():
    with pytest.raises(ExtractionError):
        MofNExtractor(beta=-1)
    with pytest.raises(ExtractionError):
        MofNExtractor(max_n=0)
    with pytest.raises(ExtractionError):
        MofNExtractor(betas=[float("nan")])
    ext = MofNExtractor()
    with pytest.raises(NotFittedError):
        ext.rules
    with pytest.raises(NotFittedError):
        ext.transform(np.zeros((2, 2)))
    with pytest.raises(ExtractionError, match="weight"):
        ext.fit(np.zeros((4, 3)), np.array([0, 1, 0, 1]), output=(np.zeros((2, 2)), None))
    with pytest.raises(ExtractionError, match="class"):
        ext.fit(np.zeros((4, 2)), np.array([0, 1, 2, 1]), output=(np.zeros((2, 2)), None))


def test_pipeline_mofn_reports_the_common_metrics(meth_extractions):
    r = meth_extractions["mofn"]
    ref = meth_extractions["approximation"]
    assert r.rules.meta["method"] == "mofn"
    for key in ("rule_accuracy", "fidelity", "coverage", "terms", "mean_literals",
                "ceiling_lookup", "binarized_network_accuracy", "unminimized"):
        assert key in r.metrics and key in ref.metrics
    assert len(r.rules.meta["mofn"]["curve"]) >= 2
    assert r.metrics["fidelity"] > 0.5
    assert r.rules.meta["thresholds"]["method"] == "info-gain"
    assert len(r.rules.rules) == 10  # one rule per class


def test_cli_method_flags_and_byte_identical_output(core_paper1, tmp_path, capsys):
    from cnn2logic.cli import main
    from cnn2logic.model.spec import save_checkpoint
    from cnn2logic.rules import load_rules

    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(core_paper1[0], ckpt)
    for out in ("a", "b"):
        assert main(["extract", str(ckpt), "--out", str(tmp_path / out), "--no-progress",
                     "--method", "mofn", "--beta", "0.05", "--max-n", "6",
                     "--test-size", "300"]) == 0
    assert (tmp_path / "a" / "rules.json").read_bytes() == \
        (tmp_path / "b" / "rules.json").read_bytes()
    rules = load_rules(tmp_path / "a" / "rules.json")
    assert rules.meta["method"] == "mofn"
    assert rules.meta["settings"]["beta"] == 0.05
    assert max(len(r.body) for r in rules.rules) <= 6
    assert "M-of-N rules chosen at beta=0.05" in capsys.readouterr().out
    assert main(["extract", str(ckpt), "--out", str(tmp_path / "c"), "--no-progress",
                 "--method", "mofn", "--beta", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "beta" in err[0]
