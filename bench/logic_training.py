"""Logic-friendly training, measured: network accuracy, rule accuracy, fidelity, term length.

For each architecture (paper1, paper3) and each training mode (ordinary training, and the
binary-unit modes of :mod:`cnn2logic.model.logic_training`) this trains on the first 50,000
MNIST training images for the paper's iteration count, extracts rules with
:func:`cnn2logic.extract.run.extract_model` (approximation method, argmax-sound, full order,
exact espresso minimisation; and a second reading minimised on the observed codes) and
prints one JSON document.

Run (takes minutes: paper3 trains for about 190 s per mode on 2 cores)::

    OMP_NUM_THREADS=1 python bench/logic_training.py --data ../shared/data/mnist \\
        --arch paper1 paper3 --modes none ste noise penalty --out runs/logic_training.json

``--data embedded`` and ``--iterations`` give a quick smoke run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from cnn2logic._io import atomic_write_text
from cnn2logic.data import load_data
from cnn2logic.model.spec import PAPER_FIGURES, PAPER_ITERATIONS
from cnn2logic.extract import ExtractConfig, extract_model
from cnn2logic.model.training import TrainConfig, train

# The paper's Table 1 (configuration 1): literals of the one term per digit 0..9.
PAPER_TABLE1_LITERALS = [8, 7, 7, 7, 7, 6, 8, 7, 8, 8]


def parse_variant(text: str) -> tuple[str, dict[str, float]]:
    """``"ste"`` or ``"ste:warmup=5000,lr=0.003,iterations=20000,cosine=1"``."""
    mode, _, rest = text.partition(":")
    opts = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        opts[key.strip()] = float(value)
    return mode, opts


def run_one(arch: str, variant: str, data, iterations: int, seed: int, noise: float,
            penalty: float, order: int | None, soft: bool = False) -> dict:
    mode, opts = parse_variant(variant)
    noise = opts.get("noise", noise)
    penalty = opts.get("penalty", penalty)
    iterations = int(opts.get("iterations", iterations))
    config = TrainConfig(iterations=iterations, seed=seed, progress=False, binary_units=mode,
                         binary_noise=noise, binary_penalty=penalty,
                         binary_warmup=int(opts.get("warmup", 0)), lr=opts.get("lr", 1e-3),
                         lr_schedule="cosine" if opts.get("cosine") else "constant")
    t0 = time.perf_counter()
    model, tm = train(arch, data, config)
    train_s = time.perf_counter() - t0
    out: dict = {"arch": arch, "mode": mode, "variant": variant, "options": opts,
                 "iterations": iterations, "seed": seed,
                 "train_seconds": round(train_s, 1),
                 "network_accuracy": tm["test_accuracy"]}
    if mode == "noise":
        out["noise"] = noise
    if mode == "penalty":
        out["penalty"] = penalty
    for minimize in ("exact", "on-codes"):
        t1 = time.perf_counter()
        res = extract_model(model, data, ExtractConfig(order=order, minimize=minimize),
                            progress=False, model_name=f"{arch}-{mode}")
        m = res.metrics
        lengths = [len(r.body) for r in res.rules.rules]
        table_lengths = [e.get("literals") for e in res.table]
        out[f"rules_{minimize}"] = {
            "rule_accuracy": m["rule_accuracy"],
            "fidelity": m["fidelity"],
            "coverage": m["coverage"],
            "binarized_network_accuracy": m["binarized_network_accuracy"],
            "ceiling_lookup": m["ceiling_lookup"],
            "ceiling_oracle": m["ceiling_oracle"],
            "terms": m["terms"],
            "mean_literals": m["mean_literals"],
            "max_literals": max(lengths) if lengths else 0,
            "table_literals": table_lengths,
            "table_precision": m.get("table_precision"),
            "seconds": round(time.perf_counter() - t1, 2),
        }
    if soft and mode != "none":
        # The trade-off reading: the same weights with the binarize layer removed, so the
        # network decides on its continuous units again (more accurate, less faithful).
        import copy

        from cnn2logic.model.training import accuracy

        cont = copy.deepcopy(model)
        cont.binarize = torch.nn.Identity()
        res = extract_model(cont, data, ExtractConfig(order=order), progress=False)
        out["soft_inference"] = {"network_accuracy": accuracy(cont, data.test),
                                 "rule_accuracy": res.metrics["rule_accuracy"],
                                 "fidelity": res.metrics["fidelity"]}
    ex = out["rules_exact"]
    paper = PAPER_FIGURES.get(arch, {})
    out["targets"] = {
        "fidelity>=0.99": ex["fidelity"] >= 0.99,
        "rule_acc_within_0.005": abs(ex["rule_accuracy"] - out["network_accuracy"]) <= 0.005,
        "network_acc>=paper": out["network_accuracy"] >= paper.get("network_accuracy", 0.0),
        "max_literals<=table1_max": ex["max_literals"] <= max(PAPER_TABLE1_LITERALS),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/mnist")
    ap.add_argument("--train-size", type=int, default=50_000)
    ap.add_argument("--test-size", type=int, default=None)
    ap.add_argument("--arch", nargs="+", default=["paper1", "paper3"])
    ap.add_argument("--modes", nargs="+", default=["none", "ste", "noise", "penalty"],
                    help="training variants: MODE or MODE:key=value,... with keys warmup, "
                         "lr, iterations, noise, penalty (e.g. ste:warmup=5000)")
    ap.add_argument("--iterations", type=int, default=None, help="default: the paper's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=2.0)
    ap.add_argument("--penalty", type=float, default=1.0)
    ap.add_argument("--order", type=int, default=None, help="default: all units (≤ 12)")
    ap.add_argument("--soft", action="store_true",
                    help="also measure each binary-unit model with its binarize layer removed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the JSON here (after each run)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    data = load_data(args.data, train_size=args.train_size, test_size=args.test_size)
    doc: dict = {"data": data.source, "train_images": len(data.train),
                 "test_images": len(data.test), "paper": PAPER_FIGURES,
                 "paper_table1_literals": PAPER_TABLE1_LITERALS, "runs": []}
    for arch in args.arch:
        iterations = args.iterations or PAPER_ITERATIONS[arch]
        for variant in args.modes:
            doc["runs"].append(run_one(arch, variant, data, iterations, args.seed, args.noise,
                                       args.penalty, args.order, args.soft))
            if args.out:
                atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
            print(f"# {arch} {variant}: net {doc['runs'][-1]['network_accuracy']:.4f} rules "
                  f"{doc['runs'][-1]['rules_exact']['rule_accuracy']:.4f} fid "
                  f"{doc['runs'][-1]['rules_exact']['fidelity']:.4f}", file=sys.stderr,
                  flush=True)
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
