"""Logic-friendly training: make the network decide through binary kernel units.

With ordinary training the pooled kernel units are not binary, so the best any Boolean
function of the binarised units can do is below the network's own accuracy and no rule
extractor can be faithful.  A :class:`BinaryUnits` layer placed right after the pooling
step fixes this at the root: **at inference it outputs the hard bits** ``u >= 0.5``, so the
network *is* a function of the binarised units the rules are extracted from (the
approximation method at full order then reproduces it exactly).  In training it needs a
differentiable stand-in; the modes (compared in ``bench/logic_training.py``):

``"ste"``
    straight-through estimator: the forward pass uses the hard bits, the backward pass
    the gradient of the continuous unit (``u + (hard - u).detach()``).
``"noise"``
    Gaussian noise of standard deviation ``noise`` added before the sigmoid (on
    ``logit(u)``) during training, which pays the network to saturate its units.
``"penalty"``
    continuous units in training plus ``weight * mean(u (1 - u))`` added to the loss
    (:func:`binary_penalty_loss`), pulling each unit to 0 or 1.

``binary_warmup`` steps of ordinary training first (:func:`warmup_schedule`) let the
filters form before the units are binarised.  Every mode uses the hard bits at inference, so a checkpoint rebuilds the network that
was measured.  The mode is part of the model spec (``ModelSpec.binary_units``); the layer
is called ``binarize`` and has no parameters, so the weights are laid out as without it.
For a user's own ``nn.Module``, put a :class:`BinaryUnits` after the pooling of the
kernel units (it is a plain module) and train with :func:`binary_penalty_loss` as
``extra_loss`` when using the penalty.

Example
-------
>>> import torch
>>> layer = BinaryUnits("ste")
>>> u = torch.tensor([[0.2, 0.7]], requires_grad=True)
>>> out = layer(u); out.tolist()
[[0.0, 1.0]]
>>> out.sum().backward(); u.grad.tolist()
[[1.0, 1.0]]
>>> _ = layer.eval(); layer(torch.tensor([[0.49, 0.5]])).tolist()
[[0.0, 1.0]]
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import ModelError

MODES = ("none", "ste", "noise", "penalty")
DEFAULT_NOISE = 2.0
DEFAULT_PENALTY = 1.0
_EPS = 1e-6


class BinaryUnits(nn.Module):
    """Hard 0/1 units at inference (``u >= threshold``); a trainable surrogate in training.

    Parameters
    ----------
    mode : {"ste", "noise", "penalty"}
        The training-time surrogate (module docstring).
    threshold : float
        Where a unit switches on; 0.5 for sigmoid units.
    noise : float
        Standard deviation of the pre-sigmoid noise in ``"noise"`` mode.

    Raises
    ------
    ModelError
        Unknown mode or a negative noise level.
    """

    def __init__(self, mode: str = "ste", threshold: float = 0.5,
                 noise: float = DEFAULT_NOISE) -> None:
        super().__init__()
        if mode not in MODES or mode == "none":
            raise ModelError(f"unknown binary-unit mode {mode!r}; choose from {MODES[1:]}")
        if noise < 0:
            raise ModelError(f"noise must be ≥ 0, got {noise}")
        self.mode = mode
        self.threshold = float(threshold)
        self.noise = float(noise)
        self.penalty: torch.Tensor | None = None
        # During a warm-up (see warmup_schedule) training uses the continuous units.
        self.warming = False

    def extra_repr(self) -> str:
        """``mode`` and ``threshold`` in the module's repr."""
        return f"mode={self.mode!r}, threshold={self.threshold}"

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Hard 0/1 units (in training, with the mode's gradient or noise)."""
        hard = (u >= self.threshold).to(u.dtype)
        if not self.training:
            self.penalty = None
            return hard
        if self.warming:
            self.penalty = None
            return u
        if self.mode == "ste":
            self.penalty = None
            return u + (hard - u).detach()
        if self.mode == "noise":
            self.penalty = None
            if self.noise == 0:
                return u
            z = torch.logit(u.clamp(_EPS, 1 - _EPS))
            return torch.sigmoid(z + self.noise * torch.randn_like(z))
        # penalty: continuous in training, the loss hook reads the penalty
        self.penalty = (u * (1 - u)).mean()
        return u


def binary_modules(model: nn.Module) -> list[tuple[str, BinaryUnits]]:
    """The :class:`BinaryUnits` layers of ``model`` with their names.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    list of (str, BinaryUnits)
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BinaryUnits)]


def binary_penalty_loss(weight: float = DEFAULT_PENALTY
                        ) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``train(extra_loss=...)`` hook adding ``weight * mean(u (1 - u))`` of every
    :class:`BinaryUnits` layer in ``"penalty"`` mode (computed in its last forward pass).

    Parameters
    ----------
    weight : float

    Returns
    -------
    callable
        ``(model, images, logits) -> scalar tensor``.

    Raises
    ------
    ModelError
        ``weight`` is negative.
    """
    if weight < 0:
        raise ModelError(f"penalty weight must be ≥ 0, got {weight}")

    def hook(model: nn.Module, _images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for _, m in binary_modules(model):
            if m.penalty is not None:
                total = total + m.penalty
        return weight * total

    return hook


def warmup_schedule(model: nn.Module, steps: int
                    ) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``train(extra_loss=...)`` hook (adding nothing to the loss) that trains the first
    ``steps`` iterations with continuous units, then switches the binary units on.

    Parameters
    ----------
    model : nn.Module
        Its :class:`BinaryUnits` layers are put in warm-up now.
    steps : int

    Returns
    -------
    callable
        ``(model, images, logits) -> zero``.

    Raises
    ------
    ModelError
        ``steps`` is negative.
    """
    if steps < 0:
        raise ModelError(f"warm-up steps must be ≥ 0, got {steps}")
    layers = [m for _, m in binary_modules(model)]
    for m in layers:
        m.warming = steps > 0
    calls = [0]

    def hook(_model: nn.Module, _images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] >= steps:
            for m in layers:
                m.warming = False
        return logits.new_zeros(())

    return hook


def configure(model: nn.Module, noise: float | None = None) -> int:
    """Set the noise level of every :class:`BinaryUnits` layer; return how many there are.

    Parameters
    ----------
    model : nn.Module
    noise : float, optional
        ``None`` leaves the layers' noise as it is.

    Returns
    -------
    int
        The number of :class:`BinaryUnits` layers.

    Raises
    ------
    ModelError
        ``noise`` is negative.
    """
    layers = binary_modules(model)
    if noise is not None:
        if noise < 0:
            raise ModelError(f"noise must be ≥ 0, got {noise}")
        for _, m in layers:
            m.noise = float(noise)
    return len(layers)
