"""What every program writer (ASP, Prolog) shares: one model of the program to write.

:func:`prepare` turns a :class:`~cnn2logic.rules.RuleSet` (and optionally the binarised
activations of a data set) into a :class:`ProgramModel`: every name already made a legal
identifier by :mod:`cnn2logic.names`, every rule reduced to ranks, positive and negative
kernel identifiers and a threshold, and the data aligned to the rules' kernels.  The
writers only format it, so an ASP program and a Prolog program written from the same input
always agree on identifiers, ranks and facts.

Example
-------
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet((Variable("k1", "pool", 0),), (Head("3"), Head("cat-dog")),
...              (Rule("3", (Literal("k1"),)),), default="cat-dog")
>>> m = prepare(rs)
>>> [(r.rank, r.head, r.pos, r.neg) for r in m.rules]
[(1, 'c_3', ('k_k1',), ())]
>>> m.default
'c_cat_dog'
"""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .. import __version__
from ..errors import ExportError, RulesFileError
from ..labels import META_KEY as LABELS_KEY, kernel_labels
from ..names import NameTable, comment_safe
from .markdown import rule_kind_sentence
from ..rules import Rule, RuleSet

if TYPE_CHECKING:  # annotations only: importing units loads torch
    from ..units import BinaryCodes

#: ``meta`` key under which the extractor stores the rules before minimisation.
UNMINIMIZED_KEY = "unminimized_rules"

KERNEL_PREFIX, CLASS_PREFIX, IMAGE_PREFIX = "k", "c", "i"

#: Constants the query programs use for hypothetical images.  Identifiers made by
#: :class:`~cnn2logic.names.NameTable` always start with a prefix letter followed by
#: ``_`` (or are the bare prefix), so none of these can clash with an image identifier.
RESERVED_IMAGES = ("none", "hyp", "flip")


@dataclass(frozen=True)
class KernelDecl:
    """A kernel: identifier, original name, layer and index; derived and / or read."""

    ident: str
    name: str
    layer: str
    index: int
    derived: bool  # concluded by a rule of kind "kernel"
    is_input: bool  # a rule variable whose value is not derived by a rule
    label: str = ""  # what a person calls it (cnn2logic.labels), "" when unlabelled


@dataclass(frozen=True)
class ClassDecl:
    """A class: identifier, original name and output unit (None when not recorded)."""

    ident: str
    name: str
    index: int | None  # output-unit index when the rules record one


@dataclass(frozen=True)
class RuleDecl:
    """One rule, reduced to identifiers: rank, kind, head, literals and threshold."""

    rank: int  # 1-based position in the rule set
    kind: str  # "class" or "kernel"
    head: str  # identifier of the class or kernel concluded
    pos: tuple[str, ...]  # kernel identifiers that must be active
    neg: tuple[str, ...]  # kernel identifiers that must be inactive
    need: int  # how many of the literals must hold
    conjunction: bool
    text: str  # the rule in the user's names, for a comment


@dataclass(frozen=True)
class DataDecl:
    """The data aligned to the rules: image identifiers and ids, activations, labels."""

    ids: tuple[str, ...]  # image identifiers
    names: tuple[str, ...]  # original image ids
    active: np.ndarray  # (images, input kernels) bool, columns in ``input_kernels`` order
    input_kernels: tuple[str, ...]
    labels: tuple[str | None, ...] | None
    predictions: tuple[str | None, ...] | None

    def patterns(self) -> list[tuple[int, int, tuple[int, ...]]]:
        """Distinct activation vectors as ``(images, first image, active columns)``.

        In order of first occurrence, so the numbering is stable for a given data set.
        """
        if len(self.ids) == 0:
            return []
        packed = np.packbits(self.active, axis=1) if self.active.shape[1] else np.zeros(
            (len(self.ids), 1), dtype=np.uint8)
        _, first, inverse, counts = np.unique(packed, axis=0, return_index=True,
                                              return_inverse=True, return_counts=True)
        order = np.argsort(first, kind="stable")
        return [(int(counts[u]), int(first[u]), tuple(int(j) for j in
                                                      self.active[first[u]].nonzero()[0]))
                for u in order]


