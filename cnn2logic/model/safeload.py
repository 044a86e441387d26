"""Loading a model file never executes code from it: the archive checks and the guard.

``torch.export.load`` and ``torch.jit.load`` unpickle parts of their archives, and
unpickling runs whatever the file asks for.  A ``.pt2`` archive whose weights config marks a
tensor ``use_pickle: true`` (or that holds an "opaque" or "custom" object constant, or an
AOTInductor shared library) makes ``torch.export.load`` run code from the file.  So, before
any torch loader sees a zip archive:

* :func:`check_export_archive` reads the archive's directory and its JSON configs (plain
  reads, nothing unpickled) and refuses every entry that would be unpickled or loaded as
  native code;
* :func:`no_unpickling` is the second line of defence around the torch call itself: while it
  is active, ``torch.load`` runs with ``weights_only=True`` whatever its caller asked (torch's
  own restricted unpickler, which only rebuilds tensors and plain containers), and the other
  ways torch's reader unpickles (``pickle.load``/``loads``, torch's TorchScript object
  unpickler, ``torch.jit.load``, AOTInductor) raise :class:`~cnn2logic.errors.CheckpointError`
  instead.  A path through torch that the archive check does not know about is refused
  there rather than executed.
* TorchScript archives (``code/`` plus ``data.pkl``) are executable programs by design: their
  classes' ``__setstate__`` methods run on load.  They are refused unless the user passes
  ``trust=True`` (``--trust-model-file`` on the command line).

``trust=True`` turns both checks off: use it only for files you made yourself.

Example
-------
>>> import io, pickle
>>> with no_unpickling("evil.pt2"):
...     try:
...         pickle.loads(pickle.dumps(1))
...     except Exception as exc:
...         print(type(exc).__name__)
CheckpointError
"""

from __future__ import annotations

import contextlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import CheckpointError

TRUST_HINT = ("pass --trust-model-file (trust=True) only if you made this file yourself, or "
              "save the weights as safetensors and use --factory")

# Prefixes of constant payloads in a .pt2 archive that torch unpickles whatever the config
# says (torch/export/pt2_archive/constants.py): TorchScript objects and opaque Python objects.
_UNPICKLED_CONSTANT_PREFIXES = ("custom_obj_", "opaque_obj_")
# A config file may not be larger than this: it is JSON we parse before refusing anything.
_MAX_CONFIG_BYTES = 64 << 20


def check_export_archive(path: str | Path) -> None:
    """Refuse a ``torch.export`` archive holding anything that would be unpickled.

    Reads only the zip directory and the weights/constants JSON configs.

    Parameters
    ----------
    path : path
        The ``.pt2`` archive.

    Raises
    ------
    CheckpointError
        A payload marked ``use_pickle``, an opaque or TorchScript object constant, an
        AOTInductor library, or a config that is not the JSON torch writes.
    """
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as zf:
            for info in zf.infolist():
                name = info.filename
                if "/data/aotinductor/" in name or name.startswith("data/aotinductor/"):
                    raise CheckpointError(f"{p}: refused: it holds compiled AOTInductor code "
                                          f"({name}), which would be loaded; {TRUST_HINT}")
                if name.endswith(".pkl"):
                    raise CheckpointError(f"{p}: refused: entry {name} would be unpickled; "
                                          f"{TRUST_HINT}")
                if name.endswith("_weights_config.json") or name.endswith("_constants_config.json"):
                    _check_payload_config(p, name, _read_config(p, zf, info))
    except CheckpointError:  # our own refusals (a ValueError too): pass them on as they are
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
        # ValueError covers a mangled member name (UnicodeDecodeError) as well
        raise CheckpointError(f"{p}: corrupt zip archive") from None


def _read_config(p: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Any:
    if info.file_size > _MAX_CONFIG_BYTES:
        raise CheckpointError(f"{p}: {info.filename} is {info.file_size} bytes, over the "
                              f"{_MAX_CONFIG_BYTES} a weights config may have")
    try:
        return json.loads(zf.read(info).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError, zipfile.BadZipFile, OSError):
        raise CheckpointError(f"{p}: {info.filename} is not valid JSON") from None


def _check_payload_config(p: Path, name: str, config: Any) -> None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise CheckpointError(f"{p}: {name} has no 'config' object")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict):
            raise CheckpointError(f"{p}: {name}: entry {str(fqn)[:80]!r} is not an object")
        if meta.get("use_pickle") is not False:
            raise CheckpointError(f"{p}: refused: {name} marks {str(fqn)[:80]!r} as pickled "
                                  f"(use_pickle), which would run code; {TRUST_HINT}")
        path_name = meta.get("path_name")
        if not isinstance(path_name, str) or path_name.startswith(_UNPICKLED_CONSTANT_PREFIXES):
            raise CheckpointError(f"{p}: refused: {name} entry {str(fqn)[:80]!r} is a pickled "
                                  f"object ({str(path_name)[:40]!r}); {TRUST_HINT}")


def check_torchscript(path: str | Path, trust: bool) -> None:
    """Refuse a TorchScript archive unless the user trusts it.

    Parameters
    ----------
    path : path
        Named in the message.
    trust : bool

    Raises
    ------
    CheckpointError
        ``trust`` is false.
    """
    if not trust:
        raise CheckpointError(f"{path}: refused: a TorchScript archive runs code from the file "
                              f"when it is loaded; {TRUST_HINT}")


@contextlib.contextmanager
def no_unpickling(path: str | Path) -> Iterator[None]:
    """While active, torch can rebuild tensors but nothing can be unpickled or loaded as code.

    Not thread-safe (it swaps module attributes); the command line is single-threaded.

    Parameters
    ----------
    path : path
        Named in the message of a refusal.

    Yields
    ------
    None

    Raises
    ------
    CheckpointError
        (from inside the block) whenever the code under it tries to unpickle.
    """
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise CheckpointError(f"{path}: refused: loading it would unpickle an object, which "
                              f"can run code; {TRUST_HINT}")

    original_load = torch.load

    def weights_only_load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return original_load(*args, **kwargs)

    from torch.export.pt2_archive import _package as pt2_package  # only here: it is torch-internal

    # pickle.Unpickler itself is left alone: torch modules imported lazily during a load
    # subclass it at import time, and a swapped class would stay their base for good.
    # What unpickles in torch's .pt2 reader goes through the functions swapped here.
    swaps = [(torch, "load", weights_only_load), (pickle, "load", refuse),
             (pickle, "loads", refuse),
             (torch.jit, "load", refuse), (torch._C, "_pickle_load_obj", refuse),
             (pt2_package, "_load_aoti", refuse)]
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in swaps if hasattr(obj, attr)]
    try:
        for obj, attr, value in swaps:
            if hasattr(obj, attr):
                setattr(obj, attr, value)
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)
