"""Logic-friendly training, measured: fine-tuning any CNN for logic, and training from scratch.

**Fine-tuning** (the default; :func:`cnn2logic.model.tuning.tune_model`, what ``cnn2logic
tune`` runs): for each network of ``bench/_readable_nets.py`` (paper1, paper3, scale128,
relu_bn; full MNIST, the cached original checkpoints, trained when missing) and seed, the
original accuracy, the tuned accuracy, the program size (rules, literals), the fidelity of
``extract``'s default method on the reloaded checkpoint (every test image), seconds and
iterations; ``--recipes`` compares recipes (``name`` or ``name:key=value,...`` with
:class:`~cnn2logic.model.tuning.TuneConfig` fields) and ``--budgets`` gives the
accuracy-against-program-size curve (max rules; literals 10 per rule)::

    OMP_NUM_THREADS=2 python bench/logic_training.py --nets paper1 paper3 scale128 relu_bn \
        --seeds 0 --out bench/results/logic_training.json

**From scratch** (``--scratch``, or any run given ``--arch`` / ``--modes``): for each
architecture (paper1, paper3) and each training mode (ordinary training, and the
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
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _readable_nets, _common

from cnn2logic._io import atomic_write_text  # noqa: E402
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


def scratch_main(argv: list[str] | None = None) -> int:
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


#: Named recipes: TuneConfig fields over the defaults (docs/logic_training.md).
RECIPES = {
    "default": {},
    "ste-linear": {"warm_share": 1.0},          # STE bits + distillation only, list at the end
    "list-only": {"warm_share": 0.0},           # the list from the start
    "no-distill": {"distill": 0.0},
    "teacher-list": {"target": "teacher"},      # the list fitted to the original predictions
}


def parse_recipe(text: str) -> tuple[str, dict]:
    """``"default"`` or ``"default:iterations=2000,lr=0.001"`` -> (name, TuneConfig kwargs)."""
    name, _, rest = text.partition(":")
    if name not in RECIPES:
        raise SystemExit(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
    opts = dict(RECIPES[name])
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        opts[key.strip()] = value if key.strip() in ("target", "warm_head", "map_bits") else (
            int(value) if value.isdigit() else float(value))
    return name, opts


def tune_one(net: str, seed: int, data, recipe: str, extra: dict | None = None,
             workdir: Path | None = None) -> dict:
    """Tune one cached network with one recipe; reload the checkpoint and extract from it."""
    import tempfile

    from _readable_nets import FACTORIES, FACTORY_KWARGS, LAYER, OUTPUT, model_for
    from cnn2logic.model import load_checkpoint, load_model
    from cnn2logic.model.spec import predict_logits
    from cnn2logic.model.tuning import TuneConfig, save_tuned, tune_model

    model, metrics = model_for(net, seed, data)
    name, opts = parse_recipe(recipe)
    opts.update(extra or {})
    config = TuneConfig(seed=seed, progress=False, **opts)
    t0 = time.perf_counter()
    tuned, m = tune_model(model, data, LAYER[net], OUTPUT[net], config)
    seconds = time.perf_counter() - t0
    factory = FACTORIES.get(net)
    kwargs = FACTORY_KWARGS.get(net)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "tuned.safetensors"
        save_tuned(tuned, path, layer=LAYER[net], output=OUTPUT[net], factory=factory,
                   factory_kwargs=kwargs)
        again = (load_model(path, factory=factory, factory_kwargs=kwargs) if factory
                 else load_checkpoint(path))
    x_te, _ = data.test.tensors()
    exact = bool(torch.equal(predict_logits(again, x_te), predict_logits(tuned, x_te)))
    t1 = time.perf_counter()
    res = extract_model(again, data, ExtractConfig(layer=LAYER[net], output=OUTPUT[net]),
                        progress=False)
    return {
        "net": net, "seed": seed, "recipe": recipe, "options": opts,
        "original_accuracy": m["original_test_accuracy"],
        "original_iterations": metrics.get("iterations"),
        "tuned_accuracy": m["test_accuracy"],
        "tuned_train_accuracy": m["train_accuracy"],
        "bits_ceiling_train": m["bits_ceiling_train"],
        "bits_lookup_test": m["bits_lookup_test"],
        "kernels": m["kernels"],
        "kernels_read": m["kernels_read"],
        "levels": m["levels"],
        "bits_read": m["bits_read"],
        "variables": list(res.rules.variables[j].name for j in range(min(4, len(res.rules.variables)))),
        "accuracy_drop": round(m["original_test_accuracy"] - m["test_accuracy"], 6),
        "rules": len(res.rules.rules),
        "literals": sum(len(r.body) for r in res.rules.rules),
        "fidelity": res.metrics["fidelity"],
        "rule_accuracy": res.metrics["rule_accuracy"],
        "reload_exact": exact,
        "iterations": m["iterations"],
        "kept_round": m["kept_round"],
        "recoveries": m["recoveries"],
        "recentred_units": m["recentred_units"],
        "tune_seconds": round(seconds, 1),
        "extract_seconds": round(time.perf_counter() - t1, 1),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--scratch" in argv or "--arch" in argv or "--modes" in argv:  # the older command
        return scratch_main([a for a in argv if a != "--scratch"])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/mnist")
    ap.add_argument("--train-size", type=int, default=50_000)
    ap.add_argument("--test-size", type=int, default=None)
    ap.add_argument("--nets", nargs="+", default=["paper1", "paper3", "scale128", "relu_bn"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--recipes", nargs="+", default=["default"])
    ap.add_argument("--budgets", type=int, nargs="*", default=[],
                    help="max rules of the curve's points (first seed, first recipe)")
    ap.add_argument("--curve-only", action="store_true",
                    help="only the --budgets curve (on the first seed)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="also write the JSON here (after each run)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    data = load_data(args.data, train_size=args.train_size, test_size=args.test_size)
    doc: dict = {"command": "python bench/logic_training.py " + " ".join(argv),
                 "data": data.source, "train_images": len(data.train),
                 "test_images": len(data.test), "paper": PAPER_FIGURES, "runs": [],
                 "curve": []}

    def save():
        if args.out:
            atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")

    for seed in ([] if args.curve_only else args.seeds):
        for net in args.nets:
            for recipe in args.recipes:
                r = tune_one(net, seed, data, recipe)
                doc["runs"].append(r)
                save()
                print(f"# {net} seed {seed} {recipe}: original {r['original_accuracy']:.4f} "
                      f"tuned {r['tuned_accuracy']:.4f} rules {r['rules']} literals "
                      f"{r['literals']} fidelity {r['fidelity']:.4f} "
                      f"{r['tune_seconds']:.0f} s", file=sys.stderr, flush=True)
    for net in args.nets:
        for budget in args.budgets:
            r = tune_one(net, args.seeds[0], data, args.recipes[0],
                         {"max_rules": budget, "max_literals": 10 * budget})
            r["budget_rules"] = budget
            doc["curve"].append(r)
            save()
            print(f"# curve {net} {budget} rules: tuned {r['tuned_accuracy']:.4f} "
                  f"({r['rules']} rules, {r['literals']} literals)", file=sys.stderr,
                  flush=True)
    doc["summary"] = summarise(doc["runs"])
    save()
    print(json.dumps(doc, indent=1))
    return 0


def summarise(runs: list[dict]) -> dict:
    """Mean over seeds per network and recipe, with the issue's targets."""
    out: dict = {}
    for key in sorted({(r["net"], r["recipe"]) for r in runs}):
        rs = [r for r in runs if (r["net"], r["recipe"]) == key]
        mean = lambda f: round(sum(r[f] for r in rs) / len(rs), 4)  # noqa: E731
        paper = PAPER_FIGURES.get(key[0], {}).get("network_accuracy")
        s = {"seeds": [r["seed"] for r in rs], "original_accuracy": mean("original_accuracy"),
             "tuned_accuracy": mean("tuned_accuracy"), "accuracy_drop": mean("accuracy_drop"),
             "rules": mean("rules"), "literals": mean("literals"), "fidelity": mean("fidelity"),
             "tune_seconds": mean("tune_seconds"), "iterations": mean("iterations")}
        s["targets"] = {
            "drop<=0.005": s["accuracy_drop"] <= 0.005,
            "fidelity>=0.995": min(r["fidelity"] for r in rs) >= 0.995,
            "rules<=30,literals<=300": all(r["rules"] <= 30 and r["literals"] <= 300
                                           for r in rs),
            "no_collapse": all(r["tuned_accuracy"] > 0.2 for r in rs),
            "iterations<=original": all(r["original_iterations"] is None
                                        or r["iterations"] <= r["original_iterations"]
                                        for r in rs),
        }
        if paper:
            s["targets"]["paper_accuracy"] = s["tuned_accuracy"] >= paper
        out[f"{key[0]}/{key[1]}"] = s
    return out


if __name__ == "__main__":
    sys.exit(main())
