"""Measures over kernel evidence: selectivity margins, the choice of kinds, class profiles.

Plain numpy functions over response matrices (``R[k, j] = unit_k(e_j)``) and binarised
units, used by :mod:`cnn2logic.visual.evidence` (which defines the evidence kinds) and by
the benchmark (profile agreement between two halves of the data).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import VisualizationError

EVIDENCE_KINDS = ("patches", "smoothgrad", "actmax")


def selectivity_margins(response: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
    """``(R[k, k] - max_{j != k} R[k, j]) / spread[k]`` per kernel (+inf for one kernel).

    A NaN column ``j`` is a kernel without evidence of the kind (activation maximisation
    run for some kernels only): it is no competitor of the others, and its own margin is
    NaN.  A kernel whose every competitor is missing has margin +inf, as a single kernel.

    Parameters
    ----------
    response : ndarray (kernels, kernels)
        ``R[k, j] = unit_k(e_j)``; NaN where ``e_j`` is missing.
    spread : ndarray (kernels,), optional
        The scale of each unit (its standard deviation over the data); 1 when None.

    Returns
    -------
    ndarray (kernels,)
        Positive exactly where kernel ``k``'s evidence is selective; NaN where kernel
        ``k`` has no evidence of the kind.

    Raises
    ------
    VisualizationError
        ``response`` is not square.
    """
    r = np.asarray(response, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise VisualizationError(f"a response matrix is square, got shape {r.shape}")
    n = len(r)
    if n == 1:
        return np.array([np.inf])
    # a missing picture (NaN) drives no unit: it is left out of every kernel's "others"
    others = np.where(np.eye(n, dtype=bool) | np.isnan(r), -np.inf, r).max(axis=1)
    scale = np.ones(n) if spread is None else np.maximum(np.asarray(spread, float), 1e-12)
    return (np.diag(r) - others) / scale


def choose_kinds(responses: Mapping[str, np.ndarray], spread: np.ndarray, *,
                 passes: int = 4) -> tuple[str, ...]:
    """Per kernel, the evidence kind to show first: the choice that makes most kernels selective.

    What a kernel shows first also changes every *other* kernel's test (its evidence is one
    of the "others"), so the kinds are not chosen one kernel at a time by their own
    margins.  Start from the single kind selective for most kernels (ties:
    :data:`EVIDENCE_KINDS` order), then, kernel by kernel, switch a kernel to another kind
    when that raises the number of selective kernels of the mixed (displayed) matrix;
    repeat until no switch helps (at most ``passes`` rounds).  This is done from every
    kind as the start; the best result is kept (ties: the earlier start, so patches).
    A kernel is never given a kind it has no evidence of (its column all NaN, see
    :func:`selectivity_margins`); it starts from the first kind it has.

    Parameters
    ----------
    responses : mapping kind -> ndarray (kernels, kernels)
        NaN columns: kernels without evidence of that kind.
    spread : ndarray (kernels,)
    passes : int

    Returns
    -------
    tuple of str

    Raises
    ------
    VisualizationError
        No response matrix given.
    """
    kinds = [k for k in EVIDENCE_KINDS if k in responses]
    if not kinds:
        raise VisualizationError("no evidence kind to choose from")
    mats = {k: np.asarray(responses[k], dtype=np.float64) for k in kinds}
    # a kernel shown by a picture it does not have would only drop out of the others'
    # tests (raising their count): such a choice is not offered
    has = {k: ~np.isnan(m).all(axis=0) for k, m in mats.items()}

    def count(matrix: np.ndarray) -> int:
        return int((selectivity_margins(matrix, spread) > 0).sum())

    results = []
    for rank, start in enumerate(kinds):
        first = [start if has[start][j] else next((k for k in kinds if has[k][j]), start)
                 for j in range(len(mats[start]))]
        chosen, score = _improve(first, mats, kinds, count, passes, has)
        results.append((score, -rank, chosen))
    return tuple(max(results, key=lambda r: (r[0], r[1]))[2])


def _improve(chosen: list[str], mats: Mapping[str, np.ndarray], kinds: Sequence[str],
             count: Any, passes: int, has: Mapping[str, np.ndarray]
             ) -> tuple[list[str], int]:
    """Greedy switches of single kernels' kinds (among those they have) while the
    selective count rises."""
    shown = np.stack([mats[k][:, j] for j, k in enumerate(chosen)], axis=1)
    score = count(shown)
    for _ in range(passes):
        improved = False
        for j in range(len(chosen)):
            for kind in kinds:
                if kind == chosen[j] or not has[kind][j]:
                    continue
                trial = shown.copy()
                trial[:, j] = mats[kind][:, j]
                s = count(trial)
                if s > score:
                    shown, score, chosen[j], improved = trial, s, kind, True
        if not improved:
            break
    return chosen, score


def class_profile(bits: np.ndarray, units: np.ndarray, labels: np.ndarray, n_classes: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per kernel and class: share of the class's images with the bit on, mean unit.

    Parameters
    ----------
    bits, units : ndarray (images, kernels)
    labels : ndarray (images,), int in ``0..n_classes-1``
    n_classes : int

    Returns
    -------
    on_share, mean_unit : ndarray (kernels, classes)
        0 for a class without images.
    counts : ndarray (classes,)

    Raises
    ------
    VisualizationError
        Shapes that do not match or a label outside ``0..n_classes-1``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if bits.shape != units.shape or len(labels) != len(bits):
        raise VisualizationError("bits, units and labels must describe the same images")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise VisualizationError(f"labels must lie in 0..{n_classes - 1}")
    onehot = np.zeros((len(labels), n_classes))
    onehot[np.arange(len(labels)), labels] = 1.0
    counts = onehot.sum(axis=0)
    denom = np.maximum(counts, 1.0)
    on = (bits.astype(np.float64).T @ onehot) / denom
    mean = (units.astype(np.float64).T @ onehot) / denom
    return on, mean, counts.astype(np.int64)


def profile_agreement(a: np.ndarray, b: np.ndarray, top: int = 3) -> dict[str, Any]:
    """How alike two class profiles of the same kernels are (e.g. training vs test half).

    Parameters
    ----------
    a, b : ndarray (kernels, classes)
        On-shares (:attr:`KernelEvidence.on_share`) from two data sets.
    top : int
        How many of each kernel's most frequent classes are compared as a set.

    Returns
    -------
    dict
        ``correlation`` per kernel (Pearson over classes; 1 when both are constant and
        equal), its mean and minimum, ``same_top`` (share of kernels whose ``top`` classes
        agree as sets) and ``mean_abs_difference``.

    Raises
    ------
    VisualizationError
        The profiles differ in shape.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 2:
        raise VisualizationError(f"profiles of shapes {a.shape} and {b.shape} differ")
    ca, cb = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    den = np.linalg.norm(ca, axis=1) * np.linalg.norm(cb, axis=1)
    same = np.isclose(a, b, atol=1e-9).all(axis=1)
    corr = np.where(den > 0, (ca * cb).sum(axis=1) / np.maximum(den, 1e-300),
                    np.where(same, 1.0, 0.0))
    k = min(top, a.shape[1])
    ta = np.argsort(-a, axis=1, kind="stable")[:, :k]
    tb = np.argsort(-b, axis=1, kind="stable")[:, :k]
    same_top = [set(x) == set(y) for x, y in zip(ta.tolist(), tb.tolist())]
    return {"correlation": [round(float(c), 4) for c in corr],
            "correlation_mean": round(float(corr.mean()), 4),
            "correlation_min": round(float(corr.min()), 4),
            "same_top": round(float(np.mean(same_top)), 4), "top": k,
            "mean_abs_difference": round(float(np.abs(a - b).mean()), 4)}
