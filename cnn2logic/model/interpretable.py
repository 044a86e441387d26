"""Interpretable filters (Zhang, Wu, Zhu 2017): one part, one location per top-layer filter.

For the ``n x n`` maps of a high conv layer (after its activation) there are ``n²``
positive templates and one negative template::

    T_mu[i, j] = tau * max(1 - beta * ||(i, j) - mu||_1 / n, -1),   T_- = -tau,
    tau = 0.5 / n²,  beta = 4,
    p(T_mu) = alpha / n²,  p(T_-) = 1 - alpha,  alpha = n² / (1 + n²),
    p(x | T) ∝ exp(tr(x · T))   (normalised over the images of the batch).

:class:`InterpretableMask` is the forward-pass part: each map is multiplied by the
template *shape* ``max(1 - beta * d / n, -1)`` centred on the map's own arg-max and passed
through a ReLU, ``x_masked = ReLU(x ∘ T_mu_hat / tau)``.  We use the shape without the
factor ``tau`` so that masking does not scale activations by ``1 / (2 n²)`` (the loss keeps
``tau``); the arg-max is a constant for the gradient.  It is part of the network at
inference too, so a checkpoint rebuilds the same network.

:func:`filter_loss` is the training part: ``-MI(X; T)`` per filter over the batch,
averaged over filters, computed on the masked maps.  :func:`filter_loss_hook` turns it
into a ``train(extra_loss=...)`` hook.  :func:`map_statistics` measures what the loss is
meant to change: the spatial entropy of each kernel's map and how stable its peak
location is across the images of one class.

The paper's architectures have 2x2 or 1x1 maps at the top conv layer, where the
templates are degenerate; use a network whose top conv layer keeps a larger map (the
example in ``examples/relu_bn_cnn.py`` has 7x7).

Example
-------
>>> import torch
>>> mask = InterpretableMask()
>>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 1, 1] = 1.0; x[0, 0, 4, 4] = 0.9
>>> y = mask(x)
>>> float(y[0, 0, 1, 1]), float(y[0, 0, 4, 4])   # far from the peak: suppressed
(1.0, 0.0)
>>> loss = filter_loss(torch.rand(8, 3, 5, 5))
>>> loss.shape
torch.Size([])
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import ModelError

BETA = 4.0


def _distance(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """L1 distances between all positions: (h*w, h, w), row ``p`` centred on position p."""
    ii, jj = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                            indexing="ij")
    ci, cj = ii.reshape(-1, 1, 1), jj.reshape(-1, 1, 1)
    return ((ii[None] - ci).abs() + (jj[None] - cj).abs()).float()


def template_shapes(h: int, w: int, beta: float = BETA) -> torch.Tensor:
    """``max(1 - beta * d / n, -1)`` for every centre: (h*w, h, w), ``n = max(h, w)``.

    Parameters
    ----------
    h, w : int
        Map size.
    beta : float

    Returns
    -------
    torch.Tensor
    """
    n = max(h, w)
    return torch.clamp(1 - beta * _distance(h, w) / n, min=-1.0)


def templates(h: int, w: int, beta: float = BETA) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n²`` positive templates plus the negative one, and their priors.

    Parameters
    ----------
    h, w : int
        Map size.
    beta : float

    Returns
    -------
    T : torch.Tensor
        (h*w + 1, h, w), the negative template last.
    prior : torch.Tensor
        (h*w + 1,).
    """
    m = h * w
    tau = 0.5 / m
    pos = tau * template_shapes(h, w, beta)
    neg = torch.full((1, h, w), -tau)
    alpha = m / (1.0 + m)
    prior = torch.cat([torch.full((m,), alpha / m), torch.tensor([1 - alpha])])
    return torch.cat([pos, neg]), prior


