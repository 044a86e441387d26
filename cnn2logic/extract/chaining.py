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

This module also holds chaining's side of the extraction driver (:func:`prepare`: capture
and binarise every layer of the chain) and :func:`program_ruleset`, so it runs past the
usual ~500 lines: the extractor and what feeds it stay together.

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
from ..evaluate import binarized_network_accuracy, rank_rules
from ..rules import Head, Rule, RuleSet, Variable
from ..units import fit_binarisation, fit_thresholds
from ._common import (as_codes, as_target, check_count, check_tree_params, espresso_on_off,
                      most_frequent, names_for, term_rule, tree_leaf_terms)
from .approximation import ApproximationExtractor, default_order, vertices
from .base import Extractor, Method, Outcome, Prepared, register
from .config import CHAIN_THRESHOLDS, LEARNERS, Settings, one_of, setting
from .eric import EricExtractor
from .layers import ModelInputs, default_chain, linear_into, spatial_size

#: Depth of the per-kernel CART trees unless told otherwise: one unlimited tree per kernel
#: over tens of thousands of images has thousands of leaves, and a chain multiplies them.
DEFAULT_MAX_DEPTH = 6

TOPS = ("auto", "approximation", "tree")
COMPOSE = ("auto", "truth-table", "codes")
MINIMIZE = ("exact", "on-codes")


def _check_chain_layers(value: Any) -> None:
    if value is None:
        return
    if isinstance(value, str) or len(value) < 2:
        raise ExtractionError("chain_layers needs at least two layer names, lowest first")
    if len(set(value)) != len(value):
        raise ExtractionError(f"chain_layers repeats a layer: {list(value)}")


@dataclass(frozen=True)
class ChainingSettings(Settings):
    """Chaining's settings."""

    chain_layers: tuple[str, ...] | None = setting(
        None, parse="names", check=_check_chain_layers,
        help="chaining: comma-separated layers, lowest first (default: act1,...,pool for "
             "conv stacks, pool,hidden_act1,... with hidden FC layers)")
    chain_threshold: str = setting("median", choices=CHAIN_THRESHOLDS,
                                   check=one_of("chain threshold", list(CHAIN_THRESHOLDS)),
                                   help="chaining: binarisation of intermediate conv maps")
    learner: str = setting("auto", choices=LEARNERS, check=one_of("learner", LEARNERS),
                           help="chaining: approximation method (linear layers) or CART "
                                "trees")


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


class ChainingExtractor(Extractor):
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
        """The settings, as stored in the rules' meta."""
        return {"learner": self.learner, "order": self.order, "max_depth": self.max_depth,
                "min_samples_leaf": self.min_samples_leaf, "top": self.top,
                "compose": self.compose, "minimize": self.minimize,
                "truth_table_max": self.truth_table_max, "timeout": self.timeout,
                "random_state": self.random_state, "max_codes": self.max_codes}

    # -- learning ----------------------------------------------------------------------
    def fit(self, X: Sequence[ChainLayer], y: np.ndarray | None = None, *,
            output: tuple[np.ndarray, np.ndarray] | None = None,
            variables: Sequence[Variable] | None = None,
            heads: Sequence[Head] | None = None, n_classes: int | None = None
            ) -> "ChainingExtractor":
        """Learn every layer's kernel rules and the class rules, then compose.

        Parameters
        ----------
        X : sequence of ChainLayer
            The layers, lowest first; all with the same training samples.
        y : (samples,) int array
            Target class per sample (normally the network's prediction).
        output : (W, b), optional
            The linear output layer over the top layer's units.
        variables : ignored
            (Each layer names its own units.)
        heads : sequence of Head, optional
            The classes (default ``c0..``).
        n_classes : int, optional

        Returns
        -------
        ChainingExtractor
            ``self``.

        Raises
        ------
        ExtractionError
            Inconsistent layers, names or targets, or a setting that cannot apply.
        """
        start = time.perf_counter()
        layers = list(X)
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
            W, b = (np.asarray(a, dtype=np.float64) for a in layer.linear)
            if W.shape != (X.shape[1], Xb.shape[1]) or b.shape != (X.shape[1],):
                raise ExtractionError(f"layer {layer.name!r}: weights {W.shape} do not map "
                                      f"{Xb.shape[1]} units to {X.shape[1]}")
            n = Xb.shape[1]
            order = self.order if self.order is not None else default_order(n)
            ext = ApproximationExtractor(order=order, mode="per-logit")
            ext.fit(output=(W, b), variables=below.variables, heads=heads)
            rules = ext.rules_.rules
        else:
            # scikit-learn loads on first use: importing the extract package stays light.
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
        top = self.top
        if top == "auto":
            top = "approximation" if output is not None and X.shape[1] <= 32 else "tree"
        if top == "approximation":
            if output is None:
                raise ExtractionError("top='approximation' needs the output layer's weights")
            n = X.shape[1]
            if n <= min(self.truth_table_max, 14):
                ext = ApproximationExtractor(mode="argmax", search="truth-table")
            else:
                # Over the whole cube argmax-sound terms need about n/2 literals; the
                # data-limited variant (worst case over the training codes a term
                # covers) finds short terms that are exact on the training data.
                ext = ApproximationExtractor(order=self.order or 4, mode="argmax",
                                             data_limited=True)
            ext.fit(X, y, output=output, variables=layer.variables, heads=heads)
            return rank_rules(ext.rules_, X, y), top
        ext = EricExtractor(max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
                            random_state=self.random_state)
        ext.fit(X, y, variables=layer.variables, heads=heads)
        return ext.rules_, top

    def _compose(self, X0: np.ndarray, y: np.ndarray, heads: tuple[Head, ...],
                 lowest: ChainLayer) -> tuple[RuleSet, str, dict]:
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

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
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


