"""Every kernel's pictures and checks at once: :func:`visualize` -> :class:`KernelVisuals`.

Per kernel of a layer: its SmoothGrad image (:mod:`~cnn2logic.visual.saliency`), its
filter and their correlation when the kernel sees the input
(:mod:`~cnn2logic.visual.filters`), the data images that activate it most, optionally an
activation-maximisation image, the response matrix, and the evidence a person can look at
(top patches, class profile, selectivity of each kind: :mod:`~cnn2logic.visual.evidence`).  :func:`model_fingerprint`
identifies the model the visuals belong to (recorded in their parameters).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import VisualizationError
from ..units import kernel_names
from .evidence import BACKGROUNDS, kernel_evidence
from .filters import as_image, filter_correlation, input_conv, response_matrix
from .saliency import (ACTMAX_CONTRAST, DEFAULT_BASE, DEFAULT_TOP, SMOOTHGRAD_MEAN,
                       SMOOTHGRAD_SAMPLES, SMOOTHGRAD_STDEV, LayerUnits, _as_array,
                       _input_shape, _n_kernels, activation_maximization, smoothgrad,
                       top_activating, units_layer)
from .visuals import KernelVisuals


def visualize(model: nn.Module, layer: str = "pool", images: Any = None, *,
              base: str = DEFAULT_BASE, samples: int = SMOOTHGRAD_SAMPLES,
              stdev: float = SMOOTHGRAD_STDEV, top: int = DEFAULT_TOP,
              actmax: bool | None = None, actmax_steps: int = 200,
              actmax_kernels: Sequence[int] | None = None, reduce: str = "max",
              batch_size: int = 1000, seed: int = 0, progress: bool = True,
              evidence: bool = True, thresholds: np.ndarray | None = None,
              background: str = "zeros") -> KernelVisuals:
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
    actmax : bool, optional
        Also compute contrastive :func:`activation_maximization` images
        (``actmax_steps`` steps, ``contrast=ACTMAX_CONTRAST``: specific to their kernel, one
        of the evidence kinds).  Default (None): when evidence is computed.
    actmax_kernels : sequence of int, optional
        Compute the activation-maximisation images of these kernels only (0-based
        indices; the most expensive step, and a report shows only the kernels its rules
        read).  The other kernels' images are all NaN in ``actmax``
        (:meth:`KernelVisuals.actmax_image` gives None), they have no act-max evidence,
        and ``params["actmax_kernels"]`` lists the computed ones (sorted).  Default
        (None), or every kernel listed: all kernels, and no such entry.  An empty list
        computes none (``actmax`` is None).
    reduce : str
        How a kernel's map becomes its unit: max, mean, l1 or l2 (as in
        :func:`cnn2logic.units.capture`).
    evidence : bool
        With images: also each kernel's top patches, class profile (labels of an
        ``ImageSet``) and the selectivity of every evidence kind
        (:func:`cnn2logic.visual.evidence.kernel_evidence`, ``top`` patches per kernel).
    thresholds : ndarray (kernels,), optional
        The bits of the class profile (the rules' thresholds); default fitted as
        ``cnn2logic extract`` does.
    background : {"zeros", "mean"}
        What a patch is pasted on when its selectivity is measured.

    Raises
    ------
    VisualizationError
        Bad parameters (see :func:`smoothgrad`), ``reduce="position"``, a model
        without a cnn2logic spec and no ``images`` (its input shape is unknown), or an
        ``actmax_kernels`` index outside ``0..kernels-1``.
    ModelError
        ``layer`` does not exist.
    """
    layer = units_layer(model, layer)  # a tuned network's bits: the units they threshold
    arr = _as_array(images)
    labels = getattr(images, "labels", None)
    classes = getattr(images, "classes", None)
    units = LayerUnits(model, layer, reduce)  # a bad layer or reduction fails before any work
    if actmax_kernels is not None:  # as do bad kernel indices
        _actmax_subset(actmax_kernels, _layer_width(model, units, arr))
    if background not in BACKGROUNDS:
        raise VisualizationError(f"unknown background {background!r}; choose from {BACKGROUNDS}")
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
    # a layer run several times is read at its last call, whose kernels come after another
    # conv (the tutorial net's pool after conv2), not the first conv defined before it
    once = units.calls(torch.zeros((1, *maps.shape[1:]))) == 1
    conv = input_conv(model, layer) if once else None
    filters = corr = None
    if conv is not None and conv.in_channels == maps.shape[1]:
        # (a conv defined first but given another layer's output has other in_channels)
        filters = conv.weight.detach().cpu().numpy().astype(np.float32)
        pad = conv.padding[0] if isinstance(conv.padding, tuple) else 0
        corr, _ = filter_correlation(maps, filters, padding=int(pad))
    response = response_matrix(model, layer, maps, reduce=reduce)
    if actmax is None:
        actmax = bool(evidence and arr is not None and len(arr) and top > 0)
    subset = _actmax_subset(actmax_kernels, len(maps)) if actmax else None
    if subset == []:
        actmax = False
    am = None
    if actmax:
        t2 = time.perf_counter()
        am = activation_maximization(model, layer, kernels=subset, steps=actmax_steps,
                                     images=arr, reduce=reduce, seed=seed,
                                     contrast=ACTMAX_CONTRAST, progress=progress)
        if subset is not None:  # one row per kernel: the kernels not computed are NaN
            full = np.full((len(maps), *am.shape[1:]), np.nan, dtype=am.dtype)
            full[subset] = am
            am = full
        seconds["actmax"] = time.perf_counter() - t2
    ev = None
    if evidence and arr is not None and len(arr) and top > 0:
        t3 = time.perf_counter()
        pictures = {"smoothgrad": as_image(maps)}
        if am is not None:
            pictures["actmax"] = am
        ev = kernel_evidence(model, layer, arr, labels, classes=classes, top=top,
                             reduce=reduce, thresholds=thresholds, pictures=pictures,
                             background=background, names=kernel_names(layer, len(maps)))
        seconds["evidence"] = time.perf_counter() - t3
    seconds["total"] = time.perf_counter() - t0
    params = {
        "method": "smoothgrad (captum NoiseTunnel around Saliency, signed gradients)",
        "base": base if isinstance(base, str) else "custom",
        "noise_mean": SMOOTHGRAD_MEAN, "noise_stdev": float(stdev), "samples": int(samples),
        "top": int(top) if top_index is not None else 0, "reduce": reduce, "seed": int(seed),
        "batch_size": int(batch_size), "actmax_steps": int(actmax_steps) if actmax else 0,
        "actmax_contrast": ACTMAX_CONTRAST if actmax else 0.0,
        **({"actmax_kernels": subset} if subset is not None else {}),
        "model": getattr(getattr(model, "spec", None), "name", type(model).__name__),
        "model_sha256": model_fingerprint(model),
    }
    return KernelVisuals(layer, kernel_names(layer, len(maps)), maps, params, filters, corr,
                         response, top_index, top_values, top_images, am, seconds,
                         evidence=ev)


def _actmax_subset(kernels: Sequence[int] | None, n: int) -> list[int] | None:
    """The sorted distinct kernels of ``kernels``; None for all (None or every kernel).

    Raises
    ------
    VisualizationError
        An index outside ``0..n-1``.
    """
    if kernels is None:
        return None
    out = sorted({int(k) for k in kernels})
    bad = [k for k in out if not 0 <= k < n]
    if bad:
        raise VisualizationError(f"actmax_kernels {bad} outside 0..{n - 1}")
    return None if len(out) == n else out


def _layer_width(model: nn.Module, units: LayerUnits, images: np.ndarray | None) -> int:
    """The number of kernel units (one zero image through the model in eval mode)."""
    was_training = model.training
    model.eval()  # BatchNorm in training mode refuses a single 1x1 map
    try:
        return _n_kernels(units, _input_shape(model, images))
    finally:
        model.train(was_training)


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers (names, shapes and values).

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    str
        The hex digest; equal for two models with equal state dicts.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()
