"""Arrays in an ``.npz`` file: for users whose images are already numpy arrays.

Keys
----
``images`` and ``labels``
    One set; a seeded, stratified 20 % of every class is held out as the test split (as
    for the embedded set and a single image folder).
``train_images``, ``train_labels``, ``test_images``, ``test_labels``
    The two splits as given.
``classes`` (optional)
    One name per class (strings); default ``0..`` up to the largest label.

Images are ``(n, c, h, w)`` or ``(n, h, w, c)`` with 1 or 3 channels, or ``(n, h, w)``
(grey): ``uint8`` (scaled by 1/255), other integers within 0..255 (the same), or finite
floats (kept as they are: arrays may be normalised already).  The file is read with
``allow_pickle=False`` (an object array is refused, never unpickled) and every array is
checked: kinds, shapes, ranges and lengths.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError, DataFileNotFoundError
from .folder import HOLDOUT_FRACTION, HOLDOUT_SEED
from .mnist import check_labels
from .sets import DataSplits, ImageSet, holdout_mask

SINGLE = ("images", "labels")
SPLIT = ("train_images", "train_labels", "test_images", "test_labels")
_KNOWN = frozenset(SINGLE + SPLIT + ("classes",))


def is_array_file(path: Path) -> bool:
    """True when ``path`` names an ``.npz`` file (existing or not)."""
    return path.suffix.lower() == ".npz" and not path.is_dir()


def _images(arr: np.ndarray, where: str) -> np.ndarray:
    """``arr`` as float32 ``(n, c, h, w)`` after the checks of the module docstring."""
    if arr.dtype.kind == "u" or arr.dtype.kind == "i":
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"{where}: integer images must lie in 0..255, found "
                            f"{int(arr.min())}..{int(arr.max())} (store floats for other "
                            "scales)")
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise DataError(f"{where}: images hold NaN or infinity")
    else:
        raise DataError(f"{where}: images must be uint8 or float, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[1] not in (1, 3):
        if arr.shape[3] not in (1, 3):
            raise DataError(f"{where}: images of shape {arr.shape}: expected (n, c, h, w) or "
                            "(n, h, w, c) with 1 or 3 channels")
        arr = arr.transpose(0, 3, 1, 2)
    elif arr.ndim != 4:
        raise DataError(f"{where}: images must be (n, c, h, w), (n, h, w, c) or (n, h, w), "
                        f"got shape {arr.shape}")
    if min(arr.shape) == 0:
        raise DataError(f"{where}: no images (shape {arr.shape})")
    return np.ascontiguousarray(arr)


def _classes(data, top: int, where: str) -> tuple[str, ...]:
    if "classes" not in data:
        return tuple(str(c) for c in range(max(top + 1, 1)))
    names = data["classes"]
    if names.dtype.kind not in "US" or names.ndim != 1:
        raise DataError(f"{where}: 'classes' must be a 1-d array of strings, got "
                        f"{names.dtype} {names.shape}")
    out = tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
                for n in names.tolist())
    if len(out) <= top:
        raise DataError(f"{where}: label {top} but 'classes' names only {len(out)} classes")
    if len(set(out)) != len(out):
        raise DataError(f"{where}: 'classes' repeats a name")
    return out


def load_arrays(path: str | os.PathLike[str]) -> DataSplits:
    """The train and test :class:`ImageSet` of an ``.npz`` file (module docstring).

    Raises
    ------
    DataFileNotFoundError
        The file does not exist.
    DataError
        Not a readable ``.npz``, an object array, missing or unknown keys, bad kinds,
        shapes or ranges, image and label counts that differ, or train and test images of
        different shapes.
    """
    p = Path(path)
    if not p.is_file():
        raise DataFileNotFoundError(f"{p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as npz:
            keys = set(npz.files)
            unknown = sorted(keys - _KNOWN)
            if unknown:
                raise DataError(f"{p}: unknown array {unknown[0]!r}; expected 'images' and "
                                "'labels' (or train_/test_ ones) and optionally 'classes'")
            if set(SINGLE) <= keys:
                wanted = SINGLE + (("classes",) if "classes" in keys else ())
            elif set(SPLIT) <= keys:
                wanted = SPLIT + (("classes",) if "classes" in keys else ())
            else:
                raise DataError(f"{p}: expected arrays 'images' and 'labels' (or "
                                f"{', '.join(SPLIT)}), found {sorted(keys) or 'none'}")
            data = {k: npz[k] for k in wanted}
    except DataError:
        raise
    except ValueError as exc:  # an object array under allow_pickle=False, a bad header
        raise DataError(f"{p}: cannot read arrays ({' '.join(str(exc).split())[:160]})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{p}: not a readable .npz file ({type(exc).__name__})") from None
    pairs = [("images", "labels")] if "images" in data else [("train_images", "train_labels"),
                                                              ("test_images", "test_labels")]
    sets = []
    for ik, lk in pairs:
        images = _images(data[ik], f"{p}:{ik}")
        labels = check_labels(data[lk], Path(f"{p}:{lk}"))
        if len(images) != len(labels):
            raise DataError(f"{p}: {len(images)} images in {ik!r} but {len(labels)} labels "
                            f"in {lk!r}")
        sets.append((images, labels))
    top = max(int(lab.max(initial=0)) for _, lab in sets)
    classes = _classes(data, top, str(p))
    if len(sets) == 1:
        images, labels = sets[0]
        mask = holdout_mask(labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
        if not mask.any():
            raise DataError(f"{p}: too few images per class for the {HOLDOUT_FRACTION:.0%} "
                            "hold-out; store train_/test_ arrays")
        sets = [(images[~mask], labels[~mask]), (images[mask], labels[mask])]
        layout = "holdout"
    else:
        layout = "train/test"
    if sets[0][0].shape[1:] != sets[1][0].shape[1:]:
        raise DataError(f"{p}: train images {sets[0][0].shape[1:]} and test images "
                        f"{sets[1][0].shape[1:]} differ in shape")
    meta = {"kind": "arrays", "layout": layout}
    if layout == "holdout":
        meta["holdout"] = {"fraction": HOLDOUT_FRACTION, "seed": HOLDOUT_SEED}
    return DataSplits(ImageSet(sets[0][0], sets[0][1], classes, f"{p.name}/train"),
                      ImageSet(sets[1][0], sets[1][1], classes, f"{p.name}/test"),
                      str(p), meta)
