"""M-of-N rules per output unit (Odense & d'Avila Garcez 2020, layerwise extraction).

For a linear layer ``z = W x + b`` whose output units are binary (the softmax layer: the
one-hot arg-max; an internal layer: each unit's own binarised value):

1. **Binarise the inputs** by information gain: each input unit gets the single split
   that maximises the information gain about the layer's binarised output (for a
   softmax layer the one-hot arg-max, i.e. the predicted class; for an internal layer the
   sum of the gains about each output unit).  Inputs that are already 0/1 are kept.
2. **Candidate rules** for output unit ``c``: sort its inputs by ``|W[c, j]|``; rule
   ``(N, M)`` takes the top ``N`` inputs, literal ``x_j`` when ``W[c, j] > 0`` and
   ``¬x_j`` otherwise, and fires when at least ``M`` of them hold.  Every ``1 ≤ M ≤ N ≤
   max_n`` is scored, in time linear in the data per ``N`` (a histogram of how many of
   the top ``N`` literals each sample satisfies gives the errors for all ``M`` at once).
3. **Score**: ``loss = error + beta * complexity`` with ``error`` the share of samples on
   which the rule disagrees with the unit and, the paper's formula,
   ``complexity = log(M * C(N, M)) / log(M* * C(n, M*))``, ``M* = ceil((n + 1) / 2)``.
4. **Sweep** ``beta`` over ``betas``: each value picks, per unit, the rule of least loss;
   ``curve_`` holds the mean complexity and error per ``beta`` (the complexity-error
   curve), ``rules_`` the rules chosen at ``beta``.

Ties in the loss go to the lower complexity, then fewer inputs, then smaller ``M``.  A
rule with ``M = N`` is a plain conjunction and is stored as one.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.random((400, 4)) < 0.5
>>> y = (X[:, :3].sum(axis=1) >= 2).astype(int)          # planted: 2-of-(k1, k2, k3)
>>> W = np.array([[-1.0, -1.0, -1.0, -0.1], [1.0, 1.0, 1.0, 0.1]])
>>> ext = MofNExtractor(beta=0.0).fit(X, y, output=(W, None))
>>> [r.format() for r in ext.rules_.rules if r.head == "c1"]
['2-of(k1, k2, k3)']
"""

from __future__ import annotations

from dataclasses import dataclass

import math
import time
from typing import Any, Sequence

import numpy as np

from ..errors import ExtractionError, NotFittedError
from ..evaluate import rank_rules
from ..rules import Head, Literal, Rule, RuleSet, Variable
from .base import Extractor, Method, Outcome, Prepared, register
from .config import Settings, at_least_one, finite, setting
from .layers import ModelInputs
from ._common import (as_matrix, as_target, check_count, entropy, information_gain_split,
                      names_for)

#: The default beta sweep: 0, then log-spaced from 1e-4 to 1.
DEFAULT_BETAS = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


