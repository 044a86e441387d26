"""Kernel units: capture each kernel's pooled activation, then binarise it.

:func:`capture` registers a forward hook on a named layer of any ``torch.nn.Module`` and
reduces each kernel's map to one number per image (max or mean over positions; a 1x1 map
is taken as it is).  :func:`binarize` turns those numbers into bits:

* ``"half"``: threshold 0.5, for sigmoid-bounded units (the paper);
* ``"minmax"``: per-kernel min-max normalisation to [0, 1] over the fitting data, then 0.5;
* ``"eric"``: per-kernel ``alpha * mean + gamma * std`` over the fitting data (ERIC);
* ``"mean"`` / ``"median"``: per-kernel mean or median.

Thresholds are fitted on one set (normally the training images) and applied to others.

Example
-------
>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid())
>>> units = capture(net, "1", torch.zeros(4, 1, 5, 5), progress=False)
>>> units.values.shape, units.names
((4, 2), ('k1', 'k2'))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ._io import atomic_path
from .errors import ActivationError, ModelError
from .rules import Variable

REDUCTIONS = ("max", "mean", "l1", "l2", "position")
THRESHOLDS = ("half", "minmax", "eric", "mean", "median")


@dataclass(frozen=True)
class KernelUnits:
    """Real-valued kernel units: ``values`` is (images, kernels)."""

    values: np.ndarray
    layer: str
    names: tuple[str, ...]

    @property
    def variables(self) -> tuple[Variable, ...]:
        return tuple(Variable(n, self.layer, i) for i, n in enumerate(self.names))


def kernel_names(layer: str, n: int, qualified: bool = False) -> tuple[str, ...]:
    """``k1..kn`` (1-based, like the paper's x1..x10), or ``<layer>.k1..`` when qualified."""
    prefix = f"{layer}." if qualified else ""
    return tuple(f"{prefix}k{i}" for i in range(1, n + 1))


def reduce_maps(out: torch.Tensor, reduce: str) -> torch.Tensor:
    """``(n, c, h, w)`` maps -> ``(n, c)`` units (``"position"``: ``(n, c*h*w)``).

    The one place a kernel's map becomes its unit, for capture, streamed capture and
    SmoothGrad (which differentiates it).
    """
    if reduce == "position":
        return out.flatten(1)
    if reduce == "max":
        return out.amax(dim=(2, 3))
    if reduce == "mean":
        return out.mean(dim=(2, 3))
    if reduce == "l1":  # ERIC's quantisation reads a norm of the whole activation map
        return out.abs().sum(dim=(2, 3))
    if reduce != "l2":
        raise ModelError(f"unknown reduction {reduce!r}; choose from {REDUCTIONS}")
    squares = out.pow(2).sum(dim=(2, 3))
    nonzero = squares > 0
    # the same values as sqrt(squares); sqrt's gradient at 0 is infinite, so an all-zero
    # map (a dead ReLU) gets gradient 0 instead of NaN
    return torch.where(nonzero, squares, torch.ones_like(squares)).sqrt() * nonzero


def capture(model: nn.Module, layer: str, images: torch.Tensor | np.ndarray, *,
            reduce: str = "max", batch_size: int = 500, progress: bool = True,
            qualified_names: bool = False) -> KernelUnits:
    """Pooled activation of every kernel of ``layer`` for every image.

    Parameters
    ----------
    model : nn.Module
        Any module; it is run in eval mode without gradients.
    layer : str
        A name from ``model.named_modules()`` whose output is (n, kernels, h, w) or
        (n, units).
    reduce : {"max", "mean", "l1", "l2", "position"}
        How a kernel's spatial map becomes one number (``"l1"``/``"l2"``: the norm of the
        map, as ERIC quantises kernels; a (n, units) output is taken as it is).
        ``"position"`` keeps every position of every map as its own unit, named
        ``k3_r1c2`` (kernel 3, row 1, column 2) in ``torch.flatten``'s order.

    Raises
    ------
    ModelError
        ``layer`` does not exist in ``model`` (the message lists the names that do).
    ActivationError
        The layer's output has an unsupported shape.
    """
    if reduce not in REDUCTIONS:
        raise ActivationError(f"unknown reduction {reduce!r}; choose from {REDUCTIONS}")
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        known = [n for n in modules if n]
        raise ModelError(f"no layer named {layer!r}; layers: {', '.join(known)}")
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    captured: list[torch.Tensor] = []

    map_shape: list[tuple[int, ...]] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        out = output.detach()
        if out.ndim == 4:
            if reduce == "position":
                map_shape[:] = [tuple(out.shape[1:])]
            out = reduce_maps(out, reduce)
        elif out.ndim != 2:
            raise ActivationError(
                f"layer {layer!r} outputs shape {tuple(output.shape)}; expected (n, c, h, w) "
                "or (n, c)"
            )
        captured.append(out.float().cpu())

    handle = modules[layer].register_forward_hook(hook)
    was_training = model.training
    model.eval()
    batches = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"capture {layer}", unit="batch", leave=False)
    try:
        with torch.no_grad():
            for start in batches:
                model(images[start:start + batch_size])
    finally:
        handle.remove()
        model.train(was_training)
    values = torch.cat(captured).numpy() if captured else np.zeros((0, 0), np.float32)
    if map_shape:
        return KernelUnits(values, layer, position_names(layer, *map_shape[0],
                                                         qualified=qualified_names))
    return KernelUnits(values, layer, kernel_names(layer, values.shape[1], qualified_names))


