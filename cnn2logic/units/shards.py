"""Shards: a split's kernel units captured in parts, anywhere, and merged into codes.

The pieces a large run is built from, each usable on its own machine or process:

1. :func:`~cnn2logic.units.stream.capture_stream` (in :mod:`cnn2logic.units.stream`) runs a model over an *iterable of batches* (a
   ``torch.utils.data.DataLoader``, :func:`cnn2logic.data.iter_batches` over IDX files
   read piece by piece, ...) and keeps, per image, only the kernel units of one layer,
   already binarised and packed 8 per byte when the thresholds are known.  Memory is
   bounded by one batch plus ``images × kernels / 8`` bytes of output.  Unknown thresholds
   that need statistics (``minmax``, ``mean``, ``eric``) are fitted from running sums in a
   first pass (:func:`~cnn2logic.units.fit_stream_thresholds`), or the raw units are kept
   for :func:`merge_shards` to fit globally.
2. :func:`~cnn2logic.units.stream.capture_shard` does that for shard ``i`` of ``n`` (a contiguous range of image
   indices) and :meth:`ActivationShard.save` writes it as ``.npz`` with everything a merge
   must check: layer, reduction, kernel names, thresholds, model digest, data source,
   split, shard index and image indices.
3. :func:`merge_shards` checks that shards agree and together cover every image exactly
   once, fits thresholds over all of them when they hold raw units, and returns one
   :class:`~cnn2logic.units.BinaryCodes` (the same file ``cnn2logic extract`` writes).

Per-class extraction from the merged codes is :mod:`cnn2logic.extract.parts`.  The command
line exposes the same steps as ``cnn2logic capture`` and ``cnn2logic merge``.

Example
-------
>>> import torch
>>> from torch import nn
>>> from cnn2logic.units import capture_shard, merge_shards, shard_range
>>> net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Sigmoid(), nn.AdaptiveMaxPool2d(1),
...                     nn.Flatten(), nn.Linear(3, 2))
>>> x, y = torch.rand(10, 1, 6, 6), torch.arange(10) % 2
>>> shard_range(10, 1, 3)
(4, 7)
>>> parts = [capture_shard(net, "1", x, y, shard=(i, 3), threshold="half") for i in range(3)]
>>> codes, thresholds = merge_shards(parts)
>>> codes.bits.shape, thresholds.method
((10, 3), 'half')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .._io import atomic_path
from ..errors import ActivationError, DataError
from ..rules import Variable
from .codes import BinaryCodes
from ._npz import MAX_INDEX, Schema, read_npz
from .thresholds import THRESHOLDS, RunningStats, Thresholds, fit_thresholds, same_thresholds

SHARD_FORMAT = "cnn2logic-activations-shard"
FORMAT_VERSION = 1
KINDS = ("bits", "units")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based ``i``) as ``(i, n)``.

    Raises
    ------
    DataError
        Malformed, ``n < 1`` or ``i`` outside ``0..n-1``.
    """
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise DataError(f"shard {text!r} must look like i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise DataError(f"shard {text!r}: need 0 ≤ i < n")
    return i, n


def shard_range(total: int, index: int, count: int) -> tuple[int, int]:
    """The contiguous ``[start, stop)`` of images that shard ``index`` of ``count`` holds.

    Shards differ in size by at most one image; the first ``total % count`` are larger.

    Raises
    ------
    DataError
        ``count < 1`` or ``index`` outside ``0..count-1``.
    """
    if count < 1 or not 0 <= index < count:
        raise DataError(f"shard {index}/{count}: need 0 ≤ index < count")
    base, extra = divmod(total, count)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


@dataclass(frozen=True)
class ActivationShard:
    """Kernel units of a contiguous range of images: raw (``units``) or binarised (``bits``).

    Attributes
    ----------
    kind : {"bits", "units"}
    data : np.ndarray
        (images, units): bool for ``bits``, float32 for ``units``.
    variables : tuple of Variable
        One per column.
    classes : tuple of str
    labels, predictions : np.ndarray
        int64 per image (-1 when unknown).
    indices : np.ndarray
        The images' positions in the whole split.
    layer, reduce : str
        Where and how the units were captured.
    stats : RunningStats
        Of the raw units (to fit thresholds over all shards).
    thresholds : Thresholds or None
        Set when ``kind == "bits"``.
    shard : (int, int)
        ``(i, n)``.
    total : int
        Images in the whole split.
    info : mapping
        ``model_digest``, ``source`` and ``split`` (a merge checks they agree).

    Raises
    ------
    ActivationError
        Unknown kind, bits without thresholds, or shapes that do not fit together.
    """

    kind: str
    data: np.ndarray
    variables: tuple[Variable, ...]
    classes: tuple[str, ...]
    labels: np.ndarray
    predictions: np.ndarray
    indices: np.ndarray
    layer: str
    reduce: str
    stats: RunningStats
    thresholds: Thresholds | None = None
    shard: tuple[int, int] = (0, 1)
    total: int = 0
    info: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ActivationError(f"shard kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "bits" and self.thresholds is None:
            raise ActivationError("a shard of bits needs its thresholds")
        if self.data.ndim != 2 or self.data.shape[1] != len(self.variables):
            raise ActivationError(f"shard data of shape {self.data.shape} do not match "
                                  f"{len(self.variables)} kernel units")
        for what, arr in (("labels", self.labels), ("predictions", self.predictions),
                          ("indices", self.indices)):
            if len(arr) != len(self.data):
                raise ActivationError(f"shard has {len(arr)} {what} for {len(self.data)} images")

    def __len__(self) -> int:
        return len(self.data)

    @property
    def names(self) -> tuple[str, ...]:
        """The variables' names, one per column."""
        return tuple(v.name for v in self.variables)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the shard as a compressed ``.npz`` (no pickles), atomically."""
        arrays: dict[str, np.ndarray] = {
            "format": np.array(SHARD_FORMAT), "version": np.array(FORMAT_VERSION),
            "kind": np.array(self.kind), "n_kernels": np.array(len(self.variables)),
            "var_names": np.array([v.name for v in self.variables]),
            "var_layers": np.array([v.layer for v in self.variables]),
            "var_index": np.array([v.index for v in self.variables], dtype=np.int64),
            "classes": np.array(self.classes), "labels": np.asarray(self.labels, np.int64),
            "predictions": np.asarray(self.predictions, np.int64),
            "indices": np.asarray(self.indices, np.int64), "layer": np.array(self.layer),
            "reduce": np.array(self.reduce), "shard": np.array(self.shard, dtype=np.int64),
            "total": np.array(self.total, dtype=np.int64),
            "info": np.array(json.dumps(dict(self.info), sort_keys=True)),
            "stats_count": np.array(self.stats.count, dtype=np.int64),
            "stats_sum": self.stats.total, "stats_squares": self.stats.squares,
            "stats_low": self.stats.low, "stats_high": self.stats.high,
        }
        if self.kind == "bits":
            arrays["bits"] = np.packbits(self.data.astype(bool), axis=1)
            arrays["thresholds"] = np.asarray(self.thresholds.values, np.float64)
            arrays["threshold_method"] = np.array(self.thresholds.method)
            arrays["threshold_params"] = np.array(json.dumps(self.thresholds.params,
                                                             sort_keys=True))
        else:
            arrays["units"] = np.asarray(self.data, np.float32)
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "ActivationShard":
        """Read a shard written by :meth:`save`, checking every array against the rest.

        Besides the fields of :class:`ActivationShard` (each of its type, one per kernel
        or per row as it should be), ``shard`` must be ``(i, n)`` with ``0 <= i < n``, the
        image ``indices`` must lie in ``0..total-1``, raw ``units`` and statistics must be
        finite, and ``info`` must map strings to strings.

        Raises
        ------
        ActivationError
            Missing file, not an ``.npz``, not a shard, damaged, or any array of the wrong
            type, shape or range (the one-line message names the file and the array).
        """
        z = Schema(read_npz(path, "activation shard"), path, "cnn2logic activation shard")
        if not z.has("format") or z.get("format").dtype.kind != "U" \
                or z.get("format").ndim != 0 or str(z.get("format")) != SHARD_FORMAT:
            raise ActivationError(f"{path}: not a cnn2logic activation shard")
        version = z.scalar("version", "int")
        if version != FORMAT_VERSION:
            raise ActivationError(f"{path}: unsupported shard version {version}")
        kind = z.scalar("kind", "str")
        if kind not in KINDS:
            raise z.fail(f"kind {kind[:40]!r} is not one of {KINDS}")
        n = z.integer("n_kernels", 0, MAX_INDEX)
        names = z.strings("var_names", n)
        variables = tuple(Variable(a, b, int(c)) for a, b, c in zip(
            names, z.strings("var_layers", n), z.integers("var_index", n, 0, MAX_INDEX)))
        thresholds = None
        if kind == "bits":
            data = z.packed_bits("bits", n)
            method = z.scalar("threshold_method", "str")
            if method not in THRESHOLDS:
                raise z.fail(f"threshold method {method[:40]!r} is not one of {THRESHOLDS}")
            params = z.json_text("threshold_params")
            if not isinstance(params, dict):
                raise z.fail("'threshold_params' must be a JSON object")
            thresholds = Thresholds(np.asarray(z.floats("thresholds", (n,)), np.float64),
                                    method, params)
        else:
            units = z.get("units")
            rows = units.shape[0] if units.ndim == 2 else -1
            data = np.asarray(z.floats("units", (rows, n)), np.float32)
        rows = len(data)
        i, count = (int(v) for v in z.integers("shard", 2, 0, MAX_INDEX))
        if not i < count:
            raise z.fail(f"shard {i}/{count}: need 0 <= i < n")
        total = z.integer("total", rows, MAX_INDEX)
        info = z.json_text("info")
        if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
            raise z.fail("'info' must be a JSON object of strings")
        stats = RunningStats(z.integer("stats_count", 0, 2**62),
                             z.floats("stats_sum", (n,)), z.floats("stats_squares", (n,)),
                             z.floats("stats_low", (n,), allow_inf=True),
                             z.floats("stats_high", (n,), allow_inf=True))
        classes = z.strings("classes")
        return cls(kind, data, variables, classes, z.integers("labels", rows, -1, MAX_INDEX),
                   z.integers("predictions", rows, -1, MAX_INDEX),
                   z.integers("indices", rows, 0, max(total - 1, 0)), z.scalar("layer", "str"),
                   z.scalar("reduce", "str"), stats, thresholds, (i, count), total, info)


def merge_shards(shards: Sequence[ActivationShard | str | os.PathLike[str]], *,
                 threshold: str | None = None, thresholds: Thresholds | None = None,
                 alpha: float = 0.6, gamma: float = 0.7) -> tuple[BinaryCodes, Thresholds]:
    """One :class:`BinaryCodes` from shards that together cover a split exactly once.

    Shards of bits must share their thresholds.  Shards of raw units are binarised with
    ``thresholds`` when given, else with ``threshold`` (default ``half``) fitted over all
    shards (running statistics in float64; the median concatenates the units).

    Parameters
    ----------
    shards : sequence of ActivationShard or path
    threshold : str, optional
        Raw units: the method to fit over all shards.
    thresholds : Thresholds, optional
        Raw units: binarise with these; bits: must equal the shards' own.
    alpha, gamma : float
        ERIC's weights (``threshold="eric"``).

    Returns
    -------
    tuple of (BinaryCodes, Thresholds)
        The codes in image order, and the thresholds they were binarised with.

    Raises
    ------
    ActivationError
        Shards disagree (layer, reduction, kernel names, classes, thresholds, model, data,
        shard count), overlap, leave images out, or mix raw units and bits.
    """
    loaded = [s if isinstance(s, ActivationShard) else ActivationShard.load(s) for s in shards]
    if not loaded:
        raise ActivationError("no shards to merge")
    loaded.sort(key=lambda s: (int(s.indices[0]) if len(s) else -1, s.shard[0]))
    first = loaded[0]
    for s in loaded[1:]:
        _check_agree(s, first)
    indices = _check_cover(loaded)
    if first.kind == "bits":
        if thresholds is not None and not same_thresholds(thresholds, first.thresholds):
            raise ActivationError("the shards hold bits binarised with other thresholds than "
                                  "those given")
        fitted = first.thresholds
        bits = np.concatenate([s.data for s in loaded]).astype(bool)
    else:
        fitted = thresholds if thresholds is not None else _fit_over(
            loaded, threshold or "half", alpha, gamma)
        if len(fitted.values) != len(first.names):
            raise ActivationError(f"thresholds for {len(fitted.values)} kernels, shards hold "
                                  f"{len(first.names)}")
        bits = np.concatenate([fitted.apply(s.data) for s in loaded])
    order = np.argsort(indices, kind="stable")
    ids = tuple(f"{'train' if first.info.get('split') == 'train' else 'img'}{int(i)}"
                for i in indices[order])
    codes = BinaryCodes(bits[order], first.variables, first.classes,
                        np.concatenate([s.labels for s in loaded])[order],
                        np.concatenate([s.predictions for s in loaded])[order], ids)
    return codes, fitted


def _check_agree(s: ActivationShard, first: ActivationShard) -> None:
    """Refuse shard ``s`` unless it was captured like ``first`` (same layer, data, ...)."""
    for what, a, b in (("layer", s.layer, first.layer), ("reduction", s.reduce, first.reduce),
                       ("kernel names", s.names, first.names),
                       ("classes", s.classes, first.classes), ("kind", s.kind, first.kind),
                       ("shard count", s.shard[1], first.shard[1]),
                       ("split size", s.total, first.total)):
        if a != b:
            raise ActivationError(f"shard {s.shard[0]}/{s.shard[1]} differs in {what}: "
                                  f"{_short(a)} vs {_short(b)}")
    for key in ("model_digest", "source", "split"):
        if s.info.get(key, "") != first.info.get(key, ""):
            raise ActivationError(f"shard {s.shard[0]}/{s.shard[1]} comes from another "
                                  f"{key.replace('_', ' ')}: {s.info.get(key)!r} vs "
                                  f"{first.info.get(key)!r}")
    if first.kind == "bits" and not same_thresholds(s.thresholds, first.thresholds):
        raise ActivationError(f"shard {s.shard[0]}/{s.shard[1]} was binarised with other "
                              "thresholds than the first shard")


def _check_cover(loaded: Sequence[ActivationShard]) -> np.ndarray:
    """The shards' image indices, concatenated, after checking they cover the split once."""
    first = loaded[0]
    seen = sorted(s.shard[0] for s in loaded)
    if len(set(seen)) != len(seen):
        raise ActivationError(f"shard indices repeat: {seen}")
    indices = np.concatenate([s.indices for s in loaded])
    expected = np.arange(first.total)
    if len(indices) != first.total or not np.array_equal(np.sort(indices), expected):
        missing = np.setdiff1d(expected, indices)
        dup = len(indices) - len(np.unique(indices))
        raise ActivationError(
            f"shards cover {len(np.unique(indices))} of {first.total} images"
            + (f"; missing shards (first missing image {int(missing[0])})" if len(missing) else "")
            + (f"; {dup} images appear twice" if dup else ""))
    return indices


def _fit_over(loaded: Sequence[ActivationShard], method: str, alpha: float,
              gamma: float) -> Thresholds:
    """``method`` fitted over the raw units of all shards (the median needs the values)."""
    if method == "median":
        return fit_thresholds(np.concatenate([s.data for s in loaded]), "median")
    stats = loaded[0].stats
    for s in loaded[1:]:
        stats = stats.merged(s.stats)
    return stats.fit(method, alpha=alpha, gamma=gamma)


def _short(value: Any) -> str:
    """``repr(value)``, cut to 80 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
