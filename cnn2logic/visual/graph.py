"""Kernel-relation graphs: the relations of :mod:`~cnn2logic.visual.relations` as networkx.

:func:`kernel_graph` puts them in a :class:`networkx.DiGraph` (symmetric kernel-kernel
relations are one edge from the earlier to the later kernel, ``directed=False``);
:func:`write_graph` writes GraphML, DOT and a PNG (drawn by
:func:`cnn2logic.visual.graph_draw.graph_png`) with byte-identical output for identical
input.  Node ids are sanitised by :class:`cnn2logic.names.NameTable` (kernels ``k_...``,
classes ``c_...``, the same identifiers as in the logic programs); ``label`` keeps the
original name.

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
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import networkx as nx

from .._io import atomic_write_bytes, atomic_write_text
from ..errors import VisualizationError
from ..labels import kernel_labels
from ..names import NameTable, is_identifier
from ..rules import RuleSet
from .graph_draw import graph_png
from .relations import (RELATIONS, _check, cooccurrence, dependencies, literal_uses,
                        never_together)


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


def _add_nodes(g: nx.DiGraph, rules: RuleSet, images: Mapping[str, str], ktable: NameTable,
               ctable: NameTable) -> None:
    """Kernels (variables, then kernel heads) in rows by layer, classes in the last row.

    A labelled kernel (:func:`cnn2logic.labels.kernel_labels`) is drawn as its name over
    its label, and keeps the label alone as ``description``.
    """
    rank = _layer_rank(rules)
    kernel_rows = max(rank.values(), default=-1) + 1
    labels = kernel_labels(rules)

    def kernel(name: str, layer: str, index: int) -> None:
        described = labels.get(name, "")
        g.add_node(ktable.add(name), kind="kernel", name=name,
                   label=f"{name}\n{described}" if described else name,
                   description=described, layer=layer, index=index,
                   rank=rank.get(layer, 0), image=images.get(name, ""))

    for v in rules.variables:
        kernel(v.name, v.layer, v.index)
    for h in rules.heads:
        if h.kind == "class":
            continue
        if h.name not in ktable:
            kernel(h.name, h.layer, h.index)
    for h in rules.heads:
        if h.kind == "class":
            g.add_node(ctable.add(h.name), kind="class", name=h.name, label=h.name,
                       layer=h.layer, index=h.index, rank=kernel_rows,
                       default=h.name == rules.default)


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
        ``label`` (a kernel's name over its label, when it has one), ``description``
        (kernels: the label alone, "" when none), ``layer``, ``index``, ``rank`` (drawing row) and ``image`` (kernels; ""
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
    g = nx.DiGraph(name="kernel relations", relations="+".join(r for r in RELATIONS
                                                              if r in relations))
    _add_nodes(g, rules, images, ktable, ctable)

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

    Parameters
    ----------
    g : networkx.DiGraph
        A graph of :func:`kernel_graph` (node ids must be identifiers).

    Returns
    -------
    str

    Raises
    ------
    VisualizationError
        A node id is not a safe identifier.
    """
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

    Parameters
    ----------
    g : networkx.DiGraph
        A graph of :func:`kernel_graph` (node ids must be identifiers).

    Returns
    -------
    str

    Raises
    ------
    VisualizationError
        A node id is not a safe identifier.
    """
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


def write_graph(g: nx.DiGraph, out_dir: str | os.PathLike[str], name: str = "kernels", *,
                png: bool = True, title: str | None = None,
                draw_conflicts: bool = False) -> dict[str, Path]:
    """Write ``<name>.graphml``, ``<name>.dot`` and (``png=True``) ``<name>.png``.

    Each file is written atomically.

    Parameters
    ----------
    g : networkx.DiGraph
    out_dir : path
        Created if missing.
    name : str
        The file name stem.
    png, title, draw_conflicts
        Whether to draw the PNG, its title, and ``conflicts`` of
        :func:`cnn2logic.visual.graph_draw.graph_png`.

    Returns
    -------
    dict
        Format (``graphml``, ``dot``, ``png``) -> path.

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

    Parameters
    ----------
    path : path

    Returns
    -------
    networkx.DiGraph

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
