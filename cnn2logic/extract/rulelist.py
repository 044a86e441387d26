"""A compact decision list with conjunction and M-of-N rules, fitted to the network.

The program is an **ordered list** of rules, each a conjunction of literals or an M-of-N
threshold over them, ending in a default class: the prediction is the head of the first
satisfied rule (exactly :class:`~cnn2logic.rules.RuleSet`'s semantics, so every exporter
and query reads it).  An earlier rule is an exception to the later ones, which is what
ASP and Prolog state with ordered clauses / negation as failure.

The learner works on the **distinct codes** with a class-count table (the network's
predictions, optionally weighted), so it costs the same for 50,000 images with 700
distinct codes as for 700 images.  Three stages, all deterministic:

1. **Construction** (sequential covering).  With ``G[s, c]`` the change in training
   fidelity when code ``s`` moves from the current default class to ``c``, minus
   ``alpha`` times the images of ``s`` that ``c`` gets wrong (a look-ahead: an error
   made now cannot be repaired by a later rule), each step adds the rule of largest
   ``sum G[cover, head] - literal_cost * literals`` among

   * conjunctions, found by a beam search (``beam`` bodies per depth, up to
     ``max_depth`` literals, bodies pruned by the optimistic bound ``sum max(G, 0)``);
   * M-of-N rules per class: literals ranked by how much more often they hold for the
     class than for the rest of the uncovered images, every ``1 <= M <= N <= max_n``
     scored at once from a histogram (the linear read-out of a wide layer that
     conjunctions miss).

   The default is re-chosen after each step (the majority of what is left).
2. **Revision**: each rule in turn is taken out and the best rule for its place is
   searched with the exact gain (``alpha = 0``, later rules and the default held fixed);
   it replaces the old one when it is strictly better, a rule with no gain is dropped,
   and freed budget is spent on new rules at the end.  Up to ``passes`` rounds.
3. **Curve**: every prefix of the list with its best default is itself a program; their
   sizes and training fidelities are ``curve_``, so a user can pick a smaller point.

The ``alphas`` knob runs construction for each value and keeps the most faithful result
on the training codes (ties: the first).  Finally rules, then literals, whose removal
costs no training fidelity are dropped, and a rule moved earlier is kept when that makes
a rule between redundant (how a planted exception-first list is recovered exactly).

The module is longer than the usual ~500 lines on purpose: it is one learner whose
stages share the same per-code tables (literal truth, class counts, cover cache);
splitting it would pass those arrays between modules for no reader's benefit.

Example
-------
>>> import numpy as np
>>> X = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=bool)
>>> y = np.where(X[:, 0] & X[:, 1], 0, np.where(X[:, 2], 1, 2))   # planted list
>>> ext = RuleListExtractor(max_rules=4).fit(X, y, variables=["a", "b", "c"],
...                                          heads=["p", "q", "r"])
>>> [str(r) for r in ext.rules_.rules], ext.rules_.default
(['p ← a ∧ b', 'r ← ¬c'], 'q')
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import ExtractionError, NotFittedError
from ..model.logic_head import embedded_program
from ..rules import Head, Literal, Rule, RuleSet, Variable
from ..units import auto_binarisation
from ._common import as_codes, as_target, check_count
from .base import Extractor, Method, Outcome, Prepared, register
from .config import Settings, at_least_one, setting
from .layers import ModelInputs, binarise, bits_fit_args, learned_outcome


RANKINGS = ("auto", "contrast", "linear")
#: ``ranking="auto"`` ranks M-of-N literals by a linear read-out above this many kernels
#: (measured: +0.016 test fidelity on 128 kernels; on 10 kernels the contrast is enough).
LINEAR_RANKING_FROM = 16
#: The fixed-default starts and all but the first ``alphas`` run only up to this many
#: distinct codes: each costs a whole fit, and wide layers (every image its own code)
#: would exceed 30 s per fit on 2 cores.
FIXED_DEFAULTS_UP_TO = 5000
#: Above this many distinct codes × literals (a wide layer on many images: ResNet-18's
#: 512 ``layer4`` kernels over 50,000 images is 5e7) the revision runs one pass and one
#: insertion round (``passes`` and ``insert_rounds`` are capped at 1): each round costs a
#: search per position of the list.  Measured on 12,000 codes of those 512 kernels (the
#: same loaded machine, back to back): 51.3 s -> 10.8 s per fit, 26 -> 14 rules, test
#: fidelity 0.970 -> 0.968.  The bound sits above the 128-kernel benchmark net on 50,000
#: images (49,975 codes x 256 literals = 1.3e7), whose list lost 0.007 test fidelity
#: (0.9168 -> 0.9098) under the capped revision, and below ResNet-18's 5e7.
WIDE_WORK = 2e7
#: Above this many distinct codes × literals the fixed-default starts and the other
#: ``alphas`` are skipped too (as above :data:`FIXED_DEFAULTS_UP_TO` codes): on 4,000
#: codes of ResNet-18's 512 ``layer4`` kernels the nine starts took 99.8 s for a test
#: fidelity of 0.954, the first start alone 5.1 s for 0.969.
MULTI_START_WORK = 1e6
#: Rows (code, class) the linear M-of-N ranking is fitted on in a wide problem.
LINEAR_ROWS = 10_000


@dataclass(frozen=True)
class RuleListSettings(Settings):
    """The rule list's budget (the default method: a program a person can read)."""

    max_rules: int = setting(30, parse="positive_int", check=at_least_one("max_rules"),
                             help="rulelist: at most this many rules (the default class "
                                  "comes on top)")
    max_literals: int = setting(300, parse="positive_int",
                                check=at_least_one("max_literals"),
                                help="rulelist: at most this many literals in all rules")
    max_rule_literals: int | None = setting(
        None, parse="positive_int", check=at_least_one("max_rule_literals"),
        help="rulelist: at most this many literals in any one rule (default: 8 in a "
             "conjunction, 40 in an M-of-N rule)")


