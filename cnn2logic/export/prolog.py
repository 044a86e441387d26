"""Write a rule set (and optionally a data set's activations) as an SWI-Prolog module.

The module defines the same predicates, with the same identifiers and the same meaning, as
the ASP program of :mod:`cnn2logic.export.asp` (``kernel/3``, ``class_name/2``, ``rule/2``,
``pos/2``, ``fires/2``, ``predicts/2``, ``prediction/2``, ``active/2``, ...), so a question
asked of one can be asked of the other.  Differences that Prolog imposes:

* negation is ``\\+``; a rule reads ``fires(I, 1) :- image(I), active(I, k_k6), \\+ active(I,
  k_k1).`` and its clauses are in rank order, so the first solution of ``fires(I, R)`` is
  the deciding rule;
* an M-of-N rule counts its true literals with ``at_least/3`` (``aggregate_all(count, ...)``);
* clauses of one predicate are kept together (SWI-Prolog warns otherwise), so the data come
  grouped by predicate rather than one line per image;
* data predicates are ``dynamic``: you can ``assertz`` images of your own and ask
  ``prediction/2`` about them;
* chained rules (kernels derived from kernels) table ``derived/2`` incrementally, so a
  derived kernel is computed once per image instead of once per use, and asserting or
  retracting ``active/2`` facts later still gives the right answers.

Load it with ``swipl rules.pl`` and ask, e.g., ``?- prediction(i_img17, C).``

Example
-------
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet((Variable("k1", "pool", 0), Variable("k2", "pool", 1)), (Head("a"), Head("b")),
...              (Rule("a", (Literal("k1"), Literal("k2", False))),), default="b")
>>> [line for line in to_prolog(rs).splitlines() if line.startswith("fires(")]
['fires(I, 1) :- image(I), active(I, k_k1), \\\\+ active(I, k_k2).']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from ..errors import ExportError
from ..names import is_identifier, prolog_atom
from ..rules import RuleSet
from .layout import trailer
from .model import ProgramModel, RuleDecl, prepare

if TYPE_CHECKING:  # annotations only: importing units loads torch
    from ..units import BinaryCodes

DEFAULT_MODULE = "cnn2logic_program"

#: Exported predicates, in the order of the module's export list.
EXPORTS = (
    ("kernel", 3), ("kernel_name", 2), ("kernel_label", 2), ("input_kernel", 1),
    ("derived_kernel", 1),
    ("class", 1), ("class_name", 2), ("default_class", 1),
    ("rule", 2), ("derives", 2), ("need", 2), ("pos", 2), ("neg", 2),
    ("image", 1), ("image_id", 2), ("image_index", 2), ("label", 2), ("net_prediction", 2),
    ("active", 2), ("pattern", 3), ("pattern_active", 2),
    ("fires", 2), ("derived", 2), ("predicts", 2), ("prediction", 2),
)

#: Defined by the fixed semantics below, whatever the rule set.
_SEMANTICS_DEFINED = (("input_kernel", 1), ("predicts", 2), ("prediction", 2))

#: Predicates users may extend at run time with assertz.
DATA = (("image", 1), ("image_id", 2), ("image_index", 2), ("label", 2),
        ("net_prediction", 2), ("active", 2), ("pattern", 3), ("pattern_active", 2))

SEMANTICS = """\
input_kernel(K) :- kernel(K, _, _), \\+ derived_kernel(K).

% predicts(I, C): some rule for class C fires for image I (each class once).
predicts(I, C) :- image(I), class(C), \\+ \\+ (rule(R, C), fires(I, R)).

% prediction(I, C): the class of the first firing rule in rank order (fires/2 clauses are
% in rank order), else the default class.
prediction(I, C) :- image(I), ( fires(I, R) -> rule(R, C) ; default_class(C) ).

% at_least(M, I, Literals): at least M of p(K) / n(K) hold for image I (M-of-N rules).
at_least(M, I, Literals) :-
    aggregate_all(count, (member(L, Literals), holds(I, L)), N),
    N >= M.

