"""The report's "Why the network decided": a few test images explained in words.

:func:`explained_images` picks the images deterministically (the first test image of each
class, then the first few on which the rules and the network disagree) and says why the
rules predict what they do with :func:`cnn2logic.words.why`, the function ``cnn2logic
query ... explain`` calls, so that the report and the query say the same sentence;
:func:`why_section` renders them (thumbnail, the answers, the sentence).

Example
-------
>>> import numpy as np
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet((Variable("k1", "pool", 0),), (Head("0"), Head("1")),
...              (Rule("1", (Literal("k1"),)),), default="0")
>>> [c.words for c in explained_images(rs, np.array([[1], [0]]), np.zeros((2, 1, 2, 2)),
...                                    ("0", "1"), np.array([1, 0]), np.array([1, 0]))]
['Predicted 0, the default class, as no rule fires: rule 1 (→ 1) needs k1 on.', \
'Predicted 1 by rule 1: k1 is on.']
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..labels import kernel_labels
from ..rules import RuleSet
from ..words import rule_terms, why
from .images import png_bytes, to_rgb

#: At most this many images where the rules and the network disagree are added.
MAX_DISAGREEMENTS = 3

WHY_CSS = """
table.why td{vertical-align:middle}table.why img{image-rendering:pixelated}
.why .ans{white-space:nowrap}.why .bad{color:#c62828;font-weight:bold}
"""


@dataclass(frozen=True)
class ExplainedImage:
    """One test image, the answers for it and why the rules give theirs."""

    position: int  # 0-based position in the test data (``explain --image N``)
    image_id: str
    label: str | None
    network: str | None
    program: str | None
    words: str
    picture: np.ndarray  # (c, h, w) or (h, w), values in [0, 1]


def _name(classes: Sequence[str], value: object) -> str | None:
    if value is None:
        return None
    i = int(value)  # type: ignore[arg-type]
    return str(classes[i]) if 0 <= i < len(classes) else None


def _chosen(labels: np.ndarray | None, network: Sequence[str | None],
            program: Sequence[str | None], n_classes: int) -> list[int]:
    """Positions: the first image of each class (by label), then the first disagreements."""
    picks: list[int] = []
    if labels is not None:
        for c in range(n_classes):
            hits = np.flatnonzero(np.asarray(labels) == c)
            if len(hits):
                picks.append(int(hits[0]))
    other = [i for i, (n, p) in enumerate(zip(network, program))
             if n is not None and n != p and i not in picks]
    return picks + other[:MAX_DISAGREEMENTS]


def explained_images(rules: RuleSet, bits: np.ndarray, images: np.ndarray,
                     classes: Sequence[str], labels: np.ndarray | None = None,
                     network: np.ndarray | None = None,
                     ids: Sequence[str] | None = None) -> list[ExplainedImage]:
    """The report's explained test images (see the module docstring).

    Parameters
    ----------
    rules : RuleSet
        Rules with class heads only (kernel heads: nothing is explained, an empty list).
    bits : ndarray (images, variables)
        The test images' binary codes, columns in ``rules.variables`` order.
    images : ndarray (images, c, h, w)
        The test images themselves (for the thumbnails).
    classes : sequence of str
        Class names of the label and network indices.
    labels, network : ndarray of int, optional
        True labels and the network's predictions (class indices).
    ids : sequence of str, optional
        Image ids (default: the positions).

    Returns
    -------
    list of ExplainedImage
    """
    if any(h.kind != "class" for h in rules.heads) or len(bits) == 0:
        return []
    bits = np.asarray(bits).astype(bool)
    program = list(rules.predict(bits))
    net = [_name(classes, p) for p in network] if network is not None else [None] * len(bits)
    sat = rules.rule_matrix(bits)
    terms = rule_terms(rules)
    known = kernel_labels(rules)
    names = [v.name for v in rules.variables]
    out = []
    for i in _chosen(labels, net, program, len(classes)):
        active = [n for n, b in zip(names, bits[i]) if b]
        fired = [rank for rank, *_ in terms if sat[i, rank - 1]]
        out.append(ExplainedImage(
            i, str(ids[i]) if ids is not None else str(i),
            _name(classes, labels[i]) if labels is not None else None, net[i], program[i],
            why(program[i], terms, fired, active, known), np.asarray(images[i])))
    return out


def _answer(what: str, value: str | None, bad: bool = False) -> str:
    shown = html.escape(value if value is not None else "none")
    return f"{what} <b{' class=bad' if bad else ''}>{shown}</b>"


def why_section(cases: Sequence[ExplainedImage]) -> str:
    """The HTML of the report's "Why the network decided" section.

    Returns
    -------
    str

    Raises
    ------
    VisualizationError
        An image cannot be drawn.
    """
    rows = []
    for c in cases:
        png = png_bytes(to_rgb(c.picture, "image"), 2)
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        title = (f"test image {c.position}" if c.image_id == str(c.position)
                 else f"test image {c.position} (id {c.image_id})")
        answers = " · ".join(
            ([_answer("label", c.label)] if c.label is not None else [])
            + [_answer("network", c.network), _answer("rules", c.program,
                                                       c.program != c.network)])
        rows.append(f'<tr><td><img src="{uri}" alt="{html.escape(title)}"></td>'
                    f'<td class=ans>{html.escape(title)}<br>{answers}</td>'
                    f'<td>{html.escape(c.words)}</td></tr>')
    return ("<p>A few test images (the first of each class, then the first on which the "
            "rules and the network disagree), and why the rules answer as they do: the "
            "sentence <code>cnn2logic query PROGRAM explain --image N</code> says for the "
            "image at position N of the test data.</p>"
            "<table class=why><tr><th>image</th><th>answers</th><th>why</th></tr>"
            + "".join(rows) + "</table>")
