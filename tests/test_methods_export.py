"""Every method's rules, exported to ASP (clingo) and Prolog (SWI-Prolog), predict what the
Python evaluator predicts, image by image, on thousands of images.

The Prolog half runs the real ``swipl`` binary and is skipped, with the reason, when it is
not installed.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from cnn2logic.export.asp import to_asp
from cnn2logic.export.prolog import to_prolog
from cnn2logic.extract import REGISTRY
from cnn2logic.extract.approximation import vertices
from cnn2logic.extract.chaining import ChainingExtractor, ChainLayer
from cnn2logic.extract.chaining import program_ruleset
from cnn2logic.extract.mofn import MofNExtractor
from cnn2logic.rules import RuleSet, Variable
from cnn2logic.units import BinaryCodes

METHODS = tuple(REGISTRY)  # every registered method
SWIPL = shutil.which("swipl")
needs_swipl = pytest.mark.skipif(SWIPL is None, reason="SWI-Prolog (swipl) is not installed; "
                                 "the Prolog cross-check needs the real binary")


def asp_predictions(rules: RuleSet, codes: BinaryCodes) -> dict[str, str]:
    """Original image id -> original class name, as clingo computes ``prediction/2``."""
    import clingo

    ctl = clingo.Control(["--warn=none"])
    ctl.add("base", [], to_asp(rules, codes))
    ctl.ground([("base", [])])
    found: dict[str, list] = {"prediction": [], "image_id": [], "class_name": []}
    with ctl.solve(yield_=True) as handle:
        models = 0
        for model in handle:
            models += 1
            for sym in model.symbols(atoms=True):
                if sym.name in found and len(sym.arguments) == 2:
                    found[sym.name].append(sym.arguments)
        assert models == 1, "the program must have exactly one answer set"
    image = {str(a[0]): a[1].string for a in found["image_id"]}
    cls = {str(a[0]): a[1].string for a in found["class_name"]}
    return {image[str(a[0])]: cls[str(a[1])] for a in found["prediction"]}


def prolog_predictions(rules: RuleSet, codes: BinaryCodes, tmp_path) -> dict[str, str]:
    path = tmp_path / "rules.pl"
    path.write_text(to_prolog(rules, codes), encoding="utf-8")
    goal = ("forall((image(I), image_id(I, Id), prediction(I, C), class_name(C, N)), "
            "format('~w\\t~w~n', [Id, N]))")
    out = subprocess.run([SWIPL, "-q", "-g", goal, "-t", "halt", str(path)],
                         capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Warning" not in out.stderr, out.stderr[-2000:]
    pairs = [line.split("\t") for line in out.stdout.splitlines() if line]
    return dict(pairs)


def python_predictions(rules: RuleSet, codes: BinaryCodes) -> dict[str, str]:
    return dict(zip(codes.ids, (str(p) for p in rules.predict(codes.bits))))


def all_codes(result) -> BinaryCodes:
    """Training and test codes of a pipeline result as one data set (5,000 images)."""
    tr, te = result.train_codes, result.test_codes
    return BinaryCodes(np.concatenate([tr.bits, te.bits]), tr.variables, tr.classes,
                       np.concatenate([tr.labels, te.labels]),
                       np.concatenate([tr.predictions, te.predictions]), tr.ids + te.ids)


@pytest.mark.parametrize("method", METHODS)
def test_asp_export_agrees_with_python(meth_extractions, method):
    result = meth_extractions[method]
    codes = all_codes(result)
    assert len(codes) >= 5000
    assert asp_predictions(result.rules, codes) == python_predictions(result.rules, codes)


@needs_swipl
@pytest.mark.parametrize("method", METHODS)
def test_prolog_export_agrees_with_python(meth_extractions, method, tmp_path):
    result = meth_extractions[method]
    codes = all_codes(result)
    assert prolog_predictions(result.rules, codes, tmp_path) == \
        python_predictions(result.rules, codes)


def test_mofn_rules_really_are_threshold_rules(meth_extractions):
    """The cross-check above must exercise #count / at_least, not only conjunctions."""
    rules = meth_extractions["mofn"].rules
    assert any(not r.is_conjunction for r in rules.rules)
    assert "#count" in to_asp(rules)
    assert "at_least(" in to_prolog(rules)


