"""The one rule type every extractor produces and every exporter consumes.

A :class:`RuleSet` is immutable.  It names its input variables (binarised kernel units),
its heads (the classes, or the kernels of a higher layer for chained extraction) and holds
:class:`Rule` objects.  A rule is a conjunction of literals, or an M-of-N threshold over
them (``min_true``); a plain conjunction is the M = N case, so one type covers the
approximation method, decision-tree rules and M-of-N rules alike.

Prediction semantics (the same in Python, ASP and Prolog):

* a head *fires* for an input when at least one of its rules is satisfied;
* the predicted class is the head of the **first satisfied rule in rule order** (rules are
  stored ranked, best first); when no rule is satisfied it is ``default``.

When exactly one class fires this is simply that class; the rank order only decides the
ambiguous cases, and the metrics report how often those happen.

Example
-------
>>> import numpy as np
>>> from cnn2logic.rules import Literal, Rule, RuleSet, Variable, Head
>>> rs = RuleSet(
...     variables=(Variable("k1", "conv", 0), Variable("k2", "conv", 1)),
...     heads=(Head("a"), Head("b")),
...     rules=(Rule("a", (Literal("k1", True), Literal("k2", False))),),
...     default="b",
... )
>>> rs.predict(np.array([[1, 0], [1, 1]], dtype=bool)).tolist()
['a', 'b']
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import LabelsError, RulesFileError
from .labels import check_meta as check_labels_meta

FORMAT_NAME = "cnn2logic-rules"
FORMAT_VERSION = 1
#: Rows per matrix product in :meth:`RuleSet.rule_matrix` (bounds its memory).
_ROWS_PER_PRODUCT = 4096


@dataclass(frozen=True, order=True)
class Literal:
    """A variable, or its negation (``positive=False``)."""

    var: str
    positive: bool = True

    def __str__(self) -> str:
        return self.var if self.positive else f"¬{self.var}"


@dataclass(frozen=True)
class Variable:
    """An input of the rules: one binarised kernel unit."""

    name: str
    layer: str = ""
    index: int = 0


@dataclass(frozen=True)
class Head:
    """What a rule concludes: a class (``kind='class'``) or a kernel of a higher layer."""

    name: str
    kind: str = "class"
    layer: str = ""
    index: int = 0


@dataclass(frozen=True)
class Rule:
    """``head`` holds when at least ``min_true`` of ``body``'s literals hold.

    ``min_true=None`` means all of them (a product term).  ``stats`` carries measured
    figures (support, precision, ...) and takes no part in equality.
    """

    head: str
    body: tuple[Literal, ...]
    min_true: int | None = None
    stats: Mapping[str, float] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        body = tuple(sorted(self.body, key=lambda lit: (not lit.positive, natural_key(lit.var))))
        names = [lit.var for lit in body]
        if len(set(names)) != len(names):
            raise RulesFileError(f"rule for {self.head!r} uses a variable twice: {names}")
        object.__setattr__(self, "body", body)
        if self.min_true is not None:
            if not 0 <= self.min_true <= len(body):
                raise RulesFileError(
                    f"rule for {self.head!r}: min_true={self.min_true} outside 0..{len(body)}"
                )
            if self.min_true == len(body):
                object.__setattr__(self, "min_true", None)

    @property
    def is_conjunction(self) -> bool:
        """Whether every body literal must hold (a product term, not M-of-N)."""
        return self.min_true is None

    @property
    def threshold(self) -> int:
        """How many body literals must hold."""
        return len(self.body) if self.min_true is None else self.min_true

    def format(self) -> str:
        """Readable body: ``k6 ∧ k8 ∧ ¬k1``, ``2-of(k1, ¬k3, k4)``, or ``⊤``."""
        if not self.body and self.threshold == 0:
            return "⊤"
        if self.is_conjunction:
            return " ∧ ".join(str(lit) for lit in self.body)
        return f"{self.min_true}-of({', '.join(str(lit) for lit in self.body)})"

    def __str__(self) -> str:
        return f"{self.head} ← {self.format()}"


@dataclass(frozen=True)
class RuleSet:
    """An ordered, immutable collection of rules over named binary variables."""

    variables: tuple[Variable, ...]
    heads: tuple[Head, ...]
    rules: tuple[Rule, ...]
    default: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "heads", tuple(self.heads))
        object.__setattr__(self, "rules", tuple(self.rules))
        var_names = [v.name for v in self.variables]
        head_names = [h.name for h in self.heads]
        for what, names in (("variable", var_names), ("head", head_names)):
            if len(set(names)) != len(names):
                dup = sorted({n for n in names if names.count(n) > 1})
                raise RulesFileError(f"duplicate {what} name(s): {dup}")
        known_vars, known_heads = set(var_names), set(head_names)
        for rule in self.rules:
            if rule.head not in known_heads:
                raise RulesFileError(f"rule head {rule.head!r} is not a declared head")
            for lit in rule.body:
                if lit.var not in known_vars:
                    raise RulesFileError(
                        f"rule for {rule.head!r} uses undeclared variable {lit.var!r}"
                    )
        if self.default is not None and self.default not in known_heads:
            raise RulesFileError(f"default {self.default!r} is not a declared head")

    # -- views -------------------------------------------------------------------------
    @property
    def variable_names(self) -> tuple[str, ...]:
        """The input variables' names, in declaration order."""
        return tuple(v.name for v in self.variables)

    @property
    def head_names(self) -> tuple[str, ...]:
        """The heads' (classes') names, in declaration order."""
        return tuple(h.name for h in self.heads)

    def rules_for(self, head: str) -> tuple[Rule, ...]:
        """The rules concluding ``head``, in rank order."""
        if head not in self.head_names:
            raise RulesFileError(f"unknown head {head!r}; known: {list(self.head_names)}")
        return tuple(r for r in self.rules if r.head == head)

    def replace(self, **changes: Any) -> "RuleSet":
        """A copy with the given fields changed (the rule set itself is immutable).

        Raises
        ------
        RulesFileError
            The changed rule set is inconsistent (e.g. a rule names an unknown head).
        """
        return replace(self, **changes)

    # -- evaluation --------------------------------------------------------------------
    def _literal_matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index = {name: i for i, name in enumerate(self.variable_names)}
        pos = np.zeros((len(self.rules), len(self.variables)), dtype=np.int32)
        neg = np.zeros_like(pos)
        for r, rule in enumerate(self.rules):
            for lit in rule.body:
                (pos if lit.positive else neg)[r, index[lit.var]] = 1
        need = np.array([rule.threshold for rule in self.rules], dtype=np.int32)
        return pos, neg, need

    def rule_matrix(self, X: np.ndarray) -> np.ndarray:
        """Boolean matrix (samples × rules): which rule is satisfied by which row of ``X``."""
        X = _as_bits(X, len(self.variables))
        pos, neg, need = self._literal_matrices()
        # float32 so that the products run in BLAS (integer matmul does not: 6.6 s against
        # 0.3-0.5 s for 1,323 rules x 10,000 codes of 512 units); the counts are small
        # integers, exact in float32.
        pos_t, neg_t = pos.T.astype(np.float32), neg.T.astype(np.float32)
        out = np.empty((len(X), len(self.rules)), dtype=bool)
        # A slice of rows at a time: the float products are (rows x rules) each, gigabytes
        # at once for thousands of rules over tens of thousands of images.
        for i in range(0, len(X), _ROWS_PER_PRODUCT):
            Xf = X[i:i + _ROWS_PER_PRODUCT].astype(np.float32)
            out[i:i + _ROWS_PER_PRODUCT] = (Xf @ pos_t + (1 - Xf) @ neg_t) >= need[None, :]
        return out

    def fires(self, X: np.ndarray) -> np.ndarray:
        """Boolean matrix (samples × heads): which heads fire for which row of ``X``."""
        sat = self.rule_matrix(X)
        out = np.zeros((sat.shape[0], len(self.heads)), dtype=bool)
        head_index = {h: i for i, h in enumerate(self.head_names)}
        for r, rule in enumerate(self.rules):
            out[:, head_index[rule.head]] |= sat[:, r]
        return out

    def first_rule(self, X: np.ndarray) -> np.ndarray:
        """Index of the first satisfied rule per row, ``-1`` where none is."""
        sat = self.rule_matrix(X)
        if sat.shape[1] == 0:  # no rules at all: nothing is ever satisfied
            return np.full(sat.shape[0], -1)
        first = np.argmax(sat, axis=1)
        first[~sat.any(axis=1)] = -1
        return first

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted head name per row (first satisfied rule, else ``default``)."""
        first = self.first_rule(X)
        names = np.array([r.head for r in self.rules] + [self.default], dtype=object)
        return names[np.where(first >= 0, first, len(self.rules))]

    def predict_index(self, X: np.ndarray) -> np.ndarray:
        """Like :meth:`predict` but as head indices (``-1`` for no prediction)."""
        lookup = {h: i for i, h in enumerate(self.head_names)}
        return np.array([lookup.get(p, -1) if p is not None else -1 for p in self.predict(X)])

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The rules file's JSON document (what :meth:`from_dict` reads back)."""
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "variables": [
                {"name": v.name, "layer": v.layer, "index": v.index} for v in self.variables
            ],
            "heads": [
                {"name": h.name, "kind": h.kind, "layer": h.layer, "index": h.index}
                for h in self.heads
            ],
            "default": self.default,
            "rules": [
                {
                    "head": r.head,
                    "body": [[lit.var, lit.positive] for lit in r.body],
                    "min_true": r.min_true,
                    "stats": {k: _json_number(v) for k, v in sorted(r.stats.items())},
                }
                for r in self.rules
            ],
            "meta": _jsonable(self.meta),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as deterministic JSON text (sorted keys, one trailing newline)."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RuleSet":
        """A rule set from its JSON document, every field checked for type and range.

        Nothing is coerced: a polarity must be a JSON boolean, ``min_true`` and indices
        integers, names strings; sizes are bounded (:data:`MAX_ITEMS` entries per list,
        :data:`MAX_NAME` characters per name).

        Raises
        ------
        RulesFileError
            The document does not follow the schema; the message names the bad field.
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_NAME:
            raise RulesFileError(f"not a {FORMAT_NAME} document (missing 'format' field)")
        version = data.get("version")
        if type(version) is not int or version != FORMAT_VERSION:
            raise RulesFileError(f"unsupported rules version {_short(version)}")
        variables = tuple(
            Variable(_name(v, "name", f"variables[{i}]"), _text(v, "layer", f"variables[{i}]"),
                     _index(v, f"variables[{i}]"))
            for i, v in enumerate(_items(data, "variables", "document")))
        heads = tuple(
            Head(_name(h, "name", f"heads[{i}]"),
                 _text(h, "kind", f"heads[{i}]", "class"), _text(h, "layer", f"heads[{i}]"),
                 _index(h, f"heads[{i}]"))
            for i, h in enumerate(_items(data, "heads", "document")))
        rules = tuple(_rule_from_dict(r, f"rules[{i}]")
                      for i, r in enumerate(_items(data, "rules", "document")))
        default = data.get("default")
        if default is not None and not isinstance(default, str):
            raise RulesFileError(f"default must be a head name or null, not {_short(default)}")
        meta = data.get("meta", {})
        if not isinstance(meta, Mapping):
            raise RulesFileError(f"meta must be an object, not {type(meta).__name__}")
        _check_meta(meta)
        _check_groups(meta.get("groups"), {v.name for v in variables})
        return cls(variables, heads, rules, default, dict(meta))

    @classmethod
    def from_json(cls, text: str) -> "RuleSet":
        """:meth:`from_dict` of a JSON text.

        Raises
        ------
        RulesFileError
            Not JSON (including numbers too long for Python and nesting too deep), or not
            the schema.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RulesFileError(f"rules file is not JSON: {exc}") from None
        except (ValueError, RecursionError) as exc:  # 5,000-digit integers; deep nesting
            raise RulesFileError(f"rules file is not usable JSON: {str(exc)[:120]}") from None
        return cls.from_dict(data)


