"""Extraction time and terms for random linear layers; prints JSON.

    python bench/extract_scaling.py [--quick]

Layers: n = 10, 32, 128, 512 inputs; 10 and 1,000 classes; order k = 1..4; both softmax
modes.  Two weight families: ``gaussian`` (W, b ~ N(0, 1): the plain random layer) and
``sparse`` (8 non-zero N(0, 2) weights per class, b ~ N(0, 1): a layer where many terms
exist, so the search has work to do).  For every setting: seconds and terms of the pruned
search, of the naive enumeration (skipped, and said so, when it would check more than
3e7 combinations × classes), and of the truth table (n ≤ 20).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from _common import emit

NAIVE_BUDGET = 3e7


def layer(family: str, n: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    if family == "gaussian":
        return rng.normal(size=(classes, n)), rng.normal(size=classes)
    W = np.zeros((classes, n))
    for c in range(classes):
        W[c, rng.choice(n, size=min(8, n), replace=False)] = rng.normal(scale=2.0, size=min(8, n))
    return W, rng.normal(size=classes)


def timed(fn, repeat: int):
    best = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best.append(time.perf_counter() - t)
    return out, round(sorted(best)[len(best) // 2], 4)


def main() -> None:
    from cnn2logic.extract.approximation import ApproximationExtractor

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="n ≤ 128 and k ≤ 3 only")
    args = p.parse_args()
    ns = (10, 32, 128) if args.quick else (10, 32, 128, 512)
    ks = (1, 2, 3) if args.quick else (1, 2, 3, 4)
    rows = []
    for family in ("gaussian", "sparse"):
        for n in ns:
            for classes in (10, 1000):
                W, b = layer(family, n, classes)
                for mode in ("argmax", "per-logit"):
                    for k in ks:
                        row = {"family": family, "n": n, "classes": classes, "mode": mode, "k": k}
                        ext, secs = timed(lambda: ApproximationExtractor(order=k, mode=mode).fit(output=(W, b)),
                                          3 if n <= 128 else 1)
                        row["pruned_seconds"] = secs
                        row["pruned_terms"] = sum(len(t) for t in ext.terms_.values())
                        # candidates the naive search really enumerates: literals whose
                        # weight is not zero (both polarities in argmax mode)
                        sizes = ([2 * n] * classes if mode == "argmax"
                                 else (W != 0).sum(axis=1).tolist())
                        combos = sum(math.comb(L, s) for L in sizes for s in range(1, k + 1))
                        if combos <= NAIVE_BUDGET:
                            nv, secs = timed(lambda: ApproximationExtractor(
                                order=k, mode=mode, search="naive").fit(output=(W, b)), 1)
                            row["naive_seconds"] = secs
                            row["naive_terms"] = sum(len(t) for t in nv.terms_.values())
                            row["naive_equals_pruned"] = nv.terms_ == ext.terms_
                            row["speedup"] = round(secs / max(row["pruned_seconds"], 1e-6), 1)
                        else:
                            row["naive_skipped"] = f"{combos:.2g} combinations × classes"
                        if n <= 20 and k == ks[-1]:
                            tt, secs = timed(lambda: ApproximationExtractor(
                                mode=mode, search="truth-table").fit(output=(W, b)), 1)
                            row["truth_table_seconds"] = secs
                            row["truth_table_terms"] = sum(len(t) for t in tt.terms_.values())
                        rows.append(row)
                        print(row, flush=True, file=__import__("sys").stderr)
    target = next(r for r in rows if r["family"] == "gaussian" and r["n"] == max(ns)
                  and r["classes"] == 1000 and r["k"] == 3 and r["mode"] == "argmax")
    speed = [r for r in rows if r["n"] == 128 and r["k"] == 3 and "speedup" in r]
    emit({"rows": rows,
          "target_n512_c1000_k3_argmax_seconds": target["pruned_seconds"],
          "speedup_n128_k3": {f"{r['family']}/{r['mode']}/{r['classes']}": r["speedup"]
                              for r in speed}})


if __name__ == "__main__":
    main()
