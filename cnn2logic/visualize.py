"""Maximising images of kernel units: SmoothGrad, activation maximisation, top images.

A rule variable ``k6`` is the pooled unit of kernel 6.  The main paper reads a rule by
looking at the image that maximises each of its units, computed with SmoothGrad
(Smilkov et al. 2017): add Gaussian noise (mean 0, std 0.1) to a base image, take the
gradient of the pooled unit with respect to the pixels, average over 100 noisy copies.
For the one-layer network (``paper1``) the kernel sees the input directly, so its filter
can be shown beside its SmoothGrad image (the paper's Figure 3) and the two compared
(:func:`filter_correlation`).

The paper does not say which image the noise is added to.  ``base`` chooses it:

``"zeros"`` (default)
    a black image, the background of an MNIST digit.  The gradient there is the kernel's
    own linear sensitivity, undisturbed by any digit; measured on ``paper1`` it gives the
    highest filter correlation (see the README).
``"gray"``
    a uniform 0.5 image.
``"mean"``
    the mean of the data images (needs ``images``).
``"top"``
    each kernel's own ``top`` most activating data images, SmoothGrad averaged over them
    (needs ``images``); ``samples`` noisy copies are drawn per base image.

Everything is batched: all kernels (and all their base images) go through captum's
:class:`~captum.attr.NoiseTunnel` around :class:`~captum.attr.Saliency` together, at most
``batch_size`` noisy images per forward/backward pass, so memory is bounded whatever
the number of kernels.  :func:`activation_maximization` is the alternative the paper
mentions trying (gradient ascent on the pixels with L2 and total-variation
regularisation); :func:`top_activating` finds the data images each unit likes best.

Example
-------
>>> from cnn2logic.model.spec import build_model
>>> from cnn2logic.visualize import smoothgrad, input_filters, filter_correlation
>>> model = build_model("paper1", seed=0)
>>> maps = smoothgrad(model, "pool", base="zeros", samples=8, progress=False)
>>> maps.shape
(10, 1, 28, 28)
>>> corr, _ = filter_correlation(maps, input_filters(model, "pool"))
>>> bool(corr.min() > 0.5)  # even untrained: the gradient is the filter, shifted
True
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ._io import atomic_path, atomic_write_bytes, atomic_write_text
from .errors import ActivationError, ModelError, VisualizationError
from .names import NameTable
from .units import REDUCTIONS, capture, kernel_names, reduce_maps

SMOOTHGRAD_MEAN = 0.0  # the paper's noise mean (captum's noise is always centred)
SMOOTHGRAD_STDEV = 0.1  # the paper's noise standard deviation
SMOOTHGRAD_SAMPLES = 100  # the paper's number of noisy copies
BASES = ("zeros", "gray", "mean", "top")
DEFAULT_BASE = "mean"
DEFAULT_TOP = 8
MANIFEST = "visuals.json"
ARRAYS = "visuals.npz"
MANIFEST_FORMAT = "cnn2logic-visuals"

# Modules that keep kernel k in channel k: allowed between an input conv and the layer.
_CHANNEL_PRESERVING = (
    nn.Sigmoid, nn.ReLU, nn.Tanh, nn.Identity, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d,
    nn.BatchNorm2d, nn.Dropout, nn.Dropout2d,
)


# -- the unit as a differentiable function of the input --------------------------------
class _Captured(Exception):
    def __init__(self, output: torch.Tensor) -> None:
        super().__init__("captured")
        self.output = output


def _stop_hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
    raise _Captured(output)


class LayerUnits(nn.Module):
    """``x -> (n, kernels)``: each kernel's unit at ``layer``, differentiable in ``x``.

    The layer's output is reduced over positions exactly as :func:`cnn2logic.units.capture`
    does (max, mean, l1 or l2 norm; a 1x1 map, as the paper's ``pool``, is taken as it
    is).  The network is not run past ``layer``.  A model that runs one image at a time
    (a ``torch.export`` program exported with batch size 1, see :mod:`cnn2logic.model`) is
    given the images one by one.

    Raises
    ------
    ModelError
        ``layer`` is not a module name of ``model`` or ``reduce`` is unknown.
    VisualizationError
        ``reduce="position"``: one unit per position, not one per kernel.
    """

    def __init__(self, model: nn.Module, layer: str, reduce: str = "max") -> None:
        super().__init__()
        modules = dict(model.named_modules())
        if not layer or layer not in modules:
            known = [n for n in modules if n]
            raise ModelError(f"no layer named {layer!r}; layers: {', '.join(known)}")
        if reduce not in REDUCTIONS:
            raise ModelError(f"unknown reduction {reduce!r}; choose from {REDUCTIONS}")
        if reduce == "position":
            raise VisualizationError(
                "reduce 'position' makes one unit per map position, but maximising images "
                "are drawn per kernel: use " + ", ".join(r for r in REDUCTIONS if r != "position")
            )
        self.model = model
        self.layer = layer
        self.reduce = reduce
        self._target = modules[layer]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if getattr(self.model, "one_image_at_a_time", False) and len(x) > 1:
            return torch.cat([self._units(x[i:i + 1]) for i in range(len(x))])
        return self._units(x)

    def _units(self, x: torch.Tensor) -> torch.Tensor:
        handle = self._target.register_forward_hook(_stop_hook)
        try:
            self.model(x)
        except _Captured as cap:
            out = cap.output
        else:  # pragma: no cover - a module that is never called in forward
            raise ActivationError(f"layer {self.layer!r} is not used by the model's forward")
        finally:
            handle.remove()
        if out.ndim == 4:
            return reduce_maps(out, self.reduce)
        if out.ndim == 2:
            return out
        raise ActivationError(
            f"layer {self.layer!r} outputs shape {tuple(out.shape)}; expected (n, c, h, w) "
            "or (n, c)"
        )


def _input_shape(model: nn.Module, images: np.ndarray | None) -> tuple[int, int, int]:
    if images is not None:
        return tuple(int(s) for s in images.shape[1:])  # type: ignore[return-value]
    spec = getattr(model, "spec", None)
    if spec is not None:
        return tuple(spec.input_shape)
    raise VisualizationError(
        f"cannot tell the input shape of {type(model).__name__} (not a cnn2logic model): "
        "pass images of the model's input shape (--data)"
    )


def _as_array(images: Any) -> np.ndarray | None:
    if images is None:
        return None
    if hasattr(images, "images"):  # an ImageSet
        images = images.images
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4:
        raise VisualizationError(f"images must be (n, c, h, w), got shape {arr.shape}")
    return arr


def _n_kernels(units: LayerUnits, shape: tuple[int, int, int]) -> int:
    with torch.no_grad():
        return int(units(torch.zeros((1, *shape))).shape[1])


def _kernel_list(kernels: Sequence[int] | None, n: int) -> list[int]:
    if kernels is None:
        return list(range(n))
    out = [int(k) for k in kernels]
    bad = [k for k in out if not 0 <= k < n]
    if bad:
        raise VisualizationError(f"kernel indices {bad} outside 0..{n - 1}")
    return out


# -- top-activating images --------------------------------------------------------------
def top_activating(model: nn.Module, layer: str, images: Any, n: int = DEFAULT_TOP, *,
                   reduce: str = "max", batch_size: int = 500,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` data images that activate each kernel's unit most.

    Parameters
    ----------
    images : ImageSet or array (n, c, h, w)

    Returns
    -------
    indices, values : ndarray (kernels, n)
        Image indices, best first (ties keep data order), and the unit values.

    Raises
    ------
    VisualizationError
        ``n`` is not positive or there are no images.
    ModelError
        ``layer`` does not exist.
    """
    arr = _as_array(images)
    if arr is None or len(arr) == 0:
        raise VisualizationError("top-activating images need a non-empty image set")
    if n < 1:
        raise VisualizationError(f"number of top images must be at least 1, got {n}")
    units = capture(model, layer, arr, reduce=reduce, batch_size=batch_size, progress=progress)
    vals = units.values.T  # (kernels, images)
    order = np.argsort(-vals, axis=1, kind="stable")[:, : min(n, vals.shape[1])]
    return order, np.take_along_axis(vals, order, axis=1)


