"""Every extraction method side by side, on the same data with the same metrics.

    python bench/methods.py --data ../shared/data/mnist [--seeds 0 1 2] [--out bench/results]

Architectures: ``paper1`` and ``paper3`` (the paper's, 3 seeds), ``wide128`` (a wider CNN:
32 relu kernels 5x5 stride 2, then 128 sigmoid kernels 5x5, global max-pool, so the softmax
layer reads 128 kernel units; the Odense setting) and ``paper1h12`` (paper1 with a hidden
fully connected layer of 12 sigmoid units, for chaining through a hidden layer).  Full
MNIST: the first 50,000 training images, the 10,000 test images.  Checkpoints are cached
in ``runs/bench-cache/{arch}-seed{seed}.safetensors`` (shared with bench/paper_table.py)
and reused when present.

For every method: rule accuracy, fidelity, coverage, number of rules, literals per rule,
total literals, extraction seconds (extractor + minimisation, without capturing the
activations); the Pareto front of fidelity (higher) against total literals (lower) per
architecture; fidelity at each depth of the chain; the Odense measure (per class, the best
M-of-N rule over at most 3 of the softmax layer's input units, one-vs-rest test accuracy
against the network's one-hot arg-max).  Writes ``methods.json`` and ``methods.md`` into
``--out`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, mean_std, trained_model  # noqa: E402

WIDE_ITERATIONS = 3000
HIDDEN_ITERATIONS = 10_000

METRICS = ("rule_accuracy", "fidelity", "coverage", "terms", "mean_literals", "literals",
           "network_accuracy", "extract_seconds", "total_seconds")


def custom_specs():
    from cnn2logic.model.spec import ConvSpec, ModelSpec

    return {
        "wide128": (ModelSpec(convs=(ConvSpec(32, 5, "relu", stride=2),
                                     ConvSpec(128, 5, "sigmoid")),
                              pool="global-max", name="wide128"), WIDE_ITERATIONS),
        "paper1h12": (ModelSpec(convs=(ConvSpec(10, 27),), hidden=(12,), name="paper1h12"),
                      HIDDEN_ITERATIONS),
    }


def model_for(arch: str, seed: int, data):
    """A trained model (cached) and its training metrics."""
    if arch in ("paper1", "paper3"):
        return trained_model(arch, seed, data)
    spec, iterations = custom_specs()[arch]
    return trained_model(arch, seed, data, spec=spec, iterations=iterations)


def method_grid(arch: str) -> dict[str, dict]:
    """Method label -> ExtractConfig settings, per architecture."""
    if arch == "paper1h12":
        return {"chaining": {"method": "chaining"}}
    # ERIC reads the norm of each kernel's map in the last conv layer itself (2x2 for the
    # paper's networks, 8x8 for wide128), not the pooled value the output layer reads.
    last_conv = {"paper1": "act1", "paper3": "act3", "wide128": "act2"}[arch]
    grid = {
        # The defaults: all units up to 12 (exact), else order 3.  With 128 dense output
        # weights no term of order <= 3 is argmax-sound (bench/scale.py measures the same),
        # so on wide128 every image gets the default class; that is the measurement.
        "approximation": {},
        "mofn": {"method": "mofn"},
        "eric": {"method": "eric", "layer": last_conv},
        "eric (depth 6)": {"method": "eric", "layer": last_conv, "max_depth": 6},
        "pedagogical": {"method": "pedagogical"},
    }
    if arch in ("paper3", "wide128"):
        grid["chaining"] = {"method": "chaining"}
    if arch == "paper3":
        grid["chaining (ERIC thresholds)"] = {"method": "chaining", "chain_threshold": "eric"}
    return grid


def pareto(points: dict[str, tuple[float, float]], floor: float = -1.0) -> set[str]:
    """Labels not dominated in (fidelity higher, literals lower).

    Rule sets no more faithful than ``floor`` (always answering the network's most
    frequent class) are left out: an empty rule set would otherwise always be on the
    front, with zero literals.
    """
    points = {k: v for k, v in points.items() if v[0] > floor}
    front = set()
    for a, (fa, la) in points.items():
        dominated = any((fb >= fa and lb <= la) and (fb > fa or lb < la)
                        for b, (fb, lb) in points.items() if b != a)
        if not dominated:
            front.add(a)
    return front


def constant_fidelity(model, data) -> float:
    """Fidelity of always answering the network's most frequent test prediction."""
    from cnn2logic.model.spec import predict_logits

    x_te, _ = data.test.tensors()
    pred = predict_logits(model, x_te).argmax(1).numpy()
    return round(float(np.bincount(pred).max() / len(pred)), 6)


