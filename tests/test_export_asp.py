"""The ASP exporter: shape, determinism, warning-free loading, and the same predictions as
the Python evaluator (conjunctions, M-of-N rules, rank order, default, chained layers)."""

from __future__ import annotations

import subprocess
import sys

import clingo
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn2logic import query
from cnn2logic.errors import ExportError
from cnn2logic.export.asp import to_asp
from cnn2logic.query import Program, programs_dir
from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
from cnn2logic.units import BinaryCodes


def load_messages(*texts: str, files=(), args=()) -> list[str]:
    """Ground and solve the program; return every message clingo logged."""
    messages: list[str] = []
    ctl = clingo.Control(["--heuristic=Domain", *args], logger=lambda c, m: messages.append(m))
    for text in texts:
        ctl.add("base", [], text)
    for f in files:
        ctl.load(str(f))
    ctl.ground([("base", [])])
    ctl.solve()
    return messages


def chained_rules() -> RuleSet:
    """h (a kernel of layer fc) <- k1 & ~k2;  a <- h;  b <- k2;  default b."""
    return RuleSet(
        variables=(Variable("k1", "conv", 0), Variable("k2", "conv", 1), Variable("h", "fc", 0)),
        heads=(Head("h", "kernel", "fc", 0), Head("a", "class", "out", 0),
               Head("b", "class", "out", 1)),
        rules=(Rule("h", (Literal("k1"), Literal("k2", False))), Rule("a", (Literal("h"),)),
               Rule("b", (Literal("k2"),))),
        default="b")


def test_rule_shapes(lp_small):
    rules, _ = lp_small
    text = to_asp(rules)
    assert ("fires(I, 1) :- evaluate(I), active(I, k_k1), active(I, k_k2), "
            "not active(I, k_k3).") in text
    assert "rule(1, c_3). need(1, 3). pos(1, k_k1). pos(1, k_k2). neg(1, k_k3)." in text
    assert ("fires(I, 5) :- evaluate(I), #count { k_k1 : active(I, k_k1); k_k4 : "
            "active(I, k_k4); k_k2 : not active(I, k_k2) } >= 2.") in text
    assert 'kernel(k_k1, "conv", 0). kernel_name(k_k1, "k1").' in text
    assert 'class(c_cat_dog). class_name(c_cat_dog, "cat-dog").' in text
    assert "default_class(c_cat_dog)." in text
    assert "% rule 5: cat-dog <- 2-of(k1, k4, ¬k2)" in text


def test_data_facts(lp_small):
    rules, codes = lp_small
    text = to_asp(rules, codes)
    line = next(ln for ln in text.splitlines() if ln.startswith("image(i_b_b)."))
    assert line == ('image(i_b_b). image_id(i_b_b, "B b"). image_index(i_b_b, 1). '
                    "label(i_b_b, c_3). net_prediction(i_b_b, c_3). active(i_b_b, k_k4).")
    assert 'image_id(i_c_3, "c\'3")' in text
    # Patterns: {k4} occurs twice, first on "B b".
    assert "pattern(p(2), 2, i_b_b). pattern_active(p(2), k_k4)." in text


def test_header_maps_every_identifier_and_records_the_source(lp_small):
    rules, codes = lp_small
    text = to_asp(rules, codes, sources={"rules file": "small.json"})
    header = [ln for ln in text.splitlines() if ln.startswith("%")]
    joined = "\n".join(header)
    for ident, name in [("k_k1", '"k1"'), ("c_3", '"3"'), ("c_cat_dog", '"cat-dog"'),
                        ("c_9", '"9"')]:
        assert any(ln.split()[1:2] == [ident] and name in ln for ln in header), ident
    assert 'layer "conv", index 0' in joined
    assert 'model: "hand.safetensors"' in joined and 'settings: {"order": 3}' in joined
    assert "rules file: small.json" in joined and "7 image(s)" in joined
    assert "first firing rule in rank order" in joined


def test_identical_input_gives_identical_bytes(lp_small):
    rules, codes = lp_small
    assert to_asp(rules, codes) == to_asp(rules, codes)
    again = RuleSet.from_json(rules.to_json())
    assert to_asp(again, codes) == to_asp(rules, codes)


def test_loads_without_any_clingo_message(lp_small):
    rules, codes = lp_small
    for text in (to_asp(rules, codes), to_asp(rules),
                 to_asp(rules.replace(default=None)), to_asp(rules.replace(rules=())),
                 to_asp(chained_rules())):
        assert load_messages(text) == []


