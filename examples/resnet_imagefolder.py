"""A torchvision ResNet-18 on an image folder: extract → export → query → graph → report.

What a researcher with their own torchvision checkpoint and a folder of images does:

1. an image folder in torchvision's ``ImageFolder`` layout is built from MNIST
   (``DIR/train/<class>/*.png``, ``DIR/test/<class>/*.png``; RGB, 32×32: each digit padded
   by 2 pixels and repeated over three channels).  The full MNIST IDX files are used when
   ``--mnist`` points at them (``../shared/data/mnist`` from the repository), else the
   embedded subset;
2. ``torchvision.models.resnet18(num_classes=10)``, unchanged (its stem reduces a 32×32
   image to 1×1 at ``layer4``, which keeps training on CPU to a few minutes), is trained on
   that folder (read with ``torchvision.datasets.ImageFolder``) and its **state dict** saved
   as safetensors: exactly what a user brings;
3. the ``cnn2logic`` commands, printed before they run (the script doubles as the recipe):
   ``extract`` over ``layer4``'s 512 kernels with ``avgpool`` + ``fc`` as the output, the
   network given by ``--arch torchvision:resnet18 --arch-kwargs '{"num_classes": 10}'``;
   ``export`` (ASP with the test images' codes), ``query`` (implies, explain),
   ``graph`` and the HTML ``report``;
4. the same with a second torchvision family, MobileNetV3-small: kernel layer
   ``features`` (576 kernels), output ``classifier.3``, which does **not** read the pooled
   units directly (a hidden 1024-unit layer, Hardswish and dropout lie between), so the
   rules file says which layers the rules replace and how faithful the rest of the
   network is on binarised units (``network_on_bits_fidelity``).

Run (about 6 minutes on 2 cores)::

    python examples/resnet_imagefolder.py --out runs/resnet --mnist ../shared/data/mnist

or, as the test does, a small smoke run::

    python examples/resnet_imagefolder.py --out /tmp/rn --train-images 300 --test-images 100 \\
        --steps 20 --samples 2 --families resnet18
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The digit folders' names (class names come from the folder names; ImageFolder numbers
#: the classes in sorted folder order, which these keep equal to the digits).
CLASS_NAMES = tuple(str(d) for d in range(10))
#: Per family: torchvision name, kernel layer, output layer.
FAMILIES = {
    "resnet18": ("torchvision:resnet18", "layer4", "fc"),
    "mobilenet_v3_small": ("torchvision:mobilenet_v3_small", "features", "classifier.3"),
}


def run(cmd: list[str]) -> None:
    """Print a cnn2logic command and run it in this process; stop on failure."""
    from cnn2logic.cli import main

    print("$ cnn2logic " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    rc = main(cmd)
    if rc != 0:
        raise SystemExit(f"step failed with exit code {rc}: cnn2logic {cmd[0]}")


def mnist_rgb(source: str, train_images: int | None, test_images: int | None):
    """MNIST as RGB 32×32 uint8 arrays ``(n, 32, 32, 3)`` with labels, per split."""
    import numpy as np

    from cnn2logic.data import load_data

    data = load_data(source)
    out = {}
    for name, split, n in (("train", data.train, train_images),
                           ("test", data.test, test_images)):
        keep = _stratified(split.labels, n)
        grey = np.rint(split.images[keep, 0] * 255).astype(np.uint8)    # (n, 28, 28)
        grey = np.pad(grey, ((0, 0), (2, 2), (2, 2)))                   # (n, 32, 32)
        out[name] = (np.repeat(grey[..., None], 3, axis=3), split.labels[keep].astype(int))
    return out


def _stratified(labels, n: int | None):
    """The first ``n`` indices taking the classes in turn (all when ``n`` is None): a
    subset of a class-sorted set (the embedded one) still holds every class."""
    import numpy as np

    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rank = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):  # rank of each image within its class
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    order = np.lexsort((np.arange(len(labels)), labels, rank))
    return np.sort(order[:n])


def build_image_folder(root: Path, source: str = "embedded", train_images: int | None = None,
                       test_images: int | None = None) -> Path:
    """Write MNIST as an ``ImageFolder`` tree of RGB 32×32 PNGs under ``root``; return it.

    An existing tree (``root/.complete``) is kept as it is.
    """
    from PIL import Image

    if (root / ".complete").is_file():
        return root
    for split, (images, labels) in mnist_rgb(source, train_images, test_images).items():
        for c in CLASS_NAMES:
            (root / split / c).mkdir(parents=True, exist_ok=True)
        for i, (img, y) in enumerate(zip(images, labels)):
            Image.fromarray(img, "RGB").save(root / split / CLASS_NAMES[y] / f"{i:05d}.png")
    (root / ".complete").write_text("done\n")
    return root


def train_model(arch: str, kwargs: dict, folder: Path, steps: int, batch_size: int = 128,
                seed: int = 0):
    """Train the torchvision model on ``folder/train`` (Adam, ``steps`` batches)."""
    import torch
    from torch import nn
    from torchvision import datasets, transforms

    from cnn2logic.model.factory import build_arch

    torch.manual_seed(seed)
    train_set = datasets.ImageFolder(str(folder / "train"), transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    model = build_arch(arch, kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    done, t0 = 0, time.perf_counter()
    while done < steps:
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            done += 1
            if done % 50 == 0 or done == steps:
                print(f"  step {done}/{steps} loss {loss.item():.3f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
            if done >= steps:
                break
    # torchvision's MobileNetV3 keeps BatchNorm momentum at 0.01: after a few hundred steps
    # its running statistics are still near their initial values and the network in eval
    # mode answers one class for every image (measured: test accuracy 0.10, 0.914 after
    # this).  The statistics are re-estimated as plain averages over 20 training batches.
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over the batches below
    with torch.no_grad():
        for i, (xb, _) in enumerate(loader):
            model(xb)
            if i + 1 >= 20:
                break
    model.eval()
    return model


def one_family(family: str, folder: Path, out: Path, args: argparse.Namespace) -> dict:
    """Train (or reuse) one family's checkpoint and run every cnn2logic step on it."""
    from cnn2logic.model.load import save_weights
    from cnn2logic.rules import load_rules

    arch, layer, output = FAMILIES[family]
    kwargs = {"num_classes": len(CLASS_NAMES)}
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "model.safetensors"
    model_args = ["--arch", arch, "--arch-kwargs", json.dumps(kwargs)]
    data_args = ["--data", str(folder)]
    if args.reuse and ckpt.is_file():
        print(f"(reusing {ckpt})")
    else:
        print(f"[train] {arch} on {folder}/train for {args.steps} steps")
        model = train_model(arch, kwargs, folder, args.steps)
        save_weights(model, ckpt, factory=arch, factory_kwargs=kwargs)
    ex = out / "extract"
    print(f"[extract] rules over {layer} (output {output})")
    run(["extract", str(ckpt), *model_args, *data_args, "--layer", layer, "--output", output,
         "--out", str(ex), "--no-progress"])
    print("[export] ASP with the test images' codes, and Prolog")
    run(["export", str(ex / "rules.json"), "--activations", str(ex / "codes-test.npz"),
         "--out", str(out / "rules.lp")])
    run(["export", str(ex / "rules.json"), "--out", str(out / "rules.pl")])
    rules = load_rules(ex / "rules.json")
    heads = [r.head for r in rules.rules]
    cls = max(set(heads), key=lambda h: (heads.count(h), h)) if heads else rules.head_names[0]
    print("[query] clingo")
    run(["query", str(out / "rules.lp"), "implies", "--class", cls, "--limit", "5"])
    run(["query", str(out / "rules.lp"), "explain", "--image", "0"])
    print("[graph] kernel relations")
    run(["graph", str(ex / "rules.json"), "--out", str(out / "graph")])
    print("[report] HTML with each literal's top patches")
    run(["report", str(ckpt), str(ex / "rules.json"), *model_args, *data_args,
         "--visuals", str(out / "visuals"), "--samples", str(args.samples),
         "--title", f"{arch} on an MNIST image folder", "--out", str(out / "report.html"),
         "--no-progress"])
    m = rules.meta.get("metrics", {})
    summary = {k: m.get(k) for k in ("network_accuracy", "rule_accuracy", "fidelity",
                                     "network_on_bits_fidelity")}
    summary["rules"] = len(rules.rules)
    summary["replaces"] = (rules.meta.get("rest_of_network") or {}).get("replaces")
    print(f"{arch}: {json.dumps(summary)}")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/resnet")
    ap.add_argument("--mnist", default="embedded",
                    help="MNIST source for the image folder: 'embedded' or an IDX directory")
    ap.add_argument("--train-images", type=int, default=None)
    ap.add_argument("--test-images", type=int, default=None)
    ap.add_argument("--steps", type=int, default=300, help="training batches per family")
    ap.add_argument("--samples", type=int, default=8, help="SmoothGrad samples in the report")
    ap.add_argument("--families", default=",".join(FAMILIES),
                    help=f"comma-separated, from {', '.join(FAMILIES)}")
    ap.add_argument("--reuse", action="store_true", help="keep existing checkpoints")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    out = Path(args.out)
    print(f"[data] image folder from MNIST ({args.mnist})")
    folder = build_image_folder(out / "images", args.mnist, args.train_images,
                                args.test_images)
    summaries = {}
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        if family not in FAMILIES:
            raise SystemExit(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
        summaries[family] = one_family(family, folder, out / family, args)
    (out / "summary.json").write_text(json.dumps(summaries, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
