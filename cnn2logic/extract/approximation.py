"""Tsukimoto's approximation method: Boolean rules from a linear (softmax) layer.

The layer is ``z = W x + b`` over binary kernel units ``x ∈ {0, 1}^n``.  A product term
``T`` (a set of literals) is kept when it guarantees the unit's rounded output for *every*
value of the variables it leaves free (the paper's worst-case condition).  Every such
guarantee here has the same shape: a set of linear conditions

    base_k + Σ_{l ∈ T} gain_k(l)  ≥ 0   (or > 0)     for every condition k,

where ``base_k`` is the condition's worst case with all variables free and
``gain_k(l) ≥ 0`` is what fixing literal ``l`` recovers.  Two output treatments:

``mode="per-logit"``
    One condition per class: ``sigmoid(z_c) ≥ 0.5``, i.e. ``z_c ≥ 0`` (one-vs-rest), the
    original method applied to each logit.  A variable only ever appears with the polarity
    of its weight (the unit is unate), so ``gain(x_j) = max(0, w_cj)`` and
    ``gain(¬x_j) = max(0, -w_cj)``.
``mode="argmax"`` (argmax-sound, the default)
    ``C - 1`` conditions per class: ``z_c - z_k > 0`` for every other class ``k``.  A term
    kept in this mode makes ``c`` the strict arg-max for every completion, so two classes'
    terms can never fire together.  Both polarities of a variable can be useful here.

Searches, all returning the **prime** implicants of order ``≤ order`` (no kept term
contains another kept term):

``"pruned"`` (the implementation of record)
    Depth-first over candidate literals sorted by how much they recover, with a branch and
    bound: a partial term is extended only while every condition can still be met by the
    best ``r`` remaining literals (suffix top-``r`` sums).  A term that meets all
    conditions is accepted and not extended.
``"naive"``
    Every combination of order ``1..order``, checked in turn; the O(n^k) baseline.
``"truth-table"``
    The exact exponential method: round every vertex of the cube, then minimise the truth
    table with espresso.  Feasible up to about 20 variables; the reference.

This module also holds the method's side of the extraction driver (:func:`prepare`), so
it runs a little past the usual ~500 lines: the searches and their extractor stay
together.

``data_limited=True`` is the variant that takes the worst case over the training codes a
term covers instead of the whole cube (a term must cover at least ``min_support`` codes).

Example
-------
>>> import numpy as np
>>> W = np.array([[2.0, -2.0], [-2.0, 2.0]]); b = np.array([0.0, 0.0])
>>> ext = ApproximationExtractor(order=2).fit(output=(W, b))
>>> [str(r) for r in ext.rules_.rules]
['c0 ← k1 ∧ ¬k2', 'c1 ← k2 ∧ ¬k1']
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ExtractionError
from ..evaluate import binarized_network_accuracy, rank_rules
from ..minimize import Term, espresso_truth_table
from ..rules import Head, Literal, Rule, RuleSet, Variable
from ..units import check_binary, codes_for
from .base import Extractor, Method, Outcome, Prepared, register
from .config import MODES, SEARCHES, ApproximationSettings
from .layers import ModelInputs, output_layer, thresholds_meta

TRUTH_TABLE_MAX_VARS = 20



def default_order(n: int) -> int:
    """The order ``k`` used when none is given: all ``n`` variables up to 12, else 3."""
    return n if n <= 12 else 3


@dataclass(frozen=True)
class LinearConditions:
    """``base + Σ gains[chosen] (>|≥) 0`` for every column; one per class.

    ``gains`` is (candidates, conditions), candidates sorted best first; ``var`` and
    ``positive`` say which literal each candidate is.
    """

    gains: np.ndarray
    base: np.ndarray
    var: np.ndarray
    positive: np.ndarray
    strict: bool

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Row-wise: does every condition hold for these (rows, conditions) values?"""
        return (values > 0).all(axis=-1) if self.strict else (values >= 0).all(axis=-1)


