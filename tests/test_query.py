"""Every query on the hand-made rule base of ``conftest.lp_make_small_rules`` gives the
answer worked out by hand (the reasoning is in the comments), and flips re-evaluate."""

from __future__ import annotations

import numpy as np
import pytest

from cnn2logic import query
from cnn2logic.errors import QueryError, SolverError
from cnn2logic.query import Program


@pytest.fixture(scope="module")
def prog(lp_small_lp):
    return Program.from_file(lp_small_lp)


@pytest.fixture(scope="module")
def whole(lp_small_lp):
    """The same program without the export layout: loaded whole, never split."""
    text = lp_small_lp.read_text(encoding="utf-8").replace("% ---- ", "% ")
    p = Program(text)
    assert not p.layered
    return p


def test_implies_terms_and_kernels(prog):
    r = query.implies(prog, "3")
    assert r.cls == "3"
    assert [(t.rank, t.text) for t in r.terms] == [(1, "k1 ∧ k2 ∧ ¬k3"), (3, "k4")]
    # Positive kernels: {k1, k2} in rank 1, {k4} in rank 3: none in both.
    assert r.in_every_term == [] and r.in_some_term == ["k1", "k2", "k4"]


def test_implies_sufficient_sets(prog):
    # Exactly {k4} active: ranks 1, 2 fail, rank 3 fires -> 3.  Exactly {k1, k2}: rank 1.
    # Without k4, only rank 1 gives 3, and it needs k1 and k2; {k1} alone fires the
    # 2-of rule for cat-dog and {k2} alone fires nothing (default cat-dog).
    r = query.implies(prog, "3")
    assert r.sufficient == [["k4"], ["k1", "k2"]] and r.complete


def test_implies_by_identifier_and_hostile_name(prog):
    assert query.implies(prog, "c_3").cls == "3"
    r = query.implies(prog, "cat-dog")
    assert [t.text for t in r.terms] == ["2-of(k1, k4, ¬k2)"]
    # The empty activation fires nothing: the default class cat-dog.
    assert r.sufficient == [[]]


def test_implies_class_that_is_never_predicted(prog):
    # never <- k1 & k2 fires, but rank 1 (no k3) or rank 4 (k3) always fires first.
    r = query.implies(prog, "never")
    assert [t.text for t in r.terms] == ["k1 ∧ k2"] and r.in_every_term == ["k1", "k2"]
    assert r.sufficient == []
    r9 = query.implies(prog, "9")
    assert r9.terms == [] and r9.sufficient == []


def test_implies_limit_marks_incomplete(prog):
    r = query.implies(prog, "3", limit=1)
    assert len(r.sufficient) == 1 and not r.complete


def test_necessary(prog):
    # 8 is predicted when rank 2 fires (k3, not k1) or rank 4 fires first ({k1, k2, k3}):
    # k3 in both, everything else varies.
    r = query.necessary(prog, "8")
    assert (r.must_be_active, r.must_be_inactive, r.free) == (["k3"], [], ["k1", "k2", "k4"])
    # cat-dog (the default) is predicted exactly when no rule for 3 or 8 fires; k4 fires
    # rank 3, so it must be off.
    r = query.necessary(prog, "cat-dog")
    assert (r.must_be_active, r.must_be_inactive) == ([], ["k4"])
    # Firing (not predicting) the 2-of rule has no such constraint: {k1} and {k4} both do.
    r = query.necessary(prog, "cat-dog", when="fires")
    assert (r.must_be_active, r.must_be_inactive) == ([], [])
    assert query.necessary(prog, "never", when="fires").must_be_active == ["k1", "k2"]
    assert not query.necessary(prog, "never").possible
    assert not query.necessary(prog, "9", when="fires").possible


def test_conflicts_structure(prog):
    r = query.conflicts(prog)
    # Positive kernels per class rule: {k1,k2} {k3} {k4} {k1,k2,k3} {k1,k4} {k1,k2}.
    assert r.never_together == [("k2", "k4"), ("k3", "k4")]
    # Class 8: k1 is negative in rank 2 and positive in rank 4.
    assert r.opposite_polarity == [{"class": "8", "kernel": "k1", "positive": 1,
                                    "negative": 1}]


def test_conflicts_on_data_and_in_principle(prog):
    r = query.conflicts(prog)
    # "B b" and "f" ({k4}) fire 3 and cat-dog; "c'3" ({k1,k2}) fires 3 and never;
    # "e" ({k1,k2,k3}) fires 8 and never.
    assert r.on_data == [
        {"classes": ["3", "cat-dog"], "images": 2, "example": "B b"},
        {"classes": ["3", "never"], "images": 1, "example": "c'3"},
        {"classes": ["8", "never"], "images": 1, "example": "e"},
    ]
    # Minimal activations firing two classes: {k4} (3, cat-dog) and {k1, k2} (3, never);
    # singletons {k1}, {k2}, {k3} fire one class at most, and every other two-class
    # activation contains one of these.
    assert [(w.kernels, w.classes, w.on_data) for w in r.in_principle] == [
        (["k4"], ["3", "cat-dog"], True), (["k1", "k2"], ["3", "never"], True)]
    assert r.complete and r.has_data


