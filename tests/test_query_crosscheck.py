"""Cross-checks on real rules of the paper's configuration 1 (paper1).

Both kinds of program are checked: the approximation method's exact terms and the
default extractor's decision list (ordered rules with M-of-N rules, where an earlier rule
is an exception to the later ones).

* The Python evaluator, clingo on the exported ``.lp`` and SWI-Prolog on the exported
  ``.pl`` predict the same class for every image: the 4,000 + 1,000 embedded images, and
  the 10,000 MNIST test images when the full data set is present.
* With ten kernels every activation can be enumerated, so the answers of ``implies``,
  ``necessary`` and ``conflicts`` are checked against brute force, and every ``flip`` is
  re-evaluated by the Python evaluator.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnn2logic import query
from cnn2logic.export.logic import write_program
from cnn2logic.query.swipl import prolog_predictions, swipl_path
from cnn2logic.query import Program
from cnn2logic.rules import RuleSet

from .conftest import full_mnist_or_skip


def three_way(rules: RuleSet, codes, tmp_path, name: str) -> None:
    expected = dict(zip(codes.ids, rules.predict(codes.bits)))
    lp = tmp_path / f"{name}.lp"
    write_program(lp, rules, codes)
    assert query.predictions(lp) == expected
    if swipl_path() is None:
        pytest.skip("SWI-Prolog (swipl) is not installed; CI installs swi-prolog-nox")
    pl = tmp_path / f"{name}.pl"
    write_program(pl, rules, codes)
    assert prolog_predictions(pl) == expected


def test_embedded_paper1_three_way(core_paper1_extraction, tmp_path):
    result = core_paper1_extraction
    assert len(result.train_codes) + len(result.test_codes) == 5000
    three_way(result.rules, result.train_codes, tmp_path, "train")
    three_way(result.rules, result.test_codes, tmp_path, "test")


def test_embedded_paper1_unminimized_three_way(core_paper1_extraction, tmp_path):
    result = core_paper1_extraction
    unmin = result.rules.replace(rules=result.unminimized.rules)
    lp = tmp_path / "u.lp"
    write_program(lp, result.rules, result.test_codes, unminimized=True)
    expected = dict(zip(result.test_codes.ids, unmin.predict(result.test_codes.bits)))
    assert query.predictions(lp) == expected
    if swipl_path() is not None:
        pl = tmp_path / "u.pl"
        write_program(pl, result.rules, result.test_codes, unminimized=True)
        assert prolog_predictions(pl) == expected


@pytest.fixture(scope="module")
def lp_full_paper1():
    """paper1 trained briefly on full MNIST; rules extracted; the 10,000 test images."""
    from cnn2logic.data import load_data
    from cnn2logic.extract import ExtractConfig, extract_model
    from cnn2logic.model.training import TrainConfig, train

    data = load_data(full_mnist_or_skip(), train_size=10_000)
    model, _ = train("paper1", data, TrainConfig(iterations=300, seed=0, progress=False))
    return extract_model(model, data, ExtractConfig(method="approximation"), progress=False, model_name="lp_full")


def test_full_mnist_paper1_three_way(lp_full_paper1, tmp_path):
    assert len(lp_full_paper1.test_codes) == 10_000
    three_way(lp_full_paper1.rules, lp_full_paper1.test_codes, tmp_path, "full")


# -- brute force over all 2^10 activations -----------------------------------------------

@pytest.fixture(scope="module")
def rulelist_paper1(core_paper1, core_embedded):
    """The default extractor's decision list (M-of-N rules, exceptions by order)."""
    from cnn2logic.extract import ExtractConfig, extract_model

    model, _ = core_paper1
    return extract_model(model, core_embedded, ExtractConfig(), progress=False,
                         model_name="core_paper1")


def test_embedded_paper1_rulelist_three_way(rulelist_paper1, tmp_path):
    assert rulelist_paper1.rules.meta["ordered"]
    three_way(rulelist_paper1.rules, rulelist_paper1.test_codes, tmp_path, "rulelist")
    three_way(rulelist_paper1.rules, rulelist_paper1.train_codes, tmp_path, "rulelist-train")


