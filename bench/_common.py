"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "runs" / "bench-cache"


def trained_model(arch: str, seed: int, data, *, spec=None, iterations: int | None = None,
                  progress: bool = False):
    """Train ``arch`` once per seed; reuse the checkpoint after.

    ``arch`` names the cache entry and, without ``spec``, the architecture (trained for the
    paper's iterations unless ``iterations`` is given).  Returns the model and its training
    metrics (with the seconds the training took).
    """
    from cnn2logic.model.spec import PAPER_ITERATIONS, load_checkpoint, save_checkpoint
    from cnn2logic.model.training import TrainConfig, metrics_json, train

    ckpt = CACHE / f"{arch}-seed{seed}.safetensors"
    metrics_path = CACHE / f"{arch}-seed{seed}.metrics.json"
    if ckpt.is_file() and metrics_path.is_file():
        return load_checkpoint(ckpt), json.loads(metrics_path.read_text())
    model, metrics = train(spec if spec is not None else arch, data,
                           TrainConfig(iterations=iterations or PAPER_ITERATIONS[arch],
                                       seed=seed, progress=progress))
    CACHE.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, ckpt)
    metrics_path.write_text(metrics_json(metrics))
    return model, metrics


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "values": [round(v, 4) for v in values]}


def emit(obj) -> None:
    json.dump(obj, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


def vm_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes; -1 if absent."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1
