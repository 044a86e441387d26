"""The rest of the network: what the rules replace, and the network run on binarised units.

Rules over a layer's kernel units stand for everything the network computes after that
layer.  When the output layer reads the pooled units directly (a flatten between them),
that is one linear layer, and "the output layer on the bits" measures what binarisation
costs (``binarized_network_accuracy``).  When it does not (torchvision's ``avgpool`` +
``fc``, hidden fully connected layers, dropout, VGG's classifier), this module says which
layers the rules replace (:func:`replaced_layers`) and runs the **rest of the network on
binarised units** (:func:`network_on_bits`): the kernel layer's output is replaced, image
by image, by what each kernel's bit alone says about it, and the network carries on from
there.

"What a bit alone says" is the kernel's mean map over the training images where its bit
has that value (:func:`bit_levels`, fitted on up to :data:`LEVEL_IMAGES` training
images): a kernel whose bit is on gets the map it has on average when on, else the one
it has when off.  The rest of the network therefore sees exactly one bit per kernel,
"thresholded to level", as the rules do; its agreement with the real network (fidelity)
is the most the rules over these bits can hope to match through this network.

A module the forward pass calls several times (torchvision's ``BasicBlock.relu``) is
read and replaced at its **last** call, as the capture does
(:meth:`cnn2logic.units.activations.LayerBatch.units`).

Example
-------
>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
...                     nn.Flatten(), nn.Dropout(), nn.Linear(2, 3))
>>> replaced_layers(net, "1", torch.zeros(1, 1, 5, 5))
['2', '3', '4', '5']
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..errors import ActivationError
from ..model.layers import forward_order, layers_after
from ..units.activations import reduce_maps

#: Training images the bit levels are fitted on (the first ones; enough for a mean map).
LEVEL_IMAGES = 2000
#: Names shown in full before :func:`replaced_summary` shortens the list.
SHOWN_NAMES = 6


def layer_calls(model: nn.Module, layer: str, sample: torch.Tensor) -> int:
    """How many times ``layer`` runs in one forward pass of ``sample``.

    Parameters
    ----------
    model : nn.Module
    layer : str
    sample : torch.Tensor

    Returns
    -------
    int
    """
    return forward_order(model, sample).count(layer)


def replaced_layers(model: nn.Module, layer: str, sample: torch.Tensor) -> list[str]:
    """The leaf modules that run after ``layer``'s last call: what rules over it replace
    (:func:`cnn2logic.model.layers.layers_after`).

    Parameters
    ----------
    model : nn.Module
    layer : str
        The kernel layer.
    sample : torch.Tensor
        One image (batch of one) the model reads.

    Returns
    -------
    list of str

    Raises
    ------
    ModelError
        ``layer`` does not exist or does not run in the forward pass.
    """
    return layers_after(model, layer, sample)


def replaced_summary(names: list[str]) -> str:
    """``"avgpool → fc"``; a long list keeps its ends (``a → b → c → … (9 more) → y``).

    Parameters
    ----------
    names : list of str

    Returns
    -------
    str
    """
    if len(names) <= SHOWN_NAMES:
        return " → ".join(names)
    hidden = len(names) - 5
    return " → ".join(names[:3] + [f"… ({hidden} more)"] + names[-2:])


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the kernel layer has run."""


def _last_call_hook(calls: int, fn):
    """A forward hook calling ``fn(output)`` at the module's ``calls``-th (last) call."""
    seen = [0]

    def hook(_m: nn.Module, _i: object, output: torch.Tensor):
        seen[0] += 1
        if seen[0] == calls:
            seen[0] = 0
            return fn(output)
        return None

    return hook