def class_conditions(W: np.ndarray, b: np.ndarray, c: int, mode: str) -> LinearConditions:
    """The linear conditions a term must meet to imply class ``c``."""
    if mode == "per-logit":
        D = W[c:c + 1]
        offset = b[c:c + 1]
        strict = False
    else:
        others = np.array([k for k in range(W.shape[0]) if k != c], dtype=int)
        D = W[c][None, :] - W[others]
        offset = b[c] - b[others]
        strict = True
    base = offset + np.minimum(D, 0.0).sum(axis=1)
    pos_gain = np.maximum(D, 0.0).T  # (n, K)
    neg_gain = np.maximum(-D, 0.0).T
    n = W.shape[1]
    gains = np.concatenate([pos_gain, neg_gain])
    var = np.concatenate([np.arange(n), np.arange(n)])
    positive = np.concatenate([np.ones(n, bool), np.zeros(n, bool)])
    useful = gains.max(axis=1) > 0  # a literal that recovers nothing is never in a prime term
    gains, var, positive = gains[useful], var[useful], positive[useful]
    # Best first: by the recovery on the hardest condition, then the total; ties by literal.
    key = np.lexsort((positive, var, -gains.sum(axis=1), -gains.min(axis=1)))
    return LinearConditions(gains[key], base, var[key], positive[key], strict)


def _suffix_top(gains: np.ndarray, r_max: int) -> list[np.ndarray]:
    """``out[r][i]`` = per condition, sum of the ``r`` largest gains among rows ``i..``."""
    L, K = gains.shape
    if K == 1:
        # One condition: rows are sorted by that gain, so the r largest of a suffix are
        # simply its first r rows.
        padded = np.concatenate([gains[:, 0], np.zeros(r_max)])
        csum = np.concatenate([[0.0], np.cumsum(padded)])
        out = [np.zeros((L + 1, 1)) for _ in range(r_max + 1)]
        for r in range(1, r_max + 1):
            i = np.arange(L + 1)
            out[r][:, 0] = csum[np.minimum(i + r, len(padded))] - csum[i]
        return out
    top = np.zeros((r_max, K))  # running top-r values, descending per column
    out = [np.zeros((L + 1, K)) for _ in range(r_max + 1)]
    for i in range(L - 1, -1, -1):
        g = gains[i]
        # insert g into the sorted column lists (descending) of length r_max
        merged = np.vstack([top, g[None, :]])
        merged = -np.sort(-merged, axis=0)[:r_max]
        top = merged
        csum = np.cumsum(top, axis=0)
        for r in range(1, r_max + 1):
            out[r][i] = csum[r - 1]
    return out


def argmax_probably_infeasible(W: np.ndarray, b: np.ndarray, c: int, order: int,
                               probe: np.ndarray) -> bool:
    """True when some condition ``z_c > z_k`` (``k`` in ``probe``) cannot be met by any term
    of ``order`` literals; a cheap, exact pre-check that spares building all conditions."""
    probe = probe[probe != c]
    if len(probe) == 0:
        return False
    D = W[c][None, :] - W[probe]
    base = b[c] - b[probe] + np.minimum(D, 0.0).sum(axis=1)
    r = min(order, D.shape[1])
    best = -np.partition(-np.abs(D), r - 1, axis=1)[:, :r].sum(axis=1)
    return bool((base + best <= 0).any())


def pruned_terms(cond: LinearConditions, order: int) -> list[Term]:
    """Prime implicants of order ≤ ``order`` by branch and bound (see module docstring)."""
    if cond.holds(cond.base[None, :])[0]:
        return [()]  # constant true
    L = len(cond.gains)
    if L == 0 or order < 1:
        return []
    suffix = _suffix_top(cond.gains, order)
    if not cond.holds((cond.base + suffix[order][0])[None, :])[0]:
        return []  # even the best `order` literals cannot meet some condition
    G, var = cond.gains, cond.var
    found: list[tuple[int, ...]] = []
    stack: list[tuple[tuple[int, ...], np.ndarray, int]] = [((), cond.base, 0)]
    while stack:
        chosen, value, start = stack.pop()
        if start >= L:
            continue
        cand = np.arange(start, L)
        if chosen:
            used = var[list(chosen)]
            cand = cand[~np.isin(var[cand], used)]
            if len(cand) == 0:
                continue
        child_values = value[None, :] + G[cand]
        ok = cond.holds(child_values)
        for j in cand[ok]:
            term = chosen + (int(j),)
            if _is_prime(cond, term, value + G[j]):
                found.append(term)
        slots_after = order - len(chosen) - 1
        if slots_after <= 0:
            continue
        ext = cand[~ok]
        if len(ext) == 0:
            continue
        reach = child_values[~ok] + suffix[slots_after][ext + 1]
        alive = ext[cond.holds(reach)]
        # push in reverse so the stack pops in candidate order (deterministic, best first)
        for j in alive[::-1]:
            stack.append((chosen + (int(j),), value + G[j], int(j) + 1))
    return [_to_literals(cond, t) for t in found]


