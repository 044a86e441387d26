"""Bring your own CNN: load any ``torch.nn.Module`` a user can build, with its weights.

cnn2logic needs two things from a model: a layer whose output is the kernels' maps
(``(n, kernels, h, w)``; any conv, activation, BatchNorm or pooling layer, named as in
``model.named_modules()``) and the linear layer that reads one pooled value per kernel.
Three ways in:

``factory`` + weights
    ``"package.module:function"`` or ``"path/to/file.py:function"`` builds the module
    (``factory_kwargs`` are passed to it); the weights come from a plain state dict in a
    safetensors file, a ``.pt``/``.pth`` file read with ``torch.load(weights_only=True)``
    (nothing is unpickled beyond tensors and plain containers), a TorchScript archive or a
    ``torch.export`` ``.pt2`` file.  This route always works (factories:
    :mod:`cnn2logic.model.factory`).
a ``torch.export`` program (``.pt2``)
    unflattened into a module whose named layers take forward hooks
    (:mod:`cnn2logic.model.exported`).  Export with a dynamic batch dimension
    (``dynamic_shapes=({0: torch.export.Dim("batch")},)``) or with batch size 1.
a cnn2logic checkpoint
    anything :func:`cnn2logic.model.load_checkpoint` reads.

TorchScript modules do not support Python forward hooks (measured: ``register_forward_hook``
raises ``RuntimeError`` on a ``ScriptModule``), so a TorchScript file on its own is refused
with a message pointing at the factory route, which can take the TorchScript file's weights.

Example
-------
>>> import tempfile, pathlib, torch
>>> from torch import nn
>>> from cnn2logic.model import import_factory, load_model, save_weights
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "mynet.py").write_text(
...     "from torch import nn\\n"
...     "def make(k=4):\\n"
...     "    return nn.Sequential(nn.Conv2d(1, k, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1),\\n"
...     "                         nn.Flatten(), nn.Linear(k, 3))\\n")
>>> net = import_factory(f"{d}/mynet.py:make")(k=4)
>>> save_weights(net, d / "w.safetensors")
>>> again = load_model(d / "w.safetensors", factory=f"{d}/mynet.py:make",
...                    factory_kwargs={"k": 4})
>>> bool(torch.equal(again[0].weight, net[0].weight))
True
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file
from torch import nn

from .._io import atomic_path
from ..errors import CheckpointError, ModelError
from .exported import load_exported, load_program
from .factory import build_from_factory
from .logic_head import LOGIC_KEY, apply_logic_layers
from .safeload import check_torchscript
from .spec import load_checkpoint, read_safetensors, read_weights_only

FACTORY_KEY = "cnn2logic_factory"
FACTORY_KWARGS_KEY = "cnn2logic_factory_kwargs"

#: What :func:`checkpoint_kind` can tell apart.
KINDS = ("safetensors", "torch-save", "torchscript", "torch-export")


# -- files -----------------------------------------------------------------------------

def checkpoint_kind(path: str | os.PathLike[str]) -> str:
    """Which kind of weights file ``path`` is (one of :data:`KINDS`), from its content.

    Parameters
    ----------
    path : path

    Returns
    -------
    str
        ``"safetensors"``, ``"torch-save"``, ``"torchscript"`` or ``"torch-export"``.

    Raises
    ------
    CheckpointError
        The file does not exist or is none of the known kinds.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    with open(p, "rb") as fh:
        head = fh.read(16)
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(p) as zf:
                names = zf.namelist()
        # A damaged directory raises more than BadZipFile (a mangled member name is a
        # UnicodeDecodeError, a bad offset an OSError or ValueError).
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
            raise CheckpointError(f"{p}: corrupt zip archive") from None
        if any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("/archive_format") or "/models/" in n for n in names):
            return "torch-export"
        return "torch-save"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    raise CheckpointError(
        f"{p}: not a safetensors, torch.save, TorchScript or torch.export file"
    )


