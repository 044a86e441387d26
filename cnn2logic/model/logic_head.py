"""The layers of a tuned network whose decision *is* a compact program.

:func:`cnn2logic.model.tuning.tune_model` turns any CNN into one by two in-place changes:

:class:`LogicUnits`
    wraps the kernel-unit layer (``pool`` of a spec net, ``gap`` of
    ``examples/relu_bn_cnn.py``...): it outputs the hard bits ``u >= threshold`` (one
    threshold per kernel, a buffer) at inference, and in training a straight-through
    surrogate (the forward pass is the hard bits, the gradient that of
    ``sigmoid((u - threshold) / scale)``).  With ``levels`` > 1 thresholds per kernel it
    outputs a thermometer code, ``levels`` bits per kernel named ``k3_1``, ``k3_2``...
    (kernel 3 at or above its first, second... threshold; :attr:`LogicUnits.unit_names`).
    The wrapper takes the layer's name, so kernel units captured from that layer *are*
    the bits the decision reads.
:class:`RuleListHead`
    replaces the output layer by an ordered rule list over those bits (conjunctions and
    M-of-N rules, a default class): one-hot logits at inference.  In training it is the
    list's multilinear relaxation (rule ``r`` fires with ``f_r``, the list answers
    ``c`` with ``sum_r f_r prod_{r'<r} (1 - f_r') [head_r = c]``), which equals the hard
    list on hard bits and passes gradients to the kernels.

:class:`Bypassed`
    stands in for each layer that ran after the output layer when the head was several
    layers (a hidden ``Linear``/``ReLU`` before the class layer): the list gives the class
    scores itself, so the rest of the head is skipped.

All are plain modules with buffers only, so the tuned weights are an ordinary state dict
(safetensors, no pickles).  A checkpoint records where they go in the metadata entry
:data:`LOGIC_KEY` (``{"layer": ..., "output": ...}``); :func:`apply_logic_layers` rebuilds
them (shapes from the state dict) before the weights are loaded, so the loaders of
:mod:`cnn2logic.model.spec` and :mod:`cnn2logic.model.load` give back exactly the network
that was measured.  :func:`embedded_program` reads the list back as a
:class:`~cnn2logic.rules.RuleSet`, which is what ``cnn2logic extract`` returns for such a
network (fidelity 1.0 by construction).

Example
-------
>>> import torch
>>> head = RuleListHead.from_rules(3, 2, [((1, -1, 0), None, 0)], default=1)
>>> head(torch.tensor([[1., 0., 1.], [1., 1., 0.]])).argmax(1).tolist()
[0, 1]
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..errors import ModelError
from ..rules import Head, Literal, Rule, RuleSet, Variable
from ..unitnames import level_names, position_names

#: The checkpoint metadata entry of a tuned network (JSON: ``layer``, ``output``).
LOGIC_KEY = "cnn2logic_logic"
#: How :class:`LogicUnits` reads a map: "" one value per kernel already, "max" the max of
#: each kernel's map, "position" every position of every map its own unit (``k3_r1c2``).
POOLS = ("", "max", "position")
#: Probability mass spread over all classes in the training-time list, so the loss of a
#: wrong hard answer is finite (``-log(eps / classes)``).
LIST_SMOOTHING = 0.05
#: Steepness of the M-of-N surrogate: ``sigmoid(SHARPNESS * (count - M + 0.5))``.
SHARPNESS = 2.0
#: Most thresholds (output bits) per kernel in :class:`LogicUnits`.
MAX_LEVELS = 8


class LogicUnits(nn.Module):
    """A kernel-unit layer followed by per-kernel hard thresholds.

    Parameters
    ----------
    inner : nn.Module
        The layer whose ``(n, kernels, ...)`` output holds one value per kernel.
    thresholds : torch.Tensor
        ``(kernels,)``: where each unit switches on; or ``(kernels, levels)``: several
        thresholds per kernel, one output bit each (a thermometer code when they are
        sorted), the bits of a kernel next to each other.
    scale : torch.Tensor
        ``(kernels,)``: the width of each unit's surrogate.
    pool : {"", "max", "position"}
        ``"max"``: each kernel's map is max-pooled to one unit before its thresholds (as
        :func:`~cnn2logic.units.capture` reduces it); ``"position"``: every position of
        every map is a unit with its own threshold (``k3_r1c2``, in ``torch.flatten``'s
        order, as ``capture(reduce="position")``); ``""``: the layer gives one value per
        kernel already.
    map_shape : (kernels, rows, cols)
        One image's maps, with ``pool="position"``.
    at : sequence of int
        When the forward pass calls ``inner`` several times (PyTorch's tutorial net pools
        after each convolution with one module): the shape of one image's ``inner`` output
        at its last call, the one that becomes bits (the call ``capture`` and ``extract``
        read); a call with another shape passes its output on unchanged.  Empty: every
        call gives bits.

    Raises
    ------
    ModelError
        Thresholds and scales for different numbers of kernels, more than
        :data:`MAX_LEVELS` levels, a non-positive scale, or an ``at`` shape that does not
        give those units.
    """

    def __init__(self, inner: nn.Module, thresholds: torch.Tensor, scale: torch.Tensor,
                 pool: str = "", map_shape: Sequence[int] = (),
                 at: Sequence[int] = ()) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ModelError(f"LogicUnits: unknown pool {pool!r}; choose from {POOLS}")
        map_shape = tuple(int(v) for v in map_shape)
        if pool == "position" and (len(map_shape) != 3 or min(map_shape) < 1
                                   or math.prod(map_shape) != len(thresholds)):
            raise ModelError(f"LogicUnits: a map of shape {map_shape} does not give "
                             f"{len(thresholds)} position units")
        # a head that read the flattened maps reads their bits: pooled, or one per position
        self.pool = pool
        self.map_shape = map_shape if pool == "position" else ()
        thresholds = torch.as_tensor(thresholds, dtype=torch.float32)
        if thresholds.ndim != 2 or thresholds.shape[1] == 1:
            thresholds = thresholds.reshape(-1)  # one level: the plain (kernels,) layout
        scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
        if (thresholds.shape[0] != scale.numel() or not bool((scale > 0).all())
                or (thresholds.ndim == 2 and thresholds.shape[1] > MAX_LEVELS)):
            raise ModelError("LogicUnits needs 1 to "
                             f"{MAX_LEVELS} thresholds and one positive scale per kernel")
        self.at = tuple(int(v) for v in at)
        # the call that gives bits outputs what the thresholds are for: a channel per
        # kernel, and with positions the very maps
        if self.at and (self.at != self.map_shape if pool == "position"
                        else self.at[0] != thresholds.shape[0] or min(self.at) < 1):
            raise ModelError(f"LogicUnits: bits at a call of output shape {self.at} do not "
                             f"fit {thresholds.shape[0]} units"
                             + (f" of maps {self.map_shape}" if self.map_shape else ""))
        self.inner = inner
        # contiguous: the tuner writes single thresholds through a flat view
        self.register_buffer("thresholds", thresholds.clone(memory_format=torch.contiguous_format))
        self.register_buffer("scale", scale.clone())
        # training only, never saved: Gaussian noise (in units of ``scale``) added to the
        # units before the threshold, so that the kernels learn to keep their units away
        # from it (bits that unseen images do not flip); set by the tuner
        self.noise = 0.0
        self.noise_generator: torch.Generator | None = None
        #: Whether the latest call gave bits (False for an earlier call under ``at``): a
        #: forward hook that collects the bits reads it
        self.gave_bits = False

    @property
    def kernels(self) -> int:
        """Kernels (units) of the wrapped layer."""
        return int(self.thresholds.shape[0])

    @property
    def levels(self) -> int:
        """Thresholds (output bits) per kernel."""
        return int(self.thresholds.shape[1]) if self.thresholds.ndim == 2 else 1

    @property
    def n_bits(self) -> int:
        """Output bits: ``kernels * levels``."""
        return int(self.thresholds.numel())

    @property
    def unit_names(self) -> tuple[str, ...]:
        """The name of each output bit, as :func:`cnn2logic.units.capture` names them:
        ``k1..`` with one level, else ``k1_1, k1_2, ..`` (kernel, then level)."""
        if self.pool == "position":
            return position_names("", *self.map_shape)
        return level_names(self.kernels, self.levels)

    def extra_repr(self) -> str:
        """The number of kernels (and levels) in the module's repr."""
        return (f"kernels={self.kernels}" + (f", levels={self.levels}" if self.levels > 1
                                             else "")
                + (f", pool={self.pool}" if self.pool else "")
                + (f", at={self.at}" if self.at else ""))

    def _pooled(self, u: torch.Tensor) -> torch.Tensor:
        if self.pool == "position":
            return u.flatten(1)
        return u.amax(dim=tuple(range(2, u.ndim))) if self.pool and u.ndim > 2 else u

    def units(self, x: torch.Tensor) -> torch.Tensor:
        """The continuous units (the wrapped layer's output, pooled with ``pool``)."""
        return self._pooled(self.inner(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Hard 0/1 bits (in training with the straight-through surrogate's gradient); with
        ``at``, the wrapped layer's own output at a call of another shape."""
        out = self.inner(x)
        self.gave_bits = not self.at or tuple(out.shape[1:]) == self.at
        if not self.gave_bits:
            return out  # an earlier call of a module the network reuses: not the units
        u = self._pooled(out)
        if u.ndim < 2 or u.shape[1] != self.kernels:
            raise ModelError(f"LogicUnits: thresholds for {self.kernels} kernels, units of "
                             f"shape {tuple(u.shape)}")
        rest = (1,) * (u.ndim - 2)
        s = self.scale.view((1, -1) + rest)
        if self.training and self.noise:
            # one draw per unit, shared by its levels: the unit moves, not its thresholds
            u = u + self.noise * s * torch.randn(u.shape, generator=self.noise_generator,
                                                 dtype=u.dtype)
        levels = self.levels
        if levels == 1:
            t = self.thresholds.view((1, -1) + rest)
        else:  # (n, kernels, levels, ...) flattened to (n, kernels * levels, ...)
            u, s = u.unsqueeze(2), s.unsqueeze(2)
            t = self.thresholds.view((1, self.kernels, levels) + rest)
        hard = (u >= t).to(u.dtype)
        if self.training:
            soft = torch.sigmoid((u - t) / s)
            hard = hard + soft - soft.detach()
        return hard if levels == 1 else hard.flatten(1, 2)


class Bypassed(nn.Identity):
    """A layer of the original head after the one the rule list replaced: passes its input
    on unchanged (the list's outputs are already the class scores)."""


class RuleListHead(nn.Module):
    """An ordered rule list over ``kernels`` bits as an output layer.

    Buffers: ``signs`` ``(rules, kernels)`` in {-1, 0, 1} (negated literal, absent,
    literal), ``min_true`` ``(rules,)`` (how many literals must hold; the body length for
    a conjunction), ``heads`` ``(rules,)``, ``default`` and ``classes`` (scalars).

    Parameters
    ----------
    signs, min_true, heads, default, classes : torch.Tensor
        As above.

    Raises
    ------
    ModelError
        Inconsistent shapes, a rule with no literal, or a class out of range.
    """

    def __init__(self, signs: torch.Tensor, min_true: torch.Tensor, heads: torch.Tensor,
                 default: torch.Tensor, classes: torch.Tensor) -> None:
        super().__init__()
        signs = torch.as_tensor(signs).to(torch.int8)
        min_true = torch.as_tensor(min_true).to(torch.int64).reshape(-1)
        heads = torch.as_tensor(heads).to(torch.int64).reshape(-1)
        default = torch.as_tensor(default).to(torch.int64).reshape(())
        classes = torch.as_tensor(classes).to(torch.int64).reshape(())
        n = signs.shape[0] if signs.ndim == 2 else -1
        if n < 0 or min_true.numel() != n or heads.numel() != n:
            raise ModelError("RuleListHead: signs, min_true and heads disagree in shape")
        lengths = (signs != 0).sum(1)
        if n and (bool((lengths == 0).any()) or bool((min_true < 1).any())
                  or bool((min_true > lengths).any())):
            raise ModelError("RuleListHead: every rule needs 1 <= min_true <= its literals")
        c = int(classes)
        if c < 2 or not 0 <= int(default) < c or (n and not bool(
                ((heads >= 0) & (heads < c)).all())):
            raise ModelError("RuleListHead: a class index out of range")
        for name, value in (("signs", signs), ("min_true", min_true), ("heads", heads),
                            ("default", default), ("classes", classes)):
            self.register_buffer(name, value.clone())

    @classmethod
    def from_rules(cls, kernels: int, classes: int,
                   rules: Sequence[tuple[Sequence[int], int | None, int]],
                   default: int) -> "RuleListHead":
        """A head from ``(signs, min_true or None for all, head)`` triples.

        Parameters
        ----------
        kernels, classes : int
        rules : sequence of (signs, min_true, head)
        default : int

        Returns
        -------
        RuleListHead

        Raises
        ------
        ModelError
            As the constructor.
        """
        signs = torch.zeros(len(rules), kernels, dtype=torch.int8)
        min_true = torch.zeros(len(rules), dtype=torch.int64)
        heads = torch.zeros(len(rules), dtype=torch.int64)
        for i, (s, m, h) in enumerate(rules):
            signs[i] = torch.as_tensor(list(s), dtype=torch.int8)
            min_true[i] = int((signs[i] != 0).sum()) if m is None else int(m)
            heads[i] = int(h)
        return cls(signs, min_true, heads, torch.tensor(default), torch.tensor(classes))

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], prefix: str) -> "RuleListHead":
        """An (empty-weighted) head shaped like the entries ``prefix + name`` of ``state``.

        Raises
        ------
        ModelError
            An entry is missing.
        """
        try:
            return cls(*(state[prefix + k] for k in ("signs", "min_true", "heads", "default",
                                                     "classes")))
        except KeyError as exc:
            raise ModelError(f"tuned checkpoint lacks the rule-list entry {exc}") from None

    @property
    def n_rules(self) -> int:
        """Rules in the list."""
        return int(self.signs.shape[0])

    @property
    def n_literals(self) -> int:
        """Literals in all rule bodies."""
        return int((self.signs != 0).sum())

    @property
    def kernels_read(self) -> int:
        """Kernels (bits) that some rule reads."""
        return int((self.signs != 0).any(0).sum()) if self.n_rules else 0

    def extra_repr(self) -> str:
        """Rules and literals in the module's repr."""
        return f"rules={self.n_rules}, literals={self.n_literals}"

    def fires(self, bits: torch.Tensor) -> torch.Tensor:
        """``(n, rules)`` soft (multilinear) firing of each rule; exact 0/1 on hard bits."""
        s = self.signs.to(bits.dtype)
        pos, neg = (s > 0).to(bits.dtype), (s < 0).to(bits.dtype)
        # truth of each literal: x for a positive one, 1 - x for a negated one
        truth = bits[:, None, :] * pos + (1 - bits[:, None, :]) * neg
        present = pos + neg
        conj = (self.min_true == present.sum(1).to(torch.int64))
        prod = torch.where(present.bool(), truth, torch.ones_like(truth)).prod(-1)
        count = (truth * present).sum(-1)
        hard = (count >= self.min_true.to(bits.dtype) - 0.5).to(bits.dtype)
        soft = torch.sigmoid(SHARPNESS * (count - self.min_true.to(bits.dtype) + 0.5))
        mofn = hard + soft - soft.detach()
        return torch.where(conj[None, :], prod, mofn)

    def probabilities(self, bits: torch.Tensor) -> torch.Tensor:
        """``(n, classes)``: the list's answer, one-hot on hard bits (soft in between)."""
        bits = bits.reshape(bits.shape[0], -1)
        n, c = bits.shape[0], int(self.classes)
        out = bits.new_zeros(n, c)
        left = bits.new_ones(n)  # no earlier rule has fired
        if self.n_rules:
            f = self.fires(bits)
            onehot = torch.nn.functional.one_hot(self.heads, c).to(bits.dtype)
            for r in range(self.n_rules):
                out = out + (left * f[:, r])[:, None] * onehot[r]
                left = left * (1 - f[:, r])
        return out + left[:, None] * torch.nn.functional.one_hot(self.default, c).to(bits.dtype)

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        """One-hot logits (eval); smoothed log-probabilities of the soft list (training)."""
        p = self.probabilities(bits)
        if not self.training:
            return p
        c = p.shape[1]
        return torch.log((1 - LIST_SMOOTHING) * p + LIST_SMOOTHING / c)

    def ruleset(self, variables: Sequence[Variable], heads: Sequence[Head],
                meta: Mapping[str, Any] | None = None) -> RuleSet:
        """The list as a :class:`~cnn2logic.rules.RuleSet` over ``variables``.

        Raises
        ------
        ModelError
            ``variables`` or ``heads`` do not match the head's shape.
        """
        if len(variables) != self.signs.shape[1] or len(heads) != int(self.classes):
            raise ModelError(f"the rule-list head reads {self.signs.shape[1]} bits into "
                             f"{int(self.classes)} classes, not {len(variables)} into "
                             f"{len(heads)}")
        rules = []
        for r in range(self.n_rules):
            row = self.signs[r].tolist()
            body = tuple(Literal(variables[j].name, v > 0) for j, v in enumerate(row) if v)
            m = int(self.min_true[r])
            rules.append(Rule(heads[int(self.heads[r])].name, body,
                              None if m == len(body) else m))
        return RuleSet(tuple(variables), tuple(heads), tuple(rules),
                       heads[int(self.default)].name, dict(meta or {}))


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise ModelError(f"no layer named {name!r}; layers: "
                         f"{', '.join(n for n in modules if n)}")
    parent, _, leaf = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), leaf


