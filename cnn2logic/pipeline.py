"""End to end: a trained model and data in, ranked + minimised rules with metrics out.

This is what ``cnn2logic extract`` runs: capture and binarise the kernel units of
``layer`` on the training and test images (thresholds fitted on the training images),
extract rules for the linear ``output`` layer, minimise them, rank them, evaluate them and
pick the paper's per-class table terms.  ``ExtractConfig(method=...)`` selects another
extractor (M-of-N, ERIC, chaining, pedagogical); :mod:`cnn2logic.extract.dispatch` runs
it through the same capture, minimisation, ranking and metrics.

Example
-------
>>> from cnn2logic.data import load_data
>>> from cnn2logic.model.training import TrainConfig, train
>>> d = load_data("embedded", train_size=300, test_size=100)
>>> model, _ = train("paper1", d, TrainConfig(iterations=20, progress=False))
>>> result = extract_model(model, d, ExtractConfig(order=3), progress=False)
>>> sorted(result.metrics)[:2]
['binarized_network_accuracy', 'ceiling_lookup']
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from torch import nn

from .data import DataSplits
from .errors import ExtractionError, ModelError
from .evaluate import (binarized_network_accuracy, ceilings, confusion, evaluate_rules,
                       rank_rules, select_table_terms, term_counts)
from .extract.approximation import MODES, SEARCHES, ApproximationExtractor
from .minimize import minimize_ruleset
from .rules import Head, Literal, Rule, RuleSet
from .units import REDUCTIONS, THRESHOLDS, BinaryCodes, codes_for

MINIMIZE = ("exact", "on-codes", "none")


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one extraction (all of them end up in the rules file's ``meta``)."""

    layer: str = "pool"
    output: str = "out"
    threshold: str = "half"
    reduce: str = "max"
    order: int | None = None
    mode: str = "argmax"
    search: str = "pruned"
    data_limited: bool = False
    min_support: int = 1
    max_terms: int | None = None
    minimize: str = "exact"
    minimize_timeout: float = 60.0
    # Which extractor (cnn2logic.extract.METHODS) and the other methods' settings; the
    # approximation path ignores them.  See cnn2logic.extract.dispatch.
    method: str = "approximation"
    beta: float = 0.01  # mofn: complexity weight
    max_n: int | None = None  # mofn: largest N tried
    alpha: float = 0.6  # eric (and chaining's lower layers): alpha * mean + gamma * std
    gamma: float = 0.7
    norm: str = "l2"  # eric: norm of a kernel's activation map
    max_depth: int | None = None  # eric / chaining: CART depth (None: eric unlimited, chain 6)
    min_samples_leaf: int = 1  # eric / chaining: CART leaf size
    chain_layers: tuple[str, ...] | None = None  # chaining: layers, lowest first
    chain_threshold: str = "median"  # chaining: binarisation of intermediate conv maps
    learner: str = "auto"  # chaining: "approximation" (linear layers) or "tree"
    target: str = "prediction"  # learned methods: fit the network's prediction or the label

    def __post_init__(self) -> None:
        if self.method != "approximation" or self.chain_layers is not None:
            from .extract.dispatch import check_settings

            if self.chain_layers is not None:
                object.__setattr__(self, "chain_layers", tuple(self.chain_layers))
            check_settings(self)
        if self.order is not None and self.order < 1:
            raise ExtractionError(f"order k must be ≥ 1, got {self.order}")
        if self.mode not in MODES:
            raise ExtractionError(f"unknown mode {self.mode!r}; choose from {MODES}")
        if self.search not in SEARCHES:
            raise ExtractionError(f"unknown search {self.search!r}; choose from {SEARCHES}")
        if self.threshold not in THRESHOLDS:
            raise ExtractionError(f"unknown threshold {self.threshold!r}; choose from {THRESHOLDS}")
        if self.reduce not in REDUCTIONS:
            raise ExtractionError(f"unknown reduction {self.reduce!r}; choose from {REDUCTIONS}")
        if self.minimize not in MINIMIZE:
            raise ExtractionError(f"unknown minimisation {self.minimize!r}; choose from {MINIMIZE}")


@dataclass
class ExtractionResult:
    rules: RuleSet
    unminimized: RuleSet
    train_codes: BinaryCodes
    test_codes: BinaryCodes
    metrics: dict[str, Any]
    table: list[dict]
    seconds: dict[str, float] = field(default_factory=dict)


