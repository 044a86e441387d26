"""``cnn2logic graph``: the kernel-relation graph of a rules file (GraphML, DOT, PNG)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._io import refuse_overwriting_inputs
from ..labels import LABELS_HELP, apply_label_file
from ..rules import load_rules
from ..visual.graph import kernel_graph, write_graph
from ..visual.relations import RELATIONS, table_ruleset
from ..visual.visuals import load_visuals, match_kernels



def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``graph`` subcommand to ``sub``."""
    p = sub.add_parser(
        "graph", help="kernel-relation graph of the rules (GraphML, DOT, PNG)",
        description="Kernel -> class edges (sign = literal polarity, weight = share of the "
                    "class's rules using the kernel; both polarities = an opposite-polarity "
                    "conflict), kernel-kernel co-occurrence and never-together conflict "
                    "edges (the relations of the 'conflicts' query), and kernel -> kernel "
                    "dependencies for multi-layer rules. Writes NAME.graphml, NAME.dot and "
                    "NAME.png into --out.")
    p.add_argument("rules", help="rules JSON written by 'cnn2logic extract'")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--name", default="kernels", help="file name stem (default kernels)")
    p.add_argument("--visuals", action="append", default=[], metavar="DIR",
                   help="a 'cnn2logic visualize' output: its SmoothGrad images become the "
                        "kernels' 'image' attribute and their pictures (repeatable, one per "
                        "layer)")
    p.add_argument("--relations", default=",".join(RELATIONS),
                   help=f"comma-separated subset of {','.join(RELATIONS)} (default: all)")
    p.add_argument("--draw-conflicts", action="store_true",
                   help="draw never-together conflict edges in the PNG too (they are always "
                        "in the GraphML/DOT files)")
    p.add_argument("--terms", choices=("all", "table"), default="all",
                   help="graph of all rules (default) or of the per-class table terms "
                        "(meta['table'], one short term per class as in the paper's Table 1)")
    p.add_argument("--no-png", dest="png", action="store_false", help="GraphML and DOT only")
    p.add_argument("--labels", metavar="FILE", help=LABELS_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the kernel-relation graph of the rules file named by ``args``.

    Raises
    ------
    Cnn2LogicError
        An unreadable rules or visuals file, or a bad relation name.
    """
    refuse_overwriting_inputs(
        [Path(args.out) / f"{args.name}.{ext}" for ext in ("graphml", "dot", "png")],
        [args.rules])
    rules = apply_label_file(load_rules(args.rules), args.labels)
    if args.terms == "table":
        rules = table_ruleset(rules)
    images: dict[str, str] = {}
    for directory in args.visuals:
        vis = load_visuals(directory)
        for var, i in match_kernels(rules.variables, vis).items():
            path = vis.image_path(vis.names[i])
            if path is not None:
                images[var] = str(path)
    relations = [r.strip() for r in args.relations.split(",") if r.strip()]
    g = kernel_graph(rules, images=images, relations=relations)
    arch = rules.meta.get("architecture", "") if hasattr(rules.meta, "get") else ""
    paths = write_graph(g, args.out, args.name, png=args.png,
                        title=f"{arch} kernel relations".strip(),
                        draw_conflicts=args.draw_conflicts)
    kinds: dict[str, int] = {}
    for _, _, d in g.edges(data=True):
        for rel in str(d["relation"]).split("+"):
            kinds[rel] = kinds.get(rel, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"{g.number_of_nodes()} nodes, {g.number_of_edges()} edges ({summary or 'none'})")
    for fmt, path in paths.items():
        print(f"wrote {path}")
    return 0
