"""One self-contained HTML report of a rule set: it renders what it is given, loads nothing.

The report reads the rules the way the main paper does, with pictures: every literal of
a rule is shown with its kernel's top patches (the image regions where it fires most;
its SmoothGrad image when there are no data) and links to the kernel's card in the
gallery (:mod:`cnn2logic.visual.gallery`: patches, class profile, saliency image, each
with its measured selectivity), so ``k6 ∧ k8 → 3`` becomes pictures of parts of a 3.
It also holds the accuracy / fidelity / coverage
table beside the paper's figures (for ``paper1``/``paper3``), the kernel-relation graph,
the SmoothGrad grid (filters beside their images when the kernels see the input), a
confusion view of rules against the network and, given explained test images
(:mod:`cnn2logic.visual.why`), why the rules answer as they do for a few of them, in
the words of ``cnn2logic query ... explain``.

The module is a little over 500 lines: one renderer per section, each short; the
"why" section itself lives in :mod:`cnn2logic.visual.why`.

Its inputs are objects: the :class:`~cnn2logic.rules.RuleSet`, the kernels'
:class:`~cnn2logic.visual.visuals.KernelVisuals`, the metrics and the confusion matrix
(as :mod:`cnn2logic.evaluate` computes them).  Loading a model and data, computing the
visuals and measuring the rules is the caller's work (``cnn2logic report``:
:func:`cnn2logic.cli.report.build_report`).

Every image is embedded as a ``data:`` URI and there is no script, external style sheet
or font: the file opens in a browser with no network access.  A part whose inputs are
missing (no metrics, no visuals, no confusion) is left out and the report says so in
its notes.

Example
-------
>>> import tempfile, pathlib
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet(tuple(Variable(f"k{i}", "pool", i - 1) for i in range(1, 11)),
...              tuple(Head(str(c)) for c in range(10)),
...              (Rule("3", (Literal("k6"), Literal("k8"), Literal("k1", False))),),
...              default="1")
>>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
>>> html = write_report(rs, out).read_text(encoding="utf-8")
>>> "data:image/png;base64," in html and "http://" not in html
True
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import __version__
from .._io import atomic_write_text
from ..errors import VisualizationError
from ..export.markdown import (METRIC_ROWS, replaces_sentence,  # one source for both views
                               rule_kind_sentence)
from ..labels import display, kernel_labels
from ..rules import Literal, Rule, RuleSet
from ..unitnames import kernel_of, position_of
from .gallery import GALLERY_CSS, kernel_anchor, kernel_section, literal_thumbnail
from .graph import kernel_graph
from .graph_draw import graph_png
from .images import to_rgb
from .relations import table_ruleset
from .visuals import KernelVisuals, match_kernels
from .why import WHY_CSS, ExplainedImage, why_section

METRICS_SOURCE = "the rules file (measured on the test split by cnn2logic extract)"
CONFUSION_SOURCE = "the rules file (test split)"

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#222;
background:#fafafa;line-height:1.4}
main{max-width:1180px;margin:0 auto;padding:18px 26px 60px}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.8em;border-bottom:2px solid #ddd;
padding-bottom:.2em}
.meta{color:#555;font-size:.92em}
table{border-collapse:collapse;margin:.6em 0;background:#fff}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:middle}
th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.lit{display:inline-flex;flex-direction:column;align-items:center;margin:2px 3px;
padding:2px;border-radius:4px;font-size:.82em;vertical-align:middle}
.lit img{width:auto;height:56px;image-rendering:pixelated;display:block}
.lit.pos{border:2px solid #1a7f37}
.lit.neg{border:2px dashed #c62828}
.lit.neg img{opacity:.45}
.lit.neg span{color:#c62828}
.mofn{font-weight:bold;margin-right:4px}
.chip{display:inline-block;padding:0 5px;margin:1px;border-radius:3px;font-size:.85em;
font-family:ui-monospace,Menlo,Consolas,monospace}
.chip.pos{background:#e3f3e7;color:#12552a}.chip.neg{background:#fbe4e4;color:#8e1b1b}
.note{background:#fff7e0;border-left:4px solid #e0b341;padding:6px 10px;margin:.5em 0}
.pic{max-width:100%;border:1px solid #ddd;background:#fff}
details{margin:.3em 0}summary{cursor:pointer}
.cm td{min-width:34px;text-align:right}
.cm td.diag{font-weight:bold;outline:1px solid #1f5fbf}
.small{font-size:.85em;color:#555}
nav a{margin-right:12px}
.lit a{color:inherit;text-decoration:none}
""" + GALLERY_CSS + WHY_CSS


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes, alt: str, cls: str = "", width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    c = f' class="{cls}"' if cls else ""
    return f'<img{c}{w} src="{_data_uri(png)}" alt="{html.escape(alt)}">'


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}"
    return html.escape(str(value))



