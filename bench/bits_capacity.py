"""How much of a network's decision its kernel bits can carry: one bit per kernel or more.

For each network of ``bench/_readable_nets.py`` (the cached original checkpoint; full
MNIST: the first 50,000 training images, the 10,000 test images) the kernel units are
captured and cut at ``L`` quantiles per kernel (``L`` = 1: one bit per kernel, the bits a
program reads; ``L`` > 1: a thermometer code, ``L`` bits per kernel).  On each code this
prints the test accuracy of a logistic regression fitted on the training codes and of the
lookup table (majority label of each training code), and the logistic regression on the
real-valued units for reference.  It measures the information, not a program: a 30-rule
list reads less than either.  With ``--rulelist`` it also fits the rule list of
``extract`` (30 rules / 300 literals, against the labels) on each code: what a program
of that budget reads from the untuned units.  With ``--tuned N`` the bits are those of the
network fine-tuned for ``N`` iterations by ``cnn2logic tune`` (``--levels`` thresholds per
kernel, one value per run); ``--tree`` adds CART trees of 30, 60 and 200 leaves (a leaf is
a rule, its depth its literals) beside the list: is the list learner or the budget the
limit?  ``--max-n N ..`` adds lists whose M-of-N rules read at most N literals.
``--layer NAME --reduce position`` captures another layer, one unit per kernel and
map position (paper1's ``act1``: the 10 x 2 x 2 sigmoid maps before the pool), to measure
bits taken before the pool.

Run::

    OMP_NUM_THREADS=2 python bench/bits_capacity.py --nets paper1 paper3 \
        --out bench/results/bits_capacity.json
    OMP_NUM_THREADS=2 python bench/bits_capacity.py --nets paper1 --levels 3 --tuned 2000 \
        --rulelist --tree --out bench/results/bits_capacity-tuned-paper1.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cnn2logic._io import atomic_write_text  # noqa: E402
from cnn2logic.data import load_data  # noqa: E402
from cnn2logic.evaluate import ceilings  # noqa: E402


def codes(units: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """``(n, levels * kernels)`` thermometer bits: unit >= each cut."""
    return np.concatenate([units >= c for c in cuts], axis=1)


def tree_rules(b_tr: np.ndarray, y_tr: np.ndarray, b_te: np.ndarray, y_te: np.ndarray,
               leaves: int) -> dict:
    """A CART tree of ``leaves`` leaves as a rule set: test accuracy, rules, literals."""
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(max_leaf_nodes=leaves, random_state=0).fit(b_tr, y_tr)
    t = tree.tree_
    depth = np.zeros(t.node_count, dtype=int)  # a leaf's depth: the literals of its rule
    for node in range(t.node_count):  # children come after their parent
        for child in (t.children_left[node], t.children_right[node]):
            if child >= 0:
                depth[child] = depth[node] + 1
    is_leaf = t.children_left < 0
    return {"test": round(float(tree.score(b_te, y_te)), 4), "rules": int(is_leaf.sum()),
            "literals": int(depth[is_leaf].sum())}


def list_rules(b_tr: np.ndarray, y_tr: np.ndarray, b_te: np.ndarray, y_te: np.ndarray,
               rules: int, max_n: int | None = None) -> dict:
    """``extract``'s rule list with ``rules`` rules / 10 x literals, fitted to the labels
    (M-of-N rules over at most ``max_n`` literals when given)."""
    from cnn2logic.extract.rulelist import RuleListExtractor

    kw = {} if max_n is None else {"max_n": max_n}
    rs = RuleListExtractor(max_rules=rules, max_literals=10 * rules, **kw).fit(
        b_tr, y_tr).rules_
    return {"test": round(float((rs.predict_index(b_te) == y_te).mean()), 4),
            "train": round(float((rs.predict_index(b_tr) == y_tr).mean()), 4),
            "rules": len(rs.rules), "literals": sum(len(r.body) for r in rs.rules),
            "longest": max((len(r.body) for r in rs.rules), default=0)}


def main(argv: list[str] | None = None) -> int:
    from sklearn.linear_model import LogisticRegression

    from _readable_nets import LAYER, model_for
    from cnn2logic.units import capture

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/mnist")
    ap.add_argument("--nets", nargs="+", default=["paper1", "paper3"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--rulelist", action="store_true",
                    help="also fit a 30-rule / 300-literal list on each code")
    ap.add_argument("--tuned", type=int, default=0, metavar="N",
                    help="the bits of the network tuned for N iterations (one --levels)")
    ap.add_argument("--tree", action="store_true",
                    help="also CART trees of 30, 60 and 200 leaves on each code")
    ap.add_argument("--max-n", type=int, nargs="+", default=[], metavar="N",
                    help="with --rulelist: also lists whose M-of-N rules read at most N "
                         "literals (shorter rules, how much accuracy they cost)")
    ap.add_argument("--layer", default=None,
                    help="capture this layer instead of the kernel layer (untuned only)")
    ap.add_argument("--reduce", default="max", choices=("max", "position"),
                    help="with --layer: a unit per kernel (max) or per kernel and position")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.tuned and len(args.levels) != 1:
        ap.error("--tuned takes one --levels value")
    if args.tuned and args.layer:
        ap.error("--layer reads the untuned network")
    data = load_data(args.data, train_size=50_000)
    x_tr, y_tr = data.train.tensors()
    x_te, y_te = data.test.tensors()
    y_tr, y_te = y_tr.numpy(), y_te.numpy()
    doc: dict = {"command": "python bench/bits_capacity.py " + " ".join(argv or sys.argv[1:]),
                 "data": data.source, "seed": args.seed, "nets": {}}
    for net in args.nets:
        model, metrics = model_for(net, args.seed, data)
        where = dict(layer=args.layer or LAYER[net], reduce=args.reduce, progress=False)
        u_tr = capture(model, images=x_tr, **where).values
        u_te = capture(model, images=x_te, **where).values
        logreg = lambda a, b: float(LogisticRegression(max_iter=3000).fit(  # noqa: E731
            a, y_tr).score(b, y_te))
        row = {"network_test_accuracy": metrics.get("test_accuracy"),
               "layer": where["layer"], "reduce": args.reduce, "units": int(u_tr.shape[1]),
               "real_units_logreg": round(logreg(u_tr, u_te), 4), "levels": {}}
        if args.tuned:
            from _readable_nets import OUTPUT
            from cnn2logic.model.tuning import TuneConfig, tune_model

            tuned, m = tune_model(model, data, LAYER[net], OUTPUT[net], TuneConfig(
                iterations=args.tuned, levels=args.levels[0], seed=args.seed, progress=False))
            row["tuned"] = {k: m[k] for k in ("iterations", "levels", "test_accuracy",
                                              "train_accuracy", "rules", "literals")}
        for levels in args.levels:
            if args.tuned:  # the tuned network's own bits (its thresholds, its levels)
                b_tr = capture(tuned, LAYER[net], x_tr, progress=False).values > 0.5
                b_te = capture(tuned, LAYER[net], x_te, progress=False).values > 0.5
            else:
                cuts = np.quantile(u_tr, [(i + 1) / (levels + 1) for i in range(levels)],
                                   axis=0)
                b_tr, b_te = codes(u_tr, cuts), codes(u_te, cuts)
            row["levels"][str(levels)] = {
                "bits": int(b_tr.shape[1]),
                "logreg": round(logreg(b_tr.astype(float), b_te.astype(float)), 4),
                # the majority label of each training code, scored on the test codes
                "lookup": round(ceilings(b_tr, y_tr, b_te, y_te)["ceiling_lookup"], 4),
                "distinct_training_codes": int(len(np.unique(b_tr, axis=0))),
            }
            if args.rulelist:
                for rules in (30, 60) if args.tree else (30,):
                    row["levels"][str(levels)][f"rulelist_{rules}"] = list_rules(
                        b_tr, y_tr, b_te, y_te, rules)
                for n in args.max_n:
                    row["levels"][str(levels)][f"rulelist_30_max_n_{n}"] = list_rules(
                        b_tr, y_tr, b_te, y_te, 30, n)
            if args.tree:
                for leaves in (30, 60, 200):
                    row["levels"][str(levels)][f"tree_{leaves}"] = tree_rules(
                        b_tr, y_tr, b_te, y_te, leaves)
        doc["nets"][net] = row
        print(f"# {net}: {json.dumps(row)}", file=sys.stderr, flush=True)
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
