"""The usual small CNN a user brings: PyTorch's LeNet-style tutorial net as an
``nn.Sequential`` (conv 6@5x5 → ReLU → max-pool → conv 16@5x5 → ReLU → max-pool → flatten →
Linear 256-120 → ReLU → Linear 120-84 → ReLU → Linear 84-10).

Its head reads the last pool's maps *flattened* (16 kernels × 4 × 4 positions), not one
value per kernel: ``extract`` reads the kernels at ``5`` (the last pool) and learns rules
over their pooled bits; ``tune`` gives the network a bit per kernel and position
(``k3_r1c2``, read by the trained ``7`` as it read the values) and replaces the head from
``7`` on by the rule list (docs/logic_training.md, "A head that reads the maps").

The tutorial's own ``nn.Module`` calls one pooling module after both convolutions; that
module cannot be replaced by bits at its second call only, so ``tune`` refuses it and
names the layer: give each convolution its own pooling, as here.

::

    cnn2logic train --factory examples/lenet_cnn.py:make_net --iterations 1500 \\
        --data ../shared/data/mnist --out runs/lenet/model.safetensors
    cnn2logic tune runs/lenet/model.safetensors --factory examples/lenet_cnn.py:make_net \\
        --data ../shared/data/mnist --out runs/lenet/tuned.safetensors

Example
-------
>>> import torch
>>> net = make_net()
>>> net(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
>>> net[:6](torch.zeros(1, 1, 28, 28)).shape  # what the head reads, flattened
torch.Size([1, 16, 4, 4])
"""

from __future__ import annotations

from torch import nn


def make_net(kernels: int = 16, classes: int = 10, channels: int = 1) -> nn.Sequential:
    """The net for 28x28 images with ``channels`` channels (names ``0`` .. ``11``)."""
    return nn.Sequential(
        nn.Conv2d(channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, kernels, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(kernels * 16, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))