class InterpretableMask(nn.Module):
    """``ReLU(x ∘ shape(argmax x))`` per map (module docstring); no parameters.

    In training mode the masked maps of the last forward pass are kept in ``last`` for
    :func:`filter_loss_hook`.

    Parameters
    ----------
    beta : float
        Template slope.

    Raises
    ------
    ModelError
        ``beta`` is not positive, or (in the forward pass) the input is not 4-D.
    """

    def __init__(self, beta: float = BETA) -> None:
        super().__init__()
        if beta <= 0:
            raise ModelError(f"beta must be positive, got {beta}")
        self.beta = float(beta)
        self.last: torch.Tensor | None = None
        self._cache: dict[tuple[int, int], torch.Tensor] = {}

    def extra_repr(self) -> str:
        """``beta`` in the module's repr."""
        return f"beta={self.beta}"

    def _shapes(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w)
        if key not in self._cache:
            self._cache[key] = template_shapes(h, w, self.beta)
        return self._cache[key].to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each map times its own template (the one centred on its peak).

        Raises
        ------
        ModelError
            ``x`` is not ``(n, c, h, w)``.
        """
        if x.ndim != 4:
            raise ModelError(f"the interpretable mask needs (n, c, h, w) maps, got {tuple(x.shape)}")
        n, c, h, w = x.shape
        peak = x.detach().reshape(n, c, h * w).argmax(dim=2)  # (n, c)
        mask = self._shapes(h, w, x.device)[peak]  # (n, c, h, w)
        out = torch.relu(x * mask)
        self.last = out if self.training else None
        return out


def filter_loss(x: torch.Tensor, beta: float = BETA) -> torch.Tensor:
    """``-MI(X; T)`` of each filter over the batch, averaged over filters.

    Parameters
    ----------
    x : tensor (batch, filters, h, w)
        The (masked) maps of one batch.

    Raises
    ------
    ModelError
        ``x`` is not 4-D or the batch has fewer than two images.
    """
    if x.ndim != 4:
        raise ModelError(f"filter loss needs (n, c, h, w) maps, got {tuple(x.shape)}")
    b, c, h, w = x.shape
    if b < 2:
        raise ModelError("filter loss needs at least two images per batch")
    T, prior = templates(h, w, beta)
    T, prior = T.to(x), prior.to(x)
    score = torch.einsum("bchw,thw->ctb", x, T)  # tr(x · T) per filter, template, image
    log_p_x_given_t = score - torch.logsumexp(score, dim=2, keepdim=True)  # over images
    p_x_given_t = log_p_x_given_t.exp()
    log_p_x = torch.logsumexp(log_p_x_given_t + prior.log()[None, :, None], dim=1,
                              keepdim=True)  # (c, 1, b)
    mi = (prior[None, :, None] * p_x_given_t * (log_p_x_given_t - log_p_x)).sum(dim=(1, 2))
    return -mi.mean()


def mask_modules(model: nn.Module) -> list[tuple[str, InterpretableMask]]:
    """The :class:`InterpretableMask` layers of ``model`` with their names.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    list of (str, InterpretableMask)
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, InterpretableMask)]


