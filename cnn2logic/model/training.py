"""Training with the paper's defaults (minibatch 100, fixed iteration counts).

Example
-------
>>> from cnn2logic.data import load_data
>>> from cnn2logic.model import TrainConfig, train
>>> d = load_data("embedded", train_size=200, test_size=100)
>>> model, metrics = train("paper1", d, TrainConfig(iterations=5, progress=False))
>>> metrics["iterations"], 0.0 <= metrics["test_accuracy"] <= 1.0
(5, True)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data import DataSplits
from ..errors import ModelError
from .interpretable import filter_loss_hook, mask_modules
from .logic_training import MODES as BINARY_MODES
from .logic_training import binary_penalty_loss, configure, warmup_schedule
from .spec import ModelSpec, SpecCNN, build_model, predict_logits, spec_from_arg

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train` trains: the paper's defaults (Adam, lr 1e-3, minibatch 100).

    Parameters
    ----------
    iterations, batch_size : int
        Minibatch steps and images per step.
    lr : float
        Learning rate.
    optimizer : {"adam", "sgd"}
        ``"sgd"`` uses momentum 0.9.
    lr_schedule : {"constant", "cosine"}
        ``"cosine"``: the learning rate decays to 0 over the run.
    seed : int
        Seeds the initialisation (of a spec) and the minibatch order.
    progress : bool
        Show a progress bar.
    threads : int, optional
        torch CPU threads.
    binary_units, binary_noise, binary_penalty, binary_warmup
        Logic-friendly training (:mod:`cnn2logic.model.logic_training`).
    filter_loss : float
        Weight of the interpretable-filter loss (:mod:`cnn2logic.model.interpretable`).

    Raises
    ------
    ModelError
        A value out of range or an unknown choice.
    """

    iterations: int = 10_000
    batch_size: int = 100
    lr: float = 1e-3
    optimizer: str = "adam"
    # "constant" or "cosine" (the learning rate decays to 0 over the run)
    lr_schedule: str = "constant"
    seed: int = 0
    progress: bool = True
    threads: int | None = None
    # Logic-friendly training (cnn2logic.model.logic_training): "none", "ste", "noise" or
    # "penalty"; a spec is given a ``binarize`` layer in that mode.
    binary_units: str = "none"
    binary_noise: float = 2.0
    binary_penalty: float = 1.0
    binary_warmup: int = 0
    # Interpretable filters (cnn2logic.model.interpretable): weight of the filter loss; > 0
    # gives a spec the ``mask`` layer.
    filter_loss: float = 0.0

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ModelError(f"iterations must be at least 1, got {self.iterations}")
        if self.batch_size < 1:
            raise ModelError(f"batch size must be at least 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ModelError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ModelError(f"learning rate must be a finite number > 0, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ModelError(f"unknown learning-rate schedule {self.lr_schedule!r}; choose "
                             f"from {LR_SCHEDULES}")
        if self.binary_units not in BINARY_MODES:
            raise ModelError(f"unknown binary-unit mode {self.binary_units!r}; choose from "
                             f"{list(BINARY_MODES)}")
        if (self.binary_noise < 0 or self.binary_penalty < 0 or self.filter_loss < 0
                or self.binary_warmup < 0):
            raise ModelError("binary_noise, binary_penalty, binary_warmup and filter_loss "
                             "must be ≥ 0")


# A hook that adds a term to the loss: (model, images, logits) -> scalar tensor.
# Logic-friendly training and the interpretable-filter loss plug in here.
LossHook = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def train(spec: ModelSpec | str | SpecCNN, data: DataSplits, config: TrainConfig = TrainConfig(),
          extra_loss: LossHook | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train a model and return it with a metrics dict.

    Parameters
    ----------
    spec : ModelSpec, str or nn.Module
        The architecture (``"paper1"``...) or an already built model to train further.
    data : DataSplits
        Train split for learning; test split for the accuracy in the metrics.
    config : TrainConfig
    extra_loss : callable, optional
        Added to the cross-entropy each step.

    Returns
    -------
    model : nn.Module
        The trained model, in eval mode.
    metrics : dict
        Accuracies, final loss, training time and the settings used.

    Raises
    ------
    ModelError
        An empty training split, or a binary-unit / filter-loss option for a model without
        the layer it needs.
    """
    # Saturated sigmoids produce denormals that stall CPU training many times over.
    torch.set_flush_denormal(True)
    if config.threads:
        torch.set_num_threads(config.threads)
    if not isinstance(spec, nn.Module):
        spec = _with_training_layers(spec, config)
    model = spec if isinstance(spec, nn.Module) else build_model(spec, seed=config.seed)
    extra_loss = _with_training_losses(model, config, extra_loss)
    torch.manual_seed(config.seed)
    x_train, y_train = data.train.tensors()
    n = len(x_train)
    if n == 0:
        raise ModelError("training split is empty")
    opt = (torch.optim.Adam(model.parameters(), lr=config.lr) if config.optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9))
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.iterations)
             if config.lr_schedule == "cosine" else None)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(n, generator=gen)
    pos = 0
    iterator = range(config.iterations)
    if config.progress:
        iterator = tqdm(iterator, desc=f"train {getattr(model, 'spec', None) and model.spec.name}",
                        unit="it", mininterval=0.5)
    model.train()
    start = time.perf_counter()
    last_loss = float("nan")
    for step in iterator:
        if pos + config.batch_size > n:
            order = torch.randperm(n, generator=gen)
            pos = 0
        idx = order[pos:pos + config.batch_size]
        pos += config.batch_size
        xb, yb = x_train[idx], y_train[idx]
        logits = _forward_checked(model, xb, y_train, data, step)
        loss = loss_fn(logits, yb)
        if extra_loss is not None:
            loss = loss + extra_loss(model, xb, logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        last_loss = float(loss.detach())
        if not math.isfinite(last_loss):  # never hand back a NaN network
            raise ModelError(f"training diverged: the loss is {last_loss} at iteration "
                             f"{step + 1} (learning rate {config.lr}); lower --lr")
    seconds = time.perf_counter() - start
    model.eval()
    return model, _metrics(model, data, config, seconds, last_loss)


def _forward_checked(model: nn.Module, xb: torch.Tensor, y_train: torch.Tensor,
                     data: DataSplits, step: int) -> torch.Tensor:
    """The forward pass; on the first step, data the model cannot read is named."""
    if step:
        return model(xb)
    try:
        logits = model(xb)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ModelError(f"the model cannot read the training images of shape "
                         f"{tuple(xb.shape[1:])} from {data.source}: {first}") from None
    if logits.ndim == 2 and int(y_train.max()) >= logits.shape[1]:
        raise ModelError(f"label {int(y_train.max())} in {data.source} has no output unit: "
                         f"the model has {logits.shape[1]} outputs")
    return logits


def _metrics(model: nn.Module, data: DataSplits, config: TrainConfig, seconds: float,
             last_loss: float) -> dict[str, Any]:
    """The metrics dict :func:`train` returns (accuracies measured here, on eval mode)."""
    metrics = {
        "architecture": getattr(getattr(model, "spec", None), "name", type(model).__name__),
        "train_seconds": round(seconds, 3),
        "final_loss": round(last_loss, 6),
        "train_accuracy": accuracy(model, data.train),
        "test_accuracy": accuracy(model, data.test),
        "train_size": len(data.train),
        "test_size": len(data.test),
        "data": data.source,
        **{k: v for k, v in asdict(config).items() if k not in ("progress", "threads")},
    }
    # The logic-friendly / interpretable settings are reported only when used.
    if config.binary_units == "none":
        for key in ("binary_units", "binary_noise", "binary_penalty", "binary_warmup"):
            metrics.pop(key, None)
    if config.filter_loss == 0:
        metrics.pop("filter_loss", None)
    if config.lr_schedule == "constant":
        metrics.pop("lr_schedule", None)
    return metrics


def _with_training_layers(spec: ModelSpec | str, config: TrainConfig) -> ModelSpec | str:
    """The spec with the layers the logic-friendly / interpretable options need."""
    if config.binary_units == "none" and config.filter_loss == 0:
        return spec
    spec = spec_from_arg(spec) if isinstance(spec, str) else spec
    changes: dict[str, Any] = {}
    if config.binary_units != "none":
        changes["binary_units"] = config.binary_units
    if config.filter_loss > 0:
        changes["filter_mask"] = True
    return replace(spec, **changes)


def _with_training_losses(model: nn.Module, config: TrainConfig,
                          extra_loss: LossHook | None) -> LossHook | None:
    """``extra_loss`` plus the binary-unit penalty and the filter loss when asked for."""
    hooks: list[LossHook] = [] if extra_loss is None else [extra_loss]
    if config.binary_units != "none":
        if configure(model, config.binary_noise) == 0:
            raise ModelError(f"binary_units={config.binary_units!r} needs a BinaryUnits layer "
                             "in the model (cnn2logic.model.BinaryUnits)")
        if config.binary_units == "penalty" and config.binary_penalty > 0:
            hooks.append(binary_penalty_loss(config.binary_penalty))
        if config.binary_warmup > 0:
            hooks.append(warmup_schedule(model, config.binary_warmup))
    if config.filter_loss > 0:
        if not mask_modules(model):
            raise ModelError("filter_loss needs an InterpretableMask layer after the top conv "
                             "layer's activation (cnn2logic.model.InterpretableMask)")
        hooks.append(filter_loss_hook(config.filter_loss))
    if len(hooks) <= 1:
        return hooks[0] if hooks else None

    def combined(m: nn.Module, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return sum((h(m, x, logits) for h in hooks), logits.new_zeros(()))

    return combined


def accuracy(model: nn.Module, split) -> float:
    """Share of ``split``'s images the model classifies correctly, rounded to 6 digits.

    Parameters
    ----------
    model : nn.Module
    split : Split
        Anything with ``tensors() -> (images, labels)``.

    Returns
    -------
    float
        NaN for an empty split.
    """
    x, y = split.tensors()
    if len(x) == 0:
        return float("nan")
    pred = predict_logits(model, x).argmax(1)
    return round(float((pred == y).float().mean()), 6)


def metrics_json(metrics: dict[str, Any]) -> str:
    """``metrics`` as the JSON text of a ``.metrics.json`` file (sorted keys, one indent).

    Parameters
    ----------
    metrics : dict
        As returned by :func:`train`; numpy scalars are written as numbers.

    Returns
    -------
    str
        The text, ending in a newline.
    """
    return json.dumps(metrics, indent=1, sort_keys=True, default=_default) + "\n"


def _default(o: Any) -> Any:
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    raise TypeError(type(o).__name__)
