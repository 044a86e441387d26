"""The PNG drawing of a kernel-relation graph (matplotlib, no display needed).

Kernels in rows by layer (with their maximising images as thumbnails), classes below;
edges styled by relation.  The output is deterministic: no timestamp in the file, and a
fixed 256-colour palette.
"""

from __future__ import annotations

import io
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import networkx as nx
from PIL import Image

from ..errors import VisualizationError


def graph_png(g: nx.DiGraph, *, title: str | None = None, thumbnails: bool = True,
              conflicts: bool = False, pictures: Mapping[str, Any] | None = None) -> bytes:
    """A PNG drawing: kernels in rows by layer (with their images), classes below.

    Green solid arrows: positive literals; red dashed (fainter): negated; purple: both
    polarities in different rules of the class (an ``opposite_polarity`` conflict).  Blue
    arcs above the kernels: co-occurrence.  Never-together conflicts relate many kernel
    pairs of a typical rule set and would hide the rest, so they are drawn (orange dotted
    arcs) only with ``conflicts=True``; the GraphML and DOT files always hold them.
    Kernel thumbnails come from ``pictures`` (kernel name -> (h, w, 3) uint8 array or
    PNG bytes, e.g. the kernel's top-patch mosaic) or else from the node's ``image`` file.

    Parameters
    ----------
    g : networkx.DiGraph
        A graph of :func:`cnn2logic.visual.graph.kernel_graph`.
    title : str, optional
    thumbnails : bool
        Draw kernels as their pictures (at most 40 nodes a row).
    conflicts : bool
        Also draw never-together conflict edges.
    pictures : mapping, optional
        Kernel name -> (h, w, 3) uint8 picture, or a PNG file's bytes.

    Returns
    -------
    bytes
        The PNG file's content (256-colour palette).

    Raises
    ------
    VisualizationError
        The graph is empty.
    """
    if g.number_of_nodes() == 0:
        raise VisualizationError("the graph has no nodes to draw")
    # matplotlib is heavy to import: loaded only when a picture is drawn.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pos, width_nodes = _layout(g)
    groups = _edge_groups(g, conflicts)
    # Equal scales on both axes, so an arc's height is radius * chord / 2 in data units
    # and the picture can be made tall enough for every arc.
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    rise = max([_ARCS[k] * _dist(pos[u], pos[v]) / 2 for k in _ARCS
                for u, v in groups.get(k, [])], default=0.0)
    x0, x1 = min(xs) - 0.7, max(xs) + 0.7
    y0, y1 = min(ys) - 0.5, max(ys) + max(0.9, rise + 0.25)
    # One inch per node up to 30 inches; wider graphs are shrunk, then drawn plainer.
    unit, left, top = min(1.0, 30.0 / (x1 - x0)), 0.2, 0.45 if title else 0.15
    thumbnails = thumbnails and width_nodes <= 40
    fw = (x1 - x0) * unit + 2 * left
    legend = _legend(conflicts)
    ncol = max(1, min(len(legend), int(fw / 1.7)))  # about 1.7 inches per legend entry
    bottom = 0.2 + 0.22 * -(-len(legend) // ncol)
    fh = (y1 - y0) * unit + bottom + top
    fig = Figure(figsize=(fw, fh), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left / fw, bottom / fh, (x1 - x0) * unit / fw, (y1 - y0) * unit / fh))
    ax.set_axis_off()
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    _draw_edges(ax, g, pos, groups)
    _draw_nodes(ax, g, pos, thumbnails, pictures or {})
    fig.legend(handles=legend, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.08 / fh)
    return _encode(fig)


_ARCS = {"co": 0.35, "opp": 0.6}  # arc3 radius: twice the curve height / chord
_STYLES = {
    "pos": dict(edge_color="#1a7f37", style="solid"),
    "neg": dict(edge_color="#c62828", style="dashed", alpha=0.45),
    "mixed": dict(edge_color="#7b5ea7", style="solid"),
    "co": dict(edge_color="#1f5fbf", style="solid", arrowstyle="-", alpha=0.6),
    "opp": dict(edge_color="#ef8a17", style="dotted", arrowstyle="-", alpha=0.6),
}


def _layout(g: nx.DiGraph) -> tuple[dict[str, tuple[float, float]], int]:
    """Node positions (rows by ``rank``, declaration order within a row), widest row."""
    rows: dict[int, list[str]] = defaultdict(list)
    for n, d in g.nodes(data=True):
        rows[int(d.get("rank", 0))].append(n)
    width_nodes = max(len(v) for v in rows.values())
    pos: dict[str, tuple[float, float]] = {}
    for r, nodes in rows.items():  # declaration order within a row
        for i, n in enumerate(nodes):
            x = (i + 0.5) * width_nodes / len(nodes)
            pos[n] = (x, -2.2 * r)
    return pos, width_nodes