def naive_terms(cond: LinearConditions, order: int, chunk: int = 65_536) -> list[Term]:
    """Prime implicants of order ≤ ``order`` by checking every combination (baseline).

    Vectorised over chunks of combinations so that the comparison with the pruned search
    measures the search strategy, not Python overhead.
    """
    if cond.holds(cond.base[None, :])[0]:
        return [()]
    found: list[Term] = []
    L = len(cond.gains)
    for size in range(1, order + 1):
        combos = itertools.combinations(range(L), size)
        while True:
            block = list(itertools.islice(combos, chunk))
            if not block:
                break
            idx = np.array(block, dtype=np.int64).reshape(len(block), size)
            vars_ = np.sort(cond.var[idx], axis=1)
            distinct = (np.diff(vars_, axis=1) != 0).all(axis=1)
            values = cond.base[None, :] + cond.gains[idx].sum(axis=1)
            ok = distinct & cond.holds(values)
            if size > 1 and ok.any():
                # prime: dropping any one literal breaks some condition
                without = values[ok][:, None, :] - cond.gains[idx[ok]]
                prime = ~cond.holds(without).any(axis=1)
                ok[np.flatnonzero(ok)[~prime]] = False
            found.extend(_to_literals(cond, row) for row in idx[ok])
    return found


def _is_prime(cond: LinearConditions, term: Sequence[int], value: np.ndarray) -> bool:
    # Implicant-ness is monotone in the literal set, so checking the terms with one
    # literal removed is enough.
    if len(term) == 1:
        return True
    without = value[None, :] - cond.gains[list(term)]
    return not cond.holds(without).any()


def _to_literals(cond: LinearConditions, term: Sequence[int]) -> Term:
    return tuple(sorted((int(cond.var[j]), bool(cond.positive[j])) for j in term))


# -- exact checks at ties ------------------------------------------------------------
# The searches compare float sums with 0.  Where a worst case is exactly 0 (a tie), rounding
# can make it 8e-17 and accept an unsound term (issue: W = [[0,0,0],[0.1,0.4,0.2]]).  Every
# value within TIE_MARGIN (relative to the weights' magnitude) of 0 is therefore decided
# again exactly: math.fsum returns the correctly rounded sum of the float64 inputs, so its
# sign is the sign of the exact sum.  Values farther from 0 than any rounding error can
# reach are decided by the float comparison as before.
TIE_MARGIN = 1e-9


def class_terms(W: np.ndarray, b: np.ndarray, c: int, mode: str, search: str, order: int
                ) -> list[Term]:
    """The sound prime terms of order ≤ ``order`` for class ``c`` ("pruned" or "naive").

    The one per-class search both :class:`ApproximationExtractor` and
    :func:`cnn2logic.extract.parts.extract_part` run, ties decided exactly
    (:func:`sound_terms`).
    """
    search_fn = pruned_terms if search == "pruned" else naive_terms
    return sound_terms(W, b, c, mode, search_fn(class_conditions(W, b, c, mode), order))


def _scale(W: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(W).sum(axis=1).max(initial=0.0) + np.abs(b).max(initial=0.0) + 1e-300)


def _exact_sign(parts: Sequence[float]) -> int:
    total = math.fsum(parts)
    return (total > 0) - (total < 0)


def _exact_difference(W: np.ndarray, b: np.ndarray, x: np.ndarray, c: int, k: int | None
                      ) -> int:
    """Exact sign of ``z_c(x) - z_k(x)`` (``k=None``: of ``z_c(x)``) at a vertex ``x``."""
    on = np.flatnonzero(x)
    parts = [float(b[c]), *map(float, W[c, on])]
    if k is not None:
        parts += [-float(b[k]), *(-W[k, on]).tolist()]
    return _exact_sign(parts)


