"""Networks of bench/readable.py: train once (cached), capture their kernel units once.

Four networks on full MNIST (the first 50,000 training images, the 10,000 test images):

``paper1``, ``paper3``
    the paper's, trained for its iterations (checkpoints shared with bench/methods.py).
``scale128``
    ``bench/scale.py``'s ``spec_for(128)`` (conv 16@5x5/2 ReLU, conv 128@3x3/2 sigmoid,
    global max-pool, linear) trained plainly (no straight-through ``binarize`` layer, so
    the output layer reads the real-valued units and the bits lose information), 3,000
    iterations.
``relu_bn``
    ``examples/relu_bn_cnn.py`` with 48 kernels (ReLU/BatchNorm, global average pooling),
    1,500 iterations; units are the ``gap`` values the linear layer reads.
``relu_bn128``
    the same with 128 kernels (a wide ReLU/BatchNorm net; bench/logic_training.py only).
``lenet``
    ``examples/lenet_cnn.py`` (the tutorial CNN: its head reads the last pool's maps
    flattened, 16 × 4 × 4), 1,500 iterations (bench/logic_training.py only).

The capture (``/work/cache/codes/{net}-seed{seed}.npz``) holds the float units of both
splits, the network's predictions, the labels and the output layer's weights, so that the
rule learners can be run and re-run without torch.  Torch is imported lazily because the
benchmark proper reads only the cache.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, REPO  # noqa: E402

CODES = Path("/work/cache/codes")
NETS = ("paper1", "paper3", "scale128", "relu_bn")
ITERATIONS = {"scale128": 3000, "relu_bn": 1500, "relu_bn128": 1500, "lenet": 1500}
LAYER = {"paper1": "pool", "paper3": "pool", "scale128": "pool", "relu_bn": "gap",
         "relu_bn128": "gap", "lenet": "5"}
OUTPUT = {"paper1": "out", "paper3": "out", "scale128": "out", "relu_bn": "fc",
          "relu_bn128": "fc", "lenet": "7"}
#: The factory kwargs of the ``--factory`` nets.
FACTORY_KWARGS = {"relu_bn": {"kernels": 48}, "relu_bn128": {"kernels": 128}, "lenet": {}}
_RELU_BN = str(REPO / "examples" / "relu_bn_cnn.py") + ":make_net"
#: The factory of each ``--factory`` net.
FACTORIES = {"relu_bn": _RELU_BN, "relu_bn128": _RELU_BN,
             "lenet": str(REPO / "examples" / "lenet_cnn.py") + ":make_net"}


def model_for(net: str, seed: int, data):
    """The trained model (from the shared checkpoint cache when present) and its metrics."""
    from _common import trained_model

    if net in ("paper1", "paper3"):
        return trained_model(net, seed, data)
    if net == "scale128":
        from scale import spec_for

        spec = dataclasses.replace(spec_for(128), binary_units="none", name="scale128")
        return trained_model(f"{net}-plain", seed, data, spec=spec,
                             iterations=ITERATIONS[net])
    if net not in FACTORY_KWARGS:
        raise SystemExit(f"unknown network {net!r}")
    import torch
    from cnn2logic.model import load_model, save_weights
    from cnn2logic.model.training import TrainConfig, train

    factory, kwargs = FACTORIES[net], FACTORY_KWARGS[net]
    # (the relu_bn caches keep the names they were written under)
    stem = f"relu_bn{kwargs['kernels']}" if "kernels" in kwargs else net
    ckpt = CACHE / f"{stem}-seed{seed}.safetensors"
    metrics_path = CACHE / f"{stem}-seed{seed}.metrics.json"
    if ckpt.is_file() and metrics_path.is_file():
        return (load_model(ckpt, factory=factory, factory_kwargs=kwargs),
                json.loads(metrics_path.read_text()))
    from cnn2logic.model import import_factory

    torch.manual_seed(seed)  # the factory's initialisation
    model = import_factory(factory)(**kwargs)
    model, metrics = train(model, data, TrainConfig(iterations=ITERATIONS[net], seed=seed,
                                                    progress=False))
    CACHE.mkdir(parents=True, exist_ok=True)
    save_weights(model, ckpt, factory=factory, factory_kwargs=kwargs)
    metrics_path.write_text(json.dumps(metrics, indent=1, sort_keys=True, default=str))
    return model, metrics


def capture_codes(net: str, seed: int, data) -> Path:
    """Capture (once) the units, predictions and output weights of one network."""
    path = CODES / f"{net}-seed{seed}.npz"
    if path.is_file():
        return path
    import torch
    from cnn2logic.model.spec import predict_logits
    from cnn2logic.units import capture

    torch.set_flush_denormal(True)
    model, metrics = model_for(net, seed, data)
    arrays = {}
    for split, part in (("train", data.train), ("test", data.test)):
        x, y = part.tensors()
        arrays[f"U_{split}"] = capture(model, LAYER[net], x, progress=False).values
        arrays[f"p_{split}"] = predict_logits(model, x).argmax(1).numpy()
        arrays[f"y_{split}"] = y.numpy()
    lin = dict(model.named_modules())[OUTPUT[net]]
    arrays["W"] = lin.weight.detach().double().numpy()
    arrays["b"] = lin.bias.detach().double().numpy()
    arrays["network_accuracy"] = np.array(metrics.get("test_accuracy", np.nan))
    arrays["train_seconds"] = np.array(metrics.get("train_seconds", np.nan))
    CODES.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.rename(path)
    return path


def load_codes(net: str, seed: int) -> dict:
    with np.load(CODES / f"{net}-seed{seed}.npz") as z:
        return {k: z[k] for k in z.files}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="/work/shared/data/mnist")
    ap.add_argument("--nets", nargs="+", default=list(NETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    from cnn2logic.data import load_data

    data = load_data(args.data, train_size=50_000)
    for seed in args.seeds:
        for net in args.nets:
            t = time.perf_counter()
            print(f"{net} seed {seed}: ...", file=sys.stderr, flush=True)
            capture_codes(net, seed, data)
            print(f"{net} seed {seed}: done in {time.perf_counter() - t:.0f} s",
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
