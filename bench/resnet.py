"""torchvision ResNet-18 on a 50,000-image folder: capture + extract time, memory, fidelity.

The setting of ``examples/resnet_imagefolder.py`` at full size:

* an image folder of RGB 32×32 PNGs built from full MNIST (``--mnist``, the IDX files):
  the first ``--train-images`` (50,000) training digits and the 10,000 test digits;
* ``torchvision.models.resnet18(num_classes=10)`` trained ``--steps`` Adam steps on them
  (cached in ``--cache``: the state dict, as a user brings it);
* ``extract_model`` (the default method, ``rulelist``) over ``layer4``'s 512 kernels,
  output ``fc``, the data streamed from the folder through a ``DataLoader``
  (``cnn2logic.data``), in a **fresh process** per training-image count (``--counts``):
  wall time per stage and the peak resident memory above the process's baseline after
  the model is loaded (``VmHWM``), so memory growth with the image count shows; and the
  streamed capture of the training split alone, measured the same way;
* on the largest count's codes, the other extractors that read bits
  (``mofn`` by default) fitted on the same training codes: seconds, rules, test
  fidelity;
* the exported ASP program (test codes included) and every query on it (implies,
  necessary, explain, flip, conflicts), timed.

Prints JSON (and writes it to ``--out``)::

    flock /work/cpu.lock env OMP_NUM_THREADS=2 python bench/resnet.py \\
        --mnist ../shared/data/mnist --out bench/results/resnet.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from _common import vm_bytes  # noqa: E402

ARCH, KWARGS, LAYER, OUTPUT = "torchvision:resnet18", {"num_classes": 10}, "layer4", "fc"


def _extract_child(ckpt: str, folder: str, train_size: int | None, threads: int,
                   codes_out: str | None, conn) -> None:  # pragma: no cover - a child
    import numpy as np
    import torch

    from cnn2logic.data import load_data
    from cnn2logic.extract.config import ExtractConfig
    from cnn2logic.extract.run import extract_model
    from cnn2logic.model.load import load_model

    torch.set_num_threads(threads)
    model = load_model(ckpt, factory=ARCH, factory_kwargs=KWARGS)
    with torch.no_grad():  # warm up: the baseline includes torch's own buffers
        model(torch.zeros(64, 3, 32, 32))
    base = vm_bytes("VmRSS")
    t0 = time.perf_counter()
    data = load_data(folder, train_size=train_size)
    result = extract_model(model, data, ExtractConfig(layer=LAYER, output=OUTPUT),
                           progress=False)
    wall = time.perf_counter() - t0
    m = result.metrics
    out = {"train_images": int(m["train_images"]), "test_images": int(m["images"]),
           "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
           "wall_seconds": round(wall, 2),
           "peak_rss_above_baseline_mb": round((vm_bytes("VmHWM") - base) / 2 ** 20, 1),
           "baseline_rss_mb": round(base / 2 ** 20, 1),
           "fidelity": m["fidelity"], "rule_accuracy": m["rule_accuracy"],
           "network_accuracy": m["network_accuracy"],
           "network_on_bits_fidelity": m.get("network_on_bits_fidelity"),
           "network_on_bits_accuracy": m.get("network_on_bits_accuracy"),
           "rules": len(result.rules.rules), "literals": m.get("literals"),
           "threshold": result.rules.meta["thresholds"]["method"],
           "distinct_train_codes": (result.rules.meta.get("rulelist") or {}).get(
               "distinct_codes")}
    if codes_out:
        d = Path(codes_out)
        d.mkdir(parents=True, exist_ok=True)
        (d / "rules.json").write_text(result.rules.to_json())
        (d / "model.safetensors").write_bytes(Path(ckpt).read_bytes())
        result.train_codes.save(d / "codes-train.npz")
        result.test_codes.save(d / "codes-test.npz")
    conn.send(out)
    conn.close()


def _capture_child(ckpt: str, folder: str, train_size: int | None, threads: int,
                   conn) -> None:  # pragma: no cover - a child
    import torch

    from cnn2logic.data import load_data
    from cnn2logic.model.load import load_model
    from cnn2logic.units import capture_split

    torch.set_num_threads(threads)
    model = load_model(ckpt, factory=ARCH, factory_kwargs=KWARGS)
    with torch.no_grad():
        model(torch.zeros(64, 3, 32, 32))
    base = vm_bytes("VmRSS")
    t0 = time.perf_counter()
    data = load_data(folder, train_size=train_size)
    units, _ = capture_split(model, LAYER, data.train, progress=False)
    conn.send({"images": int(len(units.values)), "kernels": int(units.values.shape[1]),
               "seconds": round(time.perf_counter() - t0, 2),
               "peak_rss_above_baseline_mb": round((vm_bytes("VmHWM") - base) / 2 ** 20, 1)})
    conn.close()


def _in_child(*args, target=None) -> dict:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target or _extract_child, args=(*args, child))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def train_checkpoint(folder: Path, ckpt: Path, steps: int) -> dict:
    """Train ResNet-18 on the folder's training images (cached)."""
    import resnet_imagefolder as example

    from cnn2logic.model.load import save_weights

    if ckpt.is_file():
        return {"reused": str(ckpt)}
    t0 = time.perf_counter()
    model = example.train_model(ARCH, KWARGS, folder, steps)
    save_weights(model, ckpt, factory=ARCH, factory_kwargs=KWARGS)
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 1)}


