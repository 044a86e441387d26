"""Kernel groups: kernels that respond to the same inputs become one rule predicate.

``cnn2logic extract --group-kernels [T]`` merges kernels whose binarised units agree on at
least a share ``T`` of the training images (default :data:`DEFAULT_THRESHOLD`) into one
**group**, and the method learns its rules over the groups instead of their members.

How groups are made (:func:`find_groups`, deterministic)
    ``agree[i, j]`` is the share of training images on which kernels ``i`` and ``j`` are
    both on or both off.  Kernels are taken in order; each kernel not yet in a group
    starts one, and every later kernel not yet in a group joins it when it agrees with
    *every* member at least ``T`` of the time (complete linkage: no chain of pairwise
    similar kernels drifts apart).  A group of one is no group.

What a group means (the same in Python, ASP and Prolog)
    A group is **on iff at least one of its members is on** (``rule: "any"`` in meta).
    Python adds the group's column to the codes (:func:`add_group_columns`); the exported
    programs define it as a derived kernel, ``derived(I, g) :- #count{members on} >= 1``
    (Prolog: ``at_least(1, I, [p(k3), p(k7)])``), and read it back with
    ``active(I, g) :- derived(I, g)``, so data facts stay over the real kernels and every
    query (explain, flip, necessary) works on them.

What the rules file holds
    The variables are every kernel of the layer (members included, so codes, thresholds
    and programs keep them) followed by the groups (layer :data:`GROUP_LAYER`, index =
    group number); the rules read groups and ungrouped kernels only.  ``meta["groups"]``
    has ``members`` (group -> kernels), ``agreement`` (group -> the lowest pairwise
    agreement of its members), ``threshold``, ``rule`` and the number of variables the
    method saw.  The saved codes have the groups' columns.

Only the methods that learn from binary codes take groups (``rulelist``,
``pedagogical``): the others read real-valued units or the output layer's weights, which
do not know a group.

Example
-------
>>> import numpy as np
>>> X = np.array([[1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]], dtype=bool)
>>> find_groups(X, 0.9)
[[0, 1]]
>>> add_columns(X, [[0, 1]]).astype(int).tolist()[0]
[1, 1, 0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ExtractionError
from ..rules import RuleSet, Variable
from ..units import BinaryCodes
from .base import Outcome, Prepared
from .config import GROUP_THRESHOLD

#: ``--group-kernels`` without a value.
DEFAULT_THRESHOLD = GROUP_THRESHOLD
#: The layer name of group variables (no real layer has it: visuals and model checks
#: leave groups alone).
GROUP_LAYER = "group"
#: How a group's value follows from its members' (the only rule there is).
GROUP_RULE = "any"
#: The methods whose fit reads binary codes.
GROUPING_METHODS = ("rulelist", "pedagogical")


def agreement(bits: np.ndarray) -> np.ndarray:
    """``(kernels, kernels)`` share of images on which two kernels are both on or both off."""
    X = np.asarray(bits, dtype=np.float64)
    n = max(len(X), 1)
    both_on = X.T @ X
    both_off = (1 - X).T @ (1 - X)
    return (both_on + both_off) / n


def find_groups(bits: np.ndarray, threshold: float) -> list[list[int]]:
    """Column indices of every group (two or more kernels), in kernel order.

    See the module docstring for the rule.

    Raises
    ------
    ExtractionError
        ``threshold`` outside (0, 1].
    """
    if not 0 < threshold <= 1:
        raise ExtractionError(f"group threshold must be in (0, 1], got {threshold}")
    A = agreement(bits)
    # The counts are exact (float64 products of 0/1); the tolerance only absorbs the
    # rounding of the division, so that an exact share T counts as "at least T".
    limit = threshold - 1e-9
    taken = np.zeros(A.shape[0], dtype=bool)
    groups = []
    for i in range(A.shape[0]):
        if taken[i]:
            continue
        members = [i]
        for j in range(i + 1, A.shape[0]):
            if not taken[j] and all(A[j, m] >= limit for m in members):
                members.append(j)
        if len(members) > 1:
            taken[members] = True
            groups.append(members)
    return groups


def add_columns(bits: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """``bits`` with one more column per group: on iff any member is on."""
    extra = [np.asarray(bits)[:, list(g)].any(axis=1) for g in groups]
    if not extra:
        return np.asarray(bits, dtype=bool)
    return np.concatenate([np.asarray(bits, dtype=bool), np.stack(extra, axis=1)], axis=1)


def _names(taken: set[str], n: int) -> list[str]:
    out, k = [], 1
    while len(out) < n:
        name = f"g{k}"
        if name not in taken:
            out.append(name)
        k += 1
    return out


@dataclass(frozen=True)
class Grouping:
    """Groups of the kernels of one extraction.

    Attributes
    ----------
    kernels : tuple of Variable
        Every kernel of the layer, in column order.
    groups : tuple of tuple of int
        Member columns of each group.
    names : tuple of str
        The groups' variable names (``g1``, ...; never a kernel's name).
    agreement : tuple of float
        The lowest pairwise agreement within each group (training images).
    threshold : float
    """

    kernels: tuple[Variable, ...]
    groups: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]
    agreement: tuple[float, ...]
    threshold: float

    @classmethod
    def fit(cls, bits: np.ndarray, kernels: Sequence[Variable], threshold: float
            ) -> "Grouping":
        """The groups of ``bits`` (training codes, one column per kernel of ``kernels``).

        Raises
        ------
        ExtractionError
            Bad threshold.
        """
        groups = find_groups(bits, threshold)
        A = agreement(bits)
        low = tuple(round(float(min(A[a, b] for a in g for b in g)), 6) for g in groups)
        names = _names({v.name for v in kernels}, len(groups))
        return cls(tuple(kernels), tuple(tuple(g) for g in groups), tuple(names), low,
                   float(threshold))

    @property
    def grouped(self) -> set[int]:
        """Columns that are members of some group."""
        return {j for g in self.groups for j in g}

    @property
    def group_variables(self) -> tuple[Variable, ...]:
        """One variable per group (layer :data:`GROUP_LAYER`, index = its number)."""
        return tuple(Variable(name, GROUP_LAYER, i) for i, name in enumerate(self.names))

    @property
    def seen(self) -> list[int]:
        """Kernel columns the method sees besides the groups: those in no group."""
        grouped = self.grouped
        return [j for j in range(len(self.kernels)) if j not in grouped]

    def reduce(self, bits: np.ndarray) -> np.ndarray:
        """What the method learns from: ungrouped kernels' columns, then the groups'."""
        return add_columns(bits, self.groups)[:, self.seen + list(
            range(len(self.kernels), len(self.kernels) + len(self.groups)))]

    def reduced_variables(self) -> tuple[Variable, ...]:
        """The variables of :meth:`reduce`'s columns."""
        return tuple(self.kernels[j] for j in self.seen) + self.group_variables

    def all_variables(self) -> tuple[Variable, ...]:
        """The rules file's variables: every kernel, then the groups."""
        return self.kernels + self.group_variables

    def meta(self) -> dict[str, Any]:
        """``meta["groups"]`` (module docstring)."""
        return {"members": {n: [self.kernels[j].name for j in g]
                            for n, g in zip(self.names, self.groups)},
                "agreement": dict(zip(self.names, self.agreement)),
                "threshold": self.threshold, "rule": GROUP_RULE,
                "kernels": len(self.kernels), "variables_seen": len(self.seen)
                + len(self.groups)}

    def widen_codes(self, codes: BinaryCodes) -> BinaryCodes:
        """Raw kernel codes (one column per kernel) with the groups' columns added."""
        return replace(codes, bits=add_columns(codes.bits, self.groups),
                       variables=self.all_variables())

    def reduce_codes(self, codes: BinaryCodes) -> BinaryCodes:
        """Raw kernel codes as the method sees them (:meth:`reduce`)."""
        return replace(codes, bits=self.reduce(codes.bits), variables=self.reduced_variables())

    def widen_rules(self, rules: RuleSet) -> RuleSet:
        """Rules over the reduced variables declared over every kernel and group."""
        return rules.replace(variables=self.all_variables())


