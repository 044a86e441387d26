"""Tuning, stage 2: the training itself.

:class:`TuneRun` holds what the phases share (optimiser, minibatch order, the probe batch)
and runs minibatch steps with the collapse checks of :mod:`~cnn2logic.model.tuning`'s
docstring (constant units recentred, a collapsed network rolled back with half the
learning rate, :class:`~cnn2logic.model.tune_config.CollapseError` after too many
roll-backs).  :class:`WarmHead` is the head of the straight-through phase; :func:`fit_head`
fits the rule list that replaces it; :func:`refuse_constant` is the last check before a
network is handed back.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..extract.rulelist import RuleListExtractor
from .logic_head import LogicUnits, RuleListHead
from .spec import predict_logits
from .tune_config import CollapseError, TuneConfig, rule_literals

#: Hidden width of the ``warm_head="mlp"`` correction.
WARM_HIDDEN = 64


class WarmHead(nn.Module):
    """The head of the straight-through phase, around the original output layer.

    It reads only the bits of the chosen kernels (``max_kernels``), lets each class read only its
    ``class_kernels`` strongest kernels (class-specific sparsity: the weight mask keeps,
    per class, the kernels with the largest ``|weight| * spread of the bit``), and with
    ``warm_head="mlp"`` adds a small ReLU network on the bits whose last layer starts at
    zero (so training starts from the original decision); ``warm_head="ternary"`` uses
    :func:`ternary` weights.
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
            w = w + (ternary(w) - w).detach()
        out = nn.functional.linear(b, w, self.linear.bias)
        return out if self.mlp is None else out + self.mlp(b)


def ternary(w: torch.Tensor) -> torch.Tensor:
    """Per class (row) ``alpha_c * sign(w)`` where ``|w| > 0.7 mean |w|``, else 0, with
    ``alpha_c`` the mean ``|w|`` of the kept weights (ternary weight networks' rule).

    Example
    -------
    >>> ternary(torch.tensor([[3.0, -1.0, 0.5, -0.5]])).tolist()
    [[2.0, -2.0, 0.0, -0.0]]
    """
    a = w.abs()
    delta = 0.7 * a.mean(1, keepdim=True)
    on = (a > delta).to(w.dtype)
    alpha = (a * on).sum(1, keepdim=True) / on.sum(1, keepdim=True).clamp(min=1)
    return alpha * torch.sign(w) * on


class TuneRun:
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
            lambda m, i, o: got.update(u=m.units(i[0]), b=o) if m.gave_bits else None)
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
        h = self.units.register_forward_hook(
            lambda m, _i, o: got.append(o) if m.gave_bits else None)
        try:
            predict_logits(self.net, x)
        finally:
            h.remove()
        return torch.cat(got).reshape(len(x), self.units.n_bits).numpy().astype(bool)


def fit_head(run: TuneRun, classes: int) -> RuleListHead:
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
                            max_literals=run.config.max_literals,
                            max_rule_literals=rule_literals(run.config, run.units.pool))
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


def refuse_constant(net: nn.Module, run: TuneRun, pred_te: torch.Tensor) -> None:
    """Never hand back a constant network."""
    bits, _ = run.bits()
    mean = bits.mean(0)
    if ((mean == 0) | (mean == 1)).all():
        raise CollapseError("every kernel unit of the tuned network is constant")
    if len(pred_te) > 1 and len(torch.unique(pred_te)) == 1 and len(
            torch.unique(run.y)) > 1:
        raise CollapseError("the tuned network gives one class for every test image")