@dataclass(frozen=True)
class ProgramModel:
    """Everything a program writer formats; see :func:`prepare`."""

    kernels: tuple[KernelDecl, ...]
    classes: tuple[ClassDecl, ...]
    rules: tuple[RuleDecl, ...]
    default: str | None
    data: DataDecl | None
    header: tuple[str, ...]  # comment lines without the comment marker

    @property
    def chained(self) -> tuple[str, ...]:
        """Kernels concluded by a rule *and* read by other rules (chained layers)."""
        used = {k for r in self.rules for k in (*r.pos, *r.neg)}
        return tuple(k.ident for k in self.kernels if k.derived and k.ident in used)

    @property
    def has_threshold_rules(self) -> bool:
        """Whether some rule is M-of-N rather than a conjunction."""
        return any(not r.conjunction for r in self.rules)


def select_rules(rules: RuleSet, unminimized: bool = False) -> RuleSet:
    """``rules`` itself, or the unminimised rules its extractor kept in ``meta``.

    Raises
    ------
    ExportError
        ``unminimized`` is asked for but ``meta["unminimized_rules"]`` is absent or malformed.
    """
    if not unminimized:
        return rules
    stored = rules.meta.get(UNMINIMIZED_KEY)
    if stored is None:
        raise ExportError(
            f"these rules carry no unminimised version (meta[{UNMINIMIZED_KEY!r}] is absent); "
            "export the minimised rules, or re-extract with a version that keeps them"
        )
    document = rules.to_dict()
    document["rules"] = stored
    document["meta"] = {k: v for k, v in rules.meta.items() if k != UNMINIMIZED_KEY}
    try:
        return RuleSet.from_dict(document)
    except (RulesFileError, TypeError) as exc:
        raise ExportError(f"meta[{UNMINIMIZED_KEY!r}] is not a valid rule list: {exc}") from None


