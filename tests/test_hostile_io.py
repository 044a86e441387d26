"""Hostile and broken inputs on the output side: output paths, programs, queries, names.

Each test keeps one item of issue 10 fixed: errors name the user's path, outputs never
overwrite inputs, a command's outputs are replaced as a set, SIGTERM cleans up like Ctrl-C,
a query's time limit covers grounding, clingo's integers are not wrapped, a cut program is
refused, names holding line breaks survive, ``#script`` is refused with a reason, progress
bars stay off a non-terminal and ``--image`` never silently picks one of two images.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn2logic import query
from cnn2logic._io import (OutputError, atomic_directory, atomic_path, atomic_write_text,
                           refuse_overwriting_inputs)
from cnn2logic.cli import main
from cnn2logic.cli._common import add_progress_arg, resolve_progress
from cnn2logic.errors import Cnn2LogicError, ExtractionError, QueryError
from cnn2logic.export.logic import program_text, write_program
from cnn2logic.extract.parts import parse_classes
from cnn2logic.query import Program
from cnn2logic.query.bounded import run_bounded
from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable, save_rules

ROOT = Path(__file__).resolve().parents[1]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` -> its digest and mode (hidden temporaries included)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = (hashlib.sha256(p.read_bytes()).hexdigest()
                                               + oct(p.stat().st_mode))
    return out


@pytest.fixture()
def small(lp_small, tmp_path):
    """rules.json, codes.npz and the exported small.lp / small.pl in tmp_path."""
    rules, codes = lp_small
    save_rules(rules, tmp_path / "rules.json")
    codes.save(tmp_path / "codes.npz")
    write_program(tmp_path / "small.lp", rules, codes)
    write_program(tmp_path / "small.pl", rules, codes)
    return tmp_path


# ---- output paths -------------------------------------------------------------------------

def test_errors_name_the_users_path_not_the_temporary(small, capsys):
    long = small / ("a" * 300 + ".lp")
    with pytest.raises(OSError) as info:
        atomic_write_text(long, "x")
    assert info.value.filename == str(long) and info.value.errno == errno.ENAMETOOLONG
    code, _, err = cli(capsys, "export", small / "rules.json", "--out", long)
    line = one_error_line(err)
    assert code == 2 and "File name too long" in line and "a" * 300 + ".lp" in line
    assert ".tmp" not in line and not list(small.glob(".*"))


def test_output_under_a_file_says_not_a_directory(small, capsys):
    for out in (small / "rules.json" / "x.lp", small / "rules.json" / "d" / "x.lp"):
        with pytest.raises(NotADirectoryError) as info:
            atomic_write_text(out, "x")
        assert info.value.filename == str(out)
        code, _, err = cli(capsys, "export", small / "rules.json", "--out", out)
        assert code == 2 and one_error_line(err).endswith(f"Not a directory: {out}")


def test_replacing_an_output_keeps_its_mode(tmp_path):
    out = tmp_path / "p.lp"
    out.write_text("old")
    os.chmod(out, 0o600)
    atomic_write_text(out, "new")
    assert out.read_text() == "new" and (out.stat().st_mode & 0o777) == 0o600
    fresh = tmp_path / "q.lp"
    atomic_write_text(fresh, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask


SIGTERM_SCRIPT = """
import os, signal, sys, time
import cnn2logic.cli.export as export
from cnn2logic._io import atomic_path
from cnn2logic.cli import main

def slow(args):
    with atomic_path(args.out) as tmp:
        tmp.write_bytes(b"x" * 1_000_000)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(20)
    return 0

