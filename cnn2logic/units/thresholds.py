"""Thresholds: how a real-valued kernel unit becomes a bit.

:func:`fit_thresholds` fits per-kernel thresholds on a matrix of units:

* ``"half"``: threshold 0.5, for sigmoid-bounded units (the paper);
* ``"minmax"``: per-kernel min-max normalisation to [0, 1] over the fitting data, then 0.5;
* ``"eric"``: per-kernel ``alpha * mean + gamma * std`` over the fitting data (ERIC);
* ``"mean"`` / ``"median"``: per-kernel mean or median.

Thresholds are fitted on one set (normally the training images) and applied to others.
When the units do not fit in memory, :class:`RunningStats` keeps per-kernel sums, minima and
maxima that merge across shards and processes (:func:`stream_statistics`,
:func:`fit_stream_thresholds`); :func:`save_thresholds` / :func:`load_thresholds` carry
fitted thresholds from the training split to the test split's jobs.

Example
-------
>>> import numpy as np
>>> fit_thresholds(np.array([[0.0, 2.0], [1.0, 4.0]]), "minmax").values
array([0.5, 3. ])
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from torch import nn

from .._io import atomic_write_text
from ..errors import ActivationError
from .activations import KernelUnits, iter_layer_units

THRESHOLDS = ("half", "minmax", "eric", "mean", "median")
THRESHOLDS_FORMAT = "cnn2logic-thresholds"
THRESHOLDS_VERSION = 1


@dataclass(frozen=True)
class Thresholds:
    """Per-kernel thresholds; a unit is 1 when its value is ``>=`` its threshold.

    Attributes
    ----------
    values : np.ndarray
        One threshold per kernel (float64).
    method : str
        How they were fitted (one of :data:`THRESHOLDS`).
    params : dict
        The method's parameters (``alpha``, ``gamma`` for ``eric``).
    """

    values: np.ndarray
    method: str
    params: dict = field(default_factory=dict)

    def apply(self, units: KernelUnits | np.ndarray) -> np.ndarray:
        """Binarise ``units`` (images x kernels) into a bool matrix.

        Raises
        ------
        ActivationError
            The units have another number of kernels than the thresholds.
        """
        vals = units.values if isinstance(units, KernelUnits) else np.asarray(units)
        if vals.ndim != 2 or vals.shape[1] != len(self.values):
            raise ActivationError(
                f"expected activations with {len(self.values)} kernels, got shape {vals.shape}"
            )
        return vals >= self.values[None, :]


def check_half(lo: float, hi: float, advice: str) -> None:
    """Refuse ``"half"`` for units spanning ``[lo, hi]`` outside [0, 1].

    Raises
    ------
    ActivationError
        ``lo < 0`` or ``hi > 1``; the message ends with ``advice``.
    """
    if lo < 0.0 or hi > 1.0:
        raise ActivationError(f"threshold 'half' needs units in [0, 1] (sigmoid); these span "
                              f"[{lo:.3g}, {hi:.3g}]: {advice}")


_ADVICE = "use 'minmax', 'eric', 'mean' or 'median'"


def fit_thresholds(units: KernelUnits | np.ndarray, method: str = "half", *,
                   alpha: float = 0.6, gamma: float = 0.7) -> Thresholds:
    """Per-kernel thresholds fitted on ``units`` (see the module docstring).

    Parameters
    ----------
    units : KernelUnits or (images, kernels) array
    method : {"half", "minmax", "eric", "mean", "median"}
    alpha, gamma : float
        ERIC's weights of the mean and the standard deviation.

    Returns
    -------
    Thresholds

    Raises
    ------
    ActivationError
        ``method`` is unknown, or ``"half"`` is asked of units outside [0, 1].
    """
    vals = units.values if isinstance(units, KernelUnits) else np.asarray(units, dtype=float)
    if vals.ndim != 2 or vals.shape[0] == 0:
        raise ActivationError(f"need a non-empty (images, kernels) matrix, got {vals.shape}")
    params: dict = {}
    if method == "half":
        check_half(float(vals.min()), float(vals.max()), _ADVICE)
        t = np.full(vals.shape[1], 0.5)
    elif method == "minmax":
        lo, hi = vals.min(axis=0), vals.max(axis=0)
        t = lo + 0.5 * (hi - lo)
    elif method == "eric":
        t = alpha * vals.mean(axis=0) + gamma * vals.std(axis=0)
        params = {"alpha": alpha, "gamma": gamma}
    elif method == "mean":
        t = vals.mean(axis=0)
    elif method == "median":
        t = np.median(vals, axis=0)
    else:
        raise ActivationError(f"unknown threshold method {method!r}; choose from {THRESHOLDS}")
    return Thresholds(np.asarray(t, dtype=np.float64), method, params)


@dataclass
class RunningStats:
    """Per-kernel count, sum, sum of squares, min and max, mergeable across shards.

    Attributes
    ----------
    count : int
        Images seen.
    total, squares, low, high : np.ndarray
        Per-kernel sum, sum of squares, minimum and maximum (float64).
    """

    count: int
    total: np.ndarray
    squares: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "RunningStats":
        """Statistics of no images over ``n`` kernels."""
        return cls(0, np.zeros(n), np.zeros(n), np.full(n, np.inf), np.full(n, -np.inf))

    def update(self, values: np.ndarray) -> None:
        """Add the rows of ``values`` (images x kernels), in place."""
        v = np.asarray(values, dtype=np.float64)
        if len(v) == 0:
            return
        self.count += len(v)
        self.total += v.sum(axis=0)
        self.squares += (v * v).sum(axis=0)
        self.low = np.minimum(self.low, v.min(axis=0))
        self.high = np.maximum(self.high, v.max(axis=0))

    def merged(self, other: "RunningStats") -> "RunningStats":
        """The statistics of both sets of images (sums add, minima and maxima reduce)."""
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
            check_half(float(self.low.min()), float(self.high.max()), _ADVICE)
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
    for batch in iter_layer_units(model, layer, batches, reduce):
        vals = batch.units()
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


def same_thresholds(a: Thresholds | None, b: Thresholds | None) -> bool:
    """Whether ``a`` and ``b`` are the same method and values (or both None)."""
    if a is None or b is None:
        return a is b
    return (a.method == b.method and len(a.values) == len(b.values)
            and bool(np.array_equal(np.asarray(a.values), np.asarray(b.values))))


def save_thresholds(thresholds: Thresholds, path: str | os.PathLike[str], *, layer: str = "",
                    reduce: str = "", names: Sequence[str] = ()) -> None:
    """Write fitted thresholds as JSON (to binarise the test split's shards the same way).

    Parameters
    ----------
    thresholds : Thresholds
    path : path
        The JSON file to write (atomically).
    layer, reduce : str
        The layer and reduction they were fitted on (checked by ``cnn2logic capture``).
    names : sequence of str
        The kernel units' names.
    """
    doc = {"format": THRESHOLDS_FORMAT, "version": THRESHOLDS_VERSION, "layer": layer,
           "reduce": reduce, "names": list(names), "method": thresholds.method,
           "params": thresholds.params,
           "values": [float(v) for v in np.asarray(thresholds.values, np.float64)]}
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


#: A thresholds file is small JSON; anything larger is not one (and is not read whole).
_MAX_THRESHOLDS_BYTES = 64 << 20


def load_thresholds(path: str | os.PathLike[str]) -> tuple[Thresholds, dict[str, Any]]:
    """Thresholds from a file of :func:`save_thresholds` or a rules JSON's ``meta``.

    Returns
    -------
    tuple of (Thresholds, dict)
        The thresholds and what is known about them (``layer``, ``reduce``, ``names``).

    Raises
    ------
    ActivationError
        Missing file, or no thresholds in it.
    """
    p = Path(path)
    if not p.is_file():
        raise ActivationError(f"thresholds file not found: {p}")
    if p.stat().st_size > _MAX_THRESHOLDS_BYTES:
        raise ActivationError(f"{p}: {p.stat().st_size} bytes is too large for a thresholds "
                              f"file (at most {_MAX_THRESHOLDS_BYTES})")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ActivationError(f"{p}: not a JSON thresholds file "
                              f"({str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    meta = doc.get("meta") if isinstance(doc, dict) else None
    if isinstance(doc, dict) and doc.get("format") == THRESHOLDS_FORMAT:
        th, info = doc, {k: doc.get(k) for k in ("layer", "reduce", "names")}
    elif isinstance(meta, dict) and isinstance(meta.get("thresholds"), dict):
        th = meta["thresholds"]
        settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
        variables = doc.get("variables") if isinstance(doc.get("variables"), list) else []
        info = {"layer": meta.get("layer", ""), "reduce": settings.get("reduce", ""),
                "names": [v.get("name") for v in variables if isinstance(v, dict)]}
    else:
        raise ActivationError(f"{p}: holds no thresholds (a thresholds file from "
                              "'cnn2logic merge' or a rules.json from 'cnn2logic extract')")
    return _thresholds_from(p, th), _checked_info(p, info)


def _thresholds_from(p: Path, th: dict) -> Thresholds:
    # Strict: numbers only (no "0.5" strings, no booleans), finite, one per kernel.
    values, method, params = th.get("values"), th.get("method"), th.get("params", {})
    if not isinstance(values, list) or not values or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ActivationError(f"{p}: thresholds 'values' must be a non-empty list of numbers")
    out = np.asarray(values, np.float64)
    if not np.isfinite(out).all():
        raise ActivationError(f"{p}: thresholds 'values' must be finite numbers")
    if not isinstance(method, str) or not isinstance(params, dict):
        raise ActivationError(f"{p}: thresholds need a 'method' string and a 'params' object")
    return Thresholds(out, method, dict(params))


def _checked_info(p: Path, info: dict) -> dict[str, Any]:
    for key in ("layer", "reduce"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise ActivationError(f"{p}: thresholds {key!r} must be a string")
    names = info.get("names")
    if names is not None and not (isinstance(names, list)
                                  and all(isinstance(n, str) for n in names)):
        raise ActivationError(f"{p}: thresholds 'names' must be a list of strings")
    return info
