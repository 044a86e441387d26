"""What the learned extractors (M-of-N, ERIC, chaining, pedagogical) share.

Input checking with one error type, default names for variables and heads, the
information-gain split used to binarise units, the majority class per observed code and
the conversion of a fitted scikit-learn decision tree into rules.

Example
-------
>>> import numpy as np
>>> split, gain = information_gain_split(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
>>> float(split), round(float(gain), 3)
(0.5, 0.693)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ExtractionError
from ..minimize import Term, espresso_cover
from ..rules import Head, Literal, Rule, Variable


def as_matrix(X: np.ndarray, what: str) -> np.ndarray:
    """``X`` as a finite 2-D float or bool array.

    Raises
    ------
    ExtractionError
        Not 2-D, empty, or with NaN/infinity.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ExtractionError(f"{what} must be a non-empty (samples, units) matrix, "
                              f"got shape {X.shape}")
    if X.dtype != bool:
        if not np.issubdtype(X.dtype, np.number):
            raise ExtractionError(f"{what} must be numeric or bool, got dtype {X.dtype}")
        X = X.astype(np.float64)
        if not np.isfinite(X).all():
            raise ExtractionError(f"{what} contain NaN or infinity")
    return X


def as_codes(X: np.ndarray, what: str = "codes") -> np.ndarray:
    """``X`` as a bool matrix; 0/1 numbers are accepted.

    Raises
    ------
    ExtractionError
        Not 2-D or not binary.
    """
    X = as_matrix(X, what)
    if X.dtype == bool:
        return X
    if not np.isin(X, (0.0, 1.0)).all():
        raise ExtractionError(f"{what} are not binary (values other than 0 and 1)")
    return X.astype(bool)


def as_target(y: np.ndarray | None, n_samples: int, n_classes: int | None = None,
              what: str = "y") -> np.ndarray:
    """Class indices, one per sample, in ``0..n_classes-1``.

    Raises
    ------
    ExtractionError
        Missing, wrong length, not integers or out of range.
    """
    if y is None:
        raise ExtractionError(f"{what} (one class index per sample) is required")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n_samples:
        raise ExtractionError(f"{what} must hold one class per sample: shape {y.shape} "
                              f"for {n_samples} samples")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ExtractionError(f"{what} must be integer class indices")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ExtractionError(f"{what} contains a negative class index")
    if n_classes is not None and y.size and y.max() >= n_classes:
        raise ExtractionError(f"{what} contains class {int(y.max())} but there are only "
                              f"{n_classes} classes")
    return y


def names_for(variables: Sequence[Variable] | None, heads: Sequence[Head] | None, n: int,
              n_heads: int, head_kind: str = "class") -> tuple[tuple[Variable, ...],
                                                               tuple[Head, ...]]:
    """The given names, or ``k1..kn`` and ``c0..`` (checked against the sizes).

    Raises
    ------
    ExtractionError
        The numbers of names do not match ``n`` / ``n_heads``.
    """
    variables = tuple(variables) if variables is not None else tuple(
        Variable(f"k{j + 1}", "", j) for j in range(n))
    heads = tuple(heads) if heads is not None else tuple(
        Head(f"c{c}", head_kind, "", c) for c in range(n_heads))
    if len(variables) != n:
        raise ExtractionError(f"{len(variables)} variable names for {n} inputs")
    if len(heads) != n_heads:
        raise ExtractionError(f"{len(heads)} head names for {n_heads} outputs")
    return variables, heads