def mark_pareto(arch_result: dict) -> None:
    """Set ``pareto`` on every method of one architecture (means over seeds)."""
    floor = max(t.get("constant_fidelity", -1.0) for t in arch_result["train"])
    points = {label: (m["summary"]["fidelity"]["mean"], m["summary"]["literals"]["mean"])
              for label, m in arch_result["methods"].items()}
    front = pareto(points, floor)
    arch_result["pareto_floor"] = floor
    for label, m in arch_result["methods"].items():
        m["pareto"] = label in front


def odense(model, data, layer: str, output: str, max_units: int = 3) -> dict:
    """Per output unit, the best M-of-N rule over <= max_units inputs; test accuracy."""
    from cnn2logic.extract.mofn import MofNExtractor
    from cnn2logic.model.spec import predict_logits
    from cnn2logic.extract.layers import output_layer
    from cnn2logic.units import capture

    x_tr, _ = data.train.tensors()
    x_te, y_te = data.test.tensors()
    U_tr = capture(model, layer, x_tr, progress=False).values
    U_te = capture(model, layer, x_te, progress=False).values
    p_tr = predict_logits(model, x_tr).argmax(1).numpy()
    p_te = predict_logits(model, x_te).argmax(1).numpy()
    W, _ = output_layer(model, output, U_tr.shape[1])
    ext = MofNExtractor(beta=0.0).fit(U_tr, p_tr, output=(W, None))  # every N, for the units needed
    X_te = ext.transform(U_te)

    def test_accuracy(c: int, N: int, M: int) -> tuple[float, float]:
        rule = ext.rule_for(c, N, M)
        fires = ext.rules_.replace(rules=(rule,)).fires(X_te)[:, c]
        return (round(float(np.mean(fires == (p_te == c))), 4),
                round(float(np.mean(fires == (y_te.numpy() == c))), 4))

    per_class = []
    for c in range(W.shape[0]):
        N, M, train_err = ext.best_rule(c, max_units)
        vs_net, vs_label = test_accuracy(c, N, M)
        entry = {"class": ext.rules_.head_names[c], "rule": ext.rule_for(c, N, M).format(),
                 "N": N, "M": M, "train_accuracy": round(1 - train_err, 4),
                 "test_accuracy_vs_network": vs_net, "test_accuracy_vs_label": vs_label}
        # The fewest inputs whose best M-of-N rule reaches 99 % on the training images.
        best_err = np.nanmin(ext.errors_[c], axis=1)  # per N
        ok = np.nonzero(best_err <= 0.01)[0]
        if len(ok):
            N99, M99, _ = ext.best_rule(c, int(ok[0]) + 1)
            entry["units_for_99"] = N99
            entry["units_for_99_test_accuracy_vs_network"] = test_accuracy(c, N99, M99)[0]
        else:
            entry["units_for_99"] = None
        per_class.append(entry)
    acc = [e["test_accuracy_vs_network"] for e in per_class]
    needed = [e["units_for_99"] for e in per_class]
    return {"units": U_tr.shape[1], "max_units": max_units, "per_class": per_class,
            "share_at_least_99": round(float(np.mean(np.array(acc) >= 0.99)), 4),
            "mean_accuracy": round(float(np.mean(acc)), 4),
            "units_for_99": needed,
            "median_units_for_99": (float(np.median([n for n in needed if n is not None]))
                                    if any(n is not None for n in needed) else None)}


