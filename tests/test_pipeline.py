"""End to end: capture → binarise → extract → minimise → evaluate."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cnn2logic.data import DataSplits, ImageSet
from cnn2logic.errors import ModelError
from cnn2logic.extract import ExtractConfig, extract_model

from .conftest import full_mnist_or_skip


def planted_network():
    """Two pixels a, b; kernel k1 = σ(20a - 10), k2 = σ(20b - 10); class 0 iff k1 ∧ ¬k2."""
    conv = nn.Conv2d(1, 2, (1, 2))
    out = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([[[[20.0, 0.0]]], [[[0.0, 20.0]]]])
        conv.bias[:] = torch.tensor([-10.0, -10.0])
        out.weight[:] = torch.tensor([[10.0, -10.0], [0.0, 0.0]])
        out.bias[:] = torch.tensor([-5.0, 0.0])
    return nn.Sequential(OrderedDict(conv=conv, act=nn.Sigmoid(), pool=nn.MaxPool2d(1),
                                     flatten=nn.Flatten(), out=out))


def planted_data():
    pairs = np.array([[a, b] for a in (0, 1) for b in (0, 1)] * 25, dtype=np.float32)
    images = pairs.reshape(-1, 1, 1, 2)
    labels = np.where((pairs[:, 0] == 1) & (pairs[:, 1] == 0), 0, 1)
    split = ImageSet(images, labels, ("zero", "one"), "planted")
    return DataSplits(split, split, "planted")


def test_planted_rule_is_recovered_exactly():
    result = extract_model(planted_network(), planted_data(), ExtractConfig(method="approximation",
                                                                            layer="act"),
                           progress=False)
    rules = result.rules
    assert [r.format() for r in rules.rules_for("zero")] == ["k1 ∧ ¬k2"]
    assert sorted(r.format() for r in rules.rules_for("one")) == ["k2", "¬k1"]
    assert result.metrics["rule_accuracy"] == 1.0 and result.metrics["fidelity"] == 1.0
    assert result.metrics["coverage"] == 1.0
    assert result.table[0]["text"] == "k1 ∧ ¬k2"


def test_paper1_on_embedded_data(core_paper1, core_paper1_extraction):
    model, train_metrics = core_paper1
    res = core_paper1_extraction
    m = res.metrics
    assert train_metrics["test_accuracy"] > 0.85
    # argmax-sound rules of full order are the exact function of the binarised layer, so
    # they reproduce the network on binarised units image for image
    W = model.out.weight.detach().double().numpy()
    b = model.out.bias.detach().double().numpy()
    z = res.test_codes.bits @ W.T + b
    assert np.array_equal(res.rules.predict_index(res.test_codes.bits), z.argmax(1))
    assert m["rule_accuracy"] == m["binarized_network_accuracy"]
    assert m["coverage"] == 1.0 and m["multi_fire"] == 0.0
    # no Boolean function of the units beats the per-code majority on the test set
    assert m["rule_accuracy"] <= m["ceiling_oracle"]
    # minimisation kept the meaning
    assert m["unminimized"]["rule_accuracy"] == m["rule_accuracy"]
    assert m["terms"] <= m["unminimized"]["terms"]
    for entry in res.table:
        if entry["body"] is not None:
            assert entry["train_precision"] >= 0.5


def test_minimised_rules_equal_unminimised_on_every_code(core_paper1_extraction):
    from cnn2logic.extract.approximation import vertices

    res = core_paper1_extraction
    V = vertices(10)
    assert np.array_equal(res.rules.fires(V), res.unminimized.fires(V))


def test_on_codes_minimisation_agrees_on_training_codes(core_paper1, core_embedded):
    model, _ = core_paper1
    res = extract_model(model, core_embedded, ExtractConfig(method="approximation",
                                                            minimize="on-codes"), progress=False)
    X = res.train_codes.bits
    assert np.array_equal(res.rules.fires(X), res.unminimized.fires(X))
    assert res.metrics["literals"] <= res.metrics["unminimized"]["literals"]


def test_per_logit_mode_and_order_limit(core_paper1, core_embedded):
    model, _ = core_paper1
    res = extract_model(model, core_embedded, ExtractConfig(method="approximation",
                                                            mode="per-logit", order=4),
                        progress=False)
    assert all(len(r.body) <= 4 for r in res.unminimized.rules)
    m = res.metrics
    assert abs(m["coverage"] + m["zero_fire"] + m["multi_fire"] - 1.0) < 1e-6


def test_output_layer_must_read_the_kernel_units(core_paper1, core_embedded):
    from cnn2logic.model.spec import ConvSpec, ModelSpec, build_model

    hidden = build_model(ModelSpec(convs=(ConvSpec(10, 27),), hidden=(12,)), seed=0)
    small = core_embedded.__class__(core_embedded.train.subset(50), core_embedded.test.subset(20),
                                    "embedded")
    with pytest.raises(ModelError, match="'out' has 12 inputs but the captured layer gives 10"):
        extract_model(hidden, small, ExtractConfig(method="approximation"), progress=False)
    model, _ = core_paper1
    with pytest.raises(ModelError, match="not nn.Linear"):
        extract_model(model, small, ExtractConfig(method="approximation",
                                                  output="pool"), progress=False)


@pytest.mark.slow
def test_paper1_on_full_mnist_reaches_paper_accuracy():
    from cnn2logic.data import load_data
    from cnn2logic.model.training import TrainConfig, train

    data = load_data(full_mnist_or_skip(), train_size=50000)
    model, metrics = train("paper1", data, TrainConfig(iterations=10_000, seed=0, progress=False))
    assert metrics["test_accuracy"] > 0.939 - 0.01  # the paper's figure, within 0.01
    res = extract_model(model, data, ExtractConfig(method="approximation"), progress=False)
    assert res.metrics["rule_accuracy"] == res.metrics["binarized_network_accuracy"]
    assert res.metrics["fidelity"] > 0.85