# -- SmoothGrad ------------------------------------------------------------------------
def _bases(base: str | np.ndarray, kernels: list[int], shape: tuple[int, int, int],
           images: np.ndarray | None, top_index: np.ndarray | None
           ) -> tuple[torch.Tensor, list[int], np.ndarray]:
    """Base images, the target kernel of each, and the kernel group of each."""
    if isinstance(base, np.ndarray):
        if tuple(base.shape) != shape:
            raise VisualizationError(f"base image shape {base.shape} is not {shape}")
        one = torch.from_numpy(base.astype(np.float32))
    elif base == "zeros":
        one = torch.zeros(shape)
    elif base == "gray":
        one = torch.full(shape, 0.5)
    elif base == "mean":
        if images is None or len(images) == 0:
            raise VisualizationError("base 'mean' needs data images")
        one = torch.from_numpy(images.mean(axis=0))
    elif base == "top":
        if images is None or top_index is None:
            raise VisualizationError("base 'top' needs data images")
        rows = [top_index[k] for k in kernels]
        stack = np.concatenate([images[r] for r in rows])
        targets = [k for k, r in zip(kernels, rows) for _ in r]
        groups = np.repeat(np.arange(len(kernels)), [len(r) for r in rows])
        return torch.from_numpy(stack), targets, groups
    else:
        raise VisualizationError(f"unknown SmoothGrad base {base!r}; choose from {BASES}")
    stack = one.unsqueeze(0).expand(len(kernels), *shape).contiguous()
    return stack, list(kernels), np.arange(len(kernels))


