"""The report's kernel gallery: per kernel, the evidence a person can recognise, best first.

One card per kernel (anchor ``kernel-<name>``, which every rule literal links to): its top
patches (crops of the receptive field around the peak of its map in its top images), its
class profile (share of each class's images on which its bit is on, as a bar chart) and
its saliency image (SmoothGrad, or activation maximisation when that is more selective),
each with its measured selectivity margin; the evidence kind chosen for the kernel
(:func:`cnn2logic.visual.evidence.choose_kinds`) comes first.  Without evidence (no data)
the cards show the SmoothGrad image only.  Rendering only: the HTML helpers are given the
:class:`~cnn2logic.visual.visuals.KernelVisuals`; nothing is computed here but pictures.
"""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from ..rules import RuleSet
from .images import grid_png, patch_mosaic_png, patch_strip_png, png_bytes, to_rgb, where_rgb
from .relations import literal_uses
from .visuals import KernelVisuals, match_kernels

if TYPE_CHECKING:  # only for annotations
    from .evidence import KernelEvidence

GALLERY_CSS = """
.gal{display:grid;grid-template-columns:repeat(auto-fill,minmax(350px,1fr));gap:8px}
.kc{background:#fff;border:1px solid #ddd;border-radius:5px;padding:5px 7px}
.kc:target{outline:3px solid #e0b341}
.kh{font-size:.9em;margin-bottom:3px}.kh .lab{color:#12552a;margin-left:4px}
.kb{display:flex;flex-wrap:wrap;align-items:flex-end;gap:8px}
.kb figure{margin:0;display:flex;flex-direction:column;align-items:flex-start}
.kb figcaption{font-size:.72em;color:#555;white-space:nowrap}
.kb img{image-rendering:pixelated;height:40px;border:1px solid #eee}
.kb img.strip{height:36px}
.prof{display:flex;align-items:flex-end;gap:1px;height:40px}
.prof div{display:flex;flex-direction:column;align-items:center;justify-content:flex-end;
height:40px;width:12px}
.prof i{display:block;width:10px;background:#8fb0df}.prof i.hi{background:#1f5fbf}
.prof u{text-decoration:none;font-size:9px;line-height:10px;color:#333}
.ok{color:#1a7f37}.no{color:#c62828}
"""

_KIND_NAMES = {"patches": "top patches", "smoothgrad": "SmoothGrad", "actmax": "act. max"}


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def kernel_anchor(name: str) -> str:
    """The gallery card's HTML id of kernel ``name`` (``kernel-k6``).

    Returns
    -------
    str
    """
    return "kernel-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def literal_thumbnail(vis: KernelVisuals, index: int,
                      position: tuple[int, int] | None = None) -> bytes:
    """The PNG shown with a rule literal: the kernel's first 4 top patches as a mosaic,
    or its SmoothGrad image when there is no evidence.

    Parameters
    ----------
    vis : KernelVisuals
    index : int
        The kernel.
    position : (row, col), optional
        1-based map position of a position unit (``k3_r1c2``,
        :func:`cnn2logic.unitnames.position_of`): the window of the input it sees is drawn
        beside the patches, when the evidence's receptive field is that of the layer's own
        map (the positions the names count).

    Returns
    -------
    bytes
    """
    ev = vis.evidence
    if ev is not None:
        where = None
        boxes = ev.receptive.boxes
        if (position is not None and ev.map_layer == ev.layer
                and 1 <= position[0] <= boxes.shape[0] and 1 <= position[1] <= boxes.shape[1]):
            where = where_rgb(boxes[position[0] - 1, position[1] - 1],
                              tuple(ev.receptive.input_shape[1:]))
        return patch_mosaic_png(ev.patches[index], 4, 2, where)
    return png_bytes(to_rgb(vis.smoothgrad[index], "signed"), 2)


def _score(margin: float | None) -> str:
    if margin is None or not np.isfinite(margin):
        return '<span class="ok">selective</span>' if margin == np.inf else "–"
    cls, mark = ("ok", "✓") if margin > 0 else ("no", "✗")
    return f'<span class="{cls}">{mark} {margin:+.2f}</span>'


