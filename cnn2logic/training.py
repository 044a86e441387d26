"""Training with the paper's defaults (minibatch 100, fixed iteration counts).

Example
-------
>>> from cnn2logic.data import load_data
>>> from cnn2logic.training import TrainConfig, train
>>> d = load_data("embedded", train_size=200, test_size=100)
>>> model, metrics = train("paper1", d, TrainConfig(iterations=5, progress=False))
>>> sorted(metrics)[:3]
['architecture', 'batch_size', 'iterations']
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .data import DataSplits
from .errors import ModelError
from .models import ModelSpec, SpecCNN, build_model, predict_logits

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 10_000
    batch_size: int = 100
    lr: float = 1e-3
    optimizer: str = "adam"
    seed: int = 0
    progress: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ModelError(f"iterations must be at least 1, got {self.iterations}")
        if self.batch_size < 1:
            raise ModelError(f"batch size must be at least 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ModelError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if not self.lr > 0:
            raise ModelError(f"learning rate must be positive, got {self.lr}")


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
    """
    # Saturated sigmoids produce denormals that stall CPU training many times over.
    torch.set_flush_denormal(True)
    if config.threads:
        torch.set_num_threads(config.threads)
    model = spec if isinstance(spec, nn.Module) else build_model(spec, seed=config.seed)
    torch.manual_seed(config.seed)
    x_train, y_train = data.train.tensors()
    n = len(x_train)
    if n == 0:
        raise ModelError("training split is empty")
    opt = (torch.optim.Adam(model.parameters(), lr=config.lr) if config.optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9))
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(n, generator=gen)
    pos = 0
    iterator = range(config.iterations)
    if config.progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"train {getattr(model, 'spec', None) and model.spec.name}",
                        unit="it", mininterval=0.5)
    model.train()
    start = time.perf_counter()
    last_loss = float("nan")
    for _ in iterator:
        if pos + config.batch_size > n:
            order = torch.randperm(n, generator=gen)
            pos = 0
        idx = order[pos:pos + config.batch_size]
        pos += config.batch_size
        xb, yb = x_train[idx], y_train[idx]
        logits = model(xb)
        loss = loss_fn(logits, yb)
        if extra_loss is not None:
            loss = loss + extra_loss(model, xb, logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last_loss = float(loss.detach())
    seconds = time.perf_counter() - start
    model.eval()
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
    return model, metrics


def accuracy(model: nn.Module, split) -> float:
    x, y = split.tensors()
    if len(x) == 0:
        return float("nan")
    pred = predict_logits(model, x).argmax(1)
    return round(float((pred == y).float().mean()), 6)


def metrics_json(metrics: dict[str, Any]) -> str:
    return json.dumps(metrics, indent=1, sort_keys=True, default=_default) + "\n"


def _default(o: Any) -> Any:
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    raise TypeError(type(o).__name__)
