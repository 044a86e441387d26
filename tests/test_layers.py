"""Finding the kernel layer and the output layer on any CNN (cnn2logic.model.layers)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnn2logic.errors import ModelError
from cnn2logic.model import build_model, named_spec
from cnn2logic.model.layers import (check_layer, forward_calls, guess_layers, layers_after,
                                    linear_after, linear_reading, resolve_layers)
from cnn2logic.model.logic_head import LogicUnits, RuleListHead, replace_layer

X = torch.zeros(1, 1, 28, 28)


def lenet() -> nn.Sequential:
    """Conv-pool twice, then a Linear-ReLU-Linear head: names 0..9."""
    return nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 5), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


class Tutorial(nn.Module):
    """PyTorch's tutorial net: one pool module called twice, a functional flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.pool = nn.Conv2d(1, 3, 5), nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(3, 5, 5)
        self.fc1, self.fc2 = nn.Linear(5 * 4 * 4, 7), nn.Linear(7, 3)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def test_forward_calls_in_order_with_shapes():
    calls = forward_calls(lenet(), X)
    assert [c.name for c in calls] == [str(i) for i in range(10)]
    assert calls[5].shape == (1, 6, 1, 1) and calls[9].shape == (1, 3)


def test_a_sequential_cnn_with_a_hidden_head():
    net = lenet()
    # the global pool after the last conv; the class layer; the head begins at 7
    assert guess_layers(net, X) == ("5", "9")
    assert linear_after(net, "5", X, "first") == "7"
    assert layers_after(net, "7", X) == ["8", "9"]


def test_a_module_called_twice_and_functional_steps():
    net = Tutorial()
    # the last call of the shared pool is after conv2 (5 channels), not after conv1
    assert guess_layers(net, X) == ("pool", "fc2")
    assert layers_after(net, "pool", X) == ["fc1", "fc2"]


def test_spec_nets_keep_their_names():
    assert guess_layers(build_model(named_spec("paper3")), X) == ("pool", "out")


def test_a_tuned_network_knows_its_layers():
    net = lenet()
    replace_layer(net, "5", LogicUnits(nn.AdaptiveMaxPool2d(1), torch.zeros(6), torch.ones(6)))
    replace_layer(net, "7", RuleListHead.from_rules(6, 3, [((1, 0, 0, 0, 0, 0), None, 2)], 0))
    assert guess_layers(net, X) == ("5", "7")


def test_torchvision_resnet():
    tv = pytest.importorskip("torchvision")
    net = tv.models.resnet18(num_classes=4)
    assert guess_layers(net, torch.zeros(1, 3, 32, 32)) == ("avgpool", "fc")


def test_user_layer_gets_the_class_layer_after_it():
    net = lenet()
    assert resolve_layers(net, "4", "auto", X) == ("4", "9")
    assert resolve_layers(net, "auto", "7", X) == ("5", "7")
    assert resolve_layers(net, "2", "9", X) == ("2", "9")


def test_nothing_to_guess_is_one_clear_error():
    with pytest.raises(ModelError, match="no nn.Conv2d layer.*give --layer"):
        guess_layers(nn.Sequential(nn.Flatten(), nn.Linear(784, 3)), X)
    no_linear = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ModelError, match="no nn.Linear layer runs after the kernel layer '1'"):
        guess_layers(no_linear, X)
    with pytest.raises(ModelError, match=r"--output: no layer named 'fc'; layers: 0, 1, 2"):
        check_layer(no_linear, "fc", "--output")
    with pytest.raises(ModelError, match="no layer named 'nope'"):
        layers_after(no_linear, "nope", X)


def test_without_an_image_only_named_layers_are_found():
    assert guess_layers(build_model(named_spec("paper1")), None) == ("pool", "out")
    with pytest.raises(ModelError, match="give --layer, or images"):
        guess_layers(lenet(), None)


def test_the_layer_from_kernels_to_classes_without_an_image():
    """extract-part has codes, not images: the output is the one Linear of that shape."""
    assert linear_reading(build_model(named_spec("paper1")), 10, 10) == "out"
    one = nn.Sequential(nn.Conv2d(1, 6, 5), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                        nn.Linear(6, 3))
    assert linear_reading(one, 6, 3) == "3"
    with pytest.raises(ModelError, match="no nn.Linear layers read 6 kernel units into 10"):
        linear_reading(one, 6, 10)
    two = nn.Sequential(nn.Flatten(), nn.Linear(6, 3), nn.Linear(6, 3))
    with pytest.raises(ModelError, match=r"2 \(1, 2\) nn.Linear layers.*give --output"):
        linear_reading(two, 6, 3)
