"""Image data sets: the embedded MNIST subset, IDX directories, image folders, arrays,
and any ``torch.utils.data.Dataset``.

``load_data(source)`` returns a :class:`DataSplits` with a ``train`` and a ``test`` split.
MNIST (embedded or IDX) and ``.npz`` arrays are in-memory :class:`ImageSet` objects
(float32 ``(n, c, h, w)``); an image folder gives :class:`StreamSet` objects that decode
images batch by batch through a ``DataLoader`` (never one big tensor).  Every split has
``len()``, ``labels``, ``classes``, ``name``, ``images[...]``, ``subset(n)`` and
``batches()``.  :func:`as_splits` turns what a Python caller passes (Datasets,
DataLoaders, a ``(train, test)`` pair) into the same :class:`DataSplits`.
:class:`ImageTransform` is the preprocessing (``--resize``, ``--center-crop``,
``--mean/--std``, ``--channels``), recorded in ``DataSplits.transform``.

For IDX data too large for memory, :func:`open_split` gives a split's size and classes
without reading its images and :func:`iter_batches` streams a range of them (sharded
capture, :mod:`cnn2logic.units.shards`).

Modules: :mod:`~cnn2logic.data.sets` (the split types), :mod:`~cnn2logic.data.mnist`,
:mod:`~cnn2logic.data.folder`, :mod:`~cnn2logic.data.arrays`,
:mod:`~cnn2logic.data.transform`, :mod:`~cnn2logic.data.loader`.

Example
-------
>>> from cnn2logic.data import load_data
>>> d = load_data("embedded")
>>> d.train.images.shape[1:], len(d.train) + len(d.test)
((1, 28, 28), 5000)
"""

from __future__ import annotations

from .arrays import load_arrays
from .folder import FolderImages, load_image_folder
from .loader import as_split, as_splits, load_data
from .mnist import (EMBEDDED, EMBEDDED_SPLIT_SEED, EMBEDDED_TEST_FRACTION, MAX_CLASSES,
                    SplitInfo, has_idx, iter_batches, load_embedded, load_idx_dir, open_split,
                    read_idx)
from .sets import (MEMORY_BATCH, STREAM_BATCH, DataSplits, ImageSet, LazyImages, StreamSet,
                   collate_items, holdout_mask, item_tensor, spread_indices)
from .transform import ImageTransform

__all__ = [
    "EMBEDDED", "EMBEDDED_SPLIT_SEED", "EMBEDDED_TEST_FRACTION", "MAX_CLASSES",
    "MEMORY_BATCH", "STREAM_BATCH", "DataSplits", "FolderImages", "ImageSet",
    "ImageTransform", "LazyImages", "SplitInfo", "StreamSet", "as_split", "as_splits",
    "collate_items", "has_idx", "holdout_mask", "item_tensor", "iter_batches", "load_arrays",
    "load_data", "load_embedded", "load_idx_dir", "load_image_folder", "open_split",
    "read_idx", "spread_indices",
]