def bit_levels(model: nn.Module, layer: str, reduce: str, thresholds: np.ndarray,
               batches: Iterable[torch.Tensor], calls: int = 1
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each kernel's mean map where its bit is off, and where it is on.

    Parameters
    ----------
    model : nn.Module
    layer : str
        The kernel layer.
    reduce : str
        How a map becomes its unit (as in the capture).
    thresholds : np.ndarray
        One threshold per unit: a unit is on when ``>=`` it.
    batches : iterable of torch.Tensor
        Training images.
    calls : int
        How many times ``layer`` runs per forward pass (its last call is read).

    Returns
    -------
    off, on : torch.Tensor
        Each of the layer's output shape without the batch dimension; a kernel never
        seen with a bit value gets its overall mean map for it.

    Raises
    ------
    ActivationError
        ``reduce="position"`` (one unit per position has no per-kernel map), or the
        thresholds do not fit the layer's units.
    """
    if reduce == "position":
        raise ActivationError("the network on binarised units needs one unit per kernel, "
                              "not reduce='position'")
    module = dict(model.named_modules())[layer]
    th = torch.as_tensor(np.asarray(thresholds, dtype=np.float32))
    acc: dict[str, torch.Tensor] = {}

    def take(output: torch.Tensor):
        out = output.detach().double()
        bits = _bits(out, reduce, th).double()
        shape = bits.shape + (1,) * (out.ndim - 2)
        on = bits.reshape(shape)
        for key, w in (("on", on), ("off", 1 - on)):
            acc[key] = acc.get(key, 0) + (out * w).sum(0)
            acc["n_" + key] = acc.get("n_" + key, 0) + w.sum(0)
        raise _Stop

    _run(model, module, _last_call_hook(calls, take), batches)
    if not acc:
        raise ActivationError(f"layer {layer!r} did not run on the training images")
    total = (acc["on"] + acc["off"]) / (acc["n_on"] + acc["n_off"])
    levels = []
    for key in ("off", "on"):
        n = acc["n_" + key]
        levels.append(torch.where(n > 0, acc[key] / n.clamp(min=1), total).float())
    return levels[0], levels[1]


def _bits(out: torch.Tensor, reduce: str, th: torch.Tensor) -> torch.Tensor:
    units = reduce_maps(out, reduce) if out.ndim == 4 else out
    if units.shape[1] != len(th):
        raise ActivationError(f"{len(th)} thresholds for a layer of {units.shape[1]} units")
    return units >= th.to(units.dtype)


def _run(model: nn.Module, module: nn.Module, hook, batches: Iterable[torch.Tensor],
         collect: bool = False) -> list[torch.Tensor]:
    handle = module.register_forward_hook(hook)
    was = model.training
    model.eval()
    outs: list[torch.Tensor] = []
    try:
        with torch.no_grad():
            for xb in batches:
                try:
                    out = model(xb)
                except _Stop:
                    continue
                if collect:
                    outs.append(out.argmax(1))
    finally:
        handle.remove()
        model.train(was)
    return outs


def network_on_bits(model: nn.Module, layer: str, reduce: str, thresholds: np.ndarray,
                    fit_batches: Iterable[torch.Tensor], batches: Iterable[torch.Tensor],
                    predictions: np.ndarray, labels: np.ndarray, *, calls: int = 1
                    ) -> dict[str, float | int]:
    """The rest of the network run on ``layer``'s binarised units (module docstring).

    Parameters
    ----------
    model : nn.Module
    layer : str
        The kernel layer.
    reduce : str
        The capture's reduction.
    thresholds : np.ndarray
        One per unit.
    fit_batches : iterable of torch.Tensor
        Training images for :func:`bit_levels`.
    batches : iterable of torch.Tensor
        The images to evaluate on (the test split), in the order of ``predictions``.
    predictions, labels : np.ndarray
        The network's predicted and the true class of each evaluated image.
    calls : int
        How many times ``layer`` runs per forward pass.

    Returns
    -------
    dict
        ``fidelity`` (agreement with ``predictions``), ``accuracy`` (against ``labels``),
        ``images`` evaluated and ``level_images`` the levels were fitted on.

    Raises
    ------
    ActivationError
        As :func:`bit_levels`.
    """
    fit_count = [0]

    def counted(batches):  # streamed: one batch of training images in memory at a time
        for xb in batches:
            fit_count[0] += len(xb)
            yield xb

    off, on = bit_levels(model, layer, reduce, thresholds, counted(fit_batches), calls)
    module = dict(model.named_modules())[layer]
    th = torch.as_tensor(np.asarray(thresholds, dtype=np.float32))

    def replace(output: torch.Tensor) -> torch.Tensor:
        bits = _bits(output.detach(), reduce, th)
        shape = bits.shape + (1,) * (output.ndim - 2)
        return torch.where(bits.reshape(shape), on.to(output.dtype),
                           off.to(output.dtype)).contiguous()

    preds = _run(model, module, _last_call_hook(calls, replace), batches, collect=True)
    pred = torch.cat(preds).numpy() if preds else np.zeros(0, np.int64)
    if len(pred) != len(predictions):
        raise ActivationError(f"{len(pred)} predictions on binarised units for "
                              f"{len(predictions)} images")
    n = max(len(pred), 1)
    return {"fidelity": round(float((pred == np.asarray(predictions)).sum() / n), 6),
            "accuracy": round(float((pred == np.asarray(labels)).sum() / n), 6),
            "images": int(len(pred)), "level_images": int(fit_count[0])}