#: At most this many entries in any list of a rules document.
MAX_ITEMS = 10_000_000
#: At most this many characters in a variable, head or layer name.
MAX_NAME = 10_000
#: Variable and head indices are below this (they reach clingo, whose integers are 32-bit).
MAX_INDEX = 2**31 - 1


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _items(obj: Any, key: str, where: str) -> list:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if not isinstance(value, list):
        raise RulesFileError(f"{where}: {key!r} must be a list, not {type(value).__name__}")
    if len(value) > MAX_ITEMS:
        raise RulesFileError(f"{where}: {key!r} has {len(value)} entries (at most {MAX_ITEMS})")
    return value


def _text(obj: Any, key: str, where: str, default: str = "") -> str:
    if not isinstance(obj, Mapping):
        raise RulesFileError(f"{where} must be an object, not {type(obj).__name__}")
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise RulesFileError(f"{where}.{key} must be a string, not {_short(value)}")
    if len(value) > MAX_NAME:
        raise RulesFileError(f"{where}.{key} is {len(value)} characters (at most {MAX_NAME})")
    return value


def _name(obj: Any, key: str, where: str) -> str:
    if not isinstance(obj, Mapping):
        raise RulesFileError(f"{where} must be an object, not {type(obj).__name__}")
    if key not in obj:
        raise RulesFileError(f"{where} has no {key!r}")
    value = _text(obj, key, where)
    if not value:
        raise RulesFileError(f"{where}.{key} is empty")
    return value


