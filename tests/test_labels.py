"""Kernel labels: the automatic rule, the user's label file (strict), hostile labels in every
output (ASP, Prolog, Markdown, HTML, DOT), and explanations in words."""

from __future__ import annotations

import json
import subprocess
import sys

import clingo
import numpy as np
import pytest

from cnn2logic import query
from cnn2logic.errors import LabelsError, RulesFileError
from cnn2logic.export.asp import to_asp
from cnn2logic.export.markdown import to_markdown
from cnn2logic.export.prolog import to_prolog
from cnn2logic.labels import (META_KEY, apply_label_file, auto_label, auto_labels,
                              class_profile, display, kernel_labels,
                              label_agreement, labels_meta, parse_labels, read_labels,
                              with_user_labels)
from cnn2logic.names import label_text, markdown_text
from cnn2logic.words import explanation
from cnn2logic.query.swipl import run_goal, swipl_path
from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
from cnn2logic.visual.graph import dot_text, kernel_graph
from cnn2logic.visual.report import render_report

C10 = [str(c) for c in range(10)]

HOSTILE = ['say "hi"', "it's", "100% sure", "end */ here", "%* block", "*% x", ":- fail.",
           "<script>alert(1)</script>", "a\\b", "x). y(", "`tick`|pipe", "$x^2$", "π · größe",
           "a & b", "[link](http://x)"]


# -- the automatic rule --------------------------------------------------------------------
@pytest.mark.parametrize("overall, rates, label", [
    (0.0, [0.0] * 10, "never on"),
    (1.0, [1.0] * 10, "always on"),
    (0.3, [0.9, 0.2, 0.8, 0.2, 0.3, 0.3, 0.95, 0.2, 0.4, 0.2], "on for 0, 2, 6"),
    (0.3, [0.9, 0, 0.8, 0.2, 0.3, 0.3, 0.95, 0.1, 0.4, 0.2], "off for 1, 7"),
    (0.9, [0.95] * 9 + [0.1], "off for 9"),
    (0.6, [0.6] * 10, "on for most"),
    (0.3, [0.3] * 10, "on for few"),
    # more than three qualify: the three highest, in class order
    (0.2, [0.9, 0.8, 0.7, 0.95, 0, 0, 0, 0, 0, 0], "on for 0, 1, 3"),
    # a class on 40 % of the time is not "on for" it (at least half the time)
    (0.1, [0.4] + [0.07] * 9, "on for few"),
    # both sides: the shorter list wins; a tie favours "on for"
    (0.5, [0.9, 0.9, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], "off for 2"),
    (0.5, [0.9, 0.9, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.1], "on for 0, 1"),
    (0.5, [0.9, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1], "on for 0"),
    (0.5, [0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1], "off for 8, 9"),
    (0.5, [0.9, np.nan] + [0.5] * 8, "on for 0"),  # a class without images is skipped
    (float("nan"), [np.nan] * 10, "no data"),
])
def test_auto_label_rule(overall, rates, label):
    assert auto_label(overall, rates, C10) == label


def test_class_profile_and_labels():
    bits = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 0]], dtype=bool)
    y = np.array([0, 0, 1, 1, -1])  # the unknown label is left out
    rates, overall = class_profile(bits, y, 3)
    assert rates[:, :2].tolist() == [[1.0, 0.0], [0.0, 1.0]] and np.isnan(rates[:, 2]).all()
    assert overall.tolist() == [0.5, 0.5]
    assert auto_labels(bits, y, ["a", "b"], ["x", "y", "z"]) == {"a": "on for x",
                                                                 "b": "on for y"}
    with pytest.raises(LabelsError):
        class_profile(bits, np.array([0, 5, 0, 0, 0]), 3)


def test_long_and_hostile_class_names_are_cut_and_cleaned():
    label = auto_label(0.2, [0.9, 0.1], ["a very long class name indeed", "b\nc"])
    assert label == "on for a very long cla…"
    assert "\n" not in auto_label(0.8, [0.9, 0.1], ["a", "b\nc"])


def test_label_agreement():
    assert label_agreement({"k1": "a", "k2": "b"}, {"k1": "a", "k2": "c"}) == 0.5
    assert np.isnan(label_agreement({}, {}))


# -- meta --------------------------------------------------------------------------------
def _rules(n: int = 4, labels: bool = True) -> RuleSet:
    V = tuple(Variable(f"k{i + 1}", "pool", i) for i in range(n))
    rs = RuleSet(V, (Head("3"), Head("8")),
                 (Rule("3", (Literal("k1"), Literal("k2", False))),
                  Rule("8", (Literal("k3"), Literal("k1"), Literal("k2")), min_true=2)),
                 default="8")
    if labels:
        rng = np.random.default_rng(0)
        bits = rng.random((200, n)) < 0.5
        y = rng.integers(0, 2, 200)
        bits[:, 0] = y == 0
        rs = rs.replace(meta={META_KEY: labels_meta(bits, y, rs.variable_names, ["3", "8"])})
    return rs


