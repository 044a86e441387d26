"""``torch.export`` programs (``.pt2``) as modules with named, hookable layers.

:func:`load_program` reads an archive under the checks of :mod:`cnn2logic.model.safeload`
(the archive is inspected before torch reads it, and read with unpickling refused);
:func:`load_exported` unflattens the program with :func:`torch.export.unflatten`, which
keeps the module hierarchy so that forward hooks fire on named layers, and turns its linear
layers back into real :class:`torch.nn.Linear` modules sharing the program's weights.
Programs exported with batch size 1 are wrapped so that they run on any batch, one image
at a time; export with a dynamic batch dimension
(``dynamic_shapes=({0: torch.export.Dim("batch")},)``) to avoid that.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ModelError
from .safeload import check_export_archive, no_unpickling


def load_program(path: str | os.PathLike[str], trust: bool = False
                 ) -> torch.export.ExportedProgram:
    """Read a ``.pt2`` archive with :func:`torch.export.load`, safely unless ``trust``.

    Parameters
    ----------
    path : path
        The ``.pt2`` archive.
    trust : bool
        Skip the archive check and the unpickling guard (files you made yourself).

    Returns
    -------
    torch.export.ExportedProgram
        The program, not unflattened.

    Raises
    ------
    CheckpointError
        The archive holds entries that would be unpickled (without ``trust``) or torch
        cannot read it.
    """
    p = Path(path)
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
    (:mod:`cnn2logic.model.safeload`); ``trust=True`` lifts both.

    Parameters
    ----------
    path : path
        The ``.pt2`` archive.
    trust : bool
        Skip the safety checks (files you made yourself).

    Returns
    -------
    nn.Module
        In eval mode, with an ``original_types`` dict (layer name -> type before export).

    Raises
    ------
    CheckpointError
        The archive holds entries that would be unpickled (without ``trust``).
    ModelError
        The program was exported with a fixed batch size other than 1, or cannot be
        unflattened.
    """
    p = Path(path)
    ep = load_program(p, trust)
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

