"""What :func:`cnn2logic.model.tuning.tune_model` is told: :class:`TuneConfig`, and the
error it raises when training collapses (:class:`CollapseError`).

Its own module because every stage of tuning reads it (:mod:`~cnn2logic.model.tune_setup`,
:mod:`~cnn2logic.model.tune_loop` and the driver :mod:`~cnn2logic.model.tuning`), and it
imports none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ModelError
from .logic_head import MAX_LEVELS

TARGETS = ("labels", "teacher")
#: What a bit reads when the output layer reads the kernels' maps flattened.
MAP_BITS = ("auto", "position", "max")
WARM_HEADS = ("linear", "mlp", "ternary")


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
    max_rule_literals : int, optional
        Most literals in any one rule.  None: :data:`POSITION_RULE_LITERALS` on a bit per
        map position, else the list's own limits (8 in a conjunction, 40 in an M-of-N
        rule); :func:`rule_literals` says which applies.
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
    map_bits : {"auto", "position", "max"}
        When the output layer reads the kernels' maps flattened (``conv-pool-flatten-
        Linear``): a bit per map position (``k3_r1c2``: kernel 3 at row 1, column 2, read
        by the trained layer as before), a bit per kernel (its map's max: ``k3`` fires
        anywhere; a new output layer to start from), or ``"auto"``: by position up to
        :data:`~cnn2logic.model.tune_setup.POSITION_UP_TO` values, else by kernel.
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
    max_rule_literals: int | None = None
    target: str = "labels"
    max_kernels: int = 0
    class_kernels: int = 0
    bit_noise: float = 0.5
    levels: int = 1
    map_bits: str = "auto"
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
        if self.max_rule_literals is not None and (
                not isinstance(self.max_rule_literals, int) or self.max_rule_literals < 1):
            raise ModelError("max_rule_literals must be an integer ≥ 1, got "
                             f"{self.max_rule_literals!r}")
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
        if self.map_bits not in MAP_BITS:
            raise ModelError(f"unknown map_bits {self.map_bits!r}; choose from {MAP_BITS}")
        if self.target not in TARGETS:
            raise ModelError(f"unknown target {self.target!r}; choose from {TARGETS}")


#: The longest rule by default on a bit per map position.  Measured on LeNet's 256 position
#: bits, 3 seeds (docs/logic_training.md): 16 literals gave 0.9158 on average against
#: 0.9125 uncapped (whose rules reach 32 literals), 12 gave 0.9107 and 8 gave 0.9055.
POSITION_RULE_LITERALS = 16


def rule_literals(config: TuneConfig, pool: str) -> int | None:
    """The cap on any one rule's literals for bits of :class:`LogicUnits` ``pool``:
    ``config.max_rule_literals`` when set, else :data:`POSITION_RULE_LITERALS` for a bit
    per map position, else None (the list's own limits).

    Example
    -------
    >>> rule_literals(TuneConfig(), "position"), rule_literals(TuneConfig(), "")
    (16, None)
    >>> rule_literals(TuneConfig(max_rule_literals=5), "position")
    5
    """
    if config.max_rule_literals is not None:
        return config.max_rule_literals
    return POSITION_RULE_LITERALS if pool == "position" else None
