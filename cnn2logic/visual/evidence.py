"""Evidence a person can look at, per kernel: top patches, class profile, selectivity.

A rule literal ``k12`` is readable only when a person can see what kernel 12 responds to.
For every kernel of a layer, :func:`kernel_evidence` gathers from the data:

top patches
    the ``top`` images with the largest pooled unit and, in each, the crop of the
    receptive field around the peak of the kernel's map (the map behind the pooled unit,
    :func:`~cnn2logic.visual.receptive.find_map_layer`; the receptive field is measured,
    :func:`~cnn2logic.visual.receptive.receptive_field`).  Crops have the nominal size of
    the receptive field; pixels outside the image are NaN (drawn as "outside").
class profile
    for each class, the share of its images on which the kernel's bit is on (its unit at
    or above its threshold: the rules' thresholds when given, else ``fit_binarisation(...,
    "auto")`` as ``cnn2logic extract`` fits them) and the mean unit value.
selectivity
    of each evidence *kind* (a displayed picture per kernel: ``patches``, ``smoothgrad``,
    ``actmax``).  Each kind gives every kernel ``j`` an input ``e_j``; the response matrix
    is ``R[k, j] = unit_k(e_j)``.  Kernel ``k``'s evidence is **selective** when
    ``R[k, k] > max_{j != k} R[k, j]``: its own evidence drives its unit more than any other
    kernel's evidence does.  Its **margin** is ``(R[k, k] - max_{j != k} R[k, j])`` divided
    by the unit's standard deviation over the data (comparable across kinds; > 0 iff
    selective).  The inputs are:

    ``patches``
        each of the kernel's top patches pasted at its own place on a neutral background
        (``zeros``: black, the MNIST background; or ``mean``: the mean data image), the
        rest of the image being background; ``unit_k(e_j)`` is the mean of ``unit_k`` over
        ``j``'s pasted patches.  So the crop a person sees is tested alone, without the rest
        of its image.  (The top *images* themselves are not a kind: they are selective by
        construction, each being the data maximum of its own unit.)
    ``smoothgrad``
        the positive part of the SmoothGrad map scaled to [0, 1]
        (:func:`~cnn2logic.visual.filters.as_image`), as ``response_matrix`` evaluates it.
    ``actmax``
        the activation-maximisation image itself.  It may have been computed for some
        kernels only (``cnn2logic report`` computes it for the kernels the rules read):
        the others have no such evidence (NaN columns of ``R``), are no competitors in
        its test and are never shown by it; its selectivity is over the kernels that
        have it.

    The report shows first, per kernel, the kind with the largest margin
    (:attr:`KernelEvidence.chosen`, :func:`choose_kinds`): the assignment of kinds that
    makes most kernels selective on the mixed matrix ``R[k, j] = unit_k(e_j of the kind
    chosen for j)``; the *displayed* selectivity is measured on that matrix.

:func:`profile_agreement` compares two class profiles (e.g. training vs test half).
Writing the evidence (arrays, JSON, PNGs) is :mod:`cnn2logic.visual.visuals`' work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import VisualizationError
from ..units import REDUCTIONS, fit_binarisation, reduce_maps
from ._internal import last_calls, layer_calls
from .measures import (EVIDENCE_KINDS, choose_kinds, class_profile, profile_agreement,
                       selectivity_margins)
from .receptive import ReceptiveField, find_map_layer, receptive_field
from .saliency import LayerUnits

BACKGROUNDS = ("zeros", "mean")
DEFAULT_PATCHES = 8


@dataclass(frozen=True)
class KernelEvidence:
    """What :func:`kernel_evidence` found for every kernel of a layer (index ``k``).

    Attributes
    ----------
    layer, map_layer : str
        The layer of the pooled units and the layer holding the kernels' maps.
    names : tuple of str
        ``k1..``: kernel ``k`` is ``names[k]``.
    classes : tuple of str
        The data's class names (the profile's columns).
    receptive : ReceptiveField
        The receptive field of every map position.
    top_index, top_values : ndarray (kernels, top)
        The top images (data indices, best first) and their units.
    peaks : ndarray (kernels, top, 2), int
        The map position ``(row, col)`` of the kernel's peak in each top image.
    patches : ndarray (kernels, top, c, h, w), float32
        The crops (NaN outside the image).
    thresholds : ndarray (kernels,)
        The thresholds of the bits of the class profile.
    on_share, mean_unit : ndarray (kernels, classes) or None
        Per class: share of its images with the bit on, mean unit (None without labels).
    class_counts : ndarray (classes,) or None
    spread : ndarray (kernels,)
        Standard deviation of each unit over the data (the margins' scale).
    responses : mapping kind -> ndarray (kernels, kernels)
        ``R[k, j] = unit_k(e_j)`` of every evidence kind computed; column ``j`` is NaN
        when kernel ``j`` has no evidence of that kind.
    chosen : tuple of str
        Per kernel, the kind shown first (:func:`choose_kinds`).
    params, seconds : mapping
        The settings and the time of each step.
    """

    layer: str
    map_layer: str
    names: tuple[str, ...]
    classes: tuple[str, ...]
    receptive: ReceptiveField
    top_index: np.ndarray
    top_values: np.ndarray
    peaks: np.ndarray
    patches: np.ndarray
    thresholds: np.ndarray
    on_share: np.ndarray | None
    mean_unit: np.ndarray | None
    class_counts: np.ndarray | None
    spread: np.ndarray
    responses: Mapping[str, np.ndarray]
    chosen: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    seconds: Mapping[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The evidence kinds computed, in :data:`EVIDENCE_KINDS` order."""
        return tuple(k for k in EVIDENCE_KINDS if k in self.responses)

    def has_kind(self, kind: str) -> np.ndarray:
        """Per kernel, whether it has evidence of ``kind`` (bool array).

        Raises
        ------
        VisualizationError
            ``kind`` was not computed.
        """
        if kind not in self.responses:
            raise VisualizationError(f"evidence kind {kind!r} not computed; have {self.kinds}")
        return ~np.isnan(np.asarray(self.responses[kind], dtype=np.float64)).all(axis=0)

    def margins(self, kind: str) -> np.ndarray:
        """Per kernel, the selectivity margin of ``kind`` (see the module docstring; NaN
        for a kernel without evidence of ``kind``).

        Raises
        ------
        VisualizationError
            ``kind`` was not computed.
        """
        if kind == "displayed":
            return selectivity_margins(self.displayed_response(), self.spread)
        if kind not in self.responses:
            raise VisualizationError(f"evidence kind {kind!r} not computed; have {self.kinds}")
        return selectivity_margins(self.responses[kind], self.spread)

    def selectivity(self, kind: str = "displayed") -> float:
        """Share of kernels whose ``kind`` evidence is selective (``"displayed"``: chosen),
        among the kernels that have evidence of ``kind`` (NaN when none has).

        Raises
        ------
        VisualizationError
            ``kind`` was not computed.
        """
        m = self.margins(kind)
        m = m[~np.isnan(m)]
        return float(np.mean(m > 0)) if len(m) else float("nan")

    def displayed_response(self) -> np.ndarray:
        """``R[k, j] = unit_k(e_j)`` with ``e_j`` of the kind chosen for kernel ``j``."""
        out = np.empty((len(self), len(self)), dtype=np.float64)
        for j, kind in enumerate(self.chosen):
            out[:, j] = self.responses[kind][:, j]
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-able figures: receptive field, selectivity per kind and displayed, timings.

        Returns
        -------
        dict
            With ``kernels_with_kind`` (kind -> number of kernels that have it) when some
            kind covers only some kernels.
        """
        # only when some kernels lack a kind: full evidence keeps the bytes it had
        partial = {k: int(has.sum()) for k in self.kinds if not (has := self.has_kind(k)).all()}
        return {
            "map_layer": self.map_layer, "classes": list(self.classes),
            "receptive_field": {"size": list(self.receptive.size),
                                "stride": list(self.receptive.stride)},
            "input_shape": list(self.receptive.input_shape),
            "selectivity": round(self.selectivity(), 4),
            "selectivity_by_kind": {k: round(self.selectivity(k), 4) for k in self.kinds},
            "chosen_counts": {k: int(sum(c == k for c in self.chosen)) for k in self.kinds},
            "params": dict(self.params),
            "seconds": {k: round(float(v), 4) for k, v in self.seconds.items()},
            **({"kernels_with_kind": partial} if partial else {}),
        }

    def kernel_record(self, k: int) -> dict[str, Any]:
        """JSON-able evidence of kernel ``k``: top images, peaks, profile, margins, choice.

        Returns
        -------
        dict
        """
        rec: dict[str, Any] = {
            "name": self.names[k], "index": k, "shown_first": self.chosen[k],
            "threshold": round(float(self.thresholds[k]), 6),
            "top_images": [int(i) for i in self.top_index[k]],
            "top_values": [round(float(v), 6) for v in self.top_values[k]],
            "peaks": [[int(r), int(c)] for r, c in self.peaks[k]],
            "windows": [list(self.receptive.window(int(r), int(c))) for r, c in self.peaks[k]],
            "margins": {kind: _round(self.margins(kind)[k]) for kind in self.kinds},
        }
        if self.on_share is not None and self.mean_unit is not None:
            rec["class_profile"] = {
                c: {"on_share": round(float(self.on_share[k, i]), 4),
                    "mean_unit": round(float(self.mean_unit[k, i]), 6)}
                for i, c in enumerate(self.classes)}
        return rec


def _round(v: float) -> float | None:
    return round(float(v), 4) if np.isfinite(v) else None


__all__ = ["EVIDENCE_KINDS", "BACKGROUNDS", "DEFAULT_PATCHES", "KernelEvidence",
           "kernel_evidence", "capture_peaks", "paste", "unit_response", "evidence_arrays",
           "evidence_from_arrays", "selectivity_margins", "choose_kinds", "class_profile",
           "profile_agreement"]


def capture_peaks(model: nn.Module, layer: str, map_layer: str, images: np.ndarray, *,
                  reduce: str = "max", batch_size: int = 500
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every image's pooled units, each kernel's map peak and the network's prediction.

    One forward pass per batch with hooks on ``map_layer`` (argmax position of each
    kernel's map; ties: the first in row-major order) and ``layer`` (the units, reduced
    as :func:`cnn2logic.units.capture` does).

    Returns
    -------
    units : ndarray (images, kernels), float32
    peaks : ndarray (images, kernels), int
        Flat (row-major) map position of each kernel's maximum.
    predictions : ndarray (images,), int (-1 when the output is not (n, classes))

    Raises
    ------
    ModelError
        A layer does not exist.
    VisualizationError
        The two layers' kernel counts differ.
    """
    modules = dict(model.named_modules())
    units, peaks, preds = [], [], []
    got: dict[str, list[torch.Tensor]] = {"map": [], "unit": []}
    # every call is kept and the last of each forward pass read (a module the network
    # reuses gives its units at its last call, as capture reads them); a model run one
    # image at a time (an exported program) fires each hook per image
    first = torch.from_numpy(images[:1])
    calls = {"map": layer_calls(model, modules[map_layer], first),
             "unit": layer_calls(model, modules[layer], first)}

    def keep(name: str):
        def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
            got[name].append(out.detach())
        return hook

    handles = [modules[map_layer].register_forward_hook(keep("map"))]
    handles.append(modules[layer].register_forward_hook(keep("unit")))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for s in range(0, len(images), batch_size):
                got["map"].clear()
                got["unit"].clear()
                logits = model(torch.from_numpy(images[s:s + batch_size]))
                u = torch.cat(last_calls(got["unit"], calls["unit"]))
                units.append((reduce_maps(u, reduce) if u.ndim == 4 else u).float().numpy())
                peaks.append(torch.cat(last_calls(got["map"], calls["map"]))
                             .flatten(2).argmax(dim=2).numpy())
                preds.append(logits.argmax(1).numpy() if isinstance(logits, torch.Tensor)
                             and logits.ndim == 2 else np.full(len(u), -1))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    U, P = np.concatenate(units), np.concatenate(peaks)
    if U.shape[1] != P.shape[1]:
        raise VisualizationError(f"layer {layer!r} has {U.shape[1]} units but {map_layer!r} "
                                 f"has {P.shape[1]} maps")
    return U, P, np.concatenate(preds).astype(np.int64)


def paste(patches: np.ndarray, windows: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Each patch at its own window on ``background`` (pixels outside the image dropped).

    Parameters
    ----------
    patches : ndarray (m, c, h, w)
        Crops, NaN outside the image.
    windows : ndarray (m, 2), int
        Each crop's top-left corner in the image (may be negative).
    background : ndarray (c, H, W)

    Returns
    -------
    ndarray (m, c, H, W), float32
    """
    out = np.repeat(background[None].astype(np.float32), len(patches), axis=0)
    _, H, W = background.shape
    h, w = patches.shape[2:]
    for n, (top, left) in enumerate(windows):
        r0, r1, c0, c1 = max(top, 0), min(top + h, H), max(left, 0), min(left + w, W)
        if r1 > r0 and c1 > c0:
            out[n, :, r0:r1, c0:c1] = patches[n, :, r0 - top:r1 - top, c0 - left:c1 - left]
    return out


def unit_response(model: nn.Module, layer: str, inputs: np.ndarray, *, reduce: str = "max",
                  batch_size: int = 500) -> np.ndarray:
    """``(kernels, inputs)``: every kernel's unit on every input image.

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
            vals = [units(torch.from_numpy(np.ascontiguousarray(inputs[s:s + batch_size])))
                    for s in range(0, len(inputs), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(vals).numpy().T.astype(np.float64)


def kernel_evidence(model: nn.Module, layer: str, images: np.ndarray,
                    labels: np.ndarray | None = None, *, classes: Sequence[str] | None = None,
                    top: int = DEFAULT_PATCHES, reduce: str = "max",
                    thresholds: np.ndarray | None = None,
                    pictures: Mapping[str, np.ndarray] | None = None,
                    background: str = "zeros", batch_size: int = 500,
                    names: Sequence[str] | None = None) -> KernelEvidence:
    """Top patches, class profile and the selectivity of every evidence kind, per kernel.

    Parameters
    ----------
    model : nn.Module
    layer : str
        The layer of the rule variables.
    images : ndarray (n, c, H, W), float32
    labels : ndarray (n,), optional
        Class indices; without them there is no class profile.
    classes : sequence of str, optional
        Class names (default ``"0".."C-1"``).
    top : int
        Patches per kernel.
    reduce : str
        How a map becomes a unit (as in :func:`cnn2logic.units.capture`).
    thresholds : ndarray (kernels,), optional
        The bits' thresholds (the rules' own); default ``fit_binarisation(units, "auto",
        predictions)``.
    pictures : mapping kind -> ndarray (kernels, c, H, W), optional
        The other evidence kinds as input images: ``smoothgrad`` (already
        :func:`~cnn2logic.visual.filters.as_image`) and ``actmax``.  A kernel whose
        picture is all NaN has none of that kind (its response column is NaN); a kind
        no kernel has is left out.
    background : {"zeros", "mean"}
        What the patches are pasted on.
    names : sequence of str, optional
        Kernel names (default ``k1..``).

    Returns
    -------
    KernelEvidence

    Raises
    ------
    VisualizationError
        Bad parameters, no images, or pictures of another shape.
    ModelError
        ``layer`` does not exist.
    """
    if top < 1:
        raise VisualizationError(f"top patches per kernel must be at least 1, got {top}")
    if background not in BACKGROUNDS:
        raise VisualizationError(f"unknown background {background!r}; choose from {BACKGROUNDS}")
    if reduce not in REDUCTIONS or reduce == "position":
        raise VisualizationError(f"evidence is per kernel: reduce must be one of "
                                 f"{tuple(r for r in REDUCTIONS if r != 'position')}")
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise VisualizationError(f"evidence needs images (n, c, h, w), got {images.shape}")
    LayerUnits(model, layer, reduce)  # a bad layer fails before any work
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    map_layer, _ = find_map_layer(model, layer, torch.from_numpy(images[:1]))
    rf = receptive_field(model, map_layer, tuple(images.shape[1:]))
    seconds["receptive_field"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    units, peak_flat, preds = capture_peaks(model, layer, map_layer, images, reduce=reduce,
                                            batch_size=batch_size)
    seconds["capture"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    n_k = units.shape[1]
    names = tuple(names) if names is not None else tuple(f"k{i + 1}" for i in range(n_k))
    if len(names) != n_k:
        raise VisualizationError(f"{len(names)} names for {n_k} kernels")
    top = min(top, len(images))
    order = np.argsort(-units.T, axis=1, kind="stable")[:, :top]  # (kernels, top)
    top_values = np.take_along_axis(units.T, order, axis=1)
    map_w = rf.boxes.shape[1]
    flat = np.take_along_axis(peak_flat.T, order, axis=1)
    peaks = np.stack([flat // map_w, flat % map_w], axis=2).astype(np.int64)
    patches = np.stack([np.stack([rf.crop(images[order[k, t]], *peaks[k, t])
                                  for t in range(top)]) for k in range(n_k)])
    seconds["patches"] = time.perf_counter() - t2
    if thresholds is None:
        thr = fit_binarisation(units, "auto", preds if (preds >= 0).all() else None)
        thresholds, thr_method = thr.values, thr.method
    else:
        thr_method = "given"
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (n_k,):
        raise VisualizationError(f"{len(thresholds)} thresholds for {n_k} kernels")
    on = mean = counts = None
    if labels is not None and len(labels) == len(images) and np.asarray(labels).min() >= 0:
        n_cls = len(classes) if classes is not None else int(np.max(labels)) + 1
        on, mean, counts = class_profile(units >= thresholds[None, :], units, labels, n_cls)
    classes = tuple(classes) if classes is not None else tuple(
        str(c) for c in range(0 if on is None else on.shape[1]))
    t3 = time.perf_counter()
    bg = np.zeros(images.shape[1:], np.float32) if background == "zeros" else images.mean(0)
    windows = np.array([[rf.window(*peaks[k, t]) for t in range(top)] for k in range(n_k)])
    pasted = paste(patches.reshape(-1, *patches.shape[2:]), windows.reshape(-1, 2), bg)
    resp = unit_response(model, layer, pasted, reduce=reduce, batch_size=batch_size)
    responses = {"patches": resp.reshape(n_k, n_k, top).mean(axis=2)}
    for kind, pics in (pictures or {}).items():
        if kind not in EVIDENCE_KINDS[1:]:
            raise VisualizationError(f"unknown evidence kind {kind!r}; choose from "
                                     f"{EVIDENCE_KINDS[1:]}")
        pics = np.asarray(pics, dtype=np.float32)
        if pics.shape != (n_k, *images.shape[1:]):
            raise VisualizationError(f"{kind} pictures of shape {pics.shape}, expected "
                                     f"{(n_k, *images.shape[1:])}")
        present = ~np.isnan(pics).all(axis=(1, 2, 3))
        if present.all():
            responses[kind] = unit_response(model, layer, pics, reduce=reduce,
                                            batch_size=batch_size)
        elif present.any():
            # only the pictures there are go through the model (a report's act-max
            # images are those of the few kernels its rules read)
            resp = np.full((n_k, n_k), np.nan)
            resp[:, present] = unit_response(model, layer, pics[present], reduce=reduce,
                                             batch_size=batch_size)
            responses[kind] = resp
    seconds["selectivity"] = time.perf_counter() - t3
    spread = units.std(axis=0).astype(np.float64)
    chosen = choose_kinds(responses, spread)
    seconds["total"] = time.perf_counter() - t0
    params = {"top": int(top), "reduce": reduce, "background": background,
              "thresholds": thr_method, "images": int(len(images))}
    return KernelEvidence(layer, map_layer, names, classes, rf, order.astype(np.int64),
                          top_values.astype(np.float64), peaks, patches.astype(np.float32),
                          thresholds, on, mean, counts, spread, responses, chosen, params,
                          seconds)


_ARRAY_FIELDS = ("top_index", "top_values", "peaks", "patches", "thresholds", "on_share",
                 "mean_unit", "class_counts", "spread")


def evidence_arrays(ev: KernelEvidence) -> dict[str, np.ndarray]:
    """The arrays of ``ev`` keyed ``evidence_<field>`` (for ``visuals.npz``).

    Returns
    -------
    dict
    """
    out = {f"evidence_{k}": np.asarray(getattr(ev, k)) for k in _ARRAY_FIELDS
           if getattr(ev, k) is not None}
    out["evidence_boxes"] = ev.receptive.boxes
    out.update({f"evidence_response_{k}": v for k, v in ev.responses.items()})
    return out


def evidence_from_arrays(doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                         names: Sequence[str]) -> KernelEvidence:
    """Rebuild a :class:`KernelEvidence` from ``evidence.json`` (``doc``) and the arrays.

    Raises
    ------
    KeyError, ValueError, TypeError
        Incomplete or inconsistent input (the caller turns them into one message).
    """
    rf = doc["receptive_field"]
    field_ = ReceptiveField(np.asarray(arrays["evidence_boxes"]),
                            tuple(int(v) for v in rf["size"]),
                            tuple(int(v) for v in rf["stride"]),
                            tuple(int(v) for v in doc["input_shape"]))
    chosen = tuple(str(k["shown_first"]) for k in doc["kernels"])
    if len(chosen) != len(names):
        raise ValueError("evidence.json does not match the kernels")
    responses = {k: np.asarray(arrays[f"evidence_response_{k}"]) for k in EVIDENCE_KINDS
                 if f"evidence_response_{k}" in arrays}
    get = {k: (np.asarray(arrays[f"evidence_{k}"]) if f"evidence_{k}" in arrays else None)
           for k in _ARRAY_FIELDS}
    return KernelEvidence(str(doc["layer"]), str(doc["map_layer"]), tuple(names),
                          tuple(doc["classes"]), field_, get["top_index"], get["top_values"],
                          get["peaks"], get["patches"], get["thresholds"], get["on_share"],
                          get["mean_unit"], get["class_counts"], get["spread"], responses,
                          chosen, dict(doc.get("params", {})), dict(doc.get("seconds", {})))
