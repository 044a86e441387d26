"""The one extraction driver: a trained model and data in, ranked + minimised rules out.

This is what ``cnn2logic extract`` runs, for every registered method
(:data:`cnn2logic.extract.base.REGISTRY`):

1. **capture**: the method's ``prepare`` step captures the kernel units of the training
   and test images and binarises them its own way (thresholds fitted on the training
   images), and sets up its extractor;
2. **fit** the extractor (one signature for all methods);
3. **minimise** every class's DNF with espresso as ``config.minimize`` says (M-of-N
   rules are left as they are);
4. **rank** the rules on the training codes;
5. **evaluate** them on the test codes (accuracy, fidelity, ceilings, the paper's
   per-class table terms);
6. **meta**: the settings, binarisation and metrics go into the rules file's ``meta``,
   with every kernel's class profile and label (:mod:`cnn2logic.labels`).

With ``config.group_kernels`` the method learns over kernel groups
(:mod:`cnn2logic.extract.grouping`) and the rules are declared over every kernel and
group at the end.

Example
-------
>>> from cnn2logic.data import load_data
>>> from cnn2logic.model.training import TrainConfig, train
>>> d = load_data("embedded", train_size=300, test_size=100)
>>> model, _ = train("paper1", d, TrainConfig(iterations=20, progress=False))
>>> result = extract_model(model, d, ExtractConfig(order=3), progress=False)
>>> sorted(result.metrics)[:2]
['binarized_network_accuracy', 'ceiling_lookup']
>>> extract_model(model, d, ExtractConfig(method="mofn"), progress=False).rules.meta["method"]
'mofn'
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from torch import nn

from ..data import DataSplits, as_splits
from ..evaluate import (ceilings, confusion, evaluate_rules, rank_rules, select_table_terms,
                        term_counts)
from ..labels import META_KEY as LABELS_KEY, check_names, labels_meta
from ..minimize import minimize_ruleset
from ..model.factory import build_info
from ..model.layers import AUTO, resolve_layers
from ..rules import Literal, Rule, RuleSet
from ..units import BinaryCodes, check_model_input
from .base import REGISTRY, Extractor, Outcome
from .config import ExtractConfig
from .grouping import group_prepared
from .layers import ModelInputs


@dataclass
class ExtractionResult:
    """What :func:`extract_model` returns.

    Attributes
    ----------
    rules : RuleSet
        The minimised, ranked rules, with the run's ``meta``.
    unminimized : RuleSet
        The extractor's rules before minimisation.
    train_codes, test_codes : BinaryCodes
        The codes the rules read.
    metrics : dict
        The test metrics (also in ``rules.meta["metrics"]``).
    table : list of dict
        The paper's per-class table terms.
    seconds : dict
        Wall time of each step.
    extractor : Extractor or None
        The fitted extractor.
    warnings : list of str
        Why the rules are of little use, if they are (:func:`usefulness_warnings`);
        ``cnn2logic extract`` prints them on stderr.
    """

    rules: RuleSet
    unminimized: RuleSet
    train_codes: BinaryCodes
    test_codes: BinaryCodes
    metrics: dict[str, Any]
    table: list[dict]
    seconds: dict[str, float] = field(default_factory=dict)
    extractor: Extractor | None = None
    warnings: list[str] = field(default_factory=list)


def resolve_config_layers(model: nn.Module, config: ExtractConfig, sample) -> ExtractConfig:
    """``config`` with ``layer`` / ``output`` ``"auto"`` replaced by the model's own
    (:func:`cnn2logic.model.layers.resolve_layers`).

    Parameters
    ----------
    model : nn.Module
    config : ExtractConfig
    sample : torch.Tensor
        One image the model reads.

    Returns
    -------
    ExtractConfig

    Raises
    ------
    ModelError
        Nothing to guess from (no convolution, no linear layer after the kernels).
    """
    if AUTO not in (config.layer, config.output):
        return config
    layer, output = resolve_layers(model, config.layer, config.output, sample)
    return replace(config, layer=layer, output=output)


def extract_model(model: nn.Module, data: DataSplits, config: ExtractConfig = ExtractConfig(),
                  *, progress: bool = True, model_name: str = "",
                  class_names: tuple[str, ...] | None = None,
                  labels: Mapping[str, str] | None = None) -> ExtractionResult:
    """Run the whole extraction (module docstring) with ``config.method``.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network.
    data : DataSplits, path, Dataset, DataLoader or (train, test) pair
        Training images (thresholds, fitting, ranking) and test images (metrics); anything
        :func:`cnn2logic.data.as_splits` reads (a single Dataset gets the seeded 20 %
        hold-out).  Streamed splits (image folders, Datasets) are read batch by batch.
    config : ExtractConfig
        The settings.
    progress : bool
        Progress bars.
    model_name : str
        Stored in the rules file's ``meta``.
    class_names : tuple of str, optional
        Names of the classes (default: the data's).
    labels : mapping, optional
        The user's kernel labels (kernel name -> label, as
        :func:`cnn2logic.labels.read_labels` reads them), stored in ``meta`` beside the
        automatic labels.

    Returns
    -------
    ExtractionResult

    Raises
    ------
    ExtractionError
        Bad settings, or a method that cannot apply to this model.
    ModelError
        A layer name does not exist or the output layer does not fit.
    DataError
        Images the model cannot read, or labels beyond its output units.
    ActivationError
        The network's kernel units are NaN or infinite (a broken checkpoint).
    LabelsError
        ``labels`` names a kernel the layer does not have.
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    data = as_splits(data)  # a path, Datasets, DataLoaders or a (train, test) pair
    for split in (data.train, data.test):  # one image each: shapes and labels fit the model
        check_model_input(model, split.images[:1], split.labels, split.name)
    config = resolve_config_layers(model, config, data.train.images[:1])
    inputs = ModelInputs(model, data, config, progress, class_names)
    method = REGISTRY[config.method]
    prepared = method.prepare(inputs)
    kernels = _names(prepared)
    grouped = None
    if config.group_kernels is not None:  # the method learns over groups of kernels
        prepared, grouped = group_prepared(prepared, config.group_kernels, config.method)
    seconds["capture"] = time.perf_counter() - t0
    if labels and kernels is not None:  # before the fit: it can take long
        check_names(labels, kernels + (_names(prepared) or []), "labels")

    t1 = time.perf_counter()
    extractor = prepared.extractor.fit(**prepared.fit_args)
    outcome = prepared.finish(extractor)
    seconds["extract"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    if method.ordered:  # a decision list: its order is its meaning
        rules = outcome.unminimized
        min_report = {h: {"kind": "none", "note": "ordered program, kept as fitted"}
                      for h in rules.head_names}
    else:
        rules, min_report = _minimize_and_rank(outcome, config)
    seconds["minimize"] = time.perf_counter() - t2

    metrics, table = _metrics(rules, outcome)
    meta = _meta(model, data, config, model_name, rules, outcome, metrics, min_report, table)
    # the method's kind, unless its outcome knows better (a tuned network's own list)
    meta.setdefault("rule_kind", method.kind)
    if method.ordered:
        meta["ordered"] = True  # readers show it as a list, top to bottom
    unminimized, train_codes, test_codes = (outcome.unminimized, outcome.train_codes,
                                            outcome.test_codes)
    if grouped is not None:  # declared over every kernel (members too) and every group
        rules, unminimized, train_codes, test_codes = grouped.widen(rules, unminimized)
    t3 = time.perf_counter()
    meta[LABELS_KEY] = _labels(train_codes, outcome.target, labels)
    seconds["labels"] = time.perf_counter() - t3
    rules = rules.replace(meta=meta)
    seconds["total"] = time.perf_counter() - t0
    warnings = usefulness_warnings(rules, metrics, config.method)
    warnings += preprocessing_warnings(metrics, len(rules.heads), data.transform)
    return ExtractionResult(rules, unminimized, train_codes, test_codes, metrics, table,
                            seconds, extractor, warnings)


#: Below this test fidelity an extraction is reported as not following the network.
LOW_FIDELITY = 0.5
#: The method to suggest when another one yields useless rules.
SUGGESTED_METHOD = "rulelist"


def usefulness_warnings(rules: RuleSet, metrics: dict[str, Any], method: str) -> list[str]:
    """Why these rules are of little use, if they are: one sentence each (never silent).

    No rule at all, every test image given the default class, or a fidelity under
    :data:`LOW_FIDELITY` each give a warning that names a method that would do better.

    Returns
    -------
    list of str
        Empty when the rules are fine.
    """
    better = (f"; try --method {SUGGESTED_METHOD} (a compact program fitted to the network)"
              if method != SUGGESTED_METHOD and SUGGESTED_METHOD in REGISTRY else
              "; try a finer binarisation (--threshold) or a larger budget")
    out = []
    fidelity = metrics.get("fidelity")
    if not rules.rules:
        out.append(f"the {method} method found no rule: every image gets the default class"
                   f" {rules.default!r}{better}")
    elif metrics.get("zero_fire") == 1.0 and rules.default is not None and not any(
            not r.body for r in rules.rules):
        out.append(f"no rule fires on any test image: every image gets the default class"
                   f"{better}")
    if isinstance(fidelity, float) and fidelity < LOW_FIDELITY:
        out.append(f"the rules agree with the network on only {fidelity:.1%} of the test "
                   f"images{better}")
    return out


def preprocessing_warnings(metrics: dict[str, Any], n_classes: int,
                           transform: dict | None) -> list[str]:
    """A warning when the network itself is near chance on the test images.

    A network that classifies the user's images no better than chance was most likely
    trained on images prepared otherwise (size, crop, normalisation, channels): the
    rules would then explain a network that is not doing its job.

    Returns
    -------
    list of str
        Empty unless the test accuracy is below 1.5 / classes (with at least 3 classes).
    """
    acc = metrics.get("network_accuracy")
    if not isinstance(acc, float) or n_classes < 3 or acc >= 1.5 / n_classes:
        return []
    given = {k: v for k, v in (transform or {}).items()
             if k in ("resize", "center_crop", "mean", "std") and v is not None}
    now = ("; the images were read with " + ", ".join(f"{k}={v}" for k, v in given.items())
           if given else "; no --resize/--center-crop/--mean/--std was given")
    return [f"the network classifies only {acc:.1%} of the test images correctly (chance: "
            f"{1 / n_classes:.1%}): are the images prepared as in training? (--resize, "
            f"--center-crop, --mean/--std, --channels){now}"]


def _minimize_and_rank(outcome: Outcome, config: ExtractConfig) -> tuple[RuleSet, dict]:
    """espresso as ``config.minimize`` says, then rank on the training codes."""
    unminimized = outcome.unminimized
    bits_tr = outcome.train_codes.bits
    if config.minimize == "none":
        minimized = unminimized
        report = {h: {"kind": "none"} for h in unminimized.head_names}
    else:
        minimized, report = minimize_ruleset(
            unminimized, codes=bits_tr if config.minimize == "on-codes" else None,
            timeout=config.minimize_timeout)
    return rank_rules(minimized, bits_tr, outcome.target, default=outcome.rank_default), report


def _metrics(rules: RuleSet, outcome: Outcome) -> tuple[dict[str, Any], list[dict]]:
    """The test metrics of the minimised (and the unminimised) rules, and the table."""
    tr, te = outcome.train_codes, outcome.test_codes
    unminimized = outcome.unminimized
    metrics = evaluate_rules(rules, te.bits, te.labels, te.predictions)
    metrics["binarized_network_accuracy"] = outcome.binarized_accuracy
    on_bits = (outcome.meta.get("rest_of_network") or {}).get("network_on_bits")
    if on_bits:  # the output layer does not read the units: the rest of the network did
        metrics["network_on_bits_fidelity"] = on_bits["fidelity"]
        metrics["network_on_bits_accuracy"] = on_bits["accuracy"]
    metrics.update(ceilings(tr.bits, tr.labels, te.bits, te.labels))
    unmin_metrics = evaluate_rules(unminimized, te.bits, te.labels, te.predictions)
    metrics["unminimized"] = {k: unmin_metrics[k] for k in
                              ("rule_accuracy", "fidelity", "coverage", "zero_fire")}
    metrics["unminimized"].update(term_counts(unminimized))
    metrics.update(term_counts(rules))
    metrics["train_images"] = len(tr.labels)
    table = select_table_terms(unminimized, tr.bits, tr.labels, te.bits, te.labels)
    metrics.update(table_metrics(rules, table, te))
    return metrics, table


def _meta(model: nn.Module, data: DataSplits, config: ExtractConfig, model_name: str,
          rules: RuleSet, outcome: Outcome, metrics: dict, min_report: dict,
          table: list[dict]) -> dict[str, Any]:
    """The rules file's ``meta``: what ran, on what, with which settings and results."""
    rule_pred = rules.predict_index(outcome.test_codes.bits)
    meta = {
        "method": config.method,
        "model": model_name,
        "architecture": _architecture(model),
        "data": data.source,
        "layer": config.layer,
        "output_layer": config.output,
        "settings": {**asdict(config), **outcome.settings},
        "thresholds": outcome.thresholds,
        "metrics": metrics,
        "minimization": min_report,
        "table": table,
        "confusion": confusion(outcome.test_codes.predictions, rule_pred,
                               len(outcome.unminimized.heads)),
        "unminimized_rules": outcome.unminimized.to_dict()["rules"],
    }
    build = build_info(model)
    if build:  # --arch / --factory and their arguments: what built the network
        meta["model_build"] = build
    if data.transform is not None:  # image folders, arrays, resized/normalised data
        meta["data_transform"] = data.transform
    meta.update(outcome.meta)
    return meta


def _names(prepared: Any) -> list[str] | None:
    """The names of the variables a method is about to fit (None when it does not say)."""
    variables = prepared.fit_args.get("variables")
    return None if variables is None else [getattr(v, "name", v) for v in variables]


def _labels(tr: BinaryCodes, fallback: Any, user: Mapping[str, str] | None
            ) -> dict[str, Any]:
    """The kernels' class profiles and automatic labels on the training codes (true labels,
    else the network's predictions, else ``fallback``), with the user's labels."""
    target = tr.labels if tr.labels is not None else tr.predictions
    if target is None:
        target = fallback
    if user:
        check_names(user, tr.names, "labels")
    return labels_meta(tr.bits, target, tr.names, tr.classes, user)


def _architecture(model: nn.Module) -> str:
    """The spec's name, the ``--arch`` it was built from, else the module's class."""
    spec = getattr(model, "spec", None)
    if spec is not None:
        return getattr(spec, "name", type(model).__name__)
    return (build_info(model) or {}).get("arch") or type(model).__name__


def table_metrics(rules: RuleSet, table: list[dict], codes: BinaryCodes) -> dict[str, Any]:
    """How the Table-1 terms alone do: precision where one fires, and how often one does.

    This is one reading of the paper's "accuracy when the output units are replaced by
    the Boolean functions" of Table 1 (the paper does not say how images with no firing
    term were counted).

    Returns
    -------
    dict
        ``table_precision`` (None when no single term fires) and ``table_fired_share``.
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
