"""Fine-tune any trained CNN so that its decision *is* a compact rule list over kernel bits.

:func:`tune_model` takes a trained network, the layer of its kernel units (``layer``, one
value per kernel, e.g. ``pool`` or ``gap``) and the linear layer that reads them
(``output``), and returns a network whose prediction goes through hard kernel bits and an
ordered rule list of at most ``max_rules`` rules / ``max_literals`` literals
(:mod:`cnn2logic.model.logic_head`).  The default recipe (``bench/logic_training.py``
measures it against the alternatives, ``docs/logic_training.md``):

1. **thresholds** per kernel, fitted on the training units for fidelity to the original
   network exactly as ``extract``'s rule list would (``lookup`` up to 16 kernels, else
   ``half`` / ``infogain``), and a :class:`~cnn2logic.model.logic_head.LogicUnits` wrapper
   in the unit layer's place;
2. **straight-through bits, distilled** (``warm_share`` of the iterations): the original
   output layer is trained on the hard bits against the labels and the original
   network's soft outputs (``distill``), warm-started from the trained weights;
3. **the rule list replaces the output layer**: :class:`~cnn2logic.extract.rulelist.
   RuleListExtractor` is fitted on the training bits against the labels (``target``);
4. **kernels trained against the list** (the rest of the iterations, in ``rounds``
   rounds, the list refitted after each): the list's multilinear relaxation passes
   gradients to the kernels through the straight-through bits.  The list with the best
   training accuracy is kept (the test split is never used for a choice).

**No collapse**: every ``check_every`` steps the bits of a probe batch are checked.  A
constant unit whose values still vary gets its threshold moved to their median (a
re-initialisation); a network with most units constant, one answer for every image or a
non-finite loss is rolled back to its last healthy state with half the learning rate, and
after ``max_recoveries`` such roll-backs :class:`CollapseError` is raised.  A constant
final network is never returned.

The stages live in their own modules: :mod:`~cnn2logic.model.tune_config` (the
configuration and :class:`CollapseError`), :mod:`~cnn2logic.model.tune_setup` (thresholds,
kernels, the logic units put in place) and :mod:`~cnn2logic.model.tune_loop` (the training
steps and their checks, the list fit); this module runs them in order and saves the
result.  They import the rule-list learner of :mod:`cnn2logic.extract` (a leaf module: no
``cnn2logic.model`` module imports it, so there is no cycle).

Example
-------
>>> from cnn2logic.data import load_data
>>> from cnn2logic.model.training import TrainConfig, train
>>> d = load_data("embedded", train_size=400, test_size=100)  # every class
>>> net, _ = train("paper1", d, TrainConfig(iterations=100, progress=False))
>>> tuned, m = tune_model(net, d, config=TuneConfig(iterations=20, progress=False))
>>> m["rules"] <= 30 and m["literals"] <= 300
True
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..data import DataSplits
from ..errors import ModelError
from ..unitnames import kernel_of
from .load import save_weights
from .layers import AUTO, check_layer, linear_after, resolve_layers
from .logic_head import (LOGIC_KEY, Bypassed, bypassed_layers, logic_info, logic_layers,
                         replace_layer)
from .spec import SpecCNN, predict_logits, save_checkpoint
from .tune_config import (MAP_BITS, TARGETS, WARM_HEADS, CollapseError, TuneConfig,
                          rule_literals)
from .tune_loop import TuneRun, WarmHead, fit_head, refuse_constant
from .tune_setup import head_tail, lookup_ceiling, table_accuracy, wrap_units

__all__ = ["MAP_BITS", "TARGETS", "WARM_HEADS", "CollapseError", "TuneConfig", "save_tuned",
           "tune_model"]

#: A :class:`CollapseError` on an original network that gives one class to at least this
#: share of the training images says so (and that it needs training first).
ONE_CLASS_SHARE = 0.9


def tune_model(model: nn.Module, data: DataSplits, layer: str = AUTO, output: str = AUTO,
               config: TuneConfig = TuneConfig()) -> tuple[nn.Module, dict[str, Any]]:
    """Fine-tune a copy of ``model`` so it decides through kernel bits and a rule list.

    Parameters
    ----------
    model : nn.Module
        The trained network (left unchanged).
    data : DataSplits
        Training images for tuning; test images for the accuracies in the metrics.
    layer : str
        The kernel-unit layer (one value per kernel per image); ``"auto"``: the one
        :func:`~cnn2logic.model.layers.guess_layers` finds (``pool`` of a spec net).
    output : str
        The linear layer reading those units, replaced by the rule list; ``"auto"``: the
        first linear layer after ``layer``.  The layers that run after it (the rest of a
        head such as ``Linear, ReLU, Linear``) are :class:`~cnn2logic.model.logic_head.
        Bypassed`: the list gives the class scores itself.
    config : TuneConfig

    Returns
    -------
    model : nn.Module
        The tuned network, in eval mode (save it with :func:`save_tuned`).
    metrics : dict
        Original and tuned accuracies, program size, iterations, seconds, recoveries.

    Raises
    ------
    ModelError
        Unknown layers, an output layer that is not linear or does not read exactly the
        units of ``layer``, layers after it whose result is not the network's output,
        ``class_kernels`` on a head of several layers, an empty training split.
    CollapseError
        Training collapsed beyond recovery.
    """
    torch.set_flush_denormal(True)  # saturated sigmoids: denormals stall CPU training
    start = time.perf_counter()
    x_tr, y_tr = data.train.tensors()
    x_te, y_te = data.test.tensors()
    if len(x_tr) == 0:
        raise ModelError("training split is empty")
    teacher = copy.deepcopy(model).eval()
    t_logits = predict_logits(teacher, x_tr)
    classes = int(t_logits.shape[1])
    original_acc = _accuracy(predict_logits(teacher, x_te), y_te)
    tuned = logic_layers(model)
    if tuned is not None:
        raise ModelError(f"layer {tuned[0]!r} is already tuned: this network decides by its "
                         "rule list already (tune the original network)")
    for name, what in ((layer, "--layer"), (output, "--output")):
        if name != AUTO:
            check_layer(model, name, what)
    layer, _ = resolve_layers(model, layer, AUTO if output == AUTO else output, x_tr[:1])
    if output == AUTO:
        output = linear_after(model, layer, x_tr[:1], "first") or ""
        if not output:
            raise ModelError(f"no nn.Linear layer runs after {layer!r}: give --output (the "
                             "linear layer that reads the kernels)")
    try:
        return _tune(model, data, layer, output, config, start, t_logits, original_acc)
    except CollapseError as exc:
        # the usual cause on a user's model: the original itself decides nothing yet
        top = torch.bincount(t_logits.argmax(1), minlength=classes)
        share = float(top.max()) / len(x_tr)
        if share >= ONE_CLASS_SHARE and len(torch.unique(y_tr)) > 1:
            raise CollapseError(
                f"{exc}; the original network already gives class {int(top.argmax())} to "
                f"{share:.0%} of the training images (test accuracy {original_acc:.3f}): "
                "train it before tuning") from None
        raise


def _tune(model: nn.Module, data: DataSplits, layer: str, output: str, config: TuneConfig,
          start: float, t_logits: torch.Tensor, original_acc: float
          ) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`tune_model` after the original network's outputs are known."""
    x_tr, y_tr = data.train.tensors()
    x_te, y_te = data.test.tensors()
    classes = int(t_logits.shape[1])
    net = copy.deepcopy(model)
    tail = head_tail(net, output, x_tr[:2], classes, config.class_kernels)
    units, selected = wrap_units(net, layer, output, x_tr, t_logits.argmax(1).numpy(),
                                  config.max_kernels, config.levels, t_logits,
                                  config.map_bits)
    if units.pool == "max":
        # the old head read the maps; its new output layer gives the classes, so the
        # rest of the old head is skipped from the start, not only once the list is in
        for name in tail:
            replace_layer(net, name, Bypassed())
    # the bits of the chosen kernels (every level of each)
    levels = units.levels
    selected_bits = [k * levels + lv for k in selected for lv in range(levels)]
    run = TuneRun(net, units, x_tr, y_tr, t_logits, config, selected_bits)

    n_warm = round(config.iterations * config.warm_share)
    n_list = config.iterations - n_warm
    if n_warm:
        # the linear head sees only the chosen kernels, so the kernels learn to carry the
        # decision in those bits
        lin = dict(net.named_modules())[output]
        warm = WarmHead(lin, selected_bits, config, run.bit_spread(), levels)
        replace_layer(net, output, warm)
        try:
            run.steps(n_warm, "bits")
        finally:
            replace_layer(net, output, lin)
    for name in tail:  # from here the list gives the class scores itself
        replace_layer(net, name, Bypassed())
    candidates = []  # (training accuracy, round, head, the kernels it was fitted on)
    per_round = [n_list // config.rounds + (i < n_list % config.rounds)
                 for i in range(config.rounds)] if n_list else []
    for i, n in enumerate([0] + [s for s in per_round if s]):
        if n:
            run.steps(n, "list")
        kernels = {k: v.clone() for k, v in net.state_dict().items()
                   if not k.startswith(f"{output}.")}
        head = fit_head(run, classes)
        replace_layer(net, output, head)
        candidates.append((_accuracy(predict_logits(net, x_tr), y_tr), i, head, kernels))
    # best training accuracy; ties: the earlier list (fewer changes)
    best_acc, best_round, head, kernels = max(candidates, key=lambda c: (c[0], -c[1]))
    replace_layer(net, output, head)
    net.load_state_dict({**kernels, **{f"{output}.{k}": v
                                       for k, v in head.state_dict().items()}})
    replace_layer(net, output, head)
    net.eval()
    units.noise, units.noise_generator = 0.0, None  # training-only state, not handed back
    if head.n_rules == 0:
        raise CollapseError("fine-tuning collapsed: the best rule list has no rule, the "
                            f"network would give class {int(head.default)} for every image")
    pred_te = predict_logits(net, x_te).argmax(1)
    refuse_constant(net, run, pred_te)
    read_tr = run.train_bits()[:, selected_bits]  # one pass over the training images
    # the kernel of each bit, from its name (k3, k3_2 with levels, k3_r1c2 by position)
    kernel_of_bit = [kernel_of(n) for n in units.unit_names]
    metrics = {
        "original_test_accuracy": original_acc,
        "test_accuracy": _accuracy(predict_logits(net, x_te), y_te),
        "train_accuracy": best_acc,
        # the best any function of these bits does on the training images (the list's
        # ceiling): the majority label of each code
        "bits_ceiling_train": lookup_ceiling(read_tr, y_tr.numpy()),
        # the same table (fitted on the training bits) scored on the test images: where the
        # list stands against the best program over the bits it reads
        "bits_lookup_test": round(table_accuracy(read_tr, y_tr.numpy(),
                                                  run.bits_of(x_te)[:, selected_bits],
                                                  y_te.numpy()), 6),
        "rules": head.n_rules,
        "literals": head.n_literals,
        "kernels": len(set(kernel_of_bit)),
        "bits": units.n_bits,
        # what a bit reads: a kernel's unit, the max of its map, or one position of it
        "bits_of": units.pool or "kernel",
        # a kernel is read when some rule reads one of its levels (or positions)
        "kernels_read": len({kernel_of_bit[j] for j in
                             np.flatnonzero((head.signs != 0).any(0).numpy())}),
        "bits_read": int(head.kernels_read),
        "selected_kernels": [int(j) for j in selected],
        "iterations": run.done,
        "kept_round": best_round,
        "recoveries": run.recoveries,
        "recentred_units": run.recentred,
        "seconds": round(time.perf_counter() - start, 3),
        "layer": layer,
        "output": output,
        "bypassed": tail,
        "train_size": len(x_tr),
        "test_size": len(x_te),
        "data": data.source,
        **{k: v for k, v in asdict(config).items() if k != "progress"},
        # the cap on one rule's literals the list was fitted under, the config's None
        # resolved (None: the list's own limits)
        "max_rule_literals": rule_literals(config, units.pool),
    }
    return net, metrics


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    if len(labels) == 0:
        return float("nan")
    return round(float((logits.argmax(1) == labels).float().mean()), 6)