def odense_internal(model, data, max_units: int = 3) -> dict:
    """The same measure for a hidden layer: each hidden unit's bit from the pooled units."""
    from cnn2logic.extract.mofn import MofNExtractor
    from cnn2logic.units import capture

    x_tr, _ = data.train.tensors()
    x_te, _ = data.test.tensors()
    P_tr = capture(model, "pool", x_tr, progress=False).values
    P_te = capture(model, "pool", x_te, progress=False).values
    H_tr = capture(model, "hidden_act1", x_tr, progress=False).values >= 0.5
    H_te = capture(model, "hidden_act1", x_te, progress=False).values >= 0.5
    W = dict(model.named_modules())["hidden1"].weight.detach().double().numpy()
    ext = MofNExtractor(beta=0.0, max_n=max_units).fit(P_tr, H_tr, output=(W, None))
    X_te = ext.transform(P_te)
    acc = []
    for u in range(W.shape[0]):
        N, M, _ = ext.best_rule(u, max_units)
        rule = ext.rule_for(u, N, M)
        fires = ext.rules_.replace(rules=(rule,)).fires(X_te)[:, u]
        acc.append(round(float(np.mean(fires == H_te[:, u])), 4))
    return {"units": W.shape[0], "inputs": W.shape[1], "max_units": max_units,
            "test_accuracy": acc,
            "share_at_least_99": round(float(np.mean(np.array(acc) >= 0.99)), 4)}


def run_arch(arch: str, seeds, data, train_data, log, labels=None,
             with_odense: bool = True) -> dict:
    from cnn2logic.extract import ExtractConfig, extract_model

    grid = {k: v for k, v in method_grid(arch).items() if labels is None or k in labels}
    out: dict = {"seeds": list(seeds), "methods": {}, "train": []}
    runs: dict[str, list] = {label: [] for label in grid}
    depth: dict[str, list] = {}
    curves: dict[str, list] = {}
    for seed in seeds:
        model, train_metrics = model_for(arch, seed, train_data)
        out["train"].append({"seed": seed, "test_accuracy": train_metrics.get("test_accuracy"),
                             "train_seconds": train_metrics.get("train_seconds"),
                             "constant_fidelity": constant_fidelity(model, data)})
        for label, settings in grid.items():
            log(f"{arch} seed {seed}: {label}")
            t = time.perf_counter()
            res = extract_model(model, data, ExtractConfig(**settings), progress=False,
                                model_name=f"{arch}-seed{seed}")
            total = time.perf_counter() - t
            m = res.metrics
            run = {k: m.get(k) for k in METRICS}
            run["extract_seconds"] = round(res.seconds["extract"] + res.seconds["minimize"], 3)
            run["total_seconds"] = round(total, 3)
            run["literals"] = m.get("literals")
            run["seed"] = seed
            runs[label].append(run)
            chain = res.rules.meta.get("chaining")
            if chain:
                depth.setdefault(label, []).append({"seed": seed, "depth": chain["depth_test"],
                                                    "unit_fidelity": chain["unit_fidelity"]})
            if res.rules.meta.get("mofn"):
                curves.setdefault(label, []).append(
                    [{k: p[k] for k in ("beta", "mean_error", "mean_complexity", "mean_n")}
                     for p in res.rules.meta["mofn"]["curve"]])
            log(f"  fidelity {m['fidelity']:.4f} accuracy {m['rule_accuracy']:.4f} "
                f"rules {m['terms']} ({total:.1f} s)")
        if not with_odense:
            continue
        if arch != "paper1h12":
            log(f"{arch} seed {seed}: odense")
            out.setdefault("odense", []).append({"seed": seed,
                                                 **odense(model, data, "pool", "out")})
        else:
            log(f"{arch} seed {seed}: odense (internal layer)")
            out.setdefault("odense_internal", []).append(
                {"seed": seed, **odense_internal(model, data)})
    summaries = {}
    for label, rs in runs.items():
        summaries[label] = {k: mean_std([r[k] for r in rs]) for k in METRICS}
        out["methods"][label] = {"settings": grid[label], "runs": rs,
                                 "summary": summaries[label]}
    mark_pareto(out)
    if depth:
        out["chaining_depth"] = {}
        for label, per_seed in depth.items():
            n_depth = len(per_seed[0]["depth"])
            out["chaining_depth"][label] = {
                "reads": [d["reads"] for d in per_seed[0]["depth"]],
                "fidelity": [mean_std([s["depth"][d]["fidelity"] for s in per_seed])
                             for d in range(n_depth)],
                "accuracy": [mean_std([s["depth"][d]["accuracy"] for s in per_seed])
                             for d in range(n_depth)],
                "per_seed": per_seed}
    if curves:
        out["mofn_curve"] = curves
    out["network_accuracy"] = mean_std([t["test_accuracy"] for t in out["train"]])
    return out