def filter_loss_hook(weight: float, beta: float | None = None
                     ) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``train(extra_loss=...)`` hook: ``weight`` × :func:`filter_loss` of every mask layer.

    Parameters
    ----------
    weight : float
    beta : float, optional
        Template slope; by default each mask layer's own.

    Returns
    -------
    callable
        ``(model, images, logits) -> scalar tensor``.

    Raises
    ------
    ModelError
        ``weight`` is negative, or (at the first step) the model has no mask layer.
    """
    if weight < 0:
        raise ModelError(f"filter-loss weight must be ≥ 0, got {weight}")

    def hook(model: nn.Module, _images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        layers = mask_modules(model)
        if not layers:
            raise ModelError("the filter loss needs an InterpretableMask layer after the top "
                             "conv layer's activation (ModelSpec(filter_mask=True), or add "
                             "cnn2logic.model.InterpretableMask to your model)")
        total = logits.new_zeros(())
        for _, m in layers:
            if m.last is not None:
                total = total + filter_loss(m.last, m.beta if beta is None else beta)
        return weight * total

    return hook


def capture_maps(model: nn.Module, layer: str, images: torch.Tensor | np.ndarray,
                 batch_size: int = 500) -> np.ndarray:
    """The full maps (images, kernels, h, w) of ``layer``, float32.

    Parameters
    ----------
    model : nn.Module
    layer : str
        A name from ``model.named_modules()``.
    images : torch.Tensor or numpy.ndarray
    batch_size : int

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ModelError
        No such layer, or its output is not 4-D.
    """
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        raise ModelError(f"no layer named {layer!r}; layers: {', '.join(n for n in modules if n)}")
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    out: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: Any, o: torch.Tensor) -> None:
        if o.ndim != 4:
            raise ModelError(f"layer {layer!r} outputs {tuple(o.shape)}, not (n, c, h, w) maps")
        out.append(o.detach().float().cpu())

    handle = modules[layer].register_forward_hook(hook)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for s in range(0, len(images), batch_size):
                model(images[s:s + batch_size])
    finally:
        handle.remove()
        model.train(was)
    return torch.cat(out).numpy()


def map_statistics(maps: np.ndarray, labels: np.ndarray, *, near: int = 1) -> dict[str, float]:
    """How concentrated the kernels' maps are, and how stable their peaks are per class.

    Parameters
    ----------
    maps : array (images, kernels, h, w)
        Non-negative maps (after ReLU); negative values are clipped to 0.
    labels : array (images,)
    near : int
        ``peak_near_mode`` counts peaks within this L1 distance of the modal peak.

    Returns
    -------
    dict
        ``spatial_entropy``: mean over (image, kernel) pairs with a non-zero map of the
        entropy of the map normalised to a distribution, divided by ``log(h*w)`` (0: all
        mass at one position, 1: uniform); ``peak_at_mode``: for every kernel and class,
        the share of the class's images (with a non-zero map) whose peak is at the most
        common peak position, averaged over (kernel, class) pairs weighted by images;
        ``peak_near_mode``: the same within L1 distance ``near``; ``active_share``: the
        share of (image, kernel) pairs with a non-zero map.

    Raises
    ------
    ModelError
        Shapes do not fit.
    """
    maps = np.clip(np.asarray(maps, np.float64), 0.0, None)
    labels = np.asarray(labels)
    if maps.ndim != 4 or len(maps) != len(labels):
        raise ModelError(f"need (images, kernels, h, w) maps and one label per image, got "
                         f"{maps.shape} and {labels.shape}")
    n, k, h, w = maps.shape
    flat = maps.reshape(n, k, h * w)
    mass = flat.sum(axis=2)
    active = mass > 0
    p = flat / np.where(active, mass, 1.0)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -(np.where(p > 0, p * np.log(p), 0.0)).sum(axis=2)
    norm = np.log(h * w) if h * w > 1 else 1.0
    spatial_entropy = float((ent[active] / norm).mean()) if active.any() else float("nan")
    peaks = flat.argmax(axis=2)  # (n, k)
    pr, pc = np.divmod(peaks, w)
    at_mode = near_mode = counted = 0
    for c in np.unique(labels):
        rows = labels == c
        for j in range(k):
            sel = rows & active[:, j]
            m = int(sel.sum())
            if m == 0:
                continue
            pk = peaks[sel, j]
            mode = int(np.bincount(pk, minlength=h * w).argmax())
            mr, mc = divmod(mode, w)
            dist = np.abs(pr[sel, j] - mr) + np.abs(pc[sel, j] - mc)
            at_mode += int((pk == mode).sum())
            near_mode += int((dist <= near).sum())
            counted += m
    return {
        "spatial_entropy": round(spatial_entropy, 6),
        "peak_at_mode": round(at_mode / counted, 6) if counted else float("nan"),
        "peak_near_mode": round(near_mode / counted, 6) if counted else float("nan"),
        "active_share": round(float(active.mean()), 6),
        "map_size": f"{h}x{w}",
    }