def position_names(layer: str, kernels: int, rows: int, cols: int,
                   qualified: bool = False) -> tuple[str, ...]:
    """One unit per kernel and position: ``k1_r1c1, k1_r1c2, ...`` (flatten order)."""
    prefix = f"{layer}." if qualified else ""
    return tuple(f"{prefix}k{k}_r{r}c{c}" for k in range(1, kernels + 1)
                 for r in range(1, rows + 1) for c in range(1, cols + 1))


@dataclass(frozen=True)
class Thresholds:
    """Per-kernel thresholds; a unit is 1 when its value is ``>=`` its threshold."""

    values: np.ndarray
    method: str
    params: dict = field(default_factory=dict)

    def apply(self, units: KernelUnits | np.ndarray) -> np.ndarray:
        vals = units.values if isinstance(units, KernelUnits) else np.asarray(units)
        if vals.ndim != 2 or vals.shape[1] != len(self.values):
            raise ActivationError(
                f"expected activations with {len(self.values)} kernels, got shape {vals.shape}"
            )
        return vals >= self.values[None, :]


def fit_thresholds(units: KernelUnits | np.ndarray, method: str = "half", *,
                   alpha: float = 0.6, gamma: float = 0.7) -> Thresholds:
    """Per-kernel thresholds fitted on ``units`` (see the module docstring).

    Raises
    ------
    ActivationError
        ``method`` is unknown, or ``"half"`` is asked of units outside [0, 1].
    """
    vals = units.values if isinstance(units, KernelUnits) else np.asarray(units, dtype=float)
    if vals.ndim != 2 or vals.shape[0] == 0:
        raise ActivationError(f"need a non-empty (images, kernels) matrix, got {vals.shape}")
    if method == "half":
        lo, hi = float(vals.min()), float(vals.max())
        if lo < 0.0 or hi > 1.0:
            raise ActivationError(
                f"threshold 'half' needs units in [0, 1] (sigmoid); these span [{lo:.3g}, "
                f"{hi:.3g}]: use 'minmax', 'eric', 'mean' or 'median'"
            )
        t = np.full(vals.shape[1], 0.5)
        params: dict = {}
    elif method == "minmax":
        lo, hi = vals.min(axis=0), vals.max(axis=0)
        t = lo + 0.5 * (hi - lo)
        params = {}
    elif method == "eric":
        t = alpha * vals.mean(axis=0) + gamma * vals.std(axis=0)
        params = {"alpha": alpha, "gamma": gamma}
    elif method == "mean":
        t, params = vals.mean(axis=0), {}
    elif method == "median":
        t, params = np.median(vals, axis=0), {}
    else:
        raise ActivationError(f"unknown threshold method {method!r}; choose from {THRESHOLDS}")
    return Thresholds(np.asarray(t, dtype=np.float64), method, params)


