"""One self-contained HTML report for a model and its rules.

The report reads the rules the way the main paper does: every literal of a class's rule
is shown with its kernel's maximising (SmoothGrad) image, so ``k6 ∧ k8 → 3`` becomes two
pictures that look like parts of a 3.  It also holds the accuracy / fidelity / coverage
table beside the paper's figures (for ``paper1``/``paper3``), the kernel-relation graph,
the SmoothGrad grid (filters beside their images when the kernels see the input) and a
confusion view of rules against the network.

Every image is embedded as a ``data:`` URI and there is no script, external style sheet
or font: the file opens in a browser with no network access.  A part whose inputs are
missing (e.g. a rules file without ``meta["confusion"]`` and no data to compute it) is
left out and the report says so in its notes.

Example
-------
>>> import tempfile, pathlib
>>> from cnn2logic.model.spec import build_model
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> model = build_model("paper1", seed=0)
>>> rs = RuleSet(tuple(Variable(f"k{i}", "pool", i - 1) for i in range(1, 11)),
...              tuple(Head(str(c)) for c in range(10)),
...              (Rule("3", (Literal("k6"), Literal("k8"), Literal("k1", False))),),
...              default="1")
>>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
>>> path = build_report(model, rs, None, out, samples=4, progress=False)
>>> html = path.read_text(encoding="utf-8")
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

from ._io import atomic_write_text
from .errors import Cnn2LogicError, VisualizationError
from .rules import Rule, RuleSet, load_rules
from .visualize import (DEFAULT_TOP, SMOOTHGRAD_SAMPLES, SMOOTHGRAD_STDEV, KernelVisuals,
                        match_kernels, png_bytes, to_rgb)

from .export.markdown import METRIC_ROWS  # one list of rows and labels for both views

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
.lit img{width:56px;height:56px;image-rendering:pixelated;display:block}
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
"""


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


def _load_model(model: Any) -> Any:
    if model is None:
        return None
    if isinstance(model, (str, os.PathLike)):
        from .model import load_model  # a cnn2logic checkpoint or a .pt2 program

        return load_model(model)
    return model


def _load_data(data: Any) -> Any:
    if data is None or (isinstance(data, str) and data == "none"):
        return None
    if isinstance(data, (str, os.PathLike)):
        from .data import load_data

        return load_data(data)
    return data


def _visuals(model: Any, layer: str, data: Any, visuals_dir: Path | None, *, base: str | None,
             samples: int, stdev: float, top: int, actmax: bool, reduce: str, progress: bool,
             notes: list[str]) -> KernelVisuals | None:
    from .visualize import (load_visuals, model_fingerprint, visualize, write_visuals)

    if reduce == "position":  # maximising images are per kernel
        notes.append("the rules read one unit per map position; the kernels' maximising "
                     "images are those of their max-pooled units")
        reduce = "max"
    if visuals_dir is not None and (visuals_dir / "visuals.json").is_file():
        try:
            vis = load_visuals(visuals_dir)
        except VisualizationError as exc:
            notes.append(f"existing visuals not used ({exc}); recomputed")
        else:
            same_model = model is None or vis.params.get("model_sha256") == model_fingerprint(model)
            same_units = vis.params.get("reduce", "max") == reduce
            if vis.layer == layer and same_model and same_units:
                return vis
            if model is None:
                return vis
            other = ("another model or layer" if vis.layer != layer or not same_model else
                     f"another reduction ({vis.params.get('reduce', 'max')}, not {reduce})")
            notes.append(f"visuals in {visuals_dir} belong to {other}; recomputed")
    if model is None:
        notes.append("no model given: kernels are shown by name, without maximising images")
        return None
    images = data.train if data is not None else None
    chosen = base or ("mean" if images is not None else "zeros")
    if images is None:
        notes.append("no data given: no top-activating images, and SmoothGrad starts from "
                     f"the {chosen!r} image instead of the mean data image")
    vis = visualize(model, layer, images, base=chosen, samples=samples, stdev=stdev,
                    top=top if images is not None else 0, actmax=actmax, reduce=reduce,
                    progress=progress)
    if visuals_dir is not None:
        vis = write_visuals(vis, visuals_dir, progress=progress)
    return vis


