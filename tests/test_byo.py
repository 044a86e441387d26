"""Bring your own CNN: factories, weight files, torch.export, TorchScript, per-position units."""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnn2logic.model import (build_from_factory, checkpoint_kind, conv_layers, import_factory,
                             load_model, parse_factory_kwargs, read_state_dict, save_weights)
from cnn2logic.cli import main
from cnn2logic.errors import CheckpointError, Cnn2LogicError, ModelError
from cnn2logic.extract import ExtractConfig, extract_model
from cnn2logic.extract.layers import output_layer
from cnn2logic.units import capture

FACTORY_SOURCE = '''
from collections import OrderedDict
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, kernels=6, classes=10):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(1, 4, 5, stride=2)), ("bn1", nn.BatchNorm2d(4)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(4, kernels, 3, padding=1)), ("bn2", nn.BatchNorm2d(kernels)),
            ("relu2", nn.ReLU())]))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(kernels, classes)

    def forward(self, x):
        return self.head(torch.flatten(self.gap(self.features(x)), 1))


def make(kernels=6, classes=10):
    return Net(kernels, classes)


def not_a_module():
    return 42
'''


@pytest.fixture(scope="module")
def byo_factory_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("byo_factory")
    path = d / "usernet.py"
    path.write_text(FACTORY_SOURCE)
    return path


@pytest.fixture(scope="module")
def byo_net(byo_factory_file):
    torch.manual_seed(0)
    net = import_factory(f"{byo_factory_file}:make")(kernels=6)
    # give BatchNorm non-trivial statistics so that eval mode differs from train mode
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(32, 1, 28, 28))
    return net.eval()


def _same_output(a: nn.Module, b: nn.Module) -> bool:
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-6)


def test_factory_from_file_and_dotted_module(byo_factory_file, monkeypatch):
    fn = import_factory(f"{byo_factory_file}:make")
    assert isinstance(fn(kernels=3), nn.Module)
    # a dotted module found from the current directory (the console script's case)
    monkeypatch.chdir(byo_factory_file.parent)
    monkeypatch.delitem(sys.modules, "usernet", raising=False)
    fn2 = import_factory("usernet:make")
    assert fn2(kernels=3).head.in_features == 3
    monkeypatch.delitem(sys.modules, "usernet", raising=False)


@pytest.mark.parametrize("ref, message", [
    ("no_colon_here", "must look like"),
    ("surely_missing_pkg_xyz.models:make", "not found"),
    ("/nonexistent/file.py:make", "not found"),
])
def test_bad_factory_references(ref, message):
    with pytest.raises(ModelError, match=message):
        import_factory(ref)


def test_factory_must_return_a_module(byo_factory_file):
    with pytest.raises(ModelError, match="not a torch.nn.Module"):
        build_from_factory(f"{byo_factory_file}:not_a_module")
    with pytest.raises(ModelError, match="rejected its arguments"):
        build_from_factory(f"{byo_factory_file}:make", {"no_such_arg": 1})


