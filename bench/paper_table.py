"""Reproduce the paper's table for both configurations; prints JSON.

    python bench/paper_table.py --data ../shared/data/mnist [--seeds 0 1 2] [--archs paper1 paper3]

50,000 training / 10,000 test images, the paper's iteration counts, Adam lr 1e-3, minibatch
100.  Trained checkpoints are cached in runs/bench-cache/ (delete it to retrain).
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import emit, mean_std, trained_model

KEYS = ("network_accuracy", "binarized_network_accuracy", "rule_accuracy", "fidelity",
        "coverage", "zero_fire", "multi_fire", "fired_precision", "table_precision",
        "table_fired_share", "ceiling_oracle", "ceiling_lookup", "terms", "literals",
        "mean_literals")


def main() -> None:
    from cnn2logic.data import load_data
    from cnn2logic.model.spec import PAPER_FIGURES
    from cnn2logic.extract import ExtractConfig, extract_model

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="../shared/data/mnist")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--archs", nargs="+", default=["paper1", "paper3"])
    args = p.parse_args()
    torch.set_flush_denormal(True)
    data = load_data(args.data, train_size=50_000)
    out = {"data": args.data, "train_images": len(data.train), "test_images": len(data.test),
           "threads": torch.get_num_threads(), "configs": {}}
    for arch in args.archs:
        runs = []
        for seed in args.seeds:
            model, train_metrics = trained_model(arch, seed, data)
            t = time.perf_counter()
            res = extract_model(model, data, ExtractConfig(), progress=False)
            extract_seconds = time.perf_counter() - t
            m = res.metrics
            run = {k: m.get(k) for k in KEYS}
            run["train_seconds"] = train_metrics["train_seconds"]
            run["extract_seconds"] = round(extract_seconds, 3)
            run["extract_only_seconds"] = round(res.seconds["extract"], 3)
            run["table"] = [e.get("text") for e in res.table]
            runs.append(run)
        summary = {k: mean_std([r[k] for r in runs]) for k in KEYS + (
            "train_seconds", "extract_seconds", "extract_only_seconds")}
        out["configs"][arch] = {"paper": PAPER_FIGURES[arch], "summary": summary,
                                "runs": runs, "seeds": args.seeds}
    emit(out)


if __name__ == "__main__":
    main()