@pytest.mark.parametrize("which", ["prog", "whole"])
def test_conflicts_without_data(which, request):
    p = request.getfixturevalue(which)
    full, bare = query.conflicts(p), query.conflicts(p, data=False)
    # Everything about the rules is unchanged; the data part is skipped, and says so.
    assert (bare.never_together, bare.opposite_polarity) == (full.never_together,
                                                             full.opposite_polarity)
    assert [(w.kernels, w.classes) for w in bare.in_principle] == \
        [(w.kernels, w.classes) for w in full.in_principle]
    assert bare.on_data == [] and not bare.has_data and bare.data_skipped
    assert not any(w.on_data for w in bare.in_principle)
    assert "not evaluated (--no-data)" in bare.format()
    assert full.has_data and not full.data_skipped


def test_explain(prog):
    r = query.explain(prog, "B b")
    assert (r.image, r.index, r.active) == ("B b", 1, ["k4"])
    assert [(t.rank, t.cls, t.text) for t in r.fired] == [
        (3, "3", "k4"), (5, "cat-dog", "2-of(k1, k4, ¬k2)")]
    assert (r.deciding_rank, r.prediction, r.network, r.label) == (3, "3", "3", "3")


def test_explain_default_and_lookup_by_index_and_identifier(prog):
    r = query.explain(prog, "0")  # position 0 is image "a": nothing active, nothing fires
    assert (r.image, r.fired, r.deciding_rank, r.prediction) == ("a", [], None, "cat-dog")
    assert query.explain(prog, 5).image == "f"
    assert query.explain(prog, "i_c_3").image == "c'3"


def _predict(rules, active):
    bits = np.array([[f"k{i}" in active for i in range(1, 5)]])
    return rules.predict(bits)[0]


def test_flip_minimal_and_verified(prog, lp_small):
    rules, _ = lp_small
    r = query.flip(prog, "d", "3")
    # d = {k3} -> 8.  One flip never gives 3 ({}: default; {k1,k3}: 2-of rule; {k2,k3},
    # {k3,k4}: rank 2).  Two flips: {k1,k3,k4} (rank 3) and {k4} (rank 3) work,
    # {k1,k2,k3} (rank 4), {k2,k3,k4} (rank 2), {k1}, {k2} do not.
    assert (r.before, r.flips, r.possible) == ("8", 2, True)
    assert r.solutions == [{"on": ["k1", "k4"], "off": []}, {"on": ["k4"], "off": ["k3"]}]
    for sol in r.solutions:
        active = (set(("k3",)) | set(sol["on"])) - set(sol["off"])
        assert _predict(rules, active) == "3"


def test_flip_every_image_to_every_class_re_evaluates(prog, lp_small):
    """All optimal flips, checked by the Python evaluator; optimality by brute force."""
    import itertools

    rules, codes = lp_small
    for n, image in enumerate(codes.ids):
        start = {f"k{i + 1}" for i in np.flatnonzero(codes.bits[n])}
        for cls in ("3", "8", "cat-dog", "never"):
            r = query.flip(prog, image, cls, limit=0)
            best = None
            for bits in itertools.product([False, True], repeat=4):
                active = {f"k{i + 1}" for i, b in enumerate(bits) if b}
                if _predict(rules, active) == cls:
                    d = len(active ^ start)
                    best = d if best is None else min(best, d)
            assert r.possible == (best is not None)
            if best is None:
                continue
            assert r.flips == best
            for sol in r.solutions:
                assert len(sol["on"]) + len(sol["off"]) == best
                assert _predict(rules, (start | set(sol["on"])) - set(sol["off"])) == cls


def test_flip_impossible_and_already_there(prog):
    r = query.flip(prog, "d", "never")
    assert not r.possible and r.flips is None and r.solutions == []
    r = query.flip(prog, "a", "cat-dog")
    assert r.flips == 0 and r.solutions == [{"on": [], "off": []}]


def test_whole_program_gives_the_same_answers(prog, whole):
    """The split loading is only an optimisation: loading everything answers the same."""
    for fn in (lambda p: query.implies(p, "3"), lambda p: query.conflicts(p),
               lambda p: query.necessary(p, "8"), lambda p: query.explain(p, "e"),
               lambda p: query.flip(p, "d", "3")):
        a, b = fn(prog).to_dict(), fn(whole).to_dict()
        a.pop("seconds"), b.pop("seconds")
        assert a == b


