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
of that budget reads from the untuned units.

Run::

    OMP_NUM_THREADS=2 python bench/bits_capacity.py --nets paper1 paper3 \
        --out bench/results/bits_capacity.json
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
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    data = load_data(args.data, train_size=50_000)
    x_tr, y_tr = data.train.tensors()
    x_te, y_te = data.test.tensors()
    y_tr, y_te = y_tr.numpy(), y_te.numpy()
    doc: dict = {"command": "python bench/bits_capacity.py " + " ".join(argv or sys.argv[1:]),
                 "data": data.source, "seed": args.seed, "nets": {}}
    for net in args.nets:
        model, metrics = model_for(net, args.seed, data)
        u_tr = capture(model, LAYER[net], x_tr, progress=False).values
        u_te = capture(model, LAYER[net], x_te, progress=False).values
        logreg = lambda a, b: float(LogisticRegression(max_iter=3000).fit(  # noqa: E731
            a, y_tr).score(b, y_te))
        row = {"network_test_accuracy": metrics.get("test_accuracy"),
               "kernels": int(u_tr.shape[1]),
               "real_units_logreg": round(logreg(u_tr, u_te), 4), "levels": {}}
        for levels in args.levels:
            cuts = np.quantile(u_tr, [(i + 1) / (levels + 1) for i in range(levels)], axis=0)
            b_tr, b_te = codes(u_tr, cuts), codes(u_te, cuts)
            row["levels"][str(levels)] = {
                "bits": int(b_tr.shape[1]),
                "logreg": round(logreg(b_tr.astype(float), b_te.astype(float)), 4),
                # the majority label of each training code, scored on the test codes
                "lookup": round(ceilings(b_tr, y_tr, b_te, y_te)["ceiling_lookup"], 4),
                "distinct_training_codes": int(len(np.unique(b_tr, axis=0))),
            }
            if args.rulelist:
                from cnn2logic.extract.rulelist import RuleListExtractor

                rs = RuleListExtractor(max_rules=30, max_literals=300).fit(b_tr, y_tr).rules_
                row["levels"][str(levels)]["rulelist_30"] = {
                    "test": round(float((rs.predict_index(b_te) == y_te).mean()), 4),
                    "rules": len(rs.rules), "literals": sum(len(r.body) for r in rs.rules)}
        doc["nets"][net] = row
        print(f"# {net}: {json.dumps(row)}", file=sys.stderr, flush=True)
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