def _coverage(ev: KernelEvidence, kind: str) -> str:
    """`` (of the n kernels that have it)`` when ``kind`` covers only some kernels."""
    n = int(ev.has_kind(kind).sum())
    return f" (of the {n} kernels that have it)" if n < len(ev) else ""


def _profile(share: np.ndarray, classes: Sequence[str]) -> str:
    bars = "".join(
        f'<div title="class {html.escape(c)}: on for {s:.0%} of its images">'
        f'<i class="{"hi" if s >= 0.5 else ""}" style="height:{max(1, round(30 * s))}px"></i>'
        f"<u>{html.escape(c[:2])}</u></div>" for s, c in zip(share, classes))
    return (f'<figure><div class="prof">{bars}</div>'
            "<figcaption>share of each class's images it is on for</figcaption></figure>")


def _card(vis: KernelVisuals, i: int, var: str, uses: str, label: str | None) -> str:
    ev = vis.evidence
    head = (f'<div class="kh"><b>{html.escape(var)}</b>'
            + (f'<span class="lab">{html.escape(label)}</span>' if label else "")
            + f' <span class="small">used in: {html.escape(uses or "–")}</span></div>')
    if ev is None:
        sg = _uri(png_bytes(to_rgb(vis.smoothgrad[i], "signed"), 1))
        return (f'<div class="kc" id="{kernel_anchor(var)}">{head}<div class="kb"><figure>'
                f'<img src="{sg}" alt="{html.escape(var)} SmoothGrad"><figcaption>SmoothGrad'
                "</figcaption></figure></div></div>")
    margins = {k: float(ev.margins(k)[i]) for k in ev.kinds}
    rf = ev.receptive.size
    blocks = {"patches": (
        f'<figure><img class="strip" src="{_uri(patch_strip_png(ev.patches[i], 1, 1))}" '
        f'alt="{html.escape(var)} top patches"><figcaption>top {ev.patches.shape[1]} patches '
        f"({rf[0]}×{rf[1]} px) {_score(margins['patches'])}</figcaption></figure>")}
    # act-max may exist for some kernels only (those the rules read): the others show
    # their SmoothGrad image
    actmax = vis.actmax_image(i)
    sal = [k for k in ("smoothgrad", "actmax") if k in margins
           and (k == "smoothgrad" or actmax is not None)]
    if sal:
        best = ev.chosen[i] if ev.chosen[i] in sal else max(sal, key=lambda k: margins[k])
        pic = (to_rgb(vis.smoothgrad[i], "signed") if best == "smoothgrad"
               else to_rgb(actmax, "image") if actmax is not None else None)
        if pic is not None:
            blocks["saliency"] = (
                f'<figure><img src="{_uri(png_bytes(pic, 1))}" alt="{html.escape(var)} '
                f'{best}"><figcaption>{_KIND_NAMES[best]} {_score(margins[best])}'
                "</figcaption></figure>")
    profile = (_profile(ev.on_share[i], ev.classes) if ev.on_share is not None else "")
    order = (["saliency", "patches"] if ev.chosen[i] != "patches" and "saliency" in blocks
             else ["patches", "saliency"])
    body = blocks[order[0]] + profile + "".join(blocks.get(k, "") for k in order[1:])
    return (f'<div class="kc" id="{kernel_anchor(var)}">{head}<div class="kb">{body}</div>'
            "</div>")