def exactly_implies(W: np.ndarray, b: np.ndarray, c: int, mode: str, term: Term) -> bool:
    """Whether ``term`` makes class ``c`` hold for every completion, in exact arithmetic.

    ``argmax``: ``z_c > z_k`` for every other ``k``; ``per-logit``: ``z_c ≥ 0``.  The worst
    completion sets each free variable against ``c``; which way that is is decided by an
    exact float comparison, and the sum by :func:`math.fsum`.
    """
    n = W.shape[1]
    fixed = {j: pos for j, pos in term}
    free = np.array([j for j in range(n) if j not in fixed], dtype=int)
    on = np.array([j for j, pos in fixed.items() if pos], dtype=int)
    if mode == "per-logit":
        worst = free[W[c, free] < 0]
        parts = [float(b[c]), *W[c, on].tolist(), *W[c, worst].tolist()]
        return _exact_sign(parts) >= 0
    for k in range(W.shape[0]):
        if k == c:
            continue
        worst = free[W[c, free] < W[k, free]]
        cols = np.concatenate([on, worst])
        parts = [float(b[c]), -float(b[k]), *W[c, cols].tolist(), *(-W[k, cols]).tolist()]
        if _exact_sign(parts) <= 0:
            return False
    return True


def sound_terms(W: np.ndarray, b: np.ndarray, c: int, mode: str, terms: Sequence[Term]
                ) -> list[Term]:
    """``terms`` without those that only hold through rounding (see :data:`TIE_MARGIN`).

    A term whose float worst case clears every condition by more than the margin is kept
    as is; the others are decided by :func:`exactly_implies`.
    """
    if not terms:
        return list(terms)
    margin = TIE_MARGIN * _scale(W, b)
    kept = []
    for term in terms:
        if _worst_case_margin(W, b, c, mode, term) > margin or exactly_implies(W, b, c, mode, term):
            kept.append(term)
    return kept


def _worst_case_margin(W: np.ndarray, b: np.ndarray, c: int, mode: str, term: Term) -> float:
    x_fixed = np.zeros(W.shape[1])
    free = np.ones(W.shape[1], bool)
    for j, pos in term:
        x_fixed[j] = 1.0 if pos else 0.0
        free[j] = False
    if mode == "per-logit":
        D, offset = W[c:c + 1], b[c:c + 1]
    else:
        others = np.array([k for k in range(W.shape[0]) if k != c], dtype=int)
        D, offset = W[c][None, :] - W[others], b[c] - b[others]
    value = offset + D @ x_fixed + np.minimum(D[:, free], 0.0).sum(axis=1)
    return float(value.min()) if len(value) else float("inf")


def _exact_ties(Z: np.ndarray, X: np.ndarray, W: np.ndarray, b: np.ndarray, mode: str
                ) -> np.ndarray:
    """The rounded unit per row of ``X`` (``Z = X W^T + b``), ties decided exactly."""
    margin = TIE_MARGIN * _scale(W, b)
    if mode == "per-logit":
        out = Z >= 0
        for r, c in zip(*np.nonzero(np.abs(Z) <= margin)):
            out[r, c] = _exact_difference(W, b, X[r], int(c), None) >= 0
        return out
    C = Z.shape[1]
    out = np.zeros_like(Z, dtype=bool)
    for c in range(C):
        others = np.delete(Z, c, axis=1)
        out[:, c] = (Z[:, [c]] > others).all(axis=1)
        near = np.flatnonzero((np.abs(Z[:, [c]] - others) <= margin).any(axis=1))
        for r in near:
            out[r, c] = all(_exact_difference(W, b, X[r], c, k) > 0 for k in range(C) if k != c)
    return out


def vertices(n: int) -> np.ndarray:
    """All ``2^n`` points of the Boolean cube as a (2^n, n) bool matrix (x1 is the MSB)."""
    if n > TRUTH_TABLE_MAX_VARS:
        raise ExtractionError(
            f"truth table over {n} variables is too large (limit {TRUTH_TABLE_MAX_VARS})"
        )
    idx = np.arange(2 ** n, dtype=np.int64)
    return ((idx[:, None] >> np.arange(n - 1, -1, -1)) & 1).astype(bool)