def prepare(rules: RuleSet, codes: BinaryCodes | None = None, *, unminimized: bool = False,
            sources: Mapping[str, str] | None = None, language: str = "ASP") -> ProgramModel:
    """Name, rank and align everything a program writer needs.

    Parameters
    ----------
    rules : RuleSet
    codes : BinaryCodes, optional
        Binarised activations of a data set; every kernel the rules read must be among them.
    unminimized : bool
        Write ``meta["unminimized_rules"]`` instead of the (minimised) rules themselves.
    sources : mapping, optional
        Extra ``name: value`` lines for the header (e.g. the input file names).
    language : str
        Named in the header only.

    Raises
    ------
    ExportError
        Unknown head kind, chained kernel rules that depend on themselves, activations that
        lack a kernel the rules read, duplicate image ids or out-of-range labels.
    """
    chosen = select_rules(rules, unminimized)
    ktab, ctab = NameTable(KERNEL_PREFIX), NameTable(CLASS_PREFIX)

    for head in chosen.heads:
        if head.kind not in ("class", "kernel"):
            raise ExportError(f"head {head.name!r} has kind {head.kind!r}; "
                              "only 'class' and 'kernel' heads can be exported")
    for v in chosen.variables:
        _check_text("kernel", v.name)
        _check_text("layer", v.layer)
    for h in chosen.heads:
        _check_text(h.kind, h.name)
        _check_text("layer", h.layer)
    if codes is not None:
        for name in codes.classes:
            _check_text("class", name)
        for name in codes.ids:
            _check_text("image id", name)
    kernel_heads = [h for h in chosen.heads if h.kind == "kernel"]
    groups = kernel_groups(chosen)
    # A group (--group-kernels) is a derived kernel: on iff any of its members is on.
    derived_names = {h.name for h in kernel_heads} | set(groups)
    variable_names = set(chosen.variable_names)

    labels = kernel_labels(chosen)
    kernels: list[KernelDecl] = []
    for v in chosen.variables:
        kernels.append(KernelDecl(ktab.add(v.name), v.name, v.layer, int(v.index),
                                  v.name in derived_names, v.name not in derived_names,
                                  labels.get(v.name, "")))
    for h in kernel_heads:
        if h.name not in variable_names:
            kernels.append(KernelDecl(ktab.add(h.name), h.name, h.layer, int(h.index), True,
                                      False, labels.get(h.name, "")))
    classes: list[ClassDecl] = []
    for h in chosen.heads:
        if h.kind == "class":
            index = int(h.index) if h.layer or h.index else None
            classes.append(ClassDecl(ctab.add(h.name), h.name, index))
    if codes is not None:
        # Classes the data knows but no rule concludes still get declared, so labels and
        # network predictions always refer to a declared class.
        known = {c.name for c in classes}
        for i, name in enumerate(codes.classes):
            if name not in known:
                classes.append(ClassDecl(ctab.add(name), name, i))
                known.add(name)

    kind = {h.name: h.kind for h in chosen.heads}
    decls = []
    for rank, rule in enumerate(chosen.rules, 1):
        head_ident = ktab[rule.head] if kind[rule.head] == "kernel" else ctab[rule.head]
        decls.append(RuleDecl(
            rank, kind[rule.head], head_ident,
            tuple(ktab[lit.var] for lit in rule.body if lit.positive),
            tuple(ktab[lit.var] for lit in rule.body if not lit.positive),
            rule.threshold, rule.is_conjunction, _rule_text(rule)))
    for group, members in groups.items():
        decls.append(RuleDecl(len(decls) + 1, "kernel", ktab[group],
                              tuple(ktab[m] for m in members), (), 1, False,
                              comment_safe(f"{group} <- any of ({', '.join(members)})")))
    _check_acyclic(decls)

    default = ctab[chosen.default] if chosen.default is not None else None
    data = _align(chosen, codes, ktab, ctab, kernels) if codes is not None else None
    model = ProgramModel(tuple(kernels), tuple(classes), tuple(decls), default, data, ())
    header = _header(chosen, model, unminimized, sources or {}, language)
    return ProgramModel(model.kernels, model.classes, model.rules, default, data, header)


def kernel_groups(rules: RuleSet) -> dict[str, list[str]]:
    """Group name -> member kernels, from ``meta["groups"]`` (``--group-kernels``; the
    strict reader has checked them), for the groups the rules declare."""
    groups = rules.meta.get("groups") if isinstance(rules.meta, Mapping) else None
    members = groups.get("members") if isinstance(groups, Mapping) else None
    if not isinstance(members, Mapping):
        return {}
    known = set(rules.variable_names)
    return {str(g): [str(k) for k in ks] for g, ks in members.items()
            if g in known and all(k in known for k in ks)}


def _check_text(what: str, text: str) -> None:
    # Every other character survives quoting (names.asp_string / prolog_atom); NUL cannot
    # appear in a clingo string at all.
    if "\x00" in str(text):
        raise ExportError(f"{what} name {str(text)!r} contains a NUL character, which ASP "
                          "and Prolog strings cannot hold")


def _rule_text(rule: Rule) -> str:
    return comment_safe(f"{rule.head} <- {rule.format()}")


def _check_acyclic(rules: Sequence[RuleDecl]) -> None:
    deps: dict[str, set[str]] = {}
    for r in rules:
        if r.kind == "kernel":
            deps.setdefault(r.head, set()).update(r.pos, r.neg)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = path[path.index(node):] + [node]
            raise ExportError("chained kernel rules depend on themselves: " + " -> ".join(cycle))
        state[node] = 1
        for nxt in sorted(deps.get(node, ())):
            visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(deps):
        visit(node, [])


