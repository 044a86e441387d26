"""A model file never runs code: hostile .pt2 / TorchScript archives are refused everywhere.

Each hostile archive is built here from a real ``torch.export`` archive and carries a pickle
whose unpickling would create a marker file.  A control check loads each one the way torch
does unguarded and sees the marker appear, so the archives really are malicious; then every
subcommand that takes a model must refuse them (exit 2, one line) with no marker.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from cnn2logic.model import load_model, read_state_dict
from cnn2logic.cli import main
from cnn2logic.errors import CheckpointError
from cnn2logic.model.safeload import check_export_archive, no_unpickling

REPO = Path(__file__).resolve().parents[1]
FACTORY = "examples/relu_bn_cnn.py:make_net"
FACTORY_KWARGS = '{"kernels": 6, "width": 4}'


class _Payload:
    """Unpickling this creates ``marker``: what an attacker's code would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def _net() -> nn.Module:
    sys.path.insert(0, str(REPO / "examples"))
    try:
        from relu_bn_cnn import make_net
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    return make_net(kernels=6, width=4).eval()


def _exported(tmp_path: Path) -> Path:
    path = tmp_path / "good.pt2"
    ep = torch.export.export(_net(), (torch.rand(2, 1, 28, 28),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, str(path))
    return path


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy the zip ``src`` to ``dst`` with ``edit(name, data) -> data | None`` applied."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            out = edit(info.filename, zin.read(info))
            if out is not None:
                zout.writestr(info, out)
        extra = edit(None, None)
        if extra:
            for name, data in extra:
                zout.writestr(name, data)
    return dst


def _pickled_weight(good: Path, dst: Path, marker: Path) -> Path:
    """The weights config marks the first tensor use_pickle; its payload is the pickle."""
    state = {}

    def edit(name, data):
        if name is None:
            return None
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            fqn = sorted(config["config"])[0]
            config["config"][fqn]["use_pickle"] = True
            state["file"] = config["config"][fqn]["path_name"]
            return json.dumps(config).encode()
        return data

    _rewrite(good, dst, edit)  # first pass finds the payload's file name
    target = state["file"]

    def edit2(name, data):
        if name is None:
            return None
        if name.endswith(f"/data/weights/{target}"):
            return pickle.dumps(_Payload(marker))
        return edit(name, data)

    return _rewrite(good, dst, edit2)


def _opaque_constant(good: Path, dst: Path, marker: Path) -> Path:
    """An 'opaque object' constant: torch.export.load pickle.loads it, whatever the config."""
    prefix = {}

    def edit(name, data):
        if name is None:
            return [(f"{prefix['p']}data/constants/opaque_obj_0", pickle.dumps(_Payload(marker)))]
        if name.endswith("model_constants_config.json"):
            prefix["p"] = name[: name.index("data/constants/")]
            config = json.loads(data)
            config["config"]["evil"] = {"path_name": "opaque_obj_0", "is_param": False,
                                        "use_pickle": True, "tensor_meta": None}
            return json.dumps(config).encode()
        return data

    return _rewrite(good, dst, edit)


def _pickled_sample_inputs(good: Path, dst: Path, marker: Path) -> Path:
    """Sample inputs that fail weights-only loading, so torch retries with full pickle."""
    def edit(name, data):
        if name is None:
            return None
        if "/data/sample_inputs/" in name:
            return pickle.dumps(_Payload(marker))
        return data

    return _rewrite(good, dst, edit)


HOSTILE = {"pickled-weight": _pickled_weight, "opaque-constant": _opaque_constant,
           "sample-inputs": _pickled_sample_inputs}


@pytest.fixture(scope="module")
def good_pt2(tmp_path_factory):
    return _exported(tmp_path_factory.mktemp("pt2"))


def _unguarded_load_runs_payload(path: Path, marker: Path) -> bool:
    # What torch does with the file on its own, in a child process so nothing leaks here.
    code = ("import sys, torch\n"
            "try:\n"
            "    ep = torch.export.load(sys.argv[1])\n"
            "    ep.module()(torch.rand(1, 1, 28, 28))\n"
            "except Exception:\n"
            "    pass\n")
    subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=300)
    return marker.exists()


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_archive_really_runs_code_unguarded(kind, good_pt2, tmp_path):
    """Control: each hostile archive does run its payload under plain torch.export.load."""
    marker = tmp_path / "marker"
    path = HOSTILE[kind](good_pt2, tmp_path / "evil.pt2", marker)
    if kind == "sample-inputs" and not _unguarded_load_runs_payload(path, marker):
        pytest.skip("this torch does not unpickle sample inputs on load")
    assert _unguarded_load_runs_payload(path, marker)