def complexity(n_inputs: int, N: int, M: int) -> float:
    """Odense & d'Avila Garcez's normalised complexity of an ``M``-of-``N`` rule.

    ``log(M * C(N, M)) / log(M* * C(n, M*))`` with ``M* = ceil((n + 1) / 2)``; 0 when the
    normaliser is 0 (one input).

    Raises
    ------
    ExtractionError
        ``M`` or ``N`` outside ``1 <= M <= N <= n``.
    """
    if not 1 <= M <= N <= n_inputs:
        raise ExtractionError(f"need 1 <= M <= N <= n, got M={M}, N={N}, n={n_inputs}")
    m_star = math.ceil((n_inputs + 1) / 2)
    denom = math.log(m_star) + _log_comb(n_inputs, m_star)
    if denom <= 0:
        return 0.0
    return (math.log(M) + _log_comb(N, M)) / denom


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _rule_errors(X: np.ndarray, W: np.ndarray, targets: np.ndarray, max_n: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Training error of every rule ``(N, M)`` of every unit, and the inputs' order.

    ``errors[c, N-1, M-1]``: unit ``c``'s rule over its ``N`` largest-``|w|`` inputs (each
    with its weight's sign) firing when at least ``M`` hold; NaN where ``M > N``.
    """
    C, n = W.shape
    S = len(X)
    errors = np.full((C, max_n, max_n), np.nan)
    order = np.zeros((C, n), dtype=np.int64)
    for c in range(C):
        # Inputs by decreasing |w|; the stable sort breaks ties by lower index.
        order[c] = np.argsort(-np.abs(W[c]), kind="stable")
        lits = X[:, order[c][:max_n]] == (W[c, order[c][:max_n]] > 0)[None, :]
        counts = np.cumsum(lits, axis=1, dtype=np.int64)
        t = targets[:, c]
        for N in range(1, max_n + 1):
            k = counts[:, N - 1]
            on = np.bincount(k[t], minlength=N + 1)
            off = np.bincount(k[~t], minlength=N + 1)
            # Fires for M <= k: false positives are off-samples with k >= M, false
            # negatives on-samples with k < M.
            fp = np.cumsum(off[::-1])[::-1][1:]          # M = 1..N
            fn = np.cumsum(on)[:-1]                       # M = 1..N
            errors[c, N - 1, :N] = (fp + fn) / S
    return errors, order


def _complexities(n: int, max_n: int) -> np.ndarray:
    """``complexity(n, N, M)`` for every ``1 <= M <= N <= max_n`` (NaN elsewhere)."""
    cx = np.full((max_n, max_n), np.nan)
    for N in range(1, max_n + 1):
        for M in range(1, N + 1):
            cx[N - 1, M - 1] = complexity(n, N, M)
    return cx


def mofn_value(X: np.ndarray, literals: Sequence[tuple[int, bool]], m: int) -> np.ndarray:
    """Rows of the bool matrix ``X`` where at least ``m`` of ``literals`` hold."""
    count = np.zeros(len(X), dtype=np.int64)
    for v, p in literals:
        count += X[:, v] if p else ~X[:, v]
    return count >= m


@dataclass(frozen=True)
class MofNSettings(Settings):
    """M-of-N's settings."""

    beta: float = setting(0.01, parse="float", check=finite("beta", 0),
                          help="mofn: loss = error + BETA * complexity")
    max_n: int | None = setting(None, parse="positive_int", check=at_least_one("max_n"),
                                help="mofn: largest N of an M-of-N rule (default: all "
                                     "inputs)")


class MofNExtractor(Extractor):
    """M-of-N rules for each output unit of a linear layer (module docstring).

    Parameters
    ----------
    beta : float
        The complexity weight whose rules end up in ``rules_`` (added to ``betas``).
    betas : sequence of float, optional
        The sweep for ``curve_`` (default :data:`DEFAULT_BETAS`).
    max_n : int or None
        Largest ``N`` tried (default: all inputs).

    Attributes
    ----------
    rules_ : RuleSet
        One M-of-N rule per output unit (at ``beta``), ranked with
        :func:`cnn2logic.evaluate.rank_rules`; ``default`` the most frequent target among
        samples no rule covers.
    splits_ : (n,) float array
        The information-gain threshold of each input (0.5 for binary inputs).
    gains_ : (n,) float array
        The information gain of each split (nats).
    errors_ : (units, max_n, max_n) float array
        ``errors_[c, N-1, M-1]``: training error of rule ``(N, M)`` for unit ``c`` (NaN
        where ``M > N``).
    order_ : (units, n) int array
        Inputs of each unit by decreasing ``|w|`` (ties: lower index).
    chosen_ : dict[str, dict]
        Per head: ``N``, ``M``, ``error``, ``complexity`` of the rule in ``rules_``.
    curve_ : list of dict
        Per beta: ``beta``, ``mean_error``, ``mean_complexity``, ``mean_n`` and the
        ``(N, M)`` chosen per unit.
    stats_ : dict
        ``seconds`` and settings used.

    Raises
    ------
    ExtractionError
        Bad settings (in ``__init__``) or inputs of inconsistent shapes (in ``fit``).
    """

    def __init__(self, beta: float = 0.01, betas: Sequence[float] | None = None,
                 max_n: int | None = None) -> None:
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
            raise ExtractionError(f"beta must be a finite number ≥ 0, got {beta!r}")
        betas = tuple(DEFAULT_BETAS if betas is None else betas)
        if not betas or any(not (math.isfinite(b) and b >= 0) for b in betas):
            raise ExtractionError(f"betas must be finite numbers ≥ 0, got {betas!r}")
        check_count("max_n", max_n, optional=True)
        self.beta = float(beta)
        self.betas = tuple(sorted(set(float(b) for b in betas) | {float(beta)}))
        self.max_n = max_n

    def get_params(self) -> dict[str, Any]:
        """The settings, as stored in the rules' meta (``betas`` as a list)."""
        return {"beta": self.beta, "betas": list(self.betas), "max_n": self.max_n}

    # -- binarisation ------------------------------------------------------------------
    def fit_splits(self, units: np.ndarray, y: np.ndarray) -> "MofNExtractor":
        """Information-gain splits of every input w.r.t. the layer's binarised output.

        ``y`` is a class index per sample (softmax layer) or a (samples, units) bool
        matrix (an internal layer: the gains about each output unit are summed).
        """
        U = as_matrix(units, "units")
        if U.dtype == bool:
            self.splits_ = np.full(U.shape[1], 0.5)
            self.gains_ = np.array([_bit_gain(U[:, j], y) for j in range(U.shape[1])])
            return self
        splits, gains = [], []
        for j in range(U.shape[1]):
            if np.ndim(y) == 1:
                s, g = information_gain_split(U[:, j], y)
            else:
                s, g = _multi_target_split(U[:, j], np.asarray(y, dtype=bool))
            splits.append(s)
            gains.append(g)
        self.splits_, self.gains_ = np.array(splits), np.array(gains)
        return self

    def transform(self, units: np.ndarray) -> np.ndarray:
        """Binarise ``units`` with the fitted splits (bool inputs pass through).

        Raises
        ------
        NotFittedError
            Before :meth:`fit` / :meth:`fit_splits`.
        ExtractionError
            Wrong number of columns.
        """
        if not hasattr(self, "splits_"):
            raise NotFittedError("call fit() before transform()")
        U = as_matrix(units, "units")
        if U.shape[1] != len(self.splits_):
            raise ExtractionError(f"units have {U.shape[1]} columns, the splits "
                                  f"{len(self.splits_)}")
        if U.dtype == bool:
            return U
        return U >= self.splits_[None, :]

    # -- learning ----------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            output: tuple[np.ndarray, np.ndarray | None] | None = None,
            variables: Sequence[Variable] | None = None,
            heads: Sequence[Head] | None = None) -> "MofNExtractor":
        """Binarise the inputs and find every unit's M-of-N rule.

        Parameters
        ----------
        X : (samples, n) float or bool array
            The layer's inputs (real-valued: split by information gain; bool: kept).
        y : (samples,) int array or (samples, units) bool array
            The layer's binarised output: class per sample for a softmax layer (normally
            the network's prediction), or each output unit's bit for an internal layer.
        output : (weight, bias)
            The layer: its ``(units, n)`` weights (only their signs and magnitudes order
            the literals; the bias is not used).  Required.
        variables, heads : optional
            Names of the inputs and output units (default ``k1..``, ``c0..``; heads of
            an internal layer should be of kind ``"kernel"``).

        Returns
        -------
        MofNExtractor
            ``self``.

        Raises
        ------
        ExtractionError
            No ``output``, shapes disagree, or ``y`` is not a valid target.
        """
        start = time.perf_counter()
        if output is None:
            raise ExtractionError("M-of-N needs output=(weight, bias) of the layer")
        U = as_matrix(X, "units")
        W = np.asarray(output[0], dtype=np.float64)
        if W.ndim != 2 or W.shape[1] != U.shape[1]:
            raise ExtractionError(f"weight must be (units, {U.shape[1]}), got {W.shape}")
        if not np.isfinite(W).all():
            raise ExtractionError("weights contain NaN or infinity")
        C, n = W.shape
        y = np.asarray(y)
        if y.ndim == 1:
            y = as_target(y, len(U), C)
            targets = np.zeros((len(U), C), dtype=bool)
            targets[np.arange(len(U)), y] = True
        elif y.ndim == 2 and y.shape == (len(U), C):
            targets = np.asarray(y).astype(bool)
        else:
            raise ExtractionError(f"y must be (samples,) classes or a ({len(U)}, {C}) bool "
                                  f"matrix, got shape {y.shape}")
        variables, heads = names_for(variables, heads, n, C)
        self.fit_splits(U, y)
        X = self.transform(U)
        max_n = n if self.max_n is None else min(self.max_n, n)
        self.errors_, self.order_ = _rule_errors(X, W, targets, max_n)
        self.complexity_ = _complexities(n, max_n)
        self.curve_ = [self._curve_point(beta, C) for beta in self.betas]
        raw = RuleSet(variables, heads, tuple(self._chosen_rules(W, variables, heads)), None,
                      {"method": "mofn", "settings": self.get_params()})
        if np.ndim(y) == 1:
            self.rules_ = rank_rules(raw, X, y)
        else:
            self.rules_ = rank_rules(raw, X, None, default=None)
        self.weight_ = W
        self.stats_ = {"seconds": time.perf_counter() - start, "max_n": max_n,
                       "inputs": n, "units": C}
        return self

    def _curve_point(self, beta: float, C: int) -> dict[str, Any]:
        """The rules every unit picks at ``beta``, with their mean error and complexity."""
        errors, cx = self.errors_, self.complexity_
        picks = [self._pick(c, beta) for c in range(C)]
        return {
            "beta": beta,
            "mean_error": float(np.mean([errors[c, N - 1, M - 1]
                                         for c, (N, M) in enumerate(picks)])),
            "mean_complexity": float(np.mean([cx[N - 1, M - 1] for N, M in picks])),
            "mean_n": float(np.mean([N for N, _ in picks])),
            "rules": [[int(N), int(M)] for N, M in picks],
        }

    def _chosen_rules(self, W: np.ndarray, variables, heads) -> list[Rule]:
        """Each unit's rule at ``self.beta``; sets ``chosen_``."""
        rules, chosen = [], {}
        for c in range(W.shape[0]):
            N, M = self._pick(c, self.beta)
            lits = tuple(Literal(variables[int(j)].name, bool(W[c, j] > 0))
                         for j in self.order_[c][:N])
            rules.append(Rule(heads[c].name, lits, M))
            chosen[heads[c].name] = {"N": N, "M": M,
                                     "error": float(self.errors_[c, N - 1, M - 1]),
                                     "complexity": float(self.complexity_[N - 1, M - 1])}
        self.chosen_ = chosen
        return rules

    def _pick(self, c: int, beta: float) -> tuple[int, int]:
        return _argmin_rule(self.errors_[c] + beta * self.complexity_, self.complexity_)

    def best_rule(self, head: int | str, max_n: int) -> tuple[int, int, float]:
        """The least-error rule ``(N, M, error)`` of a unit using at most ``max_n`` inputs.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ExtractionError
            Unknown head, or ``max_n`` < 1.
        """
        if not hasattr(self, "errors_"):
            raise NotFittedError("call fit() before best_rule()")
        c = self._head_index(head)
        if max_n < 1:
            raise ExtractionError(f"max_n must be ≥ 1, got {max_n}")
        err = self.errors_[c][:max_n, :max_n]
        N, M = _argmin_rule(err, np.zeros_like(err))
        return N, M, float(err[N - 1, M - 1])

    def rule_for(self, head: int | str, N: int, M: int) -> Rule:
        """Unit ``head``'s candidate rule ``(N, M)`` as a :class:`Rule`.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ExtractionError
            Unknown head or ``(N, M)`` out of range.
        """
        if not hasattr(self, "order_"):
            raise NotFittedError("call fit() before rule_for()")
        c = self._head_index(head)
        if not 1 <= M <= N <= self.errors_.shape[1]:
            raise ExtractionError(f"no candidate rule (N={N}, M={M})")
        names = self.rules_.variable_names
        lits = tuple(Literal(names[int(j)], bool(self.weight_[c, j] > 0))
                     for j in self.order_[c][:N])
        return Rule(self.rules_.head_names[c], lits, M)

    def _head_index(self, head: int | str) -> int:
        names = self.rules_.head_names
        if isinstance(head, str):
            if head not in names:
                raise ExtractionError(f"unknown head {head!r}; known: {list(names)}")
            return names.index(head)
        if not 0 <= int(head) < len(names):
            raise ExtractionError(f"head index {head} out of range 0..{len(names) - 1}")
        return int(head)