def output_layer(model: nn.Module, name: str, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of the linear layer ``name`` fed directly by ``n_units`` kernel units.

    Raises
    ------
    ModelError
        No such layer, not linear, or its inputs are not the kernel units.
    """
    modules = dict(model.named_modules())
    if name not in modules or not name:
        raise ModelError(f"no layer named {name!r}; layers: {', '.join(n for n in modules if n)}")
    layer = modules[name]
    if not isinstance(layer, nn.Linear):
        raise ModelError(f"output layer {name!r} is {type(layer).__name__}, not nn.Linear")
    if layer.in_features != n_units:
        raise ModelError(
            f"output layer {name!r} has {layer.in_features} inputs but the captured layer "
            f"gives {n_units} kernel units; rules over kernel units need the output layer to "
            "read exactly one pooled value per kernel"
        )
    W = layer.weight.detach().double().numpy()
    b = (layer.bias.detach().double().numpy() if layer.bias is not None
         else np.zeros(layer.out_features))
    return W, b


def extract_model(model: nn.Module, data: DataSplits, config: ExtractConfig = ExtractConfig(),
                  *, progress: bool = True, model_name: str = "",
                  class_names: tuple[str, ...] | None = None) -> ExtractionResult:
    """Run the whole extraction (module docstring) and return rules, codes and metrics."""
    if config.method != "approximation":
        from .extract.dispatch import extract_with_method

        return extract_with_method(model, data, config, progress=progress,
                                   model_name=model_name, class_names=class_names)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    classes = class_names or data.train.classes
    train_codes, _, thresholds = codes_for(
        model, config.layer, data.train, threshold_method=config.threshold,
        reduce=config.reduce, progress=progress, class_names=classes, id_prefix="train")
    test_codes, _, _ = codes_for(model, config.layer, data.test, thresholds,
                                 reduce=config.reduce, progress=progress, class_names=classes)
    seconds["capture"] = time.perf_counter() - t0
    W, b = output_layer(model, config.output, len(train_codes.variables))
    if W.shape[0] != len(classes):
        classes = tuple(str(c) for c in range(W.shape[0]))
    heads = tuple(Head(name, "class", config.output, i) for i, name in enumerate(classes))

    t1 = time.perf_counter()
    extractor = ApproximationExtractor(order=config.order, mode=config.mode,
                                       search=config.search, data_limited=config.data_limited,
                                       min_support=config.min_support,
                                       max_terms=config.max_terms)
    extractor.fit(W, b, train_codes.bits, train_codes.predictions,
                  variables=train_codes.variables, heads=heads, progress=progress)
    seconds["extract"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    unminimized = rank_rules(extractor.rules_, train_codes.bits, train_codes.predictions)
    if config.minimize == "none":
        minimized, min_report = unminimized, {h: {"kind": "none"} for h in unminimized.head_names}
    else:
        minimized, min_report = minimize_ruleset(
            unminimized, codes=train_codes.bits if config.minimize == "on-codes" else None,
            timeout=config.minimize_timeout)
    rules = rank_rules(minimized, train_codes.bits, train_codes.predictions)
    seconds["minimize"] = time.perf_counter() - t2

    metrics = evaluate_rules(rules, test_codes.bits, test_codes.labels, test_codes.predictions)
    metrics["binarized_network_accuracy"], bin_pred = binarized_network_accuracy(
        W, b, test_codes.bits, test_codes.labels)
    metrics.update(ceilings(train_codes.bits, train_codes.labels, test_codes.bits,
                            test_codes.labels))
    unmin_metrics = evaluate_rules(unminimized, test_codes.bits, test_codes.labels,
                                   test_codes.predictions)
    metrics["unminimized"] = {k: unmin_metrics[k] for k in
                              ("rule_accuracy", "fidelity", "coverage", "zero_fire")}
    metrics["unminimized"].update(term_counts(unminimized))
    metrics.update(term_counts(rules))
    metrics["train_images"] = len(train_codes)
    table = select_table_terms(unminimized, train_codes.bits, train_codes.labels,
                               test_codes.bits, test_codes.labels)
    metrics.update(table_metrics(rules, table, test_codes))
    rule_pred = rules.predict_index(test_codes.bits)
    meta = {
        "method": "approximation",
        "model": model_name,
        "architecture": getattr(getattr(model, "spec", None), "name", type(model).__name__),
        "data": data.source,
        "layer": config.layer,
        "output_layer": config.output,
        "settings": {**asdict(config), "order_used": extractor.stats_["order"]},
        "thresholds": {"method": thresholds.method, "params": thresholds.params,
                       "values": [round(float(v), 8) for v in thresholds.values]},
        "metrics": metrics,
        "minimization": min_report,
        "truncated": extractor.stats_["truncated"],
        "table": table,
        "confusion": confusion(test_codes.predictions, rule_pred, len(heads)),
        "unminimized_rules": unminimized.to_dict()["rules"],
    }
    rules = rules.replace(meta=meta)
    seconds["total"] = time.perf_counter() - t0
    return ExtractionResult(rules, unminimized, train_codes, test_codes, metrics, table, seconds)


def table_metrics(rules: RuleSet, table: list[dict], codes: BinaryCodes) -> dict[str, Any]:
    """How the Table-1 terms alone do: precision where one fires, and how often one does.

    This is one reading of the paper's "accuracy when the output units are replaced by
    the Boolean functions" of Table 1 (the paper does not say how images with no firing
    term were counted).
    """
    chosen = tuple(Rule(e["class"], tuple(Literal(v, p) for v, p in e["body"]))
                   for e in table if e.get("body") is not None)
    if not chosen:
        return {"table_precision": None, "table_fired_share": 0.0}
    only = rules.replace(rules=chosen, default=None, meta={})
    fires = only.fires(codes.bits)
    one = fires.sum(axis=1) == 1
    pred = fires.argmax(axis=1)
    if not one.any():
        return {"table_precision": None, "table_fired_share": 0.0}
    return {"table_precision": round(float((pred[one] == codes.labels[one]).mean()), 6),
            "table_fired_share": round(float(one.mean()), 6)}