def read_state_dict(path: str | os.PathLike[str], *, trust: bool = False
                    ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors (a state dict) and string metadata from any supported weights file.

    ``.pt`` files are read with ``torch.load(weights_only=True)``; a dict holding a
    ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` entry is unwrapped.  Nothing in
    the file is executed: see :mod:`cnn2logic.model.safeload` (``trust=True`` lifts that for a
    TorchScript archive or a ``.pt2`` with pickled entries you made yourself).

    Parameters
    ----------
    path : path
        Any of :data:`KINDS`.
    trust : bool
        Allow files that run code when loaded.

    Returns
    -------
    state : dict of str to torch.Tensor
    metadata : dict of str to str
        The safetensors metadata (or a ``.pt`` file's ``"spec"``); empty otherwise.

    Raises
    ------
    CheckpointError
        Unreadable file, no tensors in it, or a file that would run code (without ``trust``).
    """
    p = Path(path)
    kind = checkpoint_kind(p)
    meta: dict[str, str] = {}
    if kind == "safetensors":
        state, meta = read_safetensors(p)
    elif kind == "torch-save":
        obj = read_weights_only(p, "not a weights-only torch file",
                                "; save it with torch.save(model.state_dict(), path)")
        if isinstance(obj, Mapping):
            for key in ("state_dict", "model_state_dict", "model"):
                if isinstance(obj.get(key), Mapping):
                    if isinstance(obj.get("spec"), str):
                        meta["cnn2logic_spec"] = obj["spec"]
                    obj = obj[key]
                    break
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"{p}: expected a state dict, found {type(obj).__name__}")
        state = dict(obj)
    elif kind == "torchscript":
        state = {k: v.detach() for k, v in _load_torchscript(p, trust).state_dict().items()}
    else:
        ep = load_program(p, trust)
        state = {k: v.detach() for k, v in ep.state_dict.items()}
        state.update({k: v for k, v in ep.constants.items() if isinstance(v, torch.Tensor)})
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{p}: holds no tensors")
    return tensors, meta


def save_weights(model: nn.Module, path: str | os.PathLike[str], *, factory: str | None = None,
                 factory_kwargs: Mapping[str, Any] | None = None,
                 extra: Mapping[str, str] | None = None) -> None:
    """Write ``model.state_dict()`` as safetensors, atomically.

    ``factory`` and ``factory_kwargs`` are recorded as metadata so that an error message
    can tell the user which ``--factory`` rebuilds the model; they are never imported
    automatically.

    Parameters
    ----------
    model : nn.Module
    path : path
    factory : str, optional
    factory_kwargs : mapping, optional
    extra : mapping of str to str, optional
        More metadata.
    """
    tensors = _unshared({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()})
    metadata = dict(extra or {})
    if factory:
        metadata[FACTORY_KEY] = factory
        metadata[FACTORY_KWARGS_KEY] = json.dumps(dict(factory_kwargs or {}), sort_keys=True)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors sharing storage (tied weights): give each its own.
    seen: set[int] = set()
    out = {}
    for k in sorted(tensors):
        v = tensors[k]
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        if ptr in seen:
            v = v.clone()
        seen.add(ptr)
        out[k] = v
    return out


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file (identifies the model behind shards and rules).

    Parameters
    ----------
    path : path

    Returns
    -------
    str
        The hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- loading ---------------------------------------------------------------------------

def load_model(path: str | os.PathLike[str], *, factory: str | None = None,
               factory_kwargs: Mapping[str, Any] | str | None = None,
               strict: bool = True, trust: bool = False) -> nn.Module:
    """A ready-to-use model (eval mode) from any model file; see the module docstring.

    Parameters
    ----------
    path : path
        safetensors, ``.pt``/``.pth`` (weights only), TorchScript or ``.pt2`` file.
    factory : str, optional
        ``"package.module:function"`` or ``"file.py:function"`` building the module.
    factory_kwargs : mapping, JSON text or JSON file, optional
    strict : bool
        Passed to ``load_state_dict``.
    trust : bool
        Allow files that run code when loaded (TorchScript; ``.pt2`` with pickled entries).
        Off by default: see :mod:`cnn2logic.model.safeload`.

    Returns
    -------
    nn.Module
        In eval mode.

    Raises
    ------
    CheckpointError
        Unreadable file, weights that do not fit the factory's module, or a file that
        would run code when loaded (without ``trust``).
    ModelError
        Bad factory, a TorchScript file without a factory, or a ``.pt2`` program
        exported with a fixed batch size above 1.
    """
    p = Path(path)
    kind = checkpoint_kind(p)
    if factory:
        model = build_from_factory(factory, factory_kwargs)
        state, meta = read_state_dict(p, trust=trust)
        if LOGIC_KEY in meta:  # tuned (cnn2logic.model.tuning): rebuild its logic layers
            try:
                apply_logic_layers(model, meta[LOGIC_KEY], state)
            except ModelError as exc:
                raise CheckpointError(f"{p}: {exc}") from None
        try:
            model.load_state_dict(state, strict=strict)
        except RuntimeError as exc:
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
            detail = " ".join(lines[1:3]) if len(lines) > 1 else lines[0]
            raise CheckpointError(
                f"{p}: weights do not fit the module built by {factory}: {detail[:400]}"
            ) from None
        model.eval()
        return model
    if kind == "torchscript":
        raise ModelError(
            f"{p} is a TorchScript module: forward hooks, which capture kernel units, do not "
            "work on TorchScript modules. Pass --factory package.module:function (the Python "
            "class that builds the network; the weights are then read from this file) or "
            "save the model with torch.export (.pt2)"
        )
    if kind == "torch-export":
        return load_exported(p, trust=trust)
    try:
        return load_checkpoint(p)
    except CheckpointError as exc:
        if "no cnn2logic model spec" in str(exc) or "expected a dict with" in str(exc):
            hint = _factory_hint(p)
            raise CheckpointError(
                f"{p}: no cnn2logic model spec in this file; it is a plain state dict, so "
                f"say which code builds the model with --factory package.module:function{hint}"
            ) from None
        raise


def _factory_hint(p: Path) -> str:
    try:
        _, meta = read_state_dict(p)
    except CheckpointError:
        return ""
    if LOGIC_KEY in meta:  # a tuned factory model names its factory in its logic entry
        try:
            info = json.loads(meta[LOGIC_KEY])
            meta = {FACTORY_KEY: str(info["factory"]),
                    FACTORY_KWARGS_KEY: json.dumps(info.get("factory_kwargs") or {},
                                                   sort_keys=True)}
        except (json.JSONDecodeError, KeyError, TypeError):
            return ""
    if FACTORY_KEY in meta:
        kw = meta.get(FACTORY_KWARGS_KEY, "{}")
        extra = f" --factory-kwargs '{kw}'" if kw not in ("", "{}") else ""
        return f" (it was saved from --factory {meta[FACTORY_KEY]}{extra})"
    return ""


def _load_torchscript(p: Path, trust: bool) -> torch.jit.ScriptModule:
    check_torchscript(p, trust)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return torch.jit.load(str(p), map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError and friends
            raise CheckpointError(f"{p}: unreadable TorchScript file ({exc.__class__.__name__})") from None


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the 2-D convolution layers of ``model``, in definition order.

    For a loaded ``torch.export`` program the layers' types before export are used.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    list of str
    """
    types = getattr(model, "original_types", None) or {}
    return [name for name, m in model.named_modules()
            if name and (isinstance(m, nn.Conv2d)
                         or str(types.get(name, "")).endswith("torch.nn.modules.conv.Conv2d"))]