holds(I, p(K)) :- active(I, K).
holds(I, n(K)) :- \\+ active(I, K).
"""


def _body(rule: RuleDecl) -> str:
    if rule.conjunction:
        lits = ([f"active(I, {k})" for k in rule.pos]
                + [f"\\+ active(I, {k})" for k in rule.neg])
        return ", ".join(["image(I)"] + lits)
    if rule.need == 0:
        return "image(I)"
    items = ", ".join([f"p({k})" for k in rule.pos] + [f"n({k})" for k in rule.neg])
    return f"image(I), at_least({rule.need}, I, [{items}])"


def render(model: ProgramModel, module: str = DEFAULT_MODULE) -> str:
    """The Prolog text for a prepared :class:`~cnn2logic.export.model.ProgramModel`.

    Raises
    ------
    ExportError
        ``module`` is not a plain Prolog atom.
    """
    if not is_identifier(module):
        raise ExportError(f"Prolog module name {module!r} must be a lower-case identifier")
    clauses = _clauses(model)
    chained = model.chained
    out: list[str] = [("% " + line) if line else "%" for line in model.header]
    out += _directives(clauses, module, bool(chained))
    sections = (
        ("kernels and classes", ("kernel", "kernel_name", "kernel_label", "derived_kernel",
                                 "class", "class_name", "default_class")),
        ("rules, in rank order", ("rule", "derives", "need", "pos", "neg", "fires",
                                  "derived")),
        ("data", ("image", "image_id", "image_index", "label", "net_prediction", "active",
                  "pattern", "pattern_active")),
    )
    arity = dict(EXPORTS)
    for title, names in sections:
        out += ["", f"% ---- {title}"]
        for name in names:
            out += clauses[name, arity[name]]
    if chained:
        out += ["", " ".join(f"chained({k})." for k in chained)]
    out += ["", "% ---- semantics", SEMANTICS.rstrip("\n")]
    text = "\n".join(out) + "\n"
    # The last line counts the rules, patterns and images, so a reader can refuse a
    # program that was cut short (cnn2logic.query.program.Program.from_file does).
    return text + trailer(text)


def _clauses(model: ProgramModel) -> dict[tuple[str, int], list[str]]:
    # Clauses grouped by predicate: SWI-Prolog warns about discontiguous clauses.
    clauses: dict[tuple[str, int], list[str]] = {key: [] for key in EXPORTS}

    for k in model.kernels:
        clauses["kernel", 3].append(f"kernel({k.ident}, {prolog_atom(k.layer)}, {k.index}).")
        clauses["kernel_name", 2].append(f"kernel_name({k.ident}, {prolog_atom(k.name)}).")
        if k.label:
            clauses["kernel_label", 2].append(
                f"kernel_label({k.ident}, {prolog_atom(k.label)}).")
        if k.derived:
            clauses["derived_kernel", 1].append(f"derived_kernel({k.ident}).")
    for c in model.classes:
        clauses["class", 1].append(f"class({c.ident}).")
        clauses["class_name", 2].append(f"class_name({c.ident}, {prolog_atom(c.name)}).")
    if model.default is not None:
        clauses["default_class", 1].append(f"default_class({model.default}).")

    for r in model.rules:
        if r.kind == "class":
            clauses["rule", 2].append(f"rule({r.rank}, {r.head}).")
            clauses["fires", 2].append(f"% rule {r.rank}: {r.text}")
            clauses["fires", 2].append(f"fires(I, {r.rank}) :- {_body(r)}.")
        else:
            clauses["derives", 2].append(f"derives({r.rank}, {r.head}).")
            clauses["derived", 2].append(f"% rule {r.rank}: {r.text}")
            clauses["derived", 2].append(f"derived(I, {r.head}) :- {_body(r)}.")
        clauses["need", 2].append(f"need({r.rank}, {r.need}).")
        clauses["pos", 2] += [f"pos({r.rank}, {k})." for k in r.pos]
        clauses["neg", 2] += [f"neg({r.rank}, {k})." for k in r.neg]

    if model.data is not None:
        d = model.data
        for n, ident in enumerate(d.ids):
            clauses["image", 1].append(f"image({ident}).")
            clauses["image_id", 2].append(f"image_id({ident}, {prolog_atom(d.names[n])}).")
            clauses["image_index", 2].append(f"image_index({ident}, {n}).")
            if d.labels is not None and d.labels[n] is not None:
                clauses["label", 2].append(f"label({ident}, {d.labels[n]}).")
            if d.predictions is not None and d.predictions[n] is not None:
                clauses["net_prediction", 2].append(
                    f"net_prediction({ident}, {d.predictions[n]}).")
            clauses["active", 2] += [f"active({ident}, {d.input_kernels[j]})."
                                     for j in d.active[n].nonzero()[0]]
        for p, (count, first, kernels) in enumerate(d.patterns(), 1):
            clauses["pattern", 3].append(f"pattern(p({p}), {count}, {d.ids[first]}).")
            clauses["pattern_active", 2] += [f"pattern_active(p({p}), {d.input_kernels[j]})."
                                             for j in kernels]
    chained = model.chained
    if chained:
        clauses["active", 2].append(
            "% Chained layers: a derived kernel that other rules read is active exactly when "
            "derived.")
        clauses["active", 2].append("active(I, K) :- chained(K), derived(I, K).")
    return clauses


def _directives(clauses: dict[tuple[str, int], list[str]], module: str, chained: bool
                ) -> list[str]:
    out: list[str] = []
    exports = ", ".join(f"{name}/{arity}" for name, arity in EXPORTS)
    out += ["", f":- module({module}, [{exports}]).", ":- encoding(utf8).",
            ":- use_module(library(aggregate)).", ":- use_module(library(lists)).", ""]
    # Data predicates stay open for assertz; others are declared dynamic only when the
    # rule set gives them no clause, so that calling them fails instead of raising.
    dynamic = [key for key in EXPORTS if key not in _SEMANTICS_DEFINED and (
        key in DATA or not any(not c.startswith("%") for c in clauses[key]))]
    if chained:
        # Without tabling, every literal over a derived kernel re-derives it from the layer
        # below: exponential in the depth of the chain.  Incremental tabling keeps answers
        # right when images are asserted or retracted later.
        incremental = [("image", 1), ("active", 2)]
        dynamic = [key for key in dynamic if key not in incremental]
        out.append(":- dynamic([" + ", ".join(f"{n}/{a}" for n, a in incremental)
                   + "], [incremental(true)]).")
        out.append(":- table derived/2 as incremental.")
        out.append(":- discontiguous active/2.")
    if dynamic:
        out.append(":- dynamic " + ", ".join(f"{n}/{a}" for n, a in dynamic) + ".")
    return out


def to_prolog(rules: RuleSet, codes: BinaryCodes | None = None, *, unminimized: bool = False,
              sources: Mapping[str, str] | None = None, module: str = DEFAULT_MODULE) -> str:
    """The SWI-Prolog module for ``rules`` (and the activation facts of ``codes``).

    Parameters
    ----------
    rules : RuleSet
    codes : BinaryCodes, optional
        Binarised activations, with true labels and network predictions when known.
    unminimized : bool
        Use ``rules.meta["unminimized_rules"]`` instead of the minimised rules.
    sources : mapping, optional
        Extra ``name: value`` lines for the header.
    module : str
        The module name (a lower-case identifier).

    Raises
    ------
    ExportError
        Bad module name, or see :func:`cnn2logic.export.model.prepare`.
    """
    return render(prepare(rules, codes, unminimized=unminimized, sources=sources,
                          language="an SWI-Prolog module"), module)