def prepare(inputs: ModelInputs) -> Prepared:
    """The driver's capture step: every layer of the chain, binarised (module docstring
    of :mod:`cnn2logic.extract.run`; the top layer like the approximation method).

    Raises
    ------
    ExtractionError
        The layers to chain cannot be guessed, or nothing to chain.
    ModelError
        A layer does not exist.
    """
    config = inputs.config
    layers = tuple(config.chain_layers) if config.chain_layers else default_chain(inputs.model)
    top = inputs.grab(layers[-1], config.reduce)
    W, b = inputs.output_or_none(top[0].shape[1], required=False)
    heads = inputs.heads(W)
    chain_layers, test_bits, thresholds = _chain_layers(inputs, layers, top)
    extractor = ChainingExtractor(learner=config.learner, order=config.order,
                                  # None in the config: chaining's default depth (ERIC's
                                  # own tree is unlimited then)
                                  max_depth=(config.max_depth if config.max_depth is not None
                                             else DEFAULT_MAX_DEPTH),
                                  min_samples_leaf=config.min_samples_leaf,
                                  minimize="on-codes" if config.minimize == "on-codes"
                                  else "exact", timeout=config.minimize_timeout)

    def finish(ext: ChainingExtractor) -> Outcome:
        top_accuracy = (binarized_network_accuracy(W, b, test_bits[-1], inputs.labels_te)[0]
                        if W is not None else None)
        meta = {"layers": list(layers), "unit_fidelity": ext.unit_fidelity_,
                "depth_test": ext.depth_report(test_bits, inputs.pred_te, inputs.labels_te),
                "compose": ext.stats_["compose"], "top": ext.stats_["top"],
                "program": {key: ext.program_.to_dict()[key]
                            for key in ("variables", "heads", "rules", "default")},
                "binarized_top_accuracy": top_accuracy}
        ext.test_bits_ = test_bits
        train, test = inputs.codes(chain_layers[0].bits, test_bits[0], ext.rules_.variables,
                                   heads)
        return Outcome(ext.rules_, train, test, inputs.target_tr, ext.rules_.default,
                       top_accuracy, thresholds,
                       settings={"chain_layers_used": list(layers)},
                       meta={"layer": layers[0], "chaining": meta})

    return Prepared(extractor, {"X": chain_layers, "y": inputs.target_tr,
                                "output": (W, b) if W is not None else None,
                                "heads": heads}, finish)


def _chain_layers(inputs: ModelInputs, layers: Sequence[str], top_units
                  ) -> tuple[list[ChainLayer], list[np.ndarray], dict[str, Any]]:
    """Capture and binarise ``layers``: the chain's layers, test bits and thresholds."""
    config = inputs.config
    chain: list[ChainLayer] = []
    test_bits: list[np.ndarray] = []
    thresholds: dict[str, Any] = {}
    previous: tuple[str, int, np.ndarray] | None = None
    for k, name in enumerate(layers):
        if k == len(layers) - 1:
            U_tr, U_te, units = top_units
            spatial = 1
        else:
            spatial = spatial_size(inputs.model, name, inputs.x_tr[:1])
            U_tr, U_te, units = inputs.grab(name, config.reduce if spatial == 1
                                            else config.norm)
        if spatial == 1:
            th = fit_binarisation(U_tr, config.threshold, inputs.target_tr, alpha=config.alpha,
                                  gamma=config.gamma)
            how = {"method": th.method, "params": th.params, "reduce": config.reduce}
        else:
            # Large conv maps: a max of sigmoids saturates near 1 for every image, so
            # they are quantised by a norm of the whole map (ERIC); the per-kernel
            # median keeps each bit informative, ERIC's own alpha*mean + gamma*std is
            # chain_threshold="eric".
            th = fit_thresholds(U_tr, config.chain_threshold, alpha=config.alpha,
                                gamma=config.gamma)
            how = {"method": th.method, "params": th.params, "reduce": config.norm}
        how["values"] = [round(float(v), 8) for v in th.values]
        thresholds[name] = how
        linear = None
        if previous is not None and spatial == 1:
            linear = linear_into(inputs.model, previous[0], name, previous[1], th.values)
        chain.append(ChainLayer(name, th.apply(U_tr), units.variables, linear))
        test_bits.append(th.apply(U_te))
        previous = (name, U_tr.shape[1], th.values)
    return chain, test_bits, thresholds


def program_ruleset(rules: RuleSet) -> RuleSet:
    """The layered chain program stored in a chaining rules file's ``meta``.

    Raises
    ------
    ExtractionError
        ``rules`` was not made by the chaining method.
    """
    chain = rules.meta.get("chaining")
    if not isinstance(chain, dict) or "program" not in chain:
        raise ExtractionError("these rules carry no chain program (not made by --method "
                              "chaining)")
    doc = rules.to_dict()
    doc.update(chain["program"])
    doc["meta"] = {"method": "chaining-program", "layers": chain.get("layers", [])}
    return RuleSet.from_dict(doc)


register(Method("chaining", ChainingExtractor, ChainingSettings, prepare,
                "layer by layer, composed"))