def _metrics_from_data(model: Any, rules: RuleSet, data: Any, layer: str, reduce: str,
                       notes: list[str]) -> tuple[dict | None, list | None]:
    """Rule metrics and the confusion matrix computed here, when the meta lacks them."""
    from .evaluate import confusion, evaluate_rules
    from .units import Thresholds, codes_for

    meta_thr = rules.meta.get("thresholds") if isinstance(rules.meta, Mapping) else None
    thresholds = None
    if isinstance(meta_thr, Mapping) and meta_thr.get("values"):
        thresholds = Thresholds(np.asarray(meta_thr["values"], dtype=float),
                                str(meta_thr.get("method", "given")))
    try:
        train_codes, _, thr = codes_for(model, layer, data.train, thresholds,
                                        threshold_method="half", reduce=reduce,
                                        progress=False)
        codes, _, _ = codes_for(model, layer, data.test, thr, reduce=reduce, progress=False)
    except Cnn2LogicError as exc:
        notes.append(f"metrics could not be computed from the data: {exc}")
        return None, None
    column = {n: i for i, n in enumerate(codes.names)}
    cols = []
    for v in rules.variables:
        if v.name in column:
            cols.append(column[v.name])
        elif v.layer == layer and 0 <= v.index < len(codes.names):
            cols.append(v.index)
        else:
            notes.append(f"rule variable {v.name!r} is not a kernel of layer {layer!r}: "
                         "metrics not computed")
            return None, None
    X = codes.bits[:, cols]
    heads = rules.head_names
    if list(heads) != [str(c) for c in data.test.classes][: len(heads)]:
        notes.append("rule heads are not the data's classes: metrics not computed")
        return None, None
    metrics = evaluate_rules(rules, X, codes.labels, codes.predictions)
    cm = confusion(codes.predictions, rules.predict_index(X), len(heads))
    return metrics, cm


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
            from .rules import Literal

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
        if var not in self._cache:
            rgb = to_rgb(self.vis.smoothgrad[self.index[var]], "signed")
            self._cache[var] = _data_uri(png_bytes(rgb, 2))
        return self._cache[var]

    def picture(self, var: str) -> np.ndarray | None:
        if var not in self.index or self.vis is None:
            return None
        return to_rgb(self.vis.smoothgrad[self.index[var]], "signed")


def _rule_pictures(rule: Rule, thumbs: _Thumbs) -> str:
    parts = []
    if not rule.is_conjunction:
        parts.append(f'<span class="mofn">at least {rule.min_true} of</span>')
    for lit in rule.body:
        cls = "pos" if lit.positive else "neg"
        label = html.escape(str(lit))
        tip = f"{lit.var}: {'must fire' if lit.positive else 'must not fire'}"
        uri = thumbs.uri(lit.var)
        pic = f'<img src="{uri}" alt="{html.escape(lit.var)}">' if uri else ""
        parts.append(f'<span class="lit {cls}" title="{html.escape(tip)}">{pic}'
                     f'<span>{label}</span></span>')
    if not rule.body:
        parts.append("<span>⊤ (always)</span>")
    return "".join(parts)


def _rule_chips(rule: Rule) -> str:
    chips = "".join(f'<span class="chip {"pos" if l.positive else "neg"}">{html.escape(str(l))}'
                    "</span>" for l in rule.body) or "⊤"
    return chips if rule.is_conjunction else f"{rule.min_true} of ( {chips} )"


def _metrics_section(metrics: Mapping[str, Any] | None, arch: str, source: str) -> str:
    from .model.spec import PAPER_FIGURES

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


def _kernel_section(vis: KernelVisuals, rules: RuleSet) -> str:
    from .graph import literal_uses
    from .visualize import grid_png

    uses: dict[str, list[str]] = {}
    for (var, head), d in literal_uses(rules).items():
        mark = {1: "", -1: "¬", 0: "±"}[d["sign"]]
        uses.setdefault(var, []).append(f"{mark}{head}")
    index = match_kernels(rules.variables, vis)
    name_of = {i: v for v, i in index.items()}
    p = vis.params
    parts = [
        f"<p>Each row: a kernel of layer <code>{html.escape(vis.layer)}</code>"
        + (", its filter (it sees the input directly)" if vis.filters is not None else "")
        + ", its SmoothGrad image"
        + (", its activation-maximisation image" if vis.actmax is not None else "")
        + (", and the data images that activate it most" if vis.top_images is not None else "")
        + ". Red: brighter pixels raise the unit; blue: they lower it.</p>",
        f"<p class=small>SmoothGrad: Gaussian noise mean {p.get('noise_mean', 0.0)}, "
        f"standard deviation {p.get('noise_stdev')}, {p.get('samples')} noisy copies of the "
        f"base image <b>{html.escape(str(p.get('base')))}</b>; signed gradient of the pooled "
        f"unit ({html.escape(str(p.get('reduce', 'max')))} over positions).</p>",
        _img(grid_png(vis), "SmoothGrad grid", "pic"),
    ]
    head = "<tr><th>kernel</th><th>used in classes</th>"
    if vis.correlation is not None:
        head += "<th>correlation with filter</th>"
    if vis.response is not None:
        head += "<th>unit on its own image</th>"
    rows = [head + "</tr>"]
    for i, name in enumerate(vis.names):
        var = name_of.get(i, name)
        row = (f"<tr><td>{html.escape(var)}</td>"
               f"<td>{html.escape(' '.join(uses.get(var, [])) or '–')}</td>")
        if vis.correlation is not None:
            row += f"<td class=num>{vis.correlation[i]:.3f}</td>"
        if vis.response is not None:
            row += f"<td class=num>{vis.response[i, i]:.3f}</td>"
        rows.append(row + "</tr>")
    parts.append(f"<table>{''.join(rows)}</table>")
    if vis.correlation is not None:
        parts.append(f"<p>Mean correlation of SmoothGrad image and filter: "
                     f"<b>{float(np.mean(vis.correlation)):.3f}</b> (best of the placements "
                     f"of the filter in the image; the paper's claim is that they look "
                     f"alike).</p>")
    return "".join(parts)


