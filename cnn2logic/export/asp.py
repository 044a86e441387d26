"""Write a rule set (and optionally a data set's activations) as an ASP program for clingo.

The program has four parts, always in this order:

1. declarations: ``kernel(K, Layer, Index)``, ``kernel_name(K, Name)``,
   ``kernel_label(K, Label)`` (what a person calls it, :mod:`cnn2logic.labels`), ``class(C)``,
   ``class_name(C, Name)``, ``default_class(C)`` (original names as strings);
2. the rules in rank order, each both as facts a query can reason about
   (``rule(R, C)``, ``need(R, M)``, ``pos(R, K)``, ``neg(R, K)``) and as one ASP rule::

       fires(I, 1) :- evaluate(I), active(I, k_k6), active(I, k_k8), not active(I, k_k1).

   an M-of-N rule uses a ``#count`` aggregate; a rule of kind ``kernel`` (chained layers)
   concludes ``derived(I, K)`` instead, and a derived kernel that other rules read is
   ``active`` exactly when it is derived;
3. the semantics: ``predicts(I, C)`` (some rule for C fires) and ``prediction(I, C)`` (the
   class of the first firing rule in rank order, else the default), the same as
   :meth:`cnn2logic.rules.RuleSet.predict`;
4. optionally the data: ``image/1``, ``image_id/2``, ``image_index/2``, ``label/2``,
   ``net_prediction/2`` and the binarised activations ``active(I, K)``.

Rules are evaluated on ``evaluate(I)``: every image, unless a query program names the ones
it needs with ``focus(I)`` (which keeps one-image queries fast on large data sets).  Query
programs add hypothetical images with ``evaluate(hyp)`` and choose their ``active/2``.

The output is a pure function of the input: no time stamps, stable order.

Example
-------
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet((Variable("k1", "pool", 0), Variable("k2", "pool", 1)), (Head("a"), Head("b")),
...              (Rule("a", (Literal("k1"), Literal("k2", False))),), default="b")
>>> text = to_asp(rs)
>>> print(text.split("% rule 1: ")[1].splitlines()[2])
fires(I, 1) :- evaluate(I), active(I, k_k1), not active(I, k_k2).
>>> import clingo
>>> ctl = clingo.Control()
>>> ctl.add("base", [], text + "image(i_x). active(i_x, k_k1).")
>>> ctl.ground([("base", [])])
>>> [str(a.symbol) for a in ctl.symbolic_atoms.by_signature("prediction", 2)]
['prediction(i_x,c_a)']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from ..names import asp_string
from ..rules import RuleSet
from .layout import DATA_MARKER, PATTERNS_MARKER, image_facts, trailer
from .model import ProgramModel, RuleDecl, prepare

if TYPE_CHECKING:  # annotations only: importing units loads torch
    from ..units import BinaryCodes

#: Predicates every exported program declares, so that query programs load without
#: "atom does not occur in any rule head" warnings whatever the rule set contains.
INTERFACE = (
    ("kernel", 3), ("kernel_name", 2), ("kernel_label", 2), ("input_kernel", 1),
    ("derived_kernel", 1), ("class", 1), ("class_name", 2), ("default_class", 1),
    ("rule", 2), ("derives", 2), ("need", 2), ("pos", 2), ("neg", 2),
    ("image", 1), ("image_id", 2), ("image_index", 2), ("label", 2), ("net_prediction", 2),
    ("active", 2), ("pattern", 3), ("pattern_active", 2),
    ("focus", 1), ("evaluate", 1), ("fixed", 1), ("fires", 2), ("derived", 2),
    ("predicts", 2), ("prediction", 2),
)

SEMANTICS = """\
% Worlds: an image, or an activation a query program makes up (evaluate(W) and its active/2).
% A query program that needs only some images names them with focus/1; otherwise the rules
% are evaluated on every image.
focused :- focus(_).
evaluate(I) :- image(I), not focused.
evaluate(I) :- image(I), focus(I).
% fixed(W): W's activation is given by facts. Only a hint: both encodings of "first firing
% rule" below are correct for any world; each is fast for its kind.
fixed(I) :- image(I).

