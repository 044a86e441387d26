"""How long the rule list (``extract``'s default method, and ``tune``'s head) takes to fit.

    OMP_NUM_THREADS=2 python bench/rulelist_speed.py [--nets paper1 relu_bn]
        [--sizes 500 3000 50000] [--out runs/rulelist_speed.json]

For each network of ``bench/_readable_nets.py`` (its cached units on full MNIST, captured
when missing) and each number of training images (the first N, which take the classes in
turn), the units are cut at their training medians and
:class:`~cnn2logic.extract.rulelist.RuleListExtractor` (defaults: 30 rules, 300 literals)
is fitted to the network's predictions.  Prints JSON: fit seconds, rules, literals,
training fidelity and a SHA-256 of the rules file, so that two revisions of the learner
can be shown to give the same rules (run this script from each, one after the other, on an
otherwise idle machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _readable_nets import capture_codes, load_codes  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/mnist")
    ap.add_argument("--nets", nargs="+", default=["paper1", "relu_bn"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 3000, 50_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from cnn2logic.extract.rulelist import RuleListExtractor

    doc: dict = {"command": "python bench/rulelist_speed.py " + " ".join(argv or sys.argv[1:]),
                 "runs": []}
    data = None
    for net in args.nets:
        try:
            codes = load_codes(net, args.seed)
        except FileNotFoundError:
            if data is None:
                from cnn2logic.data import load_data
                data = load_data(args.data, train_size=50_000)
            capture_codes(net, args.seed, data)
            codes = load_codes(net, args.seed)
        U, p = codes["U_train"], codes["p_train"]
        bits = U >= np.median(U, axis=0)
        for n in args.sizes:
            X, y = bits[:n], p[:n]
            t = time.perf_counter()
            ext = RuleListExtractor().fit(X, y)
            seconds = time.perf_counter() - t
            rs = ext.rules_
            doc["runs"].append({
                "net": net, "images": int(len(X)), "kernels": int(X.shape[1]),
                "distinct_codes": int(len(np.unique(X, axis=0))),
                "fit_seconds": round(seconds, 2), "rules": len(rs.rules),
                "literals": int(sum(len(r.body) for r in rs.rules)),
                "train_fidelity": round(float(np.mean(ext.predict(X) == y)), 4),
                "rules_sha256": hashlib.sha256(rs.to_json().encode()).hexdigest()[:16]})
            print(json.dumps(doc["runs"][-1]), file=sys.stderr, flush=True)
    emit(doc)
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