def test_meta_round_trips_through_the_strict_reader():
    rs = _rules()
    back = RuleSet.from_json(rs.to_json())
    assert kernel_labels(back) == kernel_labels(rs)
    assert kernel_labels(back)["k1"] == "on for 3"
    assert back.to_json() == rs.to_json()  # deterministic


@pytest.mark.parametrize("change, match", [
    (lambda e: e.update(auto=["x"]), "auto"),
    (lambda e: e["auto"].update(k1=3), "string"),
    (lambda e: e["auto"].update(k1="x" * 81), "at most 80"),
    (lambda e: e["profile"].update(k1=[0.5]), "profile"),
    (lambda e: e["profile"].update(k1=[0.5, 2.0]), "profile"),
    (lambda e: e["overall"].update(k1=True), "overall"),
    (lambda e: e.update(classes="38"), "classes"),
])
def test_strict_reader_refuses_bad_label_meta(change, match):
    doc = json.loads(_rules().to_json())
    change(doc["meta"][META_KEY])
    with pytest.raises(RulesFileError, match=match):
        RuleSet.from_dict(doc)


def test_user_labels_win_and_unknown_names_are_refused():
    rs = with_user_labels(_rules(), {"k2": "loop"})
    assert kernel_labels(rs)["k2"] == "loop" and kernel_labels(rs)["k1"] == "on for 3"
    with pytest.raises(LabelsError, match="unknown kernel 'k9'"):
        with_user_labels(rs, {"k9": "x"})
    assert kernel_labels(_rules(labels=False)) == {}


# -- the label file ----------------------------------------------------------------------
def test_read_json_and_csv(tmp_path):
    j = tmp_path / "l.json"
    j.write_text('{"k1": " loop ", "k2": "bar"}', encoding="utf-8")
    assert read_labels(j) == {"k1": "loop", "k2": "bar"}
    c = tmp_path / "l.csv"
    c.write_text('\ufeffkernel,name\nk1,"loop, top"\n\nk3,x\n', encoding="utf-8")
    assert read_labels(c, ["k1", "k2", "k3"]) == {"k1": "loop, top", "k3": "x"}
    other = tmp_path / "labels.txt"
    other.write_text('{"k1": "a"}', encoding="utf-8")
    assert read_labels(other) == {"k1": "a"}


@pytest.mark.parametrize("text, fmt, match", [
    ('{"k1": "a", "k1": "b"}', "json", "labelled twice"),
    ("k1,a\nk1,b\n", "csv", "labelled twice"),
    ('{"k9": "a"}', "json", "unknown kernel 'k9'"),
    ('{"k1": ""}', "json", "empty"),
    ('{"k1": "   "}', "json", "empty"),
    ('{"": "a"}', "json", "empty kernel name"),
    ('{"k1": 3}', "json", "must be a string"),
    ('{"k1": null}', "json", "must be a string"),
    ('["k1", "a"]', "json", "one JSON object"),
    ('"k1"', "json", "one JSON object"),
    ("{", "json", "not JSON"),
    ('{"k1": "' + "x" * 81 + '"}', "json", "81 characters"),
    ('{"k1": "a\\nb"}', "json", "control character"),
    ('{"k1": "a\\u0007b"}', "json", "control character"),
    ('{"k1": "a\\u202eb"}', "json", "control character"),
    ('{"k1": "a\\u2028b"}', "json", "control character"),
    ("k1,a,b\n", "csv", "kernel,name"),
    ('k1,"a\rb"\n', "csv", "control character"),
])
def test_bad_label_files(text, fmt, match):
    with pytest.raises(LabelsError, match=match):
        parse_labels(text, fmt=fmt, where="f", known=["k1", "k2"])


def test_label_file_limits(tmp_path):
    with pytest.raises(LabelsError, match="not found"):
        read_labels(tmp_path / "none.json")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * ((1 << 20) + 1))
    with pytest.raises(LabelsError, match="larger than"):
        read_labels(big)
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"k1": "\xff"}')
    with pytest.raises(LabelsError, match="cannot read"):
        read_labels(bad)


# -- hostile labels in every output -------------------------------------------------------
@pytest.fixture
def hostile() -> RuleSet:
    rs = _rules(len(HOSTILE))
    every = Rule("3", tuple(Literal(v) for v in rs.variable_names), min_true=3)
    rs = rs.replace(rules=rs.rules + (every,))
    return with_user_labels(rs, {f"k{i + 1}": h for i, h in enumerate(HOSTILE)})


