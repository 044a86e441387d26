"""The train/extract command line: outputs, determinism, and one-line errors with exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnn2logic.cli import main
from cnn2logic.model.spec import ConvSpec, ModelSpec, build_model, save_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    ckpt = d / "m.safetensors"
    assert main(["train", "paper1", "--out", str(ckpt), "--iterations", "200",
                 "--no-progress", "--train-size", "2000"]) == 0
    return ckpt


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "cnn2logic", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_train_writes_checkpoint_and_metrics(trained):
    import json

    metrics = json.loads(trained.with_name("m.metrics.json").read_text())
    assert metrics["iterations"] == 200 and metrics["batch_size"] == 100
    assert 0.1 < metrics["test_accuracy"] <= 1.0


def test_extract_is_byte_identical_across_runs(trained, tmp_path):
    for out in ("a", "b"):
        assert main(["extract", str(trained), "--out", str(tmp_path / out), "--no-progress",
                     "--test-size", "500"]) == 0
    for name in ("rules.json", "rules.md", "codes-train.npz", "codes-test.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    from cnn2logic.rules import load_rules

    rules = load_rules(tmp_path / "a" / "rules.json")
    assert rules.meta["settings"]["mode"] == "argmax"
    assert "| class | term |" in (tmp_path / "a" / "rules.md").read_text()


def bad_cases(tmp_path, trained):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(trained.read_bytes()[:200])
    relu = tmp_path / "relu.safetensors"
    relu_model = build_model(ModelSpec(convs=(ConvSpec(4, 27, "relu"),)), seed=0)
    with torch.no_grad():
        relu_model.conv1.bias += 5.0  # unbounded ReLU units well above 1
    save_checkpoint(relu_model, relu)
    return [
        (["extract", tmp_path / "missing.safetensors"], "checkpoint not found"),
        (["extract", corrupt], "corrupt.safetensors: corrupt"),
        (["extract", trained, "--data", tmp_path / "nodata"], "nodata: data directory does not exist"),
        (["extract", trained, "--layer", "conv7"], "no layer named 'conv7'"),
        (["extract", trained, "--order", "0"], "order k must be ≥ 1, got 0"),
        (["extract", trained, "--mode", "softmax"], "invalid choice: 'softmax'"),
        (["extract", relu, "--threshold", "half"], "threshold 'half' needs units in [0, 1]"),
        (["train", "paper2", "--out", tmp_path / "x.safetensors"], "unknown architecture 'paper2'"),
        (["train", "paper1", "--out", tmp_path / "x.safetensors", "--iterations", "-5"],
         "must be at least 1"),
    ]


def call_main(args, capsys):
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    return code, capsys.readouterr().err


def test_bad_input_gives_one_line_and_exit_2_and_no_output(trained, tmp_path, capsys):
    for args, message in bad_cases(tmp_path, trained):
        out = tmp_path / "out"
        extra = ["--out", out] if args[0] == "extract" else []
        code, stderr = call_main([*args, *extra, "--no-progress"], capsys)
        assert code == 2, (args, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, stderr)
        assert not out.exists() or not any(out.iterdir()), args
        assert not (tmp_path / "x.safetensors").exists()


def test_error_from_a_real_process_has_no_traceback(tmp_path):
    code, _, stderr = run_cli("extract", tmp_path / "missing.safetensors", "--out", tmp_path / "o")
    assert code == 2 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == [
        f"cnn2logic extract: error: checkpoint not found: {tmp_path / 'missing.safetensors'}"]
