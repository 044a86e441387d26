"""Pictures of arrays: a diverging colour scale, PNG encoding, strips and the kernel grid.

:func:`to_rgb` turns a signed gradient or filter (blue negative, white 0, red positive)
or an image in [0, 1] into an (h, w, 3) uint8 picture; :func:`png_bytes` encodes one;
:func:`grid_png` draws a row per kernel of a :class:`~cnn2logic.visual.visuals.KernelVisuals`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import VisualizationError

if TYPE_CHECKING:  # only for annotations: visuals.py imports this module
    from .visuals import KernelVisuals


# RdBu reversed: blue for negative, white for 0, red for positive.
_DIVERGING = np.array([
    [5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240],
    [247, 247, 247], [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43],
    [103, 0, 31],
], dtype=np.float64)


def to_rgb(array: np.ndarray, kind: str = "signed") -> np.ndarray:
    """An (h, w, 3) uint8 picture of a (c, h, w) or (h, w) array.

    ``kind="signed"``: channels averaged, a diverging blue-white-red scale symmetric
    about 0 (for gradients and filters).  ``kind="image"``: values in [0, 1] as gray (or
    RGB for 3 channels).

    Raises
    ------
    VisualizationError
        ``kind`` is unknown or the array is not 2-D/3-D.
    """
    a = np.asarray(array, dtype=np.float64)
    if a.ndim == 3:
        if kind == "image" and a.shape[0] == 3:
            return (np.clip(a.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
        a = a.mean(axis=0)
    if a.ndim != 2:
        raise VisualizationError(f"cannot draw an array of shape {np.shape(array)}")
    if kind == "image":
        g = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if kind != "signed":
        raise VisualizationError(f"unknown picture kind {kind!r}")
    scale = np.abs(a).max()
    t = 0.5 + 0.5 * (a / scale if scale > 0 else a)  # in [0, 1]
    pos = t * (len(_DIVERGING) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_DIVERGING) - 2)
    frac = (pos - lo)[..., None]
    rgb = _DIVERGING[lo] * (1 - frac) + _DIVERGING[lo + 1] * frac
    return rgb.round().astype(np.uint8)


def png_bytes(rgb: np.ndarray, scale: int = 4) -> bytes:
    """PNG of an (h, w, 3) uint8 array, enlarged ``scale`` times (nearest neighbour).

    Parameters
    ----------
    rgb : ndarray (h, w, 3), uint8
        The picture, e.g. from :func:`to_rgb`.
    scale : int
        Enlargement factor; 1 or less keeps the size.

    Returns
    -------
    bytes
        The PNG file's content.
    """
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def strip(arrays: Sequence[np.ndarray], kind: str = "image", gap: int = 1) -> np.ndarray:
    """Pictures side by side with a white ``gap`` (an (h, w, 3) uint8 array).

    Parameters
    ----------
    arrays : sequence of ndarray
        Arrays :func:`to_rgb` can draw, left to right; shorter ones are top-aligned.
    kind : {"image", "signed"}
        Passed to :func:`to_rgb`.
    gap : int
        White columns between two pictures.

    Returns
    -------
    ndarray (h, w, 3), uint8

    Raises
    ------
    VisualizationError
        An array :func:`to_rgb` cannot draw.
    """
    pics = [to_rgb(a, kind) for a in arrays]
    h = max(p.shape[0] for p in pics)
    out = np.full((h, sum(p.shape[1] for p in pics) + gap * (len(pics) - 1), 3), 255, np.uint8)
    x = 0
    for p in pics:
        out[: p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def grid_png(vis: KernelVisuals, *, scale: int = 3, max_kernels: int = 64,
             max_top: int = 8) -> bytes:
    """One PNG: a row per kernel with its filter, SmoothGrad, act-max and top images.

    Parameters
    ----------
    vis : KernelVisuals
    scale : int
        Enlargement of every picture (nearest neighbour).
    max_kernels, max_top : int
        At most this many kernel rows (the rest are counted below) and top images a row.
        A kernel without an act-max image (computed for some kernels only) has an empty
        cell there.

    Returns
    -------
    bytes
        The PNG file's content.
    """
    n = min(len(vis), max_kernels)
    cols: list[tuple[str, Callable[[int], np.ndarray | None], str]] = []
    if vis.filters is not None:
        cols.append(("filter", lambda i: vis.filters[i], "signed"))
    cols.append(("SmoothGrad", lambda i: vis.smoothgrad[i], "signed"))
    if vis.actmax is not None:
        cols.append(("act. max", vis.actmax_image, "image"))
    n_top = 0 if vis.top_images is None else min(max_top, vis.top_images.shape[1])
    for t in range(n_top):
        cols.append((f"top {t + 1}", lambda i, t=t: vis.top_images[i, t], "image"))
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # pragma: no cover - Pillow without FreeType
        font = ImageFont.load_default()
    h, w = vis.smoothgrad.shape[2] * scale, vis.smoothgrad.shape[3] * scale
    cell_w = max([w, (vis.filters.shape[3] * scale) if vis.filters is not None else 0]
                 + [int(font.getlength(title)) + 4 for title, _, _ in cols])
    label_w = max(int(font.getlength(n)) for n in vis.names[:n] + ("r = -0.00",)) + 16
    head_h, pad = 22, 6
    width = label_w + len(cols) * (cell_w + pad) + pad
    height = head_h + n * (max(h, 40) + pad) + pad + (16 if len(vis) > n else 0)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, (title, _, _) in enumerate(cols):
        draw.text((label_w + c * (cell_w + pad) + 2, 4), title, fill="black", font=font)
    for i in range(n):
        y = head_h + i * (max(h, 40) + pad)
        label = vis.names[i]
        draw.text((6, y + 4), label, fill="black", font=font)
        if vis.correlation is not None:
            draw.text((6, y + 22), f"r = {vis.correlation[i]:.2f}", fill="#444", font=font)
        for c, (_, get, kind) in enumerate(cols):
            arr = get(i)
            if arr is None:
                continue
            pic = Image.fromarray(to_rgb(arr, kind), "RGB")
            pic = pic.resize((pic.width * scale, pic.height * scale), Image.Resampling.NEAREST)
            canvas.paste(pic, (label_w + c * (cell_w + pad), y))
    if len(vis) > n:
        draw.text((6, height - 16), f"(first {n} of {len(vis)} kernels)", fill="black",
                  font=font)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def kernel_pngs(vis: KernelVisuals, i: int, scale: int = 4) -> dict[str, bytes]:
    """PNGs of kernel ``i``: ``smoothgrad``, and ``filter``/``top``/``actmax`` if present
    (``actmax`` only when kernel ``i`` has an image: :meth:`KernelVisuals.actmax_image`).

    Parameters
    ----------
    vis : KernelVisuals
    i : int
        0-based kernel index.
    scale : int
        Enlargement of the single pictures (the top-image strip is enlarged twice).

    Returns
    -------
    dict
        Kind -> PNG bytes.
    """
    out = {"smoothgrad": png_bytes(to_rgb(vis.smoothgrad[i], "signed"), scale)}
    if vis.filters is not None:
        out["filter"] = png_bytes(to_rgb(vis.filters[i], "signed"), scale)
    if vis.top_images is not None:
        out["top"] = png_bytes(strip(list(vis.top_images[i]), "image"), 2)
    actmax = vis.actmax_image(i)
    if actmax is not None:
        out["actmax"] = png_bytes(to_rgb(actmax, "image"), scale)
    return out


_OUTSIDE = np.array([222, 230, 242], dtype=np.uint8)  # pixels of a crop outside the image


def patch_rgb(patch: np.ndarray) -> np.ndarray:
    """An (h, w, 3) uint8 picture of a crop in [0, 1]; NaN (outside the image) light blue.

    Parameters
    ----------
    patch : ndarray (c, h, w)
        A crop from :meth:`cnn2logic.visual.receptive.ReceptiveField.crop`.

    Returns
    -------
    ndarray (h, w, 3), uint8
    """
    a = np.asarray(patch, dtype=np.float64)
    outside = np.isnan(a).any(axis=0)
    rgb = to_rgb(np.nan_to_num(a, nan=0.0), "image")
    rgb[outside] = _OUTSIDE
    return rgb


def patch_strip_png(patches: np.ndarray, scale: int = 3, gap: int = 2) -> bytes:
    """One PNG of a kernel's crops side by side (``patches``: (top, c, h, w)).

    Returns
    -------
    bytes
    """
    pics = [patch_rgb(p) for p in patches]
    h, w = pics[0].shape[:2]
    out = np.full((h, len(pics) * (w + gap) - gap, 3), 255, np.uint8)
    for n, p in enumerate(pics):
        out[:, n * (w + gap):n * (w + gap) + w] = p
    return png_bytes(out, scale)


_WHERE_IMAGE = np.array([70, 70, 70], dtype=np.uint8)  # the image outside the window
_WHERE_WINDOW = np.array([255, 214, 0], dtype=np.uint8)  # the window a position sees


def where_rgb(box: Sequence[int], input_hw: tuple[int, int]) -> np.ndarray:
    """The input image's frame with one position's window filled: where a position unit
    (``k3_r1c2``) looks.

    Parameters
    ----------
    box : (top, left, bottom, right)
        The window in input pixels, bottom/right exclusive
        (:attr:`cnn2logic.visual.receptive.ReceptiveField.boxes`).
    input_hw : (H, W)

    Returns
    -------
    ndarray (H, W, 3), uint8
    """
    out = np.empty((*input_hw, 3), np.uint8)
    out[:] = _WHERE_IMAGE
    t, l, b, r = (int(v) for v in box)
    out[max(t, 0):b, max(l, 0):r] = _WHERE_WINDOW
    return out


def patch_mosaic_png(patches: np.ndarray, n: int = 4, scale: int = 2,
                     where: np.ndarray | None = None) -> bytes:
    """The first ``n`` crops as a near-square mosaic (a rule literal's thumbnail), and
    ``where`` (:func:`where_rgb`) beside it when given.

    Returns
    -------
    bytes
    """
    pics = [patch_rgb(p) for p in patches[:n]]
    cols = int(np.ceil(np.sqrt(len(pics))))
    rows = int(np.ceil(len(pics) / cols))
    h, w = pics[0].shape[:2]
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, 3), 255, np.uint8)
    for k, p in enumerate(pics):
        r, c = divmod(k, cols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = p
    if where is not None:  # white-padded to one height, a 2-pixel gap between
        height = max(out.shape[0], where.shape[0])
        both = np.full((height, out.shape[1] + 2 + where.shape[1], 3), 255, np.uint8)
        both[:out.shape[0], :out.shape[1]] = out
        both[:where.shape[0], out.shape[1] + 2:] = where
        out = both
    return png_bytes(out, scale)


def profile_png(on_share: np.ndarray, classes: Sequence[str], *, bar: int = 14,
                height: int = 60) -> bytes:
    """A bar chart of one kernel's class profile (share of each class's images it is on).

    Parameters
    ----------
    on_share : ndarray (classes,)
        Values in [0, 1].
    classes : sequence of str
        The bars' labels.
    bar, height : int
        Bar width and the chart's height in pixels.

    Returns
    -------
    bytes
    """
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:  # pragma: no cover - Pillow without FreeType
        font = ImageFont.load_default()
    width = len(classes) * (bar + 3) + 3
    img = Image.new("RGB", (width, height + 16), "white")
    draw = ImageDraw.Draw(img)
    for i, (share, name) in enumerate(zip(on_share, classes)):
        x = 3 + i * (bar + 3)
        top = height - int(round(float(np.clip(share, 0, 1)) * (height - 2)))
        draw.rectangle([x, 1, x + bar - 1, height], fill="#eeeeee")
        draw.rectangle([x, top, x + bar - 1, height], fill="#1f5fbf" if share >= 0.5 else "#8fb0df")
        draw.text((x + 2, height + 2), str(name)[:2], fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