@pytest.mark.parametrize("suffix", [".pt2", ".safetensors", ".pt"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_api_refuses_hostile_archives(kind, suffix, good_pt2, tmp_path):
    marker = tmp_path / "marker"
    path = HOSTILE[kind](good_pt2, tmp_path / f"evil{suffix}", marker)
    for call in (lambda: load_model(path),
                 lambda: load_model(path, factory=FACTORY, factory_kwargs=FACTORY_KWARGS),
                 lambda: read_state_dict(path)):
        with pytest.raises(CheckpointError) as info:
            call()
        assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()


def test_guard_refuses_what_the_archive_check_misses(good_pt2, tmp_path):
    """The runtime guard alone (no archive check) stops a pickle torch would load."""
    marker = tmp_path / "marker"
    evil = _pickled_weight(good_pt2, tmp_path / "evil.pt2", marker)
    with pytest.raises(Exception):
        with no_unpickling(evil):
            torch.export.load(str(evil))
    assert not marker.exists()
    # and the guard is lifted afterwards: plain pickle works again
    assert pickle.loads(pickle.dumps([1, 2])) == [1, 2]
    assert torch.load.__module__ == "torch.serialization"


def test_clean_archive_passes_the_check_and_loads(good_pt2):
    check_export_archive(good_pt2)
    model = load_model(good_pt2)
    ref = _net()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)


def test_trust_opt_in_loads_a_pickled_entry(good_pt2, tmp_path):
    """With trust=True the pickled weight loads (here a real tensor, so nothing hostile)."""
    dst = tmp_path / "pickled.pt2"
    names = {}

    def edit(name, data):
        if name is None:
            return None
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            fqn = sorted(config["config"])[0]
            config["config"][fqn]["use_pickle"] = True
            names["file"], names["fqn"] = config["config"][fqn]["path_name"], fqn
            return json.dumps(config).encode()
        return data

    _rewrite(good_pt2, dst, edit)
    tensor = _net().state_dict()[names["fqn"]]

    def edit2(name, data):
        if name is not None and name.endswith(f"/data/weights/{names['file']}"):
            buf = io.BytesIO()
            torch.save(nn.Parameter(tensor), buf)
            return buf.getvalue()
        return edit(name, data)

    _rewrite(good_pt2, dst, edit2)
    with pytest.raises(CheckpointError, match="use_pickle"):
        load_model(dst)
    assert load_model(dst, trust=True) is not None


def test_torchscript_needs_trust(tmp_path):
    path = tmp_path / "w.ts"
    with pytest.warns(FutureWarning):
        torch.jit.script(_net()).save(str(path))
    with pytest.raises(CheckpointError, match="TorchScript.*--trust-model-file"):
        load_model(path, factory=FACTORY, factory_kwargs=FACTORY_KWARGS)
    assert load_model(path, factory=FACTORY, factory_kwargs=FACTORY_KWARGS, trust=True)


def _cli(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "cnn2logic", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)


LAYER = ["--layer", "features.relu3", "--reduce", "mean"]
# Every subcommand that reads a model file, with the arguments it needs besides the model
# (valid ones, so that the model file is what the command refuses).
MODEL_COMMANDS = {
    "extract": ["--out", "OUT", *LAYER, "--output", "fc", "--threshold", "mean",
                "--train-size", "40", "--test-size", "20"],
    "capture": ["--out", "OUT/cap.npz", *LAYER, "--size", "20"],
    "extract-part": ["--codes", "GOOD/codes-train.npz", "--classes", "0-4", "--output", "fc",
                     "--out", "OUT/part.json"],
    "visualize": ["--out", "OUT", *LAYER, "--train-size", "20", "--samples", "2"],
    "report": ["GOOD/rules.json", "--out", "OUT/report.html", "--train-size", "20",
               "--test-size", "20", "--samples", "2"],
}


@pytest.fixture(scope="module")
def good_run(good_pt2, tmp_path_factory):
    """Rules and codes extracted from the clean archive (inputs for report / extract-part)."""
    out = tmp_path_factory.mktemp("good") / "run"
    proc = _cli(["extract", good_pt2, *[a.replace("OUT", str(out))
                                        for a in MODEL_COMMANDS["extract"]], "--no-progress"],
                REPO)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("factory", [False, True])
@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_every_subcommand_refuses_hostile_archives(command, factory, good_pt2, good_run,
                                                   tmp_path, capsys, monkeypatch):
    # In-process (main() is what the console script runs); one real subprocess run below.
    monkeypatch.chdir(REPO)
    marker = tmp_path / "marker"
    evil = _pickled_weight(good_pt2, tmp_path / "evil.safetensors", marker)
    out = tmp_path / "out"
    args = [command, str(evil), *[a.replace("OUT", str(out)).replace("GOOD", str(good_run))
                                  for a in MODEL_COMMANDS[command]]]
    if factory:
        args += ["--factory", FACTORY, "--factory-kwargs", FACTORY_KWARGS]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "refused" in lines[0] and str(evil) in lines[0], lines[0]
    assert not marker.exists()
    assert not out.exists()


def test_console_script_refuses_hostile_archive(good_pt2, tmp_path):
    marker = tmp_path / "marker"
    evil = _pickled_weight(good_pt2, tmp_path / "evil.pt2", marker)
    proc = _cli(["extract", evil, *[a.replace("OUT", str(tmp_path / "out"))
                                    for a in MODEL_COMMANDS["extract"]]], REPO)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "refused" in proc.stderr, proc.stderr
    assert not marker.exists()