def _integer(value: Any, where: str, low: int, high: int) -> int:
    # bool is an int subclass in Python, and JSON's true must not read as 1.
    if type(value) is not int or not low <= value <= high:
        raise RulesFileError(f"{where} must be an integer in {low}..{high}, not {_short(value)}")
    return value


def _index(obj: Mapping, where: str) -> int:
    return _integer(obj.get("index", 0), f"{where}.index", 0, MAX_INDEX)


def _rule_from_dict(r: Any, where: str) -> Rule:
    head = _name(r, "head", where)
    body = []
    for j, item in enumerate(_items(r, "body", where)):
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                or not isinstance(item[1], bool)):
            raise RulesFileError(f"{where}.body[{j}] must be [variable name, true|false], "
                                 f"not {_short(item)}")
        body.append(Literal(item[0], item[1]))
    min_true = r.get("min_true")
    if min_true is not None:
        min_true = _integer(min_true, f"{where}.min_true", 0, len(body))
    stats = r.get("stats", {})
    if not isinstance(stats, Mapping) or not all(
            isinstance(k, str) and (v is None or isinstance(v, (int, float, str)))
            for k, v in stats.items()):
        raise RulesFileError(f"{where}.stats must be an object of numbers")
    return Rule(head, tuple(body), min_true, dict(stats))