@dataclass(frozen=True)
class _Cand:
    """A candidate rule over literal indices (``j < k``: ``x_j``; ``j >= k``: ``¬x_{j-k}``)."""

    lits: tuple[int, ...]
    min_true: int | None
    head: int
    score: float
    gain: float

    @property
    def size(self) -> int:
        return len(self.lits)


def _as_names(items: Sequence[Any] | None, n: int, make, default_prefix: str, what: str):
    if items is None:
        return tuple(make(f"{default_prefix}{i + (default_prefix == 'k')}", i)
                     for i in range(n))
    items = tuple(items)
    if len(items) != n:
        raise ExtractionError(f"{len(items)} {what} for {n} columns")
    return tuple(x if not isinstance(x, str) else make(x, i) for i, x in enumerate(items))


class RuleListExtractor(Extractor):
    """Ordered rule list (conjunctions and M-of-N rules) under a rule and literal budget.

    Parameters
    ----------
    max_rules : int
        Most rules in the list (the default class is not a rule).
    max_literals : int
        Most literals in all rule bodies together.
    max_depth : int
        Most literals in one conjunction.
    max_n : int
        Most literals in one M-of-N rule (0: conjunctions only).
    beam : int
        Bodies kept per depth of the conjunction search.
    alphas : sequence of float
        Look-ahead weights of construction (module docstring); the best on the training
        codes is kept.  Above 5,000 distinct codes only the first is run.
    literal_cost : float
        Score charged per literal, as a share of the total weight (1e-5: a literal must
        win 0.001 % of the training images).
    min_support : float
        Least share of the total weight a new rule must cover.
    passes : int
        Rounds of revision (0: construction only); at most 1 on a wide problem
        (:data:`WIDE_WORK`).
    ranking : {"auto", "contrast", "linear"}
        How M-of-N literals are ranked: ``"contrast"``, how much more often a literal
        holds for the class than for the other uncovered images; ``"linear"``, the
        class's weights in a multinomial logistic read-out of the bits (the wide layers'
        case); ``"auto"``, linear above 16 kernels.
    defaults : int
        Extra construction starts with the default held at each of the ``defaults`` most
        frequent classes (besides the start that re-chooses it after every rule); only up
        to 5,000 distinct codes.
    insert_rounds : int
        Most insertions per revision pass (each costs one search per list position); at
        most 1 on a wide problem (:data:`WIDE_WORK`).
    max_rule_literals : int, optional
        Most literals in any one rule: caps ``max_depth`` and ``max_n`` (None: those
        two).  On many distributed bits (a bit per map position) the list otherwise
        spends its literals on a few M-of-N rules over 30 and more literals.

    Attributes
    ----------
    rules_ : RuleSet
        The fitted list; ``meta["rulelist"]`` holds the settings and the ``curve``.
    curve_ : list of dict
        Per prefix of the list: ``rules``, ``literals``, ``train_fidelity``, ``default``.
    fit_seconds_ : float
        Wall time of the last :meth:`fit`.
    """

    def __init__(self, max_rules: int = 30, max_literals: int = 300, *, max_depth: int = 8,
                 max_n: int = 40, beam: int = 6, alphas: Sequence[float] = (0.75, 0.5, 1.0),
                 literal_cost: float = 1e-5, min_support: float = 1e-4,
                 passes: int = 2, ranking: str = "auto", defaults: int = 2,
                 insert_rounds: int = 10, max_rule_literals: int | None = None) -> None:
        check_count("max_rules", max_rules)
        if max_rule_literals is not None:
            check_count("max_rule_literals", max_rule_literals)
            # one cap on a rule's length, whatever its kind
            max_depth, max_n = min(max_depth, max_rule_literals), min(max_n, max_rule_literals)
        check_count("max_literals", max_literals)
        check_count("max_depth", max_depth)
        check_count("beam", beam)
        if not isinstance(max_n, (int, np.integer)) or max_n < 0:
            raise ExtractionError(f"max_n must be an integer ≥ 0, got {max_n!r}")
        if not isinstance(passes, (int, np.integer)) or passes < 0:
            raise ExtractionError(f"passes must be an integer ≥ 0, got {passes!r}")
        alphas = tuple(float(a) for a in alphas)
        if not alphas or any(not np.isfinite(a) or a < 0 for a in alphas):
            raise ExtractionError(f"alphas must be finite numbers ≥ 0, got {alphas!r}")
        for name, value in (("literal_cost", literal_cost), ("min_support", min_support)):
            if not np.isfinite(value) or not 0 <= value < 1:
                raise ExtractionError(f"{name} must be in [0, 1), got {value!r}")
        self.max_rules, self.max_literals = int(max_rules), int(max_literals)
        self.max_rule_literals = None if max_rule_literals is None else int(max_rule_literals)
        self.max_depth, self.max_n, self.beam = int(max_depth), int(max_n), int(beam)
        self.alphas, self.literal_cost = alphas, float(literal_cost)
        self.min_support, self.passes = float(min_support), int(passes)
        if ranking not in RANKINGS:
            raise ExtractionError(f"ranking must be one of {RANKINGS}, got {ranking!r}")
        self.ranking = ranking
        if not isinstance(defaults, (int, np.integer)) or defaults < 0:
            raise ExtractionError(f"defaults must be an integer ≥ 0, got {defaults!r}")
        self.defaults = int(defaults)
        check_count("insert_rounds", insert_rounds)
        self.insert_rounds = int(insert_rounds)

    # -- public API ----------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            output: tuple | None = None,
            variables: Sequence[Variable | str] | None = None,
            heads: Sequence[Head | str] | None = None,
            sample_weight: np.ndarray | None = None) -> "RuleListExtractor":
        """Fit the list to ``y`` (the network's predicted class per row of ``X``).

        Parameters
        ----------
        X : (n, k) bool or 0/1 array
            Kernel bits; rows may be distinct codes with their counts in ``sample_weight``.
        y : (n,) int
            Class index per row, into ``heads``.
        sample_weight : (n,) array of numbers ≥ 0, optional
        output : ignored
            The common signature's output layer (a rule list reads only the bits).
        variables, heads : sequences of Variable/Head or names, optional
            ``k1..kn`` and ``c0..`` when omitted.

        Raises
        ------
        ExtractionError
            Bad shapes, non-binary ``X``, class indices out of range, negative weights.
        """
        started = time.perf_counter()
        if y is None:
            raise ExtractionError("a rule list is fitted to y, the network's predictions")
        X = as_codes(X, "codes")
        n, k = X.shape
        variables = _as_names(variables, k, lambda s, i: Variable(s, "", i), "k", "variables")
        n_heads = len(heads) if heads is not None else int(np.max(y)) + 1 if len(y) else 1
        heads = _as_names(heads, n_heads, lambda s, i: Head(s), "c", "heads")
        y = as_target(y, n, len(heads))
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ExtractionError("sample_weight must hold one finite number ≥ 0 per row, "
                                  "not all 0")
        codes, inverse = np.unique(X, axis=0, return_inverse=True)
        C = np.zeros((len(codes), len(heads)))
        np.add.at(C, (inverse.reshape(-1), y), w)
        self._setup(codes, C)
        wide = len(codes) * 2 * k > WIDE_WORK
        self._passes = min(self.passes, 1) if wide else self.passes
        self._insert_rounds = min(self.insert_rounds, 1) if wide else self.insert_rounds
        best = None
        # starts: the default re-chosen after every rule, then held at each of the most
        # frequent classes (a list whose natural default is not the majority, e.g. a
        # large class stated by one M-of-N rule, is out of the greedy's reach otherwise)
        frequent = [int(c) for c in np.argsort(-C.sum(axis=0), kind="stable")]
        small = len(C) <= FIXED_DEFAULTS_UP_TO and len(C) * 2 * k <= MULTI_START_WORK
        starts = [None] + frequent[:self.defaults if small else 0]
        for alpha in (self.alphas if small else self.alphas[:1]):
            for start in starts:
                rules = self._construct(alpha, fixed_default=start)
                rules = self._revise(rules)
                fid = self._fidelity(rules)[0]
                if best is None or fid > best[0] + 1e-12:
                    best = (fid, alpha, rules)
        _, alpha, rules = best
        rules = self._simplify(rules)
        self.curve_ = self._curve(rules)
        self.rules_ = self._ruleset(rules, variables, heads, alpha)
        # kept off the rules (same inputs -> same bytes); the benches read it here
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Head index per row (the first satisfied rule's, else the default).

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        if not hasattr(self, "rules_"):
            raise NotFittedError("RuleListExtractor is not fitted; call fit first")
        return self.rules_.predict_index(as_codes(X, "codes"))

    # -- data on the distinct codes ------------------------------------------------------
    def _setup(self, codes: np.ndarray, C: np.ndarray) -> None:
        self._k = codes.shape[1]
        self._L = np.concatenate([codes, ~codes], axis=1)  # (D, 2k) literal truth
        self._Lf = self._L.astype(np.float32)
        self._C = C
        self._covers: dict = {}
        self._rowsum = C.sum(axis=1)
        self._total = float(C.sum())
        self._lit_penalty = self.literal_cost * self._total
        self._min_cover = self.min_support * self._total
        linear = self.ranking == "linear" or (self.ranking == "auto"
                                               and self._k > LINEAR_RANKING_FROM)
        self._linear = self._linear_ranking() if linear else None

    def _linear_ranking(self) -> np.ndarray | None:
        """(2k, K) literal scores from a multinomial logistic read-out of the bits (None
        when the target holds one class: the contrast ranking is then used).

        For class ``c`` and kernel ``j``, ``v = w[c, j] - mean_c' w[c', j]``: literal
        ``x_j`` scores ``v`` and ``¬x_j`` scores ``-v``, so an M-of-N rule over the top
        literals imitates the linear layer that reads the bits.
        """
        # deferred: scikit-learn is a core dependency, but only this ranking needs it
        from sklearn.linear_model import LogisticRegression

        rows, cls = np.nonzero(self._C > 0)
        if len(np.unique(cls)) < 2:  # one class only: nothing to rank against
            return None
        if len(rows) * self._k > WIDE_WORK and len(rows) > LINEAR_ROWS:
            # a wide problem: the read-out is fitted on evenly spread rows (its float64
            # copy of every row was the fit's peak memory: 200 MB at 50,000 x 512)
            keep = np.unique(np.linspace(0, len(rows) - 1, LINEAR_ROWS).astype(np.int64))
            rows, cls = rows[keep], cls[keep]
        X = self._L[rows, :self._k].astype(np.float64)
        lr = LogisticRegression(C=1.0, max_iter=200)
        lr.fit(X, cls, sample_weight=self._C[rows, cls])
        W = np.zeros((self._C.shape[1], self._k))
        W[lr.classes_] = lr.coef_ if len(lr.classes_) > 2 else np.vstack(
            [-lr.coef_, lr.coef_])
        V = (W - W.mean(axis=0, keepdims=True)).T
        return np.concatenate([V, -V], axis=0)

    def _cover(self, cand: _Cand) -> np.ndarray:
        """Codes satisfying the body (cached: the local search re-evaluates lists often)."""
        key = (cand.lits, cand.min_true)
        hit = self._covers.get(key)
        if hit is None:
            lits = np.asarray(cand.lits, dtype=np.int64)
            count = (self._L[:, lits].sum(axis=1) if len(lits)
                     else np.zeros(len(self._L), np.int64))
            need = len(lits) if cand.min_true is None else cand.min_true
            hit = self._covers[key] = count >= need
        return hit

    def _predict_codes(self, rules: list[_Cand]) -> tuple[np.ndarray, np.ndarray, int]:
        """(class per code, rule index per code or -1, default) with the best default."""
        D = len(self._C)
        pred = np.full(D, -1)
        which = np.full(D, -1)
        for i, cand in enumerate(rules):
            free = which < 0
            hit = free & self._cover(cand)
            pred[hit], which[hit] = cand.head, i
        left = which < 0
        default = int(np.argmax(self._C[left].sum(axis=0))) if left.any() else int(
            np.argmax(self._C.sum(axis=0)))
        pred[left] = default
        return pred, which, default

    def _fidelity(self, rules: list[_Cand]) -> tuple[float, int]:
        pred, _, default = self._predict_codes(rules)
        return float(self._C[np.arange(len(pred)), pred].sum() / self._total), default

    # -- search --------------------------------------------------------------------------
    def _best_rule(self, G: np.ndarray, active: np.ndarray, lit_cap: int) -> _Cand | None:
        """The rule of largest ``sum G[cover, head] - penalty`` over the ``active`` codes."""
        rows = np.nonzero(active)[0]
        if len(rows) == 0 or lit_cap < 1:
            return None
        if len(rows) == len(active):  # no copies of the literal matrices when all are active
            Ga, La, Lfa, ra = G, self._L, self._Lf, self._rowsum
        else:
            Ga, La, Lfa = G[rows], self._L[rows], self._Lf[rows]
            ra = self._rowsum[rows]
        best = self._best_conjunction(Ga, La, Lfa, ra, min(lit_cap, self.max_depth))
        if self.max_n >= 2 and lit_cap >= 2:
            m = self._best_mofn(Ga, La, Lfa, ra, rows, min(lit_cap, self.max_n))
            if m is not None and (best is None or m.score > best.score + 1e-9):
                best = m
        return best

    def _best_conjunction(self, G, L, Lf, rowsum, depth_cap) -> _Cand | None:
        k2 = L.shape[1]
        k = k2 // 2
        Gpos = np.maximum(G, 0.0)
        K = G.shape[1]
        # gain per head, its optimistic part and the support, once per search
        A32 = np.concatenate([G, Gpos, rowsum[:, None]], axis=1).astype(np.float32)
        best: _Cand | None = None
        beam: list[tuple[tuple[int, ...], np.ndarray]] = [((), np.ones(len(G), dtype=bool))]
        for depth in range(1, depth_cap + 1):
            # the refinable candidates of this depth, as arrays (score, bound, parent, literal):
            # a wide layer has thousands per body, and only the few the beam keeps become
            # Python tuples (measured: the tuple per candidate was most of a 512-kernel fit)
            cands: list[tuple[np.ndarray, ...]] = []
            penalty = self._lit_penalty * depth
            for p, (body, cover) in enumerate(beam):
                # one product gives, per literal added to the body, the gain per head, the
                # optimistic bound and the support (float32: BLAS; the sums are of counts
                # and small multiples of alpha, exact well past a million images)
                idx = np.flatnonzero(cover)
                if len(idx) == len(cover):
                    prod = (Lf.T @ A32).astype(np.float64)
                else:
                    prod = (Lf[idx].T @ A32[idx]).astype(np.float64)
                scores, bounds, support = prod[:, :K], prod[:, K:2 * K].max(axis=1), prod[:, -1]
                used = list(body) + [(j + k) % k2 for j in body]
                ok = support >= self._min_cover
                ok[used] = False
                sel = np.flatnonzero(ok)
                if not len(sel):
                    continue
                heads = scores.argmax(axis=1)
                gains = scores[np.arange(k2), heads]
                s = gains[sel] - penalty
                top = int(np.argmax(s))  # the first maximum: the lowest literal, as before
                if best is None or float(s[top]) > best.score + 1e-9:
                    j = int(sel[top])
                    best = _Cand(tuple(sorted(body + (j,))), None, int(heads[j]),
                                 float(s[top]), float(gains[j]))
                if depth < depth_cap:
                    cands.append((s, bounds[sel] - penalty - self._lit_penalty,
                                  np.full(len(sel), p), sel))
            if not cands:
                break
            score, bound, parent, lit = (np.concatenate(c) for c in zip(*cands))
            if best is not None:  # bodies whose bound cannot beat the best are not refined
                keep = bound > best.score + 1e-9
                score, parent, lit = score[keep], parent[keep], lit[keep]
            beam = self._next_beam(beam, L, score, parent, lit)
            if not beam:
                break
        return best

    def _next_beam(self, beam, L, score, parent, lit) -> list:
        """The best-scoring refinable bodies, one per distinct body and cover.

        In the order ``(-score, body)``; the bodies of equal score are sorted only as
        far as the beam needs them.
        """
        order = np.argsort(-score, kind="stable")
        out: list[tuple[tuple[int, ...], np.ndarray]] = []
        seen: set = set()
        start = 0
        while start < len(order) and len(out) < self.beam:
            value = score[order[start]]
            stop = start + 1
            while stop < len(order) and score[order[stop]] == value:
                stop += 1
            group = sorted((tuple(sorted(beam[parent[i]][0] + (int(lit[i]),))), int(i))
                           for i in order[start:stop])
            for new_body, i in group:
                if new_body in seen:
                    continue
                seen.add(new_body)
                new_cover = beam[parent[i]][1] & L[:, lit[i]]
                key = np.packbits(new_cover).tobytes()
                if key in seen:
                    continue
                seen.add(key)
                out.append((new_body, new_cover))
                if len(out) == self.beam:
                    break
            start = stop
        return out

    def _best_mofn(self, G, L, Lf, rowsum, rows, n_cap) -> _Cand | None:
        best: _Cand | None = None
        P = self._C[rows]
        rates = (Lf.T @ np.concatenate([P, rowsum[:, None] - P], axis=1).astype(np.float32)
                 ).astype(np.float64)
        K = G.shape[1]
        for c in range(K):
            pos_total, neg_total = P[:, c].sum(), (rowsum - P[:, c]).sum()
            if pos_total <= 0 or neg_total <= 0:
                continue
            diff = rates[:, c] / pos_total - rates[:, K + c] / neg_total
            if self._linear is not None:
                diff = self._linear[:, c]
            ranked = np.argsort(-diff, kind="stable")
            order = [int(j) for j in ranked[diff[ranked] > 0][:n_cap]]
            n = len(order)
            if n < 2:
                continue
            # every N at once: count[s, N-1] = literals of the top N that code s satisfies,
            # and per N the gain / support of the codes at each count (one bincount over
            # (code, N) in code order adds exactly as one bincount per N did)
            count = np.cumsum(L[:, order], axis=1, dtype=np.int64)
            flat = (count + np.arange(n) * (n + 1)).ravel()
            shape = (n, n + 1)
            gain_at = np.bincount(flat, weights=np.repeat(G[:, c], n),
                                  minlength=n * (n + 1)).reshape(shape)
            supp_at = np.bincount(flat, weights=np.repeat(rowsum, n),
                                  minlength=n * (n + 1)).reshape(shape)
            gains_n = np.cumsum(gain_at[:, ::-1], axis=1)[:, ::-1]  # [N-1, M]: count >= M
            supps_n = np.cumsum(supp_at[:, ::-1], axis=1)[:, ::-1]
            # per N the best M in 1..N-1 with enough support, the first maximum (M = N is
            # a conjunction: the beam's job; M = 0 is no rule)
            Ns = np.arange(1, n + 1)
            valid = (Ns[None, :] < Ns[:, None]) & (supps_n[:, 1:] >= self._min_cover)
            s_mat = np.where(valid, gains_n[:, 1:], -np.inf)
            Ms = s_mat.argmax(axis=1) + 1
            scores = (s_mat[Ns - 1, Ms - 1] - self._lit_penalty * Ns).tolist()
            for N in range(2, n + 1):  # in order: the same ties as one N at a time
                s = scores[N - 1]
                if math.isfinite(s) and (best is None or s > best.score + 1e-9):
                    M = int(Ms[N - 1])
                    best = _Cand(tuple(sorted(order[:N])), M, c, s,
                                 float(gains_n[N - 1, M]))
        return best

    # -- stages --------------------------------------------------------------------------
    def _gain_matrix(self, value: np.ndarray, alpha: float) -> np.ndarray:
        """``G[s, c]``: fidelity change moving code ``s`` from ``value`` to class ``c``."""
        return self._C - value[:, None] - alpha * (self._rowsum[:, None] - self._C)

    def _construct(self, alpha: float, rules: list[_Cand] | None = None,
                   fixed_default: int | None = None) -> list[_Cand]:
        rules = list(rules or [])
        while len(rules) < self.max_rules:
            used = sum(r.size for r in rules)
            pred, which, default = self._predict_codes(rules)
            if fixed_default is not None:
                default = fixed_default
            active = which < 0
            G = self._gain_matrix(self._C[:, default], alpha)
            cand = self._best_rule(G, active, self.max_literals - used)
            if cand is None or cand.score <= 0:
                break
            rules.append(cand)
        return rules

    def _revise(self, rules: list[_Cand]) -> list[_Cand]:
        for _ in range(self._passes):
            changed = False
            i = 0
            while i < len(rules):
                rest = rules[:i] + rules[i + 1:]
                pred, which, _ = self._predict_codes(rest)
                # codes claimed by an earlier rule are out of reach of rule i
                earlier = (which >= 0) & (which < i)
                value = self._C[np.arange(len(pred)), pred]
                G = self._gain_matrix(value, 0.0)
                old = rules[i]
                old_cover = self._cover(old) & ~earlier
                old_gain = float(G[old_cover, old.head].sum())
                used = sum(r.size for r in rest)
                cand = self._best_rule(G, ~earlier, self.max_literals - used)
                old_score = old_gain - self._lit_penalty * old.size
                if cand is not None and cand.score > old_score + 1e-9 and cand.score > 0:
                    rules[i] = cand
                    changed = True
                elif old_gain <= 0:
                    del rules[i]
                    changed = True
                    continue
                i += 1
            before = len(rules)
            rules = self._construct(0.0, rules)
            rules, inserted = self._insert(rules)
            if not changed and not inserted and len(rules) == before:
                break
        return rules

    def _insert(self, rules: list[_Cand]) -> tuple[list[_Cand], bool]:
        """Insert rules anywhere (exceptions before general rules), swapping out the weakest.

        Each round finds the best rule for every position (exact gain against the whole
        list's predictions, among the codes no earlier rule claims); at the budget the
        rule whose removal costs least makes room.  A change is kept only when the exact
        training fidelity rises.
        """
        changed = False
        fid = self._fidelity(rules)[0]
        for _ in range(self._insert_rounds):
            pred, which, _ = self._predict_codes(rules)
            G = self._gain_matrix(self._C[np.arange(len(pred)), pred], 0.0)
            used = sum(r.size for r in rules)
            full = len(rules) >= self.max_rules
            if full:
                losses = [fid - self._fidelity(rules[:j] + rules[j + 1:])[0]
                          for j in range(len(rules))]
                weakest = int(np.argmin(losses))
            options = []
            for i in range(len(rules) + 1):
                earlier = (which >= 0) & (which < i)
                cap = self.max_literals - used + (rules[weakest].size if full else 0)
                cand = self._best_rule(G, ~earlier, cap)
                if cand is not None and cand.score > 0:
                    options.append((cand.score, -i, i, cand))
            improved = False
            for _, _, i, cand in sorted(options, key=lambda o: (o[0], o[1]), reverse=True)[:3]:
                trial = rules[:i] + [cand] + rules[i:]
                if full:
                    trial.pop(weakest + (weakest >= i))
                if sum(r.size for r in trial) > self.max_literals:
                    continue
                new_fid = self._fidelity(trial)[0]
                if new_fid > fid + 1e-12:
                    rules, fid, improved, changed = trial, new_fid, True, True
                    break
            if not improved:
                break
        return rules, changed

    def _simplify(self, rules: list[_Cand]) -> list[_Cand]:
        """Drop rules, then literals, whose removal costs no training fidelity.

        Literals are tried only while ``codes x literals`` stays small (each try evaluates
        the whole list); rules always.
        """
        fid = self._fidelity(rules)[0]
        small = len(self._C) * sum(r.size for r in rules) <= 2e7
        for _ in range(len(rules) + 1):
            changed = False
            rules, fid, changed = self._drop_redundant(rules, fid)
            if not small:
                break
            # a rule moved earlier can make the rules between redundant (next round)
            for i in range(len(rules)):
                for p in range(i):
                    trial = rules[:p] + [rules[i]] + rules[p:i] + rules[i + 1:]
                    new_fid = self._fidelity(trial)[0]
                    if new_fid > fid + 1e-12 or (new_fid >= fid - 1e-12 and any(
                            self._fidelity(trial[:j] + trial[j + 1:])[0] >= fid - 1e-12
                            for j in range(p + 1, i + 1))):
                        rules, fid, changed = trial, max(fid, new_fid), True
                        break
            if not changed:
                break
        if not small:
            return rules
        for i in range(len(rules)):
            j = 0
            while j < len(rules[i].lits) and len(rules[i].lits) > 1:
                old = rules[i]
                lits = old.lits[:j] + old.lits[j + 1:]
                options = [old.min_true] if old.min_true is None else [
                    old.min_true - 1, old.min_true]
                done = False
                for m in options:
                    need = len(lits) if m is None else m
                    if need < 1 or need > len(lits):
                        continue
                    cand = _Cand(lits, None if need == len(lits) else need, old.head,
                                 old.score, old.gain)
                    trial = rules[:i] + [cand] + rules[i + 1:]
                    new_fid = self._fidelity(trial)[0]
                    if new_fid >= fid - 1e-12:
                        rules, fid, done = trial, max(fid, new_fid), True
                        break
                if not done:
                    j += 1
        return self._drop_redundant(rules, fid)[0]

    def _drop_redundant(self, rules: list[_Cand], fid: float
                        ) -> tuple[list[_Cand], float, bool]:
        """Remove every rule whose removal costs no training fidelity (from the end)."""
        changed = False
        i = len(rules) - 1
        while i >= 0:  # from the end: later rules are the ones earlier ones shadow
            trial = rules[:i] + rules[i + 1:]
            new_fid = self._fidelity(trial)[0]
            if new_fid >= fid - 1e-12:
                rules, fid, changed = trial, max(fid, new_fid), True
            i -= 1
        return rules, fid, changed

    def _curve(self, rules: list[_Cand]) -> list[dict]:
        out = []
        for r in range(len(rules) + 1):
            fid, default = self._fidelity(rules[:r])
            out.append({"rules": r, "literals": int(sum(c.size for c in rules[:r])),
                        "train_fidelity": round(fid, 6), "default": default})
        return out

    def _ruleset(self, rules: list[_Cand], variables, heads, alpha: float) -> RuleSet:
        k = self._k
        pred, which, default = self._predict_codes(rules)
        out = []
        for i, cand in enumerate(rules):
            mine = which == i
            support = float(self._rowsum[mine].sum())
            correct = float(self._C[mine, cand.head].sum())
            body = tuple(Literal(variables[j % k].name, j < k) for j in cand.lits)
            out.append(Rule(heads[cand.head].name, body, cand.min_true,
                            {"support": round(support / self._total, 6),
                             "precision": round(correct / support, 6) if support else 0.0}))
        curve = [{**p, "default": heads[p["default"]].name} for p in self.curve_]
        meta = {"method": "rulelist", "rulelist": {
            "max_rules": self.max_rules, "max_literals": self.max_literals,
            "max_depth": self.max_depth, "max_n": self.max_n, "beam": self.beam,
            "alphas": list(self.alphas), "alpha": alpha, "literal_cost": self.literal_cost,
            "min_support": self.min_support, "passes": self._passes,
            "ranking": self.ranking, "defaults": self.defaults,
            "insert_rounds": self._insert_rounds,
            "distinct_codes": int(len(self._C)), "curve": curve,
            "train_fidelity": self.curve_[-1]["train_fidelity"]}}
        if self.max_rule_literals is not None:  # absent otherwise: older files unchanged
            meta["rulelist"]["max_rule_literals"] = self.max_rule_literals
        return RuleSet(tuple(variables), tuple(heads), tuple(out), heads[default].name, meta)


# -- the extraction driver's view ------------------------------------------------------

#: ``--threshold auto`` fits ``lookup`` thresholds up to this many kernels (the lookup
#: table over-fits when most codes are distinct).
LOOKUP_UP_TO = 16


def auto_threshold(units: np.ndarray) -> str:
    """The rule list's ``--threshold auto``: ``lookup`` on narrow layers, else ``half`` on
    units in [0, 1] and ``infogain`` on any other scale.

    Measured in ``bench/readable.py`` (docs/readable.md): ``lookup`` is the most faithful
    on paper1 and paper3 (10 kernels); on 128 sigmoid kernels ``half`` beats ``infogain``
    (0.9168 against 0.9098); the 48-kernel ReLU/BatchNorm net needs ``infogain``.
    """
    return "lookup" if units.shape[1] <= LOOKUP_UP_TO else auto_binarisation(units)


def prepare(inputs: ModelInputs) -> Prepared:
    """The driver's capture step: ``config.layer`` reduced with ``config.reduce``, bits
    thresholded as :func:`auto_threshold` says (or ``config.threshold``), a decision list
    within ``max_rules`` / ``max_literals``.

    Raises
    ------
    ModelError
        ``config.layer`` does not exist.
    """
    config = inputs.config
    embedded = embedded_program(inputs.model, config.layer, config.output)
    if embedded is not None and config.threshold == "auto":
        # a tuned network (cnn2logic.model.tuning) decides by this list over these bits:
        # the program is read off, not fitted (fidelity 1.0 by construction)
        bin_ = binarise(inputs, "half")
        program = embedded.ruleset(bin_.units.variables, bin_.heads,
                                   {"rulelist": {"embedded": True}})
        # "exact": the network's decision is this list of its bits, on every input
        return Prepared(_Embedded(program), bits_fit_args(inputs, bin_),
                        lambda ext: learned_outcome(inputs, bin_, ext.rules_,
                                                    {"rulelist": {"embedded": True},
                                                     "rule_kind": "exact"}))
    bin_ = binarise(inputs, auto_threshold if config.threshold == "auto" else config.threshold)
    extractor = RuleListExtractor(max_rules=config.max_rules, max_literals=config.max_literals,
                                  max_rule_literals=config.max_rule_literals)

    def finish(ext: RuleListExtractor) -> Outcome:
        return learned_outcome(inputs, bin_, ext.rules_,
                               {"rulelist": dict(ext.rules_.meta.get("rulelist") or {})})

    return Prepared(extractor, bits_fit_args(inputs, bin_), finish)


class _Embedded(Extractor):
    """The rule list a tuned network carries: ``fit`` only hands it back."""

    def __init__(self, program: RuleSet) -> None:
        self.program = program

    def fit(self, X, y=None, *, output=None, variables=None, heads=None) -> "_Embedded":
        # each rule's share of the training images it decides and the agreement there with
        # ``y`` (the network's predictions: 1.0 by construction), as a fitted list records
        # them, so that the report's and rules.md's columns are filled for a tuned network
        program = self.program
        if y is not None and len(X):
            first = program.first_rule(np.asarray(X, dtype=bool))
            target = np.asarray(y)
            index = {h: i for i, h in enumerate(program.head_names)}
            rules = []
            for i, rule in enumerate(program.rules):
                mine = first == i
                n = int(mine.sum())
                rules.append(Rule(rule.head, rule.body, rule.min_true, {
                    "support": round(n / len(first), 6),
                    "precision": round(float((target[mine] == index[rule.head]).mean()), 6)
                    if n else 0.0}))
            program = program.replace(rules=tuple(rules))
        self.rules_ = program
        return self


register(Method("rulelist", RuleListExtractor, RuleListSettings, prepare,
                "compact decision list fitted to the network (default)", kind="learned",
                ordered=True))