def replace_layer(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` in the place of the layer ``name`` (same name, same position).

    Raises
    ------
    ModelError
        No such layer.
    """
    parent, leaf = _parent(model, name)
    setattr(parent, leaf, module)


def logic_info(layer: str, output: str, factory: str | None = None,
               factory_kwargs: Mapping[str, Any] | None = None,
               bypass: Sequence[str] = (), pool: str = "",
               map_shape: Sequence[int] = (), at: Sequence[int] = ()) -> str:
    """Where a tuned network's logic layers go (``layer`` / ``output``), as JSON text.

    A spec net's checkpoint keeps it in its spec (``"logic"``), a factory model's in the
    metadata entry :data:`LOGIC_KEY` with the factory (one entry: safetensors writes
    several in an arbitrary order, and the file should be byte-deterministic).

    Parameters
    ----------
    layer, output : str
    factory : str, optional
    factory_kwargs : mapping, optional
    bypass : sequence of str
        The layers after ``output`` that are :class:`Bypassed`.
    pool : str
        :class:`LogicUnits`' ``pool`` (and its ``map_shape`` with ``"position"``).
    map_shape : sequence of int
    at : sequence of int
        :class:`LogicUnits`' ``at``: the output shape of the call that gives bits, for a
        layer the forward pass calls several times.

    Returns
    -------
    str
        Sorted-key JSON.
    """
    d: dict[str, Any] = {"layer": layer, "output": output, "version": 1}
    if bypass:  # absent otherwise: checkpoints tuned before it existed stay byte-identical
        d["bypass"] = list(bypass)
    if pool:  # likewise
        d["pool"] = pool
    if map_shape:
        d["map"] = [int(v) for v in map_shape]
    if at:
        d["at"] = [int(v) for v in at]
    if factory:
        d.update(factory=factory, factory_kwargs=dict(factory_kwargs or {}))
    return json.dumps(d, sort_keys=True)


def apply_logic_layers(model: nn.Module, info: str, state: Mapping[str, torch.Tensor]) -> None:
    """Rebuild a tuned network's :class:`LogicUnits` and :class:`RuleListHead` in ``model``
    (freshly built, untuned) from the metadata ``info`` and the shapes in ``state``.

    Parameters
    ----------
    model : nn.Module
    info : str
        The :data:`LOGIC_KEY` metadata.
    state : mapping
        The checkpoint's state dict (its values are loaded afterwards, not here).

    Raises
    ------
    ModelError
        Invalid metadata, or layers / entries the checkpoint names that do not exist.
    """
    try:
        d = json.loads(info)
        layer, output = str(d["layer"]), str(d["output"])
        bypass = d.get("bypass", [])
        pool = d.get("pool", "")
        map_shape = d.get("map", [])
        at = d.get("at", [])
        if not (isinstance(bypass, list) and all(isinstance(b, str) for b in bypass)
                and pool in POOLS and all(isinstance(v, list) and len(v) <= 8
                                          and all(type(i) is int for i in v)
                                          for v in (map_shape, at))):
            raise TypeError
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ModelError(f"invalid {LOGIC_KEY} metadata in the checkpoint") from None
    key = f"{layer}.thresholds"
    if key not in state:
        raise ModelError(f"tuned checkpoint lacks the entry {key!r}")
    shape = tuple(state[key].shape)
    if len(shape) not in (1, 2) or 0 in shape or (len(shape) == 2 and shape[1] > MAX_LEVELS):
        raise ModelError(f"tuned checkpoint: {key!r} has shape {shape}, not (kernels,) or "
                         f"(kernels, levels ≤ {MAX_LEVELS})")
    parent, leaf = _parent(model, layer)
    inner = getattr(parent, leaf)
    replace_layer(model, layer, LogicUnits(inner, torch.zeros(shape), torch.ones(shape[0]),
                                           pool, map_shape, at))
    _parent(model, output)  # the output layer must exist in the rebuilt model
    replace_layer(model, output, RuleListHead.from_state(state, f"{output}."))
    for name in bypass:  # each must exist (replace_layer says which does not)
        replace_layer(model, name, Bypassed())


def logic_layers(model: nn.Module) -> tuple[str, str] | None:
    """The names of a tuned network's :class:`LogicUnits` and :class:`RuleListHead`.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    (layer, output) or None
        None unless ``model`` has exactly one of each.
    """
    units = [n for n, m in model.named_modules() if isinstance(m, LogicUnits)]
    heads = [n for n, m in model.named_modules() if isinstance(m, RuleListHead)]
    return (units[0], heads[0]) if len(units) == 1 and len(heads) == 1 else None


def bypassed_layers(model: nn.Module) -> list[str]:
    """The names of ``model``'s :class:`Bypassed` layers, in module order.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    list of str
    """
    return [n for n, m in model.named_modules() if isinstance(m, Bypassed)]


def embedded_program(model: nn.Module, layer: str, output: str) -> RuleListHead | None:
    """The rule-list head ``output`` of ``model`` when it reads the bits of ``layer``.

    Parameters
    ----------
    model : nn.Module
    layer, output : str
        Layer names as given to ``extract``.

    Returns
    -------
    RuleListHead or None
        None unless ``layer`` is a :class:`LogicUnits` and ``output`` a
        :class:`RuleListHead` over as many bits (``kernels * levels``).
    """
    modules = dict(model.named_modules())
    units, head = modules.get(layer), modules.get(output)
    if (isinstance(units, LogicUnits) and isinstance(head, RuleListHead)
            and head.signs.shape[1] == units.n_bits):
        return head
    return None
