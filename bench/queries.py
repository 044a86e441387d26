"""Time to export logic programs and to answer each query; prints JSON.

    python bench/queries.py [--data ../shared/data/mnist] [--repeat 5] [--quick]

Two rule bases:

``paper1``
    The paper's configuration 1 trained with its settings (10,000 iterations, cached in
    runs/bench-cache), rules extracted by ``cnn2logic.extract.run`` (minimised), exported with
    the binarised activations of the 10,000 MNIST test images (the embedded 1,000 test
    images when full MNIST is absent; the JSON says which).
``synthetic``
    512 kernels x 1,000 classes, 3 random terms of 6-10 literals per class (seeded), with
    1,000 images, each built to satisfy one random term.

For each: seconds to export (.lp and .pl text, and the files), then the median wall time
(and CPU time of the process) over ``--repeat`` runs of every query through the Python
API, starting from the .lp file on disk (reading and splitting it included): implies,
conflicts, necessary, explain, flip, and (not a query, for scale) the predictions of all
images.  On a shared machine other jobs inflate wall times; the CPU times and the load
average are recorded beside them.  Targets from issue 3: under
0.2 s per paper1 query, under 5 s per synthetic query.  ``--quick``: a 64 x 50 synthetic
base and the embedded data, for a smoke test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import REPO, emit  # noqa: E402

TARGETS = {"paper1": 0.2, "synthetic": 5.0}


def synthetic(n_kernels: int = 512, n_classes: int = 1000, terms: int = 3,
              n_images: int = 1000, seed: int = 0):
    """A random rule base and images on which its rules fire (deterministic per seed)."""
    from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
    from cnn2logic.units import BinaryCodes

    rng = np.random.default_rng(seed)
    variables = tuple(Variable(f"k{i}", "conv5", i) for i in range(n_kernels))
    heads = tuple(Head(f"class{c}", "class", "out", c) for c in range(n_classes))
    rules, bodies = [], []
    for c in range(n_classes):
        for _ in range(terms):
            size = int(rng.integers(6, 11))
            idx = rng.choice(n_kernels, size=size, replace=False)
            pol = rng.random(size) < 0.6
            bodies.append((idx, pol))
            rules.append(Rule(heads[c].name, tuple(Literal(variables[i].name, bool(p))
                                                   for i, p in zip(idx, pol))))
    bits = rng.random((n_images, n_kernels)) < 0.05
    for row in bits:
        idx, pol = bodies[int(rng.integers(len(bodies)))]
        row[idx] = pol
    rs = RuleSet(variables, heads, tuple(rules), default=heads[0].name,
                 meta={"model": "synthetic", "data": f"{n_images} random images",
                       "settings": {"seed": seed, "terms_per_class": terms}})
    labels = rs.predict_index(bits)
    codes = BinaryCodes(bits, variables, tuple(h.name for h in heads), labels, labels)
    return rs, codes


def paper1(data_dir: Path | None, quick: bool):
    """Extracted paper1 rules and the test split's codes; the data actually used."""
    import torch

    from _common import trained_model
    from cnn2logic.data import load_data
    from cnn2logic.extract import ExtractConfig, extract_model
    from cnn2logic.model.training import TrainConfig, train

    torch.set_num_threads(1)
    full = data_dir is not None and data_dir.is_dir() and not quick
    data = load_data(data_dir if full else "embedded")
    source = str(data_dir) if full else "embedded"
    if full:
        # The shared cache holds networks trained with the paper's settings on full MNIST.
        model, _ = trained_model("paper1", 0, data)
    else:
        model, _ = train("paper1", data, TrainConfig(iterations=2000, progress=False))
    result = extract_model(model, data, ExtractConfig(), progress=False,
                           model_name="paper1-seed0")
    return result.rules, result.test_codes, source


def timed(fn, repeat: int) -> tuple[float, object, float]:
    """Median wall seconds, the last result, and median CPU seconds of this process."""
    times, cpu, out = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), out, statistics.median(cpu)


def bench(name: str, rules, codes, repeat: int, cls: str, to: str, image: str) -> dict:
    from cnn2logic import query
    from cnn2logic.export.asp import to_asp
    from cnn2logic.export.logic import write_program
    from cnn2logic.export.prolog import to_prolog

    out: dict = {"kernels": len(rules.variables), "classes": len(rules.heads),
                 "rules": len(rules.rules), "literals": sum(len(r.body) for r in rules.rules),
                 "images": len(codes), "target_seconds": TARGETS[name]}
    export_reps = max(1, min(repeat, 3))
    out["export_seconds"] = {
        "asp_text": round(timed(lambda: to_asp(rules, codes), export_reps)[0], 4),
        "prolog_text": round(timed(lambda: to_prolog(rules, codes), export_reps)[0], 4),
    }
    with tempfile.TemporaryDirectory() as tmp:
        lp, pl = Path(tmp) / "rules.lp", Path(tmp) / "rules.pl"
        out["export_seconds"]["asp_file"] = round(
            timed(lambda: write_program(lp, rules, codes), export_reps)[0], 4)
        out["export_seconds"]["prolog_file"] = round(
            timed(lambda: write_program(pl, rules, codes), export_reps)[0], 4)
        out["program_bytes"] = {"lp": lp.stat().st_size, "pl": pl.stat().st_size}
        queries = {
            f"implies --class {cls}": lambda: query.implies(lp, cls),
            "conflicts": lambda: query.conflicts(lp),
            f"necessary --class {cls}": lambda: query.necessary(lp, cls),
            f"explain --image {image}": lambda: query.explain(lp, image),
            f"flip --image {image} --to {to}": lambda: query.flip(lp, image, to),
        }
        seconds, cpu, answers = {}, {}, {}
        for label, fn in queries.items():
            t, result, c = timed(fn, repeat)
            seconds[label], cpu[label] = round(t, 4), round(c, 4)
            answers[label] = _summary(result)
        out["query_seconds"] = seconds
        out["query_cpu_seconds"] = cpu
        out["answers"] = answers
        out["max_query_seconds"] = max(seconds.values())
        out["meets_target"] = out["max_query_seconds"] < TARGETS[name]
        t, preds, _ = timed(lambda: query.predictions(lp), 1)
        out["all_predictions_seconds"] = round(t, 4)
        expected = dict(zip(codes.ids, rules.predict(codes.bits)))
        out["predictions_agree_with_python"] = preds == expected
    return out


def _summary(result) -> dict:
    d = result.to_dict()
    small = {}
    for key, value in d.items():
        if key == "seconds":
            continue
        small[key] = len(value) if isinstance(value, list) else value
    return small


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)

    import clingo

    report: dict = {"clingo": clingo.__version__, "repeat": args.repeat,
                    "command": "python bench/queries.py" + (" --quick" if args.quick else ""),
                    "cpus": os.cpu_count(),
                    # Other jobs on a shared machine inflate wall times; CPU times less so.
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    rules, codes, source = paper1(args.data, args.quick)
    image = codes.ids[17]
    report["paper1"] = {"data": source, **bench("paper1", rules, codes, args.repeat, "3", "8",
                                                image)}
    sizes = dict(n_kernels=64, n_classes=50, n_images=200) if args.quick else {}
    srules, scodes = synthetic(**sizes)
    report["synthetic"] = bench("synthetic", srules, scodes, max(1, min(args.repeat, 3)),
                                "class17", "class3", scodes.ids[0])
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    emit(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
