"""Multi-layer chaining: rules for each layer's kernels from the layer below, composed.

Given the binarised units of a chain of layers, lowest first (for ``paper3``: the kernels
of conv1, conv2 and conv3, i.e. ``act1``, ``act2``, ``pool``), and the class each sample
should get:

1. **Per layer** ``L >= 1``: a Boolean function for each unit of ``L`` over the bits of
   ``L - 1``, as rules whose head is that kernel (``Head(name, "kernel", layer, index)``):

   * ``learner="approximation"`` when the units of ``L`` are a monotone activation of a
     *linear* map of ``L - 1`` (hidden fully connected layers): Tsukimoto's approximation
     method, unit by unit (``mode="per-logit"``: the unit is on when its pre-activation
     clears the threshold), exact up to ``order``;
   * ``learner="tree"`` otherwise (a conv kernel depends on the spatial maps below, not
     only on their pooled bits, so its function must be learned): one CART tree per unit
     (scikit-learn), its ``1``-leaves as rules.

   ``learner="auto"`` picks the approximation method wherever a linear map is given.
2. **Top**: class rules over the last layer's bits: the approximation method on the
   output layer when its weights are given (argmax-sound; the exact truth table up to 14
   units, the data-limited variant of order ``order`` (default 4) up to 32 units), else,
   or beyond 32 units where no short argmax-sound term exists, a CART tree to the
   targets (``stats_["top"]`` says which).
3. **Compose** by substitution and minimise: the chain is evaluated on every vertex of
   the lowest layer's cube (``compose="truth-table"``, up to ``truth_table_max`` units:
   exactly the substituted function) or on the distinct training codes
   (``compose="codes"``, beyond that; at most ``max_codes`` of them, the most frequent,
   the rest are don't-cares); each class's ON-set is minimised with espresso
   (don't-cares: nothing in truth-table mode with ``minimize="exact"``, every code never
   seen in training otherwise).  The class with most terms becomes the default and
   keeps no rules.  The result, ``rules_``, is an ordinary :class:`RuleSet` over the
   lowest layer's kernels, so it evaluates, ranks and exports like any other.

``program_`` keeps the chain itself for export: the top's class rules first, then every
kernel rule; ASP and Prolog derive the intermediate kernels (``derived/2``) and read them
back.  :meth:`predict_chain` evaluates that program in Python, and :meth:`depth_report`
measures fidelity at each depth: depth 0 reads the top layer's true bits, depth ``d``
derives the top ``d`` layers from the true bits of the layer ``d`` below the top.

Example
-------
>>> import numpy as np
>>> from cnn2logic.rules import Variable
>>> rng = np.random.default_rng(0)
>>> X0 = rng.random((500, 3)) < 0.5
>>> X1 = np.stack([X0[:, 0] & X0[:, 1], ~X0[:, 2]], axis=1)   # planted kernels
>>> y = (X1[:, 0] | X1[:, 1]).astype(int)                      # class 1 if either fires
>>> layers = [ChainLayer("a", X0, tuple(Variable(f"a.k{j + 1}", "a", j) for j in range(3))),
...           ChainLayer("b", X1, tuple(Variable(f"b.k{j + 1}", "b", j) for j in range(2)))]
>>> ext = ChainingExtractor(learner="tree").fit(layers, y)
>>> sorted(str(r) for r in ext.rules_.rules), ext.rules_.default
(['c1 ← a.k1 ∧ a.k2', 'c1 ← ¬a.k3'], 'c0')
>>> [d["fidelity"] for d in ext.depth_report([X0, X1], y)]
[1.0, 1.0]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import ExtractionError, NotFittedError
from ..rules import Head, Rule, RuleSet, Variable
from ._common import (as_codes, as_target, check_count, check_tree_params, most_frequent,
                      names_for, term_rule, tree_leaf_terms)

#: Depth of the per-kernel CART trees unless told otherwise: one unlimited tree per kernel
#: over tens of thousands of images has thousands of leaves, and a chain multiplies them.
DEFAULT_MAX_DEPTH = 6

LEARNERS = ("auto", "approximation", "tree")
TOPS = ("auto", "approximation", "tree")
COMPOSE = ("auto", "truth-table", "codes")
MINIMIZE = ("exact", "on-codes")


@dataclass(frozen=True)
class ChainLayer:
    """The binarised units of one layer of the chain.

    ``linear`` is ``(W, b)`` when every unit of this layer is on exactly when
    ``W @ x + b >= 0`` for the real-valued units ``x`` of the layer below (a hidden fully
    connected layer with its threshold folded into ``b``); None for conv layers.
    """

    name: str
    bits: np.ndarray
    variables: tuple[Variable, ...]
    linear: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False)


class ChainingExtractor:
    """Rules layer by layer, composed into class rules over the lowest layer.

    Parameters
    ----------
    learner : {"auto", "approximation", "tree"}
        How each kernel of a layer is expressed over the layer below (module docstring).
    order : int or None
        Term order of the approximation method (None: all inputs up to 12, else 3).
    max_depth, min_samples_leaf : int
        Tree settings for ``learner="tree"`` and ``top="tree"`` (depth
        :data:`DEFAULT_MAX_DEPTH` by default; None: unlimited).
    top : {"auto", "approximation", "tree"}
        Class rules over the top layer: approximation method on the output weights
        (``auto`` when they are given) or a tree to the targets.
    compose : {"auto", "truth-table", "codes"}
        Substitution over the whole cube of the lowest layer or over its training codes.
    minimize : {"exact", "on-codes"}
        espresso over the evaluated points only, or with unseen codes as don't-cares.
    truth_table_max : int
        Largest number of units for truth tables (composition and the top).
    max_codes : int
        With ``compose="codes"``: at most this many distinct codes (the most frequent).
    timeout : float
        espresso's time cap per class (seconds).
    random_state : int
        Seed of the trees' tie-breaking.

    Attributes
    ----------
    rules_ : RuleSet
        The composed, minimised class rules over the lowest layer's kernels.
    program_ : RuleSet
        The chain as rules: class rules over the top layer, then kernel rules.
    layer_rules_ : list of RuleSet
        Kernel rules of layers ``1..L-1`` (heads of kind ``"kernel"``).
    top_rules_ : RuleSet
        Class rules over the top layer's bits.
    unit_fidelity_ : list of dict
        Per layer ``L >= 1``: agreement of the derived bits with the true bits when the
        layer below is given its true bits (training data).
    stats_ : dict
        ``seconds``, composition and minimisation used.

    Raises
    ------
    ExtractionError
        Bad settings or inconsistent layers.
    """

    def __init__(self, learner: str = "auto", order: int | None = None,
                 max_depth: int | None = DEFAULT_MAX_DEPTH, min_samples_leaf: int = 1,
                 top: str = "auto",
                 compose: str = "auto", minimize: str = "exact", truth_table_max: int = 16,
                 timeout: float = 60.0, random_state: int = 0,
                 max_codes: int = 3000) -> None:
        if learner not in LEARNERS:
            raise ExtractionError(f"unknown learner {learner!r}; choose from {LEARNERS}")
        if top not in TOPS:
            raise ExtractionError(f"unknown top {top!r}; choose from {TOPS}")
        if compose not in COMPOSE:
            raise ExtractionError(f"unknown composition {compose!r}; choose from {COMPOSE}")
        if minimize not in MINIMIZE:
            raise ExtractionError(f"unknown minimisation {minimize!r}; choose from {MINIMIZE}")
        check_count("order", order, optional=True)
        check_tree_params(max_depth, min_samples_leaf)
        check_count("max_codes", max_codes)
        if not 1 <= truth_table_max <= 20:
            raise ExtractionError(f"truth_table_max must be in 1..20, got {truth_table_max}")
        if not timeout > 0:
            raise ExtractionError(f"timeout must be positive, got {timeout!r}")
        self.learner, self.order, self.max_depth = learner, order, max_depth
        self.min_samples_leaf, self.top, self.compose = int(min_samples_leaf), top, compose
        self.minimize, self.truth_table_max = minimize, int(truth_table_max)
        self.timeout, self.random_state = float(timeout), int(random_state)
        self.max_codes = int(max_codes)

    def get_params(self) -> dict[str, Any]:
        return {"learner": self.learner, "order": self.order, "max_depth": self.max_depth,
                "min_samples_leaf": self.min_samples_leaf, "top": self.top,
                "compose": self.compose, "minimize": self.minimize,
                "truth_table_max": self.truth_table_max, "timeout": self.timeout,
                "random_state": self.random_state, "max_codes": self.max_codes}

    # -- learning ----------------------------------------------------------------------
    def fit(self, layers: Sequence[ChainLayer], y: np.ndarray, *,
            output: tuple[np.ndarray, np.ndarray] | None = None,
            heads: Sequence[Head] | None = None, n_classes: int | None = None
            ) -> "ChainingExtractor":
        """Learn every layer's kernel rules and the class rules, then compose.

        Parameters
        ----------
        layers : sequence of ChainLayer
            Lowest first; all with the same training samples.
        y : (samples,) int array
            Target class per sample (normally the network's prediction).
        output : (W, b), optional
            The linear output layer over the top layer's units.
        heads : sequence of Head, optional
            The classes (default ``c0..``).
        n_classes : int, optional

        Raises
        ------
        ExtractionError
            Inconsistent layers, names or targets, or a setting that cannot apply.
        """
        start = time.perf_counter()
        layers = list(layers)
        if not layers:
            raise ExtractionError("chaining needs at least one layer")
        bits = [as_codes(L.bits, f"bits of layer {L.name!r}") for L in layers]
        S = len(bits[0])
        for L, X in zip(layers, bits):
            if len(X) != S:
                raise ExtractionError(f"layer {L.name!r} has {len(X)} samples, the lowest {S}")
            if len(L.variables) != X.shape[1]:
                raise ExtractionError(f"layer {L.name!r}: {len(L.variables)} names for "
                                      f"{X.shape[1]} units")
        names = [v.name for L in layers for v in L.variables]
        if len(set(names)) != len(names):
            raise ExtractionError("unit names must be unique across the chain's layers "
                                  "(use layer-qualified names such as 'act1.k3')")
        if output is not None:
            W, b = (np.asarray(a, dtype=np.float64) for a in output)
            if W.ndim != 2 or W.shape[1] != bits[-1].shape[1] or b.shape != (W.shape[0],):
                raise ExtractionError(f"output weights {W.shape} / bias {b.shape} do not fit "
                                      f"the top layer's {bits[-1].shape[1]} units")
            n_classes = n_classes or W.shape[0]
        if n_classes is None:
            n_classes = len(heads) if heads is not None else int(np.max(y)) + 1
        y = as_target(y, S, n_classes)
        _, heads = names_for(None, heads, 0, n_classes)
        self.layers_ = [(L.name, L.variables) for L in layers]

        self.layer_rules_ = []
        self.unit_fidelity_ = []
        for i in range(1, len(layers)):
            rs, how = self._layer_rules(layers[i - 1], bits[i - 1], layers[i], bits[i])
            self.layer_rules_.append(rs)
            derived = rs.fires(bits[i - 1])
            self.unit_fidelity_.append({
                "layer": layers[i].name, "from": layers[i - 1].name, "learner": how,
                "bit_agreement": float(np.mean(derived == bits[i])),
                "code_agreement": float(np.mean((derived == bits[i]).all(axis=1))),
                "rules": len(rs.rules)})

        self.top_rules_, top_how = self._top_rules(layers[-1], bits[-1], y, heads, output)
        self.top_learner_ = top_how
        self.rules_, compose_how, report = self._compose(bits[0], y, heads, layers[0])
        self.program_ = self._program(layers, heads)
        self.stats_ = {"seconds": time.perf_counter() - start, "compose": compose_how,
                       "top": top_how, "minimization": report}
        return self

    def _layer_rules(self, below: ChainLayer, Xb: np.ndarray, layer: ChainLayer,
                     X: np.ndarray) -> tuple[RuleSet, str]:
        heads = tuple(Head(v.name, "kernel", v.layer or layer.name, int(v.index))
                      for v in layer.variables)
        learner = self.learner
        if learner == "auto":
            learner = "approximation" if layer.linear is not None else "tree"
        if learner == "approximation":
            if layer.linear is None:
                raise ExtractionError(
                    f"layer {layer.name!r} is not a linear map of {below.name!r}: the "
                    "approximation method needs its weights; use learner='tree'")
            from .approximation import ApproximationExtractor

            W, b = (np.asarray(a, dtype=np.float64) for a in layer.linear)
            if W.shape != (X.shape[1], Xb.shape[1]) or b.shape != (X.shape[1],):
                raise ExtractionError(f"layer {layer.name!r}: weights {W.shape} do not map "
                                      f"{Xb.shape[1]} units to {X.shape[1]}")
            n = Xb.shape[1]
            order = self.order if self.order is not None else (n if n <= 12 else 3)
            ext = ApproximationExtractor(order=order, mode="per-logit")
            ext.fit(W, b, variables=below.variables, heads=heads)
            rules = ext.rules_.rules
        else:
            from sklearn.tree import DecisionTreeClassifier

            rules = []
            for u, head in enumerate(heads):
                t = X[:, u]
                if t.all():
                    rules.append(Rule(head.name, ()))  # always on: an empty body
                    continue
                if not t.any():
                    continue  # never on: no rule
                tree = DecisionTreeClassifier(max_depth=self.max_depth,
                                              min_samples_leaf=self.min_samples_leaf,
                                              random_state=self.random_state)
                tree.fit(Xb.astype(np.uint8), t)
                on_index = list(tree.classes_).index(True)
                for term, _node, value in tree_leaf_terms(tree, Xb.shape[1]):
                    if int(np.argmax(value)) == on_index:
                        rules.append(term_rule(head.name, term, below.variables))
        rs = RuleSet(below.variables, heads, tuple(rules), None,
                     {"method": "chaining", "layer": layer.name, "learner": learner})
        return rs, learner

    def _top_rules(self, layer: ChainLayer, X: np.ndarray, y: np.ndarray,
                   heads: tuple[Head, ...], output) -> tuple[RuleSet, str]:
        from ..evaluate import rank_rules

        top = self.top
        if top == "auto":
            top = "approximation" if output is not None and X.shape[1] <= 32 else "tree"
        if top == "approximation":
            if output is None:
                raise ExtractionError("top='approximation' needs the output layer's weights")
            from .approximation import ApproximationExtractor

            n = X.shape[1]
            if n <= min(self.truth_table_max, 14):
                ext = ApproximationExtractor(mode="argmax", search="truth-table")
            else:
                # Over the whole cube argmax-sound terms need about n/2 literals; the
                # data-limited variant (worst case over the training codes a term
                # covers) finds short terms that are exact on the training data.
                ext = ApproximationExtractor(order=self.order or 4, mode="argmax",
                                             data_limited=True)
            ext.fit(output[0], output[1], X, y, variables=layer.variables, heads=heads)
            return rank_rules(ext.rules_, X, y), top
        from .eric import EricExtractor

        ext = EricExtractor(max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
                            random_state=self.random_state)
        ext.fit(X, y, variables=layer.variables, heads=heads)
        return ext.rules_, top

    def _compose(self, X0: np.ndarray, y: np.ndarray, heads: tuple[Head, ...],
                 lowest: ChainLayer) -> tuple[RuleSet, str, dict]:
        from ..evaluate import rank_rules
        from .approximation import vertices
        from .pedagogical import espresso_on_off

        n0 = X0.shape[1]
        compose = self.compose
        if compose == "auto":
            compose = "truth-table" if n0 <= self.truth_table_max else "codes"
        if compose == "truth-table" and n0 > self.truth_table_max:
            raise ExtractionError(f"a truth table over {n0} units exceeds truth_table_max="
                                  f"{self.truth_table_max}; use compose='codes'")
        observed, counts = np.unique(X0, axis=0, return_counts=True)
        if compose == "codes" and len(observed) > self.max_codes:
            observed = observed[most_frequent(counts, self.max_codes)]
        if compose == "truth-table" and self.minimize == "exact":
            points = vertices(n0)
        else:
            points = observed
        cls = self.predict_chain(points)
        C = len(heads)
        terms_per_class: list[list] = []
        report: dict[str, dict] = {}
        for c in range(C):
            on, off = points[cls == c], points[cls != c]
            terms = espresso_on_off(on, off, timeout=self.timeout)
            kind = "exact" if points is not observed else "on-codes"
            if terms is None:
                terms = [tuple((j, bool(v)) for j, v in enumerate(row)) for row in on]
                kind = "none"
            terms_per_class.append(terms)
            report[heads[c].name] = {"kind": kind, "terms": len(terms), "on_points": len(on)}
        # The class with the most terms goes without rules and becomes the default:
        # every point it owned is covered by no other class's terms.
        default = int(np.argmax([len(t) for t in terms_per_class]))
        others = sum(len(t) for c, t in enumerate(terms_per_class) if c != default)
        rules = [term_rule(heads[c].name, t, lowest.variables)
                 for c in range(C) if c != default or others == 0
                 for t in terms_per_class[c]]
        raw = RuleSet(lowest.variables, heads, tuple(rules), heads[default].name,
                      {"method": "chaining", "settings": self.get_params()})
        return rank_rules(raw, X0, y, default=heads[default].name), compose, report

    def _program(self, layers: Sequence[ChainLayer], heads: tuple[Head, ...]) -> RuleSet:
        variables = tuple(v for L in layers for v in L.variables)
        kernel_heads = tuple(h for rs in self.layer_rules_ for h in rs.heads)
        rules = self.top_rules_.rules + tuple(r for rs in self.layer_rules_ for r in rs.rules)
        return RuleSet(variables, tuple(heads) + kernel_heads, rules, self.top_rules_.default,
                       {"method": "chaining-program",
                        "layers": [L.name for L in layers]})

    # -- evaluation --------------------------------------------------------------------
    def propagate(self, X: np.ndarray, start: int = 0) -> list[np.ndarray]:
        """Bits of layers ``start..top`` derived from the true bits ``X`` of ``start``.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ExtractionError
            ``start`` out of range or ``X`` of the wrong width.
        """
        if not hasattr(self, "layer_rules_"):
            raise NotFittedError("call fit() before using the chain")
        if not 0 <= start < len(self.layers_):
            raise ExtractionError(f"start layer {start} out of range 0..{len(self.layers_) - 1}")
        X = as_codes(X, "bits")
        if X.shape[1] != len(self.layers_[start][1]):
            raise ExtractionError(f"layer {self.layers_[start][0]!r} has "
                                  f"{len(self.layers_[start][1])} units, got {X.shape[1]}")
        out = [X]
        for rs in self.layer_rules_[start:]:
            out.append(rs.fires(out[-1]))
        return out

    def predict_chain(self, X0: np.ndarray, start: int = 0) -> np.ndarray:
        """Class index per row, evaluating the chain from layer ``start`` upwards.

        This is how ``program_`` evaluates (and what its ASP / Prolog export computes).
        """
        top_bits = self.propagate(X0, start)[-1]
        return self.top_rules_.predict_index(top_bits)

    def depth_report(self, layer_bits: Sequence[np.ndarray], targets: np.ndarray,
                     labels: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Fidelity (and accuracy) at each depth of the chain on one data set.

        Parameters
        ----------
        layer_bits : sequence of (samples, n_l) bool arrays
            The true bits of every layer of the chain, lowest first.
        targets : (samples,) int array
            What fidelity is measured against (the network's predictions).
        labels : (samples,) int array, optional
            True labels, for accuracy.

        Returns
        -------
        list of dict
            Depth ``d`` (0 = top layer's true bits), the layer read, fidelity, accuracy,
            and how many of the top layer's bits the chain reproduced.

        Raises
        ------
        ExtractionError
            Wrong number of layers.
        """
        if not hasattr(self, "layer_rules_"):
            raise NotFittedError("call fit() before depth_report()")
        if len(layer_bits) != len(self.layers_):
            raise ExtractionError(f"{len(layer_bits)} layers given, the chain has "
                                  f"{len(self.layers_)}")
        targets = np.asarray(targets)
        top_true = as_codes(layer_bits[-1], "bits")
        out = []
        for d in range(len(self.layers_)):
            start = len(self.layers_) - 1 - d
            derived = self.propagate(layer_bits[start], start)[-1]
            pred = self.top_rules_.predict_index(derived)
            entry: dict[str, Any] = {
                "depth": d, "reads": self.layers_[start][0],
                "fidelity": round(float(np.mean(pred == targets)), 6),
                "top_bit_agreement": round(float(np.mean(derived == top_true)), 6),
            }
            if labels is not None:
                entry["accuracy"] = round(float(np.mean(pred == np.asarray(labels))), 6)
            out.append(entry)
        return out

    @property
    def rules(self) -> RuleSet:
        if not hasattr(self, "rules_"):
            raise NotFittedError("call fit() before reading the rules")
        return self.rules_
