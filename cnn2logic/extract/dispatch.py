"""``extract_model`` for the methods other than the approximation method.

:func:`cnn2logic.pipeline.extract_model` hands over here when ``config.method`` is not
``"approximation"``.  Every method goes through the same steps and reports the same
metrics and files as the approximation path: capture the kernel units of the training
and test images, binarise them (each method its own way), fit the extractor on the
training codes with the network's predictions (or the labels) as target, minimise with
espresso as ``config.minimize`` says (M-of-N rules are left as they are), rank, and
evaluate on the test codes.

How each method binarises:

``mofn``
    the information-gain split of each unit w.r.t. the predicted class (its own);
``eric``
    ``config.norm`` of each kernel's activation map against ``alpha * mean + gamma * std``;
``pedagogical``
    the pipeline's ``config.threshold`` / ``config.reduce``, like the approximation method;
``chaining``
    layers read directly by a linear layer or pooled to one value per kernel use
    ``config.threshold`` / ``config.reduce``; larger conv maps (intermediate conv layers)
    ``config.norm`` of the map against ``config.chain_threshold`` (the per-kernel median
    by default; ``"eric"`` for ERIC's ``alpha * mean + gamma * std``).

Example
-------
>>> from cnn2logic.data import load_data
>>> from cnn2logic.pipeline import ExtractConfig, extract_model
>>> from cnn2logic.model.training import TrainConfig, train
>>> d = load_data("embedded", train_size=300, test_size=100)
>>> model, _ = train("paper1", d, TrainConfig(iterations=20, progress=False))
>>> r = extract_model(model, d, ExtractConfig(method="mofn"), progress=False)
>>> r.rules.meta["method"], "fidelity" in r.metrics
('mofn', True)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from torch import nn

from ..errors import ExtractionError, ModelError
from ..rules import Head, RuleSet

if TYPE_CHECKING:  # pragma: no cover
    from ..data import DataSplits
    from ..pipeline import ExtractConfig, ExtractionResult

TARGETS = ("prediction", "label")


def check_settings(config: "ExtractConfig") -> None:
    """Validate the method-specific fields of an :class:`ExtractConfig`.

    Raises
    ------
    ExtractionError
        Unknown method, norm, learner or target, or a value out of range.
    """
    from . import METHODS
    from .chaining import LEARNERS
    from ..units import REDUCTIONS, THRESHOLDS

    if config.method not in METHODS:
        raise ExtractionError(f"unknown method {config.method!r}; choose from {list(METHODS)}")
    if not (math.isfinite(config.beta) and config.beta >= 0):
        raise ExtractionError(f"beta must be a finite number ≥ 0, got {config.beta}")
    if config.max_n is not None and config.max_n < 1:
        raise ExtractionError(f"max_n must be ≥ 1, got {config.max_n}")
    for name in ("alpha", "gamma"):
        if not math.isfinite(getattr(config, name)):
            raise ExtractionError(f"{name} must be a finite number")
    if config.norm not in REDUCTIONS:
        raise ExtractionError(f"unknown norm {config.norm!r}; choose from {REDUCTIONS}")
    if config.max_depth is not None and config.max_depth < 1:
        raise ExtractionError(f"max_depth must be ≥ 1, got {config.max_depth}")
    if config.min_samples_leaf < 1:
        raise ExtractionError(f"min_samples_leaf must be ≥ 1, got {config.min_samples_leaf}")
    if config.learner not in LEARNERS:
        raise ExtractionError(f"unknown learner {config.learner!r}; choose from {LEARNERS}")
    if config.chain_threshold not in THRESHOLDS or config.chain_threshold == "half":
        raise ExtractionError(f"unknown chain threshold {config.chain_threshold!r}; choose "
                              f"from {[t for t in THRESHOLDS if t != 'half']}")
    if config.target not in TARGETS:
        raise ExtractionError(f"unknown target {config.target!r}; choose from {TARGETS}")
    if config.chain_layers is not None:
        if isinstance(config.chain_layers, str) or len(config.chain_layers) < 2:
            raise ExtractionError("chain_layers needs at least two layer names, lowest first")
        if len(set(config.chain_layers)) != len(config.chain_layers):
            raise ExtractionError(f"chain_layers repeats a layer: {list(config.chain_layers)}")


def default_chain(model: nn.Module) -> tuple[str, ...]:
    """The layers to chain for a :class:`~cnn2logic.model.spec.SpecCNN`, lowest first.

    Hidden fully connected layers: ``pool, hidden_act1, ...``; otherwise every conv
    layer's activation below the last, then ``pool`` (``paper3``: act1, act2, pool).

    Raises
    ------
    ExtractionError
        The model is not a SpecCNN (name the layers explicitly) or has nothing to chain.
    """
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ExtractionError("cannot guess the layers to chain for this model; "
                              "give them explicitly (--chain-layers a,b,c)")
    if spec.hidden:
        return ("pool",) + tuple(f"hidden_act{j}" for j in range(1, len(spec.hidden) + 1))
    if len(spec.convs) < 2:
        raise ExtractionError(f"{spec.name} has one conv layer and no hidden layer: there is "
                              "nothing to chain; use another method")
    return tuple(f"act{i}" for i in range(1, len(spec.convs))) + ("pool",)


def _spatial_size(model: nn.Module, layer: str, sample) -> int:
    """Positions per kernel in ``layer``'s output (1 for (n, c) outputs)."""
    import torch

    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        raise ModelError(f"no layer named {layer!r}; layers: "
                         f"{', '.join(n for n in modules if n)}")
    shape: list = []
    handle = modules[layer].register_forward_hook(
        lambda _m, _i, out: shape.append(tuple(out.shape)))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(sample)
    finally:
        handle.remove()
        model.train(was)
    s = shape[0]
    return int(np.prod(s[2:])) if len(s) == 4 else 1


