"""Factories: the user's code that builds their ``torch.nn.Module``.

A factory is named ``"package.module:function"`` (imported from ``sys.path``, then from the
current directory) or ``"path/to/file.py:function"`` (imported from that file).  Its keyword
arguments come as a mapping, inline JSON or a JSON file (``--factory-kwargs``).  Importing a
factory runs the user's code: that is the point of it, and it is only ever done when the
user names one (a weights file's recorded factory is never imported on its own).

A registered architecture is named ``"torchvision:<name>"`` (``--arch``): one of
``torchvision.models.list_models()``'s classification models, built with ``weights=None``
so nothing is ever downloaded; the user's own weights are then loaded into it.  Keyword
arguments that would download weights (``weights``, ``pretrained``, ``weights_backbone``...)
are refused.  Every module built here carries :data:`BUILD_ATTR`, what built it (``arch``
or ``factory`` and its keyword arguments), which the extraction records in its meta.

Example
-------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "mynet.py").write_text(
...     "from torch import nn\\n"
...     "def make(k=4):\\n"
...     "    return nn.Sequential(nn.Conv2d(1, k, 3), nn.ReLU())\\n")
>>> net = build_from_factory(f"{d}/mynet.py:make", '{"k": 2}')
>>> net[0].out_channels
2
>>> getattr(build_from_factory("torchvision:resnet18", {"num_classes": 3}), BUILD_ATTR)
{'arch': 'torchvision:resnet18', 'kwargs': {'num_classes': 3}}
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import nn

from ..errors import ModelError

#: The prefix of a registered architecture's name (``torchvision:resnet18``).
ARCH_PREFIXES = ("torchvision:",)
#: The attribute every module built here carries: ``{"arch" or "factory": ref, "kwargs": {...}}``.
BUILD_ATTR = "cnn2logic_build"
#: Builder arguments that would download weights; refused (the user brings the weights).
DOWNLOAD_KWARGS = ("weights", "pretrained", "weights_backbone", "pretrained_backbone")


def import_factory(ref: str) -> Callable[..., nn.Module]:
    """The callable named by ``"package.module:function"`` or ``"file.py:function"``.

    A dotted module that is not importable from ``sys.path`` is also looked for from the
    current directory (the ``cnn2logic`` script does not put it on the path).

    Parameters
    ----------
    ref : str

    Returns
    -------
    callable

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
        raise ModelError(f"importing {path} failed: {exc.__class__.__name__}: "
                         f"{_first_line(exc)}") from None
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
        raise ModelError(f"importing {name} failed: {exc.__class__.__name__}: "
                         f"{_first_line(exc)}") from None
    finally:
        if sys.path and sys.path[0] == cwd:
            sys.path.pop(0)


def parse_factory_kwargs(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments for a factory: a mapping, inline JSON, or a JSON file path.

    Parameters
    ----------
    text : str, mapping or None
        ``None`` means no arguments.

    Returns
    -------
    dict

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

    Parameters
    ----------
    factory : str
        As for :func:`import_factory`.
    factory_kwargs : mapping, JSON text or JSON file, optional
        As for :func:`parse_factory_kwargs`.

    Returns
    -------
    nn.Module

    Raises
    ------
    ModelError
        The factory fails or returns something else.
    """
    kwargs = parse_factory_kwargs(factory_kwargs)
    if is_arch(factory):
        return build_arch(factory, kwargs)
    fn = import_factory(factory)
    try:
        model = fn(**kwargs)
    except TypeError as exc:
        raise ModelError(f"factory {factory} rejected its arguments {kwargs}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"factory {factory} returned {type(model).__name__}, not a torch.nn.Module")
    _record_build(model, "factory", factory, kwargs)
    return model


def is_arch(ref: str) -> bool:
    """Whether ``ref`` names a registered architecture (``torchvision:<name>``).

    Parameters
    ----------
    ref : str

    Returns
    -------
    bool
    """
    return isinstance(ref, str) and ref.startswith(ARCH_PREFIXES)


def torchvision_models() -> list[str]:
    """The classification architectures ``torchvision.models`` builds by name, sorted.

    Returns
    -------
    list of str
    """
    # Deferred on purpose: torchvision's import costs about a second and only --arch needs it.
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def build_arch(arch: str, kwargs: Mapping[str, Any] | str | None = None) -> nn.Module:
    """A registered architecture (``"torchvision:resnet18"``) with random weights.

    Built with ``weights=None``: nothing is downloaded; load the user's state dict into it
    (:func:`cnn2logic.model.load_model` does, with ``factory=arch``).

    Parameters
    ----------
    arch : str
        ``"torchvision:<name>"``, ``<name>`` one of :func:`torchvision_models`.
    kwargs : mapping, JSON text or JSON file, optional
        The builder's keyword arguments (``{"num_classes": 10}``).

    Returns
    -------
    nn.Module
        Carrying :data:`BUILD_ATTR` = ``{"arch": arch, "kwargs": kwargs}``.

    Raises
    ------
    ModelError
        Unknown prefix or name (the message lists close names), a keyword argument that
        would download weights, or arguments the builder rejects.
    """
    kw = parse_factory_kwargs(kwargs)
    prefix, _, name = arch.partition(":")
    if f"{prefix}:" not in ARCH_PREFIXES or not name:
        raise ModelError(f"--arch {arch!r}: expected 'torchvision:<name>', e.g. "
                         "torchvision:resnet18")
    names = torchvision_models()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        hint = (f"; close names: {', '.join(close)}" if close
                else f"; e.g. {', '.join(n for n in names if n.startswith(('resnet', 'vgg')))}")
        raise ModelError(f"--arch {arch!r}: torchvision has no classification model "
                         f"{name!r}{hint}")
    for key in DOWNLOAD_KWARGS:
        if kw.get(key) not in (None, False):
            raise ModelError(f"--arch-kwargs: {key}={kw[key]!r} would download weights; "
                             "cnn2logic never downloads: drop it and pass your own weights "
                             "file (a state dict)")
    # Deferred on purpose, as in torchvision_models.
    import torchvision.models as tvm

    builder_kwargs = {k: v for k, v in kw.items() if k not in DOWNLOAD_KWARGS}
    try:
        model = tvm.get_model(name, weights=None, **builder_kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"--arch {arch} rejected its arguments {builder_kwargs}: "
                         f"{_first_line(exc)}") from None
    _record_build(model, "arch", arch, kw)
    return model


def build_info(model: nn.Module) -> dict[str, Any] | None:
    """What built ``model`` (:data:`BUILD_ATTR`), or None for a module built elsewhere.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    dict or None
        ``{"arch": "torchvision:resnet18", "kwargs": {...}}`` or ``{"factory": ..., ...}``.
    """
    info = getattr(model, BUILD_ATTR, None)
    return dict(info) if isinstance(info, dict) else None


def _record_build(model: nn.Module, kind: str, ref: str, kwargs: Mapping[str, Any]) -> None:
    # A plain attribute (not a buffer): it never enters the state dict.
    object.__setattr__(model, BUILD_ATTR, {kind: ref, "kwargs": dict(kwargs)})


def _first_line(exc: BaseException) -> str:
    # An error raised by the user's module may span lines; ours stay on one.
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""
