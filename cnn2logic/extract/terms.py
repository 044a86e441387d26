"""The term searches of the approximation method (the extractor is in ``approximation``).

Every guarantee the method checks is a set of linear conditions ``base + Σ gains ≥ 0``
(:class:`LinearConditions`, built by :func:`class_conditions`); :func:`pruned_terms`
(branch and bound) and :func:`naive_terms` (every combination) list their prime terms,
:func:`truth_table` rounds every vertex of the cube, and :func:`data_limited_terms` takes
the worst case over observed codes only.  Values at exact ties are decided again in exact
arithmetic (:func:`sound_terms`, :func:`exact_round`), so no term holds by rounding alone.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ExtractionError
from ..minimize import Term

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


def exact_round(Z: np.ndarray, X: np.ndarray, W: np.ndarray, b: np.ndarray, mode: str
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
    return exact_round(V.astype(np.float64) @ W.T + b[None, :], V, W, b, mode)


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