def markdown(result: dict) -> str:
    lines = []
    order = ["paper1", "paper3", "wide128", "paper1h12"]
    archs = sorted(result["architectures"],
                   key=lambda x: (order.index(x) if x in order else len(order), x))
    for arch in archs:
        a = result["architectures"][arch]
        net = a["network_accuracy"]
        lines += ["", f"**{arch}** (network test accuracy {net['mean']:.4f}, seeds "
                      f"{', '.join(map(str, a['seeds']))}; mean ± std over seeds)", "",
                  f"Pareto: not dominated in (fidelity ↑, literals ↓) among rule sets more "
                  f"faithful than always answering the most frequent class "
                  f"({a.get('pareto_floor', float('nan')):.4f}).", "",
                  "| method | rule accuracy | fidelity | coverage | rules | literals/rule "
                  "| literals | seconds | Pareto |",
                  "|---|---|---|---|---|---|---|---|---|"]

        def f(s, digits=4):
            if s is None:
                return "–"
            if s["std"]:
                return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"
            return f"{s['mean']:.{digits}f}"

        for label, m in a["methods"].items():
            s = m["summary"]
            lines.append(
                f"| {label} | {f(s['rule_accuracy'])} | {f(s['fidelity'])} | "
                f"{f(s['coverage'], 3)} | {f(s['terms'], 0)} | {f(s['mean_literals'], 2)} | "
                f"{f(s['literals'], 0)} | {f(s['extract_seconds'], 1)} | "
                f"{'**yes**' if m['pareto'] else ''} |")
        for label, d in a.get("chaining_depth", {}).items():
            cells = ", ".join(f"depth {i} ({r}): {f(fid, 3)}"
                              for i, (r, fid) in enumerate(zip(d["reads"], d["fidelity"])))
            lines += ["", f"{label} fidelity per depth: {cells}"]
        if a.get("odense"):
            shares = [o["share_at_least_99"] for o in a["odense"]]
            units = a["odense"][0]["units"]
            lines += ["", f"Odense measure (best M-of-N rule over ≤ 3 of {units} units per "
                          "class, one-vs-rest test accuracy vs the network): share of "
                          f"classes ≥ 0.99: {', '.join(f'{s:.2f}' for s in shares)} "
                          "(per seed); mean accuracy "
                          f"{', '.join(str(o['mean_accuracy']) for o in a['odense'])}"]
            if all("units_for_99" in o for o in a["odense"]):
                lines += ["", "Inputs an M-of-N rule needs to reach 0.99 one-vs-rest training "
                              "accuracy, per class (per seed; – : never): "
                          + "; ".join(", ".join("–" if n is None else str(n)
                                                for n in o["units_for_99"])
                                      for o in a["odense"])]
        if a.get("odense_internal"):
            o = a["odense_internal"]
            lines += ["", "Odense measure on the hidden layer (each hidden unit's bit from ≤ 3 "
                          "pooled units): share of units ≥ 0.99: "
                          + ", ".join(f"{x['share_at_least_99']:.2f}" for x in o)]
    return "\n".join(lines).lstrip("\n") + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/mnist")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--archs", nargs="+", default=["paper1", "paper3", "wide128", "paper1h12"])
    p.add_argument("--wide-seeds", type=int, nargs="+", default=[0],
                   help="seeds for wide128 (one by default: it trains for minutes)")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    p.add_argument("--train-only", action="store_true", help="fill the checkpoint cache only")
    p.add_argument("--methods", nargs="+", default=None,
                   help="run only these method labels (as in the table)")
    p.add_argument("--merge", action="store_true",
                   help="with --methods: replace those methods' entries in an existing "
                        "methods.json (other methods and the Odense measures are kept)")
    p.add_argument("--only-odense", action="store_true",
                   help="recompute only the Odense measures (and the Pareto marks) of an "
                        "existing methods.json")
    p.add_argument("--train-size", type=int, default=50_000,
                   help="training images (checkpoints are always trained on 50,000)")
    p.add_argument("--test-size", type=int, default=None, help="test images (default all)")
    args = p.parse_args()
    torch.set_flush_denormal(True)
    from cnn2logic._io import atomic_write_text
    from cnn2logic.data import load_data

    data = load_data(args.data, train_size=50_000)
    train_data = data
    if args.train_size != 50_000 or args.test_size is not None:
        train_data = data  # checkpoints: always the paper's 50,000 images
        data = load_data(args.data, train_size=args.train_size, test_size=args.test_size)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {msg}", file=sys.stderr, flush=True)

    if args.only_odense:
        # Recompute the Odense measures into an existing methods.json (same checkpoints).
        path = Path(args.out) / "methods.json"
        result = json.loads(path.read_text())
        for arch, a in result["architectures"].items():
            for key, fn in (("odense", lambda m: odense(m, data, "pool", "out")),
                            ("odense_internal", lambda m: odense_internal(m, data))):
                if key in a:
                    log(f"{arch}: {key}")
                    a[key] = [{"seed": e["seed"], **fn(model_for(arch, e["seed"],
                                                                  train_data)[0])}
                              for e in a[key]]
        for arch, a in result["architectures"].items():
            for t in a["train"]:
                t["constant_fidelity"] = constant_fidelity(
                    model_for(arch, t["seed"], train_data)[0], data)
            mark_pareto(a)
        result["odense_command"] = "python bench/methods.py " + " ".join(
            shlex.quote(x) for x in sys.argv[1:])
        atomic_write_text(path, json.dumps(result, indent=1, sort_keys=True) + "\n")
        atomic_write_text(Path(args.out) / "methods.md", markdown(result))
        print(markdown(result))
        return
    if args.merge:
        path = Path(args.out) / "methods.json"
        result = json.loads(path.read_text())
        for arch in args.archs:
            old = result["architectures"][arch]
            labels = [x for x in (args.methods or method_grid(arch)) if x in method_grid(arch)]
            if not labels:
                continue
            new = run_arch(arch, old["seeds"], data, train_data, log, labels,
                           with_odense=False)
            old["methods"].update(new["methods"])
            for key in ("chaining_depth", "mofn_curve"):
                if key in new:
                    old.setdefault(key, {}).update(new[key])
            mark_pareto(old)
        result.setdefault("merged_commands", []).append(
            "python bench/methods.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]))
        atomic_write_text(path, json.dumps(result, indent=1, sort_keys=True) + "\n")
        atomic_write_text(Path(args.out) / "methods.md", markdown(result))
        print(markdown(result))
        return
    if args.train_only:
        for arch in args.archs:
            for seed in (args.wide_seeds if arch == "wide128" else args.seeds):
                log(f"train {arch} seed {seed}")
                model_for(arch, seed, train_data)
        return
    result = {"command": "python bench/methods.py " + " ".join(shlex.quote(a)
                                                                for a in sys.argv[1:]),
              "data": args.data, "train_images": len(data.train),
              "test_images": len(data.test), "torch_threads": torch.get_num_threads(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "architectures": {}}
    for arch in args.archs:
        seeds = args.wide_seeds if arch == "wide128" else args.seeds
        result["architectures"][arch] = run_arch(arch, seeds, data, train_data, log)
        out = Path(args.out)
        atomic_write_text(out / "methods.json",
                          json.dumps(result, indent=1, sort_keys=True) + "\n")
        atomic_write_text(out / "methods.md", markdown(result))
    result["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_text(Path(args.out) / "methods.json",
                      json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