def test_factory_kwargs_parsing(tmp_path):
    assert parse_factory_kwargs('{"kernels": 4}') == {"kernels": 4}
    f = tmp_path / "kw.json"
    f.write_text('{"kernels": 5}')
    assert parse_factory_kwargs(str(f)) == {"kernels": 5}
    with pytest.raises(ModelError, match="JSON object"):
        parse_factory_kwargs("[1, 2]")
    with pytest.raises(ModelError):
        parse_factory_kwargs("nonexistent.json")


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "pt-wrapped", "torchscript", "pt2"])
def test_weights_from_every_format(fmt, byo_net, byo_factory_file, tmp_path):
    factory = f"{byo_factory_file}:make"
    x = torch.rand(2, 1, 28, 28)
    if fmt == "safetensors":
        path = tmp_path / "w.safetensors"
        save_weights(byo_net, path, factory=factory, factory_kwargs={"kernels": 6})
    elif fmt == "pt":
        path = tmp_path / "w.pt"
        torch.save(byo_net.state_dict(), path)
    elif fmt == "pt-wrapped":
        path = tmp_path / "w.pth"
        torch.save({"model_state_dict": byo_net.state_dict(), "epoch": 3}, path)
    elif fmt == "torchscript":
        path = tmp_path / "w.ts"
        with pytest.warns(FutureWarning):
            torch.jit.script(byo_net).save(str(path))
    else:
        path = tmp_path / "w.pt2"
        ep = torch.export.export(byo_net, (x,),
                                 dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(ep, str(path))
    expected_kind = {"safetensors": "safetensors", "pt": "torch-save", "pt-wrapped": "torch-save",
                     "torchscript": "torchscript", "pt2": "torch-export"}[fmt]
    assert checkpoint_kind(path) == expected_kind
    # TorchScript runs code from the file on load: it needs the explicit opt-in.
    model = load_model(path, factory=factory, factory_kwargs='{"kernels": 6}',
                       trust=fmt == "torchscript")
    assert _same_output(model, byo_net)
    assert not model.training


def test_pickled_module_is_refused(byo_net, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(byo_net, path)  # a pickled module, not a state dict
    with pytest.raises(CheckpointError, match="weights-only"):
        read_state_dict(path)


def test_weights_that_do_not_fit(byo_net, byo_factory_file, tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(byo_net, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(path, factory=f"{byo_factory_file}:make", factory_kwargs={"kernels": 7})


def test_plain_state_dict_without_factory_names_the_factory(byo_net, byo_factory_file, tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(byo_net, path, factory=f"{byo_factory_file}:make", factory_kwargs={"kernels": 6})
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert "--factory" in str(info.value) and "usernet.py:make" in str(info.value)


def test_torchscript_alone_is_refused_with_advice(byo_net, tmp_path):
    path = tmp_path / "w.ts"
    with pytest.warns(FutureWarning):
        torch.jit.script(byo_net).save(str(path))
    with pytest.raises(ModelError, match="forward hooks.*--factory"):
        load_model(path)


def test_exported_program_gives_hookable_layers_and_a_linear_head(byo_net, tmp_path):
    x = torch.rand(3, 1, 28, 28)
    path = tmp_path / "net.pt2"
    ep = torch.export.export(byo_net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, str(path))
    model = load_model(path)
    assert _same_output(model, byo_net)
    assert "features.conv2" in conv_layers(model)
    W, b = output_layer(model, "head", 6)
    assert np.allclose(W, byo_net.head.weight.detach().double().numpy())
    images = torch.rand(7, 1, 28, 28)
    mine = capture(model, "features.relu2", images, progress=False)
    ref = capture(byo_net, "features.relu2", images, progress=False)
    assert np.allclose(mine.values, ref.values, atol=1e-6)
    # any conv layer: its raw maps pooled per kernel (mean here)
    mine = capture(model, "features.conv1", images, reduce="mean", progress=False)
    ref = capture(byo_net, "features.conv1", images, reduce="mean", progress=False)
    assert mine.values.shape == (7, 4) and np.allclose(mine.values, ref.values, atol=1e-5)


def test_exported_program_with_batch_one_and_fixed_batch(byo_net, tmp_path):
    one = tmp_path / "one.pt2"
    torch.export.save(torch.export.export(byo_net, (torch.rand(1, 1, 28, 28),)), str(one))
    model = load_model(one)
    images = torch.rand(4, 1, 28, 28)
    units = capture(model, "features.relu2", images, progress=False)
    ref = capture(byo_net, "features.relu2", images, progress=False)
    assert units.values.shape == (4, 6) and np.allclose(units.values, ref.values, atol=1e-6)
    fixed = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(byo_net, (torch.rand(4, 1, 28, 28),)), str(fixed))
    with pytest.raises(ModelError, match="fixed batch size of 4"):
        load_model(fixed)


def test_unknown_file_kind(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a safetensors"):
        checkpoint_kind(path)
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint_kind(tmp_path / "missing.pt")


def test_per_position_units_follow_flatten_order():
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 3, 5, stride=5)), ("act", nn.Sigmoid()),
                                     ("pool", nn.MaxPool2d(2)), ("flatten", nn.Flatten()),
                                     ("out", nn.Linear(3 * 2 * 2, 4))]))
    images = torch.rand(6, 1, 20, 20)
    units = capture(net, "pool", images, reduce="position", progress=False)
    assert units.names[:5] == ("k1_r1c1", "k1_r1c2", "k1_r2c1", "k1_r2c2", "k2_r1c1")
    with torch.no_grad():
        flat = net[:4](images).numpy()
    assert np.allclose(units.values, flat)
    W, _ = output_layer(net, "out", len(units.names))
    assert W.shape == (4, 12)
    with pytest.raises(ModelError, match="exactly one pooled value per kernel"):
        output_layer(net, "out", 3)