def _argmin_rule(loss: np.ndarray, cx: np.ndarray) -> tuple[int, int]:
    """``(N, M)`` of least ``loss``; ties: lower complexity, fewer inputs, smaller M."""
    N_idx, M_idx = np.nonzero(~np.isnan(loss))
    # Rounding keeps float noise from deciding between equal losses.
    key = np.lexsort((M_idx, N_idx, np.round(cx[N_idx, M_idx], 12),
                      np.round(loss[N_idx, M_idx], 12)))
    best = key[0]
    return int(N_idx[best]) + 1, int(M_idx[best]) + 1


def _bit_gain(bit: np.ndarray, y: np.ndarray) -> float:
    """Information gain of an already binary input (summed over targets for a matrix)."""
    y = np.asarray(y)
    cols = [y] if y.ndim == 1 else [y[:, u].astype(np.int64) for u in range(y.shape[1])]
    total = 0.0
    for t in cols:
        k = int(t.max()) + 1 if t.size else 1
        all_c = np.bincount(t, minlength=k)
        on = np.bincount(t[bit], minlength=k)
        off = all_c - on
        n = len(t)
        total += float(entropy(all_c) - on.sum() / n * entropy(on) - off.sum() / n * entropy(off))
    return total


def _multi_target_split(values: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Threshold maximising the summed information gain about several binary targets."""
    order = np.argsort(values, kind="stable")
    v, T = values[order], targets[order].astype(np.float64)
    cut = np.nonzero(v[1:] > v[:-1])[0]
    if len(cut) == 0:
        return float(v[-1]) + 1.0, 0.0
    n = len(v)
    on_left = np.cumsum(T, axis=0)[cut]  # (cuts, units)
    on_total = T.sum(axis=0)
    nl = (cut + 1).astype(np.float64)[:, None]
    gain = np.zeros(len(cut))
    for u in range(T.shape[1]):
        left = np.stack([nl[:, 0] - on_left[:, u], on_left[:, u]], axis=1)
        right = np.stack([(n - nl[:, 0]) - (on_total[u] - on_left[:, u]),
                          on_total[u] - on_left[:, u]], axis=1)
        whole = np.array([n - on_total[u], on_total[u]])
        gain += entropy(whole) - (nl[:, 0] / n) * entropy(left) - ((n - nl[:, 0]) / n) * \
            entropy(right)
    best = int(np.argmax(np.round(gain, 12)))
    i = cut[best]
    return float((v[i] + v[i + 1]) / 2.0), float(gain[best])


def prepare(inputs: ModelInputs) -> Prepared:
    """The driver's capture step: ``config.layer`` reduced with ``config.reduce``; the
    extractor's own information-gain splits binarise it.

    Raises
    ------
    ModelError
        The output layer does not read the captured units (M-of-N needs its weights).
    """
    config = inputs.config
    U_tr, U_te, units = inputs.grab(config.layer, config.reduce)
    W, b = inputs.output_or_none(U_tr.shape[1], required=True)
    heads = inputs.heads(W)
    extractor = MofNExtractor(beta=config.beta, max_n=config.max_n)

    def finish(ext: MofNExtractor) -> Outcome:
        bits_tr, bits_te = ext.transform(U_tr), ext.transform(U_te)
        train, test = inputs.codes(bits_tr, bits_te, units.variables, heads)
        return Outcome(
            ext.rules_, train, test, inputs.target_tr, ext.rules_.default,
            inputs.binarized_accuracy(W, b, bits_te),
            {"method": "info-gain", "params": {"target": config.target},
             "values": [round(float(v), 8) for v in ext.splits_]},
            meta={"mofn": {"curve": ext.curve_, "chosen": ext.chosen_}})

    return Prepared(extractor, {"X": U_tr, "y": inputs.target_tr, "output": (W, b),
                                "variables": units.variables, "heads": heads}, finish)


register(Method("mofn", MofNExtractor, MofNSettings, prepare, "M-of-N, Odense"))