def test_unknown_class_and_image_are_clear_errors(prog):
    known = r"unknown class 'x'; classes: '3', '8', '9', 'cat-dog', 'never'$"
    with pytest.raises(QueryError, match=known):
        query.implies(prog, "x")
    with pytest.raises(QueryError, match="unknown class"):
        query.flip(prog, "a", "nope")
    with pytest.raises(QueryError, match=r"unknown image 'zz'"):
        query.explain(prog, "zz")
    with pytest.raises(QueryError, match=r"unknown image '99'"):
        query.flip(prog, 99, "3")
    with pytest.raises(QueryError, match="when must be"):
        query.necessary(prog, "3", when="sometimes")


def test_image_queries_without_data(lp_small):
    rules, _ = lp_small
    p = Program.from_rules(rules)
    with pytest.raises(QueryError, match="no images"):
        query.explain(p, "a")
    assert query.implies(p, "3").sufficient == [["k4"], ["k1", "k2"]]
    assert query.conflicts(p).on_data == [] and not query.conflicts(p).has_data


def test_user_program(prog, tmp_path):
    q = tmp_path / "mine.lp"
    q.write_text("#const c = c_8.\nhit(I) :- prediction(I, c), image(I).\n#show hit/1.\n")
    r = query.run_program(prog, q)
    assert r.satisfiable and r.models == [["hit(i_d)", "hit(i_e)"]] and not r.warnings
    r = query.run_program(prog, q, consts={"c": "c_3"})
    assert r.models == [["hit(i_b_b)", "hit(i_c_3)", "hit(i_f)"]]


def test_user_program_with_optimisation_and_several_models(prog, tmp_path):
    q = tmp_path / "opt.lp"
    q.write_text("{ pick(K) : input_kernel(K) }.\n:- not pick(k_k1), not pick(k_k2).\n"
                 "#minimize { 1,K : pick(K) }.\n#show pick/1.\n")
    r = query.run_program(prog, q, models=0, args=["--opt-mode=optN"])
    assert r.optimal and sorted(r.models) == [["pick(k_k1)"], ["pick(k_k2)"]]
    assert all(c == [1] for c in r.costs)


def test_user_program_syntax_error_has_clingos_message_and_line(prog, tmp_path):
    q = tmp_path / "bad.lp"
    q.write_text("% a comment\nok.\np(X) :- q(X\n")
    with pytest.raises(SolverError) as info:
        query.run_program(prog, q)
    msg = str(info.value)
    assert f"{q}:4:1" in msg and "syntax error" in msg
    assert info.value.location == (str(q), 4, 1)


def test_user_program_unsafe_variable_and_warnings(prog, tmp_path):
    q = tmp_path / "unsafe.lp"
    q.write_text("p(X) :- not kernel(X, _, _).\n")
    with pytest.raises(SolverError, match=r"unsafe.lp:1:1-\d+: error: unsafe variables"):
        query.run_program(prog, q)
    q.write_text("p :- undefined_thing.\n#show p/0.\n")
    r = query.run_program(prog, q)
    assert r.models == [[]] and any("undefined_thing" in w for w in r.warnings)


def test_bad_constants_never_reach_clingo(prog, tmp_path):
    q = tmp_path / "q.lp"
    q.write_text("#show.\n")
    with pytest.raises(QueryError, match="not a clingo term"):
        query.run_program(prog, q, consts={"x": "("})
    with pytest.raises(QueryError, match="not a clingo identifier"):
        query.run_program(prog, q, consts={"X": "1"})


def test_missing_files(tmp_path, prog):
    with pytest.raises(QueryError, match="program file not found"):
        Program.from_file(tmp_path / "nope.lp")
    with pytest.raises(QueryError, match="query program not found"):
        query.run_program(prog, tmp_path / "nope.lp")


def test_shipped_programs_are_found():
    names = sorted(p.stem for p in query.programs_dir().glob("*.lp"))
    assert names == ["conflicts", "explain", "flip", "implies", "necessary", "predictions"]
    with pytest.raises(QueryError, match="no shipped query program"):
        query.program_path("nothing")


def test_programs_ship_with_the_package():
    """cnn2logic/programs links to the top-level programs/ and is wheel package data."""
    from pathlib import Path

    import cnn2logic

    repo = Path(__file__).resolve().parents[1]
    linked = Path(cnn2logic.__file__).parent / "programs"
    assert linked.resolve() == (repo / "programs").resolve()
    assert query.programs_dir().resolve() == (repo / "programs").resolve()
    assert '"programs/*.lp"' in (repo / "pyproject.toml").read_text()


def test_results_serialise(prog):
    import json

    for r in (query.implies(prog, "3"), query.conflicts(prog), query.necessary(prog, "8"),
              query.explain(prog, "e"), query.flip(prog, "d", "3")):
        d = json.loads(r.to_json())
        assert d == json.loads(r.to_json())
        assert r.format(max_rows=None)
