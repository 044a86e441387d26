"""Multi-layer chaining: planted chains recovered, substitution exact, fidelity per depth."""

from __future__ import annotations

import numpy as np
import pytest

from cnn2logic.errors import ExtractionError, NotFittedError
from cnn2logic.extract.approximation import vertices
from cnn2logic.extract.chaining import ChainingExtractor, ChainLayer
from cnn2logic.extract.chaining import program_ruleset
from cnn2logic.extract.layers import default_chain
from cnn2logic.rules import Variable


def layer(name, bits, linear=None):
    return ChainLayer(name, bits, tuple(Variable(f"{name}.k{j + 1}", name, j)
                                        for j in range(bits.shape[1])), linear)


def planted_conv_chain(rng, n=2000):
    """Layer a (5 bits) -> layer b (3 kernels, planted functions) -> class."""
    A = rng.random((n, 5)) < 0.5
    B = np.stack([A[:, 0] & A[:, 1], A[:, 2] | ~A[:, 3], A[:, 4]], axis=1)
    y = np.where(B[:, 0] & ~B[:, 2], 2, np.where(B[:, 1], 1, 0))
    return A, B, y


def composed_truth(V):
    B = np.stack([V[:, 0] & V[:, 1], V[:, 2] | ~V[:, 3], V[:, 4]], axis=1)
    return np.where(B[:, 0] & ~B[:, 2], 2, np.where(B[:, 1], 1, 0))


def test_planted_tree_chain_is_recovered_and_composed_exactly():
    rng = np.random.default_rng(0)
    A, B, y = planted_conv_chain(rng)
    ext = ChainingExtractor(learner="tree").fit([layer("a", A), layer("b", B)], y)
    V = vertices(5)
    # each kernel of b is recovered exactly (as rules over a's kernels) ...
    assert (ext.layer_rules_[0].fires(V) == composed_truth_kernels(V)).all()
    assert ext.unit_fidelity_[0]["bit_agreement"] == 1.0
    # ... and the composed class rules over a's kernels are the planted composition
    assert (ext.rules_.predict_index(V) == composed_truth(V)).all()
    assert (ext.predict_chain(V) == composed_truth(V)).all()
    assert all(h.kind == "kernel" for h in ext.layer_rules_[0].heads)
    assert ext.stats_["compose"] == "truth-table"
    report = ext.depth_report([A, B], y, y)
    assert [d["fidelity"] for d in report] == [1.0, 1.0]
    assert [d["reads"] for d in report] == ["b", "a"]


def composed_truth_kernels(V):
    return np.stack([V[:, 0] & V[:, 1], V[:, 2] | ~V[:, 3], V[:, 4]], axis=1)


def test_hidden_layer_chain_by_substitution_equals_the_network_on_the_cube():
    """pool (6 bits) -> hidden (4 threshold units) -> softmax over 3 classes.

    With exact per-unit approximations (order = all inputs) and the output layer's truth
    table, the composed rules over the pool bits equal the binarised network on every
    one of the 64 vertices (where the arg-max is strict).
    """
    rng = np.random.default_rng(1)
    # weights on a grid of quarters: exact in floating point, ties decided identically
    W1 = rng.integers(-8, 9, (4, 6)) / 4
    b1 = rng.integers(-8, 9, 4) / 4 + 0.125  # never exactly 0 on the cube
    W2 = rng.integers(-8, 9, (3, 4)) / 4
    b2 = rng.integers(-8, 9, 3) / 4 + np.array([0.01, 0.02, 0.03])
    X = rng.random((1500, 6)) < 0.5
    H = X @ W1.T + b1 >= 0
    y = (H @ W2.T + b2).argmax(axis=1)
    ext = ChainingExtractor().fit([layer("pool", X), layer("hid", H, (W1, b1))], y,
                                  output=(W2, b2))
    assert ext.unit_fidelity_[0]["learner"] == "approximation"
    V = vertices(6)
    HV = V @ W1.T + b1 >= 0
    assert (ext.layer_rules_[0].fires(V) == HV).all()  # per-unit rules are exact
    Z = HV @ W2.T + b2
    expected = Z.argmax(axis=1)
    assert (ext.predict_chain(V) == expected).all()
    assert (ext.rules_.predict_index(V) == expected).all()  # substitution + espresso exact
    assert ext.rules_.rules and ext.rules_.default in ext.rules_.head_names