def _align(rules: RuleSet, codes: BinaryCodes, ktab: NameTable, ctab: NameTable,
           kernels: Sequence[KernelDecl]) -> DataDecl:
    column = {name: j for j, name in enumerate(codes.names)}
    inputs = [k for k in kernels if k.is_input]
    missing = [k.name for k in inputs if k.name not in column]
    if missing:
        raise ExportError(
            f"the activations lack {len(missing)} kernel(s) the rules read: "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} "
            f"(activations have {', '.join(codes.names[:10])}"
            f"{' ...' if len(codes.names) > 10 else ''})"
        )
    bits = np.asarray(codes.bits, dtype=bool)
    active = bits[:, [column[k.name] for k in inputs]] if inputs else np.zeros(
        (len(bits), 0), dtype=bool)

    itab = NameTable(IMAGE_PREFIX)
    ids = []
    seen: set[str] = set()
    for original in codes.ids:
        if original in seen:
            raise ExportError(f"image id {original!r} occurs more than once in the activations")
        seen.add(original)
        ids.append(itab.add(original))

    def classes_of(values: np.ndarray | None, what: str) -> tuple[str | None, ...] | None:
        if values is None:
            return None
        out: list[str | None] = []
        for i, v in enumerate(np.asarray(values).tolist()):
            v = int(v)
            if v < 0:
                out.append(None)  # unknown label
            elif v >= len(codes.classes):
                raise ExportError(f"{what} of image {codes.ids[i]!r} is {v}, but the "
                                  f"activations name only {len(codes.classes)} classes")
            else:
                out.append(ctab[codes.classes[v]])
        return tuple(out)

    return DataDecl(tuple(ids), tuple(codes.ids), active, tuple(k.ident for k in inputs),
                    classes_of(codes.labels, "label"),
                    classes_of(codes.predictions, "network prediction"))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _compact(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, ensure_ascii=False,
                      separators=(", ", ": "))


def _quoted(text: str) -> str:
    return json.dumps(str(text), ensure_ascii=False)


#: ``meta`` entries recorded in the header first, in this order; other entries follow when
#: they are short, and bulky ones (tables, reports, rule lists) are left out.
_META_FIRST = ("method", "model", "architecture", "data", "layer", "output_layer", "settings")
_META_SKIP = (UNMINIMIZED_KEY, "table", "confusion", "minimization", LABELS_KEY, "groups")
_META_MAX = 300
_META_ALWAYS = _META_FIRST + ("thresholds", "metrics")


def _meta_lines(meta: Mapping[str, Any]) -> list[str]:
    lines = []
    keys = [k for k in _META_FIRST if k in meta]
    keys += sorted(k for k in meta if k not in _META_FIRST and k not in _META_SKIP)
    for key in keys:
        value = meta[key]
        if key == "thresholds" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k != "values"}
        if key == "metrics" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items()
                     if isinstance(v, (int, float, str, bool, np.generic)) or v is None}
        text = _compact(value)
        if len(text) > _META_MAX and key not in _META_ALWAYS:
            continue
        lines.append(f"{comment_safe(key)}: {comment_safe(text)}")
    return lines


def _kind_lines(meta: Mapping[str, Any]) -> list[str]:
    # What the rules promise, in the same words as rules.md and the report.
    kind = rule_kind_sentence(meta).replace("**", "")
    if not kind:
        return []
    return ["  " + line for line in textwrap.wrap(kind[:1].upper() + kind[1:] + ".", 84)]