def test_every_shipped_query_loads_without_messages(lp_small):
    rules, codes = lp_small
    text = to_asp(rules, codes)
    consts = ["-c", "class=c_3", "-c", "to=c_8", "-c", "image=i_d"]
    for program in sorted(programs_dir().glob("*.lp")):
        for base in (text, to_asp(chained_rules()), to_asp(rules.replace(rules=()))):
            assert load_messages(base, files=[program], args=consts) == [], program.name


def test_clingo_command_line_loads_it_quietly(lp_small_lp):
    proc = subprocess.run([sys.executable, "-m", "clingo", str(lp_small_lp),
                           str(programs_dir() / "predictions.lp")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 10, 30), proc.stderr
    assert "SATISFIABLE" in proc.stdout and "UNSATISFIABLE" not in proc.stdout
    assert "warning" not in proc.stderr.lower() and "info" not in proc.stderr.lower()
    assert "prediction(i_b_b,c_3)" in proc.stdout


@pytest.mark.parametrize("program, args", [
    ("implies.lp", ["-c", 'class="3"', "--heuristic=Domain", "--enum-mode=domRec", "0"]),
    ("necessary.lp", ["-c", 'class="8"', "--enum-mode=cautious"]),
    ("conflicts.lp", ["--heuristic=Domain", "--enum-mode=domRec", "0"]),
    ("explain.lp", ["-c", 'image="B b"']),
    ("flip.lp", ["-c", 'image="d"', "-c", 'to="3"', "--opt-mode=optN", "0"]),
])
def test_query_programs_run_quietly_on_the_clingo_command_line(lp_small_lp, program, args):
    """Each shipped program, with the command line its header suggests."""
    proc = subprocess.run([sys.executable, "-m", "clingo", str(lp_small_lp),
                           str(programs_dir() / program), *args],
                          capture_output=True, text=True, timeout=120)
    assert ("SATISFIABLE" in proc.stdout or "OPTIMUM FOUND" in proc.stdout)
    assert "UNSATISFIABLE" not in proc.stdout
    assert not proc.stderr.strip(), proc.stderr


def test_hand_made_predictions(lp_small, lp_small_lp):
    rules, codes = lp_small
    expected = {"a": "cat-dog", "B b": "3", "c'3": "3", "d": "8", "e": "8", "f": "3",
                "g": "cat-dog"}
    assert dict(zip(codes.ids, rules.predict(codes.bits))) == expected
    assert query.predictions(lp_small_lp) == expected


def test_no_default_means_no_prediction(lp_small):
    rules, codes = lp_small
    nodefault = rules.replace(default=None)
    got = query.predictions(Program.from_rules(nodefault, codes))
    assert got["a"] is None and got["g"] == "cat-dog"
    assert got == dict(zip(codes.ids, nodefault.predict(codes.bits)))


def test_chained_kernel_rules():
    rules = chained_rules()
    text = to_asp(rules)
    assert "derived(I, k_h) :- evaluate(I), active(I, k_k1), not active(I, k_k2)." in text
    assert "derives(1, k_h)." in text and "derived_kernel(k_h)." in text
    assert "active(I, k_h) :- derived(I, k_h)." in text
    # The data's own bit for h is ignored: h is computed from k1 and k2.
    bits = np.array([[1, 0, 0], [1, 1, 1], [0, 0, 1], [0, 1, 0]], dtype=bool)
    codes = BinaryCodes(bits, rules.variables, ("a", "b"), ids=("p", "q", "r", "s"))
    got = query.predictions(Program.from_rules(rules, codes))
    assert got == {"p": "a", "q": "b", "r": "b", "s": "b"}
    # Only k1 and k2 are inputs a query may set.
    assert query.implies(Program.from_rules(rules), "a").sufficient == [["k1"]]


def test_unminimized_rules_from_meta(lp_small):
    rules, _ = lp_small
    stored = [{"head": "8", "body": [["k2", True]], "min_true": None, "stats": {}}]
    with_meta = rules.replace(meta={**rules.meta, "unminimized_rules": stored})
    text = to_asp(with_meta, unminimized=True)
    assert "fires(I, 1) :- evaluate(I), active(I, k_k2)." in text
    assert "fires(I, 2)" not in text and "unminimised" in text
    assert '"head"' not in text  # the stored rule list is not dumped into the header
    with pytest.raises(ExportError, match="no unminimised version"):
        to_asp(rules, unminimized=True)
    bad = rules.replace(meta={"unminimized_rules": [{"head": "zz", "body": []}]})
    with pytest.raises(ExportError, match="not a valid rule list"):
        to_asp(bad, unminimized=True)


def test_export_errors(lp_small):
    rules, codes = lp_small
    short = BinaryCodes(codes.bits[:, :3], codes.variables[:3], codes.classes)
    with pytest.raises(ExportError, match="lack 1 kernel.*k4"):
        to_asp(rules, short)
    twice = BinaryCodes(codes.bits[:2], codes.variables, codes.classes, ids=("x", "x"))
    with pytest.raises(ExportError, match="occurs more than once"):
        to_asp(rules, twice)
    nul = rules.replace(heads=rules.heads[:4] + (Head("a\x00b"),))
    with pytest.raises(ExportError, match="NUL"):
        to_asp(nul)
    odd = rules.replace(heads=rules.heads[:4] + (Head("9", "neuron"),))
    with pytest.raises(ExportError, match="kind 'neuron'"):
        to_asp(odd)
    labels = BinaryCodes(codes.bits, codes.variables, codes.classes,
                         np.array([9, 0, 0, 0, 0, 0, 0]), None, codes.ids)
    with pytest.raises(ExportError, match="label of image 'a' is 9"):
        to_asp(rules, labels)


def test_no_rules_at_all(lp_small):
    rules, codes = lp_small
    empty = rules.replace(rules=())
    assert set(query.predictions(Program.from_rules(empty, codes)).values()) == {"cat-dog"}
    assert set(query.predictions(Program.from_rules(empty.replace(default=None), codes))
               .values()) == {None}


def test_cyclic_chained_rules_are_refused():
    rules = RuleSet((Variable("h"), Variable("g")), (Head("h", "kernel"), Head("g", "kernel")),
                    (Rule("h", (Literal("g"),)), Rule("g", (Literal("h", False),))))
    with pytest.raises(ExportError, match="depend on themselves"):
        to_asp(rules)


def test_hostile_names_survive(tmp_path):
    classes = ("3", "Cat-Dog", "it's", 'say "hi"', "größe", "猫", "new\nline", "c_3")
    rules = RuleSet(
        (Variable("Conv 1", "Layer\\1", 0), Variable("ß", "x'y", 1)),
        tuple(Head(c) for c in classes),
        tuple(Rule(c, (Literal("Conv 1", i % 2 == 0), Literal("ß", i % 3 == 0)))
              for i, c in enumerate(classes)), default="猫")
    bits = np.array([[a, b] for a in (0, 1) for b in (0, 1)], dtype=bool)
    codes = BinaryCodes(bits, rules.variables, classes, ids=("img 0", "Ä", "'", "\\"))
    text = to_asp(rules, codes)
    assert load_messages(text) == []
    got = query.predictions(Program(text))
    assert got == dict(zip(codes.ids, rules.predict(bits)))
    for c in classes:
        assert query.implies(Program(text), c).cls == c


# -- random rule sets: clingo agrees with the Python evaluator --------------------------

@st.composite
def rule_sets(draw, max_vars=6):
    n = draw(st.integers(1, max_vars))
    names = [f"v{i}" for i in range(n)]
    heads = [f"h{i}" for i in range(draw(st.integers(1, 4)))]
    rules = []
    for _ in range(draw(st.integers(0, 8))):
        chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=n))
        body = tuple(Literal(v, draw(st.booleans())) for v in chosen)
        min_true = draw(st.one_of(st.none(), st.integers(0, len(body))))
        rules.append(Rule(draw(st.sampled_from(heads)), body, min_true))
    default = draw(st.one_of(st.none(), st.sampled_from(heads)))
    rs = RuleSet(tuple(Variable(v) for v in names), tuple(Head(h) for h in heads),
                 tuple(rules), default)
    bits = draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=1,
                         max_size=12))
    codes = BinaryCodes(np.array(bits, dtype=bool), rs.variables, tuple(heads))
    return rs, codes


@given(rule_sets())
@settings(max_examples=60, deadline=None)
def test_clingo_agrees_with_python_on_random_rule_sets(case):
    rules, codes = case
    got = query.predictions(Program.from_rules(rules, codes))
    assert got == dict(zip(codes.ids, rules.predict(codes.bits)))
