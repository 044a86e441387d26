"""Readable and faithful: the rule list against the existing extractors and the peers.

    OMP_NUM_THREADS=1 python bench/readable.py [--nets paper1 paper3 scale128 relu_bn]
        [--seeds 0] [--out runs/readable.json]

Networks, training and the captured units: ``bench/_readable_nets.py`` (full MNIST,
50,000 / 10,000; each network trained once, its units cached under /work/cache/codes, so
this script needs no torch once the cache is filled).  Everything is fitted to the
**network's predictions** on the training images and scored on the test images
(fidelity: share of test images where the program answers what the network answers).

Per network and binarisation (``half`` where the units are in [0, 1], the fidelity
thresholds ``infogain`` and, up to 16 kernels, ``lookup``; ``mean`` on unbounded units):
the references (lookup table of the training codes, unseen codes answered with the most
frequent class; the output layer refitted on the bits, multinomial logistic regression)
and the rule list.  On the default binarisation (the one whose rule list is the most
faithful on the *training* images) in the same run on the same codes: the existing
extractors (M-of-N, pedagogical, approximation up to 16 kernels) and the peers at the
same budget (<= 30 rules, <= 300 literals) when installed (``pip install .[bench]``):

* CART (scikit-learn) with the most leaves that fit the budget (one leaf is the default);
* FIGS (imodels) with ``max_rules=30`` splits (literals: the depth of every leaf);
* RIPPER (wittgenstein) and imodels' greedy rule list, both binary learners, made
  multi-class the usual way: an ordered one-vs-rest list, rarest class first, each class
  learned on the images no earlier rule covers, the most frequent class the default
  (``30 // (classes - 1)`` rules per class).  imodels' greedy list predicts a class only
  where a split's share of it reaches 0.5, which one-vs-rest on ten classes rarely
  gives: its rows are what it does, not a bug of this wrapper.

Columns: rules, literals, test fidelity, fit seconds.  Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _readable_nets import CODES, capture_codes, load_codes  # noqa: E402

MAX_RULES, MAX_LITERALS = 30, 300


def fidelity(pred: np.ndarray, target: np.ndarray) -> float:
    return round(float(np.mean(np.asarray(pred) == target)), 4)


def lookup_reference(Xtr, ptr, Xte, pte, K: int) -> float:
    """Test fidelity of the lookup table of the training codes."""
    codes, inv = np.unique(np.packbits(Xtr, axis=1), axis=0, return_inverse=True)
    table = np.zeros((len(codes), K))
    np.add.at(table, (inv.reshape(-1), ptr), 1)
    index = {c.tobytes(): i for i, c in enumerate(codes)}
    fallback = int(np.bincount(ptr, minlength=K).argmax())
    maj = table.argmax(axis=1)
    pred = np.array([maj[index[c.tobytes()]] if c.tobytes() in index else fallback
                     for c in np.packbits(Xte, axis=1)])
    return fidelity(pred, pte)


def refit_reference(Xtr, ptr, Xte, pte) -> float:
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(max_iter=500, C=10.0).fit(Xtr, ptr)
    return fidelity(lr.predict(Xte), pte)


#: CPU seconds of this process per timed call (the machine is shared: wall time is not
#: what the fit costs); filled by :func:`timed`, read right after by the callers.
LAST_CPU: list[float] = [0.0]


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    LAST_CPU[0] = round(time.process_time() - c, 3)
    return out, round(time.perf_counter() - t, 3)


def ruleset_row(rs, Xte, pte, seconds, **extra) -> dict:
    return {"rules": len(rs.rules), "literals": int(sum(len(r.body) for r in rs.rules)),
            "test_fidelity": fidelity(rs.predict_index(Xte), pte), "fit_seconds": seconds,
            "fit_cpu_seconds": LAST_CPU[0], **extra}


# -- peers --------------------------------------------------------------------------------
def cart_peer(Xtr, ptr, Xte, pte) -> dict:
    from sklearn.tree import DecisionTreeClassifier

    for leaves in range(MAX_RULES + 1, 1, -1):
        (tree, sec) = timed(lambda: DecisionTreeClassifier(max_leaf_nodes=leaves,
                                                           random_state=0).fit(Xtr, ptr))
        t = tree.tree_
        depth = np.zeros(t.node_count, dtype=int)
        for node in range(t.node_count):  # parents come before children in sklearn trees
            for child in (t.children_left[node], t.children_right[node]):
                if child >= 0:
                    depth[child] = depth[node] + 1
        leaf = t.children_left < 0
        # the largest leaf is the default: it needs no rule
        lits = int(depth[leaf].sum() - depth[leaf][np.argmax(t.n_node_samples[leaf])])
        if lits <= MAX_LITERALS:
            return {"rules": int(leaf.sum()) - 1, "literals": lits,
                    "test_fidelity": fidelity(tree.predict(Xte), pte), "fit_seconds": sec,
                    "leaves": leaves}
    return {"error": "no tree within the budget"}


def figs_peer(Xtr, ptr, Xte, pte) -> dict:
    from imodels import FIGSClassifier

    model, sec = timed(lambda: FIGSClassifier(max_rules=MAX_RULES, random_state=0).fit(
        Xtr.astype(float), ptr))
    lits = 0
    for tree in model.trees_:
        stack = [(tree, 0)]
        while stack:
            node, d = stack.pop()
            if node.left is None:
                lits += d
            else:
                stack += [(node.left, d + 1), (node.right, d + 1)]
    return {"rules": int(model.complexity_), "literals": lits, "trees": len(model.trees_),
            "test_fidelity": fidelity(model.predict(Xte.astype(float)), pte),
            "fit_seconds": sec, "note": "rules = FIGS splits; a sum of trees, not a list"}


def one_vs_rest_list(Xtr, ptr, Xte, pte, K: int, learn) -> dict:
    """An ordered one-vs-rest list: ``learn(X, is_class, budget)`` -> (cover fn, rules, lits)."""
    order = [int(c) for c in np.argsort(np.bincount(ptr, minlength=K), kind="stable")]
    default = order[-1]
    per_class = max(1, MAX_RULES // (K - 1))
    left = np.ones(len(Xtr), dtype=bool)
    pred = np.full(len(Xte), -1)
    rules = lits = 0
    t = time.perf_counter()
    for c in order[:-1]:
        if not left.any() or rules >= MAX_RULES:
            break
        target = ptr[left] == c
        if target.sum() == 0:
            continue
        budget = min(per_class, MAX_RULES - rules)
        cover, n_rules, n_lits = learn(Xtr[left], target, budget,
                                       max(0, MAX_LITERALS - lits))
        if n_rules == 0:
            continue
        rules, lits = rules + n_rules, lits + n_lits
        hit_tr = cover(Xtr)
        left &= ~hit_tr
        hit_te = cover(Xte) & (pred < 0)
        pred[hit_te] = c
    pred[pred < 0] = default
    return {"rules": rules, "literals": lits, "test_fidelity": fidelity(pred, pte),
            "fit_seconds": round(time.perf_counter() - t, 3)}


def ripper_peer(Xtr, ptr, Xte, pte, K: int) -> dict:
    import pandas as pd
    import wittgenstein as lw

    names = [f"k{j + 1}" for j in range(Xtr.shape[1])]

    def learn(X, is_c, budget, lit_budget):
        clf = lw.RIPPER(max_rules=budget, max_total_conds=max(1, lit_budget // 3),
                        random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(pd.DataFrame(X.astype(int), columns=names), is_c.astype(int),
                    pos_class=1)
        rules = clf.ruleset_.rules
        n_lits = sum(len(r.conds) for r in rules)
        return (lambda Z: np.asarray(clf.predict(pd.DataFrame(Z.astype(int), columns=names)),
                                     dtype=bool)), len(rules), n_lits

    return one_vs_rest_list(Xtr, ptr, Xte, pte, K, learn)


def greedy_list_peer(Xtr, ptr, Xte, pte, K: int) -> dict:
    from imodels import GreedyRuleListClassifier

    def learn(X, is_c, budget, lit_budget):
        # each rule of imodels' list is one split (one literal) refining the previous ones
        clf = GreedyRuleListClassifier(max_depth=budget)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X.astype(float), is_c.astype(int))
        n = sum(1 for r in clf.rules_ if "col" in r)  # the last entry is the "else"
        return (lambda Z: np.asarray(clf.predict(Z.astype(float))) == 1), n, n

    return one_vs_rest_list(Xtr, ptr, Xte, pte, K, learn)


PEERS = {"cart": cart_peer, "figs": figs_peer, "ripper": ripper_peer,
         "greedy_rule_list": greedy_list_peer}


def run_peer(name, Xtr, ptr, Xte, pte, K, limit_rows: int | None) -> dict:
    if limit_rows and len(Xtr) > limit_rows:  # the slow peers on a fixed prefix
        Xtr, ptr = Xtr[:limit_rows], ptr[:limit_rows]
    fn = PEERS[name]
    try:
        out = fn(Xtr, ptr, Xte, pte) if name in ("cart", "figs") else fn(Xtr, ptr, Xte, pte, K)
    except ImportError as exc:
        return {"skipped": f"not installed: {exc}"}
    if limit_rows:
        out["train_rows"] = len(Xtr)
    return out


# -- one network --------------------------------------------------------------------------
def binarisations(U: np.ndarray) -> list[str]:
    out = []
    if U.min() >= 0 and U.max() <= 1:
        out.append("half")
    else:
        out.append("mean")
    out.append("infogain")
    if U.shape[1] <= 16:
        out.append("lookup")
    return out


def run_net(net: str, seed: int, args) -> dict:
    from cnn2logic.extract.mofn import MofNExtractor
    from cnn2logic.extract.pedagogical import PedagogicalExtractor
    from cnn2logic.extract.rulelist import RuleListExtractor
    from cnn2logic.units.fidelity import fit_fidelity_thresholds
    from cnn2logic.units import fit_thresholds

    d = load_codes(net, seed)
    Utr, Ute, ptr, pte = d["U_train"], d["U_test"], d["p_train"], d["p_test"]
    K = d["W"].shape[0]
    out = {"kernels": int(Utr.shape[1]), "network_accuracy": float(d["network_accuracy"]),
           "train_seconds": float(d["train_seconds"]), "binarisations": {}}
    bits = {}
    for b in binarisations(Utr):
        th, th_sec = timed(lambda: fit_fidelity_thresholds(Utr, ptr, b)
                           if b in ("infogain", "lookup") else fit_thresholds(Utr, b))
        Xtr, Xte = th.apply(Utr), th.apply(Ute)
        bits[b] = (Xtr, Xte)
        ext, sec = timed(lambda: RuleListExtractor(MAX_RULES, MAX_LITERALS).fit(Xtr, ptr))
        meta = ext.rules_.meta["rulelist"]
        out["binarisations"][b] = {
            "threshold_seconds": th_sec,
            "distinct_train_codes": meta["distinct_codes"],
            "lookup_reference": lookup_reference(Xtr, ptr, Xte, pte, K),
            "refit_reference": refit_reference(Xtr, ptr, Xte, pte),
            "rulelist": ruleset_row(ext.rules_, Xte, pte, sec,
                                    train_fidelity=meta["train_fidelity"],
                                    alpha=meta["alpha"], curve=ext.curve_),
        }
        print(f"  {net} seed {seed} {b}: {out['binarisations'][b]['rulelist']['test_fidelity']}"
              f" ({sec:.1f} s)", file=sys.stderr, flush=True)
    primary = max(out["binarisations"], key=lambda b: (
        out["binarisations"][b]["rulelist"]["train_fidelity"], b == "half"))
    out["default_binarisation"] = primary
    Xtr, Xte = bits[primary]
    methods = {"rulelist": out["binarisations"][primary]["rulelist"]}
    mofn, sec = timed(lambda: MofNExtractor().fit(Utr, ptr, output=(d["W"], d["b"])))
    methods["mofn (own infogain bits)"] = ruleset_row(mofn.rules_, mofn.transform(Ute), pte,
                                                      sec)
    if Utr.shape[1] <= 16:
        ped, sec = timed(lambda: PedagogicalExtractor().fit(Xtr, ptr, n_classes=K))
        methods["pedagogical"] = ruleset_row(ped.rules_, Xte, pte, sec)
    for name in args.peers:
        print(f"  {net} seed {seed}: {name}", file=sys.stderr, flush=True)
        methods[name] = run_peer(name, Xtr, ptr, Xte, pte, K,
                                 args.slow_peer_rows if name == "ripper" else None)
    out["methods"] = methods
    return out


def markdown(result: dict) -> str:
    """The tables of one result: methods on the default bits, then the binarisations."""
    lines = ["| network (kernels) | method | rules | literals | test fidelity | fit s (CPU s) |",
             "|---|---|---:|---:|---:|---:|"]
    refs = ["| network | binarisation | distinct codes | lookup | refit on bits | "
            "rule list: rules / literals / test fidelity |", "|---|---|---:|---:|---:|---|"]
    for net, seeds in result["networks"].items():
        for seed, r in seeds.items():
            name = f"{net} ({r['kernels']}), seed {seed}"
            for label, m in r["methods"].items():
                if "test_fidelity" not in m:
                    lines.append(f"| {name} | {label} | – | – | – | {m} |")
                    continue
                cpu = f" ({m['fit_cpu_seconds']})" if "fit_cpu_seconds" in m else ""
                shown = f"{label} [{r['default_binarisation']}]" if label == "rulelist" else label
                lines.append(f"| {name} | {shown} | {m['rules']} | {m['literals']} | "
                             f"{m['test_fidelity']:.4f} | {m['fit_seconds']}{cpu} |")
            for b, v in r["binarisations"].items():
                rl = v["rulelist"]
                refs.append(f"| {name} | {b} | {v['distinct_train_codes']} | "
                            f"{v['lookup_reference']:.4f} | {v['refit_reference']:.4f} | "
                            f"{rl['rules']} / {rl['literals']} / {rl['test_fidelity']:.4f} |")
    return "\n".join(lines + [""] + refs) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=["paper1", "paper3", "scale128", "relu_bn"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--peers", nargs="*", default=list(PEERS))
    ap.add_argument("--slow-peer-rows", type=int, default=None,
                    help="fit RIPPER on only the first so many training images")
    ap.add_argument("--data", default="/work/shared/data/mnist",
                    help="MNIST, only to train and capture networks missing from the cache")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--table", default=None, metavar="JSON",
                    help="print the Markdown tables of an earlier run's JSON and stop")
    args = ap.parse_args()
    if args.table:
        print(markdown(json.loads(Path(args.table).read_text())), end="")
        return
    result = {"command": "python bench/readable.py " + " ".join(sys.argv[1:]),
              "budget": {"max_rules": MAX_RULES, "max_literals": MAX_LITERALS},
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "codes": str(CODES),
              "networks": {}}
    data = None
    for net in args.nets:
        for seed in args.seeds:
            if not (CODES / f"{net}-seed{seed}.npz").is_file():
                from cnn2logic.data import load_data

                data = data or load_data(args.data, train_size=50_000)
                capture_codes(net, seed, data)
            result["networks"].setdefault(net, {})[str(seed)] = run_net(net, seed, args)
            if args.out:
                Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    emit(result)


if __name__ == "__main__":
    main()