def truth_table(W: np.ndarray, b: np.ndarray, mode: str = "argmax") -> np.ndarray:
    """The rounded unit on every vertex: (2^n, classes) bool (the exact method).

    ``per-logit``: ``z_c ≥ 0``; ``argmax``: ``z_c`` strictly larger than every other logit.
    """
    V = vertices(W.shape[1])
    return _exact_ties(V.astype(np.float64) @ W.T + b[None, :], V, W, b, mode)


def data_limited_terms(cond_ok: np.ndarray, codes: np.ndarray, counts: np.ndarray,
                       candidates: Sequence[tuple[int, bool]], order: int,
                       min_support: int) -> list[Term]:
    """Minimal terms whose covered codes all satisfy the unit's condition.

    ``codes`` are the distinct observed codes (rows), ``counts`` how often each occurs,
    ``cond_ok`` whether the rounded unit is on for each.  A term is kept when it covers at
    least ``min_support`` observations and no covered code violates the condition.
    """
    lit_cover = np.stack([codes[:, v] if p else ~codes[:, v] for v, p in candidates]) \
        if candidates else np.zeros((0, len(codes)), bool)
    found: list[tuple[int, ...]] = []
    bad = ~cond_ok

    def accepted(cover: np.ndarray) -> bool:
        return counts[cover].sum() >= min_support and not (cover & bad).any()

    stack: list[tuple[tuple[int, ...], np.ndarray]] = [((), np.ones(len(codes), bool))]
    if accepted(stack[0][1]):
        return [()]
    while stack:
        chosen, cover = stack.pop()
        start = chosen[-1] + 1 if chosen else 0
        used = {candidates[j][0] for j in chosen}
        children = []
        for j in range(start, len(candidates)):
            if candidates[j][0] in used:
                continue
            c2 = cover & lit_cover[j]
            if counts[c2].sum() < min_support:
                continue  # supersets cover no more
            term = chosen + (j,)
            if accepted(c2):
                if all(not accepted(_cover_of(lit_cover, term[:i] + term[i + 1:], len(codes)))
                       for i in range(len(term))):
                    found.append(term)
            elif len(term) < order:
                children.append((term, c2))
        stack.extend(reversed(children))
    return [tuple(sorted(candidates[j] for j in t)) for t in found]


def _cover_of(lit_cover: np.ndarray, term: Sequence[int], n: int) -> np.ndarray:
    cover = np.ones(n, bool)
    for j in term:
        cover &= lit_cover[j]
    return cover


