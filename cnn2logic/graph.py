"""Kernel-relation graphs: which kernels support, veto, accompany or oppose which.

Plain functions over a :class:`~cnn2logic.rules.RuleSet`, in networkx style.  The
relations (computed over the rules whose head is a class; kernel-headed rules of a
multi-layer extraction give the dependencies):

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

:func:`kernel_graph` puts them in a :class:`networkx.DiGraph` (symmetric kernel-kernel
relations are one edge from the earlier to the later kernel, ``directed=False``);
:func:`write_graph` writes GraphML, DOT and a PNG with byte-identical output for
identical input.  Node ids are sanitised by :class:`cnn2logic.names.NameTable` (kernels
``k_...``, classes ``c_...``, the same identifiers as in the logic programs); ``label``
keeps the original name.

Example
-------
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet(
...     variables=tuple(Variable(f"k{i}", "pool", i - 1) for i in (1, 2, 3)),
...     heads=(Head("3"), Head("5")),
...     rules=(Rule("3", (Literal("k1"), Literal("k2"), Literal("k3", False))),
...            Rule("5", (Literal("k3"),))),
... )
>>> g = kernel_graph(rs)
>>> e = g.edges["k_k1", "c_3"]
>>> e["relation"], e["sign"], e["terms"], e["weight"]
('literal', 1, 1, 1.0)
>>> cooccurrence(rs)
{('k1', 'k2'): 1}
>>> conflicts(rs)["never_together"]
(('k1', 'k3'), ('k2', 'k3'))
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import networkx as nx

from ._io import atomic_write_bytes, atomic_write_text
from .errors import RulesFileError, VisualizationError
from .names import NameTable
from .rules import Rule, RuleSet

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
    from .rules import Literal

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


# -- the graph -------------------------------------------------------------------------
def _layer_rank(rules: RuleSet) -> dict[str, int]:
    """Row of each kernel layer: layers feeding kernel heads come first."""
    layer_of = {v.name: v.layer for v in rules.variables}
    layers: list[str] = []
    for v in rules.variables:
        if v.layer not in layers:
            layers.append(v.layer)
    for h in rules.heads:
        if h.kind != "class" and h.layer not in layers:
            layers.append(h.layer)
    lg = nx.DiGraph()
    lg.add_nodes_from(layers)
    head_layer = {h.name: h.layer for h in rules.heads if h.kind != "class"}
    for rule in rules.rules:
        if rule.head in head_layer:
            for lit in rule.body:
                a, b = layer_of.get(lit.var, ""), head_layer[rule.head]
                if a != b:
                    lg.add_edge(a, b)
    try:
        gens = list(nx.topological_generations(lg))
    except nx.NetworkXUnfeasible:
        gens = [[layer] for layer in layers]
    first = {layer: i for i, layer in enumerate(layers)}
    rank, row = {}, 0
    for gen in gens:
        for layer in sorted(gen, key=first.__getitem__):
            rank[layer] = row
            row += 1
    return rank


def kernel_graph(rules: RuleSet, *, images: Mapping[str, str | os.PathLike[str]] | None = None,
                 relations: Sequence[str] = RELATIONS) -> nx.DiGraph:
    """The kernel-relation graph of ``rules``.

    Parameters
    ----------
    rules : RuleSet
    images : mapping, optional
        Kernel name -> path of its maximising image (node attribute ``image``).
    relations : sequence of str
        Which of ``literal``, ``cooccurrence``, ``conflict``, ``dependency`` to include.

    Returns
    -------
    networkx.DiGraph
        Nodes (in declaration order) carry ``kind`` ("kernel"/"class"), ``name``,
        ``label``, ``layer``, ``index``, ``rank`` (drawing row) and ``image`` (kernels; ""
        when none), ``default`` (classes).  Edges carry ``relation`` (one or more relation
        names joined by ``+``), ``directed`` and the relation's figures: ``sign``,
        ``polarity``, ``terms``, ``share``, ``weight``... for literal/dependency edges, whose
        ``conflict`` is ``"opposite_polarity"`` when the kernel has both polarities for the
        class (else ""); ``cooccurrence`` (rule count, ``weight``) for co-occurrence edges;
        ``conflict="never_together"`` for conflict edges.  Co-occurring and never-together
        pairs are disjoint, so each kernel pair has at most one edge.

    Raises
    ------
    RulesFileError
        ``rules`` is not a RuleSet.
    VisualizationError
        An unknown relation name.
    """
    _check(rules)
    bad = [r for r in relations if r not in RELATIONS]
    if bad:
        raise VisualizationError(f"unknown relation(s) {bad}; choose from {list(RELATIONS)}")
    images = {str(k): str(v) for k, v in (images or {}).items()}
    ktable, ctable = NameTable("k"), NameTable("c")
    rank = _layer_rank(rules)
    g = nx.DiGraph(name="kernel relations", relations="+".join(r for r in RELATIONS
                                                              if r in relations))
    kernel_rows = max(rank.values(), default=-1) + 1
    for v in rules.variables:
        g.add_node(ktable.add(v.name), kind="kernel", name=v.name, label=v.name,
                   layer=v.layer, index=v.index, rank=rank.get(v.layer, 0),
                   image=images.get(v.name, ""))
    for h in rules.heads:
        if h.kind == "class":
            continue
        if h.name not in ktable:
            g.add_node(ktable.add(h.name), kind="kernel", name=h.name, label=h.name,
                       layer=h.layer, index=h.index, rank=rank.get(h.layer, 0),
                       image=images.get(h.name, ""))
    for h in rules.heads:
        if h.kind == "class":
            g.add_node(ctable.add(h.name), kind="class", name=h.name, label=h.name,
                       layer=h.layer, index=h.index, rank=kernel_rows,
                       default=h.name == rules.default)

    def add(u: str, v: str, relation: str, attrs: Mapping[str, Any]) -> None:
        if g.has_edge(u, v):
            data = g.edges[u, v]
            data["relation"] = f"{data['relation']}+{relation}"
            for key, value in attrs.items():
                data.setdefault(key, value)
        else:
            g.add_edge(u, v, relation=relation, **attrs)

    if "literal" in relations:
        for (var, head), d in literal_uses(rules).items():
            add(ktable[var], ctable[head], "literal",
                {"directed": True, **d,
                 "conflict": "opposite_polarity" if d["sign"] == 0 else ""})
    if "dependency" in relations:
        for (var, head), d in dependencies(rules).items():
            add(ktable[var], ktable[head], "dependency", {"directed": True, **d})
    if "cooccurrence" in relations:
        for (a, b), n in cooccurrence(rules).items():
            add(ktable[a], ktable[b], "cooccurrence",
                {"directed": False, "cooccurrence": n, "weight": float(n)})
    if "conflict" in relations:
        for a, b in never_together(rules):
            add(ktable[a], ktable[b], "conflict",
                {"directed": False, "conflict": "never_together", "weight": 0.0})
    return g


def _canonical(g: nx.DiGraph) -> nx.DiGraph:
    """A copy with nodes, edges and attributes in a fixed order, None dropped."""
    h = nx.DiGraph()
    h.graph.update({k: g.graph[k] for k in sorted(g.graph)})
    node_pos = {n: i for i, n in enumerate(g.nodes)}
    for n in g.nodes:
        h.add_node(n, **{k: _scalar(v) for k, v in sorted(g.nodes[n].items()) if v is not None})
    for u, v in sorted(g.edges, key=lambda e: (node_pos[e[0]], node_pos[e[1]])):
        h.add_edge(u, v, **{k: _scalar(x) for k, x in sorted(g.edges[u, v].items())
                            if x is not None})
    return h


def _scalar(v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, (int, float, str)):
        return v
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def graphml_text(g: nx.DiGraph) -> str:
    """GraphML of ``g`` (deterministic: same graph, same bytes).

    Raises
    ------
    VisualizationError
        A node id is not a safe identifier.
    """
    from .names import is_identifier

    bad = [n for n in g.nodes if not is_identifier(str(n))]
    if bad:
        raise VisualizationError(f"node ids must be NameTable identifiers, not {bad[:3]}")
    return "\n".join(nx.generate_graphml(_canonical(g))) + "\n"


def _dot_quote(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def _dot_attrs(attrs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_dot_quote(v)}" for k, v in attrs.items())


def dot_text(g: nx.DiGraph) -> str:
    """Graphviz DOT of ``g``: kernels in rows by layer, classes last; styled edges.

    Data attributes are kept, except that ``weight`` is written as ``rule_weight``
    (Graphviz reads ``weight`` itself) and ``name`` is left to ``label``.  Deterministic.

    Raises
    ------
    VisualizationError
        A node id is not a safe identifier.
    """
    from .names import is_identifier

    h = _canonical(g)
    bad = [n for n in h.nodes if not is_identifier(str(n))]
    if bad:
        raise VisualizationError(f"node ids must be NameTable identifiers, not {bad[:3]}")
    lines = [f"digraph {_dot_quote(h.graph.get('name', 'kernels'))} {{",
             '  graph [rankdir=TB, newrank=true, fontname="Helvetica"];',
             '  node [fontname="Helvetica"];',
             '  edge [fontname="Helvetica"];']
    rows: dict[int, list[str]] = defaultdict(list)
    for n, d in h.nodes(data=True):
        rows[int(d.get("rank", 0))].append(n)
    for r in sorted(rows):
        lines.append(f"  {{ rank=same; {'; '.join(rows[r])}; }}")
    for n, d in h.nodes(data=True):
        style = ({"shape": "box", "style": "filled", "fillcolor": "#eef3fb"}
                 if d.get("kind") == "kernel" else
                 {"shape": "ellipse", "style": "filled", "fillcolor": "#fdf3e1"})
        # ``name`` is dropped: the label holds it, and DOT tools reserve ``name``.
        attrs = {**style, **{k: v for k, v in d.items() if k not in style and k != "name"}}
        lines.append(f"  {n} [{_dot_attrs(attrs)}];")
    for u, v, d in h.edges(data=True):
        rel = str(d.get("relation", ""))
        style: dict[str, Any]
        if "literal" in rel or "dependency" in rel:
            sign = d.get("sign", 1)
            style = {"color": {1: "#1a7f37", -1: "#c62828"}.get(sign, "#7b5ea7"),
                     "style": "solid" if sign == 1 else "dashed",
                     "penwidth": round(0.8 + 2.5 * float(d.get("weight", 0)), 3)}
        elif "cooccurrence" in rel:
            style = {"color": "#1f5fbf", "dir": "none", "constraint": False}
        else:
            style = {"color": "#9e9e9e", "style": "dotted", "dir": "none", "constraint": False}
        data = {("rule_weight" if k == "weight" else k): x for k, x in d.items()}
        lines.append(f"  {u} -> {v} [{_dot_attrs({**style, **data})}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_png(g: nx.DiGraph, *, title: str | None = None, thumbnails: bool = True,
              conflicts: bool = False, pictures: Mapping[str, Any] | None = None) -> bytes:
    """A PNG drawing: kernels in rows by layer (with their images), classes below.

    Green solid arrows: positive literals; red dashed (fainter): negated; purple: both
    polarities in different rules of the class (an ``opposite_polarity`` conflict).  Blue
    arcs above the kernels: co-occurrence.  Never-together conflicts relate many kernel
    pairs of a typical rule set and would hide the rest, so they are drawn (orange dotted
    arcs) only with ``conflicts=True``; the GraphML and DOT files always hold them.
    Kernel thumbnails come from ``pictures`` (kernel name -> (h, w, 3) uint8 array) or
    else from the node's ``image`` file.

    Raises
    ------
    VisualizationError
        The graph is empty.
    """
    if g.number_of_nodes() == 0:
        raise VisualizationError("the graph has no nodes to draw")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    rows: dict[int, list[str]] = defaultdict(list)
    for n, d in g.nodes(data=True):
        rows[int(d.get("rank", 0))].append(n)
    width_nodes = max(len(v) for v in rows.values())
    pos: dict[str, tuple[float, float]] = {}
    for r, nodes in rows.items():  # declaration order within a row
        for i, n in enumerate(nodes):
            x = (i + 0.5) * width_nodes / len(nodes)
            pos[n] = (x, -2.2 * r)
    kernel_nodes = [n for n in g if g.nodes[n].get("kind") == "kernel"]
    class_nodes = [n for n in g if g.nodes[n].get("kind") == "class"]
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for u, v, d in g.edges(data=True):
        rel = str(d.get("relation", ""))
        if "literal" in rel or "dependency" in rel:
            groups[{1: "pos", -1: "neg"}.get(d.get("sign", 1), "mixed")].append((u, v))
        if "cooccurrence" in rel:
            groups["co"].append((u, v))
        if "conflict" in rel.split("+") and conflicts:
            groups["opp"].append((u, v))
    arcs = {"co": 0.35, "opp": 0.6}  # arc3 radius: twice the curve height / chord
    styles = {
        "pos": dict(edge_color="#1a7f37", style="solid"),
        "neg": dict(edge_color="#c62828", style="dashed", alpha=0.45),
        "mixed": dict(edge_color="#7b5ea7", style="solid"),
        "co": dict(edge_color="#1f5fbf", style="solid", arrowstyle="-", alpha=0.6),
        "opp": dict(edge_color="#ef8a17", style="dotted", arrowstyle="-", alpha=0.6),
    }
    # Equal scales on both axes, so an arc's height is radius * chord / 2 in data units
    # and the picture can be made tall enough for every arc.
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    rise = max([arcs[k] * _dist(pos[u], pos[v]) / 2 for k in arcs for u, v in groups.get(k, [])],
               default=0.0)
    x0, x1 = min(xs) - 0.7, max(xs) + 0.7
    y0, y1 = min(ys) - 0.5, max(ys) + max(0.9, rise + 0.25)
    # One inch per node up to 30 inches; wider graphs are shrunk, then drawn plainer.
    unit, left, top = min(1.0, 30.0 / (x1 - x0)), 0.2, 0.45 if title else 0.15
    thumbnails = thumbnails and width_nodes <= 40
    fw = (x1 - x0) * unit + 2 * left
    legend = [Line2D([], [], color="#1a7f37", label="positive literal"),
              Line2D([], [], color="#c62828", ls="--", label="negated literal"),
              Line2D([], [], color="#7b5ea7", label="both polarities"),
              Line2D([], [], color="#1f5fbf", label="co-occur (positive)")]
    if conflicts:
        legend.append(Line2D([], [], color="#ef8a17", ls=":", label="never together"))
    ncol = max(1, min(len(legend), int(fw / 1.7)))  # about 1.7 inches per legend entry
    bottom = 0.2 + 0.22 * -(-len(legend) // ncol)
    fh = (y1 - y0) * unit + bottom + top
    fig = Figure(figsize=(fw, fh), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left / fw, bottom / fh, (x1 - x0) * unit / fw, (y1 - y0) * unit / fh))
    ax.set_axis_off()
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    top_co = max([float(g.edges[e].get("cooccurrence", 0)) for e in groups.get("co", [])],
                 default=1.0) or 1.0
    for key, edges in groups.items():
        if key in arcs:  # draw every arc bulging upwards
            parts = [([e for e in edges if pos[e[0]][0] <= pos[e[1]][0]], -arcs[key]),
                     ([e for e in edges if pos[e[0]][0] > pos[e[1]][0]], arcs[key])]
        else:
            parts = [(edges, 0.0)]
        for part, rad in parts:
            if not part:
                continue
            widths = [(0.6 + 2.4 * float(g.edges[e].get("weight", 0)))
                      * (0.6 if key == "neg" else 1.0) if key not in arcs
                      else 0.5 + 2.0 * float(g.edges[e].get("cooccurrence", 0)) / top_co
                      for e in part]
            nx.draw_networkx_edges(g, pos, edgelist=part, ax=ax, width=widths, node_size=900,
                                   arrows=True, arrowsize=9, connectionstyle=f"arc3,rad={rad}",
                                   **styles[key])
    nx.draw_networkx_nodes(g, pos, nodelist=class_nodes, ax=ax, node_size=900,
                           node_color="#fdf3e1", edgecolors="#b07a1b", node_shape="o")
    nx.draw_networkx_labels(g, pos, labels={n: g.nodes[n]["label"] for n in class_nodes},
                            ax=ax, font_size=11)
    drawn = set()
    if thumbnails:
        drawn = _draw_thumbnails(ax, g, pos, kernel_nodes, pictures or {})
    plain = [n for n in kernel_nodes if n not in drawn]
    nx.draw_networkx_nodes(g, pos, nodelist=plain, ax=ax, node_size=900, node_color="#eef3fb",
                           edgecolors="#3b5b92", node_shape="s")
    nx.draw_networkx_labels(g, pos, labels={n: g.nodes[n]["label"] for n in plain}, ax=ax,
                            font_size=9)
    for n in drawn:
        x, y = pos[n]
        ax.text(x + 0.34, y + 0.2, g.nodes[n]["label"], ha="left", va="bottom", fontsize=9)
    fig.legend(handles=legend, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.08 / fh)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    # A 256-colour palette keeps the picture and cuts the file about four times.
    from PIL import Image

    buf.seek(0)
    with Image.open(buf) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                           dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _dist(a: tuple[float, float], b: tuple[float, float]) -> float:
    return ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5


def _draw_thumbnails(ax: Any, g: nx.DiGraph, pos: Mapping[str, tuple[float, float]],
                     nodes: Sequence[str], pictures: Mapping[str, Any]) -> set[str]:
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    from PIL import Image

    drawn = set()
    for n in nodes:
        given = pictures.get(g.nodes[n].get("name", ""))
        path = g.nodes[n].get("image") or ""
        try:
            if given is not None:
                im = Image.fromarray(given).convert("RGB")
            elif path and Path(path).is_file():
                with Image.open(path) as f:
                    im = f.convert("RGB")
            else:
                continue
        except (OSError, ValueError, TypeError):
            continue
        pic = im.resize((44, 44), Image.Resampling.NEAREST)
        box = AnnotationBbox(OffsetImage(pic, zoom=1.0), pos[n], frameon=True, pad=0.1,
                             bboxprops={"edgecolor": "#3b5b92"})
        ax.add_artist(box)
        drawn.add(n)
    return drawn


def write_graph(g: nx.DiGraph, out_dir: str | os.PathLike[str], name: str = "kernels", *,
                png: bool = True, title: str | None = None,
                draw_conflicts: bool = False) -> dict[str, Path]:
    """Write ``<name>.graphml``, ``<name>.dot`` and (``png=True``) ``<name>.png``.

    Each file is written atomically.  ``draw_conflicts`` is passed to :func:`graph_png`.
    Returns the paths by format.

    Raises
    ------
    VisualizationError
        ``out_dir`` is a file, ``name`` is unsafe, or a node id is unsafe.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VisualizationError(f"{out} exists and is not a directory")
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise VisualizationError(f"unsafe graph file name {name!r}")
    paths = {"graphml": out / f"{name}.graphml", "dot": out / f"{name}.dot"}
    atomic_write_text(paths["graphml"], graphml_text(g))
    atomic_write_text(paths["dot"], dot_text(g))
    if png:
        paths["png"] = out / f"{name}.png"
        atomic_write_bytes(paths["png"], graph_png(g, title=title, conflicts=draw_conflicts))
    return paths


def read_graph(path: str | os.PathLike[str]) -> nx.DiGraph:
    """Read a GraphML file written by :func:`write_graph`.

    Raises
    ------
    VisualizationError
        The file is missing or not GraphML.
    """
    p = Path(path)
    if not p.is_file():
        raise VisualizationError(f"graph file not found: {p}")
    try:
        g = nx.read_graphml(p)
    except Exception as exc:  # networkx raises several parser errors
        raise VisualizationError(f"{p}: not a GraphML file ({exc.__class__.__name__})") from None
    return nx.DiGraph(g)