input_kernel(K) :- kernel(K, _, _), not derived_kernel(K).
rank(R) :- rule(R, _).
rank(R) :- derives(R, _).
predicts(W, C) :- fires(W, R), rule(R, C).
fired(W) :- fires(W, _).
% The first firing rule in rank order decides; no firing rule means the default class.
% Given worlds: #min, evaluated while grounding (linear in the rules that fire; a pairwise
% "fired before" rule is quadratic, and hundreds of rules fire per image on large bases).
first(W, R) :- fixed(W), fired(W), R = #min { R2 : fires(W, R2) }.
clear(W, 1) :- evaluate(W), not fixed(W).
clear(W, R + 1) :- clear(W, R), rank(R), not fires(W, R).
first(W, R) :- clear(W, R), fires(W, R).
prediction(W, C) :- first(W, R), rule(R, C).
prediction(W, C) :- evaluate(W), not fired(W), default_class(C).
"""

# The section markers PATTERNS_MARKER and DATA_MARKER are defined in .layout, where the
# query side reads them too.


def _body(rule: RuleDecl) -> str:
    lits = [f"active(I, {k})" for k in rule.pos] + [f"not active(I, {k})" for k in rule.neg]
    if rule.conjunction:
        return ", ".join(["evaluate(I)"] + lits)
    if rule.need == 0:
        return "evaluate(I)"
    elements = "; ".join(f"{k} : {lit}" for k, lit in zip((*rule.pos, *rule.neg), lits))
    return f"evaluate(I), #count {{ {elements} }} >= {rule.need}"


def render(model: ProgramModel) -> str:
    """The ASP text for a prepared :class:`~cnn2logic.export.model.ProgramModel`."""
    out: list[str] = [("% " + line) if line else "%" for line in model.header]
    out.append("")
    out += [f"#defined {name}/{arity}." for name, arity in INTERFACE]

    out += ["", "% ---- kernels and classes"]
    for k in model.kernels:
        facts = [f"kernel({k.ident}, {asp_string(k.layer)}, {k.index}).",
                 f"kernel_name({k.ident}, {asp_string(k.name)})."]
        if k.label:
            facts.append(f"kernel_label({k.ident}, {asp_string(k.label)}).")
        if k.derived:
            facts.append(f"derived_kernel({k.ident}).")
        out.append(" ".join(facts))
    for c in model.classes:
        out.append(f"class({c.ident}). class_name({c.ident}, {asp_string(c.name)}).")
    if model.default is not None:
        out.append(f"default_class({model.default}).")

    out += ["", "% ---- rules, in rank order"]
    for r in model.rules:
        out.append(f"% rule {r.rank}: {r.text}")
        head_fact = (f"rule({r.rank}, {r.head})." if r.kind == "class"
                     else f"derives({r.rank}, {r.head}).")
        facts = [head_fact, f"need({r.rank}, {r.need})."]
        facts += [f"pos({r.rank}, {k})." for k in r.pos]
        facts += [f"neg({r.rank}, {k})." for k in r.neg]
        out.append(" ".join(facts))
        head = f"fires(I, {r.rank})" if r.kind == "class" else f"derived(I, {r.head})"
        out.append(f"{head} :- {_body(r)}.")

    out += ["", "% ---- semantics", SEMANTICS.rstrip("\n")]
    if model.chained:
        # One bridge rule per kernel, not "active(I, K) :- derived(I, K)": the grounder
        # tracks dependencies per atom pattern, so per-kernel bridges keep the layers
        # stratified (a kernel's rules read only the layer below), and a stratified
        # program is evaluated while grounding (measured: 2.3 s instead of 34 s for
        # 2,006 chained rules on 1,000 images).
        out.append("% Chained layers: a derived kernel that other rules read is active exactly "
                   "when derived.")
        out += [f"active(I, {k}) :- derived(I, {k})." for k in model.chained]

    if model.data is not None:
        d = model.data
        out += ["", PATTERNS_MARKER]
        for p, (count, first, kernels) in enumerate(d.patterns(), 1):
            facts = [f"pattern(p({p}), {count}, {d.ids[first]})."]
            facts += [f"pattern_active(p({p}), {d.input_kernels[j]})." for j in kernels]
            out.append(" ".join(facts))
        out += ["", DATA_MARKER]
        for n, ident in enumerate(d.ids):
            facts = image_facts(ident, asp_string(d.names[n]), n)
            if d.labels is not None and d.labels[n] is not None:
                facts.append(f"label({ident}, {d.labels[n]}).")
            if d.predictions is not None and d.predictions[n] is not None:
                facts.append(f"net_prediction({ident}, {d.predictions[n]}).")
            facts += [f"active({ident}, {d.input_kernels[j]})."
                      for j in d.active[n].nonzero()[0]]
            out.append(" ".join(facts))
    text = "\n".join(out) + "\n"
    # The last line counts the rules, patterns and images, so a reader can refuse a
    # program that was cut short (cnn2logic.query.program.Program.from_file does).
    return text + trailer(text)


def to_asp(rules: RuleSet, codes: BinaryCodes | None = None, *, unminimized: bool = False,
           sources: Mapping[str, str] | None = None) -> str:
    """The ASP program for ``rules`` (and the activation facts of ``codes``).

    Parameters
    ----------
    rules : RuleSet
    codes : BinaryCodes, optional
        Binarised activations, with true labels and network predictions when known.
    unminimized : bool
        Use ``rules.meta["unminimized_rules"]`` instead of the minimised rules.
    sources : mapping, optional
        Extra ``name: value`` lines for the header, e.g. ``{"rules file": "rules.json"}``.

    Raises
    ------
    ExportError
        See :func:`cnn2logic.export.model.prepare`.
    """
    return render(prepare(rules, codes, unminimized=unminimized, sources=sources,
                          language="an ASP program for clingo"))