def smoothgrad(model: nn.Module, layer: str = "pool", *, base: str | np.ndarray = DEFAULT_BASE,
               images: Any = None, kernels: Sequence[int] | None = None,
               samples: int = SMOOTHGRAD_SAMPLES, stdev: float = SMOOTHGRAD_STDEV,
               top: int = DEFAULT_TOP, top_index: np.ndarray | None = None,
               reduce: str = "max", batch_size: int = 1000, seed: int = 0,
               progress: bool = True) -> np.ndarray:
    """SmoothGrad map of every kernel's unit at ``layer`` (the paper's maximising image).

    Parameters
    ----------
    model : nn.Module
        The network; it is used in eval mode and not changed.
    layer : str
        The layer whose kernels are the rule variables (``"pool"`` for the paper's models).
    base : {"zeros", "gray", "mean", "top"} or ndarray (c, h, w)
        The image the noise is added to (see the module docstring).
    images : ImageSet or array, optional
        Data images, needed by ``base="mean"`` and ``base="top"``.
    kernels : sequence of int, optional
        0-based kernel indices; all kernels by default.
    samples, stdev : int, float
        Noisy copies per base image and the noise's standard deviation (mean is 0).
    top, top_index : int, ndarray (kernels, top), optional
        For ``base="top"``: how many top images per kernel, or their precomputed indices.
    batch_size : int
        At most this many noisy images per forward/backward pass.
    seed : int
        Seeds the noise (the global torch RNG state is restored afterwards).

    Returns
    -------
    ndarray (len(kernels), c, h, w), float32
        Signed mean gradients: positive where brighter pixels raise the unit.

    Raises
    ------
    VisualizationError
        Unknown base, a base that needs images without them, or a bad parameter.
    ModelError
        ``layer`` does not exist.
    """
    if samples < 1:
        raise VisualizationError(f"samples must be at least 1, got {samples}")
    if stdev < 0:
        raise VisualizationError(f"noise standard deviation must be >= 0, got {stdev}")
    if batch_size < 1:
        raise VisualizationError(f"batch size must be at least 1, got {batch_size}")
    from captum.attr import NoiseTunnel, Saliency

    arr = _as_array(images)
    shape = _input_shape(model, arr)
    units = LayerUnits(model, layer, reduce)
    was_training = model.training
    model.eval()
    try:
        ks = _kernel_list(kernels, _n_kernels(units, shape))
        if isinstance(base, str) and base == "top" and top_index is None and arr is not None:
            top_index, _ = top_activating(model, layer, arr, top, reduce=reduce,
                                          progress=progress)
        stack, targets, groups = _bases(base, ks, shape, arr, top_index)
        tunnel = NoiseTunnel(Saliency(units))
        per_pass = max(1, batch_size // max(1, len(stack)))  # noisy copies per pass
        chunk = len(stack) if per_pass > 1 or len(stack) <= batch_size else batch_size
        starts = range(0, len(stack), chunk)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc=f"smoothgrad {layer}", unit="chunk", leave=False)
        parts = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for s in starts:
                inp = stack[s:s + chunk]
                attr = tunnel.attribute(
                    inp, nt_type="smoothgrad", nt_samples=samples,
                    nt_samples_batch_size=min(samples, per_pass), stdevs=float(stdev),
                    target=targets[s:s + chunk], abs=False,
                )
                parts.append(attr.detach())
        out = torch.cat(parts).numpy()
    finally:
        model.train(was_training)
    result = np.zeros((len(ks), *shape), dtype=np.float32)
    np.add.at(result, groups, out)
    result /= np.bincount(groups, minlength=len(ks))[:, None, None, None]
    return result


