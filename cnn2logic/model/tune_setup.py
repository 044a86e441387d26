"""Tuning, stage 1: where the bits go.

Before any training step, :func:`head_tail` checks what follows the output layer (the
layers the rule list makes redundant), and :func:`wrap_units` checks that the output
layer reads the kernel units directly, fits one threshold per kernel (or a thermometer
code of several), chooses the kernels the decision will read (:func:`select_kernels`)
and puts the :class:`~cnn2logic.model.logic_head.LogicUnits` in the unit layer's place.
:func:`table_accuracy` / :func:`lookup_ceiling` score the best table over bits (what no
program over them can beat), for the metrics.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..extract.rulelist import LOOKUP_UP_TO
from ..units import auto_binarisation, capture, fit_binarisation
from .layers import layers_after
from .logic_head import Bypassed, LogicUnits, replace_layer


def head_tail(net: nn.Module, output: str, sample: torch.Tensor, classes: int,
              class_kernels: int = 0) -> list[str]:
    """The layers after ``output`` that the rule list makes redundant (module docstring of
    :mod:`~cnn2logic.model.logic_head`), checked to be all that stands between ``output``
    and the network's output."""
    if output not in dict(net.named_modules()):
        return []  # wrap_units names the layers
    tail = layers_after(net, output, sample)
    if not tail:
        return []
    if class_kernels:
        raise ModelError(f"--class-kernels needs an output layer that gives the classes; "
                         f"{output!r} is followed by {', '.join(tail)}: give --class-kernels 0")
    # with the head's layers skipped, whatever ``output`` gives must come out unchanged
    probe = torch.arange(len(sample) * classes, dtype=torch.float32).reshape(-1, classes)
    keep = {name: net.get_submodule(name) for name in [output, *tail]}
    replace_layer(net, output, Constant(probe))
    for name in tail:
        replace_layer(net, name, Bypassed())
    try:
        with torch.no_grad():
            got = net.eval()(sample)
    except (RuntimeError, ValueError, TypeError, IndexError):
        got = None
    finally:
        for name, module in keep.items():
            replace_layer(net, name, module)
    if not (isinstance(got, torch.Tensor) and got.shape == probe.shape
            and torch.equal(got, probe)):
        raise ModelError(f"the network changes what follows its layer {output!r} by more "
                         f"than the layers {', '.join(tail)} (a function in its forward); "
                         "give as --output the layer whose result is the network's output")
    return tail


