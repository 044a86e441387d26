"""Kernel groups (``--group-kernels``): how groups are found, what the rules file holds, and
that Python, clingo and SWI-Prolog agree on a grouped program (real solvers)."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from cnn2logic import query
from cnn2logic.errors import ExtractionError, RulesFileError
from cnn2logic.export.asp import to_asp
from cnn2logic.export.logic import write_program
from cnn2logic.extract.grouping import (GROUP_LAYER, add_columns, add_group_columns,
                                        agreement, find_groups)
from cnn2logic.query.swipl import prolog_predictions, swipl_path
from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
from cnn2logic.units import BinaryCodes

needs_swipl = pytest.mark.skipif(swipl_path() is None,
                                 reason="SWI-Prolog (swipl) is not installed")


# -- finding groups ------------------------------------------------------------------------
def test_agreement_and_complete_linkage():
    rng = np.random.default_rng(0)
    a = rng.random(1000) < 0.5
    flip = rng.random(1000) < 0.06           # b agrees with a on ~94 %
    b = a ^ flip
    c = b ^ (rng.random(1000) < 0.06)        # c agrees with b ~94 %, with a only ~88 %
    X = np.stack([a, b, c, rng.random(1000) < 0.5], axis=1)
    A = agreement(X)
    assert A[0, 0] == 1 and abs(A[0, 1] - (1 - flip.mean())) < 1e-6
    # c is close to b but not to a: complete linkage keeps it out of a's group
    assert find_groups(X, 0.9) == [[0, 1]]
    assert find_groups(X, 0.85) == [[0, 1, 2]]
    assert find_groups(X, 1.0) == []
    assert find_groups(X, 0.9) == find_groups(X.copy(), 0.9)  # deterministic


def test_exact_share_counts_as_at_least():
    X = np.array([[1, 1], [1, 1], [0, 0], [1, 0]], dtype=bool)  # agree on 3 of 4
    assert find_groups(X, 0.75) == [[0, 1]]
    assert find_groups(X, 0.76) == []


@pytest.mark.parametrize("bad", [0, -0.1, 1.5])
def test_bad_threshold(bad):
    with pytest.raises(ExtractionError, match="threshold"):
        find_groups(np.zeros((3, 2), dtype=bool), bad)


def test_group_column_is_any_member():
    X = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 1]], dtype=bool)
    W = add_columns(X, [[0, 1]])
    assert W[:, 3].tolist() == [False, True, True, True]


# -- a hand-made grouped program: every activation, three ways ------------------------------
def _grouped_rules() -> RuleSet:
    V = tuple(Variable(f"k{i + 1}", "pool", i) for i in range(5)) + (
        Variable("g1", GROUP_LAYER, 0), Variable("g2", GROUP_LAYER, 1))
    rules = (Rule("a", (Literal("g1"), Literal("k3", False))),
             Rule("b", (Literal("g2"),)),
             Rule("a", (Literal("g1"), Literal("g2"), Literal("k3")), min_true=2))
    rs = RuleSet(V, (Head("a", "class", "out", 0), Head("b", "class", "out", 1),
                     Head("c", "class", "out", 2)), rules, default="c",
                 meta={"groups": {"members": {"g1": ["k1", "k2"], "g2": ["k4", "k5"]},
                                  "agreement": {"g1": 0.93, "g2": 0.91}, "threshold": 0.9,
                                  "rule": "any"}})
    return RuleSet.from_json(rs.to_json())  # through the strict reader


def _all_codes(rs: RuleSet) -> BinaryCodes:
    X = np.array(list(itertools.product((0, 1), repeat=5)), dtype=bool)
    raw = BinaryCodes(X, rs.variables[:5], ("a", "b", "c"))
    return add_group_columns(raw, rs)


def test_add_group_columns_matches_the_rules_variables():
    rs = _grouped_rules()
    codes = _all_codes(rs)
    assert codes.names == rs.variable_names
    assert (codes.bits[:, 5] == (codes.bits[:, 0] | codes.bits[:, 1])).all()
    assert add_group_columns(codes, rs) is codes  # already there


def test_grouped_program_three_way_on_every_activation(tmp_path):
    rs = _grouped_rules()
    codes = _all_codes(rs)
    expected = dict(zip(codes.ids, rs.predict(codes.bits)))
    assert set(expected.values()) == {"a", "b", "c"}
    lp = tmp_path / "g.lp"
    write_program(lp, rs, codes)
    text = lp.read_text(encoding="utf-8")
    # data facts are over the real kernels only; the groups are derived
    assert "active(i_img31, k_g1)" not in text and "derived_kernel(k_g1)" in text
    assert "g1 = any of k1, k2" in text
    assert query.predictions(lp) == expected
    if swipl_path() is None:
        pytest.skip("SWI-Prolog (swipl) is not installed")
    pl = tmp_path / "g.pl"
    write_program(pl, rs, codes)
    assert prolog_predictions(pl) == expected


def test_queries_on_a_grouped_program_reason_over_the_members():
    rs = _grouped_rules()
    prog = query.Program.from_rules(rs, _all_codes(rs))
    # img20 = k1 on, k3 on -> g1 on, k3 on: rule 1 fails; rule 3 needs 2 of (g1, g2, k3): yes
    ex = query.explain(prog, "img20")
    assert ex.prediction == "a" and ex.deciding_rank == 3 and "g1" in ex.active
    fl = query.flip(prog, "img0", "b")  # nothing on -> b needs g2: one member on
    assert fl.flips == 1 and {tuple(s["on"]) for s in fl.solutions} == {("k4",), ("k5",)}
    need = query.necessary(prog, "b")
    assert need.must_be_inactive == [] and "k4" in need.free


@pytest.mark.parametrize("members, match", [
    ({"g1": ["k1"]}, "two or more"),
    ({"g1": ["k1", "k1"]}, "two or more"),
    ({"g1": ["k1", "nope"]}, "two or more"),
    ({"nope": ["k1", "k2"]}, "not a variable"),
])
def test_strict_reader_refuses_bad_groups(members, match):
    doc = json.loads(_grouped_rules().to_json())
    doc["meta"]["groups"]["members"] = members
    with pytest.raises(RulesFileError, match=match):
        RuleSet.from_dict(doc)


def test_strict_reader_refuses_a_kernel_in_two_groups():
    doc = json.loads(_grouped_rules().to_json())
    doc["meta"]["groups"]["members"] = {"g1": ["k1", "k2"], "g2": ["k2", "k4"]}
    with pytest.raises(RulesFileError, match="one group only"):
        RuleSet.from_dict(doc)


# -- a real extraction ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def twin_model(core_paper1):
    """core_paper1 with kernel 2 made a copy of kernel 1: their units agree everywhere."""
    model = copy.deepcopy(core_paper1[0])
    with torch.no_grad():
        model.conv1.weight[1] = model.conv1.weight[0]
        model.conv1.bias[1] = model.conv1.bias[0]
    return model


@pytest.fixture(scope="module")
def grouped(twin_model, core_embedded):
    from cnn2logic.extract import ExtractConfig, extract_model

    # a per-kernel statistic: identical units get identical thresholds (a binarisation
    # fitted for fidelity gives the copy another one, as it adds nothing)
    return extract_model(twin_model, core_embedded,
                         ExtractConfig(group_kernels=0.9, threshold="mean"),
                         progress=False, model_name="twins", labels={"k1": "twin"})


def test_extraction_groups_the_twin_kernels(grouped):
    meta = grouped.rules.meta
    members = meta["groups"]["members"]
    first = next(iter(members.values()))
    assert first[:2] == ["k1", "k2"] and meta["groups"]["agreement"]["g1"] >= 0.9
    names = grouped.rules.variable_names
    assert names[:10] == tuple(f"k{i}" for i in range(1, 11))
    assert set(names[10:]) == set(members)
    grouped_kernels = {k for ks in members.values() for k in ks}
    used = {lit.var for r in grouped.rules.rules for lit in r.body}
    assert not used & grouped_kernels  # the rules read groups, not their members
    codes = grouped.test_codes
    assert codes.names == names
    for g, ks in members.items():
        col = codes.bits[:, names.index(g)]
        assert (col == codes.bits[:, [names.index(k) for k in ks]].any(axis=1)).all()
    # labels exist for the groups too, and the rules file reads back
    assert "g1" in meta["kernel_labels"]["auto"]
    assert meta["kernel_labels"]["user"] == {"k1": "twin"}  # a member can be labelled
    RuleSet.from_json(grouped.rules.to_json())


def test_extraction_three_way(grouped, tmp_path):
    rules, codes = grouped.rules, grouped.test_codes
    expected = dict(zip(codes.ids, rules.predict(codes.bits)))
    lp = tmp_path / "t.lp"
    write_program(lp, rules, codes)
    assert query.predictions(lp) == expected
    # the fidelity the rules file states is the exported program's
    fid = np.mean([expected[i] == codes.classes[p] for i, p in zip(codes.ids,
                                                                    codes.predictions)])
    assert abs(fid - rules.meta["metrics"]["fidelity"]) < 1e-9
    if swipl_path() is None:
        pytest.skip("SWI-Prolog (swipl) is not installed")
    pl = tmp_path / "t.pl"
    write_program(pl, rules, codes)
    assert prolog_predictions(pl) == expected


def test_grouping_needs_a_method_on_codes(twin_model, core_embedded):
    from cnn2logic.extract import ExtractConfig, extract_model

    with pytest.raises(ExtractionError, match="binary"):
        extract_model(twin_model, core_embedded,
                      ExtractConfig(method="approximation", group_kernels=0.9),
                      progress=False)


def test_config_checks_the_threshold():
    from cnn2logic.extract import ExtractConfig

    with pytest.raises(ExtractionError, match="group threshold"):
        ExtractConfig(group_kernels=1.5)


def test_cli_option(tmp_path):
    def run(*extra):
        return subprocess.run([sys.executable, "-m", "cnn2logic", "extract", "nope.pt",
                               "--out", str(tmp_path / "o"), *extra],
                              capture_output=True, text=True)

    bad = run("--group-kernels", "1.5")
    assert bad.returncode == 2 and "(0, 1]" in bad.stderr
    from cnn2logic.cli import build_parser

    args = build_parser().parse_args(["extract", "m", "--out", "o", "--group-kernels"])
    assert args.group_kernels == 0.9
    args = build_parser().parse_args(["extract", "m", "--out", "o", "--group-kernels", "0.8"])
    assert args.group_kernels == 0.8
    args = build_parser().parse_args(["extract", "m", "--out", "o"])
    assert args.group_kernels is None


def test_grouped_program_header_and_semantics_text(grouped):
    text = to_asp(grouped.rules)
    assert "Groups" in text and "active iff at least one member is active" in text
