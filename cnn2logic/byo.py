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
    ``torch.export`` ``.pt2`` file.  This route always works.
a ``torch.export`` program (``.pt2``)
    loaded with :func:`torch.export.load` and unflattened with
    :func:`torch.export.unflatten`, which keeps the module hierarchy so that forward hooks
    fire on named layers.  Its linear layers become real :class:`torch.nn.Linear` modules
    sharing the program's weights.  Export with a dynamic batch dimension
    (``dynamic_shapes=({0: torch.export.Dim("batch")},)``) or with batch size 1.
a cnn2logic checkpoint
    anything :func:`cnn2logic.models.load_checkpoint` reads.

TorchScript modules do not support Python forward hooks (measured: ``register_forward_hook``
raises ``RuntimeError`` on a ``ScriptModule``), so a TorchScript file on its own is refused
with a message pointing at the factory route, which can take the TorchScript file's weights.

Example
-------
>>> import tempfile, pathlib, torch
>>> from torch import nn
>>> from cnn2logic.byo import import_factory, load_model, save_weights
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

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ._io import atomic_path
from .errors import CheckpointError, ModelError
from .safeload import check_export_archive, check_torchscript, no_unpickling

FACTORY_KEY = "cnn2logic_factory"
FACTORY_KWARGS_KEY = "cnn2logic_factory_kwargs"

#: What :func:`checkpoint_kind` can tell apart.
KINDS = ("safetensors", "torch-save", "torchscript", "torch-export")


# -- files -----------------------------------------------------------------------------

def checkpoint_kind(path: str | os.PathLike[str]) -> str:
    """Which kind of weights file ``path`` is (one of :data:`KINDS`), from its content.

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
        except zipfile.BadZipFile:
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
    the file is executed: see :mod:`cnn2logic.safeload` (``trust=True`` lifts that for a
    TorchScript archive or a ``.pt2`` with pickled entries you made yourself).

    Raises
    ------
    CheckpointError
        Unreadable file, no tensors in it, or a file that would run code (without ``trust``).
    """
    p = Path(path)
    kind = checkpoint_kind(p)
    meta: dict[str, str] = {}
    if kind == "safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(p), framework="pt") as fh:
                meta = dict(fh.metadata() or {})
                state = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{p}: corrupt safetensors file ({exc.__class__.__name__})") from None
    elif kind == "torch-save":
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for corrupt or unsafe archives
            raise CheckpointError(
                f"{p}: not a weights-only torch file ({exc.__class__.__name__}); save it with "
                "torch.save(model.state_dict(), path)"
            ) from None
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
        ep = _load_export(p, trust)
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
    """
    from safetensors.torch import save_file

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
    """SHA-256 of a file (identifies the model behind shards and rules)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- factories -------------------------------------------------------------------------

def import_factory(ref: str) -> Callable[..., nn.Module]:
    """The callable named by ``"package.module:function"`` or ``"file.py:function"``.

    A dotted module that is not importable from ``sys.path`` is also looked for from the
    current directory (the ``cnn2logic`` script does not put it on the path).

    Raises
    ------
    ModelError
        Malformed reference, module not found, or no such callable in it.
    """
    if ":" not in ref:
        raise ModelError(f"factory {ref!r} must look like 'package.module:function' or "
                         "'path/to/file.py:function'")
    mod_ref, _, attr = ref.rpartition(":")
    if not mod_ref or not attr:
        raise ModelError(f"factory {ref!r} must look like 'package.module:function'")
    if mod_ref.endswith(".py") or os.sep in mod_ref or "/" in mod_ref:
        module = _module_from_file(Path(mod_ref))
    else:
        module = _module_from_name(mod_ref)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"factory {ref!r}: {mod_ref} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"factory {ref!r} is not callable")
    return obj


def _module_from_file(path: Path):
    if not path.is_file():
        raise ModelError(f"factory file not found: {path}")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"_cnn2logic_factory_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"cannot import factory file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelError(f"importing {path} failed: {exc.__class__.__name__}: {exc}") from None
    return module