def _class_terms(rules: RuleSet, meta_table: Any) -> list[dict[str, Any]]:
    """One row per class: the table term from ``meta['table']`` or the first rule."""
    rows: list[dict[str, Any]] = []
    by_class = {}
    if isinstance(meta_table, Sequence):
        for entry in meta_table:
            if isinstance(entry, Mapping) and "class" in entry:
                by_class[str(entry["class"])] = entry
    for head in rules.heads:
        if head.kind != "class":
            continue
        entry = by_class.get(head.name)
        if entry is not None and entry.get("body"):
            rule = Rule(head.name, tuple(Literal(str(v), bool(p)) for v, p in entry["body"]))
            stats = {
                "precision": _first(entry, "test_precision", "precision", "train_precision"),
                "support": _first(entry, "test_support", "support", "train_support"),
            }
            rows.append({"class": head.name, "rule": rule, "stats": stats, "source": "table"})
            continue
        own = rules.rules_for(head.name)
        if own:
            rule = own[0]
            rows.append({"class": head.name, "rule": rule, "source": "first rule",
                         "stats": {"precision": rule.stats.get("precision"),
                                   "support": rule.stats.get("support")}})
        else:
            rows.append({"class": head.name, "rule": None, "stats": {}, "source": "none"})
    return rows


