"""Errors on output and in messages: one line on stderr, exit 2, naming the user's path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnn2logic.cli import main
from cnn2logic.rules import save_rules

REPO = Path(__file__).resolve().parents[1]


def _run(args, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "cnn2logic", *map(str, args)],
                          stderr=subprocess.PIPE, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL, **kwargs)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_stdout_is_one_line_naming_standard_output(lp_small_lp):
    with open("/dev/full", "w") as full:
        proc = _run(["query", lp_small_lp, "implies", "--class", "3", "--json"], stdout=full)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "cnn2logic query: error: No space left on device: standard output"]


def test_closed_pipe_is_quiet(lp_small_lp):
    proc = subprocess.Popen([sys.executable, "-m", "cnn2logic", "query", str(lp_small_lp),
                             "implies", "--class", "3", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(REPO)))
    proc.stdout.close()  # the reader went away before reading anything
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and b"Traceback" not in err


def test_newlines_in_names_stay_on_one_line(tmp_path, capsys):
    bad = tmp_path / "a\nb\r\u2028c" / "rules.json"
    assert main(["export", str(bad), "--out", str(tmp_path / "p.lp")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "\\n" in err and "\\u2028" in err


def test_output_under_a_read_only_directory(lp_small, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    rules, _ = lp_small
    src = tmp_path / "rules.json"
    save_rules(rules, src)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["export", str(src), "--out", str(ro / "p.lp")]) == 2
    finally:
        ro.chmod(0o700)
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_wrong_type_in_rules_json_is_one_line(lp_small, tmp_path, capsys):
    rules, _ = lp_small
    doc = rules.to_dict()
    doc["meta"] = ["not", "an", "object"]
    src = tmp_path / "rules.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    for command in (["export", str(src), "--out", str(tmp_path / "p.lp")],
                    ["graph", str(src), "--out", str(tmp_path / "g")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "meta must be an object" in err, err
    assert not (tmp_path / "p.lp").exists() and not (tmp_path / "g").exists()