def test_hostile_labels_in_asp(hostile):
    text = to_asp(hostile)
    ctl = clingo.Control(["--warn=none"])
    ctl.add("base", [], text)
    ctl.ground([("base", [])])
    got = {str(a.symbol.arguments[0]): a.symbol.arguments[1].string
           for a in ctl.symbolic_atoms.by_signature("kernel_label", 2)}
    assert got == {f"k_k{i + 1}": h for i, h in enumerate(HOSTILE)}
    # the header names them too, each on one comment line
    header = [line for line in text.splitlines() if ", label " in line]
    assert len(header) == len(HOSTILE) and all(line.startswith("%") for line in header)
    # and the program means the same as without labels
    ctl2 = clingo.Control(["--warn=none"])
    ctl2.add("base", [], to_asp(hostile.replace(meta={})))
    ctl2.ground([("base", [])])
    rules = lambda c: sorted(str(a.symbol) for a in c.symbolic_atoms.by_signature("pos", 2))
    assert rules(ctl) == rules(ctl2)


@pytest.mark.skipif(swipl_path() is None, reason="SWI-Prolog (swipl) is not installed")
def test_hostile_labels_in_prolog(hostile, tmp_path):
    pl = tmp_path / "h.pl"
    pl.write_text(to_prolog(hostile), encoding="utf-8")
    out = run_goal(pl, "forall(kernel_label(K, L), (atom_codes(L, C), format('~w ~w~n', [K, C])))")
    got = {}
    for line in out.strip().splitlines():
        k, codes = line.split(" ", 1)
        got[k] = "".join(chr(int(c)) for c in codes.strip("[]").split(","))
    assert got == {f"k_k{i + 1}": h for i, h in enumerate(HOSTILE)}


def test_hostile_labels_in_markdown(hostile):
    md = to_markdown(hostile)
    legend = md.split("## The kernels the rules read")[1]
    assert "<script>" not in md and "&lt;script&gt;" in legend
    rows = [line for line in legend.splitlines() if line.startswith("| k")]
    assert all(line.count("|") - line.count("\\|") == 5 for line in rows)
    assert markdown_text("a|b") == "a\\|b"


def test_hostile_labels_in_html_and_dot(hostile):
    page = render_report(hostile)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    g = kernel_graph(hostile)
    assert g.nodes["k_k2"]["description"] == "it's"
    assert g.nodes["k_k1"]["label"] == 'k1\nsay "hi"'
    dot = dot_text(g)
    assert 'label="k1\\nsay \\"hi\\""' in dot
    assert "\n  k_k8 [" in dot  # every node stays on its own line


def test_label_text_cleans():
    assert label_text("a\nb\x1b[0m\u202e  c") == "a b [0m c"
    assert label_text("x" * 100, 10) == "x" * 9 + "…"


def test_cli_labels_options(tmp_path, hostile):
    rules = tmp_path / "rules.json"
    rules.write_text(_rules().to_json(), encoding="utf-8")
    good = tmp_path / "l.csv"
    good.write_text("kernel,name\nk1,loop\n", encoding="utf-8")
    bad = tmp_path / "b.json"
    bad.write_text('{"k1": "a", "k7": "b"}', encoding="utf-8")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "cnn2logic", *args], capture_output=True,
                              text=True)

    out = tmp_path / "r.lp"
    done = run("export", str(rules), "--out", str(out), "--labels", str(good))
    assert done.returncode == 0, done.stderr
    assert 'kernel_label(k_k1, "loop").' in out.read_text(encoding="utf-8")
    for cmd in (["export", str(rules), "--out", str(tmp_path / "x.lp")],
                ["graph", str(rules), "--out", str(tmp_path / "g"), "--no-png"],
                ["query", str(rules), "implies", "--class", "3"]):
        failed = run(*cmd, "--labels", str(bad))
        assert failed.returncode == 2 and "unknown kernel 'k7'" in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1
    g = run("graph", str(rules), "--out", str(tmp_path / "g"), "--no-png", "--labels",
            str(good))
    assert g.returncode == 0 and "k1\\nloop" in (tmp_path / "g" / "kernels.dot").read_text()