class ApproximationExtractor(Extractor):
    """Rules for each output class of a linear layer over binary kernel units.

    Parameters
    ----------
    order : int or None
        Largest number of literals in a term (``k``).  None: all variables when there are
        at most 12, else 3.
    mode : {"argmax", "per-logit"}
        Softmax treatment (module docstring).
    search : {"pruned", "naive", "truth-table"}
    data_limited : bool
        Worst case over the training codes a term covers instead of over the cube;
        needs ``X`` in :meth:`fit`.
    min_support : int
        With ``data_limited``: the fewest training codes a term must cover.
    max_terms : int or None
        Keep at most this many terms per class, best ranked first (ranking below); the
        number dropped is recorded in ``stats_``.
    progress : bool
        A progress bar over the classes during :meth:`fit`.

    Attributes
    ----------
    rules_ : RuleSet
        All kept terms, ranked: by precision on the training codes against ``y`` (when
        ``X``, ``y`` were given), then support, then fewer literals; else by fewer literals.
    terms_ : dict[str, list[Term]]
        The raw terms per class as ``(variable index, polarity)`` tuples.
    stats_ : dict
        Seconds, term counts, truncation per class.

    Raises
    ------
    ExtractionError
        Bad settings, or weights/codes of inconsistent shapes.
    """

    def __init__(self, order: int | None = None, mode: str = "argmax", search: str = "pruned",
                 data_limited: bool = False, min_support: int = 1,
                 max_terms: int | None = None, progress: bool = False) -> None:
        if order is not None and (not isinstance(order, (int, np.integer)) or order < 1):
            raise ExtractionError(f"order k must be an integer ≥ 1, got {order!r}")
        if mode not in MODES:
            raise ExtractionError(f"unknown mode {mode!r}; choose from {MODES}")
        if search not in SEARCHES:
            raise ExtractionError(f"unknown search {search!r}; choose from {SEARCHES}")
        if data_limited and search == "truth-table":
            raise ExtractionError("data_limited works with the pruned or naive search only")
        if min_support < 1:
            raise ExtractionError(f"min_support must be ≥ 1, got {min_support}")
        if max_terms is not None and max_terms < 1:
            raise ExtractionError(f"max_terms must be ≥ 1, got {max_terms}")
        self.order = order
        self.mode = mode
        self.search = search
        self.data_limited = data_limited
        self.min_support = min_support
        self.max_terms = max_terms
        self.progress = progress

    def get_params(self) -> dict:
        """The extraction settings (not ``progress``), as stored in the rules' meta."""
        return {"order": self.order, "mode": self.mode, "search": self.search,
                "data_limited": self.data_limited, "min_support": self.min_support,
                "max_terms": self.max_terms}

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None, *,
            output: tuple[np.ndarray, np.ndarray] | None = None,
            variables: Sequence[Variable] | None = None,
            heads: Sequence[Head] | None = None) -> "ApproximationExtractor":
        """Extract the terms of every class.

        Parameters
        ----------
        X : (samples, n) bool array, optional
            Binarised training codes: ranking, and required with ``data_limited``.
        y : (samples,) int array, optional
            Class index per row of ``X`` to rank terms by precision (normally the
            network's own predictions, so ranking follows fidelity).
        output : (weight, bias)
            The linear layer: ``(classes, n)`` weights and ``(classes,)`` bias (required).
        variables, heads : optional
            Names for the inputs and classes (default ``k1..kn`` and ``c0..``).

        Returns
        -------
        ApproximationExtractor
            ``self``.

        Raises
        ------
        ExtractionError
            No ``output``, or weights, bias and codes of inconsistent shapes.
        """
        if output is None:
            raise ExtractionError("the approximation method needs output=(weight, bias)")
        W = np.asarray(output[0], dtype=np.float64)
        b = np.asarray(output[1], dtype=np.float64)
        if W.ndim != 2 or b.shape != (W.shape[0],):
            raise ExtractionError(
                f"weight must be (classes, inputs) and bias (classes,); got {W.shape}, {b.shape}"
            )
        if not np.isfinite(W).all() or not np.isfinite(b).all():
            raise ExtractionError("weights or bias contain NaN or infinity")
        C, n = W.shape
        if self.mode == "argmax" and C < 2:
            raise ExtractionError("argmax mode needs at least two classes")
        variables = tuple(variables) if variables is not None else tuple(
            Variable(f"k{j + 1}", "", j) for j in range(n))
        heads = tuple(heads) if heads is not None else tuple(Head(f"c{c}", "class", "", c)
                                                             for c in range(C))
        if len(variables) != n or len(heads) != C:
            raise ExtractionError(
                f"{len(variables)} variable names for {n} inputs, {len(heads)} heads for {C} classes"
            )
        if X is not None:
            X = check_binary(X, "training codes")
            if X.shape[1] != n:
                raise ExtractionError(f"codes have {X.shape[1]} columns, the layer {n} inputs")
        if y is not None and (X is None or len(y) != len(X)):
            raise ExtractionError("y needs X with one class per row")
        if self.data_limited and X is None:
            raise ExtractionError("data_limited extraction needs the training codes X")
        order = self.order if self.order is not None else default_order(n)
        order = min(order, n)
        start = time.perf_counter()
        terms: dict[str, list[Term]] = {}
        classes = range(C)
        if self.progress:
            from tqdm import tqdm  # only for the progress bar

            classes = tqdm(classes, desc="extract", unit="class", leave=False)
        if self.search == "truth-table":
            if self.order is not None and self.order < n:
                warnings.warn("truth-table search returns the exact function; order is ignored",
                              stacklevel=2)
            tables = truth_table(W, b, self.mode)
        if self.data_limited:
            uniq, counts = np.unique(X, axis=0, return_counts=True)
            rounded = _exact_ties(uniq.astype(np.float64) @ W.T + b[None, :], uniq, W, b,
                                  self.mode)
        # The classes whose logits are hardest to beat: the conditions most likely to
        # rule a class out, probed first.
        probe = np.argsort(-(b + np.maximum(W, 0.0).sum(axis=1)), kind="stable")[:33]
        for c in classes:
            name = heads[c].name
            if self.search == "truth-table":
                terms[name] = espresso_truth_table(tables[:, c], n)
            elif self.data_limited:
                ok = rounded[:, c]
                if self.mode == "per-logit":
                    cands = [(j, W[c, j] > 0) for j in range(n) if W[c, j] != 0]
                else:
                    cands = [(j, p) for j in range(n) for p in (True, False)]
                terms[name] = data_limited_terms(ok, uniq, counts, cands, order,
                                                 self.min_support)
            else:
                if self.mode == "argmax" and C > 33 and argmax_probably_infeasible(
                        W, b, c, order, probe):
                    terms[name] = []
                    continue
                terms[name] = class_terms(W, b, c, self.mode, self.search, order)
        seconds = time.perf_counter() - start
        self.terms_ = {k: sorted(v) for k, v in terms.items()}
        self.stats_ = {"seconds": seconds, "order": order,
                       "terms_found": {k: len(v) for k, v in self.terms_.items()}}
        self.rules_ = self._ranked_rules(variables, heads, X, y)
        self.weight_, self.bias_ = W, b
        return self

    def _ranked_rules(self, variables, heads, X, y) -> RuleSet:
        names = [v.name for v in variables]
        raw = RuleSet(tuple(variables), tuple(heads), tuple(
            Rule(head, tuple(Literal(names[v], p) for v, p in t))
            for head, tlist in self.terms_.items() for t in tlist),
            None, {"method": "approximation", "settings": self.get_params()})
        ranked = rank_rules(raw, X, y, default=None)
        dropped: dict[str, int] = {}
        if self.max_terms is not None:
            kept, seen = [], Counter()
            for rule in ranked.rules:
                seen[rule.head] += 1
                if seen[rule.head] <= self.max_terms:
                    kept.append(rule)
                else:
                    dropped[rule.head] = dropped.get(rule.head, 0) + 1
            ranked = ranked.replace(rules=tuple(kept))
        self.stats_["truncated"] = dropped
        return ranked


