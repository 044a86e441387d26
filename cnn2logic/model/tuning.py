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

This module imports the rule-list learner of :mod:`cnn2logic.extract` (a leaf module: no
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
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data import DataSplits
from ..errors import ModelError
from ..extract.rulelist import LOOKUP_UP_TO, RuleListExtractor
from ..units import auto_binarisation, capture, fit_binarisation
from .load import save_weights
from .layers import AUTO, check_layer, layers_after, linear_after, resolve_layers
from .logic_head import (LOGIC_KEY, MAX_LEVELS, Bypassed, LogicUnits, RuleListHead,
                         bypassed_layers, logic_info, logic_layers, replace_layer)
from .spec import SpecCNN, predict_logits, save_checkpoint

TARGETS = ("labels", "teacher")
WARM_HEADS = ("linear", "mlp", "ternary")
#: Hidden width of the ``warm_head="mlp"`` correction.
WARM_HIDDEN = 64


#: A :class:`CollapseError` on an original network that gives one class to at least this
#: share of the training images says so (and that it needs training first).
ONE_CLASS_SHARE = 0.9


class CollapseError(ModelError):
    """Fine-tuning collapsed (constant units or one answer for every image) and could not
    recover; nothing is written."""


@dataclass(frozen=True)
class TuneConfig:
    """How :func:`tune_model` fine-tunes (module docstring for the recipe).

    Parameters
    ----------
    iterations : int
        Minibatch steps in all (at most the original training's is the aim).
    batch_size : int
    lr : float
        Adam's learning rate.
    warm_share : float
        Share of the iterations spent on straight-through bits with the linear head
        (0: the rule list from the start; 1: never trained against the list).
    distill : float
        Weight of the distillation loss (KL to the original network's softmax) against the
        cross-entropy on the labels, in [0, 1].
    rounds : int
        Rounds of training against the list (the list is refitted after each).
    max_rules, max_literals : int
        The program's budget (``extract``'s defaults).
    target : {"labels", "teacher"}
        What the list is fitted to: the training labels or the original network's
        predictions.
    max_kernels : int
        On a layer with more kernels, the decision is made to read only this many (chosen
        greedily for the held-out fidelity of their bits; the output layer is masked to
        them during the straight-through phase and the list is fitted on them); 0 reads
        every kernel.
    class_kernels : int
        Class-specific sparsity in the straight-through phase: each class's output reads
        only its this many strongest kernels (0: every kernel).
    bit_noise : float
        In training, Gaussian noise of this many surrogate widths (the units' standard
        deviation) is added to each unit before its threshold: the kernels learn units
        that stay clear of their thresholds, so unseen images flip fewer bits (0: none).
    levels : int
        Thresholds per kernel (1 to :data:`~cnn2logic.model.logic_head.MAX_LEVELS`): with
        more than one, each kernel gives a thermometer code (bits ``k3_1``, ``k3_2``...: the
        unit at or above its first, second... threshold, cut at the training units'
        quantiles ``1/(levels+1)``...), which the list reads like any bit.  One bit per
        kernel cannot carry the decision of a net with few kernels (paper1:
        ``docs/logic_training.md``).
    warm_head : {"linear", "mlp", "ternary"}
        The head of the straight-through phase: the original output layer, or that layer
        plus a small ReLU network on the bits (its last layer starts at zero, so training
        starts from the original decision): a head that can read any function of the
        bits lets the kernels carry information a linear read-out cannot use; or
        ``"ternary"``: the layer's weights used as ``alpha_c * {-1, 0, 1}`` (straight-
        through), so each class counts its bits the way an M-of-N rule does.
    check_every, max_recoveries : int
        Collapse checks (module docstring).
    seed : int
    progress : bool
        A progress bar on standard error.

    Raises
    ------
    ModelError
        A value out of range.
    """

    iterations: int = 1000
    batch_size: int = 100
    lr: float = 5e-4
    warm_share: float = 0.5
    distill: float = 0.5
    rounds: int = 2
    max_rules: int = 30
    max_literals: int = 300
    target: str = "labels"
    max_kernels: int = 0
    class_kernels: int = 0
    bit_noise: float = 0.5
    levels: int = 1
    warm_head: str = "linear"
    check_every: int = 100
    max_recoveries: int = 3
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("max_kernels", "class_kernels"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ModelError(f"{name} must be an integer ≥ 0, got {getattr(self, name)!r}")
        for name in ("iterations", "batch_size", "rounds", "max_rules", "max_literals",
                     "check_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ModelError(f"{name} must be an integer ≥ 1, got {getattr(self, name)!r}")
        if not isinstance(self.levels, int) or not 1 <= self.levels <= MAX_LEVELS:
            raise ModelError(f"levels must be an integer in [1, {MAX_LEVELS}], got "
                             f"{self.levels!r}")
        if self.max_recoveries < 0:
            raise ModelError(f"max_recoveries must be ≥ 0, got {self.max_recoveries}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ModelError(f"learning rate must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.bit_noise) and self.bit_noise >= 0):
            raise ModelError(f"bit_noise must be a finite number ≥ 0, got {self.bit_noise}")
        for name in ("warm_share", "distill"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ModelError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.warm_head not in WARM_HEADS:
            raise ModelError(f"unknown warm_head {self.warm_head!r}; choose from {WARM_HEADS}")
        if self.target not in TARGETS:
            raise ModelError(f"unknown target {self.target!r}; choose from {TARGETS}")


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
    tail = _head_tail(net, output, x_tr[:2], classes, config)
    units, selected = _wrap_units(net, layer, output, x_tr, t_logits.argmax(1).numpy(),
                                  config.max_kernels, config.levels)
    # the bits of the chosen kernels (every level of each)
    levels = units.levels
    selected_bits = [k * levels + lv for k in selected for lv in range(levels)]
    run = _Run(net, units, x_tr, y_tr, t_logits, config, selected_bits)

    n_warm = round(config.iterations * config.warm_share)
    n_list = config.iterations - n_warm
    if n_warm:
        # the linear head sees only the chosen kernels, so the kernels learn to carry the
        # decision in those bits
        lin = dict(net.named_modules())[output]
        warm = _WarmHead(lin, selected_bits, config, run.bit_spread(), levels)
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
        head = _fit_head(run, classes)
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
    _refuse_constant(net, run, pred_te)
    read_tr = run.train_bits()[:, selected_bits]  # one pass over the training images
    metrics = {
        "original_test_accuracy": original_acc,
        "test_accuracy": _accuracy(predict_logits(net, x_te), y_te),
        "train_accuracy": best_acc,
        # the best any function of these bits does on the training images (the list's
        # ceiling): the majority label of each code
        "bits_ceiling_train": _lookup_ceiling(read_tr, y_tr.numpy()),
        # the same table (fitted on the training bits) scored on the test images: where the
        # list stands against the best program over the bits it reads
        "bits_lookup_test": round(_table_accuracy(read_tr, y_tr.numpy(),
                                                  run.bits_of(x_te)[:, selected_bits],
                                                  y_te.numpy()), 6),
        "rules": head.n_rules,
        "literals": head.n_literals,
        "kernels": units.kernels,
        "bits": units.n_bits,
        # a kernel is read when some rule reads one of its levels
        "kernels_read": int(len({j // levels for j in
                                 np.flatnonzero((head.signs != 0).any(0).numpy())})),
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
    }
    return net, metrics


def _head_tail(net: nn.Module, output: str, sample: torch.Tensor, classes: int,
               config: TuneConfig) -> list[str]:
    """The layers after ``output`` that the rule list makes redundant (module docstring of
    :mod:`~cnn2logic.model.logic_head`), checked to be all that stands between ``output``
    and the network's output."""
    if output not in dict(net.named_modules()):
        return []  # _wrap_units names the layers
    tail = layers_after(net, output, sample)
    if not tail:
        return []
    if config.class_kernels:
        raise ModelError(f"--class-kernels needs an output layer that gives the classes; "
                         f"{output!r} is followed by {', '.join(tail)}: give --class-kernels 0")
    # with the head's layers skipped, whatever ``output`` gives must come out unchanged
    probe = torch.arange(len(sample) * classes, dtype=torch.float32).reshape(-1, classes)
    keep = {name: net.get_submodule(name) for name in [output, *tail]}
    replace_layer(net, output, _Constant(probe))
    for name in tail:
        replace_layer(net, name, Bypassed())
    try:
        with torch.no_grad():
            got = net.eval()(sample)
    except (RuntimeError, ValueError, TypeError, IndexError):
        got = None
    finally:
        for name, module in keep.items():
            replace_layer(net, name, module)
    if not (isinstance(got, torch.Tensor) and got.shape == probe.shape
            and torch.equal(got, probe)):
        raise ModelError(f"the network changes what follows its layer {output!r} by more "
                         f"than the layers {', '.join(tail)} (a function in its forward); "
                         "give as --output the layer whose result is the network's output")
    return tail


class _Constant(nn.Module):
    """Returns the same tensor whatever it reads (the probe of :func:`_head_tail`)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


def _lookup_ceiling(bits: np.ndarray, labels: np.ndarray) -> float:
    """Share of images whose label is the majority label of their code."""
    return round(_table_accuracy(bits, labels, bits, labels), 6)


def _table_accuracy(fit_bits: np.ndarray, fit_y: np.ndarray, bits: np.ndarray,
                    y: np.ndarray) -> float:
    """Accuracy on ``bits``/``y`` of the majority-label-per-code table of the fitting bits."""
    if len(y) == 0 or len(fit_y) == 0:
        return float("nan")
    # one integer per distinct code over both sets (codes may be longer than 64 bits)
    _, ids = np.unique(np.packbits(np.concatenate([fit_bits, bits]), axis=1), axis=0,
                       return_inverse=True)
    ids = ids.reshape(-1).astype(np.int64)
    classes = int(max(fit_y.max(), y.max())) + 1
    fallback = int(np.bincount(fit_y, minlength=classes).argmax())
    return _heldout_lookup(ids[:len(fit_y)], fit_y, ids[len(fit_y):], y, classes, fallback)


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    if len(labels) == 0:
        return float("nan")
    return round(float((logits.argmax(1) == labels).float().mean()), 6)


def _wrap_units(net: nn.Module, layer: str, output: str, x_tr: torch.Tensor,
                predictions: np.ndarray, max_kernels: int,
                levels: int = 1) -> tuple[LogicUnits, list[int]]:
    """Check the layers, fit thresholds, choose the kernels the decision will read and put
    the :class:`LogicUnits` in place (with ``levels`` > 1, also an output layer as wide as
    the bits)."""
    modules = dict(net.named_modules())
    for name, what in ((layer, "--layer"), (output, "--output")):
        if not name or name not in modules:
            raise ModelError(f"{what}: no layer named {name!r}; layers: "
                             f"{', '.join(n for n in modules if n)}")
    if isinstance(modules[layer], LogicUnits):
        raise ModelError(f"layer {layer!r} is already tuned")
    lin = modules[output]
    if not isinstance(lin, nn.Linear):
        raise ModelError(f"output layer {output!r} is {type(lin).__name__}, not nn.Linear")
    seen: dict[str, torch.Tensor] = {}
    # (a forward hook that returns a value replaces the module's output: these return None)
    hooks = [modules[layer].register_forward_hook(lambda _m, _i, o: seen.update(u=o)),
             lin.register_forward_hook(lambda _m, i, _o: seen.update(x=i[0]))]
    try:
        with torch.no_grad():
            net.eval()(x_tr[:2])
    finally:
        for h in hooks:
            h.remove()
    u, x = seen.get("u"), seen.get("x")
    if u is None or x is None or u.ndim < 2 or u[0].numel() != u.shape[1] or (
            x.shape != (u.shape[0], u.shape[1]) or not torch.equal(x, u.reshape(x.shape))):
        raise ModelError(f"output layer {output!r} does not read the units of {layer!r} "
                         "directly (one value per kernel, nothing in between but a flatten)")
    values = capture(net, layer, x_tr, progress=False).values
    selected = list(range(values.shape[1]))
    choose = 0 < max_kernels < values.shape[1]
    if levels == 1 or choose:
        # one fitted threshold per kernel: the bits themselves, or what the kernels are
        # chosen by (with levels, the quantile cuts below replace them)
        method = "lookup" if values.shape[1] <= LOOKUP_UP_TO else auto_binarisation(values)
        th = np.asarray(fit_binarisation(values, method, predictions).values,
                        dtype=np.float64)
    if choose:
        selected = select_kernels(values >= th, predictions, max_kernels)
    if choose and levels == 1:
        # the chosen few get the thresholds a small layer gets (fitted jointly for fidelity)
        few = values[:, selected]
        refit = fit_binarisation(few, "lookup" if len(selected) <= LOOKUP_UP_TO
                                 else auto_binarisation(few), predictions)
        th[selected] = np.asarray(refit.values, dtype=np.float64)
    if levels > 1:
        # a thermometer code: cuts at evenly spaced quantiles of each kernel's units
        qs = [(lv + 1) / (levels + 1) for lv in range(levels)]
        th = np.quantile(values, qs, axis=0).T.astype(np.float64)
    t = torch.as_tensor(th, dtype=torch.float32)
    scale = torch.as_tensor(np.maximum(values.std(axis=0), 1e-3), dtype=torch.float32)
    units = LogicUnits(modules[layer], t, scale)
    replace_layer(net, layer, units)
    if levels > 1:
        # the output layer reads each kernel's levels; starting from the trained weights
        # spread over them (the share of levels on stands where the unit in [0, 1] did)
        wide = nn.Linear(lin.in_features * levels, lin.out_features,
                         bias=lin.bias is not None)
        with torch.no_grad():
            wide.weight.copy_(lin.weight.repeat_interleave(levels, dim=1) / levels)
            if lin.bias is not None:
                wide.bias.copy_(lin.bias)
        replace_layer(net, output, wide)
    return units, selected


def select_kernels(bits: np.ndarray, target: np.ndarray, n: int) -> list[int]:
    """``n`` kernels chosen greedily so that their bits predict ``target`` on held-out images.

    Each step adds the kernel whose bit, with those already chosen, gives the best lookup
    (majority ``target`` of each code) fitted on the even-numbered images and scored on the
    odd-numbered ones (unseen codes answer the overall majority): scoring on the images the
    table was fitted on would reward codes that only memorise.

    Parameters
    ----------
    bits : ndarray of bool, ``(images, kernels)``
    target : ndarray of int, ``(images,)``
    n : int

    Returns
    -------
    list of int
        Kernel indices in the order chosen (``min(n, kernels)`` of them).
    """
    bits = np.asarray(bits, dtype=bool)
    target = np.asarray(target, dtype=np.int64)
    fit, score = np.arange(0, len(bits), 2), np.arange(1, len(bits), 2)
    classes = int(target.max()) + 1 if len(target) else 1
    fallback = np.bincount(target[fit], minlength=classes).argmax() if len(fit) else 0
    code = np.zeros(len(bits), dtype=np.int64)
    chosen: list[int] = []
    for _ in range(min(n, bits.shape[1])):
        best = (-1.0, -1)
        for j in range(bits.shape[1]):
            if j in chosen:
                continue
            key = code * 2 + bits[:, j]
            acc = _heldout_lookup(key[fit], target[fit], key[score], target[score],
                                  classes, fallback)
            if acc > best[0]:
                best = (acc, j)
        chosen.append(best[1])
        code = code * 2 + bits[:, best[1]]
    return chosen


def _heldout_lookup(key_fit: np.ndarray, y_fit: np.ndarray, key_score: np.ndarray,
                    y_score: np.ndarray, classes: int, fallback: int) -> float:
    """Accuracy on the scoring images of the majority-per-code table of the fitting images."""
    if len(key_score) == 0:
        return 0.0
    uniq, inverse = np.unique(key_fit, return_inverse=True)
    table = np.zeros((len(uniq), classes), dtype=np.int64)
    np.add.at(table, (inverse.reshape(-1), y_fit), 1)
    answer = table.argmax(1)
    pos = np.searchsorted(uniq, key_score)
    pos = np.minimum(pos, len(uniq) - 1)
    seen = uniq[pos] == key_score
    pred = np.where(seen, answer[pos], fallback)
    return float((pred == y_score).mean())


class _WarmHead(nn.Module):
    """The head of the straight-through phase, around the original output layer.

    It reads only the bits of the chosen kernels (``max_kernels``), lets each class read only its
    ``class_kernels`` strongest kernels (class-specific sparsity: the weight mask keeps,
    per class, the kernels with the largest ``|weight| * spread of the bit``), and with
    ``warm_head="mlp"`` adds a small ReLU network on the bits whose last layer starts at
    zero (so training starts from the original decision); ``warm_head="ternary"`` uses
    :func:`_ternary` weights.
    """

    def __init__(self, linear: nn.Linear, selected: list[int], config: TuneConfig,
                 spread: torch.Tensor, levels: int = 1) -> None:
        super().__init__()
        k = linear.in_features  # bits: kernels * levels
        self.linear = linear
        keep = torch.zeros(k)
        keep[torch.as_tensor(selected)] = 1.0
        self.register_buffer("keep", keep)
        weight_mask = torch.ones_like(linear.weight)
        e = config.class_kernels
        if 0 < e < len(selected):
            with torch.no_grad():
                strength = linear.weight.abs() * spread[None, :] * keep[None, :]
                # per kernel (the sum over its levels): a class reads whole kernels
                per_kernel = strength.view(strength.shape[0], -1, levels).sum(-1)
                top = per_kernel.topk(e, dim=1).indices
                weight_mask = torch.zeros_like(per_kernel).scatter_(1, top, 1.0)
                weight_mask = weight_mask.repeat_interleave(levels, dim=1)
        self.register_buffer("weight_mask", weight_mask)
        self.ternary = config.warm_head == "ternary"
        self.mlp: nn.Module | None = None
        if config.warm_head == "mlp":
            gen = torch.Generator().manual_seed(config.seed)
            hidden, last = nn.Linear(k, WARM_HIDDEN), nn.Linear(WARM_HIDDEN, linear.out_features)
            with torch.no_grad():  # seeded: a run is reproducible whatever ran before
                bound = 1.0 / math.sqrt(k)
                hidden.weight.uniform_(-bound, bound, generator=gen)
                hidden.bias.uniform_(-bound, bound, generator=gen)
                last.weight.zero_()
                last.bias.zero_()
            self.mlp = nn.Sequential(hidden, nn.ReLU(), last)

    def forward(self, b: torch.Tensor) -> torch.Tensor:
        """Logits from the kept bits."""
        b = b.reshape(b.shape[0], -1) * self.keep
        w = self.linear.weight * self.weight_mask
        if self.ternary:
            w = w + (_ternary(w) - w).detach()
        out = nn.functional.linear(b, w, self.linear.bias)
        return out if self.mlp is None else out + self.mlp(b)


def _ternary(w: torch.Tensor) -> torch.Tensor:
    """Per class (row) ``alpha_c * sign(w)`` where ``|w| > 0.7 mean |w|``, else 0, with
    ``alpha_c`` the mean ``|w|`` of the kept weights (ternary weight networks' rule).

    Example
    -------
    >>> _ternary(torch.tensor([[3.0, -1.0, 0.5, -0.5]])).tolist()
    [[2.0, -2.0, 0.0, -0.0]]
    """
    a = w.abs()
    delta = 0.7 * a.mean(1, keepdim=True)
    on = (a > delta).to(w.dtype)
    alpha = (a * on).sum(1, keepdim=True) / on.sum(1, keepdim=True).clamp(min=1)
    return alpha * torch.sign(w) * on


class _Run:
    """The training state shared by the phases: optimiser, minibatch order, checks."""

    def __init__(self, net: nn.Module, units: LogicUnits, x: torch.Tensor, y: torch.Tensor,
                 t_logits: torch.Tensor, config: TuneConfig, selected: list[int]) -> None:
        self.net, self.units, self.x, self.y, self.config = net, units, x, y, config
        self.selected = list(selected)
        units.noise = config.bit_noise
        units.noise_generator = torch.Generator().manual_seed(config.seed + 1)
        self.t_prob = torch.softmax(t_logits, 1)
        self.lr = config.lr
        self.gen = torch.Generator().manual_seed(config.seed)
        self.order = torch.randperm(len(x), generator=self.gen)
        self.pos = 0
        self.done = 0
        self.recoveries = 0
        self.recentred = 0
        self.probe = x[:1000]
        self.snapshot = copy.deepcopy(net.state_dict())
        self._new_optimizer()

    def _new_optimizer(self) -> None:
        self.opt = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad],
                                    lr=self.lr)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = self.config.batch_size
        if self.pos + b > len(self.x):
            self.order = torch.randperm(len(self.x), generator=self.gen)
            self.pos = 0
        idx = self.order[self.pos:self.pos + b]
        self.pos += b
        return self.x[idx], self.y[idx], self.t_prob[idx]

    def steps(self, n: int, phase: str) -> None:
        """``n`` minibatch steps; ``phase`` "bits" (linear head) or "list" (rule list)."""
        it = range(n)
        if self.config.progress:
            it = tqdm(it, desc=f"tune ({phase})", unit="it", mininterval=0.5)
        self._new_optimizer()
        self.snapshot = copy.deepcopy(self.net.state_dict())
        w = self.config.distill if phase == "bits" else 0.0
        for _ in it:
            self.net.train()
            xb, yb, tb = self.batch()
            out = self.net(xb)
            logp = torch.log_softmax(out, 1)
            loss = (1 - w) * nn.functional.nll_loss(logp, yb)
            if w:
                loss = loss + w * nn.functional.kl_div(logp, tb, reduction="batchmean")
            self.done += 1
            if not loss.requires_grad:  # an empty rule list: nothing reaches the kernels
                continue
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if not math.isfinite(float(loss.detach())):
                self._recover("the loss is not finite")
            elif self.done % self.config.check_every == 0:
                self._check()
        self.net.eval()

    def bits(self) -> tuple[np.ndarray, np.ndarray]:
        """Bits ``(probe, kernels * levels)`` and continuous units ``(probe, kernels)`` of
        the probe batch (eval mode)."""
        got: dict[str, torch.Tensor] = {}
        h = self.units.register_forward_hook(
            lambda m, i, o: got.update(u=m.units(i[0]), b=o))
        try:
            with torch.no_grad():
                self.net.eval()(self.probe)
        finally:
            h.remove()
        n = len(self.probe)
        return (got["b"].reshape(n, self.units.n_bits).numpy(),
                got["u"].reshape(n, self.units.kernels).numpy())

    def _check(self) -> None:
        """Recentre constant units; roll back a collapsed network (module docstring)."""
        bits, u = self.bits()
        mean = bits.mean(0)
        constant = (mean == 0) | (mean == 1)
        levels = self.units.levels
        flat = self.units.thresholds.view(-1)  # bit j = kernel j // levels, level j % levels
        with torch.no_grad():
            for j in np.flatnonzero(constant):
                uk = u[:, j // levels]
                if uk.max() > uk.min():
                    # the level's quantile of the unit (the median with one level)
                    cut = float(np.quantile(uk, (j % levels + 1) / (levels + 1)))
                    if (uk >= cut).all():  # the cut at the minimum
                        cut = float(np.unique(uk)[1])
                    flat[j] = cut
                    self.recentred += 1
        bits, _ = self.bits()
        mean = bits.mean(0)
        still = ((mean == 0) | (mean == 1)).sum()
        with torch.no_grad():
            pred = predict_logits(self.net, self.probe).argmax(1)
        if still > len(mean) / 2:
            self._recover(f"{int(still)} of {len(mean)} kernel units are constant")
        elif len(torch.unique(pred)) == 1 and len(torch.unique(self.y[:len(self.probe)])) > 1:
            self._recover("the network gives one class for every image")
        else:
            self.snapshot = copy.deepcopy(self.net.state_dict())

    def _recover(self, why: str) -> None:
        self.recoveries += 1
        if self.recoveries > self.config.max_recoveries:
            raise CollapseError(f"fine-tuning collapsed ({why}) after {self.done} iterations "
                                f"and {self.config.max_recoveries} roll-backs with a lower "
                                "learning rate; try a smaller --lr")
        self.net.load_state_dict(self.snapshot)
        self.lr /= 2
        self._new_optimizer()

    def bit_spread(self) -> torch.Tensor:
        """``(bits,)``: the standard deviation of each bit over the probe batch."""
        bits, _ = self.bits()
        return torch.as_tensor(bits.std(0), dtype=torch.float32)

    def train_bits(self) -> np.ndarray:
        """The hard bits of every training image (eval mode)."""
        return self.bits_of(self.x)

    def bits_of(self, x: torch.Tensor) -> np.ndarray:
        """The hard bits of the images ``x`` (eval mode)."""
        got: list[torch.Tensor] = []
        h = self.units.register_forward_hook(lambda _m, _i, o: got.append(o))
        try:
            predict_logits(self.net, x)
        finally:
            h.remove()
        return torch.cat(got).reshape(len(x), self.units.n_bits).numpy().astype(bool)


def _fit_head(run: _Run, classes: int) -> RuleListHead:
    """The rule list fitted on the training bits (against ``config.target``)."""
    bits = run.train_bits()
    y = (run.y.numpy() if run.config.target == "labels"
         else run.t_prob.argmax(1).numpy())
    k = bits.shape[1]
    names = list(run.units.unit_names)
    # the list is learnt on the chosen kernels only (all of them when none were chosen)
    bits = bits[:, run.selected]
    names_read = [names[j] for j in run.selected]
    # the learner works on the distinct codes with a class-count table itself
    ext = RuleListExtractor(max_rules=run.config.max_rules,
                            max_literals=run.config.max_literals)
    ext.fit(bits, y, variables=names_read, heads=[str(c) for c in range(classes)])
    rs = ext.rules_
    index = {n: j for j, n in enumerate(names)}
    triples = []
    for rule in rs.rules:
        signs = [0] * k
        for lit in rule.body:
            signs[index[lit.var]] = 1 if lit.positive else -1
        triples.append((signs, rule.min_true, int(rule.head)))
    return RuleListHead.from_rules(k, classes, triples, int(rs.default))


def _refuse_constant(net: nn.Module, run: _Run, pred_te: torch.Tensor) -> None:
    """Never hand back a constant network."""
    bits, _ = run.bits()
    mean = bits.mean(0)
    if ((mean == 0) | (mean == 1)).all():
        raise CollapseError("every kernel unit of the tuned network is constant")
    if len(pred_te) > 1 and len(torch.unique(pred_te)) == 1 and len(
            torch.unique(run.y)) > 1:
        raise CollapseError("the tuned network gives one class for every test image")


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
    if factory:
        meta = {LOGIC_KEY: logic_info(layer, output, factory, factory_kwargs, bypass),
                **(extra or {})}
        save_weights(model, path, extra=meta)
    elif isinstance(model, SpecCNN):
        save_checkpoint(model, path, extra=extra, logic=logic_info(layer, output,
                                                                   bypass=bypass))
    else:
        raise ModelError("this tuned network is not a cnn2logic spec net: give the factory "
                         "that builds it so that the checkpoint can rebuild it")
