"""``cnn2logic export``: files, formats, byte-identical output, one-line errors, no partial
files."""

from __future__ import annotations

import pytest

from cnn2logic.cli import main
from cnn2logic.export.asp import to_asp
from cnn2logic.export.prolog import to_prolog
from cnn2logic.query.swipl import check_program, swipl_path
from cnn2logic.rules import save_rules


@pytest.fixture()
def files(lp_small, tmp_path):
    rules, codes = lp_small
    stored = [{"head": "8", "body": [["k2", True]], "min_true": None, "stats": {}}]
    save_rules(rules.replace(meta={**rules.meta, "unminimized_rules": stored}),
               tmp_path / "rules.json")
    codes.save(tmp_path / "codes.npz")
    return tmp_path / "rules.json", tmp_path / "codes.npz"


def test_export_lp_and_pl(files, tmp_path, capsys):
    rules_file, codes_file = files
    assert main(["export", str(rules_file), "--activations", str(codes_file),
                 "--out", str(tmp_path / "out.lp")]) == 0
    assert "wrote ASP program" in capsys.readouterr().out
    text = (tmp_path / "out.lp").read_text(encoding="utf-8")
    assert "%   rules file: rules.json" in text and "%   activations file: codes.npz" in text
    assert "image(i_b_b)." in text
    assert main(["export", str(rules_file), "--format", "pl", "--out",
                 str(tmp_path / "prog.txt"), "--module", "digits"]) == 0
    pl = (tmp_path / "prog.txt").read_text(encoding="utf-8")
    assert ":- module(digits, [" in pl and "image(i_" not in pl
    if swipl_path():
        check_program(tmp_path / "prog.txt")


def test_output_is_byte_identical_and_matches_the_api(files, lp_small, tmp_path):
    rules_file, codes_file = files
    for name in ("a.lp", "b.lp", "a.pl", "b.pl"):
        assert main(["export", str(rules_file), "--activations", str(codes_file),
                     "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "a.lp").read_bytes() == (tmp_path / "b.lp").read_bytes()
    assert (tmp_path / "a.pl").read_bytes() == (tmp_path / "b.pl").read_bytes()
    from cnn2logic.rules import load_rules
    from cnn2logic.units import BinaryCodes

    sources = {"rules file": "rules.json", "activations file": "codes.npz"}
    rules, codes = load_rules(rules_file), BinaryCodes.load(codes_file)
    assert (tmp_path / "a.lp").read_text(encoding="utf-8") == to_asp(rules, codes,
                                                                     sources=sources)
    assert (tmp_path / "a.pl").read_text(encoding="utf-8") == to_prolog(rules, codes,
                                                                        sources=sources)


def test_stdout_and_unminimized(files, capsys):
    rules_file, _ = files
    assert main(["export", str(rules_file), "--format", "lp", "--out", "-",
                 "--unminimized"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("% cnn2logic") and "fires(I, 1) :- evaluate(I), active(I, k_k2)." \
        in out and "fires(I, 2)" not in out


@pytest.mark.parametrize("extra, message", [
    (["--out", "x.txt"], "cannot tell the format"),
    (["--out", "-"], "cannot tell the format"),
    (["--out", "x.lp", "--module", "m"], "--module applies to Prolog"),
])
def test_usage_errors(files, tmp_path, capsys, extra, message):
    rules_file, _ = files
    assert main(["export", str(rules_file), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_errors_leave_no_partial_file(lp_small, files, tmp_path, capsys):
    rules, codes = lp_small
    from cnn2logic.units import BinaryCodes

    short = BinaryCodes(codes.bits[:, :3], codes.variables[:3], codes.classes)
    short.save(tmp_path / "short.npz")
    out = tmp_path / "keep.lp"
    out.write_text("old\n")
    assert main(["export", str(files[0]), "--activations", str(tmp_path / "short.npz"),
                 "--out", str(out)]) == 2
    assert "lack 1 kernel" in capsys.readouterr().err
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["rules.json", "codes.npz", "short.npz", "keep.lp"])
    save_rules(rules, tmp_path / "plain.json")
    assert main(["export", str(tmp_path / "plain.json"), "--unminimized", "--out",
                 str(tmp_path / "u.lp")]) == 2
    assert "no unminimised version" in capsys.readouterr().err
    assert not (tmp_path / "u.lp").exists()


def test_missing_inputs_are_one_line_errors(tmp_path, capsys):
    # In-process: the subprocess check of "no traceback" lives in test_query_cli.py.
    assert main(["export", str(tmp_path / "no.json"), "--out", str(tmp_path / "x.lp")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"cnn2logic export: error: rules file not found: {tmp_path / 'no.json'}"]
    (tmp_path / "r.json").write_text("{")
    assert main(["export", str(tmp_path / "r.json"), "--out", str(tmp_path / "x.lp")]) == 2
    err = capsys.readouterr().err
    assert "not JSON" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.lp").exists()
