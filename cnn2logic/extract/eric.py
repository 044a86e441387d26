"""ERIC-style rules (Inakoshi, Townsend, Kasioumis 2020): quantised kernels + a CART tree.

1. **Quantise** every kernel: a norm of its activation map per image (captured with
   :func:`cnn2logic.units.capture`, ``reduce="l1"``/``"l2"``/``"max"``/``"mean"``) is
   compared with ``theta_k = alpha * mean_k + gamma * std_k`` over the training images
   (:func:`cnn2logic.units.fit_thresholds` with ``"eric"``; defaults ``alpha = 0.6``,
   ``gamma = 0.7``, as in the successor's published code).  Inputs that are already 0/1
   are kept as they are.
2. **Learn** a decision tree from the binary kernel vector to the class (scikit-learn's
   CART, ``DecisionTreeClassifier``; by default the target is the network's prediction,
   so the rules describe the network rather than the data).
3. **Read off** one rule per leaf: the path's tests, ``k`` for the ``1`` branch and
   ``not k`` for the ``0`` branch, concluding the leaf's majority class, as a logic
   program with negation: ``class(X, 3) :- k6(X), not k1(X).``.  Leaves partition the
   input space, so one class's leaves can be left out and that class made the
   default (``drop_default``, on by default: the class with the most literals in its
   leaves); the rules then predict exactly what the tree predicts.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.random((300, 3)) < 0.5
>>> y = (X[:, 0] & ~X[:, 1]).astype(int)                  # planted: c1 <- k1 and not k2
>>> ext = EricExtractor().fit(X, y)
>>> [str(r) for r in ext.rules_.rules], ext.rules_.default
(['c1 ← k1 ∧ ¬k2'], 'c0')
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import ExtractionError, NotFittedError
from ..evaluate import rank_rules
from ..rules import Head, RuleSet, Variable
from ..units import REDUCTIONS, Thresholds, fit_thresholds
from .base import Extractor, Method, Outcome, Prepared, register
from .config import Settings, at_least_one, finite, one_of, setting
from .layers import ModelInputs, thresholds_meta
from ._common import (as_matrix, as_target, check_tree_params, names_for, term_rule,
                      tree_leaf_terms)

CRITERIA = ("gini", "entropy", "log_loss")


@dataclass(frozen=True)
class EricSettings(Settings):
    """ERIC's settings (chaining's lower layers and pedagogical share some)."""

    alpha: float = setting(0.6, parse="float", check=finite("alpha"),
                           help="eric: threshold ALPHA * mean + GAMMA * std of each "
                                "kernel's norm")
    gamma: float = setting(0.7, parse="float", check=finite("gamma"))
    norm: str = setting("l2", choices=REDUCTIONS, check=one_of("norm", REDUCTIONS),
                        help="eric / chaining: norm of a kernel's activation map")
    max_depth: int | None = setting(None, parse="positive_int", check=at_least_one("max_depth"),
                                    help="eric / chaining: depth limit of the CART trees "
                                         "(default: unlimited for eric, 6 for chaining)")
    min_samples_leaf: int = setting(1, parse="positive_int",
                                    check=at_least_one("min_samples_leaf"),
                                    help="eric / chaining: fewest training images per leaf")


class EricExtractor(Extractor):
    """Quantise kernels ERIC's way and learn class rules with a CART decision tree.

    Parameters
    ----------
    alpha, gamma : float
        Threshold ``alpha * mean + gamma * std`` of each kernel's norm.
    max_depth : int or None
        Depth limit of the tree (None: grow until leaves are pure or too small).
    min_samples_leaf : int
        Fewest training samples per leaf.
    criterion : {"gini", "entropy", "log_loss"}
    drop_default : bool
        Leave out the leaves of the class with most literals and make it the default.
    random_state : int
        Seed of the tree's tie-breaking among equally good splits (deterministic output).

    Attributes
    ----------
    rules_ : RuleSet
        One conjunction per leaf (minus the default class's), ranked with
        :func:`cnn2logic.evaluate.rank_rules`.
    thresholds_ : cnn2logic.units.Thresholds
        The fitted per-kernel thresholds (0.5 when ``fit`` was given bits).
    tree_ : sklearn.tree.DecisionTreeClassifier
    stats_ : dict
        ``seconds``, ``leaves``, ``depth``, training agreement of the tree.

    Raises
    ------
    ExtractionError
        Bad settings or inputs.
    """

    def __init__(self, alpha: float = 0.6, gamma: float = 0.7, max_depth: int | None = None,
                 min_samples_leaf: int = 1, criterion: str = "gini", drop_default: bool = True,
                 random_state: int = 0) -> None:
        for name, v in (("alpha", alpha), ("gamma", gamma)):
            if not np.isfinite(v):
                raise ExtractionError(f"{name} must be a finite number, got {v!r}")
        check_tree_params(max_depth, min_samples_leaf)
        if criterion not in CRITERIA:
            raise ExtractionError(f"unknown criterion {criterion!r}; choose from {CRITERIA}")
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.max_depth = max_depth
        self.min_samples_leaf = int(min_samples_leaf)
        self.criterion = criterion
        self.drop_default = bool(drop_default)
        self.random_state = int(random_state)

    def get_params(self) -> dict[str, Any]:
        """The settings, as stored in the rules' meta."""
        return {"alpha": self.alpha, "gamma": self.gamma, "max_depth": self.max_depth,
                "min_samples_leaf": self.min_samples_leaf, "criterion": self.criterion,
                "drop_default": self.drop_default, "random_state": self.random_state}

    def fit_thresholds(self, units: np.ndarray) -> "EricExtractor":
        """Fit ``alpha * mean + gamma * std`` per kernel (0.5 for bool inputs).

        Returns
        -------
        EricExtractor
            ``self``, with ``thresholds_`` set.

        Raises
        ------
        ExtractionError
            ``units`` is not a finite (samples, kernels) matrix.
        """
        U = as_matrix(units, "kernel norms")
        if U.dtype == bool:
            self.thresholds_ = Thresholds(np.full(U.shape[1], 0.5), "given-bits", {})
        else:
            self.thresholds_ = fit_thresholds(U, "eric", alpha=self.alpha, gamma=self.gamma)
        return self

    def transform(self, units: np.ndarray) -> np.ndarray:
        """Quantise kernel norms with the fitted thresholds (bool inputs pass through).

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ExtractionError
            Wrong number of columns.
        """
        if not hasattr(self, "thresholds_"):
            raise NotFittedError("call fit() before transform()")
        U = as_matrix(units, "kernel norms")
        if U.shape[1] != len(self.thresholds_.values):
            raise ExtractionError(f"{U.shape[1]} kernels given, {len(self.thresholds_.values)} "
                                  "fitted")
        return U if U.dtype == bool else self.thresholds_.apply(U)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            output: tuple[np.ndarray, np.ndarray | None] | None = None,
            variables: Sequence[Variable] | None = None, heads: Sequence[Head] | None = None,
            n_classes: int | None = None) -> "EricExtractor":
        """Quantise, grow the tree, and turn its leaves into rules.

        Parameters
        ----------
        X : (samples, kernels) float or bool array
            Kernel norms of the training images (or already binary codes).
        y : (samples,) int array
            Target class per sample (normally the network's prediction).
        variables, heads : optional
            Names of the kernels and classes (default ``k1..``, ``c0..``).
        output : ignored
            (The tree does not read the output layer; accepted for the common signature.)
        n_classes : int, optional
            Number of classes (default: ``len(heads)``, else ``max(y) + 1``).

        Returns
        -------
        EricExtractor
            ``self``.

        Raises
        ------
        ExtractionError
            Shapes disagree or ``y`` is invalid.
        """
        # scikit-learn loads on first fit: importing the extract package stays light.
        from sklearn.tree import DecisionTreeClassifier

        start = time.perf_counter()
        U = as_matrix(X, "kernel norms")
        if n_classes is None:
            n_classes = len(heads) if heads is not None else int(np.max(y)) + 1
        y = as_target(y, len(U), n_classes)
        variables, heads = names_for(variables, heads, U.shape[1], n_classes)
        self.fit_thresholds(U)
        X = self.transform(U)
        tree = DecisionTreeClassifier(criterion=self.criterion, max_depth=self.max_depth,
                                      min_samples_leaf=self.min_samples_leaf,
                                      random_state=self.random_state)
        tree.fit(X.astype(np.uint8), y)
        self.tree_ = tree
        leaves = []
        for term, node, value in tree_leaf_terms(tree, X.shape[1]):
            cls = int(tree.classes_[int(np.argmax(value))])
            leaves.append((term, cls))
        # The class whose leaves cost most literals becomes the default (ties: lower
        # index), so the program lists the cheaper classes only.
        cost = np.zeros(n_classes)
        for term, cls in leaves:
            cost[cls] += len(term) + 1
        default = int(np.argmax(cost)) if self.drop_default else int(np.bincount(
            y, minlength=n_classes).argmax())
        # A single-class tree keeps its one leaf: a rule set needs a rule to evaluate.
        drop = self.drop_default and any(cls != default for _, cls in leaves)
        rules = [term_rule(heads[cls].name, term, variables) for term, cls in leaves
                 if not (drop and cls == default)]
        raw = RuleSet(variables, heads, tuple(rules), heads[default].name,
                      {"method": "eric", "settings": self.get_params()})
        self.rules_ = rank_rules(raw, X, y, default=heads[default].name)
        pred = tree.predict(X.astype(np.uint8))
        self.stats_ = {"seconds": time.perf_counter() - start, "leaves": len(leaves),
                       "depth": int(tree.get_depth()),
                       "train_agreement": float(np.mean(pred == y))}
        return self

    def predict_tree(self, X: np.ndarray) -> np.ndarray:
        """The tree's own class predictions on binary codes (the rules predict the same).

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        if not hasattr(self, "tree_"):
            raise NotFittedError("call fit() before predict_tree()")
        return self.tree_.predict(np.asarray(X).astype(np.uint8))


def prepare(inputs: ModelInputs) -> Prepared:
    """The driver's capture step: ``config.norm`` of each kernel's map on ``config.layer``;
    the extractor's ``alpha * mean + gamma * std`` thresholds binarise it.

    Raises
    ------
    ModelError
        ``config.layer`` does not exist.
    """
    config = inputs.config
    U_tr, U_te, units = inputs.grab(config.layer, config.norm)
    W, b = inputs.output_or_none(U_tr.shape[1], required=False)
    heads = inputs.heads(W)
    extractor = EricExtractor(alpha=config.alpha, gamma=config.gamma,
                              max_depth=config.max_depth,
                              min_samples_leaf=config.min_samples_leaf)

    def finish(ext: EricExtractor) -> Outcome:
        bits_tr, bits_te = ext.transform(U_tr), ext.transform(U_te)
        train, test = inputs.codes(bits_tr, bits_te, units.variables, heads)
        tree = {k: v for k, v in ext.stats_.items() if k != "seconds"}
        return Outcome(ext.rules_, train, test, inputs.target_tr, ext.rules_.default,
                       inputs.binarized_accuracy(W, b, bits_te),
                       thresholds_meta(ext.thresholds_, norm=config.norm),
                       meta={"eric": {"tree": tree}})

    return Prepared(extractor, {"X": U_tr, "y": inputs.target_tr, "output": None,
                                "variables": units.variables, "heads": heads}, finish)


register(Method("eric", EricExtractor, EricSettings, prepare,
                "CART tree over quantised kernels"))
