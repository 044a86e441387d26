"""Logic-friendly training: hard binary kernel units make the rules exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from cnn2logic.cli import main
from cnn2logic.data import DataSplits
from cnn2logic.errors import ModelError
from cnn2logic.model.logic_training import (BinaryUnits, binary_penalty_loss, configure,
                                      warmup_schedule)
from cnn2logic.model.spec import ModelSpec, build_model, load_checkpoint, named_spec, save_checkpoint
from cnn2logic.extract import ExtractConfig, extract_model
from cnn2logic.model.training import TrainConfig, train


@pytest.fixture(scope="module")
def byo_small_data(core_embedded):
    return DataSplits(core_embedded.train.subset(1500), core_embedded.test.subset(400),
                      "embedded")


def test_ste_forward_is_hard_and_backward_is_straight_through():
    layer = BinaryUnits("ste").train()
    u = torch.tensor([[0.1, 0.5, 0.9]], requires_grad=True)
    out = layer(u)
    assert out.tolist() == [[0.0, 1.0, 1.0]]
    (out * torch.tensor([[1.0, 2.0, 3.0]])).sum().backward()
    assert u.grad.tolist() == [[1.0, 2.0, 3.0]]


def test_every_mode_is_hard_at_inference_and_differs_in_training():
    torch.manual_seed(0)
    u = torch.rand(64, 5)
    hard = (u >= 0.5).float()
    for mode in ("ste", "noise", "penalty"):
        layer = BinaryUnits(mode)
        assert torch.equal(layer.eval()(u), hard)
        layer.train()
        out = layer(u)
        if mode == "ste":
            assert torch.equal(out, hard)
        elif mode == "noise":
            assert ((out > 0) & (out < 1)).all() and not torch.allclose(out, u)
        else:
            assert torch.equal(out, u)
            assert torch.isclose(layer.penalty, (u * (1 - u)).mean())
    with pytest.raises(ModelError):
        BinaryUnits("none")
    with pytest.raises(ModelError):
        BinaryUnits("ste", noise=-1)


def test_penalty_hook_and_warmup_schedule():
    net = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), BinaryUnits("penalty"), nn.Linear(4, 2))
    net.train()
    x = torch.randn(8, 3)
    logits = net(x)
    units = torch.sigmoid(net[0](x))
    assert torch.isclose(binary_penalty_loss(2.0)(net, x, logits), 2 * (units * (1 - units)).mean())
    ste = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), BinaryUnits("ste"), nn.Linear(4, 2)).train()
    hook = warmup_schedule(ste, 2)
    assert ste[2].warming
    hook(ste, x, ste(x))
    assert ste[2].warming
    hook(ste, x, ste(x))
    assert not ste[2].warming
    assert configure(ste, noise=0.5) == 1 and ste[2].noise == 0.5
    with pytest.raises(ModelError):
        binary_penalty_loss(-1.0)


def test_spec_field_adds_a_parameterless_layer_and_old_specs_are_unchanged():
    plain = named_spec("paper1")
    assert "binary_units" not in plain.to_dict() and "filter_mask" not in plain.to_dict()
    spec = ModelSpec.from_dict({**plain.to_dict(), "binary_units": "ste"})
    model = build_model(spec, seed=0)
    names = [n for n, _ in model.named_children()]
    assert names == ["conv1", "act1", "pool", "binarize", "flatten", "out"]
    assert model.state_dict().keys() == build_model(plain, seed=0).state_dict().keys()
    assert ModelSpec.from_dict(json.loads(spec.to_json())) == spec
    with pytest.raises(ModelError, match="sigmoid"):
        ModelSpec.from_dict({**plain.to_dict(), "binary_units": "ste",
                             "convs": [{"filters": 4, "size": 27, "activation": "relu"}]})
    with pytest.raises(ModelError, match="unknown binary"):
        ModelSpec.from_dict({**plain.to_dict(), "binary_units": "sometimes"})
    with pytest.raises(ModelError):
        TrainConfig(binary_units="sometimes")
    with pytest.raises(ModelError):
        TrainConfig(binary_warmup=-1)


@pytest.fixture(scope="module")
def byo_ste_model(byo_small_data):
    return train("paper1", byo_small_data, TrainConfig(iterations=300, seed=0, progress=False,
                                                       binary_units="ste"))


def test_binary_units_make_the_rules_exact(byo_ste_model, byo_small_data, tmp_path):
    """The network decides on the bits the rules read: full-order rules are faithful."""
    model, metrics = byo_ste_model
    assert model.spec.binary_units == "ste" and metrics["binary_units"] == "ste"
    res = extract_model(model, byo_small_data, ExtractConfig(method="approximation"), progress=False)
    m = res.metrics
    assert m["fidelity"] == 1.0
    assert m["rule_accuracy"] == m["network_accuracy"] == metrics["test_accuracy"]
    assert m["binarized_network_accuracy"] == metrics["test_accuracy"]
    # the checkpoint rebuilds the network that was measured
    save_checkpoint(model, tmp_path / "m.safetensors")
    again = load_checkpoint(tmp_path / "m.safetensors")
    x = torch.from_numpy(byo_small_data.test.images[:50])
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    assert isinstance(again.binarize, BinaryUnits)


def test_ordinary_training_is_not_exact(byo_small_data):
    """The contrast: without binary units the network is not a function of the bits."""
    model, _ = train("paper1", byo_small_data, TrainConfig(iterations=300, seed=0,
                                                           progress=False))
    m = extract_model(model, byo_small_data, ExtractConfig(method="approximation"), progress=False).metrics
    assert m["fidelity"] < 1.0


@pytest.mark.parametrize("mode, extra", [("noise", {"binary_noise": 1.0}),
                                         ("penalty", {"binary_penalty": 1.0,
                                                      "binary_warmup": 50})])
def test_other_modes_train_and_stay_exact(mode, extra, byo_small_data):
    model, metrics = train("paper1", byo_small_data,
                           TrainConfig(iterations=120, seed=1, progress=False, binary_units=mode,
                                       **extra))
    assert metrics["binary_units"] == mode
    res = extract_model(model, byo_small_data, ExtractConfig(method="approximation"), progress=False)
    assert res.metrics["fidelity"] == 1.0


def test_user_module_needs_a_binary_layer(byo_small_data):
    net = nn.Sequential(nn.Conv2d(1, 4, 27), nn.Sigmoid(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4, 10))
    with pytest.raises(ModelError, match="BinaryUnits"):
        train(net, byo_small_data, TrainConfig(iterations=1, progress=False, binary_units="ste"))
    net.insert(3, BinaryUnits("ste"))
    model, _ = train(net, byo_small_data, TrainConfig(iterations=5, progress=False,
                                                      binary_units="ste"))
    with torch.no_grad():
        units = model[:4](torch.from_numpy(byo_small_data.test.images[:20]))
    assert set(np.unique(units.numpy())) <= {0.0, 1.0}


def test_cli_train_binary_units_then_extract(tmp_path, capsys):
    ckpt = tmp_path / "m.safetensors"
    assert main(["train", "paper1", "--binary-units", "ste", "--iterations", "60",
                 "--train-size", "800", "--test-size", "200", "--out", str(ckpt),
                 "--no-progress"]) == 0
    assert load_checkpoint(ckpt).spec.binary_units == "ste"
    # the network decides by its ten hard bits: the full-order rules are exact
    assert main(["extract", str(ckpt), "--method", "approximation", "--train-size", "800",
                 "--test-size", "200", "--out", str(tmp_path / "ex"), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "ex" / "rules.json").read_text())
    assert doc["meta"]["metrics"]["fidelity"] == 1.0
    with pytest.raises(SystemExit) as info:  # argparse refuses the choice: one line, exit 2
        main(["train", "paper1", "--binary-units", "maybe", "--out", str(ckpt)])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_cosine_schedule_scales_each_step(byo_small_data):
    # SGD: a step is lr_t x (momentum buffer), and the buffer does not depend on lr. Both
    # runs start alike and take the same first step (lr_0 = lr), so their second steps
    # differ by exactly lr_1 / lr = (1 + cos(pi / T)) / 2 for T iterations.
    def run(schedule):
        snaps = []

        def record(model, _x, _logits):
            snaps.append(torch.cat([p.detach().flatten().clone() for p in model.parameters()]))
            return torch.zeros(())

        train("paper1", byo_small_data, TrainConfig(iterations=4, lr=0.05, optimizer="sgd",
                                                    lr_schedule=schedule, progress=False),
              extra_loss=record)
        return snaps

    const, cos = run("constant"), run("cosine")
    assert torch.equal(cos[1] - cos[0], const[1] - const[0])
    d_const, d_cos = const[2] - const[1], cos[2] - cos[1]
    assert d_const.abs().max() > 0
    ratio = (1 + np.cos(np.pi / 4)) / 2
    assert torch.allclose(d_cos, ratio * d_const, rtol=1e-3, atol=1e-7)
    with pytest.raises(ModelError, match="schedule 'linear'"):
        TrainConfig(lr_schedule="linear")


def test_cli_lr_schedule_recorded(tmp_path):
    out = tmp_path / "m.safetensors"
    assert main(["train", "paper1", "--out", str(out), "--iterations", "5", "--no-progress",
                 "--train-size", "300", "--test-size", "100", "--lr-schedule", "cosine"]) == 0
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["lr_schedule"] == "cosine"
    assert main(["train", "paper1", "--out", str(out), "--iterations", "5", "--no-progress",
                 "--train-size", "300", "--test-size", "100"]) == 0
    assert "lr_schedule" not in json.loads(out.with_suffix(".metrics.json").read_text())
