"""``cnn2logic query``: tables, JSON equal to the Python API, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnn2logic import query
from cnn2logic.cli import main


def run(capsys, *args):
    code = main(["query", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def strip_seconds(d):
    d = dict(d)
    d.pop("seconds", None)
    return d


@pytest.mark.parametrize("args, api", [
    (["implies", "--class", "3"], lambda p: query.implies(p, "3")),
    (["conflicts"], lambda p: query.conflicts(p)),
    (["conflicts", "--no-data"], lambda p: query.conflicts(p, data=False)),
    (["necessary", "--class", "8"], lambda p: query.necessary(p, "8")),
    (["necessary", "--class", "cat-dog", "--when", "fires"],
     lambda p: query.necessary(p, "cat-dog", when="fires")),
    (["explain", "--image", "B b"], lambda p: query.explain(p, "B b")),
    (["flip", "--image", "d", "--to", "3"], lambda p: query.flip(p, "d", "3")),
])
def test_json_equals_the_api(lp_small_lp, capsys, args, api):
    code, out, err = run(capsys, lp_small_lp, *args, "--json")
    assert code == 0 and not err
    assert strip_seconds(json.loads(out)) == strip_seconds(
        json.loads(api(query.Program.from_file(lp_small_lp)).to_json()))


def test_json_terms_carry_their_text(lp_small_lp, capsys):
    _, out, _ = run(capsys, lp_small_lp, "implies", "--class", "3", "--json")
    assert [t["text"] for t in json.loads(out)["terms"]] == ["k1 ∧ k2 ∧ ¬k3", "k4"]
    _, out, _ = run(capsys, lp_small_lp, "explain", "--image", "B b", "--json")
    fired = json.loads(out)["fired"]
    assert fired and all(t["text"] for t in fired)


def test_tables(lp_small_lp, capsys):
    code, out, _ = run(capsys, lp_small_lp, "implies", "--class", "3")
    assert code == 0
    assert "class '3': 2 term(s)" in out and "1     k1 ∧ k2 ∧ ¬k3" in out
    assert "{k1, k2}" in out and "{k4}" in out
    code, out, _ = run(capsys, lp_small_lp, "flip", "--image", "d", "--to", "3")
    assert "rules predict '8'; fewest flips to predict '3': 2" in out
    code, out, _ = run(capsys, lp_small_lp, "conflicts", "--rows", "1")
    assert "... and 1 more" in out and "B b" in out
    code, out, _ = run(capsys, lp_small_lp, "explain", "--image", "0")
    assert "no rule fires: default class" in out


def test_rules_json_with_activations(lp_small, tmp_path, capsys):
    from cnn2logic.rules import save_rules

    rules, codes = lp_small
    save_rules(rules, tmp_path / "r.json")
    codes.save(tmp_path / "c.npz")
    code, out, _ = run(capsys, tmp_path / "r.json", "explain", "--image", "e",
                       "--activations", tmp_path / "c.npz", "--json")
    assert code == 0 and json.loads(out)["prediction"] == "8"


def test_user_program_and_constants(lp_small_lp, tmp_path, capsys):
    q = tmp_path / "q.lp"
    q.write_text("#const c = c_8.\nhit(I) :- prediction(I, c), image(I).\n#show hit/1.\n")
    code, out, _ = run(capsys, lp_small_lp, "--program", q, "-c", "c=c_3")
    assert code == 0 and "hit(i_b_b)" in out and "hit(i_d)" not in out
    code, out, _ = run(capsys, lp_small_lp, "--program", q, "--json")
    assert json.loads(out)["models"] == [["hit(i_d)", "hit(i_e)"]]


@pytest.mark.parametrize("args, message", [
    (["implies"], "implies needs --class"),
    (["flip", "--image", "d"], "flip needs --to"),
    (["implies", "--class", "x"], "unknown class 'x'"),
    (["explain", "--image", "nope"], "unknown image 'nope'"),
    ([], "say what to ask"),
    (["conflicts", "-c", "a=1"], "-c/--const applies to --program only"),
])
def test_errors_are_one_line(lp_small_lp, capsys, args, message):
    code, _, err = run(capsys, lp_small_lp, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_syntax_error_in_user_program_subprocess(lp_small_lp, tmp_path):
    q = tmp_path / "bad.lp"
    q.write_text("ok.\n\np(X :- q(X).\n")
    proc = subprocess.run([sys.executable, "-m", "cnn2logic", "query", str(lp_small_lp),
                           "--program", str(q)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"cnn2logic query: error: {q}:3:") and "syntax error" in line


def test_shipped_example_program(lp_small_lp, capsys):
    """examples/disagree.lp (used in the README) runs on any exported program."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "disagree.lp"
    code, out, _ = run(capsys, lp_small_lp, "--program", example, "--json")
    # The network and the rules agree on every hand-made image but "g", where the network
    # says 3 and the rules (a 2-of rule) say cat-dog.
    models = json.loads(out)["models"]
    assert code == 0 and len(models) == 1
    counts = {a.split(",")[1].rstrip(")"): int(a.split("(")[1].split(",")[0])
              for a in models[0]}
    assert counts == {'"3"': 1, '"8"': 0, '"cat-dog"': 0, '"never"': 0, '"9"': 0}