class Constant(nn.Module):
    """Returns the same tensor whatever it reads (the probe of :func:`head_tail`)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


def lookup_ceiling(bits: np.ndarray, labels: np.ndarray) -> float:
    """Share of images whose label is the majority label of their code."""
    return round(table_accuracy(bits, labels, bits, labels), 6)


def table_accuracy(fit_bits: np.ndarray, fit_y: np.ndarray, bits: np.ndarray,
                    y: np.ndarray) -> float:
    """Accuracy on ``bits``/``y`` of the majority-label-per-code table of the fitting bits."""
    if len(y) == 0 or len(fit_y) == 0:
        return float("nan")
    # one integer per distinct code over both sets (codes may be longer than 64 bits)
    _, ids = np.unique(np.packbits(np.concatenate([fit_bits, bits]), axis=1), axis=0,
                       return_inverse=True)
    ids = ids.reshape(-1).astype(np.int64)
    classes = int(max(fit_y.max(), y.max())) + 1
    fallback = int(np.bincount(fit_y, minlength=classes).argmax())
    return heldout_lookup(ids[:len(fit_y)], fit_y, ids[len(fit_y):], y, classes, fallback)


def wrap_units(net: nn.Module, layer: str, output: str, x_tr: torch.Tensor,
               predictions: np.ndarray, max_kernels: int,
               levels: int = 1) -> tuple[LogicUnits, list[int]]:
    """Check the layers, fit thresholds, choose the kernels the decision will read and put
    the :class:`LogicUnits` in place (with ``levels`` > 1, also an output layer as wide as
    the bits)."""
    modules = dict(net.named_modules())
    for name, what in ((layer, "--layer"), (output, "--output")):
        if not name or name not in modules:
            raise ModelError(f"{what}: no layer named {name!r}; layers: "
                             f"{', '.join(n for n in modules if n)}")
    if isinstance(modules[layer], LogicUnits):
        raise ModelError(f"layer {layer!r} is already tuned")
    lin = modules[output]
    if not isinstance(lin, nn.Linear):
        raise ModelError(f"output layer {output!r} is {type(lin).__name__}, not nn.Linear")
    seen: dict[str, torch.Tensor] = {}
    # (a forward hook that returns a value replaces the module's output: these return None)
    hooks = [modules[layer].register_forward_hook(lambda _m, _i, o: seen.update(u=o)),
             lin.register_forward_hook(lambda _m, i, _o: seen.update(x=i[0]))]
    try:
        with torch.no_grad():
            net.eval()(x_tr[:2])
    finally:
        for h in hooks:
            h.remove()
    u, x = seen.get("u"), seen.get("x")
    if u is None or x is None or u.ndim < 2 or u[0].numel() != u.shape[1] or (
            x.shape != (u.shape[0], u.shape[1]) or not torch.equal(x, u.reshape(x.shape))):
        raise ModelError(f"output layer {output!r} does not read the units of {layer!r} "
                         "directly (one value per kernel, nothing in between but a flatten)")
    values = capture(net, layer, x_tr, progress=False).values
    selected = list(range(values.shape[1]))
    choose = 0 < max_kernels < values.shape[1]
    if levels == 1 or choose:
        # one fitted threshold per kernel: the bits themselves, or what the kernels are
        # chosen by (with levels, the quantile cuts below replace them)
        method = "lookup" if values.shape[1] <= LOOKUP_UP_TO else auto_binarisation(values)
        th = np.asarray(fit_binarisation(values, method, predictions).values,
                        dtype=np.float64)
    if choose:
        selected = select_kernels(values >= th, predictions, max_kernels)
    if choose and levels == 1:
        # the chosen few get the thresholds a small layer gets (fitted jointly for fidelity)
        few = values[:, selected]
        refit = fit_binarisation(few, "lookup" if len(selected) <= LOOKUP_UP_TO
                                 else auto_binarisation(few), predictions)
        th[selected] = np.asarray(refit.values, dtype=np.float64)
    if levels > 1:
        # a thermometer code: cuts at evenly spaced quantiles of each kernel's units
        qs = [(lv + 1) / (levels + 1) for lv in range(levels)]
        th = np.quantile(values, qs, axis=0).T.astype(np.float64)
    t = torch.as_tensor(th, dtype=torch.float32)
    scale = torch.as_tensor(np.maximum(values.std(axis=0), 1e-3), dtype=torch.float32)
    units = LogicUnits(modules[layer], t, scale)
    replace_layer(net, layer, units)
    if levels > 1:
        # the output layer reads each kernel's levels; starting from the trained weights
        # spread over them (the share of levels on stands where the unit in [0, 1] did)
        wide = nn.Linear(lin.in_features * levels, lin.out_features,
                         bias=lin.bias is not None)
        with torch.no_grad():
            wide.weight.copy_(lin.weight.repeat_interleave(levels, dim=1) / levels)
            if lin.bias is not None:
                wide.bias.copy_(lin.bias)
        replace_layer(net, output, wide)
    return units, selected


def select_kernels(bits: np.ndarray, target: np.ndarray, n: int) -> list[int]:
    """``n`` kernels chosen greedily so that their bits predict ``target`` on held-out images.

    Each step adds the kernel whose bit, with those already chosen, gives the best lookup
    (majority ``target`` of each code) fitted on the even-numbered images and scored on the
    odd-numbered ones (unseen codes answer the overall majority): scoring on the images the
    table was fitted on would reward codes that only memorise.

    Parameters
    ----------
    bits : ndarray of bool, ``(images, kernels)``
    target : ndarray of int, ``(images,)``
    n : int

    Returns
    -------
    list of int
        Kernel indices in the order chosen (``min(n, kernels)`` of them).
    """
    bits = np.asarray(bits, dtype=bool)
    target = np.asarray(target, dtype=np.int64)
    fit, score = np.arange(0, len(bits), 2), np.arange(1, len(bits), 2)
    classes = int(target.max()) + 1 if len(target) else 1
    fallback = np.bincount(target[fit], minlength=classes).argmax() if len(fit) else 0
    code = np.zeros(len(bits), dtype=np.int64)
    chosen: list[int] = []
    for _ in range(min(n, bits.shape[1])):
        best = (-1.0, -1)
        for j in range(bits.shape[1]):
            if j in chosen:
                continue
            key = code * 2 + bits[:, j]
            acc = heldout_lookup(key[fit], target[fit], key[score], target[score],
                                  classes, fallback)
            if acc > best[0]:
                best = (acc, j)
        chosen.append(best[1])
        code = code * 2 + bits[:, best[1]]
    return chosen


def heldout_lookup(key_fit: np.ndarray, y_fit: np.ndarray, key_score: np.ndarray,
                    y_score: np.ndarray, classes: int, fallback: int) -> float:
    """Accuracy on the scoring images of the majority-per-code table of the fitting images."""
    if len(key_score) == 0:
        return 0.0
    uniq, inverse = np.unique(key_fit, return_inverse=True)
    table = np.zeros((len(uniq), classes), dtype=np.int64)
    np.add.at(table, (inverse.reshape(-1), y_fit), 1)
    answer = table.argmax(1)
    pos = np.searchsorted(uniq, key_score)
    pos = np.minimum(pos, len(uniq) - 1)
    seen = uniq[pos] == key_score
    pred = np.where(seen, answer[pos], fallback)
    return float((pred == y_score).mean())
