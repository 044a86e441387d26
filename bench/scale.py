"""Scale: 128 and 512 kernels in the last conv layer, end to end, with time and memory.

Models (briefly trained, not random): conv 16@5x5/2 ReLU → conv K@3x3/2 sigmoid →
global max-pool → ``binarize`` (logic-friendly straight-through units) → linear 10,
trained for ``--iterations`` steps.  Two output layers are measured:

``dense``
    plain training.  No term of order ≤ 3 is sound for either output treatment: every
    other kernel is a free variable whose worst case no three literals can outweigh
    (measured: 0 terms, and how long it takes to find out).
``positive``
    a logic-friendly head: training adds ``--neg`` × (sum of negative output weights) and
    ``--l1`` × (sum of |weights|); afterwards negative weights and weights below
    ``--prune`` × the largest are set to 0 (the approximation method's "drop variables
    with tiny weights"; accuracy before and after is reported).  Each class is then
    evidence from fewer kernels, and per-logit (one-vs-rest) terms of order ≤ 3 exist for
    some classes; a class whose bias is ≥ 0 gets the constant-true term.  As a classifier
    these rules are poor (many classes fire at once): this run measures what each stage
    costs at this size, not rule quality.

Measured per K:

* capture: the training split streamed in batches of 500 from the IDX files and binarised
  on the fly (``cnn2logic.units.shards``), in a fresh process, peak resident memory above the
  process's baseline (``VmHWM``) for 10,000 images and for the whole split: memory that
  grows only by the codes (not by the images) means the capture is bounded;
* extraction: approximation method, order 3, per-logit and argmax-sound, 10 classes
  (per-logit on the positive head is the rule set carried further, at most
  ``--max-terms`` per class, the shortest first: ranking and evaluating a rule set cost
  images × rules);
* minimisation (espresso, exact), export (ASP with the test split's activations) and the
  queries ``implies``, ``necessary``, ``explain``, ``conflicts`` (with ``data=False`` and
  with the data) and ``predictions`` (every rule on every test image) on the exported
  program.

::

    OMP_NUM_THREADS=1 python bench/scale.py --data ../shared/data/mnist --out runs/scale.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import vm_bytes  # noqa: E402

from cnn2logic._io import atomic_write_text
from cnn2logic.data import load_data
from cnn2logic.model.spec import ConvSpec, ModelSpec, load_checkpoint, save_checkpoint
from cnn2logic.model.training import TrainConfig, train


def spec_for(kernels: int) -> ModelSpec:
    return ModelSpec(convs=(ConvSpec(16, 5, "relu", stride=2, padding=2),
                            ConvSpec(kernels, 3, "sigmoid", stride=2, padding=1)),
                     pool="global-max", binary_units="ste", name=f"scale{kernels}")


def _capture_child(ckpt: str, source: str, size: int | None, conn) -> None:  # pragma: no cover
    torch.set_num_threads(1)
    from cnn2logic.data import iter_batches
    from cnn2logic.units import capture_shard

    model = load_checkpoint(ckpt)
    # warm up: one batch through the model, so the baseline includes torch's own buffers
    capture_shard(model, "pool", source=source, split="train", size=500, threshold="half")
    next(iter(iter_batches(source, "train", 0, 500)))
    base = vm_bytes("VmRSS")
    t = time.perf_counter()
    shard = capture_shard(model, "pool", source=source, split="train", size=size,
                          threshold="half", batch_size=500)
    seconds = time.perf_counter() - t
    conn.send({"images": len(shard), "seconds": round(seconds, 2),
               "peak_above_baseline_mb": round((vm_bytes("VmHWM") - base) / 2 ** 20, 1),
               "output_bits_mb": round(len(shard) * len(shard.names) / 8 / 2 ** 20, 2)})
    conn.close()


def capture_memory(ckpt: Path, source: str, size: int | None) -> dict:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_capture_child, args=(str(ckpt), source, size, child))
    proc.start()
    child.close()
    out = parent.recv()
    proc.join()
    return out


def in_memory_reference(ckpt: Path, source: str) -> dict:
    """For contrast: load the whole split and capture float units in memory."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_in_memory_child, args=(str(ckpt), source, child))
    proc.start()
    child.close()
    out = parent.recv()
    proc.join()
    return out


def _in_memory_child(ckpt: str, source: str, conn) -> None:  # pragma: no cover
    torch.set_num_threads(1)
    from cnn2logic.units import capture

    model = load_checkpoint(ckpt)
    capture(model, "pool", torch.zeros(500, 1, 28, 28), progress=False)
    base = vm_bytes("VmRSS")
    d = load_data(source)
    units = capture(model, "pool", d.train.images, progress=False)
    conn.send({"images": len(units.values),
               "peak_above_baseline_mb": round((vm_bytes("VmHWM") - base) / 2 ** 20, 1)})
    conn.close()


