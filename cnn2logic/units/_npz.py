"""The one reader of cnn2logic's ``.npz`` files (codes and shards), with a schema.

:func:`read_npz` opens the zip archive itself and reads every member's ``.npy`` header
before any data: object (pickled) dtypes are refused, and a member whose header declares
more bytes than the archive holds is refused before anything is allocated.  Every failure
of a damaged file (a cut or corrupt zip, a bad CRC, a bad header) becomes one
:class:`~cnn2logic.errors.ActivationError` naming the file.  The helpers then check each
array's type and shape (:func:`scalar`, :func:`strings`, :func:`integers`, :func:`floats`,
:func:`packed_bits`), so a reader states its file's schema once, field by field.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ActivationError

# What a damaged zip or .npy member can raise while being read (zipfile raises
# BadZipFile, struct.error, NotImplementedError for unknown compression and RuntimeError
# for encrypted members; numpy's header parser raises ValueError).
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, struct.error, zlib.error,
                zipfile.LargeZipFile, NotImplementedError, RuntimeError, OverflowError,
                MemoryError, SyntaxError, TypeError)

#: Image and class indices in codes and shards stay below this (int64 would be accepted by
#: numpy, but an index of 2**62 is a corrupt file, not data).
MAX_INDEX = 2**31 - 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member, header checked against the archive before reading the data."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if dtype.hasobject:
            raise ValueError("holds Python objects (a pickle), which are never loaded")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if nbytes > info.file_size:
            raise ValueError(f"header declares {nbytes} bytes, the archive holds "
                             f"{info.file_size}")
        buf = bytearray(nbytes)
        view, got = memoryview(buf), 0
        while got < nbytes:
            n = fh.readinto(view[got:])
            if not n:
                raise ValueError(f"truncated ({got} of {nbytes} bytes)")
            got += n
        if fh.read(1):
            raise ValueError("data beyond the declared shape")
    arr = np.frombuffer(buf, dtype=dtype, count=count) if count else np.empty(0, dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


def read_npz(path: str | Path, kind: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, by name (no pickles, sizes checked).

    Parameters
    ----------
    path : str or Path
    kind : str
        What the file should be ("activations", "activation shard"), for messages.

    Returns
    -------
    dict of str to np.ndarray

    Raises
    ------
    ActivationError
        Missing file, not a zip of ``.npy`` arrays, or a damaged member; names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ActivationError(f"{kind} file not found: {p}")
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(p) as zf:
            for info in zf.infolist():
                name = info.filename
                if not name.endswith(".npy") or name[:-4] in arrays:
                    raise ValueError(f"member {name[:60]!r} is not one .npy array")
                try:
                    arrays[name[:-4]] = _read_member(zf, info)
                except _READ_ERRORS as exc:
                    raise ValueError(f"array {name[:-4][:60]!r}: {_one_line(exc)}") from None
    except zipfile.BadZipFile as exc:
        raise ActivationError(f"{p}: not a cnn2logic {kind} file (not an .npz archive: "
                              f"{_one_line(exc)})") from None
    except _READ_ERRORS as exc:
        raise ActivationError(f"{p}: not a readable {kind} file ({_one_line(exc)})") from None
    return arrays


class Schema:
    """Typed access to the arrays of one file; each failure names the file and the field.

    Parameters
    ----------
    arrays : mapping of str to np.ndarray
        From :func:`read_npz`.
    path : str or Path
    kind : str
        For messages.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], path: str | Path, kind: str) -> None:
        self.arrays, self.path, self.kind = arrays, Path(path), kind

    def fail(self, message: str) -> ActivationError:
        """An :class:`ActivationError` naming the file."""
        return ActivationError(f"{self.path}: not a valid {self.kind} file: {message}")

    def has(self, key: str) -> bool:
        """Whether the file holds ``key``."""
        return key in self.arrays

    def get(self, key: str) -> np.ndarray:
        """The array ``key``, required.

        Raises
        ------
        ActivationError
            ``key`` is missing.
        """
        if key not in self.arrays:
            raise self.fail(f"no {key!r} array")
        return self.arrays[key]

    def scalar(self, key: str, kind: str) -> Any:
        """A 0-d array of kind ``"int"`` or ``"str"`` as a Python value.

        Raises
        ------
        ActivationError
            Missing, not 0-d, or of another type.
        """
        a = self.get(key)
        ok = a.dtype.kind in ("iu" if kind == "int" else "U")
        if a.ndim != 0 or not ok:
            raise self.fail(f"{key!r} must be one {kind}, got {a.dtype} of shape {a.shape}")
        return int(a) if kind == "int" else str(a)

    def integer(self, key: str, low: int, high: int) -> int:
        """An integer scalar in ``low..high``.

        Raises
        ------
        ActivationError
            Missing, not an integer, or out of range.
        """
        v = self.scalar(key, "int")
        if not low <= v <= high:
            raise self.fail(f"{key!r} is {v}, not in {low}..{high}")
        return v

    def strings(self, key: str, n: int | None = None) -> tuple[str, ...]:
        """A 1-d array of strings (length ``n`` when given); an empty array of any type.

        Raises
        ------
        ActivationError
            Missing, not 1-d strings, or of another length.
        """
        a = self.get(key)
        if a.ndim != 1 or (a.dtype.kind != "U" and len(a)):
            raise self.fail(f"{key!r} must be a list of strings, got {a.dtype} of shape "
                            f"{a.shape}")
        if n is not None and len(a) != n:
            raise self.fail(f"{len(a)} {key} for {n}")
        return tuple(str(x) for x in a)

    def integers(self, key: str, n: int, low: int, high: int) -> np.ndarray:
        """A 1-d integer array of length ``n`` with values in ``low..high``, as int64.

        Raises
        ------
        ActivationError
            Missing, not integers, of another length, or out of range.
        """
        a = self.get(key)
        if a.ndim != 1 or (a.dtype.kind not in "iu" and len(a)):
            raise self.fail(f"{key!r} must be a list of integers, got {a.dtype} of shape "
                            f"{a.shape}")
        if len(a) != n:
            raise self.fail(f"{len(a)} {key} for {n} rows")
        if len(a) and (int(a.min()) < low or int(a.max()) > high):
            bad = int(a.min()) if int(a.min()) < low else int(a.max())
            raise self.fail(f"{key!r} holds {bad}, not in {low}..{high}")
        return a.astype(np.int64)

    def floats(self, key: str, shape: tuple[int, ...], allow_inf: bool = False) -> np.ndarray:
        """A float array of exactly ``shape``: no NaN, and no infinity unless ``allow_inf``.

        Raises
        ------
        ActivationError
            Missing, not floats, of another shape, or not finite.
        """
        a = self.get(key)
        if a.dtype.kind != "f" and a.size:
            raise self.fail(f"{key!r} must hold floats, got {a.dtype}")
        if a.shape != shape:
            raise self.fail(f"{key!r} has shape {a.shape}, expected {shape}")
        bad = np.isnan(a) if allow_inf else ~np.isfinite(a)
        if a.size and bad.any():
            raise self.fail(f"{key!r} holds NaN{'' if allow_inf else ' or infinity'}")
        return a

    def packed_bits(self, key: str, n_bits: int) -> np.ndarray:
        """A 2-d uint8 array of bits packed 8 per byte, unpacked to ``n_bits`` columns.

        Raises
        ------
        ActivationError
            Missing, not uint8, 2-d, or its width does not match ``n_bits``.
        """
        a = self.get(key)
        if a.ndim != 2 or (a.dtype != np.uint8 and a.size):
            raise self.fail(f"{key!r} must be packed bits (uint8, 2-d), got {a.dtype} of "
                            f"shape {a.shape}")
        if a.shape[1] != (n_bits + 7) // 8:
            raise self.fail(f"{key!r} holds {a.shape[1]} bytes per row, {n_bits} kernels "
                            f"need {(n_bits + 7) // 8}")
        return np.unpackbits(a.astype(np.uint8), axis=1, count=n_bits).astype(bool)

    def json_text(self, key: str) -> Any:
        """A string scalar holding JSON, parsed.

        Raises
        ------
        ActivationError
            Missing, not a string, or not JSON (also too deep or with huge integers).
        """
        text = self.scalar(key, "str")
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise self.fail(f"{key!r} is not JSON ({_one_line(exc)[:80]})") from None