def _reads_directly(model: nn.Module, layer: str, output: str) -> bool:
    """Whether ``output`` reads ``layer``'s units with only a flatten between them.

    Unknown when the layers are not direct children in order (any CNN): then True, as the
    approximation path assumes whenever the sizes match.
    """
    names = [n for n, _ in model.named_children()]
    if layer not in names or output not in names:
        return True
    children = dict(model.named_children())
    between = names[names.index(layer) + 1:names.index(output)]
    return all(isinstance(children[n], nn.Flatten) for n in between)


def _linear_into(model: nn.Module, below: str, layer: str, n_below: int,
                 thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(W, b')`` when ``layer`` = activation(Linear(flatten(below))), else None.

    ``b'`` folds each unit's binarisation threshold into the bias (``act(z) >= t`` iff
    ``z >= act^-1(t)``), so the unit is on exactly when ``W x + b' >= 0``.
    """
    children = list(model.named_children())
    names = [n for n, _ in children]
    if below not in names or layer not in names:
        return None
    i, j = names.index(below), names.index(layer)
    between = [m for _, m in children[i + 1:j]]
    if not between or not isinstance(between[-1], nn.Linear):
        return None
    if any(not isinstance(m, nn.Flatten) for m in between[:-1]):
        return None
    lin, act = between[-1], children[j][1]
    if lin.in_features != n_below:
        return None
    W = lin.weight.detach().double().numpy()
    b = (lin.bias.detach().double().numpy() if lin.bias is not None
         else np.zeros(lin.out_features))
    t = np.asarray(thresholds, dtype=np.float64)
    if isinstance(act, nn.Sigmoid):
        if ((t <= 0) | (t >= 1)).any():
            return None
        inv = np.log(t / (1 - t))
    elif isinstance(act, nn.Tanh):
        if (np.abs(t) >= 1).any():
            return None
        inv = np.arctanh(t)
    elif isinstance(act, nn.Identity):
        inv = t
    elif isinstance(act, nn.ReLU):
        if (t <= 0).any():
            return None  # relu(z) >= t <= 0 holds always: not a threshold on z
        inv = t
    else:
        return None
    return W, b - inv


def extract_with_method(model: nn.Module, data: "DataSplits", config: "ExtractConfig", *,
                        progress: bool = True, model_name: str = "",
                        class_names: tuple[str, ...] | None = None) -> "ExtractionResult":
    """Run ``config.method`` end to end (module docstring); same result type and metrics
    as :func:`cnn2logic.pipeline.extract_model`.

    Raises
    ------
    ExtractionError
        Bad settings, or a method that cannot apply to this model.
    ModelError
        A layer name does not exist or the output layer does not fit.
    """
    from ..evaluate import (binarized_network_accuracy, ceilings, confusion, evaluate_rules,
                            rank_rules, select_table_terms, term_counts)
    from ..minimize import minimize_ruleset
    from ..model.spec import predict_logits
    from ..pipeline import ExtractionResult, output_layer, table_metrics
    from ..units import BinaryCodes, capture, fit_thresholds

    check_settings(config)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    classes = tuple(class_names or data.train.classes)
    x_tr, y_tr = data.train.tensors()
    x_te, y_te = data.test.tensors()
    labels_tr, labels_te = y_tr.numpy(), y_te.numpy()
    pred_tr = predict_logits(model, x_tr).argmax(1).numpy()
    pred_te = predict_logits(model, x_te).argmax(1).numpy()
    target_tr = pred_tr if config.target == "prediction" else labels_tr

    def grab(layer: str, reduce: str) -> tuple[np.ndarray, np.ndarray, Any]:
        tr = capture(model, layer, x_tr, reduce=reduce, progress=progress,
                     qualified_names=config.method == "chaining")
        te = capture(model, layer, x_te, reduce=reduce, progress=progress,
                     qualified_names=config.method == "chaining")
        return tr.values, te.values, tr

    method_meta: dict[str, Any] = {}
    extractor: Any
    if config.method == "chaining":
        layers = tuple(config.chain_layers) if config.chain_layers else default_chain(model)
        top = layers[-1]
    else:
        top = config.layer
    U_tr, U_te, units = grab(top, config.norm if config.method == "eric" else config.reduce)
    n_top = U_tr.shape[1]
    try:
        W, b = output_layer(model, config.output, n_top)
    except ModelError:
        if config.method in ("mofn",):
            raise
        W = b = None
    n_classes = W.shape[0] if W is not None else max(len(classes), int(pred_tr.max()) + 1)
    if len(classes) != n_classes:
        classes = tuple(str(c) for c in range(n_classes))
    heads = tuple(Head(name, "class", config.output, i) for i, name in enumerate(classes))
    variables = units.variables
    seconds["capture"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    if config.method == "mofn":
        from .mofn import MofNExtractor

        extractor = MofNExtractor(beta=config.beta, max_n=config.max_n)
        extractor.fit(U_tr, W, target_tr, variables=variables, heads=heads)
        bits_tr, bits_te = extractor.transform(U_tr), extractor.transform(U_te)
        thresholds_meta = {"method": "info-gain", "params": {"target": config.target},
                           "values": [round(float(v), 8) for v in extractor.splits_]}
        method_meta = {"curve": extractor.curve_, "chosen": extractor.chosen_}
    elif config.method == "eric":
        from .eric import EricExtractor

        extractor = EricExtractor(alpha=config.alpha, gamma=config.gamma,
                                  max_depth=config.max_depth,
                                  min_samples_leaf=config.min_samples_leaf)
        extractor.fit(U_tr, target_tr, variables=variables, heads=heads)
        bits_tr, bits_te = extractor.transform(U_tr), extractor.transform(U_te)
        th = extractor.thresholds_
        thresholds_meta = {"method": th.method, "params": {**th.params, "norm": config.norm},
                           "values": [round(float(v), 8) for v in th.values]}
        method_meta = {"tree": {k: v for k, v in extractor.stats_.items() if k != "seconds"}}
    elif config.method == "pedagogical":
        from .pedagogical import PedagogicalExtractor

        th = fit_thresholds(U_tr, config.threshold, alpha=config.alpha, gamma=config.gamma)
        bits_tr, bits_te = th.apply(U_tr), th.apply(U_te)
        extractor = PedagogicalExtractor(timeout=config.minimize_timeout)
        extractor.fit(bits_tr, target_tr, variables=variables, heads=heads)
        thresholds_meta = {"method": th.method, "params": th.params,
                           "values": [round(float(v), 8) for v in th.values]}
        method_meta = {"lookup": {k: v for k, v in extractor.stats_.items()
                                  if k != "seconds"}}
    elif config.method == "chaining":
        bits_tr, bits_te, thresholds_meta, method_meta, extractor = _chain(
            model, config, layers, x_tr, x_te, target_tr, heads, grab, (U_tr, U_te, units),
            W, b, pred_te, labels_te)
        variables = extractor.rules_.variables
    else:  # pragma: no cover - check_settings rejects everything else
        raise ExtractionError(f"method {config.method!r} is not handled here")
    seconds["extract"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    unminimized = extractor.rules_
    if config.minimize == "none":
        minimized = unminimized
        min_report = {h: {"kind": "none"} for h in unminimized.head_names}
    else:
        minimized, min_report = minimize_ruleset(
            unminimized, codes=bits_tr if config.minimize == "on-codes" else None,
            timeout=config.minimize_timeout)
    rules = rank_rules(minimized, bits_tr, target_tr, default=unminimized.default)
    seconds["minimize"] = time.perf_counter() - t2

    train_codes = BinaryCodes(bits_tr, tuple(variables), classes, labels_tr, pred_tr,
                              tuple(f"train{i}" for i in range(len(labels_tr))))
    test_codes = BinaryCodes(bits_te, tuple(variables), classes, labels_te, pred_te,
                             tuple(f"img{i}" for i in range(len(labels_te))))
    metrics = evaluate_rules(rules, bits_te, labels_te, pred_te)
    if W is not None and config.method != "chaining" and _reads_directly(
            model, config.layer, config.output):
        metrics["binarized_network_accuracy"], _ = binarized_network_accuracy(
            W, b, bits_te, labels_te)
    elif W is not None:
        metrics["binarized_network_accuracy"] = method_meta["binarized_top_accuracy"]
    else:
        # The output layer does not read these units (e.g. ERIC on a conv map below the
        # pooling): applying it to their bits would measure nothing.
        metrics["binarized_network_accuracy"] = None
    metrics.update(ceilings(bits_tr, labels_tr, bits_te, labels_te))
    unmin_metrics = evaluate_rules(unminimized, bits_te, labels_te, pred_te)
    metrics["unminimized"] = {k: unmin_metrics[k] for k in
                              ("rule_accuracy", "fidelity", "coverage", "zero_fire")}
    metrics["unminimized"].update(term_counts(unminimized))
    metrics.update(term_counts(rules))
    metrics["train_images"] = len(labels_tr)
    table = select_table_terms(unminimized, bits_tr, labels_tr, bits_te, labels_te)
    metrics.update(table_metrics(rules, table, test_codes))
    rule_pred = rules.predict_index(bits_te)
    settings = asdict(config)
    if config.method == "chaining":
        settings["chain_layers_used"] = list(layers)
    meta = {
        "method": config.method,
        "model": model_name,
        "architecture": getattr(getattr(model, "spec", None), "name", type(model).__name__),
        "data": data.source,
        "layer": layers[0] if config.method == "chaining" else config.layer,
        "output_layer": config.output,
        "settings": settings,
        "thresholds": thresholds_meta,
        "metrics": metrics,
        "minimization": min_report,
        "table": table,
        "confusion": confusion(pred_te, rule_pred, len(heads)),
        "unminimized_rules": unminimized.to_dict()["rules"],
        config.method: method_meta,
    }
    rules = rules.replace(meta=meta)
    seconds["total"] = time.perf_counter() - t0
    result = ExtractionResult(rules, unminimized, train_codes, test_codes, metrics, table,
                              seconds)
    result.extractor = extractor
    return result


def _chain(model, config, layers: Sequence[str], x_tr, x_te, target_tr, heads, grab, top_units,
           W, b, pred_te, labels_te):
    """Capture, binarise and chain ``layers``; returns codes, meta and the extractor."""
    from ..evaluate import binarized_network_accuracy
    from ..units import fit_thresholds
    from .chaining import DEFAULT_MAX_DEPTH, ChainingExtractor, ChainLayer

    chain_layers: list[ChainLayer] = []
    test_bits: list[np.ndarray] = []
    thresholds_meta: dict[str, Any] = {}
    previous: tuple[str, int, np.ndarray] | None = None
    for k, name in enumerate(layers):
        if k == len(layers) - 1:
            U_tr, U_te, units = top_units
            spatial = 1
        else:
            spatial = _spatial_size(model, name, x_tr[:1])
            reduce = config.reduce if spatial == 1 else config.norm
            U_tr, U_te, units = grab(name, reduce)
        if spatial == 1:
            th = fit_thresholds(U_tr, config.threshold, alpha=config.alpha, gamma=config.gamma)
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
        thresholds_meta[name] = how
        linear = None
        if previous is not None and spatial == 1:
            linear = _linear_into(model, previous[0], name, previous[1], th.values)
        chain_layers.append(ChainLayer(name, th.apply(U_tr), units.variables, linear))
        test_bits.append(th.apply(U_te))
        previous = (name, U_tr.shape[1], th.values)
    extractor = ChainingExtractor(learner=config.learner, order=config.order,
                                  # None in the config: chaining's default depth (ERIC's
                                  # own tree is unlimited then)
                                  max_depth=(config.max_depth if config.max_depth is not None
                                             else DEFAULT_MAX_DEPTH),
                                  min_samples_leaf=config.min_samples_leaf,
                                  minimize="on-codes" if config.minimize == "on-codes"
                                  else "exact", timeout=config.minimize_timeout)
    output = (W, b) if W is not None else None
    extractor.fit(chain_layers, target_tr, output=output, heads=heads)
    meta: dict[str, Any] = {
        "layers": list(layers),
        "unit_fidelity": extractor.unit_fidelity_,
        "depth_test": extractor.depth_report(test_bits, pred_te, labels_te),
        "compose": extractor.stats_["compose"],
        "top": extractor.stats_["top"],
        "program": {key: extractor.program_.to_dict()[key]
                    for key in ("variables", "heads", "rules", "default")},
        "binarized_top_accuracy": (binarized_network_accuracy(W, b, test_bits[-1], labels_te)[0]
                                   if W is not None else None),
    }
    extractor.test_bits_ = test_bits
    return chain_layers[0].bits, test_bits[0], thresholds_meta, meta, extractor


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
