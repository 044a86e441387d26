"""A kernel's filter beside its maximising image: which conv sees the input, how alike they are.

For the one-layer network (``paper1``) the kernel sees the input directly, so its filter
can be shown beside its SmoothGrad image (the paper's Figure 3) and the two compared
(:func:`filter_correlation`).  Where there is no filter to compare with (``paper3``),
:func:`response_matrix` checks that each kernel's map activates its own unit most.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ModelError, VisualizationError
from .evidence import unit_response

# Modules that keep kernel k in channel k: allowed between an input conv and the layer.
_CHANNEL_PRESERVING = (
    nn.Sigmoid, nn.ReLU, nn.Tanh, nn.Identity, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d,
    nn.BatchNorm2d, nn.Dropout, nn.Dropout2d,
)



def input_conv(model: nn.Module, layer: str) -> nn.Conv2d | None:
    """The conv whose kernels are ``layer``'s kernels, if that conv sees the input directly.

    True for the paper's one-layer network (``paper1``: ``conv1`` for ``pool``); None when
    another conv, a linear layer or any channel-mixing module lies in between.

    Raises
    ------
    ModelError
        ``layer`` does not exist.
    """
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        raise ModelError(f"no layer named {layer!r}; layers: {', '.join(n for n in modules if n)}")
    conv: nn.Conv2d | None = None
    for name, module in model.named_modules():
        if not name or (list(module.children()) and name != layer):
            continue  # containers
        if isinstance(module, nn.Conv2d):
            if conv is not None or module.groups != 1:
                return None
            conv = module
        elif not isinstance(module, _CHANNEL_PRESERVING):
            return None
        if name == layer:
            return conv
    return None  # pragma: no cover - layer is always reached


def input_filters(model: nn.Module, layer: str) -> np.ndarray | None:
    """Filter weights (kernels, c, kh, kw) when ``layer``'s kernels see the input directly.

    Raises
    ------
    ModelError
        ``layer`` does not exist.
    """
    conv = input_conv(model, layer)
    return None if conv is None else conv.weight.detach().cpu().numpy().astype(np.float32)


def filter_correlation(maps: np.ndarray, filters: np.ndarray | None, padding: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of each map with its filter, at the best placement.

    A 27x27 filter fits a 28x28 image at 4 positions; the SmoothGrad map of a max-pooled
    unit is the filter placed where the pooled maximum was.  Each filter is correlated
    with every window of its map of the filter's size and the best window is kept.

    Returns
    -------
    corr : ndarray (kernels,)
    offsets : ndarray (kernels, 2), int
        The (row, column) of the best window's corner in the (padded) map.

    Raises
    ------
    VisualizationError
        ``filters`` is None or its shape does not fit ``maps``.
    """
    if filters is None:
        raise VisualizationError("no filters: the layer's kernels do not see the input")
    m = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    f = torch.as_tensor(np.asarray(filters, dtype=np.float32))
    if m.ndim != 4 or f.ndim != 4 or m.shape[:2] != f.shape[:2]:
        raise VisualizationError(f"maps {tuple(m.shape)} and filters {tuple(f.shape)} differ")
    if padding:
        m = nn.functional.pad(m, (padding,) * 4)
    kh, kw = f.shape[2:]
    if kh > m.shape[2] or kw > m.shape[3]:
        raise VisualizationError(f"filter {kh}x{kw} larger than map {tuple(m.shape[2:])}")
    win = nn.functional.unfold(m, (kh, kw))  # (k, c*kh*kw, positions)
    win = win - win.mean(dim=1, keepdim=True)
    fv = f.reshape(f.shape[0], -1, 1)
    fv = fv - fv.mean(dim=1, keepdim=True)
    num = (win * fv).sum(dim=1)
    den = win.norm(dim=1) * fv.norm(dim=1)
    corr = torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))
    best = corr.argmax(dim=1)
    cols = m.shape[3] - kw + 1
    offsets = torch.stack([best // cols, best % cols], dim=1)
    return corr.max(dim=1).values.numpy().astype(np.float64), offsets.numpy()


def as_image(maps: np.ndarray) -> np.ndarray:
    """Signed maps as images in [0, 1]: the positive part, scaled so its maximum is 1.

    Bright where brightening a pixel raises the unit, black elsewhere: a stroke on a
    black background, like an MNIST digit.

    Parameters
    ----------
    maps : ndarray (n, c, h, w)
        Signed gradient maps, such as :func:`~cnn2logic.visual.saliency.smoothgrad`'s.

    Returns
    -------
    ndarray (n, c, h, w), float32
        Each map's positive part divided by its maximum (all 0 where there is none).
    """
    a = np.clip(np.asarray(maps, dtype=np.float32), 0, None)
    hi = a.max(axis=(1, 2, 3), keepdims=True)
    return np.where(hi > 0, a / np.maximum(hi, 1e-12), 0.0).astype(np.float32)


def response_matrix(model: nn.Module, layer: str, maps: np.ndarray, *,
                    reduce: str = "max") -> np.ndarray:
    """``R[k, j]``: unit ``k``'s value on map ``j`` shown as an image (:func:`as_image`).

    A map that really maximises its unit makes ``R[k, k]`` the largest of row ``k``; this
    checks maximising images where there is no filter to compare with (``paper3``).

    Raises
    ------
    ModelError
        ``layer`` does not exist.
    """
    return unit_response(model, layer, as_image(maps), reduce=reduce)