# -- activation maximisation -------------------------------------------------------------
def activation_maximization(model: nn.Module, layer: str = "pool", *,
                            kernels: Sequence[int] | None = None, steps: int = 200,
                            lr: float = 0.05, l2: float = 1.0, tv: float = 0.2,
                            start: str = "gray", objective: str = "auto",
                            images: Any = None, reduce: str = "max",
                            batch_size: int = 256, seed: int = 0,
                            progress: bool = True) -> np.ndarray:
    """Images in [0, 1] found by gradient ascent on each kernel's unit.

    Maximises ``f(unit) - l2 * mean((x - 0.5)^2) - tv * total_variation(x)`` with Adam
    from ``start`` (``"gray"``, ``"zeros"`` or ``"mean"``, plus a little seeded noise),
    clipping pixels to [0, 1] after every step.  All kernels are optimised together in
    batches of ``batch_size`` images.  ``objective`` picks ``f``: ``"log"`` (log of the
    unit; a saturated sigmoid unit near 0 still has a gradient), ``"value"`` (the unit
    itself), or ``"auto"``: log when the units at the start image lie in [0, 1].

    Returns
    -------
    ndarray (len(kernels), c, h, w), float32

    Raises
    ------
    VisualizationError
        Bad ``start``/``steps``/``lr``, or ``start="mean"`` without images.
    ModelError
        ``layer`` does not exist.
    """
    if steps < 1 or not lr > 0 or batch_size < 1:
        raise VisualizationError("steps and batch_size must be >= 1 and lr positive")
    arr = _as_array(images)
    shape = _input_shape(model, arr)
    units = LayerUnits(model, layer, reduce)
    if start == "gray":
        init = torch.full(shape, 0.5)
    elif start == "zeros":
        init = torch.zeros(shape)
    elif start == "mean":
        if arr is None or len(arr) == 0:
            raise VisualizationError("start 'mean' needs data images")
        init = torch.from_numpy(arr.mean(axis=0))
    else:
        raise VisualizationError(f"unknown start {start!r}; choose gray, zeros or mean")
    was_training = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    out: list[np.ndarray] = []
    try:
        ks = _kernel_list(kernels, _n_kernels(units, shape))
        if objective == "auto":
            with torch.no_grad():
                first = units(init.unsqueeze(0))
            use_log = bool(first.min() >= 0 and first.max() <= 1)
        elif objective in ("log", "value"):
            use_log = objective == "log"
        else:
            raise VisualizationError(f"unknown objective {objective!r}; choose auto, log, value")
        gen = torch.Generator().manual_seed(seed)
        chunks = range(0, len(ks), batch_size)
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, desc=f"act-max {layer}", unit="chunk", leave=False)
        for s in chunks:
            idx = torch.tensor(ks[s:s + batch_size])
            x = init.unsqueeze(0).repeat(len(idx), 1, 1, 1)
            x = (x + 0.01 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
            x.requires_grad_(True)
            opt = torch.optim.Adam([x], lr=lr)
            rows = torch.arange(len(idx))
            for _ in range(steps):
                value = units(x)[rows, idx]
                if use_log:
                    value = torch.log(value.clamp_min(1e-30))
                reg = l2 * ((x - 0.5) ** 2).mean(dim=(1, 2, 3)) + tv * _total_variation(x)
                loss = (reg - value).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    x.clamp_(0, 1)
            out.append(x.detach().numpy().copy())
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)
    return np.concatenate(out).astype(np.float32)


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean(dim=(1, 2, 3))
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean(dim=(1, 2, 3))
    return dh + dw


# -- filters and how alike they are ----------------------------------------------------
def input_conv(model: nn.Module, layer: str) -> nn.Conv2d | None:
    """The conv whose kernels are ``layer``'s kernels, if that conv sees the input directly.

    True for the paper's one-layer network (``paper1``: ``conv1`` for ``pool``); None when
    another conv, a linear layer or any channel-mixing module lies in between.

    Raises
    ------
    ModelError
        ``layer`` does not exist.
    """
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        raise ModelError(f"no layer named {layer!r}; layers: {', '.join(n for n in modules if n)}")
    conv: nn.Conv2d | None = None
    for name, module in model.named_modules():
        if not name or (list(module.children()) and name != layer):
            continue  # containers
        if isinstance(module, nn.Conv2d):
            if conv is not None or module.groups != 1:
                return None
            conv = module
        elif not isinstance(module, _CHANNEL_PRESERVING):
            return None
        if name == layer:
            return conv
    return None  # pragma: no cover - layer is always reached


def input_filters(model: nn.Module, layer: str) -> np.ndarray | None:
    """Filter weights (kernels, c, kh, kw) when ``layer``'s kernels see the input directly.

    Raises
    ------
    ModelError
        ``layer`` does not exist.
    """
    conv = input_conv(model, layer)
    return None if conv is None else conv.weight.detach().cpu().numpy().astype(np.float32)


