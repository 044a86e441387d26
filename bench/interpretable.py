"""Interpretable filters (Zhang et al.), measured: what the filter loss changes for rules.

The paper's networks have 2x2 (paper1) or 1x1 (paper3) maps at the top conv layer, where
the templates are degenerate, so this uses the example CNN of ``examples/relu_bn_cnn.py``
(ReLU, BatchNorm, 7x7 maps at ``features.conv3``, global average pooling).  Variants:

``plain``      the network as it is;
``mask``       with the template mask after the top layer's ReLU, no filter loss;
``mask+loss``  with the mask and the filter loss (one run per weight in ``--weights``).

For each: network accuracy; rules over the binarised pooled units (``gap``) from the
approximation method (data-limited, order 3, per-kernel ``minmax`` thresholds) and from
ERIC's CART tree (issue 5's extractor, when present; per-kernel ``mean`` thresholds):
literals per rule, rule accuracy,
fidelity; and the maps of the top layer (before the mask, and after it when there is
one): spatial entropy and peak-location stability per class
(:func:`cnn2logic.model.interpretable.map_statistics`).  Prints one JSON document::

    OMP_NUM_THREADS=1 python bench/interpretable.py --data ../shared/data/mnist \\
        --iterations 2000 --weights 1 10 100 --out runs/interpretable.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cnn2logic._io import atomic_write_text
from cnn2logic.data import DataSplits, load_data
from cnn2logic.model.interpretable import capture_maps, map_statistics
from cnn2logic.extract import ExtractConfig, extract_model
from cnn2logic.model.training import TrainConfig, train

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
from relu_bn_cnn import make_net  # noqa: E402

VARIANTS = ("plain", "mask", "mask+loss")


def rules_reading(model, data, config: ExtractConfig) -> dict:
    t = time.perf_counter()
    res = extract_model(model, data, config, progress=False)
    m = res.metrics
    lengths = [len(r.body) for r in res.rules.rules]
    return {"rule_accuracy": m["rule_accuracy"], "fidelity": m["fidelity"],
            "coverage": m["coverage"], "terms": len(lengths),
            "literals_per_rule": round(float(np.mean(lengths)), 3) if lengths else 0.0,
            "binarized_network_accuracy": m["binarized_network_accuracy"],
            "seconds": round(time.perf_counter() - t, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/mnist")
    ap.add_argument("--train-size", type=int, default=50_000)
    ap.add_argument("--extract-train-size", type=int, default=10_000,
                    help="training images the rules are extracted from")
    ap.add_argument("--test-size", type=int, default=10_000)
    ap.add_argument("--map-images", type=int, default=2000)
    ap.add_argument("--kernels", type=int, default=32)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 10.0, 100.0],
                    help="filter-loss weights (one mask+loss run each)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    if args.data != "embedded" and not Path(args.data).is_dir():
        args.data = "embedded"
    data = load_data(args.data, train_size=args.train_size, test_size=args.test_size)
    ex_data = DataSplits(data.train.subset(args.extract_train_size), data.test, data.source)
    doc: dict = {"data": data.source, "train_images": len(data.train),
                 "extract_train_images": len(ex_data.train), "test_images": len(data.test),
                 "model": f"examples/relu_bn_cnn.py:make_net kernels={args.kernels} "
                          f"width={args.width} (top conv map 7x7)",
                 "iterations": args.iterations, "filter_loss_weights": args.weights,
                 "variants": {}}
    have_eric = importlib.util.find_spec("cnn2logic.extract.eric") is not None
    x_maps = data.test.images[:args.map_images]
    y_maps = data.test.labels[:args.map_images]
    runs: list[tuple[str, bool, float]] = []
    for name in args.variants:
        if name == "mask+loss":
            runs.extend((f"mask+loss(w={w:g})", True, w) for w in args.weights)
        else:
            runs.append((name, name == "mask", 0.0))
    for name, mask, weight in runs:
        torch.manual_seed(args.seed)
        net = make_net(kernels=args.kernels, width=args.width, interpretable=mask)
        t = time.perf_counter()
        model, tm = train(net, data, TrainConfig(iterations=args.iterations, seed=args.seed,
                                                 progress=False, filter_loss=weight))
        row: dict = {"mask": mask, "filter_loss": weight,
                     "network_accuracy": tm["test_accuracy"],
                     "train_seconds": round(time.perf_counter() - t, 1)}
        row["maps_before_mask"] = map_statistics(capture_maps(model, "features.relu3", x_maps),
                                                 y_maps)
        if mask:
            row["maps_after_mask"] = map_statistics(capture_maps(model, "features.mask", x_maps),
                                                    y_maps)
        base = dict(layer="gap", output="fc")
        row["rules_approximation"] = rules_reading(
            model, ex_data, ExtractConfig(**base, threshold="minmax", order=3,
                                          data_limited=True, min_support=10))
        if have_eric:
            row["rules_eric"] = rules_reading(
                model, ex_data, ExtractConfig(**base, threshold="mean", method="eric",
                                              max_depth=8))
        doc["variants"][name] = row
        print(f"# {name}: net {row['network_accuracy']:.4f}, entropy "
              f"{row['maps_before_mask']['spatial_entropy']:.3f}", file=sys.stderr, flush=True)
        if args.out:
            atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
