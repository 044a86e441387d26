"""Past one machine: streamed, sharded activation capture, merging, per-class extraction.

The pieces a large run is built from, each usable on its own machine or process:

1. :func:`capture_stream` runs a model over an *iterable of batches* (a
   ``torch.utils.data.DataLoader``, :func:`iter_batches` over IDX files read piece by piece,
   ...) and keeps, per image, only the kernel units of one layer, already binarised and
   packed 8 per byte when the thresholds are known.  Memory is bounded by one batch plus
   ``images × kernels / 8`` bytes of output.  Unknown thresholds that need statistics
   (``minmax``, ``mean``, ``eric``) are fitted from running sums in a first pass
   (``two_pass=True``), or the raw units are kept for :func:`merge_shards` to fit globally.
2. :func:`capture_shard` does that for shard ``i`` of ``n`` (a contiguous range of image
   indices) and :meth:`ActivationShard.save` writes it as ``.npz`` with everything a merge
   must check: layer, reduction, kernel names, thresholds, model digest, data source,
   split, shard index and image indices.
3. :func:`merge_shards` checks that shards agree and together cover every image exactly
   once, fits thresholds over all of them when they hold raw units, and returns one
   :class:`~cnn2logic.units.BinaryCodes` (the same file ``cnn2logic extract`` writes).
4. :func:`extract_part` extracts the rules of some classes only (each class's terms depend
   only on the output layer's weights, so classes are independent jobs) and
   :func:`merge_rule_parts` joins the parts into one ranked, evaluated rule set, equal to
   extracting all classes at once.

The command line exposes the same steps as ``cnn2logic capture``, ``cnn2logic merge`` and
``cnn2logic extract-part``.

Example
-------
>>> import torch
>>> from torch import nn
>>> from cnn2logic.shards import capture_shard, merge_shards, shard_range
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

import gzip
import json
import os
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ._io import atomic_path, atomic_write_text
from .errors import ActivationError, DataError, ExtractionError, ModelError, RulesFileError
from .rules import Head, Rule, RuleSet, Variable
from .units import (REDUCTIONS, THRESHOLDS, BinaryCodes, Thresholds, kernel_names,
                    position_names, reduce_maps)

SHARD_FORMAT = "cnn2logic-activations-shard"
THRESHOLDS_FORMAT = "cnn2logic-thresholds"
PART_KEY = "part_classes"
FORMAT_VERSION = 1
KINDS = ("bits", "units")


# -- sharding and streaming data ---------------------------------------------------------

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
    """
    if count < 1 or not 0 <= index < count:
        raise DataError(f"shard {index}/{count}: need 0 ≤ index < count")
    base, extra = divmod(total, count)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


@dataclass(frozen=True)
class SplitInfo:
    """What :func:`open_split` found: how many images, the class names, the source."""

    total: int
    classes: tuple[str, ...]
    source: str
    split: str