def save_tuned(model: nn.Module, path: str | os.PathLike[str], *, layer: str | None = None,
               output: str | None = None,
               factory: str | None = None, factory_kwargs: Mapping[str, Any] | None = None,
               extra: Mapping[str, str] | None = None) -> None:
    """Write a tuned network as an ordinary checkpoint that rebuilds it exactly.

    A spec net is written with its spec (:func:`~cnn2logic.model.spec.save_checkpoint`), a
    ``--factory`` model as a state dict naming its factory
    (:func:`~cnn2logic.model.load.save_weights`); both record where the logic layers go
    (:data:`~cnn2logic.model.logic_head.LOGIC_KEY`), which the loaders read.

    Parameters
    ----------
    model : nn.Module
        As returned by :func:`tune_model`.
    path : path
    layer, output : str, optional
        The names :func:`tune_model` used (its metrics' ``layer`` / ``output``); by
        default the model's own logic layers.
    factory : str, optional
        Required for a model that is not a spec net.
    factory_kwargs : mapping, optional
    extra : mapping of str to str, optional
        More metadata.

    Raises
    ------
    ModelError
        A model that is neither a spec net nor given with its factory, or not tuned.
    """
    found = logic_layers(model)
    if found is None:
        raise ModelError("this network is not tuned: it has no LogicUnits and rule-list head")
    layer, output = layer or found[0], output or found[1]
    bypass = bypassed_layers(model)
    units = model.get_submodule(layer)
    pool, map_shape = getattr(units, "pool", ""), getattr(units, "map_shape", ())
    at = getattr(units, "at", ())
    if factory:
        meta = {LOGIC_KEY: logic_info(layer, output, factory, factory_kwargs, bypass, pool,
                                      map_shape, at),
                **(extra or {})}
        save_weights(model, path, extra=meta)
    elif isinstance(model, SpecCNN):
        save_checkpoint(model, path, extra=extra, logic=logic_info(
            layer, output, bypass=bypass, pool=pool, map_shape=map_shape, at=at))
    else:
        raise ModelError("this tuned network is not a cnn2logic spec net: give the factory "
                         "that builds it so that the checkpoint can rebuild it")