@pytest.fixture(scope="module", params=["approximation", "rulelist"])
def lp_real(request, core_paper1_extraction, rulelist_paper1, tmp_path_factory):
    """Real rules with every activation enumerable: the exact terms and the decision list."""
    result = core_paper1_extraction if request.param == "approximation" else rulelist_paper1
    path = tmp_path_factory.mktemp("real") / "rules.lp"
    write_program(path, result.rules, result.test_codes)
    names = result.rules.variable_names
    assert len(names) == 10
    cube = np.array(list(itertools.product([False, True], repeat=len(names))), dtype=bool)
    return result, Program.from_file(path), names, cube


def minimal(sets):
    sets = [frozenset(s) for s in sets]
    return sorted((sorted(s, key=lambda n: int(n[1:])) for s in set(sets)
                   if not any(t < s for t in sets)), key=lambda s: (len(s), s))


def test_implies_and_necessary_match_brute_force(lp_real):
    result, prog, names, cube = lp_real
    rules = result.rules
    pred = rules.predict(cube)
    fires = rules.fires(cube)
    for c in rules.head_names:
        on = [{n for n, b in zip(names, row) if b} for row in cube[pred == c]]
        r = query.implies(prog, c, limit=0)
        assert r.sufficient == minimal(on), c
        assert [t.rank for t in r.terms] == [i + 1 for i, rule in enumerate(rules.rules)
                                              if rule.head == c]
        for when, mask in (("predicted", pred == c),
                           ("fires", fires[:, rules.head_names.index(c)])):
            n = query.necessary(prog, c, when=when)
            assert n.possible == bool(mask.any())
            if mask.any():
                assert set(n.must_be_active) == {v for v, col in zip(names, cube[mask].T)
                                                 if col.all()}
                assert set(n.must_be_inactive) == {v for v, col in zip(names, cube[mask].T)
                                                   if not col.any()}


def test_conflicts_match_brute_force(lp_real):
    result, prog, names, cube = lp_real
    rules = result.rules
    fires = rules.fires(cube)
    two = [{n for n, b in zip(names, row) if b} for row in cube[fires.sum(axis=1) >= 2]]
    r = query.conflicts(prog, limit=0)
    assert [w.kernels for w in r.in_principle] == minimal(two)
    for w in r.in_principle:
        row = np.array([[n in w.kernels for n in names]])
        assert sorted(w.classes) == sorted(np.array(rules.head_names)[rules.fires(row)[0]])
    data_fires = rules.fires(result.test_codes.bits)
    for o in r.on_data:
        i, j = (rules.head_names.index(c) for c in o["classes"])
        both = data_fires[:, i] & data_fires[:, j]
        assert o["images"] == int(both.sum())
        assert o["example"] == result.test_codes.ids[int(np.argmax(both))]
    assert sum(o["images"] for o in r.on_data) >= int((data_fires.sum(axis=1) >= 2).sum())


def test_flips_on_real_rules_re_evaluate(lp_real):
    result, prog, names, cube = lp_real
    rules, codes = result.rules, result.test_codes
    pred = rules.predict(cube)
    for n in range(0, 1000, 250):
        start = codes.bits[n]
        for c in rules.head_names:
            r = query.flip(prog, codes.ids[n], c, limit=5)
            reachable = cube[pred == c]
            assert r.possible == bool(len(reachable))
            if not r.possible:
                continue
            assert r.flips == int((reachable != start).sum(axis=1).min())
            for sol in r.solutions:
                bits = start.copy()
                for k in sol["on"]:
                    assert not bits[names.index(k)]
                    bits[names.index(k)] = True
                for k in sol["off"]:
                    assert bits[names.index(k)]
                    bits[names.index(k)] = False
                assert rules.predict(bits[None, :])[0] == c
                assert len(sol["on"]) + len(sol["off"]) == r.flips


def test_explain_matches_python_on_real_rules(lp_real):
    result, prog, names, _ = lp_real
    rules, codes = result.rules, result.test_codes
    sat = rules.rule_matrix(codes.bits)
    for n in range(0, 1000, 111):
        r = query.explain(prog, codes.ids[n])
        assert [t.rank for t in r.fired] == [i + 1 for i in np.flatnonzero(sat[n])]
        assert r.prediction == rules.predict(codes.bits[n:n + 1])[0]
        assert r.label == codes.classes[codes.labels[n]]
        assert r.network == codes.classes[codes.predictions[n]]
        assert r.active == [v for v, b in zip(names, codes.bits[n]) if b]