def open_split(source: str | os.PathLike[str], split: str = "train",
               size: int | None = None) -> SplitInfo:
    """Size and classes of one split without reading its images.

    Raises
    ------
    DataError, DataFileNotFoundError
        Unknown split, or missing / malformed files.
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    if str(source) == "embedded":
        from .data import load_data

        d = load_data("embedded")
        part = d.train if split == "train" else d.test
        total = len(part) if size is None else min(size, len(part))
        return SplitInfo(total, part.classes, "embedded", split)
    directory = Path(source)
    _, lab_path = _idx_paths(directory, split)
    labels = _read_idx_all(lab_path)
    other = _read_idx_all(_idx_paths(directory, "test" if split == "train" else "train")[1])
    n_classes = max(int(labels.max(initial=0)) + 1, int(other.max(initial=0)) + 1, 10)
    total = len(labels) if size is None else min(size, len(labels))
    return SplitInfo(total, tuple(str(c) for c in range(n_classes)), str(directory), split)


def iter_batches(source: str | os.PathLike[str], split: str = "train", start: int = 0,
                 stop: int | None = None, batch_size: int = 500
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``(images, labels)`` of images ``start..stop`` of a split, read piecewise.

    IDX files (gzipped or not) are read one batch at a time, so memory does not grow with
    the data set; the embedded set is small and sliced in memory.
    """
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    if str(source) == "embedded":
        from .data import load_data

        d = load_data("embedded")
        part = d.train if split == "train" else d.test
        stop = len(part) if stop is None else min(stop, len(part))
        for s in range(start, stop, batch_size):
            e = min(s + batch_size, stop)
            yield (torch.from_numpy(part.images[s:e]),
                   torch.from_numpy(part.labels[s:e].astype(np.int64)))
        return
    img_path, lab_path = _idx_paths(Path(source), split)
    labels = _read_idx_all(lab_path).astype(np.int64)
    opener = gzip.open if img_path.suffix == ".gz" else open
    with opener(img_path, "rb") as fh:
        magic = fh.read(4)
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] != 0x08:
            raise DataError(f"{img_path}: not a uint8 IDX image file")
        ndim = magic[3]
        shape = struct.unpack(f">{ndim}I", fh.read(4 * ndim))
        if ndim != 3:
            raise DataError(f"{img_path}: expected (n, rows, cols) images, got {shape}")
        n, rows, cols = shape
        if n != len(labels):
            raise DataError(f"{lab_path}: {len(labels)} labels but {img_path.name} has {n} images")
        stop = n if stop is None else min(stop, n)
        per = rows * cols
        fh.seek(4 + 4 * ndim + start * per)
        for s in range(start, stop, batch_size):
            e = min(s + batch_size, stop)
            raw = fh.read((e - s) * per)
            if len(raw) != (e - s) * per:
                raise DataError(f"{img_path}: truncated at image {s}")
            arr = np.frombuffer(raw, np.uint8).reshape(e - s, 1, rows, cols)
            yield torch.from_numpy(arr.astype(np.float32) / 255.0), torch.from_numpy(labels[s:e])


def _idx_paths(directory: Path, split: str) -> tuple[Path, Path]:
    from .data import _IDX_FILES, _find_idx
    from .errors import DataFileNotFoundError

    if not directory.exists():
        raise DataFileNotFoundError(f"{directory}: data directory does not exist")
    return _find_idx(directory, _IDX_FILES[split][0]), _find_idx(directory, _IDX_FILES[split][1])


def _read_idx_all(path: Path) -> np.ndarray:
    from .data import read_idx

    return read_idx(path)


# -- running statistics ------------------------------------------------------------------

