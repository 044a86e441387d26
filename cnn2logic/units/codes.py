"""Binary codes: binarised kernel units of a data set, with labels and predictions.

:class:`BinaryCodes` is what every extractor reads and what ``cnn2logic extract`` and
``cnn2logic merge`` write: a compact ``.npz`` (bits packed 8 per byte, no pickles).
:func:`codes_for` captures, binarises and labels one split in memory.

Example
-------
>>> import numpy as np
>>> from cnn2logic.rules import Variable
>>> codes = BinaryCodes(np.array([[True, False]]), (Variable("k1", "pool", 0),
...                     Variable("k2", "pool", 1)), ("a", "b"))
>>> codes.names, codes.ids
(('k1', 'k2'), ('img0',))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._io import atomic_path
from ..data import ImageSet
from ..errors import ActivationError
from ..model.spec import predict_logits
from ..rules import RuleSet, Variable
from ._npz import MAX_INDEX, Schema, read_npz
from .activations import KernelUnits, capture, capture_split, check_model_input
from .fidelity import fit_binarisation
from .thresholds import Thresholds


@dataclass(frozen=True)
class BinaryCodes:
    """Binarised kernel units of a data set, with what is known about each image.

    Attributes
    ----------
    bits : np.ndarray
        (images, kernels) bool.
    variables : tuple of Variable
        One per column.
    classes : tuple of str
        Class names (``labels`` and ``predictions`` index them).
    labels, predictions : np.ndarray or None
        Class indices per image; ``predictions`` are the network's.
    ids : tuple of str
        Image names (default ``img0..``).

    Raises
    ------
    ActivationError
        Shapes that do not fit together.
    """

    bits: np.ndarray
    variables: tuple[Variable, ...]
    classes: tuple[str, ...]
    labels: np.ndarray | None = None
    predictions: np.ndarray | None = None
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.bits.ndim != 2 or self.bits.shape[1] != len(self.variables):
            raise ActivationError(
                f"bits of shape {self.bits.shape} do not match {len(self.variables)} kernels"
            )
        if not self.ids:
            object.__setattr__(self, "ids", tuple(f"img{i}" for i in range(len(self.bits))))
        for what, arr in (("labels", self.labels), ("predictions", self.predictions)):
            if arr is not None and len(arr) != len(self.bits):
                raise ActivationError(f"{len(arr)} {what} for {len(self.bits)} images")

    def __len__(self) -> int:
        return len(self.bits)

    @property
    def names(self) -> tuple[str, ...]:
        """The variables' names, one per column."""
        return tuple(v.name for v in self.variables)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a compact ``.npz`` (bits packed 8 per byte), atomically."""
        arrays = {
            "bits": np.packbits(self.bits, axis=1),
            "n_kernels": np.array(self.bits.shape[1]),
            "var_names": np.array([v.name for v in self.variables]),
            "var_layers": np.array([v.layer for v in self.variables]),
            "var_index": np.array([v.index for v in self.variables]),
            "classes": np.array(self.classes),
            "ids": np.array(self.ids),
        }
        if self.labels is not None:
            arrays["labels"] = np.asarray(self.labels, dtype=np.int64)
        if self.predictions is not None:
            arrays["predictions"] = np.asarray(self.predictions, dtype=np.int64)
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "BinaryCodes":
        """Read codes written by :meth:`save`, checking every array against the rest.

        The schema: ``bits`` packed uint8 (rows, ceil(n_kernels / 8)); ``n_kernels`` an
        integer; ``var_names`` / ``var_layers`` strings and ``var_index`` integers, one per
        kernel; ``classes`` strings (at least one); ``ids`` one string per row; optional
        ``labels`` / ``predictions`` integers per row (-1 for unknown).

        Raises
        ------
        ActivationError
            Missing file, not an ``.npz``, damaged, or any array of the wrong type, shape
            or range (the one-line message names the file and the array).
        """
        z = Schema(read_npz(path, "activations"), path, "cnn2logic activations")
        n = z.integer("n_kernels", 0, MAX_INDEX)
        bits = z.packed_bits("bits", n)
        rows = len(bits)
        variables = tuple(Variable(a, b, int(c)) for a, b, c in zip(
            z.strings("var_names", n), z.strings("var_layers", n),
            z.integers("var_index", n, 0, MAX_INDEX)))
        classes = z.strings("classes")
        if not classes:
            raise z.fail("no classes")
        ids = z.strings("ids", rows)
        labels, predictions = (
            z.integers(key, rows, -1, MAX_INDEX) if z.has(key) else None
            for key in ("labels", "predictions"))
        return cls(bits, variables, classes, labels, predictions, ids)

    def check_fits(self, rules: RuleSet, where: str = "activations") -> None:
        """Refuse codes that do not belong to ``rules``: other class names.

        Codes of another data set (another class list) would make a program declare
        classes the rules never saw; the kernels are checked where they are read
        (:func:`cnn2logic.export.model` names the missing ones).

        Parameters
        ----------
        rules : RuleSet
        where : str
            How to name the codes (their file) in the message.

        Raises
        ------
        ActivationError
            The rules' class heads and the codes' classes differ.
        """
        heads = tuple(h.name for h in rules.heads if h.kind == "class")
        if heads and set(heads) != set(self.classes):
            raise ActivationError(
                f"{where}: classes {_short_list(self.classes)} differ from the rules' "
                f"classes {_short_list(heads)}")


def _short_list(names: Sequence[str], keep: int = 8) -> str:
    """``[a, b, ... (n in all)]`` for a message."""
    shown = ", ".join(repr(n)[:30] for n in names[:keep])
    return f"[{shown}{f', ... ({len(names)} in all)' if len(names) > keep else ''}]"


def check_binary(X: np.ndarray, what: str = "activations") -> np.ndarray:
    """``X`` as a bool matrix.

    Raises
    ------
    ActivationError
        A value other than 0 or 1 (the message names the first one and where it is).
    """
    X = np.asarray(X)
    if X.dtype == bool:
        return X
    bad = ~np.isin(X, (0, 1))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ActivationError(
            f"{what} are not binary: value {X[i, j].item()!r} at row {i}, column {j} "
            "(binarise them first)"
        )
    return X.astype(bool)


def codes_for(model: nn.Module, layer: str, split: Any, thresholds: Thresholds | None = None,
              *, threshold_method: str = "half", reduce: str = "max", progress: bool = True,
              qualified_names: bool = False, class_names: Sequence[str] | None = None,
              id_prefix: str = "img") -> tuple[BinaryCodes, KernelUnits, Thresholds]:
    """Capture, binarise and attach labels and network predictions for one split.

    Parameters
    ----------
    model : nn.Module
    layer : str
        The layer whose kernels are the variables.
    split : cnn2logic.data.ImageSet or cnn2logic.data.StreamSet
        Images and labels (anything with ``tensors()`` and ``classes``); a
        :class:`~cnn2logic.data.StreamSet` is read batch by batch.
    thresholds : Thresholds, optional
        Fitted elsewhere (the training split's); else fitted here with
        ``threshold_method``.
    reduce, progress, qualified_names
        As :func:`~cnn2logic.units.capture`.
    class_names : sequence of str, optional
        Instead of ``split.classes``.
    id_prefix : str
        Images are named ``<id_prefix>0..``.

    Returns
    -------
    tuple of (BinaryCodes, KernelUnits, Thresholds)

    Raises
    ------
    ModelError, ActivationError
        As :func:`~cnn2logic.units.capture` and :func:`~cnn2logic.units.fit_thresholds`.
    DataError
        As :func:`~cnn2logic.units.check_model_input` (images or labels the model cannot
        take).
    """
    if hasattr(split, "batches") and not isinstance(split, ImageSet):
        # a streamed split (image folder, Dataset): one pass, one batch of images at a time
        y_all = np.asarray(split.labels, dtype=np.int64)
        check_model_input(model, split.images[:1], y_all, split.name)
        units, preds = capture_split(model, layer, split, reduce=reduce, progress=progress,
                                     qualified_names=qualified_names)
        y = torch.from_numpy(y_all)
    else:
        x, y = split.tensors()
        check_model_input(model, x, y, getattr(split, "name", "data"))
        units = capture(model, layer, x, reduce=reduce, progress=progress,
                        qualified_names=qualified_names)
        preds = predict_logits(model, x).argmax(1).numpy()
    if thresholds is None:  # the fidelity binarisations fit against the predictions
        thresholds = fit_binarisation(units, threshold_method, preds)
    codes = BinaryCodes(thresholds.apply(units), units.variables,
                        tuple(class_names or split.classes), y.numpy(), preds,
                        tuple(f"{id_prefix}{i}" for i in range(len(y))))
    return codes, units, thresholds
