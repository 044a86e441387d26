"""A user's own CNN for cnn2logic: ReLU, BatchNorm, global average pooling.

Nothing here is cnn2logic-specific except the optional ``interpretable`` mask: this is the
kind of ``torch.nn.Module`` a user brings.  Three conv blocks (conv 3x3 → BatchNorm →
ReLU), max-pooling after the first two, so the top conv layer ``features.conv3`` keeps a
7x7 map per kernel; global average pooling (``gap``) turns each of its ``kernels`` maps
into one value, and the linear layer ``fc`` reads exactly those values, one per kernel.

Kernel units for rules: ``--layer gap`` (the value ``fc`` reads; ``--reduce`` has no work
on a 1x1 map) or ``--layer features.relu3`` / ``features.conv3`` (pooled per kernel with
``--reduce max|mean``), binarised per kernel (``--threshold mean|minmax|eric|median``:
ReLU/BatchNorm units are not in [0, 1]).

Used by the README's "Bring your own CNN" commands and by ``examples/byo_end_to_end.py``::

    cnn2logic train --factory examples/relu_bn_cnn.py:make_net \\
        --factory-kwargs '{"kernels": 48}' --iterations 1500 --out runs/byo/model.safetensors

Example
-------
>>> import torch
>>> net = make_net(kernels=32)
>>> net(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
>>> [n for n, _ in net.named_modules()][-3:]
['features.relu3', 'gap', 'fc']
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class ReluBnCNN(nn.Module):
    """conv-BN-ReLU ×3 (max-pool after the first two), global average pool, linear."""

    def __init__(self, kernels: int = 48, width: int = 16, classes: int = 10,
                 interpretable: bool = False, in_channels: int = 1) -> None:
        super().__init__()
        layers: list[tuple[str, nn.Module]] = [
            ("conv1", nn.Conv2d(in_channels, width, 3, padding=1)),
            ("bn1", nn.BatchNorm2d(width)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(width, 2 * width, 3, padding=1)),
            ("bn2", nn.BatchNorm2d(2 * width)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(2 * width, kernels, 3, padding=1)),
            ("bn3", nn.BatchNorm2d(kernels)),
            ("relu3", nn.ReLU()),
        ]
        if interpretable:
            # Zhang et al.'s template mask on the top conv layer (cnn2logic.model.interpretable);
            # train with `cnn2logic train ... --filter-loss WEIGHT`.
            from cnn2logic.model import InterpretableMask

            layers.append(("mask", InterpretableMask()))
        self.features = nn.Sequential(OrderedDict(layers))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(kernels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.gap(self.features(x)), 1))


def make_net(kernels: int = 48, width: int = 16, classes: int = 10,
             interpretable: bool = False) -> ReluBnCNN:
    """The factory ``cnn2logic --factory examples/relu_bn_cnn.py:make_net`` calls."""
    return ReluBnCNN(kernels=kernels, width=width, classes=classes, interpretable=interpretable)
