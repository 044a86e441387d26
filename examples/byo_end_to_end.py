"""Bring your own CNN, end to end: train → extract → export → query → graph → report.

The model is :mod:`examples.relu_bn_cnn` (ReLU, BatchNorm, global average pooling, 48
kernels in the last conv layer by default), a plain ``torch.nn.Module`` that cnn2logic
only knows through ``--factory``.  Every step is a ``cnn2logic`` command (printed before it
runs, so the script doubles as the recipe), each given the same ``--factory`` and
``--factory-kwargs``.

Run on the embedded MNIST subset (about 2 minutes on 2 cores)::

    python examples/byo_end_to_end.py --out runs/byo

or faster, for a smoke test::

    python examples/byo_end_to_end.py --out /tmp/byo --iterations 150 --kernels 32 \\
        --width 8 --min-support 5 --samples 2

Kernel units: the ``gap`` layer (one value per kernel, what ``fc`` reads), binarised at
the middle of each kernel's range over the training images (``minmax``; ReLU/BatchNorm
units are not in [0, 1]).
Rules: the approximation method, data-limited (the worst case over the training codes a
term covers; over all 48 free kernels no short term is sound), order ≤ 3.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FACTORY = f"{HERE / 'relu_bn_cnn.py'}:make_net"


def run(cmd: list[str]) -> None:
    """Print a cnn2logic command and run it in this process; stop on failure."""
    from cnn2logic.cli import main

    print("$ cnn2logic " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    rc = main(cmd)
    if rc != 0:
        raise SystemExit(f"step failed with exit code {rc}: cnn2logic {cmd[0]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/byo")
    ap.add_argument("--data", default="embedded")
    ap.add_argument("--kernels", type=int, default=48)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--train-size", type=int, default=None)
    ap.add_argument("--test-size", type=int, default=None)
    ap.add_argument("--threshold", default="minmax")
    ap.add_argument("--order", type=int, default=3)
    ap.add_argument("--min-support", type=int, default=10)
    ap.add_argument("--samples", type=int, default=20, help="SmoothGrad samples in the report")
    ap.add_argument("--reuse", action="store_true",
                    help="keep an existing checkpoint / rules.json in --out instead of redoing "
                         "the training / extraction")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    kwargs = json.dumps({"kernels": args.kernels, "width": args.width})
    model_args = ["--factory", FACTORY, "--factory-kwargs", kwargs]
    sizes: list[str] = ["--data", args.data]
    if args.train_size:
        sizes += ["--train-size", str(args.train_size)]
    if args.test_size:
        sizes += ["--test-size", str(args.test_size)]
    ckpt = out / "model.safetensors"
    ex = out / "extract"

    print("[1/6] train the user's CNN")
    if args.reuse and ckpt.is_file():
        print(f"(reusing {ckpt})")
    else:
        run(["train", *model_args, *sizes, "--iterations", str(args.iterations), "--out",
             str(ckpt), "--no-progress"])
    print("[2/6] extract rules over the pooled kernel units of its last conv layer")
    if args.reuse and (ex / "rules.json").is_file():
        print(f"(reusing {ex / 'rules.json'})")
    else:
        run(["extract", str(ckpt), *model_args, *sizes, "--layer", "gap", "--output", "fc",
             "--threshold", args.threshold, "--order", str(args.order), "--data-limited",
             "--min-support", str(args.min_support), "--out", str(ex), "--no-progress"])
    print("[3/6] export the rules with the test images' activations as an ASP program")
    run(["export", str(ex / "rules.json"), "--activations", str(ex / "codes-test.npz"),
         "--out", str(out / "rules.lp")])
    run(["export", str(ex / "rules.json"), "--out", str(out / "rules.pl")])
    print("[4/6] query it with clingo")
    from cnn2logic.rules import load_rules

    rules = load_rules(ex / "rules.json")
    heads = [r.head for r in rules.rules]
    cls = max(set(heads), key=lambda h: (heads.count(h), h)) if heads else rules.head_names[0]
    run(["query", str(out / "rules.lp"), "implies", "--class", cls, "--limit", "5"])
    run(["query", str(out / "rules.lp"), "explain", "--image", "0"])
    print("[5/6] kernel-relation graph")
    run(["graph", str(ex / "rules.json"), "--out", str(out / "graph")])
    print("[6/6] HTML report: every literal with its kernel's SmoothGrad image")
    run(["report", str(ckpt), str(ex / "rules.json"), *model_args, *sizes, "--visuals",
         str(out / "visuals"), "--samples", str(args.samples), "--title", "Bring your own CNN",
         "--out", str(out / "report.html"), "--no-progress"])
    m = rules.meta.get("metrics", {})
    print(f"network accuracy {m.get('network_accuracy')}, rule accuracy "
          f"{m.get('rule_accuracy')}, fidelity {m.get('fidelity')}, {m.get('terms')} terms")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