class GroupedRun:
    """One grouped extraction: the :class:`Grouping` and the kernel codes before it.

    :func:`group_prepared` makes it; its ``finish`` keeps the method's raw codes here
    (``raw_train``, ``raw_test``) and hands the driver the reduced ones, so that after
    ranking and evaluation :meth:`widen` can declare the rules over every kernel and
    group and give the codes to save (every kernel's column and every group's).
    """

    def __init__(self, grouping: Grouping) -> None:
        self.grouping = grouping
        self.raw_train: BinaryCodes | None = None
        self.raw_test: BinaryCodes | None = None

    def widen(self, rules: RuleSet, unminimized: RuleSet
              ) -> tuple[RuleSet, RuleSet, BinaryCodes, BinaryCodes]:
        """``(rules, unminimized, train codes, test codes)`` over all kernels and groups.

        Raises
        ------
        ExtractionError
            Called before the method's ``finish``.
        """
        if self.raw_train is None or self.raw_test is None:
            raise ExtractionError("grouped extraction: widen() before finish()")
        g = self.grouping
        return (g.widen_rules(rules), g.widen_rules(unminimized),
                g.widen_codes(self.raw_train), g.widen_codes(self.raw_test))


def group_prepared(prepared: Prepared, threshold: float, method: str
                   ) -> tuple[Prepared, GroupedRun]:
    """``prepared`` with its training bits grouped; its ``finish`` gives reduced codes.

    Raises
    ------
    ExtractionError
        The method does not learn from binary codes, or a bad threshold.
    """
    X = prepared.fit_args.get("X")
    variables = prepared.fit_args.get("variables")
    if (method not in GROUPING_METHODS or not isinstance(X, np.ndarray) or X.dtype != bool
            or variables is None):
        raise ExtractionError(f"--group-kernels needs a method that learns from binary "
                              f"codes ({', '.join(GROUPING_METHODS)}), not {method}")
    grouping = Grouping.fit(X, tuple(variables), threshold)
    run = GroupedRun(grouping)
    fit_args = {**prepared.fit_args, "X": grouping.reduce(X),
                "variables": grouping.reduced_variables()}

    def finish(extractor: Any) -> Outcome:
        out = prepared.finish(extractor)
        run.raw_train, run.raw_test = out.train_codes, out.test_codes
        return replace(out, train_codes=grouping.reduce_codes(out.train_codes),
                       test_codes=grouping.reduce_codes(out.test_codes),
                       meta={**out.meta, "groups": grouping.meta()})

    return Prepared(prepared.extractor, fit_args, finish), run


def add_group_columns(codes: BinaryCodes, rules: RuleSet) -> BinaryCodes:
    """Codes of a layer's kernels (e.g. :func:`cnn2logic.units.codes_for`) with the
    columns of ``rules``' groups added, so that ``rules`` can read them; unchanged when
    the rules have no groups or the codes have them already.

    Raises
    ------
    ExtractionError
        A member kernel is missing from the codes.
    """
    groups = rules.meta.get("groups") if isinstance(rules.meta, Mapping) else None
    if not groups:
        return codes
    members = groups.get("members") or {}
    if all(g in codes.names for g in members):
        return codes
    column = {n: j for j, n in enumerate(codes.names)}
    missing = [k for ks in members.values() for k in ks if k not in column]
    if missing:
        raise ExtractionError(f"the codes lack the group member kernel(s) "
                              f"{', '.join(missing[:5])}")
    variables = {v.name: v for v in rules.variables}
    bits = add_columns(codes.bits, [[column[k] for k in ks] for ks in members.values()])
    return replace(codes, bits=bits, variables=tuple(codes.variables) + tuple(
        variables.get(g, Variable(g, GROUP_LAYER, i)) for i, g in enumerate(members)))