def prepare(inputs: ModelInputs) -> Prepared:
    """The driver's capture step: the pipeline's thresholds on ``config.layer``.

    Raises
    ------
    ModelError
        The output layer does not read the captured units.
    """
    config, model = inputs.config, inputs.model
    classes = inputs.class_names or inputs.data.train.classes
    train_codes, _, thresholds = codes_for(
        model, config.layer, inputs.data.train, threshold_method=config.threshold,
        reduce=config.reduce, progress=inputs.progress, class_names=classes, id_prefix="train")
    test_codes, _, _ = codes_for(model, config.layer, inputs.data.test, thresholds,
                                 reduce=config.reduce, progress=inputs.progress,
                                 class_names=classes)
    W, b = output_layer(model, config.output, len(train_codes.variables))
    if W.shape[0] != len(classes):
        classes = tuple(str(c) for c in range(W.shape[0]))
    heads = tuple(Head(name, "class", config.output, i) for i, name in enumerate(classes))
    extractor = ApproximationExtractor(order=config.order, mode=config.mode,
                                       search=config.search, data_limited=config.data_limited,
                                       min_support=config.min_support,
                                       max_terms=config.max_terms, progress=inputs.progress)

    def finish(ext: ApproximationExtractor) -> Outcome:
        # Ranked against the network's predictions, so ranking follows fidelity.
        unminimized = rank_rules(ext.rules_, train_codes.bits, train_codes.predictions)
        return Outcome(
            unminimized, train_codes, test_codes, train_codes.predictions, "auto",
            binarized_network_accuracy(W, b, test_codes.bits, test_codes.labels)[0],
            thresholds_meta(thresholds), settings={"order_used": ext.stats_["order"]},
            meta={"truncated": ext.stats_["truncated"]})

    return Prepared(extractor, {"X": train_codes.bits, "y": train_codes.predictions,
                                "output": (W, b), "variables": train_codes.variables,
                                "heads": heads}, finish)


register(Method("approximation", ApproximationExtractor, ApproximationSettings, prepare,
                "the paper's"))