# Keys of ``meta`` that other parts of cnn2logic read, with the JSON type they must have.
_META_TYPES = {"architecture": str, "data": str, "layer": str, "method": str, "model": str,
               "output_layer": str, "codes_digest": str, "metrics": Mapping,
               "settings": Mapping, "minimization": Mapping, "thresholds": Mapping,
               "chaining": Mapping, "mofn": Mapping, "truncated": Mapping, "table": list,
               "confusion": list, "unminimized_rules": list, "rule_kind": str,
               "ordered": bool, "rulelist": Mapping, "kernel_labels": Mapping,
               "groups": Mapping}


def _check_meta(meta: Mapping) -> None:
    for key, kind in _META_TYPES.items():
        if key in meta and not isinstance(meta[key], kind):
            raise RulesFileError(f"meta.{key} must be {'an object' if kind is Mapping else 'a ' + kind.__name__}"
                                 f", not {type(meta[key]).__name__}")
    metrics = meta.get("metrics", {})
    for key, value in metrics.items():
        if not (value is None or isinstance(value, (int, float, str, Mapping))):
            raise RulesFileError(f"meta.metrics.{key} must be a number, not {_short(value)}")
    thresholds = meta.get("thresholds")
    if thresholds is not None:
        # One layer's thresholds, or (chained extraction) one such object per layer.
        layers = {"": thresholds} if "values" in thresholds else thresholds
        for layer, th in layers.items():
            _check_thresholds(th, f"meta.thresholds{'.' + layer if layer else ''}")
    confusion = meta.get("confusion")
    if confusion is not None and not all(
            isinstance(row, list) and all(type(v) is int for v in row) for row in confusion):
        raise RulesFileError("meta.confusion must be a list of lists of integers")
    for i, rule in enumerate(meta.get("unminimized_rules") or ()):
        _rule_from_dict(rule, f"meta.unminimized_rules[{i}]")
    if "kernel_labels" in meta:
        try:
            check_labels_meta(meta["kernel_labels"])
        except LabelsError as exc:
            raise RulesFileError(str(exc)) from None