def _first(entry: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if entry.get(key) is not None:
            return entry[key]
    return None


class _Thumbs:
    """Kernel thumbnails as data URIs, made once per kernel."""

    def __init__(self, vis: KernelVisuals | None, rules: RuleSet) -> None:
        self.vis = vis
        self.index = match_kernels(rules.variables, vis) if vis is not None else {}
        self._cache: dict[str, str] = {}

    def uri(self, var: str) -> str | None:
        if var not in self.index or self.vis is None:
            return None
        if var not in self._cache:  # the kernel's top patches when there is evidence
            self._cache[var] = _data_uri(literal_thumbnail(self.vis, self.index[var],
                                                           position_of(var)))
        return self._cache[var]

    def href(self, var: str) -> str | None:
        """The link from a literal to its kernel's card in the gallery."""
        return f"#{kernel_anchor(var)}" if var in self.index and self.vis is not None else None

    def picture(self, var: str) -> np.ndarray | bytes | None:
        """The graph node's picture: the literal's patch mosaic (PNG) with evidence, as
        in the rules, else the SmoothGrad image (which often does not show what the
        kernel responds to beyond one conv layer)."""
        if var not in self.index or self.vis is None:
            return None
        if self.vis.evidence is not None:
            return literal_thumbnail(self.vis, self.index[var], position_of(var))
        return to_rgb(self.vis.smoothgrad[self.index[var]], "signed")


def _rule_pictures(rule: Rule, thumbs: _Thumbs, labels: Mapping[str, str] | None = None
                   ) -> str:
    labels = labels or {}
    parts = []
    if not rule.is_conjunction:
        parts.append(f'<span class="mofn">at least {rule.min_true} of</span>')
    for lit in rule.body:
        cls = "pos" if lit.positive else "neg"
        label = html.escape(str(lit))
        words = labels.get(lit.var, "")
        tip = (f"{lit.var}: {'must fire' if lit.positive else 'must not fire'}"
               + (f"; {words}" if words else ""))
        uri = thumbs.uri(lit.var)
        pic = f'<img src="{uri}" alt="{html.escape(lit.var)}">' if uri else ""
        if uri and thumbs.href(lit.var):  # the literal opens its kernel's evidence card
            pic = f'<a href="{thumbs.href(lit.var)}">{pic}</a>'
        said = f'<span class=small>{html.escape(words)}</span>' if words else ""
        parts.append(f'<span class="lit {cls}" title="{html.escape(tip)}">{pic}'
                     f'<span>{label}</span>{said}</span>')
    if not rule.body:
        parts.append("<span>⊤ (always)</span>")
    return "".join(parts)


def _rule_chips(rule: Rule, labels: Mapping[str, str] | None = None) -> str:
    # A labelled kernel reads "k12 · on for 0, 6, 8" (cnn2logic.labels.display).
    labels = labels or {}
    chips = "".join(
        f'<span class="chip {"pos" if l.positive else "neg"}">'
        f'{html.escape(display(str(l), labels.get(l.var)))}</span>' for l in rule.body) or "⊤"
    return chips if rule.is_conjunction else f"{rule.min_true} of ( {chips} )"


def _metrics_section(metrics: Mapping[str, Any] | None, arch: str, source: str) -> str:
    # cnn2logic.model.spec imports torch; the report needs it only for the paper's figures.
    from ..model.spec import PAPER_FIGURES

    paper = PAPER_FIGURES.get(arch)
    head = "<tr><th>measure</th><th>this model</th>"
    head += f"<th>paper ({html.escape(arch)})</th></tr>" if paper else "</tr>"
    body = []
    for key, label in METRIC_ROWS:
        if metrics is None or key not in metrics:
            continue
        row = f"<tr><td>{html.escape(label)}</td><td class=num>{_fmt(metrics[key])}</td>"
        if paper:
            row += f"<td class=num>{_fmt(paper.get(key))}</td>"
        body.append(row + "</tr>")
    text = [f"<p class=small>Source: {html.escape(source)}.</p>"]
    if paper:
        text.append("<p class=small>The paper reports only the network's accuracy and the "
                    "accuracy with the output units replaced by the Boolean functions; how it "
                    "counted images where no or several functions fire is not stated, so "
                    "compare with every reading above.</p>")
    decision = metrics.get("decision") if metrics else None
    if decision:
        text.append(f"<p class=small>Decision rule: {html.escape(str(decision))}.</p>")
    return f"<table>{head}{''.join(body)}</table>{''.join(text)}"


def _confusion_section(cm: Sequence[Sequence[int]], heads: Sequence[str], source: str) -> str:
    m = np.asarray(cm, dtype=float)
    n = len(heads)
    cols = list(heads) + (["no rule"] if m.shape[1] > n else [])
    rows = ["<tr><th>network \\ rules</th>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "<th>total</th></tr>"]
    for i in range(m.shape[0]):
        top = max(m[i].max(), 1.0)
        cells = []
        for j in range(m.shape[1]):
            a = m[i, j] / top
            style = f' style="background:rgba(31,95,191,{0.08 + 0.6 * a:.3f})"' if m[i, j] else ""
            diag = " class=diag" if i == j else ""
            cells.append(f"<td{diag}{style}>{int(m[i, j])}</td>")
        label = heads[i] if i < n else str(i)
        rows.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}"
                    f"<td>{int(m[i].sum())}</td></tr>")
    agree = float(np.trace(m[:, :n])) / max(m.sum(), 1.0)
    return (f'<table class="cm">{"".join(rows)}</table>'
            f"<p class=small>Rows: the network's prediction; columns: the rules' prediction "
            f"(first satisfied rule, else the default class). Agreement (fidelity): "
            f"{agree:.4f} over {int(m.sum())} test images. Source: {html.escape(source)}.</p>")


def _program_pictures(rules: RuleSet, thumbs: _Thumbs) -> str:
    # An ordered program is read top to bottom: rule i decides where rules 1..i-1 did
    # not fire, so it is shown whole and in order, not as one term per class.
    rows = ["<tr><th>#</th><th>if (each literal with its kernel's top patches (SmoothGrad image without data); click one for its evidence)</th>"
            "<th>then</th><th>share of training images it decides</th>"
            "<th>agreement there</th></tr>"]
    labels = kernel_labels(rules)
    for i, rule in enumerate(rules.rules, 1):
        rows.append(f"<tr><td class=num>{i}</td><td>{'' if i == 1 else 'else '}"
                    f"{_rule_pictures(rule, thumbs, labels)}</td>"
                    f"<td><b>{html.escape(rule.head)}</b></td>"
                    f"<td class=num>{_fmt(rule.stats.get('support'))}</td>"
                    f"<td class=num>{_fmt(rule.stats.get('precision'))}</td></tr>")
    if rules.default is not None:
        rows.append(f"<tr><td></td><td>otherwise</td><td><b>{html.escape(rules.default)}"
                    f"</b></td><td></td><td></td></tr>")
    return ("<p>The program in order: each rule decides the images on which no rule above "
            "it fired. Green frame: the kernel must fire (its pooled unit ≥ threshold); red "
            "dashed, faded: it must not. Share and agreement (with the network) are "
            f"measured on the training images.{_where_note(rules)}</p>"
            f"<table>{''.join(rows)}</table>")


