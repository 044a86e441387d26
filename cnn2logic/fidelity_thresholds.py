"""Per-kernel thresholds chosen for fidelity to the network, on any units (ReLU, BatchNorm).

A fixed 0.5 (``"half"``) needs sigmoid units; the per-kernel statistics (``"mean"``,
``"median"``) work on any scale but ignore what the network does with the unit.  Here
the threshold of each kernel is chosen **against the network's prediction**:

``"infogain"``
    each kernel separately, the split that maximises the information gain of its bit
    about the predicted class (Odense & d'Avila Garcez's binarisation of the inputs of a
    softmax layer).  Candidates are ``candidates`` quantiles of the kernel's values, so
    the cost is linear in the images whatever their number.
``"lookup"``
    starts from ``"infogain"`` and then, kernel by kernel for ``rounds`` rounds, moves
    each threshold to the candidate that maximises the fidelity of the lookup table of
    the codes (every distinct code answers its majority prediction): the ceiling any
    rule program over these bits can reach on the fitting data.  Each kernel's bit is
    judged together with the others', which a per-kernel gain cannot do.  The lookup
    table over-fits when codes are nearly all distinct, so this is meant for narrow
    layers (at most ``max_lookup_kernels`` kernels; wider layers keep ``"infogain"``).

Both return :class:`cnn2logic.units.Thresholds` (a unit is 1 when ``>=`` its
threshold), so they apply wherever the fixed methods do.  Deterministic: ties go to the
lower candidate.

Example
-------
>>> import numpy as np
>>> u = np.array([[0.1], [0.2], [3.0], [4.0]])     # ReLU-like, unbounded
>>> th = fit_fidelity_thresholds(u, np.array([0, 0, 1, 1]), candidates=8)
>>> bool(0.2 < th.values[0] <= 3.0), th.apply(u).ravel().tolist()
(True, [False, False, True, True])
"""

from __future__ import annotations

import numpy as np

from .errors import ActivationError
from .units import KernelUnits, Thresholds

FIDELITY_THRESHOLDS = ("infogain", "lookup")


def _entropy_rows(counts: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of a count matrix, 0 for empty rows."""
    total = counts.sum(axis=-1, keepdims=True)
    p = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    logs = np.log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logs).sum(axis=-1)


def candidate_splits(values: np.ndarray, candidates: int) -> np.ndarray:
    """Midpoints between consecutive distinct quantiles of one kernel's values."""
    qs = np.unique(np.quantile(values, np.linspace(0.0, 1.0, candidates + 1)))
    if len(qs) < 2:  # a constant unit: a threshold just above it (always 0)
        return np.array([float(qs[0]) + 1.0])
    return (qs[:-1] + qs[1:]) / 2.0


def infogain_split(values: np.ndarray, target: np.ndarray, n_classes: int,
                   candidates: int = 256, weights: np.ndarray | None = None
                   ) -> tuple[float, float]:
    """(threshold, gain in nats) of the best split of ``values`` about ``target``."""
    splits = candidate_splits(values, candidates)
    w = np.ones(len(values)) if weights is None else weights
    # bucket b holds the values in [splits[b-1], splits[b]); cumulative sums give the
    # class counts below every split at once
    bucket = np.searchsorted(splits, values, side="right")
    table = np.zeros((len(splits) + 1, n_classes))
    np.add.at(table, (bucket, target), w)
    below = np.cumsum(table, axis=0)[:-1]      # (splits, classes): values < split
    total = table.sum(axis=0)
    above = total[None, :] - below
    nb, na = below.sum(axis=1), above.sum(axis=1)
    n = total.sum()
    gain = _entropy_rows(total[None, :])[0] - (nb * _entropy_rows(below)
                                                + na * _entropy_rows(above)) / n
    best = int(np.argmax(gain))  # first maximum: the lowest threshold on ties
    return float(splits[best]), float(gain[best])


def _lookup_fidelity(bits: np.ndarray, target: np.ndarray, n_classes: int) -> float:
    """Share of rows whose code's majority prediction is their prediction."""
    # at most max_lookup_kernels (16) bits: a dense (codes x classes) table is small and
    # one bincount is many times faster than sorting the codes
    key = bits.astype(np.int64) @ (np.int64(1) << np.arange(bits.shape[1], dtype=np.int64))
    table = np.bincount(key * n_classes + target, minlength=(1 << bits.shape[1]) * n_classes)
    return float(table.reshape(-1, n_classes).max(axis=1).sum() / len(target))


def fit_fidelity_thresholds(units: KernelUnits | np.ndarray, predictions: np.ndarray,
                            method: str = "infogain", *, candidates: int = 64,
                            rounds: int = 2, max_lookup_kernels: int = 16) -> Thresholds:
    """Per-kernel thresholds fitted for fidelity to ``predictions`` (module docstring).

    Parameters
    ----------
    units : KernelUnits or (images, kernels) array
        Real-valued units on any scale.
    predictions : (images,) int
        The network's predicted class per image.
    method : {"infogain", "lookup"}
    candidates : int
        Quantile candidates per kernel.
    rounds : int
        Coordinate-ascent rounds of ``"lookup"``.
    max_lookup_kernels : int
        Wider layers get ``"infogain"`` even when ``"lookup"`` is asked (recorded in
        ``params``).

    Raises
    ------
    ActivationError
        Empty or non-finite units, predictions of the wrong length or not class indices,
        an unknown method or a bad count.
    """
    vals = units.values if isinstance(units, KernelUnits) else np.asarray(units, dtype=float)
    if vals.ndim != 2 or vals.shape[0] == 0 or vals.shape[1] == 0:
        raise ActivationError(f"need a non-empty (images, kernels) matrix, got {vals.shape}")
    if not np.isfinite(vals).all():
        raise ActivationError("units contain NaN or infinity")
    target = np.asarray(predictions)
    if target.shape != (len(vals),) or not np.issubdtype(target.dtype, np.integer) or (
            target < 0).any():
        raise ActivationError(f"need one class index ≥ 0 per image: got {target.shape} "
                              f"for {len(vals)} images")
    if method not in FIDELITY_THRESHOLDS:
        raise ActivationError(f"unknown fidelity threshold {method!r}; choose from "
                              f"{FIDELITY_THRESHOLDS}")
    for name, value in (("candidates", candidates), ("rounds", rounds),
                        ("max_lookup_kernels", max_lookup_kernels)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ActivationError(f"{name} must be an integer ≥ 1, got {value!r}")
    n_classes = int(target.max()) + 1
    t = np.array([infogain_split(vals[:, j], target, n_classes, candidates)[0]
                  for j in range(vals.shape[1])])
    params: dict = {"candidates": candidates}
    used = method
    if method == "lookup" and vals.shape[1] > max_lookup_kernels:
        used = "infogain"
        params["lookup_skipped"] = f"{vals.shape[1]} kernels > {max_lookup_kernels}"
    if used == "lookup":
        bits = vals >= t[None, :]
        best = _lookup_fidelity(bits, target, n_classes)
        for _ in range(rounds):
            moved = False
            for j in range(vals.shape[1]):
                for s in candidate_splits(vals[:, j], candidates):
                    bits[:, j] = vals[:, j] >= s
                    fid = _lookup_fidelity(bits, target, n_classes)
                    if fid > best + 1e-12:
                        best, t[j], moved = fid, s, True
                bits[:, j] = vals[:, j] >= t[j]
            if not moved:
                break
        params.update({"rounds": rounds, "train_lookup_fidelity": round(best, 6)})
    return Thresholds(np.asarray(t, dtype=np.float64), used, params)
