"""Where a kernel looks: its spatial map layer and the receptive field of every map position.

A rule variable is a kernel's *pooled* unit (``pool`` of the paper's networks, ``gap`` of a
ReLU/BatchNorm net): one number per image, with no position.  To show a person the image
region a kernel fires on, we need the kernel's map *before* the pooling and, for every
position of that map, the input pixels it depends on.

:func:`find_map_layer`
    the layer whose output holds the kernel maps: the unit layer itself when its output is
    ``(n, c, h, w)`` with more than one position, else the last module that ran before it
    with a ``(n, c, h, w)`` output of as many channels and more than one position (found
    from forward hooks, so it works for any module structure, residual blocks included).
:func:`receptive_field`
    the input box of every map position, *measured*, not derived from layer arithmetic:
    each input row (then column) in turn is set to a large positive and a large negative
    value on a few random images, and a map position depends on that row when any of its
    channels changes.  Rows and columns are separable (a row perturbation spans every
    column), so ``2 * (H + W) * bases`` forward passes give every box exactly, for convs,
    pools, padding, strides, dilation, ReLU, BatchNorm and skip connections alike.  The
    model runs in float64 (a copy) so that an unchanged position is bit-for-bit unchanged;
    a model that cannot be copied to float64 (an exported program) runs in float32 with a
    relative tolerance.
:class:`ReceptiveField`
    the boxes, the nominal size (largest box: boxes at the border are clipped by the image)
    and the stride, and :meth:`ReceptiveField.crop`, which cuts the nominal-size window of
    a position out of an image, padding what lies outside the image.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ActivationError, ModelError, VisualizationError
from ._internal import Captured, layer_calls, stop_at_last_call

_PROBE = 4.0  # the perturbation: far outside [0, 1] so every dependent position changes
_PROBE_BASES = 3  # random base images (a dead ReLU on one is alive on another)


def _modules(model: nn.Module, layer: str) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        raise ModelError(f"no layer named {layer!r}; layers: {', '.join(n for n in modules if n)}")
    return modules


def find_map_layer(model: nn.Module, layer: str, sample: torch.Tensor) -> tuple[str, tuple]:
    """The layer holding ``layer``'s kernel maps, and its output shape ``(c, h, w)``.

    Parameters
    ----------
    model : nn.Module
    layer : str
        The layer of the rule variables (its output is ``(n, c, h, w)`` or ``(n, c)``).
    sample : tensor (1, c, h, w)
        One input image (only its shape and a forward pass are used).

    Returns
    -------
    name, shape
        ``layer`` itself when its maps have more than one position; else the last module
        run before ``layer`` whose output is ``(n, c, h, w)`` with ``h * w > 1`` and the
        same ``c``; ``(layer, shape)`` with a 1x1 map when there is none (the whole input
        is then every kernel's receptive field).

    Raises
    ------
    ModelError
        ``layer`` does not exist.
    ActivationError
        ``layer`` is not run by the model's forward, or its output is not 2-D/4-D.
    """
    modules = _modules(model, layer)
    # a layer the forward pass runs several times is read at its last call (as capture
    # reads it); its earlier calls are ordinary modules run before it
    calls = layer_calls(model, modules[layer], sample)
    seen: list[tuple[str, tuple, torch.Tensor]] = []
    started = [False]
    pre_calls = [0]

    def record(name: str):
        stop = stop_at_last_call(calls) if name == layer else None

        def hook(m: nn.Module, i: object, out: object) -> None:
            if stop is not None:
                stop(m, i, out)
            if not started[0] and isinstance(out, torch.Tensor) and out.ndim == 4:
                seen.append((name, tuple(out.shape[1:]), out))
        return hook

    def pre(_m: nn.Module, _i: object) -> None:
        pre_calls[0] += 1
        if pre_calls[0] == calls:
            started[0] = True  # modules inside the layer run after this: not before it

    handles = [m.register_forward_hook(record(n)) for n, m in modules.items() if n]
    handles.append(modules[layer].register_forward_pre_hook(pre))
    was_training = model.training
    model.eval()
    out: object = None
    try:
        with torch.no_grad():
            model(sample)
    except Captured as cap:
        out = cap.output
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if out is None:
        raise ActivationError(f"layer {layer!r} is not used by the model's forward")
    shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()
    if len(shape) not in (1, 3):
        raise ActivationError(f"layer {layer!r} outputs shape {shape}; expected (n, c, h, w) "
                              "or (n, c)")
    if len(shape) == 3 and shape[1] * shape[2] > 1:
        return layer, shape
    fits = [(name, s, t) for name, s, t in reversed(seen)
            if s[0] == shape[0] and s[1] * s[2] > 1]
    if fits:
        # A container (nn.Sequential) returns its last child's very tensor: name the child,
        # but not a child whose output a residual block still adds to (another tensor).
        same = [n for n, _, t in fits if t is fits[0][2] and not list(modules[n].children())]
        return (same[0] if same else fits[0][0]), fits[0][1]
    return layer, (shape[0], 1, 1)


@dataclass(frozen=True)
class ReceptiveField:
    """The input box of every position of a kernel map (see the module docstring).

    Attributes
    ----------
    boxes : ndarray (h, w, 4), int
        ``(top, left, bottom, right)`` of position ``(i, j)``'s box in input pixels,
        bottom/right exclusive, clipped to the image.
    size : (int, int)
        The nominal (largest) box's height and width: every crop has this size.
    stride : (int, int)
        Rows/columns the box moves per map position (0 for a one-position map).
    input_shape : (int, int, int)
        ``(c, H, W)`` of the input.
    """

    boxes: np.ndarray
    size: tuple[int, int]
    stride: tuple[int, int]
    input_shape: tuple[int, int, int]

    def window(self, i: int, j: int) -> tuple[int, int]:
        """Top-left corner ``(row, col)`` of position ``(i, j)``'s nominal window.

        A box clipped by the image border is extended past that border to the nominal
        size (so the crop keeps the kernel's view centred as in the interior); a box
        clipped on both sides is centred.

        Returns
        -------
        (int, int)
            May be negative (the window starts outside the image).
        """
        t, l, b, r = (int(v) for v in self.boxes[i, j])
        _, H, W = self.input_shape
        return (_start(t, b, self.size[0], H), _start(l, r, self.size[1], W))

    def crop(self, image: np.ndarray, i: int, j: int, fill: float = np.nan
             ) -> np.ndarray:
        """The nominal-size window of position ``(i, j)`` cut out of ``image`` (c, H, W).

        Parameters
        ----------
        image : ndarray (c, H, W)
        i, j : int
            The map position.
        fill : float
            The value of window pixels outside the image (NaN by default, so a picture
            can show them as "outside").

        Returns
        -------
        ndarray (c, size[0], size[1]), float32

        Raises
        ------
        VisualizationError
            The image is not of the input shape or ``(i, j)`` is not a map position.
        """
        if tuple(image.shape) != tuple(self.input_shape):
            raise VisualizationError(f"image of shape {image.shape}, expected {self.input_shape}")
        if not (0 <= i < self.boxes.shape[0] and 0 <= j < self.boxes.shape[1]):
            raise VisualizationError(f"({i}, {j}) is not a position of a "
                                     f"{self.boxes.shape[0]}x{self.boxes.shape[1]} map")
        top, left = self.window(i, j)
        h, w = self.size
        _, H, W = self.input_shape
        out = np.full((image.shape[0], h, w), fill, dtype=np.float32)
        r0, r1 = max(top, 0), min(top + h, H)
        c0, c1 = max(left, 0), min(left + w, W)
        if r1 > r0 and c1 > c0:
            out[:, r0 - top:r1 - top, c0 - left:c1 - left] = image[:, r0:r1, c0:c1]
        return out


def _start(lo: int, hi: int, size: int, limit: int) -> int:
    missing = size - (hi - lo)
    if missing <= 0:
        return lo
    if lo == 0 and hi == limit:
        return -(missing // 2)
    if lo == 0:
        return hi - size
    return lo


def receptive_field(model: nn.Module, map_layer: str, input_shape: tuple[int, int, int], *,
                    seed: int = 0, batch_size: int = 256) -> ReceptiveField:
    """Measure the input box of every position of ``map_layer``'s maps.

    Parameters
    ----------
    model : nn.Module
        Not changed (a float64 copy is probed when the model can be copied).
    map_layer : str
        A layer with ``(n, c, h, w)`` output (:func:`find_map_layer`).
    input_shape : (c, H, W)
    seed : int
        Seeds the random base images.
    batch_size : int
        Probe images per forward pass.

    Returns
    -------
    ReceptiveField

    Raises
    ------
    ModelError
        ``map_layer`` does not exist.
    ActivationError
        Its output is not ``(n, c, h, w)``.
    """
    _modules(model, map_layer)
    probe, dtype, tol = _probe_model(model)
    c, H, W = (int(s) for s in input_shape)
    gen = torch.Generator().manual_seed(seed)
    bases = torch.rand((_PROBE_BASES, c, H, W), generator=gen, dtype=torch.float64).to(dtype)
    images = [bases]
    for axis, length in ((2, H), (3, W)):
        for b in range(_PROBE_BASES):
            for value in (_PROBE, -_PROBE):
                x = bases[b:b + 1].repeat(length, 1, 1, 1)
                idx = torch.arange(length)
                if axis == 2:
                    x[idx, :, idx, :] = value
                else:
                    x[idx, :, :, idx] = value
                images.append(x)
    stack = torch.cat(images)
    maps = _maps(probe, map_layer, stack, batch_size)
    base_maps = maps[:_PROBE_BASES]
    rest = maps[_PROBE_BASES:]
    h, w = maps.shape[2:]
    scale = base_maps.abs().amax() + 1.0
    depends = []  # per axis: (length, h, w) bool
    offset = 0
    for length in (H, W):
        dep = torch.zeros((length, h, w), dtype=torch.bool)
        for b in range(_PROBE_BASES):
            for _ in range(2):
                part = rest[offset:offset + length]
                offset += length
                dep |= ((part - base_maps[b:b + 1]).abs() > tol * scale).any(dim=1)
        depends.append(dep.numpy())
    boxes = np.zeros((h, w, 4), dtype=np.int64)
    for axis, (dep, length) in enumerate(zip(depends, (H, W))):
        any_dep = dep.any(axis=0)
        first = np.where(any_dep, dep.argmax(axis=0), 0)
        last = np.where(any_dep, length - 1 - dep[::-1].argmax(axis=0), length - 1)
        boxes[:, :, axis] = first
        boxes[:, :, axis + 2] = last + 1
    size = (int((boxes[:, :, 2] - boxes[:, :, 0]).max()), int((boxes[:, :, 3] - boxes[:, :, 1]).max()))
    field = ReceptiveField(boxes, size, (0, 0), (c, H, W))
    corners = np.array([[field.window(i, j) for j in range(w)] for i in range(h)])
    stride = (_stride(corners[:, :, 0], axis=0), _stride(corners[:, :, 1], axis=1))
    return ReceptiveField(boxes, size, stride, (c, H, W))


def _stride(corner: np.ndarray, axis: int) -> int:
    """The median step of the nominal windows between neighbouring positions (0 if one)."""
    if corner.shape[axis] < 2:
        return 0
    return int(round(float(np.median(np.diff(corner, axis=axis)))))


def _probe_model(model: nn.Module) -> tuple[nn.Module, torch.dtype, float]:
    try:
        probe = copy.deepcopy(model).double().eval()
        return probe, torch.float64, 1e-9
    except Exception:  # noqa: BLE001 - any module that refuses a float64 copy: probe as is
        return model, torch.float32, 1e-4


def _maps(model: nn.Module, layer: str, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``layer``'s output for ``x``, ``batch_size`` images per pass, the pass stopped there."""
    module = dict(model.named_modules())[layer]
    grabbed: list[torch.Tensor] = []
    handle = module.register_forward_hook(stop_at_last_call(layer_calls(model, module, x[:1])))
    was_training = model.training
    model.eval()
    one = getattr(model, "one_image_at_a_time", False)
    step = 1 if one else batch_size
    try:
        with torch.no_grad():
            for s in range(0, len(x), step):
                try:
                    model(x[s:s + step])
                except Captured as cap:
                    grabbed.append(cap.output.detach())
    finally:
        handle.remove()
        model.train(was_training)
    out = torch.cat(grabbed)
    if out.ndim != 4:
        raise ActivationError(f"layer {layer!r} outputs shape {tuple(out.shape)}; a kernel map "
                              "layer must output (n, c, h, w)")
    return out