def filter_correlation(maps: np.ndarray, filters: np.ndarray | None, padding: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of each map with its filter, at the best placement.

    A 27x27 filter fits a 28x28 image at 4 positions; the SmoothGrad map of a max-pooled
    unit is the filter placed where the pooled maximum was.  Each filter is correlated
    with every window of its map of the filter's size and the best window is kept.

    Returns
    -------
    corr : ndarray (kernels,)
    offsets : ndarray (kernels, 2), int
        The (row, column) of the best window's corner in the (padded) map.

    Raises
    ------
    VisualizationError
        ``filters`` is None or its shape does not fit ``maps``.
    """
    if filters is None:
        raise VisualizationError("no filters: the layer's kernels do not see the input")
    m = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    f = torch.as_tensor(np.asarray(filters, dtype=np.float32))
    if m.ndim != 4 or f.ndim != 4 or m.shape[:2] != f.shape[:2]:
        raise VisualizationError(f"maps {tuple(m.shape)} and filters {tuple(f.shape)} differ")
    if padding:
        m = nn.functional.pad(m, (padding,) * 4)
    kh, kw = f.shape[2:]
    if kh > m.shape[2] or kw > m.shape[3]:
        raise VisualizationError(f"filter {kh}x{kw} larger than map {tuple(m.shape[2:])}")
    win = nn.functional.unfold(m, (kh, kw))  # (k, c*kh*kw, positions)
    win = win - win.mean(dim=1, keepdim=True)
    fv = f.reshape(f.shape[0], -1, 1)
    fv = fv - fv.mean(dim=1, keepdim=True)
    num = (win * fv).sum(dim=1)
    den = win.norm(dim=1) * fv.norm(dim=1)
    corr = torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))
    best = corr.argmax(dim=1)
    cols = m.shape[3] - kw + 1
    offsets = torch.stack([best // cols, best % cols], dim=1)
    return corr.max(dim=1).values.numpy().astype(np.float64), offsets.numpy()


def as_image(maps: np.ndarray) -> np.ndarray:
    """Signed maps as images in [0, 1]: the positive part, scaled so its maximum is 1.

    Bright where brightening a pixel raises the unit, black elsewhere: a stroke on a
    black background, like an MNIST digit.
    """
    a = np.clip(np.asarray(maps, dtype=np.float32), 0, None)
    hi = a.max(axis=(1, 2, 3), keepdims=True)
    return np.where(hi > 0, a / np.maximum(hi, 1e-12), 0.0).astype(np.float32)


def response_matrix(model: nn.Module, layer: str, maps: np.ndarray, *,
                    reduce: str = "max") -> np.ndarray:
    """``R[k, j]``: unit ``k``'s value on map ``j`` shown as an image (:func:`as_image`).

    A map that really maximises its unit makes ``R[k, k]`` the largest of row ``k``; this
    checks maximising images where there is no filter to compare with (``paper3``).

    Raises
    ------
    ModelError
        ``layer`` does not exist.
    """
    units = LayerUnits(model, layer, reduce)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            values = units(torch.from_numpy(as_image(maps)))
    finally:
        model.train(was_training)
    return values.numpy().T.astype(np.float64)


# -- everything together ------------------------------------------------------------------
@dataclass(frozen=True)
class KernelVisuals:
    """What :func:`visualize` computed for every kernel of one layer.

    Arrays are indexed by kernel (0-based, ``names[i]`` is kernel ``i``); optional parts
    are None when they were not computed.
    """

    layer: str
    names: tuple[str, ...]
    smoothgrad: np.ndarray
    params: Mapping[str, Any]
    filters: np.ndarray | None = None
    correlation: np.ndarray | None = None
    response: np.ndarray | None = None
    top_index: np.ndarray | None = None
    top_values: np.ndarray | None = None
    top_images: np.ndarray | None = None
    actmax: np.ndarray | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    directory: str | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def selectivity(self) -> float:
        """Fraction of kernels that no other kernel's map activates more than their own."""
        if self.response is None:
            return float("nan")
        own = np.diag(self.response)
        return float(np.mean(own >= self.response.max(axis=1) - 1e-6))

    def summary(self) -> dict[str, Any]:
        """JSON-able figures: parameters, correlations, selectivity, timings."""
        out: dict[str, Any] = {
            "layer": self.layer,
            "n_kernels": len(self.names),
            "params": dict(self.params),
            "seconds": {k: round(float(v), 4) for k, v in self.seconds.items()},
        }
        if self.correlation is not None:
            out["filter_correlation"] = {
                n: round(float(c), 4) for n, c in zip(self.names, self.correlation)
            }
            out["mean_filter_correlation"] = round(float(np.mean(self.correlation)), 4)
        if self.response is not None:
            out["self_response"] = {
                n: round(float(self.response[i, i]), 4) for i, n in enumerate(self.names)
            }
            out["selectivity"] = round(self.selectivity, 4)
        return out

    def image_path(self, kernel: str, kind: str = "smoothgrad") -> Path | None:
        """Path of a written PNG (``kind``: smoothgrad, filter, top, actmax), if any."""
        rel = self.files.get(kernel, {}).get(kind)
        if rel is None or self.directory is None:
            return None
        return Path(self.directory) / rel


def visualize(model: nn.Module, layer: str = "pool", images: Any = None, *,
              base: str = DEFAULT_BASE, samples: int = SMOOTHGRAD_SAMPLES,
              stdev: float = SMOOTHGRAD_STDEV, top: int = DEFAULT_TOP,
              actmax: bool = False, actmax_steps: int = 200, reduce: str = "max",
              batch_size: int = 1000, seed: int = 0, progress: bool = True) -> KernelVisuals:
    """SmoothGrad image, filter (when it sees the input), top images and checks per kernel.

    Parameters
    ----------
    model : nn.Module
    layer : str
        The layer whose kernels are the rule variables.
    images : ImageSet or array, optional
        Data images for the top-activating images (``top`` per kernel) and for the
        ``mean``/``top`` bases.  Without them no top images are shown.
    base, samples, stdev, batch_size, seed
        Passed to :func:`smoothgrad`.
    actmax : bool
        Also compute :func:`activation_maximization` images (``actmax_steps`` steps).
    reduce : str
        How a kernel's map becomes its unit: max, mean, l1 or l2 (as in
        :func:`cnn2logic.units.capture`).

    Raises
    ------
    VisualizationError
        Bad parameters (see :func:`smoothgrad`), ``reduce="position"``, or a model
        without a cnn2logic spec and no ``images`` (its input shape is unknown).
    ModelError
        ``layer`` does not exist.
    """
    arr = _as_array(images)
    LayerUnits(model, layer, reduce)  # a bad layer or reduction fails before any work
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    top_index = top_values = top_images = None
    if arr is not None and len(arr) and top > 0:
        top_index, top_values = top_activating(model, layer, arr, top, reduce=reduce,
                                               progress=progress)
        top_images = arr[top_index]
        seconds["top_images"] = time.perf_counter() - t0
    elif base == "top":
        raise VisualizationError("base 'top' needs data images and top >= 1")
    t1 = time.perf_counter()
    maps = smoothgrad(model, layer, base=base, images=arr, samples=samples, stdev=stdev,
                      top=top, top_index=top_index, reduce=reduce, batch_size=batch_size,
                      seed=seed, progress=progress)
    seconds["smoothgrad"] = time.perf_counter() - t1
    conv = input_conv(model, layer)
    filters = corr = None
    if conv is not None and conv.in_channels == maps.shape[1]:
        # (a conv defined first but given another layer's output has other in_channels)
        filters = conv.weight.detach().cpu().numpy().astype(np.float32)
        pad = conv.padding[0] if isinstance(conv.padding, tuple) else 0
        corr, _ = filter_correlation(maps, filters, padding=int(pad))
    response = response_matrix(model, layer, maps, reduce=reduce)
    am = None
    if actmax:
        t2 = time.perf_counter()
        am = activation_maximization(model, layer, steps=actmax_steps, images=arr,
                                     reduce=reduce, seed=seed, progress=progress)
        seconds["actmax"] = time.perf_counter() - t2
    seconds["total"] = time.perf_counter() - t0
    params = {
        "method": "smoothgrad (captum NoiseTunnel around Saliency, signed gradients)",
        "base": base if isinstance(base, str) else "custom",
        "noise_mean": SMOOTHGRAD_MEAN, "noise_stdev": float(stdev), "samples": int(samples),
        "top": int(top) if top_index is not None else 0, "reduce": reduce, "seed": int(seed),
        "batch_size": int(batch_size), "actmax_steps": int(actmax_steps) if actmax else 0,
        "model": getattr(getattr(model, "spec", None), "name", type(model).__name__),
        "model_sha256": model_fingerprint(model),
    }
    return KernelVisuals(layer, kernel_names(layer, len(maps)), maps, params, filters, corr,
                         response, top_index, top_values, top_images, am, seconds)


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers (names, shapes and values)."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def match_kernels(variables: Sequence[Any], vis: KernelVisuals) -> dict[str, int]:
    """Rule variable name -> kernel index in ``vis``, for the variables that are its kernels.

    A variable of ``vis.layer`` is matched by its ``index``; a variable without a layer by
    its name (``k3``, or the qualified ``pool.k3``).  Others are left out.
    """
    by_name = {n: i for i, n in enumerate(vis.names)}
    by_name.update({f"{vis.layer}.{n}": i for i, n in enumerate(vis.names)})
    out: dict[str, int] = {}
    for v in variables:
        if v.layer == vis.layer and 0 <= v.index < len(vis):
            out[v.name] = int(v.index)
        elif not v.layer and v.name in by_name:
            out[v.name] = by_name[v.name]
    return out


# -- pictures -----------------------------------------------------------------------------
# RdBu reversed: blue for negative, white for 0, red for positive.
_DIVERGING = np.array([
    [5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240],
    [247, 247, 247], [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43],
    [103, 0, 31],
], dtype=np.float64)


def to_rgb(array: np.ndarray, kind: str = "signed") -> np.ndarray:
    """An (h, w, 3) uint8 picture of a (c, h, w) or (h, w) array.

    ``kind="signed"``: channels averaged, a diverging blue-white-red scale symmetric
    about 0 (for gradients and filters).  ``kind="image"``: values in [0, 1] as gray (or
    RGB for 3 channels).

    Raises
    ------
    VisualizationError
        ``kind`` is unknown or the array is not 2-D/3-D.
    """
    a = np.asarray(array, dtype=np.float64)
    if a.ndim == 3:
        if kind == "image" and a.shape[0] == 3:
            return (np.clip(a.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
        a = a.mean(axis=0)
    if a.ndim != 2:
        raise VisualizationError(f"cannot draw an array of shape {np.shape(array)}")
    if kind == "image":
        g = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if kind != "signed":
        raise VisualizationError(f"unknown picture kind {kind!r}")
    scale = np.abs(a).max()
    t = 0.5 + 0.5 * (a / scale if scale > 0 else a)  # in [0, 1]
    pos = t * (len(_DIVERGING) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_DIVERGING) - 2)
    frac = (pos - lo)[..., None]
    rgb = _DIVERGING[lo] * (1 - frac) + _DIVERGING[lo + 1] * frac
    return rgb.round().astype(np.uint8)


def png_bytes(rgb: np.ndarray, scale: int = 4) -> bytes:
    """PNG of an (h, w, 3) uint8 array, enlarged ``scale`` times (nearest neighbour)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def strip(arrays: Sequence[np.ndarray], kind: str = "image", gap: int = 1) -> np.ndarray:
    """Pictures side by side with a white ``gap`` (an (h, w, 3) uint8 array)."""
    pics = [to_rgb(a, kind) for a in arrays]
    h = max(p.shape[0] for p in pics)
    out = np.full((h, sum(p.shape[1] for p in pics) + gap * (len(pics) - 1), 3), 255, np.uint8)
    x = 0
    for p in pics:
        out[: p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def grid_png(vis: KernelVisuals, *, scale: int = 3, max_kernels: int = 64,
             max_top: int = 8) -> bytes:
    """One PNG: a row per kernel with its filter, SmoothGrad, act-max and top images."""
    from PIL import Image, ImageDraw, ImageFont

    n = min(len(vis), max_kernels)
    cols: list[tuple[str, Callable[[int], np.ndarray | None], str]] = []
    if vis.filters is not None:
        cols.append(("filter", lambda i: vis.filters[i], "signed"))
    cols.append(("SmoothGrad", lambda i: vis.smoothgrad[i], "signed"))
    if vis.actmax is not None:
        cols.append(("act. max", lambda i: vis.actmax[i], "image"))
    n_top = 0 if vis.top_images is None else min(max_top, vis.top_images.shape[1])
    for t in range(n_top):
        cols.append((f"top {t + 1}", lambda i, t=t: vis.top_images[i, t], "image"))
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # pragma: no cover - Pillow without FreeType
        font = ImageFont.load_default()
    h, w = vis.smoothgrad.shape[2] * scale, vis.smoothgrad.shape[3] * scale
    cell_w = max([w, (vis.filters.shape[3] * scale) if vis.filters is not None else 0]
                 + [int(font.getlength(title)) + 4 for title, _, _ in cols])
    label_w = max(int(font.getlength(n)) for n in vis.names[:n] + ("r = -0.00",)) + 16
    head_h, pad = 22, 6
    width = label_w + len(cols) * (cell_w + pad) + pad
    height = head_h + n * (max(h, 40) + pad) + pad + (16 if len(vis) > n else 0)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, (title, _, _) in enumerate(cols):
        draw.text((label_w + c * (cell_w + pad) + 2, 4), title, fill="black", font=font)
    for i in range(n):
        y = head_h + i * (max(h, 40) + pad)
        label = vis.names[i]
        draw.text((6, y + 4), label, fill="black", font=font)
        if vis.correlation is not None:
            draw.text((6, y + 22), f"r = {vis.correlation[i]:.2f}", fill="#444", font=font)
        for c, (_, get, kind) in enumerate(cols):
            arr = get(i)
            pic = Image.fromarray(to_rgb(arr, kind), "RGB")
            pic = pic.resize((pic.width * scale, pic.height * scale), Image.Resampling.NEAREST)
            canvas.paste(pic, (label_w + c * (cell_w + pad), y))
    if len(vis) > n:
        draw.text((6, height - 16), f"(first {n} of {len(vis)} kernels)", fill="black",
                  font=font)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def kernel_pngs(vis: KernelVisuals, i: int, scale: int = 4) -> dict[str, bytes]:
    """PNGs of kernel ``i``: ``smoothgrad``, and ``filter``/``top``/``actmax`` if present."""
    out = {"smoothgrad": png_bytes(to_rgb(vis.smoothgrad[i], "signed"), scale)}
    if vis.filters is not None:
        out["filter"] = png_bytes(to_rgb(vis.filters[i], "signed"), scale)
    if vis.top_images is not None:
        out["top"] = png_bytes(strip(list(vis.top_images[i]), "image"), 2)
    if vis.actmax is not None:
        out["actmax"] = png_bytes(to_rgb(vis.actmax[i], "image"), scale)
    return out


def write_visuals(vis: KernelVisuals, out_dir: str | os.PathLike[str], *,
                  progress: bool = True) -> KernelVisuals:
    """Write PNGs, ``grid.png``, the arrays (``visuals.npz``) and ``visuals.json``.

    Every file is written atomically; ``visuals.json`` is written last, so a directory
    with a manifest is complete.  Returns ``vis`` with ``files`` and ``directory`` set.

    Raises
    ------
    VisualizationError
        ``out_dir`` exists and is not a directory.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VisualizationError(f"{out} exists and is not a directory")
    (out / "kernels").mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    stems = NameTable("k", vis.names)
    items = range(len(vis))
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="write PNGs", unit="kernel", leave=False)
    for i in items:
        name = vis.names[i]
        files[name] = {}
        for kind, data in kernel_pngs(vis, i).items():
            rel = f"kernels/{stems[name]}_{kind}.png"
            atomic_write_bytes(out / rel, data)
            files[name][kind] = rel
    atomic_write_bytes(out / "grid.png", grid_png(vis))
    arrays = {"smoothgrad": vis.smoothgrad}
    for key in ("filters", "correlation", "response", "top_index", "top_values",
                "top_images", "actmax"):
        val = getattr(vis, key)
        if val is not None:
            arrays[key] = np.asarray(val)
    with atomic_path(out / ARRAYS, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "kernels": [{"name": n, "layer": vis.layer, "index": i, "files": files[n]}
                    for i, n in enumerate(vis.names)],
        "grid": "grid.png",
        "arrays": ARRAYS,
        **vis.summary(),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return _replace(vis, files=files, directory=str(out))


def load_visuals(directory: str | os.PathLike[str]) -> KernelVisuals:
    """Read what :func:`write_visuals` wrote.

    Raises
    ------
    VisualizationError
        No manifest, a manifest of another format, or missing arrays.
    """
    d = Path(directory)
    mpath = d / MANIFEST
    if not mpath.is_file():
        raise VisualizationError(f"{d}: no {MANIFEST} (run `cnn2logic visualize` first)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise VisualizationError(f"{mpath}: unreadable manifest: {exc}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise VisualizationError(f"{mpath}: not a cnn2logic visuals manifest")
    try:
        with np.load(d / manifest.get("arrays", ARRAYS), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        kernels = manifest["kernels"]
        names = tuple(str(k["name"]) for k in kernels)
        files = {str(k["name"]): dict(k.get("files", {})) for k in kernels}
        layer = str(manifest["layer"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise VisualizationError(f"{d}: incomplete visuals ({exc!r})") from None
    if "smoothgrad" not in arrays or len(arrays["smoothgrad"]) != len(names):
        raise VisualizationError(f"{d}: {ARRAYS} does not match {MANIFEST}")
    return KernelVisuals(
        layer, names, arrays["smoothgrad"], dict(manifest.get("params", {})),
        arrays.get("filters"), arrays.get("correlation"), arrays.get("response"),
        arrays.get("top_index"), arrays.get("top_values"), arrays.get("top_images"),
        arrays.get("actmax"),
        dict(manifest.get("seconds", {})), files, str(d),
    )


def _replace(vis: KernelVisuals, **changes: Any) -> KernelVisuals:
    from dataclasses import replace

    return replace(vis, **changes)
