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
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import nn

from .._io import atomic_path
from ..errors import ActivationError
from ..model.spec import predict_logits
from ..rules import Variable
from .activations import KernelUnits, capture
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
        """Read codes written by :meth:`save`.

        Raises
        ------
        ActivationError
            Missing file, or not a cnn2logic activations file.
        """
        p = Path(path)
        if not p.is_file():
            raise ActivationError(f"activations file not found: {p}")
        try:
            with np.load(p, allow_pickle=False) as z:
                n = int(z["n_kernels"])
                bits = np.unpackbits(z["bits"], axis=1, count=n).astype(bool)
                variables = tuple(
                    Variable(str(a), str(b), int(c))
                    for a, b, c in zip(z["var_names"], z["var_layers"], z["var_index"])
                )
                return cls(
                    bits, variables, tuple(str(c) for c in z["classes"]),
                    z["labels"] if "labels" in z else None,
                    z["predictions"] if "predictions" in z else None,
                    tuple(str(i) for i in z["ids"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ActivationError(f"{p}: not a cnn2logic activations file ({exc})") from None


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
    split : cnn2logic.data.ImageSet
        Images and labels (anything with ``tensors()`` and ``classes``).
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
    """
    x, y = split.tensors()
    units = capture(model, layer, x, reduce=reduce, progress=progress,
                    qualified_names=qualified_names)
    preds = predict_logits(model, x).argmax(1).numpy()
    if thresholds is None:  # the fidelity binarisations fit against the predictions
        thresholds = fit_binarisation(units, threshold_method, preds)
    codes = BinaryCodes(thresholds.apply(units), units.variables,
                        tuple(class_names or split.classes), y.numpy(), preds,
                        tuple(f"{id_prefix}{i}" for i in range(len(y))))
    return codes, units, thresholds
