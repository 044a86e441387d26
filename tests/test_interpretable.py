"""Interpretable filters: templates, mask, filter loss, map statistics, training option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cnn2logic.cli import main
from cnn2logic.data import DataSplits
from cnn2logic.errors import ModelError
from cnn2logic.model.interpretable import (InterpretableMask, capture_maps, filter_loss,
                                           filter_loss_hook, map_statistics, template_shapes,
                                           templates)
from cnn2logic.model.spec import ConvSpec, ModelSpec, build_model, load_checkpoint
from cnn2logic.model.training import TrainConfig, train


def test_templates_follow_the_paper():
    n = 5
    T, prior = templates(n, n)
    tau = 0.5 / n ** 2
    assert T.shape == (n * n + 1, n, n)
    centre = 2 * n + 2  # position (2, 2)
    assert math.isclose(T[centre, 2, 2].item(), tau, rel_tol=1e-6)
    assert math.isclose(T[centre, 2, 3].item(), tau * (1 - 4 * 1 / n), rel_tol=1e-6)
    assert math.isclose(T[0, 4, 4].item(), -tau, rel_tol=1e-6)  # clipped at -tau
    assert torch.all(T[-1] == -tau)
    alpha = n * n / (1 + n * n)
    assert torch.allclose(prior[:-1], torch.full((n * n,), alpha / (n * n)))
    assert math.isclose(prior[-1].item(), 1 - alpha, rel_tol=1e-6)
    assert math.isclose(prior.sum().item(), 1.0, rel_tol=1e-6)


def test_mask_keeps_the_peak_and_suppresses_far_positions():
    mask = InterpretableMask()
    x = torch.rand(3, 4, 6, 6, requires_grad=True)
    y = mask.train()(x)
    assert (y >= 0).all()
    flat_x, flat_y = x.detach().reshape(12, 36), y.detach().reshape(12, 36)
    peak = flat_x.argmax(1)
    assert torch.allclose(flat_y[torch.arange(12), peak], flat_x[torch.arange(12), peak])
    shapes = template_shapes(6, 6)
    far = shapes[peak] <= 0
    assert (flat_y.reshape(12, 6, 6)[far] == 0).all()
    y.sum().backward()  # the arg-max is a constant: gradient = mask where positive
    assert torch.allclose(x.grad.reshape(12, 6, 6)[~far], shapes[peak][~far])
    assert mask.last is not None
    assert torch.equal(mask.eval()(x), y) and mask.last is None


def test_filter_loss_prefers_one_location_per_filter():
    torch.manual_seed(0)
    b, n = 16, 6
    concentrated = torch.zeros(b, 1, n, n)
    concentrated[:, 0, 2, 3] = 5.0  # every image fires at the same place
    concentrated[b // 2:] = 0.0     # half the images do not fire at all
    diffuse = torch.rand(b, 1, n, n)
    assert filter_loss(concentrated) < filter_loss(diffuse) <= 0
    assert filter_loss(concentrated) >= -math.log(n * n + 1)  # MI ≤ H(T)
    # gradient descent on the maps raises the mutual information towards its bound H(T)
    x = torch.rand(b, 3, n, n, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.05)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = filter_loss(InterpretableMask()(torch.relu(x)) * 50)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 5 * losses[0] < 0
    assert losses[-1] >= -math.log(n * n + 1)
    with pytest.raises(ModelError):
        filter_loss(torch.rand(1, 2, 4, 4))


def test_map_statistics_on_constructed_maps():
    maps = np.zeros((4, 2, 3, 3))
    maps[:, 0, 1, 1] = 1.0            # kernel 1: one position, always the same
    maps[:, 1] = 1.0                  # kernel 2: uniform
    labels = np.array([0, 0, 1, 1])
    s = map_statistics(maps[:, :1], labels)
    assert s["spatial_entropy"] == 0.0 and s["peak_at_mode"] == 1.0
    s2 = map_statistics(maps[:, 1:], labels)
    assert math.isclose(s2["spatial_entropy"], 1.0, rel_tol=1e-9)
    moved = maps[:, :1].copy()
    moved[1, 0] = 0
    moved[1, 0, 0, 0] = 1.0          # one image of class 0 peaks elsewhere
    s3 = map_statistics(moved, labels)
    assert s3["peak_at_mode"] == 0.75 and s3["peak_near_mode"] == 0.75
    with pytest.raises(ModelError):
        map_statistics(maps, labels[:3])


def _padded_spec(mask: bool) -> ModelSpec:
    # a paper-like net whose top conv keeps a 7x7 map (the paper's top maps are 2x2 / 1x1)
    return ModelSpec(convs=(ConvSpec(6, 5, "relu", stride=2, padding=2),
                            ConvSpec(8, 3, "relu", stride=2, padding=1)),
                     pool="global-max", filter_mask=mask, name="padded")


def test_spec_with_mask_trains_with_the_filter_loss(core_embedded, tmp_path):
    data = DataSplits(core_embedded.train.subset(600), core_embedded.test.subset(200),
                      "embedded")
    model, metrics = train(_padded_spec(False), data,
                           TrainConfig(iterations=40, progress=False, filter_loss=0.5))
    assert model.spec.filter_mask and metrics["filter_loss"] == 0.5
    assert [n for n, _ in model.named_children()][4] == "mask"
    maps = capture_maps(model, "mask", data.test.images[:50])
    assert maps.shape == (50, 8, 7, 7)
    stats = map_statistics(maps, data.test.labels[:50])
    assert 0 <= stats["spatial_entropy"] <= 1
    from cnn2logic.model.spec import save_checkpoint

    save_checkpoint(model, tmp_path / "m.safetensors")
    again = load_checkpoint(tmp_path / "m.safetensors")
    x = torch.from_numpy(data.test.images[:20])
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_filter_loss_needs_a_mask(core_embedded):
    data = DataSplits(core_embedded.train.subset(200), core_embedded.test.subset(50), "embedded")
    net = build_model(_padded_spec(False))
    with pytest.raises(ModelError, match="InterpretableMask"):
        train(net, data, TrainConfig(iterations=1, progress=False, filter_loss=1.0))
    hook = filter_loss_hook(1.0)
    with pytest.raises(ModelError, match="InterpretableMask"):
        hook(net, torch.zeros(2, 1, 28, 28), torch.zeros(2, 10))


def test_cli_filter_loss_on_the_example_factory(tmp_path, capsys):
    from pathlib import Path

    factory = str(Path(__file__).resolve().parents[1] / "examples" / "relu_bn_cnn.py") + ":make_net"
    out = tmp_path / "m.safetensors"
    rc = main(["train", "--factory", factory, "--factory-kwargs",
               '{"kernels": 8, "width": 4, "interpretable": true}', "--filter-loss", "1.0",
               "--iterations", "10", "--train-size", "300", "--test-size", "100", "--out",
               str(out), "--no-progress"])
    assert rc == 0
    rc = main(["train", "--factory", factory, "--factory-kwargs", '{"kernels": 8, "width": 4}',
               "--filter-loss", "1.0", "--iterations", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "InterpretableMask" in err and err.count("\n") == 1
