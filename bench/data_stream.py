"""Peak memory of capture from an image folder against the number of images.

Builds an image folder of RGB 32x32 PNGs from MNIST digits (``DIR/train/<digit>/*.png``
and ``DIR/test/...``; from the IDX files when ``--data`` is given, else the embedded 5,000
repeated) and, for each image count, runs in a fresh process:

* ``stream``: :func:`cnn2logic.units.capture_split` over the folder's training split (the
  path ``cnn2logic extract``/``capture`` take: a ``DataLoader`` decoding PNGs batch by
  batch) through the model, keeping the units of ``--layer``;
* ``materialised`` (for contrast, smaller counts only): the same split loaded whole with
  ``tensors()``, which is what reading a folder into one tensor would cost.

Peak resident memory is measured above the process's baseline after one warm-up batch
(``VmHWM`` - ``VmRSS``: the capture alone), and above the baseline before the folder was
indexed, after importing torchvision and PIL (``peak_above_start_mb``: the file list and
header scan included;
``index_seconds`` is that scan).  Bounded streaming shows as a peak that grows only by the units
(images x kernels x 4 bytes), not by the images.

::

    OMP_NUM_THREADS=1 python bench/data_stream.py --model resnet18 --counts 1000 10000 50000 \\
        --data ../shared/data/mnist --out runs/data_stream.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import vm_bytes  # noqa: E402

from cnn2logic._io import atomic_write_text


def build_folder(root: Path, n_train: int, n_test: int, data: str) -> Path:
    """An image folder of ``n_train`` + ``n_test`` RGB 32x32 PNGs (kept once built)."""
    from PIL import Image

    from cnn2logic.data import load_data

    done = root / f".done-{n_train}-{n_test}"
    if done.is_file():
        return root
    d = load_data(data)
    for split, s, n in (("train", d.train, n_train), ("test", d.test, n_test)):
        x = (s.images[:, 0] * 255).round().astype(np.uint8)
        for i in range(n):
            j = i % len(x)
            p = root / split / f"digit{int(s.labels[j])}" / f"{i:06d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[j]).resize((32, 32), Image.BILINEAR).convert("RGB").save(p)
    done.write_text("ok")
    return root


def make_model(name: str) -> tuple[torch.nn.Module, str]:
    """The model and the layer whose kernels are captured."""
    torch.manual_seed(0)
    if name == "resnet18":
        import torchvision

        return torchvision.models.resnet18(weights=None, num_classes=10), "layer4"
    from cnn2logic.model.spec import ConvSpec, ModelSpec, build_model

    spec = ModelSpec(convs=(ConvSpec(16, 5, "relu", stride=2, padding=2),
                            ConvSpec(128, 3, "sigmoid", stride=2, padding=1)),
                     input_shape=(3, 32, 32), pool="global-max", name="small128")
    return build_model(spec, seed=0), "pool"


def _child(folder: str, model_name: str, n: int, mode: str, batch: int, workers: int,
           conn) -> None:  # pragma: no cover - runs in a fresh process
    torch.set_num_threads(1)
    from cnn2logic.data import load_data
    from cnn2logic.units import capture_split

    model, layer = make_model(model_name)
    import PIL.PngImagePlugin  # noqa: F401 - imported before the baseline: code, not data
    import torchvision.transforms.functional  # noqa: F401

    with torch.no_grad():  # warm-up: torch's own buffers belong to the baseline
        model.eval()(torch.zeros(batch, 3, 32, 32))
    start = vm_bytes("VmRSS")
    t0 = time.perf_counter()
    d = load_data(folder, train_size=n, batch_size=batch, workers=workers)
    index_s = time.perf_counter() - t0
    capture_split(model, layer, d.train.subset(batch), progress=False)  # warm-up
    base = vm_bytes("VmRSS")
    t = time.perf_counter()
    if mode == "stream":
        units, _ = capture_split(model, layer, d.train, progress=False)
        extra = {"units_mb": round(units.values.nbytes / 2 ** 20, 1),
                 "kernels": int(units.values.shape[1])}
    else:
        x, _ = d.train.tensors()
        extra = {"images_mb": round(x.numel() * 4 / 2 ** 20, 1)}
    conn.send({"mode": mode, "images": n, "seconds": round(time.perf_counter() - t, 2),
               "peak_above_baseline_mb": round((vm_bytes("VmHWM") - base) / 2 ** 20, 1),
               "peak_above_start_mb": round((vm_bytes("VmHWM") - start) / 2 ** 20, 1),
               "index_seconds": round(index_s, 2), **extra})
    conn.close()


def measure(folder: Path, model: str, n: int, mode: str, batch: int, workers: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(str(folder), model, n, mode, batch, workers, child))
    proc.start()
    child.close()
    out = parent.recv()
    proc.join()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("resnet18", "small"), default="resnet18")
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 10000, 50000])
    ap.add_argument("--materialise-max", type=int, default=10000,
                    help="largest count also loaded whole, for contrast")
    ap.add_argument("--data", default="embedded", help="MNIST source of the digits")
    ap.add_argument("--folder", default="runs/data-stream-folder")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    folder = build_folder(Path(args.folder), max(args.counts), 100, args.data)
    build_s = round(time.perf_counter() - t, 1)
    rows = []
    for n in args.counts:
        rows.append(measure(folder, args.model, n, "stream", args.batch_size, args.workers))
        if n <= args.materialise_max:
            rows.append(measure(folder, args.model, n, "materialised", args.batch_size,
                                args.workers))
        print(json.dumps(rows[-1]), file=sys.stderr)
    out = {"model": args.model, "batch_size": args.batch_size, "workers": args.workers,
           "image": "RGB 32x32 PNG", "folder_build_seconds": build_s,
           "torch_threads": 1, "rows": rows}
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
