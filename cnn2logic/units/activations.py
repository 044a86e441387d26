"""Capture: each kernel's map becomes one real-valued unit per image.

One forward-hook loop, :func:`iter_layer_units`, serves both captures: :func:`capture`
(images in memory, the units of every image returned at once) and the streamed capture of
:mod:`cnn2logic.units.shards` and :mod:`cnn2logic.units.thresholds` (any iterable of
batches, one batch in memory at a time).  :func:`reduce_maps` is the one place a kernel's
map becomes its unit (also used by SmoothGrad, which differentiates it).

Example
-------
>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid())
>>> units = capture(net, "1", torch.zeros(4, 1, 5, 5), progress=False)
>>> units.values.shape, units.names
((4, 2), ('k1', 'k2'))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from ..data import as_split
from ..errors import ActivationError, DataError, ModelError
from ..rules import Variable
from ..unitnames import kernel_names, position_names

REDUCTIONS = ("max", "mean", "l1", "l2", "position")


@dataclass(frozen=True)
class KernelUnits:
    """Real-valued kernel units: ``values`` is (images, kernels).

    Attributes
    ----------
    values : np.ndarray
        (images, kernels) float32.
    layer : str
        The captured layer's name.
    names : tuple of str
        One name per column (``k1..``, or ``k1_r1c1..`` per position).
    """

    values: np.ndarray
    layer: str
    names: tuple[str, ...]

    @property
    def variables(self) -> tuple[Variable, ...]:
        """The columns as rule :class:`~cnn2logic.rules.Variable` objects."""
        return tuple(Variable(n, self.layer, i) for i, n in enumerate(self.names))


def reduce_maps(out: torch.Tensor, reduce: str) -> torch.Tensor:
    """``(n, c, h, w)`` maps -> ``(n, c)`` units (``"position"``: ``(n, c*h*w)``).

    The one place a kernel's map becomes its unit, for capture, streamed capture and
    SmoothGrad (which differentiates it).

    Parameters
    ----------
    out : torch.Tensor
        A layer's output, (n, c, h, w).
    reduce : {"max", "mean", "l1", "l2", "position"}
        See :func:`capture`.

    Returns
    -------
    torch.Tensor

    Raises
    ------
    ModelError
        Unknown ``reduce``.
    """
    if reduce == "position":
        return out.flatten(1)
    if reduce == "max":
        return out.amax(dim=(2, 3))
    if reduce == "mean":
        return out.mean(dim=(2, 3))
    if reduce == "l1":  # ERIC's quantisation reads a norm of the whole activation map
        return out.abs().sum(dim=(2, 3))
    if reduce != "l2":
        raise ModelError(f"unknown reduction {reduce!r}; choose from {REDUCTIONS}")
    squares = out.pow(2).sum(dim=(2, 3))
    nonzero = squares > 0
    # the same values as sqrt(squares); sqrt's gradient at 0 is infinite, so an all-zero
    # map (a dead ReLU) gets gradient 0 instead of NaN
    return torch.where(nonzero, squares, torch.ones_like(squares)).sqrt() * nonzero


class LayerBatch(NamedTuple):
    """What :func:`iter_layer_units` yields per batch.

    Attributes
    ----------
    outputs : list of np.ndarray
        The layer's reduced units (images x units, float32), one array per time the layer
        ran in the forward pass (normally exactly one).
    labels : np.ndarray
        int64 labels of the batch (-1 when the batch had none).
    predictions : np.ndarray
        int64 argmax of the model's output (-1 when it is not an (n, classes) tensor).
    map_shape : tuple of int
        ``(kernels, rows, cols)`` of the layer's maps, ``()`` for an (n, units) output.
    layer : str
        The captured layer's name.
    """

    outputs: list[np.ndarray]
    labels: np.ndarray
    predictions: np.ndarray
    map_shape: tuple[int, ...]
    layer: str

    def units(self) -> np.ndarray:
        """The batch's units: the layer's output in its **last** call of the forward pass.

        A module called more than once per forward pass is usually one reused inside a
        block (torchvision's ``BasicBlock.relu`` runs after ``bn1`` and again after the
        residual add): its last call is the block's output, what the next block reads.
        Each call is one array of :attr:`outputs`; :func:`layer_calls` counts them.

        A model that runs one image at a time (a ``.pt2`` exported with batch size 1) calls
        the layer once per image: those calls are joined, again the last one per image.

        Raises
        ------
        ActivationError
            The layer did not run in the forward pass, or its calls do not add up to the
            batch.
        """
        if not self.outputs:
            raise ActivationError(f"layer {self.layer!r} did not run in the forward pass; "
                                  "name a module the model's forward calls")
        n, rows = len(self.labels), [len(o) for o in self.outputs]
        if len(rows) == 1 or sum(rows) == n:  # one call, or one call per part of the batch
            return self.outputs[0] if len(rows) == 1 else np.concatenate(self.outputs)
        if all(r == n for r in rows):  # a module reused within the forward pass
            return self.outputs[-1]
        if n and all(r == 1 for r in rows) and len(rows) % n == 0:  # per image, reused
            per = len(rows) // n
            return np.concatenate(self.outputs[per - 1::per])
        raise ActivationError(f"layer {self.layer!r} ran {len(rows)} times on a batch of {n} "
                              f"images with {rows[:4]}... rows: name a module that runs once "
                              "per image (e.g. the block that contains it)")


def layer_module(model: nn.Module, layer: str, reduce: str) -> nn.Module:
    """The submodule named ``layer``, after checking ``reduce``.

    Raises
    ------
    ActivationError
        Unknown ``reduce``.
    ModelError
        ``layer`` does not exist in ``model`` (the message lists the names that do).
    """
    if reduce not in REDUCTIONS:
        raise ActivationError(f"unknown reduction {reduce!r}; choose from {REDUCTIONS}")
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        raise ModelError(f"no layer named {layer!r}; layers: {', '.join(n for n in modules if n)}")
    return modules[layer]


def iter_layer_units(model: nn.Module, layer: str, batches: Iterable, reduce: str = "max",
                     progress: bool = False, total: int | None = None) -> Iterator[LayerBatch]:
    """Run ``model`` over ``batches`` and yield ``layer``'s reduced units per batch.

    The model runs in eval mode without gradients; its mode is restored afterwards.

    Parameters
    ----------
    model : nn.Module
        Any module.
    layer : str
        A name from ``model.named_modules()`` whose output is (n, c, h, w) or (n, c).
    batches : iterable
        Image tensors, or ``(images, labels)`` pairs (a ``DataLoader``).
    reduce : {"max", "mean", "l1", "l2", "position"}
        See :func:`capture`.
    progress : bool
        Show a progress bar (``total`` batches, when known).

    Yields
    ------
    LayerBatch

    Raises
    ------
    ModelError, ActivationError
        As :func:`layer_module`; or the layer's output has an unsupported shape.
    """
    module = layer_module(model, layer, reduce)
    grabbed: list[np.ndarray] = []
    shape: list[tuple[int, ...]] = [()]

    def hook(_m: nn.Module, _i: object, output: torch.Tensor) -> None:
        out = output.detach()
        if out.ndim == 4:
            shape[0] = tuple(out.shape[1:])
            out = reduce_maps(out, reduce)
        elif out.ndim != 2:
            raise ActivationError(f"layer {layer!r} outputs shape {tuple(output.shape)}; "
                                  "expected (n, c, h, w) or (n, c)")
        # A copy, taken now: the tensor may be a view of the live activation, which a
        # later in-place op (ReLU(inplace=True), a residual ``out += identity``) rewrites
        # before the forward pass ends; the copy holds what this layer output.
        values = np.array(out.float().cpu().numpy(), copy=True)
        if not np.isfinite(values).all():
            # Refused here, before any threshold is fitted: NaN compares false with every
            # threshold and would binarise silently to all-zero codes.
            raise ActivationError(f"the network's kernel units at layer {layer!r} are "
                                  "NaN/inf: check the checkpoint (and the images)")
        grabbed.append(values)

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    iterator: Iterable = batches
    if progress:
        from tqdm import tqdm  # only when asked for: the progress bar is optional output

        iterator = tqdm(batches, desc=f"capture {layer}", unit="batch", leave=False,
                        total=total)
    try:
        with torch.no_grad():
            for batch in iterator:
                if isinstance(batch, torch.Tensor):
                    xb, yb = batch, None
                else:
                    xb, yb = batch[0], (batch[1] if len(batch) > 1 else None)
                grabbed.clear()
                logits = model(xb)
                n = len(xb)  # the batch (a model run image by image calls the layer n times)
                labels = (np.full(n, -1, np.int64) if yb is None
                          else np.asarray(yb, dtype=np.int64).reshape(-1))
                preds = (logits.argmax(1).numpy().astype(np.int64)
                         if isinstance(logits, torch.Tensor) and logits.ndim == 2
                         else np.full(n, -1, np.int64))
                yield LayerBatch(list(grabbed), labels, preds, shape[0], layer)
    finally:
        handle.remove()
        model.train(was_training)


def check_model_input(model: nn.Module, images: torch.Tensor | np.ndarray,
                      labels: torch.Tensor | np.ndarray | None = None, what: str = "data"
                      ) -> int | None:
    """Run ``model`` on the first image and refuse data it cannot read or label.

    One forward pass (eval mode, no gradients, the mode restored) before a capture, so
    images of another size or channel count fail with both shapes named instead of a
    convolution's traceback, and labels are checked against the output units.

    Parameters
    ----------
    model : nn.Module
    images : tensor or array
        (n, c, h, w); only the first image is run.
    labels : tensor or array, optional
        Every label of the data (the largest must name an output unit).
    what : str
        How to name the data (its split or directory) in messages.

    Returns
    -------
    int or None
        The number of output units when the model returns (n, classes) scores.

    Raises
    ------
    DataError
        No images, images the model cannot read (the model's expected input when it
        declares one, and the data's shape), or a label at or above the output count.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if len(images) == 0:
        raise DataError(f"{what}: no images")
    shape = tuple(images.shape[1:])
    spec = getattr(model, "spec", None)
    expected = tuple(getattr(spec, "input_shape", ()) or ())
    wants = f"the model takes {expected}, " if expected else ""
    if expected and expected != shape:
        raise DataError(f"{what}: images of shape {shape}, but {wants.rstrip(', ')}; "
                        f"{_input_fix(shape, expected)}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(images[:1])
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        # Whatever the model (any user module) raises on one well-formed image is a
        # mismatch of its input; its own first line says which layer refused.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise DataError(f"{what}: the model cannot read images of shape {shape} "
                        f"({wants}error: {first}); {_input_fix(shape, expected)}") from None
    finally:
        model.train(was_training)
    if not (isinstance(out, torch.Tensor) and out.ndim == 2):
        return None
    n_out = int(out.shape[1])
    if labels is not None and len(labels):
        top = int(np.asarray(labels).max())
        if top >= n_out:
            raise DataError(f"{what}: label {top} but the model has {n_out} output units "
                            f"(classes 0..{n_out - 1})")
    return n_out


def _input_fix(shape: tuple[int, ...], expected: tuple[int, ...]) -> str:
    """The data option that turns images of ``shape`` into ``expected`` (else both)."""
    if len(expected) == 3 and len(shape) == 3:
        fixes = []
        if expected[0] != shape[0]:
            fixes.append(f"--channels {expected[0]}")
        if expected[1:] != shape[1:]:
            fixes.append(f"--resize {expected[1]} {expected[2]}")
        if fixes:
            return "pass " + " and ".join(fixes)
    return ("convert the images to what the model was trained on: --resize H W, "
            "--channels 1|3, --mean/--std")


def unit_names(layer: str, n_units: int, reduce: str, map_shape: Sequence[int],
               qualified: bool = False, own: Sequence[str] | None = None) -> tuple[str, ...]:
    """Column names of captured units: per position for ``"position"``, else per kernel.

    Parameters
    ----------
    layer : str
        The captured layer.
    n_units : int
        Number of columns.
    reduce : str
        The reduction used.
    map_shape : sequence of int
        ``(kernels, rows, cols)`` of the layer's maps, empty for an (n, units) output.
    qualified : bool
        Prefix every name with ``<layer>.``.
    own : sequence of str, optional
        The names the layer gives its outputs (:func:`layer_unit_names`), used when there
        is one per column.

    Returns
    -------
    tuple of str
    """
    if reduce == "position" and len(map_shape) == 3:
        return position_names(layer, *map_shape, qualified=qualified)
    if own is not None and len(own) == n_units:
        return tuple(f"{layer}.{n}" for n in own) if qualified else tuple(own)
    return kernel_names(layer, n_units, qualified)


def layer_unit_names(model: nn.Module, layer: str) -> tuple[str, ...] | None:
    """The names a layer gives its own output columns (a ``unit_names`` attribute of
    strings, e.g. the thermometer bits ``k3_1, k3_2`` of a tuned network's
    ``LogicUnits``), or None.  Duck-typed: this package does not import the model
    package."""
    names = getattr(dict(model.named_modules()).get(layer), "unit_names", None)
    if isinstance(names, tuple) and all(isinstance(n, str) for n in names):
        return names
    return None


def capture(model: nn.Module, layer: str, images: Any, *,
            reduce: str = "max", batch_size: int = 500, progress: bool = True,
            qualified_names: bool = False) -> KernelUnits:
    """Pooled activation of every kernel of ``layer`` for every image.

    Parameters
    ----------
    model : nn.Module
        Any module; it is run in eval mode without gradients.
    layer : str
        A name from ``model.named_modules()`` whose output is (n, kernels, h, w) or
        (n, units).
    images : torch.Tensor, np.ndarray, split, Dataset or DataLoader
        The images, run ``batch_size`` at a time; a split
        (:class:`~cnn2logic.data.ImageSet` / :class:`~cnn2logic.data.StreamSet`), a
        ``torch.utils.data.Dataset`` of ``(image, label)`` items or an unshuffled
        ``DataLoader`` is read batch by batch (its own batch size) through
        :func:`capture_split`.
    reduce : {"max", "mean", "l1", "l2", "position"}
        How a kernel's spatial map becomes one number (``"l1"``/``"l2"``: the norm of the
        map, as ERIC quantises kernels; a (n, units) output is taken as it is).
        ``"position"`` keeps every position of every map as its own unit, named
        ``k3_r1c2`` (kernel 3, row 1, column 2) in ``torch.flatten``'s order.
    batch_size : int
        Images per forward pass (tensors and arrays).
    progress : bool
        Show a progress bar.
    qualified_names : bool
        Name units ``<layer>.k1..``.

    Returns
    -------
    KernelUnits

    Raises
    ------
    ModelError
        ``layer`` does not exist in ``model`` (the message lists the names that do).
    ActivationError
        The layer's output has an unsupported shape.
    DataError
        ``images`` is none of the accepted kinds, or a Dataset's items are unreadable.
    """
    if not isinstance(images, (torch.Tensor, np.ndarray)):
        split = as_split(images, getattr(images, "name", "data"))
        return capture_split(model, layer, split, reduce=reduce, progress=progress,
                             qualified_names=qualified_names)[0]
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    starts = range(0, len(images), batch_size)
    batches = (images[s:s + batch_size] for s in starts)
    return _collect(model, layer, batches, reduce, progress, len(starts), qualified_names)[0]


def _collect(model: nn.Module, layer: str, batches: Iterable, reduce: str, progress: bool,
             total: int | None, qualified_names: bool) -> tuple[KernelUnits, np.ndarray]:
    """The units of every batch, and the network's predictions (-1 where unknown)."""
    outputs: list[np.ndarray] = []
    preds: list[np.ndarray] = []
    map_shape: tuple[int, ...] = ()
    for batch in iter_layer_units(model, layer, batches, reduce, progress, total):
        outputs.append(batch.units())  # the last call of a module run several times
        preds.append(batch.predictions)
        map_shape = batch.map_shape
    values = np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
    units = KernelUnits(values, layer, unit_names(layer, values.shape[1], reduce, map_shape,
                                                  qualified_names,
                                                  layer_unit_names(model, layer)))
    return units, (np.concatenate(preds) if preds else np.zeros(0, np.int64))


def capture_split(model: nn.Module, layer: str, split: Any, *, reduce: str = "max",
                  progress: bool = True, qualified_names: bool = False
                  ) -> tuple[KernelUnits, np.ndarray]:
    """:func:`capture` over a split's ``batches()``, with the network's predictions.

    One pass over the data gives both, one batch of images in memory at a time: what an
    image folder or a Dataset needs (its images are decoded as they are read).

    Parameters
    ----------
    model : nn.Module
    layer : str
    split : ImageSet or StreamSet
        Anything with ``batches()`` yielding ``(images, labels)`` and ``len()``.
    reduce, progress, qualified_names
        As :func:`capture`.

    Returns
    -------
    units : KernelUnits
    predictions : np.ndarray
        int64 argmax of the model's output per image (-1 when it is not (n, classes)).

    Raises
    ------
    ModelError, ActivationError, DataError
        As :func:`capture`.
    """
    size = getattr(split, "batch_size", 0) or 0
    total = -(-len(split) // size) if size else None
    return _collect(model, layer, split.batches(), reduce, progress, total, qualified_names)
