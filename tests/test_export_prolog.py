"""The Prolog exporter: loads in SWI-Prolog without a warning and predicts what the Python
evaluator and clingo predict.  Skips (with the reason) when ``swipl`` is not installed."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from cnn2logic import query
from cnn2logic.errors import ExportError, SolverError
from cnn2logic.export.prolog import to_prolog
from cnn2logic.query.swipl import check_program, prolog_predictions, run_goal, swipl_path
from cnn2logic.query import Program
from cnn2logic.rules import Head, RuleSet
from cnn2logic.units import BinaryCodes

from .test_export_asp import chained_rules, rule_sets

pytestmark = pytest.mark.skipif(swipl_path() is None,
                                reason="SWI-Prolog (swipl) is not installed; CI installs "
                                       "Debian's swi-prolog-nox")


def write(tmp_path, text, name="rules.pl"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_rule_shapes(lp_small):
    rules, _ = lp_small
    text = to_prolog(rules)
    assert ("fires(I, 1) :- image(I), active(I, k_k1), active(I, k_k2), "
            "\\+ active(I, k_k3).") in text
    assert "fires(I, 5) :- image(I), at_least(2, I, [p(k_k1), p(k_k4), n(k_k2)])." in text
    assert ":- module(cnn2logic_program, [kernel/3," in text
    assert "class_name(c_cat_dog, 'cat-dog')." in text
    assert "prediction(I, C) :- image(I), ( fires(I, R) -> rule(R, C) ; default_class(C) )." \
        in text


def test_loads_without_warnings(lp_small, tmp_path):
    rules, codes = lp_small
    variants = {"data": to_prolog(rules, codes), "nodata": to_prolog(rules),
                "nodefault": to_prolog(rules.replace(default=None), codes),
                "norules": to_prolog(rules.replace(rules=())),
                "chained": to_prolog(chained_rules())}
    for name, text in variants.items():
        check_program(write(tmp_path, text, f"{name}.pl"))


def test_a_warning_fails_the_check(tmp_path):
    with pytest.raises(SolverError, match="Singleton"):
        check_program(write(tmp_path, "p(X) :- q.\nq.\n"))
    with pytest.raises(SolverError, match="goal failed"):
        run_goal(write(tmp_path, "q.\n", "q.pl"), "fail")


def test_same_predictions_as_python_and_clingo(lp_small, tmp_path):
    rules, codes = lp_small
    for variant in (rules, rules.replace(default=None)):
        path = write(tmp_path, to_prolog(variant, codes))
        expected = dict(zip(codes.ids, variant.predict(codes.bits)))
        assert prolog_predictions(path) == expected
        assert query.predictions(Program.from_rules(variant, codes)) == expected


def test_chained_kernels(tmp_path):
    rules = chained_rules()
    bits = np.array([[1, 0, 0], [1, 1, 1], [0, 0, 1], [0, 1, 0]], dtype=bool)
    codes = BinaryCodes(bits, rules.variables, ("a", "b"), ids=("p", "q", "r", "s"))
    path = write(tmp_path, to_prolog(rules, codes))
    assert prolog_predictions(path) == {"p": "a", "q": "b", "r": "b", "s": "b"}


def test_chained_tables_follow_asserted_facts(tmp_path):
    """derived/2 is tabled incrementally: retracting an input changes the answer."""
    rules = chained_rules()
    codes = BinaryCodes(np.array([[1, 0, 0]], dtype=bool), rules.variables, ("a", "b"),
                        ids=("p",))
    path = write(tmp_path, to_prolog(rules, codes))
    goal = ("prediction(i_p, A), retract(active(i_p, k_k1)), prediction(i_p, B), "
            "assertz(active(i_p, k_k1)), prediction(i_p, C), write([A, B, C])")
    assert run_goal(path, goal) == "[c_a,c_b,c_a]"


def test_deep_chains_agree_with_clingo(tmp_path):
    """Four layers of kernels, random rules with negation: Prolog (tabled) = clingo."""
    from cnn2logic.rules import Literal, Rule, Variable

    rng = np.random.default_rng(3)
    layers = [[f"{c}{i}" for i in range(8)] for c in "abcd"]
    variables = tuple(Variable(n, f"L{li}", i) for li, layer in enumerate(layers)
                      for i, n in enumerate(layer))
    heads = tuple(Head(n, "kernel", f"L{li}", i) for li, layer in enumerate(layers[1:], 1)
                  for i, n in enumerate(layer)) + tuple(Head(c) for c in "xyz")
    rules = []
    for below, layer in zip(layers, layers[1:] + [list("xyz")]):
        for head in layer:
            for _ in range(5):
                idx = rng.choice(len(below), 4, replace=False)
                rules.append(Rule(head, tuple(Literal(below[j], bool(rng.random() < 0.6))
                                              for j in idx)))
    rs = RuleSet(variables, heads, tuple(rules), default="x")
    codes = BinaryCodes(rng.random((300, len(variables))) < 0.5, variables, ("x", "y", "z"))
    path = write(tmp_path, to_prolog(rs, codes))
    assert prolog_predictions(path) == query.predictions(Program.from_rules(rs, codes))


def test_users_can_assert_images(lp_small, tmp_path):
    rules, _ = lp_small
    path = write(tmp_path, to_prolog(rules))
    goal = ("assertz(image(x)), assertz(active(x, k_k4)), prediction(x, C), "
            "findall(K, predicts(x, K), Ks), write(C-Ks)")
    assert run_goal(path, goal) == "c_3-[c_3,c_cat_dog]"


def test_facts_match_the_asp_program(lp_small_lp, lp_small, tmp_path):
    """Same identifiers, ranks and facts: count rule/pos/neg/pattern facts in both."""
    rules, codes = lp_small
    path = write(tmp_path, to_prolog(rules, codes))
    goal = ("forall(member(P/A, [rule/2, need/2, pos/2, neg/2, active/2, pattern/3, "
            "pattern_active/2, label/2]), (functor(G, P, A), aggregate_all(count, G, N), "
            "format('~w ~w~n', [P, N])))")
    counts = dict(line.split() for line in run_goal(path, goal).splitlines())
    lp_text = lp_small_lp.read_text(encoding="utf-8")
    for pred, n in counts.items():
        # Facts start a line or follow another fact on the same line.
        fact = re.compile(rf"(?:^|(?<=\. )){pred}\((?:[^()]|\([^()]*\))*\)\.", re.M)
        assert len(fact.findall(lp_text)) == int(n), pred


def test_module_name(lp_small, tmp_path):
    rules, _ = lp_small
    assert ":- module(digits, [" in to_prolog(rules, module="digits")
    with pytest.raises(ExportError, match="module name"):
        to_prolog(rules, module="Bad Name")


def test_identical_bytes(lp_small):
    rules, codes = lp_small
    assert to_prolog(rules, codes) == to_prolog(RuleSet.from_json(rules.to_json()), codes)


def test_hostile_names(tmp_path):
    from .test_export_asp import Literal, Rule, Variable

    classes = ("3", "Cat-Dog", "it's", 'say "hi"', "größe", "猫", "new\nline", "c_3", "\\")
    rules = RuleSet(
        (Variable("Conv 1", "Layer\\1", 0), Variable("ß", "x'y", 1)),
        tuple(Head(c) for c in classes),
        tuple(Rule(c, (Literal("Conv 1", i % 2 == 0), Literal("ß", i % 3 == 0)))
              for i, c in enumerate(classes)), default="猫")
    bits = np.array([[a, b] for a in (0, 1) for b in (0, 1)], dtype=bool)
    codes = BinaryCodes(bits, rules.variables, classes, ids=("img 0", "Ä", "'", "\\"))
    path = write(tmp_path, to_prolog(rules, codes))
    assert prolog_predictions(path) == dict(zip(codes.ids, rules.predict(bits)))
    goal = "forall(kernel_name(_, N), (atom_codes(N, C), format('~w~n', [C])))"
    names = ["".join(map(chr, eval(line))) for line in run_goal(path, goal).splitlines()]
    assert names == ["Conv 1", "ß"]


@given(rule_sets(max_vars=5))
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_swipl_agrees_with_python_on_random_rule_sets(tmp_path, case):
    rules, codes = case
    path = write(tmp_path, to_prolog(rules, codes), "random.pl")
    assert prolog_predictions(path) == dict(zip(codes.ids, rules.predict(codes.bits)))
