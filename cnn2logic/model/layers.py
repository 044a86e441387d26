"""Where in a network the kernel units and the output layer are: found by one forward pass.

Every command that reads kernel units needs two names: the layer whose kernels become the
rule variables (``--layer``) and the layer that reads them (``--output``).  The paper's
spec nets call them ``pool`` and ``out``; a user's ``nn.Sequential`` calls them ``5`` and
``7``, torchvision's ResNet ``avgpool`` and ``fc``.  :func:`guess_layers` finds them on
the user's model so that no flag is needed:

* a tuned network (:mod:`cnn2logic.model.tuning`): its
  :class:`~cnn2logic.model.logic_head.LogicUnits` and rule-list head;
* a spec net: ``pool`` and ``out``;
* any other CNN: the kernel layer is the last module after the last ``nn.Conv2d`` whose
  output is still a map with that convolution's channels (the pooling if there is one,
  else the activation); the output layer is the last ``nn.Linear`` called after it (the
  one that gives the class scores; :func:`linear_after` finds the first, where a head of
  several layers begins).

:func:`forward_calls` records the forward pass these are read from (module names in the
order their calls finish, with the output shapes); :func:`layers_after` lists the leaf
modules that run after a layer (what rules over it replace).

Example
-------
>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
...                     nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
>>> guess_layers(net, torch.zeros(1, 1, 6, 6))
('2', '6')
>>> linear_after(net, "2", torch.zeros(1, 1, 6, 6), "first")
'4'
>>> layers_after(net, "4", torch.zeros(1, 1, 6, 6))
['5', '6']
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..errors import ModelError

#: The value of ``--layer`` / ``--output`` that asks for :func:`guess_layers`.
AUTO = "auto"


class Call(NamedTuple):
    """One finished forward call of a named module."""

    name: str
    module: nn.Module
    shape: tuple[int, ...]  # of its output (empty when the output is not a tensor)


def forward_calls(model: nn.Module, sample: torch.Tensor) -> list[Call]:
    """The named modules' forward calls on ``sample``, in the order they finish.

    A module called twice appears twice; containers appear after their children.  The
    model is run in eval mode without gradients and put back in the mode it was in.

    Parameters
    ----------
    model : nn.Module
    sample : torch.Tensor or ndarray
        A batch the model reads (one image is enough).

    Returns
    -------
    list of Call

    Raises
    ------
    ModelError
        ``sample`` is None.
    """
    if sample is None:
        raise ModelError(f"the layers of {type(model).__name__} are found by running it on "
                         "an image: give --layer, or images (--data)")
    if not isinstance(sample, torch.Tensor):  # an image split's numpy batch
        sample = torch.as_tensor(np.asarray(sample))
    calls: list[Call] = []

    def record(name: str):
        def hook(module: nn.Module, _inputs, output) -> None:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
            calls.append(Call(name, module, shape))
        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in model.named_modules()
               if name]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return calls


def forward_order(model: nn.Module, sample: torch.Tensor) -> list[str]:
    """The names of :func:`forward_calls`.

    Parameters
    ----------
    model : nn.Module
    sample : torch.Tensor

    Returns
    -------
    list of str
    """
    return [c.name for c in forward_calls(model, sample)]


def check_layer(model: nn.Module, name: str, what: str = "layer") -> None:
    """Raise a one-line error naming the layers when ``model`` has no layer ``name``.

    Parameters
    ----------
    model : nn.Module
    name : str
    what : str
        How the message calls it (``"--output"``...).

    Raises
    ------
    ModelError
        No such layer.
    """
    names = [n for n, _ in model.named_modules() if n]
    if not name or name not in names:
        shown = ", ".join(names[:40]) + (f", … ({len(names) - 40} more)"
                                         if len(names) > 40 else "")
        raise ModelError(f"{what}: no layer named {name!r}; layers: {shown}")


def _after_last_call(model: nn.Module, layer: str,
                     sample: torch.Tensor) -> tuple[list[Call], int]:
    """The forward calls and the index of ``layer``'s last one (errors: module docstring
    of the callers)."""
    check_layer(model, layer)
    calls = forward_calls(model, sample)
    at = [i for i, c in enumerate(calls) if c.name == layer]
    if not at:
        raise ModelError(f"layer {layer!r} does not run in the model's forward pass")
    return calls, at[-1]


def _is_leaf(module: nn.Module) -> bool:
    return not any(True for _ in module.children())


def layers_after(model: nn.Module, layer: str, sample: torch.Tensor) -> list[str]:
    """The leaf modules that run after ``layer``'s last call, in forward order, each once.

    Functional steps (``torch.flatten``, a residual ``+``) are not modules and do not
    appear; nor do ``layer``'s own submodules.

    Parameters
    ----------
    model : nn.Module
    layer : str
    sample : torch.Tensor
        A batch the model reads.

    Returns
    -------
    list of str

    Raises
    ------
    ModelError
        ``layer`` does not run in the forward pass.
    """
    calls, last = _after_last_call(model, layer, sample)
    leaves = {n for n, m in model.named_modules() if n and _is_leaf(m)}
    out: list[str] = []
    for name in (c.name for c in calls[last + 1:]):
        if name in leaves and not name.startswith(layer + ".") and name not in out:
            out.append(name)
    return out


def guess_layers(model: nn.Module, sample: torch.Tensor | None) -> tuple[str, str]:
    """The kernel layer and the layer that reads it (module docstring for the rule).

    Parameters
    ----------
    model : nn.Module
    sample : torch.Tensor or ndarray or None
        A batch the model reads (one image); a spec or tuned net needs none.

    Returns
    -------
    (layer, output) : tuple of str

    Raises
    ------
    ModelError
        No ``nn.Conv2d`` runs in the forward pass, no ``nn.Linear`` runs after the kernel
        layer (then the names must be given), or ``sample`` is None where it must be run.
    """
    named = _named_layers(model)
    if named is not None:
        return named
    calls = forward_calls(model, sample)
    convs = [i for i, c in enumerate(calls) if isinstance(c.module, nn.Conv2d)]
    if not convs:
        raise ModelError("no nn.Conv2d layer runs in this model's forward pass, so there are "
                         "no kernels to guess: give --layer (and --output)")
    last = convs[-1]
    channels = calls[last].shape[1] if len(calls[last].shape) == 4 else None
    layer_at = last
    for i in range(last + 1, len(calls)):
        c = calls[i]
        if (_is_leaf(c.module) and len(c.shape) == 4 and c.shape[1] == channels
                and not c.name.startswith(calls[last].name + ".")):
            layer_at = i
    layer = calls[layer_at].name
    linear = [c.name for c in calls[layer_at + 1:] if isinstance(c.module, nn.Linear)]
    if linear:
        return layer, linear[-1]
    raise ModelError(f"no nn.Linear layer runs after the kernel layer {layer!r}: give "
                     "--output (the layer that reads the kernels)")


def _named_layers(model: nn.Module) -> tuple[str, str] | None:
    """A tuned network's logic layers, a spec net's ``pool`` / ``out``, else None."""
    from .logic_head import logic_layers
    from .spec import SpecCNN

    tuned = logic_layers(model)
    if tuned is not None:  # a tuned network knows its own layers
        return tuned
    if isinstance(model, SpecCNN):
        return "pool", "out"
    return None


def resolve_layers(model: nn.Module, layer: str, output: str,
                   sample: torch.Tensor | None) -> tuple[str, str]:
    """``layer`` and ``output`` with each :data:`AUTO` replaced by :func:`guess_layers`'s.

    Parameters
    ----------
    model : nn.Module
    layer, output : str
        Names, or ``"auto"``.
    sample : torch.Tensor or ndarray or None
        A batch the model reads (only run when something is guessed; a spec or tuned net
        needs none).

    Returns
    -------
    (layer, output) : tuple of str

    Raises
    ------
    ModelError
        As :func:`guess_layers`.
    """
    if layer != AUTO and output != AUTO:
        return layer, output
    if layer != AUTO and _named_layers(model) is None:
        # a kernel layer of the user's choice: the class layer is the last linear after it
        found = linear_after(model, layer, sample, "last")
        if found is None:
            raise ModelError(f"no nn.Linear layer runs after {layer!r}: give --output (the "
                             "layer that reads the kernels)")
        return layer, found
    # a spec or tuned net's output layer is the one it names, whatever the kernel layer
    g_layer, g_output = guess_layers(model, sample)
    return (g_layer if layer == AUTO else layer), (g_output if output == AUTO else output)


def linear_after(model: nn.Module, layer: str, sample: torch.Tensor,
                 which: str = "last") -> str | None:
    """The first or last ``nn.Linear`` called after ``layer``'s last call.

    The last is the layer that gives the class scores (what ``extract`` reads); the first
    is where the head that reads the kernels begins (what ``tune`` replaces).

    Parameters
    ----------
    model : nn.Module
    layer : str
    sample : torch.Tensor or ndarray
        A batch the model reads.
    which : {"last", "first"}

    Returns
    -------
    str or None
        None when no linear layer runs after ``layer``.

    Raises
    ------
    ModelError
        ``layer`` does not run in the forward pass.
    """
    calls, at = _after_last_call(model, layer, sample)
    found = [c.name for c in calls[at + 1:] if isinstance(c.module, nn.Linear)]
    if not found:
        return None
    return found[0] if which == "first" else found[-1]


def linear_reading(model: nn.Module, inputs: int, outputs: int) -> str:
    """The one ``nn.Linear`` that reads ``inputs`` values and gives ``outputs`` (no forward).

    For a command that has the kernel units already (``extract-part`` reads saved codes)
    and so no image to run: the layer that maps the kernels to the classes is the linear
    layer of that shape.  A spec or tuned net names its own.

    Parameters
    ----------
    model : nn.Module
    inputs, outputs : int
        Kernel units and classes.

    Returns
    -------
    str

    Raises
    ------
    ModelError
        No linear layer, or more than one, has that shape (then ``--output`` must name it).

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 3))
    >>> linear_reading(net, 4, 3)
    '2'
    """
    named = _named_layers(model)
    if named is not None:
        return named[1]
    found = [name for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and (m.in_features, m.out_features) == (inputs, outputs)]
    if len(found) != 1:
        which = "no" if not found else f"{len(found)} ({', '.join(found)})"
        raise ModelError(f"{which} nn.Linear layers read {inputs} kernel units into {outputs} "
                         "classes: give --output (the layer the rules replace)")
    return found[0]

