"""Time and memory of ``cnn2logic visualize`` for paper1 and paper3; prints JSON.

Two measurements per architecture, each in a fresh process so peak memory is its own:

``call``
    :func:`cnn2logic.visual.kernels.visualize` (top images, SmoothGrad with the paper's
    parameters for every kernel, filter correlation, self-response) and
    :func:`~cnn2logic.visual.visuals.write_visuals` (all PNGs, grid, arrays), after one warm-up
    call; median of ``--repeats`` runs; peak RSS of the process and its growth over the
    model + data already loaded.
``cli``
    the whole command, ``python -m cnn2logic visualize MODEL --out DIR``, wall-clock from
    start to exit (interpreter start, imports, data loading included) and CPU time (user +
    system, all threads); median of ``--repeats`` runs; peak RSS of the child from
    ``wait4``.  On a busy machine the wall-clock is inflated by other jobs; the CPU time
    much less so (it bounds the idle wall-clock from above on one core).

``bases``
    every SmoothGrad base image (zeros, gray, mean, top) compared: mean/min correlation
    with the filters (paper1) and how strongly each kernel's image activates its own unit
    (``self_response_mean``) and whether no other kernel's image does more
    (``selectivity``).

``evidence`` (``--evidence``; ``bench/results/visuals-evidence.json``)
    per network of ``bench/_readable_nets.py`` (paper1, paper3, scale128 = 128 kernels,
    relu_bn = ``examples/relu_bn_cnn.py`` with 48 kernels; the cached checkpoints),
    :func:`cnn2logic.visual.kernels.visualize` with evidence on the first 10,000 training
    images: ``selectivity`` of the evidence shown first per kernel (the figure
    ``visuals.json`` records), ``selectivity_by_kind`` (patches, SmoothGrad, act. max),
    the receptive field, seconds and CPU seconds of the evidence alone (top patches, class
    profile, selectivity of every kind) and of the whole call; and the *stability* of the
    class profiles: each kernel's profile on those training images against its profile
    on the 10,000 test images (same thresholds): Pearson correlation over the classes and
    whether the 3 most frequent classes agree; and the share of kernels whose automatic
    label (:func:`cnn2logic.labels.auto_labels`) is the same on both.

Timings do not depend on the weights, so without a checkpoint an untrained model of the
architecture is used (and the JSON says so); the correlations do.

Usage::

    python bench/visualize.py                      # /tmp/c2l/paper{1,3}.safetensors if present
    python bench/visualize.py --paper1 runs/demo/model.safetensors --threads 2 --repeats 5
    flock /work/cpu.lock python bench/visualize.py --evidence --data /work/shared/data/mnist \
        --out bench/results/visuals-evidence.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MODELS = {"paper1": "/tmp/c2l/paper1.safetensors",
                  "paper3": "/tmp/c2l/paper3.safetensors"}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so it measures only what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(arch: str, model_path: str, threads: int, repeats: int, data: str) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    from cnn2logic.data import load_data
    from cnn2logic.model.spec import load_checkpoint
    from cnn2logic.visual import visualize, write_visuals

    model = load_checkpoint(model_path)
    images = load_data(data).train
    visualize(model, "pool", images, samples=2, progress=False)  # warm-up (imports, caches)
    import_peak = _rss_mb()
    base_rss = _status_mb("VmRSS")
    reset = _reset_peak()
    times, cpu_times, sg_times, write_times = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            vis = visualize(model, "pool", images, progress=False)
            t1 = time.perf_counter()
            write_visuals(vis, Path(tmp) / str(i), progress=False)
            t2 = time.perf_counter()
            times.append(t2 - t0)
            cpu_times.append(time.process_time() - c0)
            sg_times.append(vis.seconds["smoothgrad"])
            write_times.append(t2 - t1)
    out = {
        "kernels": len(vis),
        "seconds_median": round(statistics.median(times), 4),
        "seconds_all": [round(t, 4) for t in times],
        "cpu_seconds_median": round(statistics.median(cpu_times), 4),
        "smoothgrad_seconds_median": round(statistics.median(sg_times), 4),
        "write_pngs_seconds_median": round(statistics.median(write_times), 4),
        "process_peak_rss_mb": round(max(_rss_mb(), import_peak), 1),
        "rss_before_mb": None if base_rss is None else round(base_rss, 1),
    }
    hwm = _status_mb("VmHWM")
    out["visualize_peak_rss_growth_mb"] = (round(hwm - base_rss, 1)
                                           if reset and hwm is not None and base_rss is not None
                                           else None)
    out.update({
        "params": {k: vis.params[k] for k in ("base", "samples", "noise_stdev", "batch_size")},
    })
    if vis.correlation is not None:
        out["filter_correlation_mean"] = round(float(np.mean(vis.correlation)), 4)
    out["selectivity"] = round(vis.selectivity, 4)
    return out


def compare_bases(model_path: str, data: str) -> dict:
    """Each SmoothGrad base: filter correlation (kernels that see the input) and
    self-response / selectivity of the maximising images (any model)."""
    import numpy as np

    from cnn2logic.data import load_data
    from cnn2logic.model.spec import load_checkpoint
    from cnn2logic.visual import (BASES, filter_correlation, input_filters,
                                  response_matrix, smoothgrad)

    model = load_checkpoint(model_path)
    images = load_data(data).train
    filters = input_filters(model, "pool")
    out = {}
    for base in BASES:
        t0 = time.perf_counter()
        maps = smoothgrad(model, "pool", base=base, images=images, progress=False)
        entry: dict = {"seconds": round(time.perf_counter() - t0, 3)}
        if filters is not None:
            corr, _ = filter_correlation(maps, filters)
            entry["filter_correlation_mean"] = round(float(corr.mean()), 4)
            entry["filter_correlation_min"] = round(float(corr.min()), 4)
        resp = response_matrix(model, "pool", maps)
        own = np.diag(resp)
        entry["self_response_mean"] = round(float(own.mean()), 4)
        entry["selectivity"] = round(float(np.mean(own >= resp.max(axis=1) - 1e-6)), 4)
        out[base] = entry
    return out


def run_cli(model_path: str, threads: int, repeats: int, data: str) -> dict:
    times, cpus, peaks = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "cnn2logic", "visualize", model_path, "--out", tmp,
                   "--threads", str(threads), "--data", data, "--no-progress"]
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            times.append(time.perf_counter() - t0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise SystemExit(f"visualize failed: {proc.stderr.read().decode()[-2000:]}")
            proc.stderr.close()
            peaks.append(usage.ru_maxrss / 1024.0)
            cpus.append(usage.ru_utime + usage.ru_stime)
    return {"wall_seconds_median": round(statistics.median(times), 4),
            "wall_seconds_all": [round(t, 4) for t in times],
            "cpu_seconds_median": round(statistics.median(cpus), 4),
            "peak_rss_mb": round(max(peaks), 1)}


EVIDENCE_NETS = ("paper1", "paper3", "scale128", "relu_bn")
EVIDENCE_CACHE = "/work/cache/bench-cache"
CHECKPOINTS = {"paper1": "paper1-seed0", "paper3": "paper3-seed0",
               "scale128": "scale128-plain-seed0", "relu_bn": "relu_bn48-seed0"}
LAYERS = {"paper1": "pool", "paper3": "pool", "scale128": "pool", "relu_bn": "gap"}


def cached_model(net: str, cache: str):
    """A trained checkpoint of bench/_readable_nets.py from ``cache`` (never trains)."""
    from cnn2logic.model import load_model

    stem = Path(cache) / CHECKPOINTS[net]
    ckpt, metrics = stem.with_suffix(".safetensors"), stem.with_suffix(".metrics.json")
    if not ckpt.is_file():
        raise SystemExit(f"no checkpoint {ckpt}: run bench/_readable_nets.py first")
    if net == "relu_bn":
        factory = str(Path(__file__).resolve().parents[1] / "examples/relu_bn_cnn.py")
        model = load_model(ckpt, factory=factory + ":make_net", factory_kwargs={"kernels": 48})
    else:
        model = load_model(ckpt)
    return model, (json.loads(metrics.read_text()) if metrics.is_file() else {})


def evidence_bench(nets: list[str], data: str, threads: int, images: int,
                   cache: str = EVIDENCE_CACHE) -> dict:
    """Selectivity per evidence kind and displayed, cost, class-profile stability."""
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    from cnn2logic.data import load_data
    from cnn2logic.labels import auto_labels, label_agreement
    from cnn2logic.units import capture
    from cnn2logic.visual import kernel_evidence, profile_agreement, visualize

    splits = load_data(data, train_size=images, test_size=images)
    out: dict = {}
    for net in nets:
        model, metrics = cached_model(net, cache)
        layer = LAYERS[net]
        t0, c0 = time.perf_counter(), time.process_time()
        vis = visualize(model, layer, splits.train, progress=False)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        ev = vis.evidence
        t1, c1 = time.perf_counter(), time.process_time()
        kernel_evidence(model, layer, splits.train.images, splits.train.labels,
                        classes=splits.train.classes, names=vis.names)
        ev_seconds, ev_cpu = time.perf_counter() - t1, time.process_time() - c1
        test = kernel_evidence(model, layer, splits.test.images, splits.test.labels,
                               classes=splits.test.classes, thresholds=ev.thresholds,
                               names=vis.names)
        auto = [auto_labels(capture(model, layer, part.images, reduce=ev.params["reduce"],
                                    progress=False).values >= ev.thresholds[None, :],
                            part.labels, vis.names, part.classes)
                for part in (splits.train, splits.test)]
        out[net] = {
            "kernels": len(vis), "layer": layer, "map_layer": ev.map_layer,
            "network_accuracy": metrics.get("test_accuracy"),
            "receptive_field": {"size": list(ev.receptive.size), "stride": list(ev.receptive.stride)},
            "selectivity": round(ev.selectivity(), 4),
            "selectivity_by_kind": {k: round(ev.selectivity(k), 4) for k in ev.kinds},
            "shown_first": ev.summary()["chosen_counts"],
            "thresholds": ev.params.get("thresholds"),
            "images": len(splits.train),
            "evidence_seconds": round(ev_seconds, 3), "evidence_cpu_seconds": round(ev_cpu, 3),
            "evidence_seconds_by_step": {k: round(float(v), 3) for k, v in ev.seconds.items()},
            "visualize_seconds": round(seconds, 3), "visualize_cpu_seconds": round(cpu, 3),
            "visualize_seconds_by_step": {k: round(float(v), 3) for k, v in vis.seconds.items()},
            "profile_stability_train_vs_test": {
                k: v for k, v in profile_agreement(ev.on_share, test.on_share).items()
                if k != "correlation"},
            "label_agreement_train_vs_test": round(label_agreement(*auto), 4),
            "labels_train": auto[0],
            "test_selectivity": round(test.selectivity("patches"), 4),
        }
        print(f"{net}: {out[net]['selectivity']} {out[net]['selectivity_by_kind']} "
              f"{ev_seconds:.1f} s evidence, {seconds:.1f} s visualize", file=sys.stderr,
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paper1", default=DEFAULT_MODELS["paper1"])
    ap.add_argument("--paper3", default=DEFAULT_MODELS["paper3"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default="embedded")
    ap.add_argument("--no-bases", dest="bases", action="store_false",
                    help="skip the comparison of SmoothGrad base images")
    ap.add_argument("--evidence", action="store_true",
                    help="only the evidence benchmark (selectivity per kind, cost, profile "
                         "stability) on the four readable nets; needs --data with full MNIST")
    ap.add_argument("--nets", nargs="+", default=list(EVIDENCE_NETS))
    ap.add_argument("--images", type=int, default=10_000,
                    help="training (and test) images of the evidence benchmark")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--cache", default=EVIDENCE_CACHE,
                    help="directory of the trained checkpoints (bench/_readable_nets.py)")
    ap.add_argument("--child", nargs=2, metavar=("ARCH", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.evidence:
        report = {"threads": args.threads, "data": args.data, "cpu_count": os.cpu_count(),
                  "load_average_at_start": os.getloadavg(),
                  "cache": args.cache,
                  "nets": evidence_bench(args.nets, args.data, args.threads, args.images,
                                         args.cache),
                  "load_average_at_end": os.getloadavg()}
        text = json.dumps(report, indent=1)
        if args.out:
            Path(args.out).write_text(text + "\n")
        print(text)
        return
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.threads, args.repeats,
                               args.data)))
        return
    from cnn2logic.model.spec import build_model, save_checkpoint

    report: dict = {"threads": args.threads, "repeats": args.repeats, "data": args.data,
                    "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("paper1", "paper3"):
            path = getattr(args, arch)
            weights = path
            if not Path(path).is_file():
                path = str(Path(tmp) / f"{arch}.safetensors")
                save_checkpoint(build_model(arch, seed=0), path)
                weights = "untrained (no checkpoint given; timings do not depend on weights)"
            out = subprocess.run(
                [sys.executable, __file__, "--child", arch, path, "--threads", str(args.threads),
                 "--repeats", str(args.repeats), "--data", args.data],
                capture_output=True, text=True, check=True,
                env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            report[arch] = {"weights": weights,
                            "call": json.loads(out.stdout.strip().splitlines()[-1]),
                            "cli": run_cli(path, args.threads, args.repeats, args.data)}
            if args.bases:
                report[arch]["bases"] = compare_bases(path, args.data)
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
