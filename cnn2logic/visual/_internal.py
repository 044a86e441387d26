"""Private helpers of the visual modules: reading a layer at its **last** call.

A module the forward pass calls several times (PyTorch's tutorial net pools after each
convolution with one ``pool``; torchvision's ``BasicBlock.relu``) gives the kernel units
at its last call: that is what :func:`cnn2logic.units.capture`, ``extract`` and ``tune``
read, so the pictures of a kernel must be drawn from the same call (this package does not
import the model package, whose ``forward_calls`` counts calls the same way).
"""

from __future__ import annotations

import torch
from torch import nn


class Captured(Exception):
    """Raised by :func:`stop_at_last_call`'s hook to end a forward pass at the layer."""

    def __init__(self, output: object) -> None:
        super().__init__("captured")
        self.output = output


def layer_calls(model: nn.Module, module: nn.Module, x: torch.Tensor) -> int:
    """How many times ``module`` runs in one forward pass of ``x`` (eval mode, no
    gradient; the model's mode is restored)."""
    count = [0]

    def hook(_m: nn.Module, _i: object, _o: object) -> None:
        count[0] += 1

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()  # BatchNorm in training mode refuses a single 1x1 map
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
        model.train(was_training)
    if getattr(model, "one_image_at_a_time", False):  # the layer runs once per image
        return max(1, count[0] // max(1, len(x)))
    return count[0]


def stop_at_last_call(calls: int):
    """A forward hook that raises :class:`Captured` with the output of the module's
    ``calls``-th call, counting from the hook's registration (one per forward pass)."""
    seen = [0]

    def hook(_m: nn.Module, _i: object, output: object) -> None:
        seen[0] += 1
        if seen[0] >= calls:
            seen[0] = 0
            raise Captured(output)

    return hook


def last_calls(outputs: list, calls: int) -> list:
    """The outputs of every ``calls``-th call: the last call of each forward pass (or of
    each image, for a model run one image at a time)."""
    return outputs[calls - 1::calls] if calls > 1 else outputs