export.run = slow
sys.exit(main(["export", "unused.json", "--out", sys.argv[1]]))
"""


def test_sigterm_removes_temporary_files_like_ctrl_c(tmp_path):
    out = tmp_path / "big.lp"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT, str(out)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert time.monotonic() - start < 15
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip() == "cnn2logic export: terminated"
    assert list(tmp_path.iterdir()) == []


# ---- outputs never overwrite inputs; a command's outputs form one set ----------------------

def test_export_refuses_to_overwrite_its_inputs(small, capsys):
    (small / "link.json").symlink_to(small / "rules.json")
    before = snapshot(small)
    for out, extra in ((small / "rules.json", ["--format", "lp"]),
                       (small / "link.json", ["--format", "lp"]),
                       (small / "codes.npz", ["--format", "lp"]),
                       (small / "." / "rules.json", ["--format", "pl"])):
        code, _, err = cli(capsys, "export", small / "rules.json", "--activations",
                           small / "codes.npz", "--out", out, *extra)
        assert code == 2 and "is the input" in one_error_line(err), err
    assert snapshot(small) == before


def test_refuse_overwriting_inputs_helper(tmp_path):
    a = tmp_path / "a.json"
    a.write_text("{}")
    os.link(a, tmp_path / "hard.json")
    for out in (a, tmp_path / "x" / ".." / "a.json", tmp_path / "hard.json"):
        with pytest.raises(OutputError, match="is the input"):
            refuse_overwriting_inputs([out], [a])
    refuse_overwriting_inputs([tmp_path / "b.json", "-", None], [a, None, "-"])


@pytest.mark.parametrize("command", [
    ["merge", "{d}/p.json", "--codes", "{d}/c.npz", "--out", "{d}/c.npz"],
    ["graph", "{d}/kernels.graphml", "--out", "{d}"],
])
def test_other_writers_refuse_to_overwrite_inputs(tmp_path, capsys, command):
    for name in ("p.json", "c.npz", "kernels.graphml"):
        (tmp_path / name).write_text("input")
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, *[c.format(d=tmp_path) for c in command])
    assert code == 2 and "is the input" in one_error_line(err)
    assert snapshot(tmp_path) == before


def test_an_interrupted_set_leaves_the_earlier_run_whole(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("rules.json", "rules.md", "codes-train.npz"):
        (out / name).write_text(f"old {name}")
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(out) as tmp:
            atomic_write_text(tmp / "rules.json", "new")
            raise KeyboardInterrupt
    assert snapshot(tmp_path) == before
    with atomic_directory(out) as tmp:
        for name in ("rules.json", "rules.md", "codes-train.npz"):
            atomic_write_text(tmp / name, f"new {name}")
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "rules.json": "new rules.json", "rules.md": "new rules.md",
        "codes-train.npz": "new codes-train.npz", "notes.txt": "mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(NotADirectoryError):
        with atomic_directory(out / "notes.txt"):
            pass


# ---- queries -----------------------------------------------------------------------------

def test_timeout_bounds_grounding_and_memory_is_capped(small, capsys):
    endless = small / "endless.lp"
    endless.write_text("p(0). p(X+1) :- p(X).\n")
    start = time.monotonic()
    code, _, err = cli(capsys, "query", small / "small.lp", "--program", endless,
                       "--timeout", "1")
    assert time.monotonic() - start < 20
    assert code == 2 and "did not finish within --timeout 1 s" in one_error_line(err)
    with pytest.raises(QueryError, match="out of memory|stopped without an answer"):
        run_bounded(lambda: bytearray(2**31), timeout=30, memory_mb=600)


def test_bounded_queries_answer_as_before(small):
    prog = Program.from_file(small / "small.lp")
    bounded, direct = run_bounded(query.implies, prog, "3", timeout=30), query.implies(prog, "3")
    assert (bounded.terms, bounded.sufficient) == (direct.terms, direct.sufficient)
    with pytest.raises(QueryError, match="unknown class"):
        run_bounded(query.implies, prog, "nope", timeout=30)


@pytest.mark.parametrize("value", ["4294967297", "-2147483649", "f(1,99999999999)",
                                   "1" * 5000])
def test_constants_clingo_cannot_hold_are_refused(small, capsys, value):
    q = small / "q.lp"
    q.write_text("#const cls = 0.\nshow(cls).\n#show show/1.\n")
    code, _, err = cli(capsys, "query", small / "small.lp", "--program", q, "-c",
                       f"cls={value}")
    assert code == 2 and "does not fit clingo's 32-bit integers" in one_error_line(err)
    code, out, _ = cli(capsys, "query", small / "small.lp", "--program", q, "-c",
                       "cls=2147483647")
    assert code == 0 and "show(2147483647)" in out


def test_a_cut_program_is_refused(small, capsys):
    text = (small / "small.lp").read_text()
    lines = text.splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if line.startswith("rule(3,"))
    (small / "cut.lp").write_text("".join(lines[:cut]))
    code, _, err = cli(capsys, "query", small / "cut.lp", "implies", "--class", "3")
    assert code == 2 and "is incomplete" in one_error_line(err)
    # a line lost in the middle: the counts in the end line disagree
    (small / "gap.lp").write_text("".join(lines[:cut] + lines[cut + 1:]))
    with pytest.raises(QueryError, match="holds 5 rules.*exported with 6"):
        Program.from_file(small / "gap.lp")
    pl = (small / "small.pl").read_text()
    (small / "cut.pl").write_text(pl[:pl.index("\nimage(") + 1])
    with pytest.raises(QueryError, match="incomplete"):
        query.check_program(small / "cut.pl")


def test_export_changes_only_by_its_end_line(lp_small):
    rules, codes = lp_small
    for fmt in ("lp", "pl"):
        text = program_text(rules, codes, format=fmt)
        body, last = text[:-1].rsplit("\n", 1)
        assert last == "% cnn2logic end: 6 rules, 6 patterns, 7 images"
        assert "% cnn2logic end" not in body


def test_script_blocks_are_refused_with_a_reason(small, capsys):
    marker = small / "ran"
    script = small / "script.lp"
    script.write_text(f'p.\n#script (python)\nopen({str(marker)!r}, "w")\n#end.\n')
    code, _, err = cli(capsys, "query", small / "small.lp", "--program", script)
    line = one_error_line(err)
    assert code == 2 and f"{script}:2: #script blocks are not run" in line
    assert not marker.exists()


def test_an_empty_class_range_is_named():
    with pytest.raises(ExtractionError, match="'5-2' is empty"):
        parse_classes("5-2", [str(i) for i in range(10)])


# ---- names holding line breaks -----------------------------------------------------------

BREAKS = ["a\rb", "c\r\nd", "e\u2028f", "g\x85h"]


def test_names_with_line_breaks_survive_export_and_every_query(tmp_path, capsys):
    from cnn2logic.units import BinaryCodes

    kernels = tuple(Variable(f"k{name}", "conv", i) for i, name in enumerate(BREAKS))
    rules = RuleSet(kernels, tuple(Head(c) for c in BREAKS),
                    (Rule(BREAKS[0], (Literal(kernels[0].name),)),
                     Rule(BREAKS[1], (Literal(kernels[1].name), Literal(kernels[2].name)))),
                    default=BREAKS[3])
    codes = BinaryCodes(np.eye(4, dtype=bool), kernels, tuple(BREAKS), np.arange(4),
                        np.arange(4), tuple(f"img{b}" for b in BREAKS))
    save_rules(rules, tmp_path / "r.json")
    codes.save(tmp_path / "c.npz")
    code, _, err = cli(capsys, "export", tmp_path / "r.json", "--activations",
                       tmp_path / "c.npz", "--out", tmp_path / "r.lp")
    assert code == 0, err
    lp = tmp_path / "r.lp"
    for args in (["implies", "--class", BREAKS[1]], ["explain", "--image", f"img{BREAKS[0]}"],
                 ["explain", "--image-index", "2"], ["conflicts"],
                 ["flip", "--image-index", "0", "--to", BREAKS[1]]):
        code, out, err = cli(capsys, "query", lp, *args, "--json")
        assert code == 0, (args, err)
    assert query.explain(lp, f"img{BREAKS[2]}").image == f"img{BREAKS[2]}"
    assert query.implies(lp, BREAKS[1]).terms[0].text.count("∧") == 1
    if query.swipl_path():
        write_program(tmp_path / "r.pl", rules, codes)
        query.check_program(tmp_path / "r.pl")
        assert set(query.prolog_predictions(tmp_path / "r.pl")) == set(codes.ids)


# ---- progress bars and --image -----------------------------------------------------------

def test_progress_bars_only_on_a_terminal(capsys):
    p = argparse.ArgumentParser()
    add_progress_arg(p)
    assert p.parse_args(["--progress"]).progress is True
    assert p.parse_args(["--no-progress"]).progress is False
    args = p.parse_args([])
    assert args.progress is None
    resolve_progress(args)  # under pytest stderr is captured: not a terminal
    assert args.progress is False


def test_an_image_id_that_is_another_position_is_ambiguous(tmp_path, capsys):
    from cnn2logic.units import BinaryCodes

    kernels = (Variable("k1"), Variable("k2"))
    rules = RuleSet(kernels, (Head("a"), Head("b")), (Rule("a", (Literal("k1"),)),),
                    default="b")
    ids = ("x", "y", "0")  # the image with id "0" is at position 2; position 0 is "x"
    codes = BinaryCodes(np.array([[1, 0], [0, 1], [0, 0]], dtype=bool), kernels, ("a", "b"),
                        ids=ids)
    lp = tmp_path / "r.lp"
    write_program(lp, rules, codes)
    for prog in (lp, Program(program_text(rules, codes) .replace("% ---- data", "% data"))):
        with pytest.raises(QueryError, match="ambiguous.*--image-id 0 or --image-index 0"):
            query.explain(prog, "0")
        with pytest.raises(QueryError, match="ambiguous"):
            query.flip(prog, "0", "a")
        assert query.explain(prog, "0", image_by="id").image == "0"
        assert query.explain(prog, "0", image_by="index").image == "x"
        assert query.flip(prog, "0", "a", image_by="index").image == "x"
    assert query.explain(lp, "1").image == "y"  # no image has the id "1": no ambiguity
    code, _, err = cli(capsys, "query", lp, "explain", "--image", "0")
    assert code == 2 and "ambiguous" in one_error_line(err)
    code, out, _ = cli(capsys, "query", lp, "explain", "--image-id", "0", "--json")
    assert code == 0 and '"image": "0"' in out
    code, out, _ = cli(capsys, "query", lp, "explain", "--image-index", "0", "--json")
    assert code == 0 and '"image": "x"' in out


# ---- fuzzing the program reader ----------------------------------------------------------

def _mutate(text: str, data) -> str:
    kind = data.draw(st.sampled_from(["cut", "cut_line", "drop_line", "dup_line", "insert",
                                      "replace"]))
    lines = text.splitlines(keepends=True)
    if kind == "cut":
        return text[:data.draw(st.integers(0, len(text)))]
    if kind == "cut_line":
        return "".join(lines[:data.draw(st.integers(0, len(lines)))])
    i = data.draw(st.integers(0, len(lines) - 1))
    if kind == "drop_line":
        return "".join(lines[:i] + lines[i + 1:])
    if kind == "dup_line":
        return "".join(lines[:i + 1] + lines[i:])
    pos = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.text(st.sampled_from(list('%\n\r"\\().:-#, pimage_0')), max_size=6))
    if kind == "insert":
        return text[:pos] + junk + text[pos:]
    return text[:pos] + junk + text[pos + len(junk):]


@given(data=st.data())
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_programs_give_an_answer_or_one_line_error(lp_small, tmp_path, data):
    rules, codes = lp_small
    text = _mutate(program_text(rules, codes), data)
    path = tmp_path / "fuzz.lp"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        prog = Program.from_file(path)
        prog.candidate_lines(data.draw(st.sampled_from(["0", "d", "i_d", "B b", "99"])))
        assert run_bounded(query.implies, prog, "3", timeout=20) is not None
        run_bounded(query.explain, prog, "d", timeout=20)
    except Cnn2LogicError as exc:
        assert "\n" not in str(exc) and "\r" not in str(exc), str(exc)


# ---- a corpus of broken inputs through the command line ----------------------------------

def _corpus(d: Path) -> list[list[str]]:
    (d / "garbage.json").write_bytes(b"\x00\xff{not json")
    (d / "list.json").write_text("[1, 2, 3]")
    (d / "meta.json").write_text((d / "rules.json").read_text()
                                 .replace('"meta": {', '"meta": [{', 1)[:200])
    (d / "latin1.lp").write_bytes(b"% caf\xe9\np.\n")
    text = (d / "small.lp").read_text()
    (d / "half.lp").write_text(text[:len(text) // 2])
    (d / "bad.lp").write_text("p(X :- q.\n")
    (d / "file").write_text("not a folder")
    out = d / "out"
    return [
        ["export", d / "garbage.json", "--out", out / "x.lp"],
        ["export", d / "list.json", "--out", out / "x.lp"],
        ["export", d / "meta.json", "--out", out / "x.lp"],
        ["export", d / "missing.json", "--out", out / "x.lp"],
        ["export", d / "rules.json", "--out", out / "x.txt"],
        ["export", d / "rules.json", "--out", d / "file" / "x.lp"],
        ["export", d / "rules.json", "--out", out / ("b" * 300 + ".lp")],
        ["export", d / "rules.json", "--activations", d / "garbage.json", "--out",
         out / "x.lp"],
        ["export", d / "rules.json", "--out", d / "rules.json", "--format", "lp"],
        ["query", d / "half.lp", "implies", "--class", "3"],
        ["query", d / "latin1.lp", "implies", "--class", "3"],
        ["query", d / "missing.lp", "conflicts"],
        ["query", d / "small.lp", "--program", d / "bad.lp"],
        ["query", d / "small.lp", "--program", d / "missing.lp"],
        ["query", d / "small.lp", "implies", "--class", "nope"],
        ["query", d / "small.lp", "explain", "--image", "nope"],
        ["query", d / "small.lp", "flip", "--image-index", "99", "--to", "3"],
        ["query", d / "small.lp", "--program", d / "bad.lp", "-c", "x=4294967297"],
        ["query", d / "garbage.json", "implies", "--class", "3"],
        ["graph", d / "garbage.json", "--out", out],
        ["graph", d / "list.json", "--out", out],
        ["graph", d / "rules.json", "--out", d / "file"],
    ]


def test_cli_corpus_of_broken_inputs(small, capsys):
    cases = _corpus(small)
    before = snapshot(small)
    for args in cases:
        code, _, err = cli(capsys, *args)
        assert code == 2, (args, err)
        one_error_line(err)
        assert snapshot(small) == before, args  # no new, changed or temporary file
