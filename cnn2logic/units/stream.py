"""Streamed capture: a model run over batches, one layer's units kept per image.

:func:`capture_stream` reads any iterable of batches with memory bounded by one batch and
the packed output; :func:`capture_shard` does that for shard ``i`` of ``n`` of a split and
returns an :class:`~cnn2logic.units.shards.ActivationShard` (the file format and the merge
are in :mod:`cnn2logic.units.shards`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..data import as_split, iter_batches, open_split
from ..errors import ActivationError, DataError
from ..rules import Variable
from .activations import check_model_input, iter_layer_units, layer_unit_names, unit_names
from .shards import KINDS, ActivationShard, shard_range
from .thresholds import RunningStats, Thresholds, check_half


def _as_batches(images: Any, labels: Any, batch_size: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """In-memory images (and labels) as ``(images, labels)`` batches."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels.astype(np.int64))
    for s in range(0, len(images), batch_size):
        yield images[s:s + batch_size], (None if labels is None else labels[s:s + batch_size])


def capture_stream(model: nn.Module, layer: str,
                   batches: Iterable[Sequence[torch.Tensor] | torch.Tensor], *,
                   reduce: str = "max", thresholds: Thresholds | str | None = None,
                   keep: str = "auto", classes: Sequence[str] | None = None,
                   start_index: int = 0, progress: bool = False) -> ActivationShard:
    """Kernel units of ``layer`` for every image of ``batches``, in one pass.

    The same forward-hook loop as :func:`~cnn2logic.units.capture`
    (:func:`~cnn2logic.units.activations.iter_layer_units`), one batch in memory at a time.

    Parameters
    ----------
    model : nn.Module
        Run in eval mode without gradients.
    layer : str
        A name from ``model.named_modules()``.
    batches : iterable
        ``(images, labels)`` pairs (a ``DataLoader``), or image tensors alone (labels -1).
    reduce : {"max", "mean", "l1", "l2", "position"}
    thresholds : Thresholds, "half", or None
        Known thresholds binarise each batch on the fly (``kind="bits"``, memory: one
        batch plus the packed bits); with None the raw units are kept
        (``kind="units"``) for a later fit.
    keep : {"auto", "bits", "units"}
        ``auto``: bits when thresholds are known, else units.
    classes : sequence of str, optional
        Class names (default: ``0..`` up to the largest label or prediction seen).
    start_index : int
        Index of the first image in the whole split (for ``indices``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    ActivationShard
        Shard 0 of 1; :func:`capture_shard` sets the shard's place in the split.

    Raises
    ------
    ModelError
        ``layer`` is not in ``model``.
    ActivationError
        Bad settings, an unsupported layer output, or units outside [0, 1] for ``half``.
    """
    if keep not in ("auto",) + KINDS:
        raise ActivationError(f"keep must be 'auto', 'bits' or 'units', got {keep!r}")
    if isinstance(thresholds, str) and thresholds != "half":
        raise ActivationError(f"threshold {thresholds!r} must be fitted first "
                              "(fit_stream_thresholds) or left to merge_shards")
    if keep == "bits" and thresholds is None:
        raise ActivationError("keeping bits needs thresholds ('half' or fitted ones)")
    kind = "bits" if (keep == "bits" or (keep == "auto" and thresholds is not None)) else "units"
    fixed: Thresholds | None = thresholds if isinstance(thresholds, Thresholds) else None
    chunks: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    preds: list[np.ndarray] = []
    stats: RunningStats | None = None
    shape: tuple[int, ...] = ()
    for batch in iter_layer_units(model, layer, batches, reduce, progress):
        vals, shape = batch.units(), batch.map_shape
        if stats is None:
            stats = RunningStats.empty(vals.shape[1])
        stats.update(vals)
        if kind == "bits":
            if fixed is None:  # "half", checked on every batch's units
                check_half(float(vals.min(initial=0.0)), float(vals.max(initial=0.0)),
                           "fit 'minmax', 'eric', 'mean' or 'median' thresholds instead")
                fixed = Thresholds(np.full(vals.shape[1], 0.5), "half", {})
            chunks.append(np.packbits(fixed.apply(vals), axis=1))
        else:
            chunks.append(vals.astype(np.float32))
        labels.append(batch.labels)
        preds.append(batch.predictions)
    if stats is None:
        raise ActivationError("no images in the batches")
    k = len(stats.total)
    data = np.concatenate(chunks)
    if kind == "bits":
        data = np.unpackbits(data, axis=1, count=k).view(bool)  # no second copy
    variables = tuple(Variable(nm, layer, i)
                      for i, nm in enumerate(unit_names(layer, k, reduce, shape,
                                                        own=layer_unit_names(model, layer))))
    if fixed is not None and len(fixed.values) != k:
        raise ActivationError(f"thresholds for {len(fixed.values)} kernels, layer has {k}")
    lab_all, pred_all = np.concatenate(labels), np.concatenate(preds)
    n_classes = max(int(lab_all.max(initial=-1)) + 1, int(pred_all.max(initial=-1)) + 1)
    cls = tuple(classes) if classes is not None else tuple(str(c) for c in range(n_classes))
    return ActivationShard(kind, data, variables, cls, lab_all, pred_all,
                           np.arange(start_index, start_index + len(data), dtype=np.int64),
                           layer, reduce, stats, fixed if kind == "bits" else None,
                           (0, 1), start_index + len(data))