def entropy(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of count vectors along the last axis (0 for empty rows)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(total > 0, counts / np.where(total > 0, total, 1), 0.0)
        logs = np.where(p > 0, np.log(np.where(p > 0, p, 1)), 0.0)
    return -(p * logs).sum(axis=-1)


def information_gain_split(values: np.ndarray, target: np.ndarray,
                           n_classes: int | None = None) -> tuple[float, float]:
    """The threshold on ``values`` that maximises the information gain about ``target``.

    Candidate thresholds are the midpoints between consecutive distinct values; a unit
    is 1 when its value is ``>=`` the threshold.  ``target`` is a class index per sample
    (the one-hot argmax of a softmax layer carries exactly this information).  Ties go to
    the lowest threshold, so the result is deterministic.  A constant unit gets the
    threshold just above its value (always 0) and gain 0.

    Returns
    -------
    (threshold, gain in nats)
    """
    values = np.asarray(values, dtype=np.float64)
    target = np.asarray(target, dtype=np.int64)
    k = int(n_classes if n_classes is not None else target.max() + 1)
    order = np.argsort(values, kind="stable")
    v, t = values[order], target[order]
    onehot = np.zeros((len(v), k))
    onehot[np.arange(len(v)), t] = 1.0
    left = np.cumsum(onehot, axis=0)  # counts of rows 0..i
    total = left[-1]
    # Only positions where the value changes are valid cut points (between i and i+1).
    cut = np.nonzero(v[1:] > v[:-1])[0]
    if len(cut) == 0:
        return float(v[-1]) + 1.0, 0.0
    lc = left[cut]
    rc = total[None, :] - lc
    n = len(v)
    nl = (cut + 1).astype(np.float64)
    gain = entropy(total) - (nl / n) * entropy(lc) - ((n - nl) / n) * entropy(rc)
    best = int(np.argmax(np.round(gain, 12)))
    i = cut[best]
    return float((v[i] + v[i + 1]) / 2.0), float(gain[best])


def majority_per_code(X: np.ndarray, y: np.ndarray, n_classes: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of ``X`` with their counts and majority ``y`` (ties: lower class).

    Returns
    -------
    codes : (distinct, n) bool, sorted (``np.unique`` order)
    counts : (distinct,) int
    majority : (distinct,) int
    """
    codes, inverse, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    table = np.zeros((len(codes), n_classes), dtype=np.int64)
    np.add.at(table, (inverse, y), 1)
    return codes, counts, table.argmax(axis=1)


def tree_leaf_terms(tree, n_features: int) -> list[tuple[Term, int, np.ndarray]]:
    """Every leaf of a fitted binary-feature CART tree as ``(term, node id, class counts)``.

    A split ``x_j <= 0.5`` sends the ``0`` branch left, so the left child adds ``¬x_j`` and
    the right child ``x_j``.  Leaves come in depth-first, left-first order.

    Raises
    ------
    ExtractionError
        A split threshold is not between 0 and 1 (the tree was not fitted on bits).
    """
    t = tree.tree_
    out: list[tuple[Term, int, np.ndarray]] = []
    stack: list[tuple[int, Term]] = [(0, ())]
    while stack:
        node, term = stack.pop()
        left, right = int(t.children_left[node]), int(t.children_right[node])
        if left == -1:
            out.append((tuple(sorted(term)), node, np.asarray(t.value[node][0])))
            continue
        j, thr = int(t.feature[node]), float(t.threshold[node])
        if not 0.0 <= thr < 1.0 or not 0 <= j < n_features:
            raise ExtractionError(f"tree split on feature {j} at {thr}: not a binary feature")
        # push right first so the left (negative) branch is emitted first
        stack.append((right, term + ((j, True),)))
        stack.append((left, term + ((j, False),)))
    return out


def term_rule(head: str, term: Term, variables: Sequence[Variable],
              min_true: int | None = None) -> Rule:
    """A :class:`Rule` from an index term."""
    return Rule(head, tuple(Literal(variables[v].name, bool(p)) for v, p in term), min_true)


def term_cover(term: Term, X: np.ndarray) -> np.ndarray:
    """Rows of the bool matrix ``X`` that satisfy the conjunction ``term``."""
    cover = np.ones(len(X), dtype=bool)
    for v, p in term:
        cover &= X[:, v] if p else ~X[:, v]
    return cover


def check_count(name: str, value: Any, *, optional: bool = False) -> None:
    """An extractor setting that must be an integer ≥ 1 (or None when ``optional``).

    Raises
    ------
    ExtractionError
        Naming the setting and the bad value.
    """
    if optional and value is None:
        return
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ExtractionError(f"{name} must be an integer ≥ 1, got {value!r}")


def check_tree_params(max_depth: int | None, min_samples_leaf: int) -> None:
    """Validate the CART settings the tree-based extractors pass to scikit-learn.

    Raises
    ------
    ExtractionError
        ``max_depth`` is not None or an integer ≥ 1, or ``min_samples_leaf`` < 1.
    """
    check_count("max_depth", max_depth, optional=True)
    check_count("min_samples_leaf", min_samples_leaf)


def most_frequent(counts: np.ndarray, limit: int) -> np.ndarray:
    """Bool mask of the ``limit`` largest ``counts``; ties go to the earlier entry."""
    keep = np.zeros(len(counts), dtype=bool)
    keep[np.argsort(-np.asarray(counts), kind="stable")[:limit]] = True
    return keep


def espresso_on_off(on: np.ndarray, off: np.ndarray, *, timeout: float = 60.0
                    ) -> list[Term] | None:
    """A small DNF true on every row of ``on``, false on every row of ``off``.

    Rows absent from both are don't-cares.  Returns None when espresso exceeds
    ``timeout`` seconds (it runs in a forked process for large inputs).

    Raises
    ------
    ExtractionError
        ``on`` and ``off`` share a row, or espresso itself fails.
    """
    on = np.asarray(on, dtype=bool)
    off = np.asarray(off, dtype=bool)
    n = on.shape[1] if on.ndim == 2 else off.shape[1]
    if len(on) == 0:
        return []
    if len(off) == 0:
        return [()]
    if len({r.tobytes() for r in np.packbits(on, axis=1)}
           & {r.tobytes() for r in np.packbits(off, axis=1)}):
        raise ExtractionError("a code is in both the ON- and the OFF-set")
    return espresso_cover(on, off, n, timeout=timeout)