def _header(rules: RuleSet, model: ProgramModel, unminimized: bool,
            sources: Mapping[str, str], language: str) -> tuple[str, ...]:
    groups = kernel_groups(rules)
    n_class_rules = sum(r.kind == "class" for r in model.rules)
    n_kernel_rules = len(model.rules) - n_class_rules
    lines = [
        f"cnn2logic {__version__}: rules of a CNN as {language}. Generated; "
        "do not edit by hand.",
        "",
        "Source",
    ]
    for key in sorted(sources):
        lines.append(f"  {key}: {comment_safe(sources[key])}")
    settings = rules.meta.get("settings")
    minimize = settings.get("minimize") if isinstance(settings, Mapping) else None
    if unminimized:
        which = "unminimised, from meta.unminimized_rules"
    elif minimize is not None:
        which = f"as stored in the rules file (minimisation: {minimize})"
    else:
        which = "as stored in the rules file"
    lines.append(f"  rules: {which}: {n_class_rules} class rule(s)"
                 + (f", {n_kernel_rules} kernel rule(s)" if n_kernel_rules else ""))
    lines += [f"  {line}" for line in _meta_lines(rules.meta)]
    if model.data is not None:
        lines.append(f"  activations: {len(model.data.ids)} image(s)"
                     + ("" if model.data.labels is None else ", with true labels")
                     + ("" if model.data.predictions is None else ", with network predictions"))
    lines += [
        "",
        "Semantics",
        "  A rule fires for an image when all its literals hold (or, for an M-of-N rule, at",
        "  least M of them). predicts(I, C): some rule for class C fires. prediction(I, C): C is",
        "  the class of the first firing rule in rank order, else the default class.",
        *_kind_lines(rules.meta),
        "",
        "Predicates",
        "  kernel(K, Layer, Index)  kernel_name(K, Name)  kernel_label(K, Label)",
        "  input_kernel(K)  derived_kernel(K)",
        "  class(C)  class_name(C, Name)  default_class(C)",
        "  rule(R, C)  derives(R, K)  need(R, M)  pos(R, K)  neg(R, K)   rule R, in rank order",
        "  image(I)  image_id(I, Id)  image_index(I, N)  label(I, C)  net_prediction(I, C)",
        "  active(I, K)  fires(I, R)  derived(I, K)  first(I, R)",
        "  predicts(I, C)  prediction(I, C)",
        "  pattern(P, Images, FirstImage)  pattern_active(P, K)   distinct activations",
        *_group_lines(rules, groups),
        "",
        "Identifiers",
    ]
    width = max([len(k.ident) for k in model.kernels] + [len(c.ident) for c in model.classes]
                + [4])
    for k in model.kernels:
        role = ("group" if k.name in groups else "derived kernel" if k.derived
                else "kernel")
        label = f", label {_quoted(k.label)}" if k.label else ""
        lines.append(f"  {k.ident.ljust(width)}  {role} {_quoted(k.name)} of layer "
                     f"{_quoted(k.layer)}, index {k.index}{label}")
    for c in model.classes:
        index = "" if c.index is None else f", output unit {c.index}"
        lines.append(f"  {c.ident.ljust(width)}  class {_quoted(c.name)}{index}")
    if model.data is not None:
        lines.append(f"  {'i_*'.ljust(width)}  images: image_id/2 gives each image's original id")
    return tuple(comment_safe(line) for line in lines)


def _group_lines(rules: RuleSet, groups: Mapping[str, Sequence[str]]) -> list[str]:
    # What --group-kernels merged, and what a group means.
    if not groups:
        return []
    meta = rules.meta.get("groups") or {}
    agree = meta.get("agreement") or {}
    lines = ["", "Groups",
             f"  Kernels whose binary codes agree on at least {meta.get('threshold')} of the "
             "training images are one",
             "  group; a group is a derived kernel, active iff at least one member is "
             "active."]
    for g, members in groups.items():
        share = agree.get(g)
        lines.append(f"  {g} = any of {', '.join(members)}"
                     + (f"  (agreement {share})" if share is not None else ""))
    return lines


def basename(path: str | os.PathLike[str]) -> str:
    """The file name alone: headers must not depend on the directory a command ran in."""
    return os.path.basename(os.fspath(path))