def _where_note(rules: RuleSet) -> str:
    if not any(position_of(v.name) for v in rules.variables):
        return ""
    return (" A unit of one map position (k3_r1c2: kernel 3 at row 1, column 2) shows, "
            "beside its kernel's top patches, the input with the window that position "
            "sees in yellow.")


def _rules_section(rules: RuleSet, thumbs: _Thumbs, meta: Mapping[str, Any]) -> str:
    if rules.meta.get("ordered"):
        return _program_pictures(rules, thumbs)
    class_rows = _class_terms(rules, meta.get("table"))
    source = ("the per-class table terms chosen by the extractor (short, accurate terms, "
              "as in the paper's Table 1)" if any(r["source"] == "table" for r in class_rows)
              else "the first (best-ranked) rule of each class: the rules file has no table")
    rows = ["<tr><th>class</th><th>term (each literal with its kernel's top patches (SmoothGrad image without data); click one for its evidence)"
            "</th><th>literals</th><th>precision</th><th>support</th></tr>"]
    labels = kernel_labels(rules)
    for r in class_rows:
        if r["rule"] is None:
            rows.append(f"<tr><td>{html.escape(r['class'])}</td><td colspan=4>no rule</td></tr>")
            continue
        prec, sup = r["stats"].get("precision"), r["stats"].get("support")
        rows.append(f"<tr><td><b>{html.escape(r['class'])}</b></td>"
                    f"<td>{_rule_pictures(r['rule'], thumbs, labels)}</td>"
                    f"<td class=num>{len(r['rule'].body)}</td><td class=num>{_fmt(prec)}</td>"
                    f"<td class=num>{_fmt(sup)}</td></tr>")
    return (f"<p>Source: {html.escape(source)}. Green frame: the kernel must fire "
            "(its pooled unit ≥ threshold); red dashed, faded: it must not. "
            "Precision and support: on the test split when the extractor measured "
            f"them there, else on the training split.</p><table>{''.join(rows)}"
            "</table>")


def _decision_list(rules: RuleSet) -> str:
    # A decision list reads top to bottom: each rule applies only where none above fired.
    labels = kernel_labels(rules)
    items = "".join(
        f"<li>{'if' if i == 0 else 'else if'} {_rule_chips(rule, labels)} → "
        f"<b>{html.escape(rule.head)}</b></li>" for i, rule in enumerate(rules.rules))
    default = (f"<li>otherwise → <b>{html.escape(rules.default)}</b></li>"
               if rules.default is not None else "")
    return f"<p>The program, in order:</p><ol class=dlist>{items}{default}</ol>"


def _all_rules_section(rules: RuleSet, max_rules: int) -> str:
    all_rules = []
    labels = kernel_labels(rules)
    for head in rules.heads:
        own = rules.rules_for(head.name)
        items = "".join(
            f"<li>{_rule_chips(rule, labels)}"
            + (f' <span class=small>support {_fmt(rule.stats.get("support"))}, precision '
               f'{_fmt(rule.stats.get("precision"))}</span>' if rule.stats else "")
            + "</li>" for rule in own[:max_rules])
        more = (f"<p class=small>… and {len(own) - max_rules} more rules.</p>"
                if len(own) > max_rules else "")
        kind = "" if head.kind == "class" else f" ({html.escape(head.kind)} of layer " \
                                                  f"{html.escape(head.layer)})"
        all_rules.append(f"<details><summary><b>{html.escape(head.name)}</b>{kind}: "
                         f"{len(own)} rule(s)</summary><ol>{items}</ol>{more}</details>")
    default = (f"default class <b>{html.escape(rules.default)}</b> when no rule fires"
               if rules.default is not None else "no default class")
    kind = rule_kind_sentence(rules.meta)
    kind_html = ("<p>Rule kind: " + html.escape(kind).replace("**", "<b>", 1).replace(
        "**", "</b>", 1) + ".</p>") if kind else ""
    ordered = _decision_list(rules) if rules.meta.get("ordered") else ""
    return (f"{kind_html}{ordered}<p>{len(rules.rules)} rules in rank order (the first "
            f"satisfied rule decides); {default}.</p>{''.join(all_rules)}")