def capture_shard(model: nn.Module, layer: str, images: Any = None, labels: Any = None, *,
                  shard: tuple[int, int] = (0, 1), source: str | None = None,
                  split: str = "train", size: int | None = None, reduce: str = "max",
                  threshold: str | None = None, thresholds: Thresholds | None = None,
                  batch_size: int = 500, model_digest: str = "",
                  progress: bool = False) -> ActivationShard:
    """Capture shard ``i`` of ``n`` of a split.

    Give either in-memory ``images`` (and ``labels``) or a data ``source`` (``"embedded"``
    or an IDX directory, streamed with :func:`cnn2logic.data.iter_batches`).
    ``thresholds`` (fitted on the training split) or ``threshold="half"`` give a shard of
    bits; otherwise the raw units are kept and :func:`merge_shards` fits the thresholds
    over all shards.

    Parameters
    ----------
    model : nn.Module
    layer : str
        A name from ``model.named_modules()``.
    images, labels : tensor or array, optional
        In-memory images (and labels) of the whole split; or, in ``images`` alone, a
        split (:class:`~cnn2logic.data.ImageSet`, :class:`~cnn2logic.data.StreamSet` such
        as an image folder's), a ``Dataset`` or an unshuffled ``DataLoader``, read batch
        by batch.
    shard : (int, int)
        ``(i, n)``: the contiguous part :func:`shard_range` gives.
    source : str, optional
        ``"embedded"`` or an IDX directory, instead of ``images``.
    split : {"train", "test"}
    size : int, optional
        Use only the first ``size`` images of the split.
    reduce : {"max", "mean", "l1", "l2", "position"}
    threshold : {"half"} or None
        Binarise at 0.5 on the fly.
    thresholds : Thresholds, optional
        Binarise with fitted thresholds on the fly.
    batch_size : int
        Images per forward pass.
    model_digest : str
        Recorded in the shard (``merge_shards`` refuses shards of other models).
    progress : bool
        Show a progress bar.

    Returns
    -------
    ActivationShard

    Raises
    ------
    DataError
        Bad shard, neither/both of ``images`` and ``source``, ``size`` above the images
        available, or images / labels the model cannot take
        (:func:`~cnn2logic.units.check_model_input`).
    ActivationError, ModelError
        As :func:`capture_stream`.
    """
    i, n = shard
    if (images is None) == (source is None):
        raise DataError("give either images or a data source")
    if not isinstance(images, (type(None), torch.Tensor, np.ndarray)):
        images = as_split(images, "images", batch_size=batch_size)
    if threshold not in (None, "half") and thresholds is None:
        raise ActivationError(f"threshold {threshold!r} needs statistics over all shards: "
                              "capture raw units (no threshold) and let merge fit it")
    info = {"model_digest": model_digest, "split": split}
    if source is not None:
        meta = open_split(source, split, size)
        start, stop = shard_range(meta.total, i, n)
        if start < stop:
            first, _ = next(iter(iter_batches(source, split, start, start + 1, 1)))
            check_model_input(model, first, [meta.max_label] if meta.max_label >= 0 else None,
                              f"{meta.source}/{split}")
        batches: Iterable = iter_batches(source, split, start, stop, batch_size)
        classes: tuple[str, ...] | None = meta.classes
        total = meta.total
        info["source"] = meta.source
    elif not isinstance(images, (torch.Tensor, np.ndarray)):  # a split or a Dataset
        if size is not None and size > len(images):
            raise DataError(f"{images.name}: asked for {size} images but the split holds only "
                            f"{len(images)}")
        total = len(images) if size is None else size
        start, stop = shard_range(total, i, n)
        part = images.slice(start, stop)
        if start < stop:
            check_model_input(model, part.images[:1], images.labels[:total], images.name)
        batches = part.batches(batch_size)
        classes = tuple(images.classes)
        info["source"] = images.name
    else:
        if size is not None and size > len(images):
            raise DataError(f"asked for {size} images but {len(images)} were given")
        total = len(images) if size is None else size
        start, stop = shard_range(total, i, n)
        if start < stop:
            check_model_input(model, images[start:start + 1],
                              None if labels is None else labels[:total], "images")
        batches = _as_batches(images[start:stop],
                              None if labels is None else labels[start:stop], batch_size)
        classes = None
        info["source"] = "memory"
    if start == stop:
        raise DataError(f"shard {i}/{n} of {total} images is empty; use fewer shards")
    out = capture_stream(model, layer, batches, reduce=reduce,
                         thresholds=thresholds if thresholds is not None else threshold,
                         classes=classes, start_index=start, progress=progress)
    return replace(out, shard=(i, n), total=total, info=info)
