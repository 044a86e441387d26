"""Image folders in torchvision's ``ImageFolder`` layout, streamed batch by batch.

Layouts
-------
``DIR/train/<class>/*`` and ``DIR/test/<class>/*`` (or ``DIR/val/``)
    The two splits as given; class indices follow the training split's sorted folder
    names (a test class the training split lacks is refused).
``DIR/<class>/*``
    One set: a seeded, stratified 20 % of every class is held out as the test split, as
    for the embedded MNIST subset (same seed, same fraction).

Files are found by torchvision (``find_classes``' order, ``make_dataset`` with
``IMG_EXTENSIONS``; hidden files and folders are ignored) and decoded by PIL, one image at
a time when a batch is read: the folder is never one big tensor.  Before any image is
decoded every file's header is read (mode and size, no pixels) so that a folder mixing
grey and colour images, or sizes, fails at once with the fix named.  With
``skip_bad_images`` every image is also decoded once up front, so unreadable files are
dropped (and counted) before the splits are made; without it an unreadable file is a
one-line error naming it.

Class names are the folder names (NFC-normalised, so the same folder gives the same
rules on every file system); the exporters turn them into identifiers with the one
sanitiser, :mod:`cnn2logic.names`.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ..errors import DataError, DataFileNotFoundError
from .sets import STREAM_BATCH, DataSplits, StreamSet, holdout_mask
from .transform import ImageTransform

HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 20181213  # the embedded set's: one hold-out rule for every single set
TEST_DIRS = ("test", "val")

# PIL's modes that are one grey channel (with or without alpha); any other is colour.
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def _image_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image  # PIL: a torchvision dependency, needed for image folders only

    # what PIL raises on a truncated, corrupt or hostile file
    return (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def is_image_folder(root: Path) -> bool:
    """True when ``root`` holds class folders or ``train``/``test`` split folders."""
    return root.is_dir() and bool(_class_dirs(root))


def _class_dirs(d: Path) -> list[str]:
    with os.scandir(d) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def _has_images_directly(d: Path) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

    with os.scandir(d) as it:
        return any(e.is_file() and has_file_allowed_extension(e.name, IMG_EXTENSIONS)
                   for e in it)


def _samples(d: Path, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension, make_dataset

    def valid(path: str) -> bool:
        return (not os.path.basename(path).startswith(".")
                and has_file_allowed_extension(path, IMG_EXTENSIONS))

    return make_dataset(str(d), class_to_idx, is_valid_file=valid, allow_empty=True)


@dataclass(frozen=True)
class _Header:
    mode: str
    size: tuple[int, int]  # (height, width)


def scan_images(samples: list[tuple[str, int]], decode: bool, skip_bad: bool
                ) -> tuple[list[tuple[str, int]], list[_Header], list[str]]:
    """Read every file's header (and decode it when ``decode``): the files kept, their
    headers, and the files dropped as unreadable (only when ``skip_bad``).

    Raises
    ------
    DataError
        An unreadable file when ``skip_bad`` is False (one line naming it and the fix).
    """
    from PIL import Image  # PIL: image folders only

    errors = _image_errors()
    kept, headers, bad = [], [], []
    for path, label in samples:
        try:
            with Image.open(path) as im:
                if decode:
                    im.load()
                header = _Header(im.mode, (im.size[1], im.size[0]))
        except errors as exc:
            if not skip_bad:
                raise DataError(f"{path}: cannot read image ({_one_line(exc)}); fix or "
                                "remove it, or pass --skip-bad-images") from None
            bad.append(path)
            continue
        kept.append((path, label))
        headers.append(header)
    return kept, headers, bad


class FolderImages(Dataset):
    """``(image, label)`` items of an image folder, decoded by PIL on access.

    Parameters
    ----------
    samples : list of (str, int)
        Paths and class indices.
    mode : {"L", "RGB"}
        Every image is converted to this PIL mode.
    transform : ImageTransform
    """

    def __init__(self, samples: list[tuple[str, int]], mode: str,
                 transform: ImageTransform) -> None:
        self.samples = samples
        self.mode = mode
        self.transform = transform
        self.targets = [label for _, label in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image  # PIL: image folders only

        path, label = self.samples[i]
        try:
            with Image.open(path) as im:
                im = im.convert(self.mode)
        except _image_errors() as exc:
            raise DataError(f"{path}: cannot read image ({_one_line(exc)}); fix or remove it, "
                            "or pass --skip-bad-images") from None
        return self.transform.apply_pil(im, path), label


def _mode(paths: list[str], headers: list[_Header], transform: ImageTransform,
          where: str) -> str:
    """The PIL mode every image is converted to (the images' own unless ``channels``)."""
    if transform.channels is not None:
        return "L" if transform.channels == 1 else "RGB"
    grey = [h.mode in _GREY_MODES for h in headers]
    if all(grey):
        return "L"
    if any(grey):
        g, c = grey.index(True), grey.index(False)
        raise DataError(f"{where}: grey and colour images mixed ({paths[g]} is "
                        f"{headers[g].mode}, {paths[c]} is {headers[c].mode}): pass "
                        "--channels 3 (or 1) to convert them all")
    return "RGB"


def _check_sizes(paths: list[str], headers: list[_Header], transform: ImageTransform,
                 where: str) -> None:
    if transform.resize is not None:
        return
    if transform.center_crop is not None:
        ch, cw = transform.center_crop
        for p, h in zip(paths, headers):
            if h.size[0] < ch or h.size[1] < cw:
                raise DataError(f"{p}: image of {h.size[0]}x{h.size[1]} (height x width) is "
                                f"smaller than --center-crop {ch} {cw}; pass --resize H W")
        return
    first = headers[0].size
    for p, h in zip(paths, headers):
        if h.size != first:
            raise DataError(f"{where}: images differ in size ({paths[0]} is "
                            f"{first[0]}x{first[1]}, {p} is {h.size[0]}x{h.size[1]}, height "
                            "x width): pass --resize H W (or --center-crop H W)")


def _class_names(folders: list[str], where: str) -> tuple[str, ...]:
    names = tuple(unicodedata.normalize("NFC", f) for f in folders)
    if len(set(names)) != len(names):
        raise DataError(f"{where}: two class folders have the same name once Unicode is "
                        "normalised (NFC); rename one")
    return names


def load_image_folder(root: str | os.PathLike[str], transform: ImageTransform | None = None,
                      *, skip_bad_images: bool = False, batch_size: int = STREAM_BATCH,
                      workers: int = 0) -> DataSplits:
    """The train and test :class:`StreamSet` of an image folder (module docstring).

    Parameters
    ----------
    root : str or path
        The folder.
    transform : ImageTransform, optional
        Resize, crop, channels, normalisation.
    skip_bad_images : bool
        Decode every image once up front and drop (and count) the unreadable ones.
    batch_size, workers : int
        How the splits are read (``DataLoader`` batch size and worker processes).

    Returns
    -------
    DataSplits
        ``transform`` holds the settings, the layout and the skipped-image count.

    Raises
    ------
    DataFileNotFoundError
        ``root`` does not exist.
    DataError
        No class folders (the layout expected is named), a class with no images, a test
        class missing from training, mixed grey/colour images without ``channels``,
        images of several sizes without ``resize``, unreadable files (unless
        ``skip_bad_images``), or too few images to hold out a test split.
    """
    root = Path(root)
    transform = transform or ImageTransform()
    if not root.exists():
        raise DataFileNotFoundError(f"{root}: data directory does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: expected a directory of class folders")
    dirs = _class_dirs(root)
    if not dirs:
        hint = (" (its images lie directly in it: put each class's images in "
                f"{root}/<class>/)" if _has_images_directly(root) else "")
        raise DataError(f"{root}: no class folders{hint}; expected {root}/<class>/*.png, "
                        f"{root}/train/<class>/* and {root}/test/<class>/*, or MNIST IDX files")
    test_dir = next((t for t in TEST_DIRS if t in dirs), None)
    if "train" in dirs and test_dir is not None:
        layout = f"train/{test_dir}"
        train_root, test_root = root / "train", root / test_dir
        folders = _class_dirs(train_root)
        if not folders:
            raise DataError(f"{train_root}: no class folders; expected {train_root}/<class>/*")
        extra = sorted(set(_class_dirs(test_root)) - set(folders))
        if extra:
            raise DataError(f"{test_root}: class folder {extra[0]!r} is not in {train_root}; "
                            "both splits need the same classes")
        index = {f: i for i, f in enumerate(folders)}
        train_samples, test_samples = _samples(train_root, index), _samples(test_root, index)
    elif "train" in dirs and set(dirs) <= {"train"}:
        raise DataError(f"{root}: has train/ but no test/ (or val/); add one, or put the "
                        f"class folders directly in {root} for a held-out test split")
    else:
        layout = "holdout"
        folders, train_root = dirs, root
        index = {f: i for i, f in enumerate(folders)}
        train_samples, test_samples = _samples(root, index), []
    empty = sorted(set(folders) - {folders[y] for _, y in train_samples})
    if empty:
        raise DataError(f"{train_root / empty[0]}: no images (expected .png, .jpg, ... "
                        "files in every class folder)")
    classes = _class_names(folders, str(root))
    train_samples, tr_headers, bad = scan_images(train_samples, skip_bad_images,
                                                 skip_bad_images)
    test_samples, te_headers, bad_te = scan_images(test_samples, skip_bad_images,
                                                   skip_bad_images)
    bad += bad_te
    if not train_samples:
        raise DataError(f"{root}: no readable images")
    paths = [p for p, _ in train_samples + test_samples]
    headers = tr_headers + te_headers
    mode = _mode(paths, headers, transform, str(root))
    transform.check_channels(1 if mode == "L" else 3, str(root))
    _check_sizes(paths, headers, transform, str(root))
    if layout == "holdout":
        labels = np.array([y for _, y in train_samples], dtype=np.int64)
        mask = holdout_mask(labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
        test_samples = [s for s, m in zip(train_samples, mask) if m]
        train_samples = [s for s, m in zip(train_samples, mask) if not m]
    if not test_samples:
        raise DataError(f"{root}: no test images (a class needs 3 or more images for the "
                        f"{HOLDOUT_FRACTION:.0%} hold-out, or give {root}/test/<class>/)")

    def split(samples: list[tuple[str, int]], name: str) -> StreamSet:
        ds = FolderImages(samples, mode, transform)
        return StreamSet(ds, classes, f"{root.name}/{name}", batch_size, workers,
                         known_labels=np.asarray(ds.targets, dtype=np.int64))

    meta = {"kind": "image_folder", "layout": layout, **transform.to_meta(),
            "channels": 1 if mode == "L" else 3}
    if layout == "holdout":
        meta["holdout"] = {"fraction": HOLDOUT_FRACTION, "seed": HOLDOUT_SEED}
    if skip_bad_images:
        meta["skipped_images"] = len(bad)
        meta["skipped_files"] = [os.path.relpath(p, root) for p in bad[:20]]
    return DataSplits(split(train_samples, "train"), split(test_samples, "test"), str(root),
                      meta)
