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

#: A head that reads flattened maps of at most this many values gets one bit per position
#: (``k3_r1c2``); above it, one bit per kernel (the max of its map).
POSITION_UP_TO = 1024


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
               levels: int = 1, teacher_logits: torch.Tensor | None = None,
               map_bits: str = "auto") -> tuple[LogicUnits, list[int]]:
    """Check the layers, fit thresholds, choose the kernels the decision will read and put
    the :class:`LogicUnits` in place (with ``levels`` > 1, also an output layer as wide as
    the bits).

    An output layer that reads the layer's maps flattened (``C x H x W`` values, as in a
    ``conv-pool-flatten-Linear`` network) gets a bit per position (``pool="position"``,
    ``k3_r1c2``) when there are at most :data:`POSITION_UP_TO`, read by the trained layer
    as it read the values; above that, a bit per kernel (``pool="max"``, the units
    ``extract`` reads) and a new output layer from the bits to the classes, fitted to
    ``teacher_logits`` by least squares (the rule list replaces it in the end; the rest of
    the old head is then skipped: the caller bypasses it). ``map_bits`` ("position",
    "max") chooses instead of the size."""
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
    calls: list[tuple[int, ...]] = []  # one image's output shape at each call

    def on_layer(_m: nn.Module, _i: tuple, o: torch.Tensor) -> None:
        calls.append(tuple(o.shape[1:]) if isinstance(o, torch.Tensor) else ())
        seen["u"] = o

    # (a forward hook that returns a value replaces the module's output: these return None)
    hooks = [modules[layer].register_forward_hook(on_layer),
             lin.register_forward_hook(lambda _m, i, _o: seen.update(x=i[0]))]
    try:
        with torch.no_grad():
            net.eval()(x_tr[:2])
    finally:
        for h in hooks:
            h.remove()
    u, x = seen.get("u"), seen.get("x")
    if len(calls) > 1 and calls[-1] in calls[:-1]:
        # bits only at the last call (what capture and extract read), told apart from the
        # earlier calls by its shape: here the shapes cannot tell them apart
        raise ModelError(f"layer {layer!r} runs {len(calls)} times in one forward pass, "
                         f"its last call with the same output shape {calls[-1]} as an "
                         "earlier one, so tune cannot give bits at the last call only: give "
                         "the network a layer of its own after the last convolution and "
                         "pass it as --layer")
    # a module reused after every convolution (PyTorch's tutorial net): bits at its last call
    at = calls[-1] if len(calls) > 1 else ()
    reads = (u is not None and x is not None and u.ndim >= 2 and x.ndim == 2
             and x.shape[0] == u.shape[0] and x[0].numel() == u[0].numel()
             and torch.equal(x, u.reshape(x.shape)))
    flat_map = reads and u.ndim == 4 and u[0].numel() != u.shape[1]
    if not reads or (u[0].numel() != u.shape[1] and not flat_map):
        raise ModelError(f"output layer {output!r} does not read the units of {layer!r} "
                         "directly (one value per kernel or the kernels' maps, nothing in "
                         "between but a flatten)")
    # a flattened map small enough for a bit per position keeps what the head reads (and
    # its trained weights); a larger one (VGG's 512 x 7 x 7) is pooled to a bit per kernel
    by_position = flat_map and (map_bits == "position" or (
        map_bits == "auto" and u[0].numel() <= POSITION_UP_TO))
    pooled = flat_map and not by_position
    if by_position and levels > 1:
        raise ModelError(f"output layer {output!r} reads every position of {layer!r}'s maps: "
                         "one bit each, so --levels must be 1")
    if pooled and teacher_logits is None:
        raise ModelError(f"output layer {output!r} reads the maps of {layer!r} flattened; "
                         "their pooled bits need the original outputs to start from")
    values = capture(net, layer, x_tr, reduce="position" if by_position else "max",
                     progress=False).values
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
    units = LogicUnits(modules[layer], t, scale,
                       pool="position" if by_position else "max" if pooled else "",
                       map_shape=tuple(u.shape[1:]) if by_position else (), at=at)
    replace_layer(net, layer, units)
    if pooled:
        replace_layer(net, output, pooled_head(values, th, teacher_logits))
    elif levels > 1:
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


def pooled_head(values: np.ndarray, thresholds: np.ndarray,
                teacher_logits: torch.Tensor) -> nn.Linear:
    """A linear layer from the bits of ``values`` (``(n, kernels)``, cut at
    ``thresholds``, ``(kernels,)`` or ``(kernels, levels)``) to the classes: the least-
    squares fit of the original network's log-probabilities, a start for the
    straight-through phase when the old output layer read something else.

    >>> v = np.array([[0.], [1.], [0.], [1.]])
    >>> t = torch.tensor([[3., 0.], [0., 3.], [3., 0.], [0., 3.]])
    >>> lin = pooled_head(v, np.array([0.5]), t)
    >>> lin(torch.tensor([[0.], [1.]])).argmax(1).tolist()
    [0, 1]
    """
    n, k = values.shape
    th = np.asarray(thresholds, dtype=np.float64).reshape(k, -1)
    bits = (values[:, :, None] >= th[None]).reshape(n, -1)
    a = torch.cat([torch.as_tensor(bits, dtype=torch.float64),
                   torch.ones(n, 1, dtype=torch.float64)], 1)
    b = torch.log_softmax(teacher_logits.to(torch.float64), 1)
    # gelsd: minimum-norm solution when a bit is constant (a rank-deficient system)
    sol = torch.linalg.lstsq(a, b, driver="gelsd").solution
    lin = nn.Linear(bits.shape[1], b.shape[1])
    with torch.no_grad():
        lin.weight.copy_(sol[:-1].T.to(torch.float32))
        lin.bias.copy_(sol[-1].to(torch.float32))
    return lin