# -- explanations in words ----------------------------------------------------------------
def test_explanation_sentences():
    labels = {"k6": "on for 3, 5, 8", "k4": "on for 4, 9"}
    assert explanation("3", (4, "3", ["k6", "k8"], ["k4"], 3), ["k6", "k8"], labels) == (
        "Predicted 3 by rule 4: k6 (on for 3, 5, 8) and k8 are on, k4 (on for 4, 9) is off.")
    mofn = explanation("3", (2, "3", ["k6", "k8", "k9"], ["k4"], 2), ["k6", "k8"], labels,
                       n_fired=3)
    assert mofn == ("Predicted 3 by rule 2 (the first of 3 rules that fire): 3 of its 4 "
                    "conditions hold (2 needed): k6 (on for 3, 5, 8) and k8 are on, k4 (on "
                    "for 4, 9) is off.")
    earlier = [(1, "7", ["k2"], [], 1), (2, "1", ["k1"], ["k6"], 2),
               (3, "0", ["k1", "k2", "k3"], [], 2)]
    two = explanation("3", (4, "3", ["k6"], [], 1), ["k6"], labels, earlier)
    assert two.endswith("The rules above it do not fire: rule 1 (→ 7) needs k2 on; rule 2 "
                        "(→ 1) needs k1 on and k6 (on for 3, 5, 8) off; rule 3 (→ 0) has "
                        "only 0 of the 2 conditions it needs.")
    default = explanation("8", None, [], {}, earlier[:1] * 5)
    assert default == ("Predicted 8, the default class, as no rule fires: rule 1 (→ 7) needs "
                       "k2 on; rule 1 (→ 7) needs k2 on; rule 1 (→ 7) needs k2 on; and 2 "
                       "more.")
    assert explanation("8", None, [], {}) == "Predicted 8, the default class: no rule fires."
    assert explanation("a", (1, "a", [], [], 0), [], {}) == (
        "Predicted a by rule 1, which always fires.")


def test_explain_query_has_words_and_labels(lp_codes):
    rs = with_user_labels(_rules(), {"k1": "loop"})
    prog = query.Program.from_rules(rs, lp_codes(rs))
    ex = query.explain(prog, "img0")
    assert ex.words.startswith("Predicted ")
    d = json.loads(ex.to_json())
    assert d["words"] == ex.words and d["kernel_labels"].get("k1", "loop") == "loop"
    assert "in words: " in ex.format()
    # labels given to the question win over the program's; unknown kernels are refused
    ex2 = query.explain(prog, "img0", labels={"k1": "ring"})
    assert "ring" in ex2.words or "k1" not in ex2.words
    with pytest.raises(Exception, match="unknown kernel 'k9'"):
        query.explain(prog, "img0", labels={"k9": "x"})


@pytest.fixture
def lp_codes():
    from cnn2logic.units import BinaryCodes

    def make(rs: RuleSet) -> "BinaryCodes":
        X = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]], dtype=bool)
        return BinaryCodes(X, rs.variables, ("3", "8"), np.array([0, 1, 1]),
                           np.array([0, 1, 1]))
    return make


def test_explain_words_follow_the_deciding_rule(lp_codes):
    rs = _rules()
    prog = query.Program.from_rules(rs, lp_codes(rs))
    first = query.explain(prog, "img0")  # k1 on, k2 off: rule 1 (3)
    assert first.prediction == "3" and first.words.startswith(
        f"Predicted 3 by rule 1: k1 ({kernel_labels(rs)['k1']}) is on, k2")
    second = query.explain(prog, "img1")  # k1, k2, k3 on: rule 2 (8), rule 1 blocked by k2
    assert second.prediction == "8" and "rule 1 (→ 3) needs k2" in second.words
    default = query.explain(prog, "img2")
    assert default.deciding_rank is None and "the default class" in default.words


# -- extraction --------------------------------------------------------------------------
def test_extraction_stores_labels(core_paper1, core_embedded):
    from cnn2logic.extract import ExtractConfig, extract_model

    result = extract_model(core_paper1[0], core_embedded, ExtractConfig(), progress=False,
                           labels={"k3": "ring"})
    entry = result.rules.meta[META_KEY]
    tr = result.train_codes
    assert entry["auto"] == auto_labels(tr.bits, tr.labels, tr.names, tr.classes)
    assert entry["user"] == {"k3": "ring"} and kernel_labels(result.rules)["k3"] == "ring"
    assert entry["images"] == len(tr) and len(entry["profile"]["k1"]) == 10
    assert result.seconds["labels"] < 5
    md = to_markdown(result.rules)
    assert "## The kernels the rules read" in md and "| ring | user |" in md
    with pytest.raises(LabelsError, match="unknown kernel"):
        extract_model(core_paper1[0], core_embedded, ExtractConfig(), progress=False,
                      labels={"k99": "x"})


def test_apply_label_file_none_is_identity(tmp_path):
    rs = _rules()
    assert apply_label_file(rs, None) is rs
    f = tmp_path / "l.json"
    f.write_text('{"k4": "edge"}', encoding="utf-8")
    assert kernel_labels(apply_label_file(rs, f))["k4"] == "edge"
    assert display("k4", "edge") == "k4 · edge" and display("k4", None) == "k4"