@dataclass(frozen=True)
class BinaryCodes:
    """Binarised kernel units of a data set, with what is known about each image.

    ``bits`` is (images, kernels) bool; ``labels`` and ``predictions`` are class indices
    (``predictions`` from the network, may be None); ``ids`` name the images.
    """

    bits: np.ndarray
    variables: tuple[Variable, ...]
    classes: tuple[str, ...]
    labels: np.ndarray | None = None
    predictions: np.ndarray | None = None
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.bits.ndim != 2 or self.bits.shape[1] != len(self.variables):
            raise ActivationError(
                f"bits of shape {self.bits.shape} do not match {len(self.variables)} kernels"
            )
        if not self.ids:
            object.__setattr__(self, "ids", tuple(f"img{i}" for i in range(len(self.bits))))
        for what, arr in (("labels", self.labels), ("predictions", self.predictions)):
            if arr is not None and len(arr) != len(self.bits):
                raise ActivationError(f"{len(arr)} {what} for {len(self.bits)} images")

    def __len__(self) -> int:
        return len(self.bits)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a compact ``.npz`` (bits packed 8 per byte), atomically."""
        arrays = {
            "bits": np.packbits(self.bits, axis=1),
            "n_kernels": np.array(self.bits.shape[1]),
            "var_names": np.array([v.name for v in self.variables]),
            "var_layers": np.array([v.layer for v in self.variables]),
            "var_index": np.array([v.index for v in self.variables]),
            "classes": np.array(self.classes),
            "ids": np.array(self.ids),
        }
        if self.labels is not None:
            arrays["labels"] = np.asarray(self.labels, dtype=np.int64)
        if self.predictions is not None:
            arrays["predictions"] = np.asarray(self.predictions, dtype=np.int64)
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "BinaryCodes":
        p = Path(path)
        if not p.is_file():
            raise ActivationError(f"activations file not found: {p}")
        try:
            with np.load(p, allow_pickle=False) as z:
                n = int(z["n_kernels"])
                bits = np.unpackbits(z["bits"], axis=1, count=n).astype(bool)
                variables = tuple(
                    Variable(str(a), str(b), int(c))
                    for a, b, c in zip(z["var_names"], z["var_layers"], z["var_index"])
                )
                return cls(
                    bits, variables, tuple(str(c) for c in z["classes"]),
                    z["labels"] if "labels" in z else None,
                    z["predictions"] if "predictions" in z else None,
                    tuple(str(i) for i in z["ids"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ActivationError(f"{p}: not a cnn2logic activations file ({exc})") from None


def check_binary(X: np.ndarray, what: str = "activations") -> np.ndarray:
    """``X`` as a bool matrix, or an :class:`ActivationError` naming the first bad value."""
    X = np.asarray(X)
    if X.dtype == bool:
        return X
    bad = ~np.isin(X, (0, 1))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ActivationError(
            f"{what} are not binary: value {X[i, j].item()!r} at row {i}, column {j} "
            "(binarise them first)"
        )
    return X.astype(bool)


def codes_for(model: nn.Module, layer: str, split, thresholds: Thresholds | None = None, *,
              threshold_method: str = "half", reduce: str = "max", progress: bool = True,
              qualified_names: bool = False, class_names: Sequence[str] | None = None,
              id_prefix: str = "img") -> tuple[BinaryCodes, KernelUnits, Thresholds]:
    """Capture, binarise and attach labels and network predictions for one split."""
    from .model.spec import predict_logits

    x, y = split.tensors()
    units = capture(model, layer, x, reduce=reduce, progress=progress,
                    qualified_names=qualified_names)
    if thresholds is None:
        thresholds = fit_thresholds(units, threshold_method)
    preds = predict_logits(model, x).argmax(1).numpy()
    codes = BinaryCodes(thresholds.apply(units), units.variables,
                        tuple(class_names or split.classes), y.numpy(), preds,
                        tuple(f"{id_prefix}{i}" for i in range(len(y))))
    return codes, units, thresholds
