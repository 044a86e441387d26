"""How kernels relate in a rule set: support, veto, co-occurrence, conflicts, dependencies.

Plain functions over a :class:`~cnn2logic.rules.RuleSet`.  The relations are computed over
the rules whose head is a class; kernel-headed rules of a multi-layer extraction give the
dependencies:

literal uses (:func:`literal_uses`)
    kernel ``k`` appears in a rule for class ``c``: an edge ``k -> c`` whose ``sign`` is
    the literal's polarity (+1 positive, -1 negated, 0 both in different rules) and whose
    ``weight`` is the share of the class's rules that use ``k`` (weighted by each rule's
    ``support`` when the rules carry one).
co-occurrence (:func:`cooccurrence`)
    two kernels appear *positively* in the same rule; weight = number of such rules.
conflicts (:func:`conflicts`): what the ``conflicts`` query (``programs/conflicts.lp``) finds
    ``never_together`` (:func:`never_together`): two kernels both used positively in class
    rules but never in the same rule, a kernel-kernel edge; ``opposite_polarity``
    (:func:`opposite_polarity`): a kernel that is positive in some rules of a class and
    negated in others, marked on its kernel -> class edge (``sign`` 0).
dependencies (:func:`dependencies`)
    for a rule whose head is a kernel of a higher layer, every body kernel ``-> head``.

:func:`cnn2logic.visual.graph.kernel_graph` puts them in a graph.

Example
-------
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet(
...     variables=tuple(Variable(f"k{i}", "pool", i - 1) for i in (1, 2, 3)),
...     heads=(Head("3"), Head("5")),
...     rules=(Rule("3", (Literal("k1"), Literal("k2"), Literal("k3", False))),
...            Rule("5", (Literal("k3"),))),
... )
>>> cooccurrence(rs)
{('k1', 'k2'): 1}
>>> conflicts(rs)["never_together"]
(('k1', 'k3'), ('k2', 'k3'))
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any, Iterable, Mapping

from ..errors import RulesFileError, VisualizationError
from ..rules import Literal, Rule, RuleSet

RELATIONS = ("literal", "cooccurrence", "conflict", "dependency")
SUPPORT_KEYS = ("support", "coverage", "count")


# -- relations -------------------------------------------------------------------------
def _check(rules: RuleSet) -> None:
    if not isinstance(rules, RuleSet):
        raise RulesFileError(f"expected a RuleSet, got {type(rules).__name__}")


def class_rules(rules: RuleSet) -> tuple[Rule, ...]:
    """The rules whose head is a class (not a kernel of a higher layer).

    Raises
    ------
    RulesFileError
        ``rules`` is not a RuleSet.
    """
    _check(rules)
    kinds = {h.name: h.kind for h in rules.heads}
    return tuple(r for r in rules.rules if kinds[r.head] == "class")


def _support(rule: Rule) -> float | None:
    for key in SUPPORT_KEYS:
        value = rule.stats.get(key)
        if isinstance(value, (int, float)) and value >= 0:
            return float(value)
    return None


def _uses(rules: RuleSet, selected: Iterable[Rule]) -> dict[tuple[str, str], dict[str, Any]]:
    by_head: dict[str, list[Rule]] = defaultdict(list)
    for rule in selected:
        by_head[rule.head].append(rule)
    order = {v: i for i, v in enumerate(rules.variable_names)}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for head in rules.head_names:
        head_rules = by_head.get(head, [])
        known = [s for s in (_support(r) for r in head_rules) if s is not None]
        weighted = len(known) == len(head_rules) and sum(known) > 0
        supports = known if weighted else [0.0] * len(head_rules)
        total = sum(supports)
        per_var: dict[str, dict[str, Any]] = {}
        for rule, sup in zip(head_rules, supports):
            for lit in rule.body:
                d = per_var.setdefault(lit.var, {"pos_terms": 0, "neg_terms": 0, "cover": 0.0})
                d["pos_terms" if lit.positive else "neg_terms"] += 1
                d["cover"] += sup if weighted else 0.0
        for var in sorted(per_var, key=order.__getitem__):
            d = per_var[var]
            terms = d["pos_terms"] + d["neg_terms"]  # a variable occurs once per rule
            share = terms / len(head_rules)
            sign = 1 if d["neg_terms"] == 0 else (-1 if d["pos_terms"] == 0 else 0)
            entry: dict[str, Any] = {
                "sign": sign,
                "polarity": {1: "positive", -1: "negative", 0: "mixed"}[sign],
                "terms": terms, "pos_terms": d["pos_terms"], "neg_terms": d["neg_terms"],
                "share": round(share, 6),
                "weight": round(d["cover"] / total if weighted else share, 6),
            }
            if weighted:
                entry["coverage_share"] = round(d["cover"] / total, 6)
            out[(var, head)] = entry
    return out


def literal_uses(rules: RuleSet) -> dict[tuple[str, str], dict[str, Any]]:
    """``(kernel, class) -> figures`` for every kernel used in a class's rules.

    Figures: ``sign`` (+1, -1, 0 for both polarities), ``polarity``, ``terms`` (rules of
    the class using the kernel), ``pos_terms``, ``neg_terms``, ``share`` (terms / rules of
    the class), ``weight`` (the support-weighted share when every rule of the class has a
    ``support`` stat, else ``share``) and, when weighted, ``coverage_share``.

    Raises
    ------
    RulesFileError
        ``rules`` is not a RuleSet.
    """
    return _uses(rules, class_rules(rules))


def _ordered(a: str, b: str, order: Mapping[str, int]) -> tuple[str, str]:
    return (a, b) if (order[a], a) <= (order[b], b) else (b, a)


def _var_order(rules: RuleSet) -> dict[str, int]:
    order = {v: i for i, v in enumerate(rules.variable_names)}
    for h in rules.head_names:
        order.setdefault(h, len(order))
    return order


def cooccurrence(rules: RuleSet) -> dict[tuple[str, str], int]:
    """Pairs of kernels that appear positively in the same class rule, with rule counts.

    Pairs are ordered as the kernels are declared.

    Raises
    ------
    RulesFileError
        ``rules`` is not a RuleSet.
    """
    order = _var_order(rules)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for rule in class_rules(rules):
        pos = sorted((lit.var for lit in rule.body if lit.positive), key=order.__getitem__)
        for a, b in combinations(pos, 2):
            counts[(a, b)] += 1
    return {k: counts[k] for k in sorted(counts, key=lambda p: (order[p[0]], order[p[1]]))}


def opposite_polarity(rules: RuleSet) -> dict[tuple[str, str], dict[str, int]]:
    """Kernels used with both polarities for one class (``opposite/4`` of the ASP query).

    Returns
    -------
    dict
        ``(kernel, class) -> {"positive": P, "negative": N}``: the kernel is a positive
        literal in ``P`` and a negated one in ``N`` of the class's rules (both > 0).

    Raises
    ------
    RulesFileError
        ``rules`` is not a RuleSet.
    """
    return {key: {"positive": d["pos_terms"], "negative": d["neg_terms"]}
            for key, d in literal_uses(rules).items() if d["sign"] == 0}


def never_together(rules: RuleSet) -> tuple[tuple[str, str], ...]:
    """Pairs of positively used kernels that are never positive together in one rule.

    Only kernels that occur positively in at least one class rule take part.

    Raises
    ------
    RulesFileError
        ``rules`` is not a RuleSet.
    """
    order = _var_order(rules)
    used = sorted({lit.var for r in class_rules(rules) for lit in r.body if lit.positive},
                  key=order.__getitem__)
    together = set(cooccurrence(rules))
    return tuple(p for p in combinations(used, 2) if p not in together)


def conflicts(rules: RuleSet) -> dict[str, Any]:
    """The two kinds of conflict the ``conflicts`` query reports about the rules.

    Returns
    -------
    dict
        ``{"never_together": pairs, "opposite_polarity": {(kernel, class): counts}}``, see
        :func:`never_together` and :func:`opposite_polarity`.

    Raises
    ------
    RulesFileError
        ``rules`` is not a RuleSet.
    """
    return {"never_together": never_together(rules),
            "opposite_polarity": opposite_polarity(rules)}


def table_ruleset(rules: RuleSet) -> RuleSet:
    """The per-class table terms of ``rules.meta["table"]`` as a RuleSet (one rule a class).

    These are the short, accurate terms the extractor picks for the paper's Table 1; their
    graph is the readable one when the full DNF has hundreds of terms.

    Raises
    ------
    VisualizationError
        ``meta`` has no usable ``table``.
    """
    _check(rules)
    table = rules.meta.get("table") if hasattr(rules.meta, "get") else None
    chosen = []
    known = set(rules.head_names)
    for entry in table or ():
        if not isinstance(entry, Mapping) or not entry.get("body"):
            continue
        head = str(entry.get("class"))
        if head not in known:
            raise VisualizationError(f"table entry for unknown class {head!r}")
        try:
            body = tuple(Literal(str(v), bool(p)) for v, p in entry["body"])
        except (TypeError, ValueError):
            raise VisualizationError(f"malformed table entry for class {head!r}") from None
        stats = {k: entry[k] for k in ("test_support", "support", "train_support")
                 if isinstance(entry.get(k), (int, float))}
        chosen.append(Rule(head, body, None, {"support": next(iter(stats.values()))}
                           if stats else {}))
    if not chosen:
        raise VisualizationError("the rules file has no per-class table (meta['table'])")
    try:
        return rules.replace(rules=tuple(chosen), meta={**rules.meta, "terms": "table"})
    except RulesFileError as exc:
        raise VisualizationError(f"table terms do not fit the rules: {exc}") from None


def dependencies(rules: RuleSet) -> dict[tuple[str, str], dict[str, Any]]:
    """``(lower kernel, higher kernel) -> figures`` for kernel-headed rules (multi-layer).

    The figures are those of :func:`literal_uses`, per kernel head.

    Raises
    ------
    RulesFileError
        ``rules`` is not a RuleSet.
    """
    _check(rules)
    kinds = {h.name: h.kind for h in rules.heads}
    return _uses(rules, (r for r in rules.rules if kinds[r.head] != "class"))