def test_program_keeps_the_layers_and_evaluates_like_the_chain():
    rng = np.random.default_rng(2)
    A, B, y = planted_conv_chain(rng, 800)
    ext = ChainingExtractor(learner="tree").fit([layer("a", A), layer("b", B)], y)
    prog = ext.program_
    kinds = {h.name: h.kind for h in prog.heads}
    assert kinds["b.k1"] == "kernel" and kinds["c0"] == "class"
    # class rules come first and read b's kernels; kernel rules read a's
    first_kernel = next(i for i, r in enumerate(prog.rules) if kinds[r.head] == "kernel")
    assert all(kinds[r.head] == "class" for r in prog.rules[:first_kernel])
    assert all(kinds[r.head] == "kernel" for r in prog.rules[first_kernel:])
    assert {lit.var[0] for r in prog.rules[:first_kernel] for lit in r.body} <= {"b"}


def test_on_codes_minimisation_and_codes_composition():
    rng = np.random.default_rng(3)
    A, B, y = planted_conv_chain(rng, 300)
    seen = np.unique(A, axis=0)
    for kwargs in ({"minimize": "on-codes"}, {"compose": "codes"}):
        ext = ChainingExtractor(learner="tree", **kwargs).fit([layer("a", A), layer("b", B)], y)
        # exact on the observed codes, which is all that is promised
        assert (ext.rules_.predict_index(seen) == composed_truth(seen)).all()
        assert all(v["kind"] == "on-codes" for v in ext.stats_["minimization"].values())


def test_bad_chains():
    rng = np.random.default_rng(4)
    A, B, y = planted_conv_chain(rng, 100)
    with pytest.raises(ExtractionError, match="unique"):
        ChainingExtractor().fit([layer("a", A), layer("a", B)], y)
    with pytest.raises(ExtractionError, match="linear"):
        ChainingExtractor(learner="approximation").fit([layer("a", A), layer("b", B)], y)
    with pytest.raises(ExtractionError, match="samples"):
        ChainingExtractor().fit([layer("a", A), layer("b", B[:50])], y)
    with pytest.raises(ExtractionError):
        ChainingExtractor(learner="magic")
    with pytest.raises(NotFittedError):
        ChainingExtractor().predict_chain(A)


def test_default_chain_names(core_paper1, meth_hidden_model):
    from cnn2logic.model.spec import build_model

    assert default_chain(build_model("paper3")) == ("act1", "act2", "pool")
    assert default_chain(meth_hidden_model) == ("pool", "hidden_act1")
    with pytest.raises(ExtractionError, match="nothing to chain"):
        default_chain(core_paper1[0])


def test_pipeline_chaining_on_a_hidden_layer_network(meth_extractions):
    r = meth_extractions["chaining"]
    meta = r.rules.meta["chaining"]
    assert meta["layers"] == ["pool", "hidden_act1"]
    assert meta["unit_fidelity"][0]["learner"] == "approximation"
    depth = meta["depth_test"]
    assert [d["depth"] for d in depth] == [0, 1]
    # the composed rules over pool bits predict what the chain predicts from them
    ext = r.extractor
    pool_test = r.test_codes.bits
    assert (r.rules.predict_index(pool_test) == ext.predict_chain(pool_test)).all()
    assert r.metrics["fidelity"] == depth[1]["fidelity"]
    assert all(v.name.startswith("pool.") for v in r.rules.variables)
    prog = program_ruleset(r.rules)
    assert {h.kind for h in prog.heads} == {"class", "kernel"}


def test_cli_chaining_errors_are_one_line(core_paper1, tmp_path, capsys):
    from cnn2logic.cli import main
    from cnn2logic.model.spec import save_checkpoint

    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(core_paper1[0], ckpt)
    for extra in ([], ["--chain-layers", "pool"], ["--chain-layers", "pool,nope"]):
        assert main(["extract", str(ckpt), "--out", str(tmp_path / "x"), "--no-progress",
                     "--method", "chaining", "--test-size", "100", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("cnn2logic extract: error:"), err