def _module_from_name(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise ModelError(f"importing {name} failed: {exc}") from None
    cwd = os.getcwd()
    if cwd in sys.path:
        raise ModelError(f"factory module {name!r} not found on the Python path")
    sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        raise ModelError(f"factory module {name!r} not found on the Python path or in {cwd}") from None
    except Exception as exc:
        raise ModelError(f"importing {name} failed: {exc.__class__.__name__}: {exc}") from None
    finally:
        if sys.path and sys.path[0] == cwd:
            sys.path.pop(0)


def parse_factory_kwargs(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments for a factory: a mapping, inline JSON, or a JSON file path.

    Raises
    ------
    ModelError
        Not JSON, or not a JSON object.
    """
    if text is None:
        return {}
    if isinstance(text, Mapping):
        return dict(text)
    raw = text
    if not text.lstrip().startswith(("{", "[")):
        p = Path(text)
        if not p.is_file():
            raise ModelError(f"factory kwargs {text!r}: not inline JSON and not a file")
        raw = p.read_text(encoding="utf-8")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelError(f"factory kwargs are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ModelError("factory kwargs must be a JSON object")
    return value


def build_from_factory(factory: str, factory_kwargs: Mapping[str, Any] | str | None = None
                       ) -> nn.Module:
    """Call the factory and check it returns an ``nn.Module``.

    Raises
    ------
    ModelError
        The factory fails or returns something else.
    """
    fn = import_factory(factory)
    kwargs = parse_factory_kwargs(factory_kwargs)
    try:
        model = fn(**kwargs)
    except TypeError as exc:
        raise ModelError(f"factory {factory} rejected its arguments {kwargs}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"factory {factory} returned {type(model).__name__}, not a torch.nn.Module")
    return model


# -- loading ---------------------------------------------------------------------------

def load_model(path: str | os.PathLike[str], *, factory: str | None = None,
               factory_kwargs: Mapping[str, Any] | str | None = None,
               strict: bool = True, trust: bool = False) -> nn.Module:
    """A ready-to-use model (eval mode) from a weights file; see the module docstring.

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
        Off by default: see :mod:`cnn2logic.safeload`.

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
        state, _ = read_state_dict(p, trust=trust)
        try:
            result = model.load_state_dict(state, strict=strict)
        except RuntimeError as exc:
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
            detail = " ".join(lines[1:3]) if len(lines) > 1 else lines[0]
            raise CheckpointError(
                f"{p}: weights do not fit the module built by {factory}: {detail[:400]}"
            ) from None
        del result
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
    from .models import load_checkpoint

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


def _load_export(p: Path, trust: bool):
    guard = contextlib.nullcontext() if trust else no_unpickling(p)
    if not trust:
        check_export_archive(p)
    try:
        with guard:
            return torch.export.load(str(p))
    except CheckpointError:
        raise
    except Exception as exc:  # torch raises many types
        raise CheckpointError(f"{p}: unreadable torch.export file ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None


class _OneByOne(nn.Module):
    """Runs a module exported with batch size 1 on any batch, one image at a time.

    Its children are the inner module's children (same objects, same names), so hooks
    registered through ``named_modules()`` fire for every image.  Code that stops the
    forward pass at a layer (:class:`cnn2logic.visualize.LayerUnits`) reads
    :attr:`one_image_at_a_time` and feeds such a model one image per call.
    """

    one_image_at_a_time = True

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "_inner", inner)
        for name, child in inner.named_children():
            self.add_module(name, child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._inner(x[i:i + 1]) for i in range(len(x))])


def load_exported(path: str | os.PathLike[str], *, trust: bool = False) -> nn.Module:
    """A ``torch.export`` program as a module with named, hookable layers.

    The archive is checked before torch reads it, and read with unpickling refused
    (:mod:`cnn2logic.safeload`); ``trust=True`` lifts both.

    Raises
    ------
    CheckpointError
        The archive holds entries that would be unpickled (without ``trust``).
    ModelError
        The program was exported with a fixed batch size other than 1, or cannot be
        unflattened.
    """
    p = Path(path)
    ep = _load_export(p, trust)
    user_inputs = list(ep.graph_signature.user_inputs)
    batch: Any = None
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            val = node.meta.get("val")
            if val is not None and getattr(val, "ndim", 0) >= 1:
                batch = val.shape[0]
            break
    try:
        module = torch.export.unflatten(ep)
    except Exception as exc:  # unflatten raises assorted errors on exotic programs
        raise ModelError(f"{p}: cannot recover the module hierarchy ({exc.__class__.__name__}); "
                         "use --factory with this file's weights") from None
    linear_types = _module_types(ep)
    for fqn, type_name in linear_types.items():
        if type_name.endswith("torch.nn.modules.linear.Linear"):
            _restore_linear(module, fqn)
    if isinstance(batch, int) and batch != 1:
        raise ModelError(
            f"{p} was exported with a fixed batch size of {batch}; re-export with a dynamic "
            "batch dimension (torch.export.export(model, (x,), dynamic_shapes=({0: "
            "torch.export.Dim('batch')},))) or with batch size 1"
        )
    model: nn.Module = _OneByOne(module) if batch == 1 else module
    # What each layer was before export (InterpreterModules forget it): conv_layers reads it.
    model.original_types = dict(linear_types)
    model.eval()
    return model


def _module_types(ep) -> dict[str, str]:
    types: dict[str, str] = {}
    for node in ep.graph.nodes:
        for fqn, type_name in (node.meta.get("nn_module_stack") or {}).values():
            if fqn:
                types.setdefault(str(fqn), str(type_name))
    return types


def _restore_linear(root: nn.Module, fqn: str) -> None:
    parent_name, _, leaf = fqn.rpartition(".")
    try:
        parent = root.get_submodule(parent_name) if parent_name else root
        sub = getattr(parent, leaf)
    except AttributeError:
        return
    if isinstance(sub, nn.Linear):
        return
    weight = getattr(sub, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        return
    bias = getattr(sub, "bias", None)
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=isinstance(bias, torch.Tensor))
    with torch.no_grad():
        lin.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
        if isinstance(bias, torch.Tensor):
            lin.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    setattr(parent, leaf, lin)


# -- CLI helpers -----------------------------------------------------------------------

def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--factory`` and ``--factory-kwargs`` for any subcommand that loads a model."""
    p.add_argument("--factory", default=None, metavar="MODULE:FUNCTION",
                   help="bring your own CNN: 'package.module:function' or "
                        "'file.py:function' that builds the model; the checkpoint is then "
                        "a plain state dict (safetensors, weights-only .pt, TorchScript or "
                        ".pt2)")
    p.add_argument("--factory-kwargs", default=None, metavar="JSON",
                   help="keyword arguments for --factory: inline JSON object or a JSON file")
    p.add_argument("--trust-model-file", action="store_true",
                   help="allow a model file that runs code when loaded (a TorchScript "
                        "archive, or a .pt2 with pickled entries); off by default, such "
                        "files are refused. Use only for files you made yourself")


def model_from_args(args: argparse.Namespace, attr: str = "model") -> nn.Module:
    """Load the model a subcommand was given (``args.<attr>``, ``--factory``...)."""
    return load_model(getattr(args, attr), factory=getattr(args, "factory", None),
                      factory_kwargs=getattr(args, "factory_kwargs", None),
                      trust=bool(getattr(args, "trust_model_file", False)))


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the 2-D convolution layers of ``model``, in definition order.

    For a loaded ``torch.export`` program the layers' types before export are used.
    """
    types = getattr(model, "original_types", None) or {}
    return [name for name, m in model.named_modules()
            if name and (isinstance(m, nn.Conv2d)
                         or str(types.get(name, "")).endswith("torch.nn.modules.conv.Conv2d"))]