def _graph_section(rules: RuleSet, thumbs: _Thumbs) -> str:
    """The kernel graph of the table terms (else of all rules); VisualizationError if none."""
    try:
        graph_rules, which = table_ruleset(rules), (
            "the per-class table terms above (one term per class; <code>cnn2logic graph "
            "RULES --terms all</code> draws every rule)")
    except VisualizationError:
        graph_rules, which = rules, f"all {len(rules.rules)} rules"
    g = kernel_graph(graph_rules)
    pictures = {v.name: pic for v in rules.variables
                if (pic := thumbs.picture(v.name)) is not None}
    gpng = graph_png(g, pictures=pictures)
    return (
        f"<p>Drawn from {which}. Kernels (top) and classes (bottom): green arrows are "
        "positive literals, red dashed arrows negated ones, purple both (positive in some "
        "rules of the class, negated in others: a polarity conflict); thicker arrows are "
        "used by more of the class's rules. Blue arcs join kernels that occur positively "
        f"in the same rule. {g.number_of_nodes()} nodes, {g.number_of_edges()} edges; "
        "the never-together conflict edges are not drawn (they are in the GraphML/DOT "
        "files of <code>cnn2logic graph</code>).</p>"
        + _img(gpng, "kernel graph", "pic"))


def _sections(rules: RuleSet, thumbs: _Thumbs, meta: Mapping[str, Any], *,
              metrics: Mapping[str, Any] | None, metrics_source: str,
              confusion: Sequence[Sequence[int]] | None, confusion_source: str,
              arch: str, max_rules: int, notes: list[str],
              explained: Sequence[ExplainedImage] = ()) -> list[tuple[str, str, str]]:
    """``(id, title, html)`` of every part the inputs allow; what is left out goes to notes."""
    sections: list[tuple[str, str, str]] = []
    if metrics:
        replaces = replaces_sentence(rules.meta)  # what the rules stand for (extract/rest.py)
        replaces = replaces[:1].upper() + replaces[1:]
        sections.append(("metrics", "Accuracy, fidelity, coverage",
                         _metrics_section(metrics, arch, metrics_source)
                         + (f"<p class=small>{html.escape(replaces)}.</p>" if replaces else "")))
    else:
        notes.append("metrics table omitted: the rules file has no meta['metrics'] and no "
                     "model + data were given to compute them")
    sections.append(("rules", "The program, read with the kernels' images"
                     if rules.meta.get("ordered") else
                     "Rules per class, read with the kernels' images",
                     _rules_section(rules, thumbs, meta)))
    if explained:
        sections.append(("why", "Why the network decided", why_section(explained)))
    sections.append(("all-rules", "All rules", _all_rules_section(rules, max_rules)))
    if thumbs.vis is not None:
        sections.append(("kernels", "Kernels: what each one responds to",
                         kernel_section(thumbs.vis, rules, kernel_labels(rules))))
    else:
        notes.append("SmoothGrad grid omitted: no model")
    try:
        sections.append(("graph", "Kernel-relation graph", _graph_section(rules, thumbs)))
    except VisualizationError as exc:
        notes.append(f"graph omitted: {exc}")
    if confusion:
        heads = [h.name for h in rules.heads if h.kind == "class"]
        try:
            sections.append(("confusion", "Rules against the network",
                             _confusion_section(confusion, heads, confusion_source)))
        except (ValueError, TypeError, IndexError) as exc:
            notes.append(f"confusion view omitted: meta['confusion'] is malformed ({exc})")
    else:
        notes.append("confusion view omitted: the rules file has no meta['confusion'] and no "
                     "model + data were given to compute it")
    return sections


def _units_fact(rules: RuleSet) -> str:
    """"16 kernels", or "256 units of 16 kernels" when a kernel has several units (bits
    per map position ``k3_r1c2`` or per level ``k3_2``)."""
    kernels = {kernel_of(v.name) for v in rules.variables}
    if None in kernels or len(kernels) == len(rules.variables):
        return f"{len(rules.variables)} kernels"
    return f"{len(rules.variables)} units of {len(kernels)} kernels"