def _check_groups(groups: Any, variables: set[str]) -> None:
    """``meta.groups`` (``--group-kernels``): each group a declared variable whose members
    are two or more other declared variables, no kernel in two groups."""
    if groups is None:
        return
    members = groups.get("members")
    if not isinstance(members, Mapping) or len(members) > MAX_ITEMS:
        raise RulesFileError("meta.groups.members must be an object group -> kernels")
    seen: set[str] = set()
    for group, kernels in members.items():
        if group not in variables:
            raise RulesFileError(f"meta.groups: group {_short(group)} is not a variable")
        if (not isinstance(kernels, list) or len(kernels) < 2
                or not all(isinstance(k, str) and k in variables and k not in members
                           for k in kernels)
                or len(set(kernels)) != len(kernels) or seen & set(kernels)):
            raise RulesFileError(f"meta.groups.members.{_short(group)} must list two or "
                                 "more declared kernels, each in one group only")
        seen |= set(kernels)
    if not isinstance(groups.get("rule", "any"), str) or groups.get("rule", "any") != "any":
        raise RulesFileError("meta.groups.rule must be 'any' (a group is on iff any "
                             "member is on)")


def _check_thresholds(th: Any, where: str) -> None:
    values = th.get("values") if isinstance(th, Mapping) else None
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise RulesFileError(f"{where}.values must be a list of numbers")
    if not isinstance(th.get("method", ""), str):
        raise RulesFileError(f"{where}.method must be a string")


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """Read a rules JSON file written by :func:`save_rules` / ``cnn2logic extract``."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise RulesFileError(f"rules file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesFileError(f"cannot read rules file {p}: {exc}") from None
    try:
        return RuleSet.from_json(text)
    except RulesFileError as exc:
        raise RulesFileError(f"{p}: {exc}") from None


def save_rules(rules: RuleSet, path: str | os.PathLike[str]) -> None:
    """Write ``rules`` as JSON atomically (temp file, then rename)."""
    from ._io import atomic_write_text

    atomic_write_text(path, rules.to_json())


def terms_from_bits(
    head: str, bodies: Iterable[Sequence[tuple[int, bool]]], names: Sequence[str]
) -> list[Rule]:
    """Build conjunction rules from ``(variable index, polarity)`` lists."""
    return [Rule(head, tuple(Literal(names[i], bool(p)) for i, p in body)) for body in bodies]


def natural_key(name: str) -> tuple:
    """Sort key that puts ``k2`` before ``k10``."""
    return tuple(int(part) if part.isdigit() else part
                 for part in re.split(r"(\d+)", name))


def _as_bits(X: np.ndarray, n_vars: int) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != n_vars:
        raise RulesFileError(f"expected a (samples, {n_vars}) binary matrix, got shape {X.shape}")
    if X.dtype != bool:
        if not np.isin(X, (0, 1)).all():
            raise RulesFileError("input matrix is not binary (values other than 0 and 1)")
        X = X.astype(bool)
    return X


def _json_number(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return round(float(v), 10)
    return v


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return _json_number(obj)