def build_report(model: Any, rules: RuleSet | str | os.PathLike[str], data: Any = None,
                 out_path: str | os.PathLike[str] = "report.html", *,
                 visuals_dir: str | os.PathLike[str] | None = None,
                 layer: str | None = None, reduce: str | None = None,
                 base: str | None = None, samples: int = SMOOTHGRAD_SAMPLES,
                 stdev: float = SMOOTHGRAD_STDEV,
                 top: int = DEFAULT_TOP, actmax: bool = False, title: str | None = None,
                 max_rules: int = 40, progress: bool = True) -> Path:
    """Write the HTML report for ``model`` and ``rules`` to ``out_path``; return the path.

    Parameters
    ----------
    model : nn.Module, path or None
        The network (or its checkpoint: anything :func:`cnn2logic.model.load_model` reads
        without a factory; load your own model with a factory first).  None: no
        maximising images.
    rules : RuleSet or path
        The rules (``meta`` from ``cnn2logic extract`` supplies metrics, the table terms
        and the confusion matrix).
    data : DataSplits, "embedded", a directory, or None
        Training images give the top-activating images and the ``mean`` SmoothGrad base;
        test images let the report compute metrics and confusion missing from ``meta``.
    out_path : path
        The HTML file (written atomically).
    visuals_dir : path, optional
        Reuse the visuals written there for this model and layer, or compute them and
        write them there (PNGs, ``visuals.json``).  Without it visuals stay in memory.
    layer : str, optional
        Default: ``rules.meta["layer"]``, else ``"pool"``.
    reduce : str, optional
        How a kernel's map becomes one unit (:data:`cnn2logic.units.REDUCTIONS`).
        Default: ``rules.meta["settings"]["reduce"]``, else ``"max"``.
    base : str, optional
        SmoothGrad base; default ``"mean"`` with data, ``"zeros"`` without.
    samples, stdev, top, actmax
        Passed to :func:`cnn2logic.visualize.visualize`.
    max_rules : int
        Rules listed per class in the full rule list (the rest are counted).

    Raises
    ------
    RulesFileError
        ``rules`` is a path that cannot be read.
    CheckpointError
        ``model`` is a path that cannot be loaded.
    VisualizationError
        A bad visualisation parameter or an unwritable output path.
    """
    if not isinstance(rules, RuleSet):
        rules = load_rules(rules)
    model = _load_model(model)
    data = _load_data(data)
    out = Path(out_path)
    if out.is_dir():
        raise VisualizationError(f"{out} is a directory; give the report's file name")
    meta: Mapping[str, Any] = rules.meta if isinstance(rules.meta, Mapping) else {}
    layer = layer or str(meta.get("layer") or "pool")
    settings = meta.get("settings") if isinstance(meta.get("settings"), Mapping) else {}
    reduce = reduce or str(settings.get("reduce") or "max")
    arch = str(meta.get("architecture")
               or getattr(getattr(model, "spec", None), "name", "") or "")
    notes: list[str] = []
    vis_dir = Path(visuals_dir) if visuals_dir is not None else None
    vis = _visuals(model, layer, data, vis_dir, base=base, samples=samples, stdev=stdev,
                   top=top, actmax=actmax, reduce=reduce, progress=progress, notes=notes)
    thumbs = _Thumbs(vis, rules)
    if vis is not None:
        missing = [v.name for v in rules.variables if v.name not in thumbs.index]
        if missing:
            notes.append(f"no maximising image for {len(missing)} rule variable(s) not in "
                         f"layer {layer!r}: {', '.join(missing[:8])}"
                         + (" …" if len(missing) > 8 else ""))

    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), Mapping) else None
    cm = meta.get("confusion")
    metrics_source = "the rules file (measured on the test split by cnn2logic extract)"
    cm_source = "the rules file (test split)"
    if (metrics is None or not cm) and data is not None and model is not None:
        computed, computed_cm = _metrics_from_data(model, rules, data, layer, reduce, notes)
        if metrics is None and computed is not None:
            metrics = computed
            metrics_source = f"computed by the report on {data.test.name}"
        if not cm and computed_cm is not None:
            cm = computed_cm
            cm_source = f"computed by the report on {data.test.name}"

    sections: list[tuple[str, str, str]] = []  # (id, title, html)
    if metrics:
        sections.append(("metrics", "Accuracy, fidelity, coverage",
                         _metrics_section(metrics, arch, metrics_source)))
    else:
        notes.append("metrics table omitted: the rules file has no meta['metrics'] and no "
                     "model + data were given to compute them")

    class_rows = _class_terms(rules, meta.get("table"))
    source = ("the per-class table terms chosen by the extractor (short, accurate terms, "
              "as in the paper's Table 1)" if any(r["source"] == "table" for r in class_rows)
              else "the first (best-ranked) rule of each class: the rules file has no table")
    rows = ["<tr><th>class</th><th>term (each literal with its kernel's maximising image)"
            "</th><th>literals</th><th>precision</th><th>support</th></tr>"]
    for r in class_rows:
        if r["rule"] is None:
            rows.append(f"<tr><td>{html.escape(r['class'])}</td><td colspan=4>no rule</td></tr>")
            continue
        prec, sup = r["stats"].get("precision"), r["stats"].get("support")
        rows.append(f"<tr><td><b>{html.escape(r['class'])}</b></td>"
                    f"<td>{_rule_pictures(r['rule'], thumbs)}</td>"
                    f"<td class=num>{len(r['rule'].body)}</td><td class=num>{_fmt(prec)}</td>"
                    f"<td class=num>{_fmt(sup)}</td></tr>")
    sections.append(("rules", "Rules per class, read with the kernels' images",
                     f"<p>Source: {html.escape(source)}. Green frame: the kernel must fire "
                     "(its pooled unit ≥ threshold); red dashed, faded: it must not. "
                     "Precision and support: on the test split when the extractor measured "
                     f"them there, else on the training split.</p><table>{''.join(rows)}"
                     "</table>"))

    all_rules = []
    for head in rules.heads:
        own = rules.rules_for(head.name)
        items = "".join(
            f"<li>{_rule_chips(rule)}"
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
    sections.append(("all-rules", "All rules",
                     f"<p>{len(rules.rules)} rules in rank order (the first satisfied rule "
                     f"decides); {default}.</p>{''.join(all_rules)}"))

    if vis is not None:
        sections.append(("kernels", "Kernels: maximising images", _kernel_section(vis, rules)))
    else:
        notes.append("SmoothGrad grid omitted: no model")

    from .graph import graph_png, kernel_graph, table_ruleset

    try:
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
        sections.append(("graph", "Kernel-relation graph", (
            f"<p>Drawn from {which}. Kernels (top) and classes (bottom): green arrows are "
            "positive literals, red dashed arrows negated ones, purple both (positive in some "
            "rules of the class, negated in others: a polarity conflict); thicker arrows are "
            "used by more of the class's rules. Blue arcs join kernels that occur positively "
            f"in the same rule. {g.number_of_nodes()} nodes, {g.number_of_edges()} edges; "
            "the never-together conflict edges are not drawn (they are in the GraphML/DOT "
            "files of <code>cnn2logic graph</code>).</p>"
            + _img(gpng, "kernel graph", "pic"))))
    except VisualizationError as exc:
        notes.append(f"graph omitted: {exc}")

    if cm:
        heads = [h.name for h in rules.heads if h.kind == "class"]
        try:
            sections.append(("confusion", "Rules against the network",
                             _confusion_section(cm, heads, cm_source)))
        except (ValueError, TypeError, IndexError) as exc:
            notes.append(f"confusion view omitted: meta['confusion'] is malformed ({exc})")
    else:
        notes.append("confusion view omitted: the rules file has no meta['confusion'] and no "
                     "model + data were given to compute it")

    heading = title or f"cnn2logic report: {arch or 'model'} rules"
    facts = [f"architecture <b>{html.escape(arch or 'unknown')}</b>",
             f"layer <code>{html.escape(layer)}</code>",
             f"{len(rules.variables)} kernels", f"{len(rules.heads)} heads",
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
    from . import __version__

    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(heading)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>{html.escape(heading)}</h1><p class=meta>{' · '.join(facts)}</p>"
        f"<nav>{nav}</nav>{note_html}{body}"
        f"<p class=small>Written by cnn2logic {__version__}; self-contained (no network "
        f"access needed).</p></main></body></html>\n"
    )
    atomic_write_text(out, page)
    return out