def other_extractors(codes_dir: Path, names: list[str]) -> dict:
    """Other bit-reading extractors on the same training codes: seconds, rules, fidelity."""
    from cnn2logic.evaluate import evaluate_rules
    from cnn2logic.extract.base import REGISTRY
    from cnn2logic.extract.layers import output_layer
    from cnn2logic.model.load import load_model
    from cnn2logic.rules import Head
    from cnn2logic.units import BinaryCodes

    tr = BinaryCodes.load(codes_dir / "codes-train.npz")
    te = BinaryCodes.load(codes_dir / "codes-test.npz")
    heads = tuple(Head(c, "class", OUTPUT, i) for i, c in enumerate(tr.classes))
    # fc reads avgpool(layer4); at 32x32 input layer4's maps are 1x1, so fc reads the units
    model = load_model(codes_dir / "model.safetensors", factory=ARCH, factory_kwargs=KWARGS)
    output = output_layer(model, OUTPUT, tr.bits.shape[1])
    out = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            ext = REGISTRY[name].extractor().fit(
                X=tr.bits, y=tr.predictions, output=output, variables=tr.variables,
                heads=heads)
            rules = ext.rules_
            m = evaluate_rules(rules, te.bits, te.labels, te.predictions)
            out[name] = {"seconds": round(time.perf_counter() - t0, 2),
                         "rules": len(rules.rules), "fidelity": m["fidelity"],
                         "rule_accuracy": m["rule_accuracy"]}
        except Exception as exc:  # a method that cannot run on bits alone: say which
            out[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}",
                         "seconds": round(time.perf_counter() - t0, 2)}
    return out


def queries(codes_dir: Path) -> dict:
    """Export the rules with the test codes as ASP and time every query on it."""
    from cnn2logic.cli import main as cli

    lp = codes_dir / "rules.lp"
    cli(["export", str(codes_dir / "rules.json"), "--activations",
         str(codes_dir / "codes-test.npz"), "--out", str(lp)])
    rules = json.loads((codes_dir / "rules.json").read_text())
    heads = [h["name"] if isinstance(h, dict) else str(h) for h in rules["heads"]]
    cls = rules["rules"][0]["head"] if rules["rules"] else rules["default"]
    other = next(h for h in heads if h != cls)
    out = {}
    for name, args in (("implies", ["implies", "--class", str(cls), "--limit", "5"]),
                       ("necessary", ["necessary", "--class", str(cls)]),
                       ("explain", ["explain", "--image", "0"]),
                       ("flip", ["flip", "--image", "0", "--to", other]),
                       ("conflicts", ["conflicts"])):
        t0 = time.perf_counter()
        rc = cli(["query", str(lp), *args])
        out[name] = {"seconds": round(time.perf_counter() - t0, 2), "exit": rc}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", default="../shared/data/mnist")
    ap.add_argument("--cache", default="runs/resnet-bench")
    ap.add_argument("--train-images", type=int, default=50_000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--counts", default="10000,50000",
                    help="training-image counts, each extracted in a fresh process")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extractors", default="mofn",
                    help="other bit-reading methods (pedagogical: 199 s on 600 codes of 512 "
                         "kernels, so not by default)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import torch

    import resnet_imagefolder as example

    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    folder = example.build_image_folder(cache / "images", args.mnist, args.train_images, None)
    report: dict = {"arch": ARCH, "layer": LAYER, "output": OUTPUT, "threads": args.threads,
                    "folder_seconds": round(time.perf_counter() - t0, 1)}
    ckpt = cache / "resnet18.safetensors"
    report["train"] = train_checkpoint(folder, ckpt, args.steps)
    counts = [int(c) for c in args.counts.split(",") if c]
    report["capture_only"] = []
    for n in counts:  # the streamed capture alone (the training split), a fresh process each
        size = None if n >= args.train_images else n
        report["capture_only"].append(_in_child(str(ckpt), str(folder), size, args.threads,
                                                target=_capture_child))
        print(json.dumps(report["capture_only"][-1]), file=sys.stderr, flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, n in enumerate(counts):
            last = i == len(counts) - 1
            size = None if n >= args.train_images else n
            runs.append(_in_child(str(ckpt), str(folder), size, args.threads,
                                  tmp if last else None))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
        report["extract"] = runs
        names = [x for x in args.extractors.split(",") if x]
        report["extractors"] = {"rulelist": {k: runs[-1][k] for k in
                                             ("fidelity", "rule_accuracy", "rules")}}
        report["extractors"]["rulelist"]["seconds"] = runs[-1]["seconds"]["extract"]
        report["extractors"].update(other_extractors(Path(tmp), names))
        report["queries"] = queries(Path(tmp))
    text = json.dumps(report, indent=1, sort_keys=True)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