def _query_child(lp: str, name: str, qargs: tuple, qkwargs: dict,
                 conn) -> None:  # pragma: no cover
    from cnn2logic import query

    t = time.perf_counter()
    try:
        getattr(query, name)(lp, *qargs, **qkwargs)
        conn.send(round(time.perf_counter() - t, 3))
    except Exception as exc:  # reported, not raised
        conn.send(f"error: {exc.__class__.__name__}: {str(exc)[:200]}")
    conn.close()


def query_in_child(lp: Path, name: str, qargs: tuple, limit: float,
                   qkwargs: dict | None = None) -> float | str:
    """Seconds one query takes in a fresh process, or a note when it passes ``limit``."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_query_child, args=(str(lp), name, qargs, qkwargs or {}, child))
    proc.start()
    child.close()
    try:
        if parent.poll(limit):
            return parent.recv()
        return f"> {limit:g} s (stopped)"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()


def prune_head(model, fraction: float) -> int:
    """Zero negative output weights and those below ``fraction`` of the largest."""
    with torch.no_grad():
        W = model.out.weight
        W.mul_((W >= fraction * W.max()).to(W.dtype) * (W > 0).to(W.dtype))
        return int((W != 0).sum())


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - t, 3)


def run_kernels(kernels: int, data, source: str, args, workdir: Path) -> dict:
    from cnn2logic.export.asp import to_asp
    from cnn2logic.extract.approximation import ApproximationExtractor
    from cnn2logic.minimize import minimize_ruleset
    from cnn2logic.extract.layers import output_layer
    from cnn2logic.units import codes_for

    row: dict = {"kernels": kernels}
    l1, neg = args.l1, args.neg

    def penalty(m, _x, _logits):
        w = m.out.weight
        return neg * torch.relu(-w).sum() + l1 * w.abs().sum()

    def trained(name: str, extra) -> tuple:
        """Train, or reuse a checkpoint (and its test accuracy) from --cache."""
        path = Path(args.cache) / f"scale{kernels}-{name}-{args.iterations}.safetensors" \
            if args.cache else None
        if path is not None and path.is_file():
            m = load_checkpoint(path)
            return m, {"test_accuracy": json.loads(path.with_suffix(".json").read_text()),
                       "train_seconds": None}
        m, tm_ = train(spec_for(kernels), data,
                       TrainConfig(iterations=args.iterations, seed=0, progress=False,
                                   binary_units="ste"), extra_loss=extra)
        if path is not None:
            save_checkpoint(m, path)
            path.with_suffix(".json").write_text(json.dumps(tm_["test_accuracy"]))
        return m, tm_

    dense_model, dense_tm = trained("dense", None)
    model, tm = trained("positive", penalty)
    row["train"] = {"iterations": args.iterations, "seconds": tm["train_seconds"],
                    "l1": l1, "neg": neg,
                    "network_accuracy_dense_head": dense_tm["test_accuracy"],
                    "network_accuracy_positive_head_before_pruning": tm["test_accuracy"]}
    W, b = output_layer(dense_model, "out", kernels)
    dense = {}
    for mode in ("argmax", "per-logit"):
        ext, sec = timed(ApproximationExtractor(order=3, mode=mode).fit, W, b)
        dense[mode] = {"terms": int(sum(ext.stats_["terms_found"].values())), "seconds": sec}
    row["extract_dense_head"] = dense
    row["output_weights_kept"] = prune_head(model, args.prune)
    from cnn2logic.model.training import accuracy

    row["network_accuracy_positive_head"] = accuracy(model, data.test)
    ckpt = workdir / f"scale{kernels}.safetensors"
    save_checkpoint(model, ckpt)
    # capture: streamed from the files, in fresh processes
    row["capture_10k"] = capture_memory(ckpt, source, 10_000)
    row["capture_full"] = capture_memory(ckpt, source, None)
    if args.in_memory_reference:
        row["capture_in_memory_reference"] = in_memory_reference(ckpt, source)
    (train_codes, _, th), t_train = timed(codes_for, model, "pool", data.train, progress=False,
                                          id_prefix="train")
    (test_codes, _, _), t_test = timed(codes_for, model, "pool", data.test, th, progress=False)
    row["capture_in_process_seconds"] = {"train": t_train, "test": t_test}
    W, b = output_layer(model, "out", kernels)
    from cnn2logic.rules import Head

    heads = tuple(Head(c, "class", "out", i) for i, c in enumerate(train_codes.classes))
    extraction = {}
    best = None
    for mode in ("per-logit", "argmax"):
        # the search alone, all 10 classes; then at most --max-terms per class are kept
        # (the shortest; the data ranking comes below)
        ext = ApproximationExtractor(order=3, mode=mode, max_terms=args.max_terms)
        _, sec = timed(ext.fit, W, b, variables=train_codes.variables, heads=heads)
        n_terms = int(sum(ext.stats_["terms_found"].values()))
        extraction[mode] = {"terms": n_terms, "kept": len(ext.rules_.rules), "seconds": sec,
                            "search_seconds": round(ext.stats_["seconds"], 3),
                            "terms_per_class": ext.stats_["terms_found"]}
        if n_terms and best is None:
            best = (mode, ext.rules_)
    row["extract_positive_head"] = extraction
    if best is None:
        return row
    mode, rules = best
    (minimized, report), sec = timed(minimize_ruleset, rules, timeout=args.minimize_timeout)
    from cnn2logic.evaluate import evaluate_rules, rank_rules

    sample = slice(0, args.rank_images)
    ranked, rank_sec = timed(rank_rules, minimized, train_codes.bits[sample],
                             train_codes.predictions[sample])
    row["rank_seconds"] = {"images": len(train_codes.bits[sample]), "seconds": rank_sec}
    m = evaluate_rules(ranked, test_codes.bits, test_codes.labels, test_codes.predictions)
    # the Python evaluator on the same rules and images as the data-wide queries below
    _, row["python_predict_seconds"] = timed(ranked.predict, test_codes.bits)
    row["minimize"] = {"mode": mode, "terms_before": len(rules.rules),
                       "terms_after": len(minimized.rules), "seconds": sec,
                       "kinds": sorted({v["kind"] for v in report.values()})}
    row["rules"] = {k: m[k] for k in ("rule_accuracy", "fidelity", "coverage", "zero_fire",
                                      "multi_fire")}
    text, sec = timed(to_asp, ranked, test_codes)
    lp = workdir / f"scale{kernels}.lp"
    lp.write_text(text)
    row["export"] = {"seconds": sec, "bytes": len(text.encode()), "images": len(test_codes)}
    cls = max(ranked.head_names, key=lambda h: sum(r.head == h for r in ranked.rules))
    row["query_class"] = cls
    lp.with_suffix(".class").write_text(cls)
    row["query_seconds"] = time_queries(lp, cls, args.query_limit)
    return row


def time_queries(lp: Path, cls: str, limit: float) -> dict:
    """Each query as the CLI runs it: read the file, then ask (the load is included); each
    in a fresh process with a wall-clock limit, so that one slow query cannot stall the
    rest."""
    from cnn2logic.query import Program

    queries = {}
    _, queries["read_file"] = timed(Program.from_file, lp)
    # conflicts twice: about the rules alone (--no-data), and with the contradictions on the
    # data, which evaluate every rule on every image
    for key, name, qargs, qkw in (("implies", "implies", (cls,), {}),
                                  ("necessary", "necessary", (cls,), {}),
                                  ("explain", "explain", (0,), {}),
                                  ("conflicts_no_data", "conflicts", (), {"data": False}),
                                  ("conflicts", "conflicts", (), {}),
                                  ("predictions_all_images", "predictions", (), {})):
        queries[key] = query_in_child(lp, name, qargs, limit, qkw)
    return queries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/mnist")
    ap.add_argument("--kernels", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--l1", type=float, default=1e-3, help="positive head: L1 weight")
    ap.add_argument("--neg", type=float, default=0.05,
                    help="positive head: weight of the negative-weight penalty")
    ap.add_argument("--prune", type=float, default=0.15,
                    help="positive head: drop weights below this fraction of the largest")
    ap.add_argument("--minimize-timeout", type=float, default=60.0)
    ap.add_argument("--query-limit", type=float, default=120.0,
                    help="wall-clock limit per query (a slower query is stopped and reported)")
    ap.add_argument("--max-terms", type=int, default=1000,
                    help="terms per class carried past the search (all are counted)")
    ap.add_argument("--rank-images", type=int, default=5_000,
                    help="training codes the rules are ranked on")
    ap.add_argument("--in-memory-reference", action="store_true")
    ap.add_argument("--cache", default=None, help="directory to keep / reuse trained models")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="keep the checkpoints and exported programs here (default: a "
                         "temporary directory)")
    ap.add_argument("--queries-only", default=None, metavar="DIR",
                    help="only time the queries again, on the programs a --keep run left "
                         "in DIR")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.queries_only:
        return queries_again(Path(args.queries_only), args)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    source = args.data if Path(args.data).is_dir() else "embedded"
    data = load_data(source)
    doc: dict = {"data": data.source, "train_images": len(data.train),
                 "test_images": len(data.test), "cores": os.cpu_count(),
                 "torch_threads": torch.get_num_threads(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for k in args.kernels:
            doc["runs"].append(run_kernels(k, data, source, args, workdir))
            print(f"# {k} kernels done", file=sys.stderr, flush=True)
            if args.out:
                atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    return 0


def queries_again(workdir: Path, args) -> int:
    doc: dict = {"programs": str(workdir), "load_average": os.getloadavg(), "runs": []}
    for k in args.kernels:
        lp = workdir / f"scale{k}.lp"
        cls_file = lp.with_suffix(".class")
        if not lp.is_file() or not cls_file.is_file():
            print(f"error: no {lp} (or its .class file): run with --keep {workdir} first",
                  file=sys.stderr)
            return 2
        doc["runs"].append({"kernels": k, "query_class": cls_file.read_text(),
                            "query_seconds": time_queries(lp, cls_file.read_text(),
                                                          args.query_limit)})
    text = json.dumps(doc, indent=1) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
