"""Maximising images of kernel units: SmoothGrad, activation maximisation, top images.

A rule variable ``k6`` is the pooled unit of kernel 6.  The main paper reads a rule by
looking at the image that maximises each of its units, computed with SmoothGrad
(Smilkov et al. 2017): add Gaussian noise (mean 0, std 0.1) to a base image, take the
gradient of the pooled unit with respect to the pixels, average over 100 noisy copies.
For the one-layer network (``paper1``) the kernel sees the input directly, so its filter
can be shown beside its SmoothGrad image (the paper's Figure 3) and the two compared
(:func:`cnn2logic.visual.filters.filter_correlation`).

The paper does not say which image the noise is added to.  ``base`` chooses it:

``"zeros"``
    a black image, the background of an MNIST digit.  The gradient there is the kernel's
    own linear sensitivity, undisturbed by any digit; measured on ``paper1`` it gives the
    highest filter correlation (see the README).
``"gray"``
    a uniform 0.5 image.
``"mean"`` (default)
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
>>> from cnn2logic.visual.saliency import smoothgrad
>>> from cnn2logic.visual.filters import input_filters, filter_correlation
>>> model = build_model("paper1", seed=0)
>>> maps = smoothgrad(model, "pool", base="zeros", samples=8, progress=False)
>>> maps.shape
(10, 1, 28, 28)
>>> corr, _ = filter_correlation(maps, input_filters(model, "pool"))
>>> bool(corr.min() > 0.5)  # even untrained: the gradient is the filter, shifted
True
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..data import as_split
from ..errors import ActivationError, ModelError, VisualizationError
from ..units import REDUCTIONS, capture, layer_unit_names, reduce_maps
from ._internal import Captured, layer_calls, stop_at_last_call

SMOOTHGRAD_MEAN = 0.0  # the paper's noise mean (captum's noise is always centred)
SMOOTHGRAD_STDEV = 0.1  # the paper's noise standard deviation
SMOOTHGRAD_SAMPLES = 100  # the paper's number of noisy copies
BASES = ("zeros", "gray", "mean", "top")
DEFAULT_BASE = "mean"
DEFAULT_TOP = 8
ACTMAX_CONTRAST = 1.0  # weight of the other units in the contrastive objective


# -- the unit as a differentiable function of the input --------------------------------
#: Where a thresholded layer keeps the layer it wraps (``LogicUnits.inner`` of a tuned
#: network, :mod:`cnn2logic.model.logic_head`).
WRAPPED = "inner"


def units_layer(model: nn.Module, layer: str) -> str:
    """The layer whose output the pictures of ``layer``'s kernels are drawn from.

    ``layer`` itself, except for the thresholded kernel layer of a tuned network (a module
    with a wrapped ``inner`` layer and ``unit_names``, duck-typed: this package does not
    import the model package), whose hard bits have no gradient: then the wrapped layer
    ``<layer>.inner``, whose continuous units the bits threshold.

    Example
    -------
    >>> units_layer(nn.Sequential(nn.Conv2d(1, 2, 3)), "0")
    '0'
    """
    module = dict(model.named_modules()).get(layer)
    if (isinstance(getattr(module, WRAPPED, None), nn.Module)
            and layer_unit_names(model, layer) is not None):
        return f"{layer}.{WRAPPED}"
    return layer


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
        self._calls: int | None = None

    def calls(self, x: torch.Tensor) -> int:
        """How many times the forward pass runs ``layer`` (counted on ``x`` once, then
        remembered); its units are those of the last call, as ``capture`` reads them."""
        if self._calls is None:
            self._calls = layer_calls(self.model, self._target, x[:1].detach())
        return self._calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The units ``(n, kernels)`` of the images ``x`` ``(n, c, h, w)``.

        Raises
        ------
        ActivationError
            The layer's output is not ``(n, c, h, w)`` or ``(n, c)``.
        """
        if getattr(self.model, "one_image_at_a_time", False) and len(x) > 1:
            return torch.cat([self._units(x[i:i + 1]) for i in range(len(x))])
        return self._units(x)

    def _units(self, x: torch.Tensor) -> torch.Tensor:
        handle = self._target.register_forward_hook(stop_at_last_call(self.calls(x)))
        try:
            self.model(x)
        except Captured as cap:
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
    if isinstance(images, (Dataset, DataLoader)):  # a torch Dataset: loaded whole
        images = as_split(images, "images")
    if hasattr(images, "images"):  # an ImageSet or StreamSet
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
        out = _noise_tunnel(units, stack, targets, samples=samples, stdev=stdev,
                            batch_size=batch_size, seed=seed, progress=progress)
    finally:
        model.train(was_training)
    result = np.zeros((len(ks), *shape), dtype=np.float32)
    np.add.at(result, groups, out)
    result /= np.bincount(groups, minlength=len(ks))[:, None, None, None]
    return result


