"""The bring-your-own-CNN example runs end to end: train → extract → export → query → graph → report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "byo_end_to_end.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("byo_end_to_end_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_relu_bn_example_end_to_end(tmp_path, capsys):
    for name in ("export", "query", "graph", "report"):
        if importlib.util.find_spec(f"cnn2logic.cli.{name}") is None:
            pytest.fail(f"cnn2logic {name} is missing: the example needs every step")
    example = _load_example()
    out = tmp_path / "byo"
    rc = example.main(["--out", str(out), "--iterations", "150", "--kernels", "32", "--width",
                       "8", "--min-support", "5", "--samples", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    for step in ("cnn2logic train", "cnn2logic extract", "cnn2logic export", "cnn2logic query",
                 "cnn2logic graph", "cnn2logic report"):
        assert f"$ {step}" in printed
    # the user's model, loaded through its factory: 32 kernel units at the global pool
    rules = json.loads((out / "extract" / "rules.json").read_text())
    assert rules["meta"]["layer"] == "gap" and rules["meta"]["output_layer"] == "fc"
    assert [v["name"] for v in rules["variables"]][:2] == ["k1", "k2"]
    assert len(rules["variables"]) == 32
    assert rules["rules"], "the data-limited extraction found no rules"
    assert all(len(r["body"]) <= 3 for r in rules["rules"])
    metrics = rules["meta"]["metrics"]
    assert 0.0 < metrics["fidelity"] <= 1.0
    lp = (out / "rules.lp").read_text()
    assert "active(" in lp and "prediction(I, C)" in lp
    assert (out / "rules.pl").stat().st_size > 0
    assert "rules predict:" in printed  # the explain query answered
    for f in ("kernels.graphml", "kernels.dot", "kernels.png"):
        assert (out / "graph" / f).stat().st_size > 0
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:200]
    assert "data:image/png;base64" in html