def planted_mofn_codes():
    """M-of-N rules with every (N, M) shape on the whole 8-variable cube."""
    rng = np.random.default_rng(0)
    U = rng.random((2000, 8))
    bits = U >= 0.5
    y = np.where(bits[:, :5].sum(axis=1) >= 3, 2,
                 np.where((~bits[:, 5]).astype(int) + bits[:, 6] >= 1, 1, 0))
    W = np.array([[-1, -1, -1, -1, -1, 1, -1, 0.1],
                  [-1, -1, -1, -1, -1, -2, 2, 0.1],
                  [2, 2, 2, 2, 2, 0.1, 0.1, 0.1]], dtype=float)
    ext = MofNExtractor(beta=0.001).fit(U, y, output=(W, None))
    V = vertices(8)
    codes = BinaryCodes(V, ext.rules_.variables, ("c0", "c1", "c2"),
                        labels=None, predictions=None,
                        ids=tuple(f"v{i}" for i in range(len(V))))
    return ext.rules_, codes


def test_planted_mofn_export_on_the_whole_cube_asp(tmp_path):
    rules, codes = planted_mofn_codes()
    assert {r.threshold for r in rules.rules} - {len(r.body) for r in rules.rules}
    assert asp_predictions(rules, codes) == python_predictions(rules, codes)


@needs_swipl
def test_planted_mofn_export_on_the_whole_cube_prolog(tmp_path):
    rules, codes = planted_mofn_codes()
    assert prolog_predictions(rules, codes, tmp_path) == python_predictions(rules, codes)


def chain_program_and_codes():
    rng = np.random.default_rng(1)
    A = rng.random((1500, 6)) < 0.5
    B = np.stack([A[:, 0] & ~A[:, 1], A[:, 2] | A[:, 3], A[:, 4] & A[:, 5]], axis=1)
    y = np.where(B[:, 0] & ~B[:, 2], 2, np.where(B[:, 1], 1, 0))
    layers = [ChainLayer(name, X, tuple(Variable(f"{name}.k{j + 1}", name, j)
                                        for j in range(X.shape[1])))
              for name, X in (("a", A), ("b", B))]
    ext = ChainingExtractor(learner="tree").fit(layers, y)
    codes = BinaryCodes(A, layers[0].variables, ext.rules_.head_names, y, y,
                        tuple(f"s{i}" for i in range(len(A))))
    return ext, codes


def test_chain_program_export_asp():
    """The layered program (kernel rules + class rules) derives kernels in clingo."""
    ext, codes = chain_program_and_codes()
    expected = dict(zip(codes.ids, (ext.program_.head_names[c]
                                    for c in ext.predict_chain(codes.bits))))
    assert asp_predictions(ext.program_, codes) == expected
    assert asp_predictions(ext.rules_, codes) == expected


@needs_swipl
def test_chain_program_export_prolog(tmp_path):
    ext, codes = chain_program_and_codes()
    expected = dict(zip(codes.ids, (ext.program_.head_names[c]
                                    for c in ext.predict_chain(codes.bits))))
    assert prolog_predictions(ext.program_, codes, tmp_path) == expected


@needs_swipl
def test_pipeline_chain_program_export_prolog(meth_extractions, tmp_path):
    """The chain program of a real network, on the 1,000 test images, in SWI-Prolog."""
    result = meth_extractions["chaining"]
    prog = program_ruleset(result.rules)
    codes = result.test_codes
    expected = dict(zip(codes.ids, (prog.head_names[c]
                                    for c in result.extractor.predict_chain(codes.bits))))
    assert prolog_predictions(prog, codes, tmp_path) == expected


def test_pipeline_chain_program_export_asp(meth_extractions):
    """The chain program of a real network (2,000 chained rules), on the 1,000 test images,
    in clingo; per-kernel bridges keep it stratified, so it grounds in seconds."""
    result = meth_extractions["chaining"]
    prog = program_ruleset(result.rules)
    codes = result.test_codes
    expected = dict(zip(codes.ids, (prog.head_names[k]
                                    for k in result.extractor.predict_chain(codes.bits))))
    assert asp_predictions(prog, codes) == expected