def _edge_groups(g: nx.DiGraph, conflicts: bool) -> dict[str, list[tuple[str, str]]]:
    """Edges by drawing style: pos, neg, mixed (literal/dependency), co, opp (conflict)."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for u, v, d in g.edges(data=True):
        rel = str(d.get("relation", ""))
        if "literal" in rel or "dependency" in rel:
            groups[{1: "pos", -1: "neg"}.get(d.get("sign", 1), "mixed")].append((u, v))
        if "cooccurrence" in rel:
            groups["co"].append((u, v))
        if "conflict" in rel.split("+") and conflicts:
            groups["opp"].append((u, v))
    return groups


def _legend(conflicts: bool) -> list[Any]:
    from matplotlib.lines import Line2D  # heavy, see graph_png

    legend = [Line2D([], [], color="#1a7f37", label="positive literal"),
              Line2D([], [], color="#c62828", ls="--", label="negated literal"),
              Line2D([], [], color="#7b5ea7", label="both polarities"),
              Line2D([], [], color="#1f5fbf", label="co-occur (positive)")]
    if conflicts:
        legend.append(Line2D([], [], color="#ef8a17", ls=":", label="never together"))
    return legend


def _draw_edges(ax: Any, g: nx.DiGraph, pos: Mapping[str, tuple[float, float]],
                groups: Mapping[str, list[tuple[str, str]]]) -> None:
    top_co = max([float(g.edges[e].get("cooccurrence", 0)) for e in groups.get("co", [])],
                 default=1.0) or 1.0
    for key, edges in groups.items():
        if key in _ARCS:  # draw every arc bulging upwards
            parts = [([e for e in edges if pos[e[0]][0] <= pos[e[1]][0]], -_ARCS[key]),
                     ([e for e in edges if pos[e[0]][0] > pos[e[1]][0]], _ARCS[key])]
        else:
            parts = [(edges, 0.0)]
        for part, rad in parts:
            if not part:
                continue
            widths = [(0.6 + 2.4 * float(g.edges[e].get("weight", 0)))
                      * (0.6 if key == "neg" else 1.0) if key not in _ARCS
                      else 0.5 + 2.0 * float(g.edges[e].get("cooccurrence", 0)) / top_co
                      for e in part]
            nx.draw_networkx_edges(g, pos, edgelist=part, ax=ax, width=widths, node_size=900,
                                   arrows=True, arrowsize=9, connectionstyle=f"arc3,rad={rad}",
                                   **_STYLES[key])


def _draw_nodes(ax: Any, g: nx.DiGraph, pos: Mapping[str, tuple[float, float]],
                thumbnails: bool, pictures: Mapping[str, Any]) -> None:
    kernel_nodes = [n for n in g if g.nodes[n].get("kind") == "kernel"]
    class_nodes = [n for n in g if g.nodes[n].get("kind") == "class"]
    nx.draw_networkx_nodes(g, pos, nodelist=class_nodes, ax=ax, node_size=900,
                           node_color="#fdf3e1", edgecolors="#b07a1b", node_shape="o")
    nx.draw_networkx_labels(g, pos, labels={n: g.nodes[n]["label"] for n in class_nodes},
                            ax=ax, font_size=11)
    drawn = set()
    if thumbnails:
        drawn = _draw_thumbnails(ax, g, pos, kernel_nodes, pictures)
    plain = [n for n in kernel_nodes if n not in drawn]
    nx.draw_networkx_nodes(g, pos, nodelist=plain, ax=ax, node_size=900, node_color="#eef3fb",
                           edgecolors="#3b5b92", node_shape="s")
    nx.draw_networkx_labels(g, pos, labels={n: _shown(g.nodes[n]["label"]) for n in plain},
                            ax=ax, font_size=9 if all("\n" not in g.nodes[n]["label"]
                                                      for n in plain) else 7)
    for n in drawn:
        x, y = pos[n]
        ax.text(x + 0.34, y + 0.2, _shown(g.nodes[n]["label"]), ha="left", va="bottom",
                fontsize=9)


def _shown(label: str) -> str:
    """A node label as matplotlib draws it: ``$`` taken literally (not mathtext), lines
    wrapped at 18 characters so that a kernel's label stays near its node."""
    lines = [part for line in str(label).split("\n")
             for part in (textwrap.wrap(line, 18) or [""])]
    return "\n".join(lines).replace("$", r"\$")


def _encode(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    # A 256-colour palette keeps the picture and cuts the file about four times.
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
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # heavy, see graph_png
    drawn = set()
    for n in nodes:
        given = pictures.get(g.nodes[n].get("name", ""))
        path = g.nodes[n].get("image") or ""
        try:
            if isinstance(given, (bytes, bytearray)):  # a PNG, e.g. a patch mosaic
                with Image.open(io.BytesIO(given)) as f:
                    im = f.convert("RGB")
            elif given is not None:
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