@dataclass
class RunningStats:
    """Per-kernel count, sum, sum of squares, min and max, mergeable across shards."""

    count: int
    total: np.ndarray
    squares: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "RunningStats":
        return cls(0, np.zeros(n), np.zeros(n), np.full(n, np.inf), np.full(n, -np.inf))

    def update(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        if len(v) == 0:
            return
        self.count += len(v)
        self.total += v.sum(axis=0)
        self.squares += (v * v).sum(axis=0)
        self.low = np.minimum(self.low, v.min(axis=0))
        self.high = np.maximum(self.high, v.max(axis=0))

    def merged(self, other: "RunningStats") -> "RunningStats":
        return RunningStats(self.count + other.count, self.total + other.total,
                            self.squares + other.squares, np.minimum(self.low, other.low),
                            np.maximum(self.high, other.high))

    def fit(self, method: str, *, alpha: float = 0.6, gamma: float = 0.7) -> Thresholds:
        """Thresholds from the statistics (``median`` needs the values themselves).

        Raises
        ------
        ActivationError
            No data, ``median``, or ``half`` on units outside [0, 1].
        """
        if self.count == 0:
            raise ActivationError("no images to fit thresholds on")
        if method == "half":
            lo, hi = float(self.low.min()), float(self.high.max())
            if lo < 0.0 or hi > 1.0:
                raise ActivationError(
                    f"threshold 'half' needs units in [0, 1] (sigmoid); these span [{lo:.3g}, "
                    f"{hi:.3g}]: use 'minmax', 'eric', 'mean' or 'median'")
            return Thresholds(np.full(len(self.total), 0.5), "half", {})
        if method == "minmax":
            return Thresholds(self.low + 0.5 * (self.high - self.low), "minmax", {})
        mean = self.total / self.count
        if method == "mean":
            return Thresholds(mean, "mean", {})
        if method == "eric":
            std = np.sqrt(np.maximum(self.squares / self.count - mean * mean, 0.0))
            return Thresholds(alpha * mean + gamma * std, "eric", {"alpha": alpha, "gamma": gamma})
        if method == "median":
            raise ActivationError("the median cannot be fitted from running statistics; keep "
                                  "the raw units (merge fits it) or give fitted thresholds")
        raise ActivationError(f"unknown threshold method {method!r}; choose from {THRESHOLDS}")


# -- shards ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActivationShard:
    """Kernel units of a contiguous range of images: raw (``units``) or binarised (``bits``).

    ``indices`` are the images' positions in the whole split; ``thresholds`` is set when
    ``kind == "bits"``.
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
        """Read a shard written by :meth:`save`.

        Raises
        ------
        ActivationError
            Missing file, or not a cnn2logic activation shard.
        """
        p = Path(path)
        if not p.is_file():
            raise ActivationError(f"shard file not found: {p}")
        try:
            with np.load(p, allow_pickle=False) as z:
                if "format" not in z or str(z["format"]) != SHARD_FORMAT:
                    raise ActivationError(f"{p}: not a cnn2logic activation shard")
                if int(z["version"]) != FORMAT_VERSION:
                    raise ActivationError(f"{p}: unsupported shard version {int(z['version'])}")
                kind = str(z["kind"])
                n = int(z["n_kernels"])
                variables = tuple(Variable(str(a), str(b), int(c)) for a, b, c in
                                  zip(z["var_names"], z["var_layers"], z["var_index"]))
                thresholds = None
                if kind == "bits":
                    data = np.unpackbits(z["bits"], axis=1, count=n).astype(bool)
                    thresholds = Thresholds(np.asarray(z["thresholds"], np.float64),
                                            str(z["threshold_method"]),
                                            json.loads(str(z["threshold_params"])))
                else:
                    data = np.asarray(z["units"], np.float32)
                stats = RunningStats(int(z["stats_count"]), z["stats_sum"], z["stats_squares"],
                                     z["stats_low"], z["stats_high"])
                shard = tuple(int(v) for v in z["shard"])
                return cls(kind, data, variables, tuple(str(c) for c in z["classes"]),
                           z["labels"], z["predictions"], z["indices"], str(z["layer"]),
                           str(z["reduce"]), stats, thresholds, (shard[0], shard[1]),
                           int(z["total"]), json.loads(str(z["info"])))
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
            raise ActivationError(f"{p}: not a readable activation shard ({exc})") from None


def _as_batches(images: Any, labels: Any, batch_size: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels.astype(np.int64))
    for s in range(0, len(images), batch_size):
        yield images[s:s + batch_size], (None if labels is None else labels[s:s + batch_size])


def _layer_batches(model: nn.Module, layer: str, batches: Iterable, reduce: str,
                   progress: bool = False
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]]:
    """Per batch: the layer's units (images × units), labels, predictions, map shape."""
    if reduce not in REDUCTIONS:
        raise ActivationError(f"unknown reduction {reduce!r}; choose from {REDUCTIONS}")
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        raise ModelError(f"no layer named {layer!r}; layers: {', '.join(n for n in modules if n)}")
    grabbed: list[torch.Tensor] = []
    shape: list[tuple[int, ...]] = [()]

    def hook(_m: nn.Module, _i: object, output: torch.Tensor) -> None:
        out = output.detach()
        if out.ndim == 4:
            shape[0] = tuple(out.shape[1:])
            out = reduce_maps(out, reduce)
        elif out.ndim != 2:
            raise ActivationError(f"layer {layer!r} outputs shape {tuple(output.shape)}; "
                                  "expected (n, c, h, w) or (n, c)")
        grabbed.append(out.float().cpu())

    handle = modules[layer].register_forward_hook(hook)
    was_training = model.training
    model.eval()
    iterator: Iterable = batches
    if progress:
        from tqdm import tqdm

        iterator = tqdm(batches, desc=f"capture {layer}", unit="batch", leave=False)
    try:
        with torch.no_grad():
            for batch in iterator:
                if isinstance(batch, torch.Tensor):
                    xb, yb = batch, None
                else:
                    xb, yb = batch[0], (batch[1] if len(batch) > 1 else None)
                grabbed.clear()
                logits = model(xb)
                if len(grabbed) != 1:
                    raise ActivationError(f"layer {layer!r} ran {len(grabbed)} times in one "
                                          "forward pass; capture needs exactly once")
                vals = grabbed[0].numpy()
                n = len(vals)
                labels = (np.full(n, -1, np.int64) if yb is None
                          else np.asarray(yb, dtype=np.int64).reshape(-1))
                preds = (logits.argmax(1).numpy().astype(np.int64)
                         if isinstance(logits, torch.Tensor) and logits.ndim == 2
                         else np.full(n, -1, np.int64))
                yield vals, labels, preds, shape[0]
    finally:
        handle.remove()
        model.train(was_training)


def capture_stream(model: nn.Module, layer: str,
                   batches: Iterable[Sequence[torch.Tensor] | torch.Tensor], *,
                   reduce: str = "max", thresholds: Thresholds | str | None = None,
                   keep: str = "auto", classes: Sequence[str] | None = None,
                   start_index: int = 0, progress: bool = False) -> ActivationShard:
    """Kernel units of ``layer`` for every image of ``batches``, in one pass.

    Parameters
    ----------
    batches : iterable
        ``(images, labels)`` pairs (a ``DataLoader``), or image tensors alone (labels -1).
    reduce : {"max", "mean", "l1", "l2", "position"}
    thresholds : Thresholds, "half", or None
        Known thresholds binarise each batch on the fly (``kind="bits"``, memory: one
        batch plus the packed bits); with None the raw units are kept
        (``kind="units"``) for a later fit.
    keep : {"auto", "bits", "units"}
        ``auto``: bits when thresholds are known, else units.
    start_index : int
        Index of the first image in the whole split (for ``indices``).

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
    for vals, lab, pred, shape in _layer_batches(model, layer, batches, reduce, progress):
        if stats is None:
            stats = RunningStats.empty(vals.shape[1])
        stats.update(vals)
        if kind == "bits":
            if fixed is None:  # "half"
                lo, hi = float(vals.min(initial=0.0)), float(vals.max(initial=0.0))
                if lo < 0.0 or hi > 1.0:
                    raise ActivationError(
                        f"threshold 'half' needs units in [0, 1] (sigmoid); these span "
                        f"[{lo:.3g}, {hi:.3g}]: fit 'minmax', 'eric', 'mean' or 'median' "
                        "thresholds instead")
                fixed = Thresholds(np.full(vals.shape[1], 0.5), "half", {})
            chunks.append(np.packbits(fixed.apply(vals), axis=1))
        else:
            chunks.append(vals.astype(np.float32))
        labels.append(lab)
        preds.append(pred)
    if stats is None:
        raise ActivationError("no images in the batches")
    k = len(stats.total)
    data = np.concatenate(chunks)
    if kind == "bits":
        data = np.unpackbits(data, axis=1, count=k).view(bool)  # no second copy
    names = (position_names(layer, *shape) if reduce == "position" and len(shape) == 3
             else kernel_names(layer, k))
    variables = tuple(Variable(nm, layer, i) for i, nm in enumerate(names))
    if fixed is not None and len(fixed.values) != k:
        raise ActivationError(f"thresholds for {len(fixed.values)} kernels, layer has {k}")
    lab_all, pred_all = np.concatenate(labels), np.concatenate(preds)
    n_classes = max(int(lab_all.max(initial=-1)) + 1, int(pred_all.max(initial=-1)) + 1)
    cls = tuple(classes) if classes is not None else tuple(str(c) for c in range(n_classes))
    return ActivationShard(kind, data, variables, cls, lab_all, pred_all,
                           np.arange(start_index, start_index + len(data), dtype=np.int64),
                           layer, reduce, stats, fixed if kind == "bits" else None,
                           (0, 1), start_index + len(data))


def stream_statistics(model: nn.Module, layer: str, batches: Iterable, *,
                      reduce: str = "max") -> RunningStats:
    """Per-kernel running statistics of ``layer`` over ``batches`` (memory: one batch).

    Statistics of several processes combine with :meth:`RunningStats.merged` (or an
    ``all_reduce``: sums add, minima and maxima reduce).

    Raises
    ------
    ActivationError
        No images, or an unsupported layer output.
    ModelError
        ``layer`` is not in ``model``.
    """
    stats: RunningStats | None = None
    for vals, _, _, _ in _layer_batches(model, layer, batches, reduce):
        if stats is None:
            stats = RunningStats.empty(vals.shape[1])
        stats.update(vals)
    if stats is None:
        raise ActivationError("no images in the batches")
    return stats


def fit_stream_thresholds(model: nn.Module, layer: str, batches: Iterable, method: str, *,
                          reduce: str = "max", alpha: float = 0.6,
                          gamma: float = 0.7) -> Thresholds:
    """First pass of a two-pass capture: thresholds from running statistics only.

    Memory is one batch; ``median`` is not supported (it needs every value).

    Raises
    ------
    ActivationError
        ``median``, unknown method, no images, or ``half`` on units outside [0, 1].
    """
    stats = stream_statistics(model, layer, batches, reduce=reduce)
    return stats.fit(method, alpha=alpha, gamma=gamma)


def capture_shard(model: nn.Module, layer: str, images: Any = None, labels: Any = None, *,
                  shard: tuple[int, int] = (0, 1), source: str | None = None,
                  split: str = "train", size: int | None = None, reduce: str = "max",
                  threshold: str | None = None, thresholds: Thresholds | None = None,
                  batch_size: int = 500, model_digest: str = "",
                  progress: bool = False) -> ActivationShard:
    """Capture shard ``i`` of ``n`` of a split.

    Give either in-memory ``images`` (and ``labels``) or a data ``source`` (``"embedded"``
    or an IDX directory, streamed with :func:`iter_batches`).  ``thresholds`` (fitted on the
    training split) or ``threshold="half"`` give a shard of bits; otherwise the raw units
    are kept and :func:`merge_shards` fits the thresholds over all shards.

    Raises
    ------
    DataError
        Bad shard, or neither/both of ``images`` and ``source``.
    ActivationError, ModelError
        As :func:`capture_stream`.
    """
    i, n = shard
    if (images is None) == (source is None):
        raise DataError("give either images or a data source")
    if threshold not in (None, "half") and thresholds is None:
        raise ActivationError(f"threshold {threshold!r} needs statistics over all shards: "
                              "capture raw units (no threshold) and let merge fit it")
    info = {"model_digest": model_digest, "split": split}
    if source is not None:
        meta = open_split(source, split, size)
        start, stop = shard_range(meta.total, i, n)
        batches: Iterable = iter_batches(source, split, start, stop, batch_size)
        classes: tuple[str, ...] | None = meta.classes
        total = meta.total
        info["source"] = meta.source
    else:
        total = len(images) if size is None else min(size, len(images))
        start, stop = shard_range(total, i, n)
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


def merge_shards(shards: Sequence[ActivationShard | str | os.PathLike[str]], *,
                 threshold: str | None = None, thresholds: Thresholds | None = None,
                 alpha: float = 0.6, gamma: float = 0.7) -> tuple[BinaryCodes, Thresholds]:
    """One :class:`BinaryCodes` from shards that together cover a split exactly once.

    Shards of bits must share their thresholds.  Shards of raw units are binarised with
    ``thresholds`` when given, else with ``threshold`` (default ``half``) fitted over all
    shards (running statistics in float64; the median concatenates the units).

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
        if first.kind == "bits" and not _same_thresholds(s.thresholds, first.thresholds):
            raise ActivationError(f"shard {s.shard[0]}/{s.shard[1]} was binarised with other "
                                  "thresholds than the first shard")
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
    if first.kind == "bits":
        if thresholds is not None and not _same_thresholds(thresholds, first.thresholds):
            raise ActivationError("the shards hold bits binarised with other thresholds than "
                                  "those given")
        fitted = first.thresholds
        bits = np.concatenate([s.data for s in loaded]).astype(bool)
    else:
        if thresholds is not None:
            fitted = thresholds
        else:
            method = threshold or "half"
            if method == "median":
                from .units import fit_thresholds

                fitted = fit_thresholds(np.concatenate([s.data for s in loaded]), "median")
            else:
                stats = loaded[0].stats
                for s in loaded[1:]:
                    stats = stats.merged(s.stats)
                fitted = stats.fit(method, alpha=alpha, gamma=gamma)
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


def _same_thresholds(a: Thresholds | None, b: Thresholds | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.method == b.method and len(a.values) == len(b.values)
            and bool(np.array_equal(np.asarray(a.values), np.asarray(b.values))))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- thresholds files --------------------------------------------------------------------

def save_thresholds(thresholds: Thresholds, path: str | os.PathLike[str], *, layer: str = "",
                    reduce: str = "", names: Sequence[str] = ()) -> None:
    """Write fitted thresholds as JSON (to binarise the test split's shards the same way)."""
    doc = {"format": THRESHOLDS_FORMAT, "version": FORMAT_VERSION, "layer": layer,
           "reduce": reduce, "names": list(names), "method": thresholds.method,
           "params": thresholds.params,
           "values": [float(v) for v in np.asarray(thresholds.values, np.float64)]}
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def load_thresholds(path: str | os.PathLike[str]) -> tuple[Thresholds, dict[str, Any]]:
    """Thresholds from a file of :func:`save_thresholds` or a rules JSON's ``meta``.

    Returns the thresholds and what is known about them (``layer``, ``reduce``, ``names``).

    Raises
    ------
    ActivationError
        Missing file, or no thresholds in it.
    """
    p = Path(path)
    if not p.is_file():
        raise ActivationError(f"thresholds file not found: {p}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ActivationError(f"{p}: not a JSON thresholds file ({exc})") from None
    if isinstance(doc, dict) and doc.get("format") == THRESHOLDS_FORMAT:
        th, info = doc, {k: doc.get(k) for k in ("layer", "reduce", "names")}
    elif isinstance(doc, dict) and isinstance(doc.get("meta", {}).get("thresholds"), dict):
        th = doc["meta"]["thresholds"]
        settings = doc["meta"].get("settings", {})
        info = {"layer": doc["meta"].get("layer", ""), "reduce": settings.get("reduce", ""),
                "names": [v["name"] for v in doc.get("variables", [])]}
    else:
        raise ActivationError(f"{p}: holds no thresholds (a thresholds file from "
                              "'cnn2logic merge' or a rules.json from 'cnn2logic extract')")
    try:
        values = np.asarray([float(v) for v in th["values"]], np.float64)
        return Thresholds(values, str(th["method"]), dict(th.get("params", {}))), info
    except (KeyError, TypeError, ValueError) as exc:
        raise ActivationError(f"{p}: malformed thresholds ({exc!r})") from None


# -- per-class extraction ----------------------------------------------------------------

def parse_classes(text: str, heads: Sequence[str]) -> tuple[str, ...]:
    """``"3"``, ``"0,2,5"``, ``"0-4"`` or ``"job 2/5"``-style ``"2/5"`` as head names.

    ``i/n`` picks every class whose position modulo ``n`` is ``i``, so ``n`` jobs cover
    all classes.

    Raises
    ------
    ExtractionError
        Unknown class or malformed text.
    """
    text = text.strip()
    if "/" in text:
        try:
            i, n = parse_shard(text)
        except DataError as exc:
            raise ExtractionError(str(exc)) from None
        return tuple(h for j, h in enumerate(heads) if j % n == i)
    out: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "-" in part and part not in heads:
            a, _, b = part.partition("-")
            if a not in heads or b not in heads:
                raise ExtractionError(f"unknown class range {part!r}; classes: {list(heads)}")
            ia, ib = heads.index(a), heads.index(b)
            out.extend(heads[ia:ib + 1])
        elif part in heads:
            out.append(part)
        else:
            raise ExtractionError(f"unknown class {part!r}; classes: {list(heads)}")
    if not out:
        raise ExtractionError("no classes selected")
    return tuple(dict.fromkeys(out))


def extract_part(weight: np.ndarray, bias: np.ndarray, codes: BinaryCodes,
                 classes: Sequence[str] | None = None, *, order: int | None = 3,
                 mode: str = "argmax", search: str = "pruned", minimize: str = "exact",
                 minimize_timeout: float = 60.0, max_terms: int | None = None,
                 layer_names: tuple[str, str] = ("", "out")) -> RuleSet:
    """The rules of the selected classes only, ranked on ``codes`` (the training codes;
    by precision against the network's predictions, as :func:`~cnn2logic.extract.run.extract_model`
    ranks).

    Every class's terms depend only on ``weight`` and ``bias`` (the whole output layer, as
    the argmax-sound conditions compare a class with all others), so jobs over disjoint
    class sets can run anywhere and be joined with :func:`merge_rule_parts`.

    Raises
    ------
    ExtractionError
        Weights and codes do not fit, or bad settings.
    """
    from .evaluate import rank_rules
    from .extract.approximation import ApproximationExtractor, class_conditions, naive_terms, pruned_terms
    from .minimize import minimize_terms

    W = np.asarray(weight, np.float64)
    b = np.asarray(bias, np.float64)
    n = len(codes.variables)
    if W.ndim != 2 or W.shape[1] != n or b.shape != (W.shape[0],):
        raise ExtractionError(f"output layer {W.shape} does not read the codes' {n} kernel units")
    head_names = (tuple(codes.classes) if len(codes.classes) == W.shape[0]
                  else tuple(str(c) for c in range(W.shape[0])))
    heads = tuple(Head(h, "class", layer_names[1], i) for i, h in enumerate(head_names))
    selected = tuple(head_names) if classes is None else tuple(classes)
    unknown = [c for c in selected if c not in head_names]
    if unknown:
        raise ExtractionError(f"unknown classes {unknown}; classes: {list(head_names)}")
    ApproximationExtractor(order=order, mode=mode, search=search)  # validates the settings
    if search == "truth-table":
        raise ExtractionError("per-class jobs use the pruned or naive search")
    if minimize not in ("exact", "none"):
        raise ExtractionError("per-class jobs minimise 'exact' or 'none' (on-codes needs every "
                              "class's codes at once)")
    k = min(order if order is not None else (n if n <= 12 else 3), n)
    search_fn = pruned_terms if search == "pruned" else naive_terms
    names = [v.name for v in codes.variables]
    rules: list[Rule] = []
    report: dict[str, Any] = {}
    for c in selected:
        ci = head_names.index(c)
        terms = search_fn(class_conditions(W, b, ci, mode), k)
        if minimize == "exact":
            res = minimize_terms(terms, n, timeout=minimize_timeout)
            terms, report[c] = res.terms, {"kind": res.kind, "before": res.before,
                                            "after": res.after, "note": res.note}
        from .rules import Literal

        rules.extend(Rule(c, tuple(Literal(names[v], p) for v, p in t)) for t in terms)
    raw = RuleSet(codes.variables, heads, tuple(rules), None)
    # ranked against the network's predictions, as extract_model ranks
    ranked = rank_rules(raw, codes.bits, _rank_target(codes), default=None)
    if max_terms is not None:
        kept, count = [], {}
        for r in ranked.rules:
            count[r.head] = count.get(r.head, 0) + 1
            if count[r.head] <= max_terms:
                kept.append(r)
        ranked = ranked.replace(rules=tuple(kept))
    meta = {"method": "approximation", "output_layer": layer_names[1], "layer": layer_names[0],
            PART_KEY: list(selected),
            "settings": {"order": order, "order_used": k, "mode": mode, "search": search,
                         "minimize": minimize, "max_terms": max_terms},
            "minimization": report, "codes_digest": codes_digest(codes)}
    return ranked.replace(meta=meta)


def _rank_target(codes: BinaryCodes) -> np.ndarray | None:
    return codes.predictions if codes.predictions is not None else codes.labels


def codes_digest(codes: BinaryCodes) -> str:
    """A short digest of codes' bits and labels: parts ranked on other codes do not merge."""
    import hashlib

    h = hashlib.sha256()
    h.update(np.packbits(codes.bits, axis=1).tobytes())
    for arr in (codes.labels, codes.predictions):
        if arr is not None:
            h.update(np.asarray(arr, np.int64).tobytes())
    return h.hexdigest()[:16]


def merge_rule_parts(parts: Sequence[RuleSet], codes: BinaryCodes,
                     test_codes: BinaryCodes | None = None) -> RuleSet:
    """Join per-class parts into one ranked rule set with its default class.

    The parts must share variables, heads and settings, have been ranked on ``codes`` and
    cover every class exactly once.  With ``test_codes`` the merged rules carry the
    evaluation in ``meta["metrics"]``.

    Raises
    ------
    RulesFileError
        Parts disagree, overlap, leave classes out, or were ranked on other codes.
    """
    from .evaluate import evaluate_rules, rank_rules, term_counts

    if not parts:
        raise RulesFileError("no rule parts to merge")
    first = parts[0]
    digest = codes_digest(codes)
    covered: list[str] = []
    for i, part in enumerate(parts):
        if PART_KEY not in part.meta:
            raise RulesFileError(f"part {i + 1} is not a per-class part (no {PART_KEY!r} in meta)")
        if part.variables != first.variables or part.heads != first.heads:
            raise RulesFileError(f"part {i + 1} has other kernels or classes than part 1")
        if dict(part.meta.get("settings", {})) != dict(first.meta.get("settings", {})):
            raise RulesFileError(f"part {i + 1} was extracted with other settings than part 1")
        if part.meta.get("codes_digest") != digest:
            raise RulesFileError(f"part {i + 1} was ranked on other codes than those given")
        covered.extend(part.meta[PART_KEY])
    dup = sorted({c for c in covered if covered.count(c) > 1})
    missing = [h for h in first.head_names if h not in covered]
    if dup:
        raise RulesFileError(f"classes extracted by more than one part: {dup}")
    if missing:
        raise RulesFileError(f"classes no part extracted: {missing}")
    merged = first.replace(rules=tuple(r for p in parts for r in p.rules), meta={})
    ranked = rank_rules(merged, codes.bits, _rank_target(codes))
    minimization: dict[str, Any] = {}
    for p in parts:
        minimization.update(p.meta.get("minimization", {}))
    meta = {k: v for k, v in first.meta.items() if k not in (PART_KEY, "minimization")}
    meta.update({"merged_parts": len(parts), "minimization": minimization})
    if test_codes is not None:
        if test_codes.names != codes.names:
            raise RulesFileError("test codes have other kernels than the training codes")
        metrics = evaluate_rules(ranked, test_codes.bits, test_codes.labels,
                                 test_codes.predictions)
        metrics.update(term_counts(ranked))
        meta["metrics"] = metrics
    return ranked.replace(meta=meta)