def kernel_gallery(vis: KernelVisuals, variable_of: Mapping[int, str],
                   uses: Mapping[str, Sequence[str]],
                   labels: Mapping[str, str] | None = None) -> str:
    """The gallery's HTML: an explanation, the selectivity figures and one card per kernel.

    Parameters
    ----------
    vis : KernelVisuals
    variable_of : mapping kernel index -> rule variable name
        Kernels without a rule variable are shown by their own name.
    uses : mapping variable -> list of str
        Where each variable is used (``3``, ``¬5``), shown on its card.
    labels : mapping variable -> str, optional
        Short labels to show beside the names.

    Returns
    -------
    str
    """
    ev = vis.evidence
    labels = labels or {}
    cards = []
    for i, name in enumerate(vis.names):
        var = variable_of.get(i, name)
        cards.append(_card(vis, i, var, " ".join(uses.get(var, [])), labels.get(var)))
    if ev is None:
        intro = ("<p>No data were given, so there are no top patches or class profiles: "
                 "each kernel is shown by its SmoothGrad image.</p>")
    else:
        by_kind = ", ".join(f"{_KIND_NAMES[k]} {ev.selectivity(k):.0%}" + _coverage(ev, k)
                            for k in ev.kinds)
        intro = (
            f"<p>Per kernel of <code>{html.escape(vis.layer)}</code> (maps of "
            f"<code>{html.escape(ev.map_layer)}</code>, receptive field {ev.receptive.size[0]}×"
            f"{ev.receptive.size[1]} px, stride {ev.receptive.stride[0]}): its top "
            f"{ev.patches.shape[1]} patches (the receptive field around the peak of its map "
            "in the images where its unit is largest; light blue: outside the image), the "
            "share of each class's images on which its bit is on, and its saliency image. "
            "✓/✗ and the number: the evidence's selectivity margin — its own evidence drives "
            "the kernel's unit more (✓) than any other kernel's evidence of the kind does, by "
            "that many standard deviations of the unit (patches are tested pasted alone on a "
            f"{html.escape(str(ev.params.get('background', 'zeros')))} background). The "
            "kind chosen for the kernel comes first.</p>"
            f"<p>Selective: <b>{ev.selectivity():.0%}</b> of kernels with the evidence shown "
            f"first; by kind: {by_kind}.</p>")
    return intro + f'<div class="gal">{"".join(cards)}</div>'


def kernel_section(vis: KernelVisuals, rules: RuleSet,
                   labels: Mapping[str, str] | None = None) -> str:
    """The report's kernel section: the gallery, then the SmoothGrad grid folded away.

    Parameters
    ----------
    vis : KernelVisuals
    rules : RuleSet
        Their variables name the kernels; their literals say where each is used.
    labels : mapping variable -> str, optional

    Returns
    -------
    str
    """
    uses: dict[str, list[str]] = {}
    for (var, head), d in literal_uses(rules).items():
        mark = {1: "", -1: "¬", 0: "±"}[d["sign"]]
        uses.setdefault(var, []).append(f"{mark}{head}")
    index = match_kernels(rules.variables, vis)
    name_of = {i: v for v, i in index.items()}
    p = vis.params
    parts = [
        kernel_gallery(vis, name_of, uses, labels),
        "<details><summary>All maximising images in one grid"
        + (" (filter, " if vis.filters is not None else " (")
        + "SmoothGrad" + (", act. max" if vis.actmax is not None else "")
        + (f" (for {len(vis.actmax_kernels)} of the {len(vis)} kernels)"
           if vis.actmax is not None and len(vis.actmax_kernels) < len(vis) else "")
        + (", top images" if vis.top_images is not None else "") + ")</summary>"
        f"<p class=small>SmoothGrad: Gaussian noise mean {p.get('noise_mean', 0.0)}, "
        f"standard deviation {p.get('noise_stdev')}, {p.get('samples')} noisy copies of the "
        f"base image <b>{html.escape(str(p.get('base')))}</b>; signed gradient of the pooled "
        f"unit ({html.escape(str(p.get('reduce', 'max')))} over positions). Red: brighter "
        "pixels raise the unit; blue: they lower it.</p>",
        f'<img class="pic" src="{_uri(grid_png(vis))}" alt="SmoothGrad grid">',
    ]
    if vis.correlation is not None:
        parts.append("<table><tr><th>kernel</th><th>correlation with filter</th></tr>"
                     + "".join(f"<tr><td>{html.escape(name_of.get(i, n))}</td>"
                               f"<td class=num>{vis.correlation[i]:.3f}</td></tr>"
                               for i, n in enumerate(vis.names)) + "</table>")
        parts.append(f"<p>Mean correlation of SmoothGrad image and filter: "
                     f"<b>{float(np.mean(vis.correlation)):.3f}</b> (best of the placements "
                     f"of the filter in the image; the paper's claim is that they look "
                     f"alike).</p>")
    parts.append("</details>")
    return "".join(parts)