def test_extract_per_position_units_end_to_end(core_embedded):
    """A net whose linear layer reads every position: rules over per-position units."""
    from cnn2logic.model.training import TrainConfig, train

    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 14, stride=14)), ("act", nn.Sigmoid()),
                                     ("flatten", nn.Flatten()), ("out", nn.Linear(8, 10))]))
    from cnn2logic.data import DataSplits

    data = DataSplits(core_embedded.train.subset(600), core_embedded.test.subset(200), "embedded")
    net, _ = train(net, data, TrainConfig(iterations=60, progress=False))
    res = extract_model(net, data, ExtractConfig(layer="act", output="out", reduce="position",
                                                 method="approximation"), progress=False)
    assert res.rules.variable_names[0] == "k1_r1c1" and len(res.rules.variables) == 8
    # order defaults to all 8 units: the rules reproduce the output layer on the bits
    assert res.metrics["rule_accuracy"] == res.metrics["binarized_network_accuracy"]


@pytest.fixture(scope="module")
def byo_cli_checkpoint(byo_factory_file, tmp_path_factory):
    """Train the user's net through the CLI with --factory (tiny budget)."""
    out = tmp_path_factory.mktemp("byo_cli") / "model.safetensors"
    rc = main(["train", "--factory", f"{byo_factory_file}:make", "--factory-kwargs",
               '{"kernels": 6}', "--iterations", "40", "--train-size", "800", "--test-size",
               "200", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_cli_train_and_extract_with_factory(byo_cli_checkpoint, byo_factory_file, tmp_path, capsys):
    meta = read_state_dict(byo_cli_checkpoint)[1]
    assert meta["cnn2logic_factory"].endswith("usernet.py:make")
    out = tmp_path / "ex"
    rc = main(["extract", str(byo_cli_checkpoint), "--factory", f"{byo_factory_file}:make",
               "--factory-kwargs", '{"kernels": 6}', "--layer", "features.relu2",
               "--reduce", "mean", "--output", "head", "--threshold", "median",
               "--method", "approximation",
               "--train-size", "800", "--test-size", "200", "--out", str(out), "--no-progress"])
    assert rc == 0
    from cnn2logic.rules import load_rules

    rules = load_rules(out / "rules.json")
    assert rules.meta["layer"] == "features.relu2" and len(rules.variables) == 6
    # exact rules at full order reproduce the output layer on the binarised units
    m = rules.meta["metrics"]
    assert m["rule_accuracy"] == m["binarized_network_accuracy"]


@pytest.mark.parametrize("extra, message", [
    ([], "--factory"),                                         # plain state dict, no factory
    (["--factory", "nope_missing_mod:make"], "not found"),
    (["--output", "features.conv1"], "not nn.Linear"),
])
def test_cli_errors_are_one_line(byo_cli_checkpoint, byo_factory_file, tmp_path, capsys, extra,
                                 message):
    args = ["extract", str(byo_cli_checkpoint), "--layer", "features.relu2", "--threshold",
            "median", "--method", "approximation", "--train-size", "300", "--test-size", "100",
            "--out", str(tmp_path / "x"), "--no-progress"]
    if extra and extra[0] == "--output":
        args += ["--factory", f"{byo_factory_file}:make", "--factory-kwargs", '{"kernels": 6}']
        args += extra
    else:
        args += ["--output", "head"] + extra
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_train_needs_arch_or_factory(tmp_path, capsys):
    rc = main(["train", "--out", str(tmp_path / "m.safetensors"), "--iterations", "1"])
    assert rc == 2 and "--factory" in capsys.readouterr().err


def test_errors_are_cnn2logic_errors():
    assert issubclass(CheckpointError, Cnn2LogicError) and issubclass(ModelError, Cnn2LogicError)


# -- visualize and report on the example's own CNN (examples/relu_bn_cnn.py) -------------

REPO = Path(__file__).resolve().parents[1]
RELU_BN = "examples/relu_bn_cnn.py:make_net"  # relative: the tests run it from REPO


@pytest.fixture(scope="module")
def byo_relu_bn(tmp_path_factory):
    """examples/relu_bn_cnn.py with random weights (48 kernels), as a plain state dict."""
    torch.manual_seed(0)
    net = build_from_factory(f"{REPO}/{RELU_BN}").eval()
    path = tmp_path_factory.mktemp("byo_relu_bn") / "model.safetensors"
    save_weights(net, path, factory=RELU_BN)
    return net, path


def _png_size(path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.size


def _grid_height(kernels: int, side: int = 28) -> int:
    # cnn2logic.visual.images.grid_png: 22 px header, a row of max(3 * side, 40) + 6 px per kernel
    return 22 + kernels * (max(3 * side, 40) + 6) + 6


def test_cli_visualize_own_model(byo_relu_bn, tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.chdir(REPO)
    _, ckpt = byo_relu_bn
    out = tmp_path / "vis"
    rc = main(["visualize", str(ckpt), "--factory", RELU_BN, "--layer", "gap", "--samples", "2",
               "--top", "2", "--train-size", "100", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0 and "48 kernels of layer 'gap'" in printed
    assert "correlation with filter" not in printed  # gap's kernels do not see the input
    assert len(list((out / "kernels").glob("*_smoothgrad.png"))) == 48
    assert len(list((out / "kernels").glob("*_top.png"))) == 48
    assert not list((out / "kernels").glob("*_filter.png"))
    assert _png_size(out / "grid.png")[1] == _grid_height(48)
    manifest = json.loads((out / "visuals.json").read_text())
    assert manifest["n_kernels"] == 48 and manifest["layer"] == "gap"
    assert manifest["params"]["model"] == "ReluBnCNN" and manifest["params"]["top"] == 2
    assert "filter_correlation" not in manifest


def test_cli_visualize_own_model_filters_beside_images(byo_relu_bn, tmp_path, capsys,
                                                       monkeypatch):
    """features.relu1 sees the input through conv1: its 16 filters are drawn and compared."""
    monkeypatch.chdir(REPO)
    _, ckpt = byo_relu_bn
    out = tmp_path / "vis1"
    rc = main(["visualize", str(ckpt), "--factory", RELU_BN, "--layer", "features.relu1",
               "--reduce", "l2", "--samples", "2", "--top", "0", "--train-size", "20", "--out",
               str(out), "--no-progress"])
    assert rc == 0 and "correlation with filter" in capsys.readouterr().out
    assert len(list((out / "kernels").glob("*_filter.png"))) == 16
    assert _png_size(out / "grid.png")[1] == _grid_height(16)
    with np.load(out / "visuals.npz") as z:
        assert z["filters"].shape == (16, 1, 3, 3) and z["smoothgrad"].shape == (16, 1, 28, 28)
        assert np.isfinite(z["smoothgrad"]).all()  # the l2 norm of a dead ReLU map: no NaN


@pytest.mark.parametrize("fmt", ["torchscript", "pt2-batch1"])
def test_cli_visualize_own_model_other_weight_files(fmt, tmp_path, capsys, monkeypatch):
    """TorchScript weights (with --factory) and a batch-1 .pt2 (alone) give the same maps."""
    monkeypatch.chdir(REPO)
    torch.manual_seed(1)
    kwargs = '{"kernels": 6, "width": 4}'
    net = build_from_factory(RELU_BN, kwargs).eval()
    ref = tmp_path / "w.safetensors"
    save_weights(net, ref)
    if fmt == "torchscript":
        path = tmp_path / "w.ts"
        with pytest.warns(FutureWarning):
            torch.jit.script(net).save(str(path))
        model_args = [str(path), "--factory", RELU_BN, "--factory-kwargs", kwargs,
                      "--trust-model-file"]
    else:
        path = tmp_path / "w.pt2"
        torch.export.save(torch.export.export(net, (torch.rand(1, 1, 28, 28),)), str(path))
        model_args = [str(path)]
    common = ["--layer", "features.relu3", "--reduce", "mean", "--samples", "3", "--top", "2",
              "--train-size", "30", "--no-progress"]
    assert main(["visualize", str(ref), "--factory", RELU_BN, "--factory-kwargs", kwargs,
                 "--out", str(tmp_path / "ref"), *common]) == 0
    assert main(["visualize", *model_args, "--out", str(tmp_path / "other"), *common]) == 0
    capsys.readouterr()
    with np.load(tmp_path / "ref" / "visuals.npz") as a, \
            np.load(tmp_path / "other" / "visuals.npz") as b:
        assert a["smoothgrad"].shape == (6, 1, 28, 28)
        assert np.allclose(a["smoothgrad"], b["smoothgrad"], atol=1e-5)
        assert np.array_equal(a["top_index"], b["top_index"])


@pytest.mark.parametrize("extra, message", [
    (["--factory", "examples/relu_bn_cnn.py:no_such_net"], "has no attribute 'no_such_net'"),
    (["--factory", "examples/missing_net.py:make_net"], "factory file not found"),
    (["--factory-kwargs", '{"kernels": 48'], "not valid JSON"),
    (["--factory-kwargs", '{"kernels": 8}'], "do not fit"),
    (["--layer", "pool"], "no layer named 'pool'"),          # the paper models' default
    (["--reduce", "position"], "invalid choice: 'position'"),  # one image per kernel
    (["--data", "none"], "cannot tell the input shape of ReluBnCNN"),
])
def test_cli_visualize_own_model_errors(byo_relu_bn, tmp_path, capsys, monkeypatch, extra,
                                        message):
    monkeypatch.chdir(REPO)
    _, ckpt = byo_relu_bn
    args = ["visualize", str(ckpt), "--factory", RELU_BN, "--layer", "gap", "--samples", "1",
            "--top", "1", "--train-size", "10", "--out", str(tmp_path / "v"), "--no-progress"]
    try:
        rc = main(args + extra)  # a repeated option: the last one counts
    except SystemExit as exc:  # argparse's own errors (also one line, exit 2)
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("cnn2logic visualize: error: ")
    assert not (tmp_path / "v" / "visuals.json").exists()


def _relu_bn_rules(kernels: int = 48):
    """Hand-made rules over every kernel of ``gap``: class c reads the kernels i ≡ c mod 10."""
    from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable

    variables = tuple(Variable(f"k{i}", "gap", i - 1) for i in range(1, kernels + 1))
    heads = tuple(Head(str(c), "class", "fc", c) for c in range(10))
    rules = tuple(Rule(str(c), tuple(Literal(f"k{i}", i % 20 != c) for i in range(1, kernels + 1)
                                     if i % 10 == c))
                  for c in range(10))
    return RuleSet(variables, heads, rules, default="1",
                   meta={"layer": "gap", "settings": {"reduce": "mean"}})


def test_cli_report_own_model(byo_relu_bn, tmp_path, capsys, monkeypatch):
    import base64
    import io
    import re

    from PIL import Image

    from cnn2logic.rules import save_rules
    from cnn2logic.visual import load_visuals
    from cnn2logic.visual.gallery import literal_thumbnail

    monkeypatch.chdir(REPO)
    _, ckpt = byo_relu_bn
    rules = tmp_path / "rules.json"
    save_rules(_relu_bn_rules(), rules)
    out, vis_dir = tmp_path / "report.html", tmp_path / "visuals"
    rc = main(["report", str(ckpt), str(rules), "--factory", RELU_BN, "--samples", "2",
               "--top", "2", "--train-size", "100", "--test-size", "50", "--visuals",
               str(vis_dir), "--out", str(out), "--no-progress"])
    assert rc == 0 and f"wrote {out}" in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    # every kernel's picture as the report draws it beside its literal (its top patches)
    vis = load_visuals(vis_dir)
    assert vis.layer == "gap" and len(vis) == 48 and vis.params["model"] == "ReluBnCNN"
    assert vis.params["reduce"] == "mean"  # the reduction recorded in the rules
    for i in range(48):
        png = literal_thumbnail(vis, i)
        assert "data:image/png;base64," + base64.b64encode(png).decode() in html, f"k{i + 1}"
    # the SmoothGrad grid (one row per kernel, no filter column) is embedded too
    heights = []
    for src in re.findall(r'<img\b[^>]*\bsrc="data:image/png;base64,([^"]*)"', html):
        with Image.open(io.BytesIO(base64.b64decode(src))) as im:
            heights.append(im.height)
    assert _grid_height(48) in heights
    assert 'id="metrics"' in html and "computed by the report" in html  # from model + data
    assert 'id="confusion"' in html and "http://" not in html
    # the same model again: the visuals are reused, the report is the same
    rc = main(["report", str(ckpt), str(rules), "--factory", RELU_BN, "--samples", "2",
               "--top", "2", "--train-size", "100", "--test-size", "50", "--visuals",
               str(vis_dir), "--out", str(tmp_path / "again.html"), "--no-progress"])
    assert rc == 0 and (tmp_path / "again.html").read_text(encoding="utf-8") == html


@pytest.mark.parametrize("extra, message", [
    (["--factory", "examples/relu_bn_cnn.py:no_such_net"], "has no attribute 'no_such_net'"),
    ([], "--factory examples/relu_bn_cnn.py:make_net"),   # plain state dict: names the factory
    (["--factory", RELU_BN, "--layer", "features.nope"], "no layer named 'features.nope'"),
])
def test_cli_report_own_model_errors(byo_relu_bn, tmp_path, capsys, monkeypatch, extra, message):
    from cnn2logic.rules import save_rules

    monkeypatch.chdir(REPO)
    _, ckpt = byo_relu_bn
    rules = tmp_path / "rules.json"
    save_rules(_relu_bn_rules(), rules)
    out = tmp_path / "report.html"
    rc = main(["report", str(ckpt), str(rules), *extra, "--samples", "1", "--top", "1",
               "--train-size", "10", "--test-size", "10", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("cnn2logic report: error: ")
    assert not out.exists()
