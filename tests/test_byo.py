"""Bring your own CNN: factories, weight files, torch.export, TorchScript, per-position units."""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnn2logic.byo import (build_from_factory, checkpoint_kind, conv_layers, import_factory,
                           load_model, parse_factory_kwargs, read_state_dict, save_weights)
from cnn2logic.cli import main
from cnn2logic.errors import CheckpointError, Cnn2LogicError, ModelError
from cnn2logic.pipeline import ExtractConfig, extract_model, output_layer
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
    model = load_model(path, factory=factory, factory_kwargs='{"kernels": 6}')
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
    from cnn2logic.training import TrainConfig, train

    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 14, stride=14)), ("act", nn.Sigmoid()),
                                     ("flatten", nn.Flatten()), ("out", nn.Linear(8, 10))]))
    from cnn2logic.data import DataSplits

    data = DataSplits(core_embedded.train.subset(600), core_embedded.test.subset(200), "embedded")
    net, _ = train(net, data, TrainConfig(iterations=60, progress=False))
    res = extract_model(net, data, ExtractConfig(layer="act", output="out", reduce="position"),
                        progress=False)
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
            "median", "--train-size", "300", "--test-size", "100", "--out", str(tmp_path / "x"),
            "--no-progress"]
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