def _noise_tunnel(units: LayerUnits, stack: torch.Tensor, targets: list[int], *, samples: int,
                  stdev: float, batch_size: int, seed: int, progress: bool) -> np.ndarray:
    """Signed SmoothGrad of ``units[target]`` at every base image, at most ``batch_size``
    noisy images per pass, the noise seeded by ``seed`` (the global RNG state restored)."""
    # captum is heavy to import: loaded only when SmoothGrad actually runs.
    from captum.attr import NoiseTunnel, Saliency

    tunnel = NoiseTunnel(Saliency(units))
    per_pass = max(1, batch_size // max(1, len(stack)))  # noisy copies per pass
    chunk = len(stack) if per_pass > 1 or len(stack) <= batch_size else batch_size
    starts = range(0, len(stack), chunk)
    if progress:
        starts = tqdm(starts, desc=f"smoothgrad {units.layer}", unit="chunk", leave=False)
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
    return torch.cat(parts).numpy()


# -- activation maximisation -------------------------------------------------------------
def activation_maximization(model: nn.Module, layer: str = "pool", *,
                            kernels: Sequence[int] | None = None, steps: int = 200,
                            lr: float = 0.05, l2: float = 1.0, tv: float = 0.2,
                            start: str = "gray", objective: str = "auto",
                            images: Any = None, reduce: str = "max",
                            batch_size: int = 256, seed: int = 0, contrast: float = 0.0,
                            progress: bool = True) -> np.ndarray:
    """Images in [0, 1] found by gradient ascent on each kernel's unit.

    Maximises ``f(unit) - l2 * mean((x - 0.5)^2) - tv * total_variation(x)`` with Adam
    from ``start`` (``"gray"``, ``"zeros"`` or ``"mean"``, plus a little seeded noise),
    clipping pixels to [0, 1] after every step.  All kernels are optimised together in
    batches of ``batch_size`` images.  ``objective`` picks ``f``: ``"log"`` (log of the
    unit; a saturated sigmoid unit near 0 still has a gradient), ``"value"`` (the unit
    itself), or ``"auto"``: log when the units at the start image lie in [0, 1].

    ``contrast > 0`` makes the image *specific* to its kernel: ``f(unit_k) - contrast *
    mean_{j != k} f(unit_j)``, with every unit divided by its standard deviation over
    ``images`` in the value objective (so that units of different scales weigh alike).
    A plain maximising image of a ReLU/BatchNorm net drives many kernels' units at once
    (it is all strokes); the contrastive one is the evidence
    :mod:`cnn2logic.visual.evidence` tests for selectivity.

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
    if steps < 1 or not lr > 0 or batch_size < 1 or contrast < 0:
        raise VisualizationError("steps and batch_size must be >= 1, lr positive and "
                                 "contrast >= 0")
    arr = _as_array(images)
    shape = _input_shape(model, arr)
    units = LayerUnits(model, layer, reduce)
    init = _start_image(start, shape, arr)
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
        scale = None
        if contrast > 0 and not use_log and arr is not None and len(arr):
            with torch.no_grad():
                sample = torch.from_numpy(arr[: min(len(arr), 2000)])
                scale = units(sample).std(dim=0).clamp_min(1e-6)
        gen = torch.Generator().manual_seed(seed)
        chunks = range(0, len(ks), batch_size)
        if progress:
            chunks = tqdm(chunks, desc=f"act-max {layer}", unit="chunk", leave=False)
        for s in chunks:
            x = init.unsqueeze(0).repeat(len(ks[s:s + batch_size]), 1, 1, 1)
            x = (x + 0.01 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
            out.append(_ascend(units, x, ks[s:s + batch_size], steps=steps, lr=lr, l2=l2,
                               tv=tv, use_log=use_log, contrast=contrast, scale=scale))
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)
    return np.concatenate(out).astype(np.float32)


def _start_image(start: str, shape: tuple[int, int, int], arr: np.ndarray | None
                 ) -> torch.Tensor:
    if start == "gray":
        return torch.full(shape, 0.5)
    if start == "zeros":
        return torch.zeros(shape)
    if start == "mean":
        if arr is None or len(arr) == 0:
            raise VisualizationError("start 'mean' needs data images")
        return torch.from_numpy(arr.mean(axis=0))
    raise VisualizationError(f"unknown start {start!r}; choose gray, zeros or mean")


def _ascend(units: LayerUnits, x: torch.Tensor, kernels: list[int], *, steps: int, lr: float,
            l2: float, tv: float, use_log: bool, contrast: float = 0.0,
            scale: torch.Tensor | None = None) -> np.ndarray:
    """``steps`` Adam steps of regularised gradient ascent on ``x[i]`` for ``kernels[i]``."""
    idx = torch.tensor(kernels)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    rows = torch.arange(len(idx))
    for _ in range(steps):
        all_units = units(x)
        if use_log:
            all_units = torch.log(all_units.clamp_min(1e-30))
        elif scale is not None:
            all_units = all_units / scale
        value = all_units[rows, idx]
        if contrast > 0 and all_units.shape[1] > 1:
            others = (all_units.sum(dim=1) - value) / (all_units.shape[1] - 1)
            value = value - contrast * others
        reg = l2 * ((x - 0.5) ** 2).mean(dim=(1, 2, 3)) + tv * _total_variation(x)
        loss = (reg - value).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach().numpy().copy()


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean(dim=(1, 2, 3))
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean(dim=(1, 2, 3))
    return dh + dw