def render_report(rules: RuleSet, *, visuals: KernelVisuals | None = None,
                  metrics: Mapping[str, Any] | None = None,
                  confusion: Sequence[Sequence[int]] | None = None,
                  metrics_source: str = METRICS_SOURCE,
                  confusion_source: str = CONFUSION_SOURCE, layer: str = "pool",
                  architecture: str = "", title: str | None = None, max_rules: int = 40,
                  notes: Sequence[str] = (),
                  explained: Sequence[ExplainedImage] = ()) -> str:
    """The report's HTML page for ``rules`` and what was measured about them.

    Parameters
    ----------
    rules : RuleSet
        The rules; ``meta["table"]`` supplies the per-class table terms and
        ``meta`` the model, method and data facts of the heading.
    visuals : KernelVisuals, optional
        The maximising images of the rule variables' kernels.  None: kernels are shown
        by name only and the SmoothGrad grid is left out.
    metrics : mapping, optional
        Rule metrics (:func:`cnn2logic.evaluate.evaluate_rules`); None: no metrics table.
    confusion : sequence of sequences of int, optional
        Network x rules confusion matrix (:func:`cnn2logic.evaluate.confusion`).
    metrics_source, confusion_source : str
        Where the figures come from, as the report states it.
    layer, architecture : str
        The layer of the rule variables and the model's architecture (for the heading
        and the paper's figures).
    title : str, optional
        The page heading; default ``"cnn2logic report: <architecture> rules"``.
    max_rules : int
        Rules listed per class in the full rule list (the rest are counted).
    notes : sequence of str
        Notes from preparing the inputs; the report adds its own about omitted parts.
    explained : sequence of ExplainedImage
        Test images explained in words (:func:`cnn2logic.visual.why.explained_images`);
        empty: no "Why the network decided" section.

    Returns
    -------
    str
        The HTML page.

    Raises
    ------
    VisualizationError
        The graph or a picture cannot be drawn (other than an empty graph, which is
        noted).
    """
    notes = list(notes)
    meta: Mapping[str, Any] = rules.meta if isinstance(rules.meta, Mapping) else {}
    sections = _sections(rules, _Thumbs(visuals, rules), meta, metrics=metrics,
                         metrics_source=metrics_source, confusion=confusion,
                         confusion_source=confusion_source, arch=architecture, max_rules=max_rules,
                         notes=notes, explained=explained)
    heading = title or f"cnn2logic report: {architecture or 'model'} rules"
    facts = [f"architecture <b>{html.escape(architecture or 'unknown')}</b>",
             f"layer <code>{html.escape(layer)}</code>",
             _units_fact(rules), f"{len(rules.heads)} heads",
             f"{len(rules.rules)} rules"]
    for key in ("model", "method", "data"):
        if meta.get(key):
            facts.append(f"{key} <code>{html.escape(str(meta[key]))}</code>")
    nav = "".join(f'<a href="#{sid}">{html.escape(t)}</a>' for sid, t, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{html.escape(t)}</h2>{content}</section>'
                   for sid, t, content in sections)
    note_html = ("<section id=notes><h2>Notes</h2>"
                 + "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
                 + "</section>") if notes else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(heading)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>{html.escape(heading)}</h1><p class=meta>{' · '.join(facts)}</p>"
        f"<nav>{nav}</nav>{note_html}{body}"
        f"<p class=small>Written by cnn2logic {__version__}; self-contained (no network "
        f"access needed).</p></main></body></html>\n"
    )


def write_report(rules: RuleSet, out_path: str | os.PathLike[str] = "report.html",
                 **parts: Any) -> Path:
    """Write :func:`render_report` of ``rules`` to ``out_path`` (atomically); return the path.

    Parameters
    ----------
    rules : RuleSet
    out_path : path
        The HTML file.
    **parts
        The keyword arguments of :func:`render_report` (visuals, metrics, confusion...).

    Raises
    ------
    VisualizationError
        ``out_path`` is a directory, or :func:`render_report` fails.
    """
    out = Path(out_path)
    if out.is_dir():
        raise VisualizationError(f"{out} is a directory; give the report's file name")
    atomic_write_text(out, render_report(rules, **parts))
    return out
