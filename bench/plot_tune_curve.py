"""Accuracy against program size of tuned networks, as a picture.

Reads the ``curve`` points of ``bench/logic_training.py --budgets`` result files (each a
network tuned with at most ``R`` rules and ``10 R`` literals) and draws, per network, the
tuned test accuracy against the literals its program uses, with the original network's
accuracy as a dashed line of the same colour.  Needs matplotlib (the ``bench`` extra).

Run::

    python bench/plot_tune_curve.py bench/results/logic_training-curve-current.json \
        bench/results/logic_training-curve-current-wide.json --out docs/img/tune-curve.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


def points(paths: list[str]) -> dict[str, list[dict]]:
    """Curve points per network, sorted by the rules budget."""
    by_net: dict[str, list[dict]] = defaultdict(list)
    for path in paths:
        for r in json.loads(Path(path).read_text())["curve"]:
            by_net[r["net"]].append(r)
    out = {}
    for net, rs in by_net.items():
        seen, kept = set(), []
        for r in sorted(rs, key=lambda r: r["budget_rules"]):
            # a larger budget the list did not use is the same program: one point
            key = (r["rules"], r["literals"], r["tuned_accuracy"])
            if key not in seen:
                seen.add(key)
                kept.append(r)
        out[net] = kept
    return out


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (matplotlib.ticker below)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="bench/logic_training.py JSON files")
    ap.add_argument("--out", required=True, help="PNG path")
    args = ap.parse_args(argv)
    curves = points(args.results)
    if not curves:
        raise SystemExit("no curve points in " + ", ".join(args.results))
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    for i, (net, rs) in enumerate(sorted(curves.items())):
        colour = f"C{i}"
        x = [max(r["literals"], 1) for r in rs]
        y = [r["tuned_accuracy"] for r in rs]
        ax.plot(x, y, "o-", color=colour, label=f"{net} tuned")
        for r, xi, yi in zip(rs, x, y):
            ax.annotate(f"{r['rules']}", (xi, yi), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7, color=colour)
        ax.axhline(rs[0]["original_accuracy"], color=colour, ls="--", lw=1,
                   label=f"{net} original")
    ax.axvline(300, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks([25, 50, 100, 200, 300, 600, 1000])
    ax.text(300, 0.99, " 300 literals: the target's budget", color="grey", fontsize=7,
            va="top", transform=ax.get_xaxis_transform())
    ax.set_xlabel("literals in the program (log scale; the number over a point: its rules)")
    ax.set_ylabel("test accuracy of the tuned network")
    ax.set_title("Tuned networks: accuracy against program size (seed 0, full MNIST)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    # no software / date metadata: the same results give the same file
    fig.savefig(args.out, metadata={"Software": None})
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
