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

import time
from collections import Counter
import warnings
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
# The searches live in .terms; they are re-exported here, where users have found them.
from .terms import (TRUTH_TABLE_MAX_VARS, LinearConditions, argmax_probably_infeasible,
                    class_conditions, class_terms, data_limited_terms, default_order,
                    exact_round, exactly_implies, naive_terms, pruned_terms, sound_terms,
                    truth_table, vertices)

__all__ = ["ApproximationExtractor", "MODES", "SEARCHES", "TRUTH_TABLE_MAX_VARS",
           "LinearConditions", "argmax_probably_infeasible", "class_conditions",
           "class_terms", "data_limited_terms", "default_order", "exact_round",
           "exactly_implies", "naive_terms", "prepare", "pruned_terms", "sound_terms",
           "truth_table", "vertices"]

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
        W, b, X, variables, heads = self._checked(X, y, output, variables, heads)
        C, n = W.shape
        order = min(self.order if self.order is not None else default_order(n), n)
        start = time.perf_counter()
        classes = range(C)
        if self.progress:
            from tqdm import tqdm  # only for the progress bar

            classes = tqdm(classes, desc="extract", unit="class", leave=False)
        search = self._class_search(W, b, X, order)
        terms = {heads[c].name: search(c) for c in classes}
        seconds = time.perf_counter() - start
        self.terms_ = {k: sorted(v) for k, v in terms.items()}
        self.stats_ = {"seconds": seconds, "order": order,
                       "terms_found": {k: len(v) for k, v in self.terms_.items()}}
        self.rules_ = self._ranked_rules(variables, heads, X, y)
        self.weight_, self.bias_ = W, b
        return self

    def _checked(self, X, y, output, variables, heads):
        """fit's arguments checked and completed: ``(W, b, X, variables, heads)``."""
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
        return W, b, X, variables, heads

    def _class_search(self, W: np.ndarray, b: np.ndarray, X, order: int):
        """``search(c) -> terms`` of class ``c`` for this extractor's search and mode."""
        C, n = W.shape
        if self.search == "truth-table":
            if self.order is not None and self.order < n:
                warnings.warn("truth-table search returns the exact function; order is ignored",
                              stacklevel=3)
            tables = truth_table(W, b, self.mode)
            return lambda c: espresso_truth_table(tables[:, c], n)
        if self.data_limited:
            uniq, counts = np.unique(X, axis=0, return_counts=True)
            rounded = exact_round(uniq.astype(np.float64) @ W.T + b[None, :], uniq, W, b,
                                  self.mode)

            def limited(c: int) -> list[Term]:
                if self.mode == "per-logit":
                    cands = [(j, W[c, j] > 0) for j in range(n) if W[c, j] != 0]
                else:
                    cands = [(j, p) for j in range(n) for p in (True, False)]
                return data_limited_terms(rounded[:, c], uniq, counts, cands, order,
                                          self.min_support)
            return limited
        # The classes whose logits are hardest to beat: the conditions most likely to
        # rule a class out, probed first.
        probe = np.argsort(-(b + np.maximum(W, 0.0).sum(axis=1)), kind="stable")[:33]

        def exact(c: int) -> list[Term]:
            if self.mode == "argmax" and C > 33 and argmax_probably_infeasible(
                    W, b, c, order, probe):
                return []
            return class_terms(W, b, c, self.mode, self.search, order)
        return exact

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
                "the paper's", kind="guaranteed"))
