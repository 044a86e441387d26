"""The HTML report: self-contained, every part present or explained, and it renders."""

from __future__ import annotations

import base64
import html
import io
import re
import shutil
import subprocess

import pytest

from cnn2logic.cli import main
from cnn2logic.model.spec import save_checkpoint
from cnn2logic.cli.report import build_report
from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable, save_rules
from cnn2logic.units import position_names

IMG_SRC = re.compile(r'<img\b[^>]*\bsrc="([^"]*)"')


@pytest.fixture(scope="module")
def vis_report(tmp_path_factory, core_paper1, core_paper1_extraction, core_embedded):
    """A report of paper1 (trained on the embedded data) with its real extracted rules."""
    model, _ = core_paper1
    out = tmp_path_factory.mktemp("report")
    path = build_report(model, core_paper1_extraction.rules, core_embedded,
                        out / "report.html", visuals_dir=out / "visuals", progress=False)
    return path, path.read_text(encoding="utf-8"), core_paper1_extraction.rules


def _hand_rules(meta=None) -> RuleSet:
    variables = tuple(Variable(f"k{i}", "pool", i - 1) for i in range(1, 11))
    heads = tuple(Head(str(c), "class", "out", c) for c in range(10))
    rules = (Rule("3", (Literal("k6"), Literal("k8"), Literal("k1", False))),
             Rule("5", (Literal("k4"), Literal("k9"), Literal("k2", False)), min_true=2),
             Rule("1", (Literal("k2"),)))
    return RuleSet(variables, heads, rules, default="1", meta=meta or {})


def _decode_pngs(text: str) -> int:
    from PIL import Image

    srcs = IMG_SRC.findall(text)
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.load()
            assert im.width > 0 and im.height > 0
    return len(srcs)


def test_report_is_self_contained_and_complete(vis_report):
    path, text, rules = vis_report
    assert text.startswith("<!DOCTYPE html>")
    # Nothing to fetch: no remote or relative resources, no scripts, no external styles.
    assert not re.search(r'\b(?:src|href)="(?!data:|#)', text)
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert "http://" not in text and "https://" not in text
    n_img = _decode_pngs(text)
    for section in ("metrics", "rules", "why", "all-rules", "kernels", "graph", "confusion"):
        assert f'<section id="{section}">' in text, section
    assert "id=notes" not in text  # nothing had to be left out
    # Accuracy beside the paper's figures (paper1: 0.939 network, 0.959 rules).
    assert "paper (paper1)" in text and "0.9390" in text and "0.9590" in text
    m = rules.meta["metrics"]
    assert f"{m['fidelity']:.4f}" in text and f"{m['coverage']:.4f}" in text
    # Every literal of every table term is shown with its kernel's image.
    table = [e for e in rules.meta["table"] if e.get("body")]
    n_literals = sum(len(e["body"]) for e in table)
    rules_section = text.split('<section id="rules">')[1].split("</section>")[0]
    lit_imgs = re.findall(r'<span class="lit (pos|neg)"[^>]*><a href="#kernel-(k\d+)"><img '
                          r'src="data:image/png;base64,[^"]+" alt="(k\d+)">', rules_section)
    assert len(lit_imgs) == n_literals
    for entry in table:
        for var, positive in entry["body"]:
            assert ("pos" if positive else "neg", var, var) in lit_imgs
    # ... and links to its kernel's card in the gallery: top patches first or second,
    # a class profile and a saliency image, each with its selectivity score.
    kernels = text.split('<section id="kernels">')[1].split("</section>")[0]
    for _, var, _ in lit_imgs:
        card = kernels.split(f'<div class="kc" id="kernel-{var}">')[1].split('<div class="kc"')[0]
        assert f'alt="{var} top patches"' in card and 'class="prof"' in card
        assert re.search(r'alt="%s (smoothgrad|actmax)"' % var, card)
        assert re.search(r'class="(ok|no)">[✓✗] [+-]\d', card)
    assert re.search(r"Selective: <b>\d+%</b> of kernels", kernels)
    # SmoothGrad grid, graph picture, filter correlations; confusion sums to the test set.
    assert 'alt="SmoothGrad grid"' in text and 'alt="kernel graph"' in text
    assert "Mean correlation of SmoothGrad image and filter" in text
    total = sum(sum(row) for row in rules.meta["confusion"])
    assert f"over {total} test images" in text
    assert n_img >= n_literals + 2
    # The visuals were written for reuse.
    assert (path.parent / "visuals" / "visuals.json").is_file()


def test_report_reuses_visuals_of_the_same_model_only(tmp_path, core_paper1):
    from cnn2logic.model.spec import build_model

    model, _ = core_paper1
    rules = _hand_rules()
    vis_dir = tmp_path / "vis"
    build_report(model, rules, None, tmp_path / "a.html", visuals_dir=vis_dir, samples=5,
                 progress=False)
    stamp = (vis_dir / "visuals.json").stat().st_mtime_ns
    build_report(model, rules, None, tmp_path / "b.html", visuals_dir=vis_dir, samples=5,
                 progress=False)
    assert (vis_dir / "visuals.json").stat().st_mtime_ns == stamp  # reused
    other = build_model("paper1", seed=42)
    text = build_report(other, rules, None, tmp_path / "c.html", visuals_dir=vis_dir,
                        samples=5, progress=False).read_text(encoding="utf-8")
    assert "belong to another model or layer; recomputed" in text


def test_report_degrades_gracefully_without_meta_or_data(tmp_path, core_paper1):
    model, _ = core_paper1
    text = build_report(model, _hand_rules(), None, tmp_path / "r.html", samples=5,
                        progress=False).read_text(encoding="utf-8")
    assert "id=notes" in text
    assert "metrics table omitted" in text and "confusion view omitted" in text
    assert '<section id="metrics">' not in text and '<section id="confusion">' not in text
    assert "the first (best-ranked) rule of each class" in text
    assert "at least 2 of" in text  # the M-of-N rule
    assert '<section id="kernels">' in text and '<section id="graph">' in text
    _decode_pngs(text)
    # No model at all: names only, and the report says why.
    text = build_report(None, _hand_rules(), None, tmp_path / "n.html",
                        progress=False).read_text(encoding="utf-8")
    assert "no model given" in text and '<section id="kernels">' not in text
    assert '<span class="lit pos" title="k6: must fire"><span>k6</span>' in text


def test_report_computes_missing_metrics_from_data(tmp_path, core_paper1, core_embedded):
    from cnn2logic.evaluate import evaluate_rules
    from cnn2logic.units import codes_for

    model, _ = core_paper1
    rules = _hand_rules({"architecture": "paper1", "layer": "pool"})
    text = build_report(model, rules, core_embedded, tmp_path / "r.html", samples=5, top=2,
                        progress=False).read_text(encoding="utf-8")
    assert "computed by the report on embedded-mnist5k/test" in text
    codes, _, _ = codes_for(model, "pool", core_embedded.test, progress=False)
    want = evaluate_rules(rules, codes.bits, codes.labels, codes.predictions)
    assert f"{want['rule_accuracy']:.4f}" in text and f"{want['fidelity']:.4f}" in text
    assert '<section id="confusion">' in text and "paper (paper1)" in text


def test_report_errors(tmp_path):
    from cnn2logic.errors import CheckpointError, RulesFileError, VisualizationError

    with pytest.raises(RulesFileError):
        build_report(None, tmp_path / "missing.json", None, tmp_path / "r.html")
    with pytest.raises(CheckpointError):
        build_report(tmp_path / "missing.safetensors", _hand_rules(), None, tmp_path / "r.html")
    with pytest.raises(VisualizationError, match="is a directory"):
        build_report(None, _hand_rules(), None, tmp_path)
    assert not (tmp_path / "r.html").exists()


def test_cli_report(tmp_path, capsys, core_paper1):
    model, _ = core_paper1
    ckpt, rules = tmp_path / "m.safetensors", tmp_path / "rules.json"
    save_checkpoint(model, ckpt)
    save_rules(_hand_rules({"architecture": "paper1"}), rules)
    out = tmp_path / "out" / "report.html"
    rc = main(["report", str(ckpt), str(rules), "--out", str(out), "--data", "none",
               "--samples", "5", "--no-progress"])
    assert rc == 0 and f"wrote {out}" in capsys.readouterr().out
    assert out.is_file()
    rc = main(["report", str(ckpt), str(tmp_path / "nope.json"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "rules file not found" in err


# -- a real browser ------------------------------------------------------------------------
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs "
                "it): the report is not checked in a real browser")


def _run_browser(exe: str, profile, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--hide-scrollbars",
           # Any attempt to reach the network fails: the report must not need it.
           "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute('data-probe', imgs.length + '/' + ok.length + '/' +
    document.querySelectorAll('section').length);
});
</script>"""


def test_report_in_headless_chromium(vis_report, tmp_path):
    from PIL import Image

    exe = _chromium()
    path, text, _ = vis_report
    n_img = len(IMG_SRC.findall(text))
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    run = _run_browser(exe, tmp_path / "profile1", "--virtual-time-budget=15000",
                       "--dump-dom", probe.as_uri())
    found = re.search(r'data-probe="(\d+)/(\d+)/(\d+)"', run.stdout)
    assert found, f"probe did not run; chromium said: {run.stderr[-2000:]}"
    total, loaded, sections = map(int, found.groups())
    assert total == n_img and loaded == n_img, (total, loaded, n_img)
    assert sections == 7  # metrics, rules, why, all-rules, kernels, graph, confusion
    shot = tmp_path / "report.png"
    run = _run_browser(exe, tmp_path / "profile2", "--window-size=1280,2600",
                       f"--screenshot={shot}", path.as_uri())
    assert shot.is_file(), run.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1280, 2600)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 200  # text, tables and pictures


def test_ordered_program_is_shown_in_order_with_its_kind():
    """A decision list (meta.ordered) reads top to bottom, ending in its default."""
    from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
    from cnn2logic.visual.report import render_report

    rules = RuleSet(
        variables=tuple(Variable(f"k{i}", "pool", i - 1) for i in (1, 2, 3)),
        heads=(Head("a"), Head("b"), Head("c")),
        rules=(Rule("b", (Literal("k1"), Literal("k2", False)), stats={"support": 0.25}),
               Rule("a", (Literal("k1"), Literal("k2"), Literal("k3")), min_true=2)),
        default="c", meta={"ordered": True, "rule_kind": "learned",
                           "metrics": {"fidelity": 0.9}})
    page = render_report(rules)
    assert "The program, read with the kernels&#x27; images" in page
    first, second, otherwise = (page.index(s) for s in ("<td class=num>1</td>",
                                                          "<td class=num>2</td>",
                                                          "<td>otherwise</td>"))
    assert first < second < otherwise
    assert "at least 2 of" in page and "else " in page
    assert "<b>learned</b>" in page and "90.0%" in page


def _why_rows(text: str) -> list[tuple[int, str]]:
    """(test image position, sentence) of every row of the report's "why" section."""
    section = text.split('<section id="why">')[1].split("</section>")[0]
    rows = re.findall(r"<td class=ans>test image (\d+)[^<]*<br>.*?</td><td>([^<]*)</td>",
                      section)
    return [(int(n), html.unescape(s)) for n, s in rows]


def test_report_explains_test_images_as_the_query_does(vis_report, core_paper1_extraction,
                                                      tmp_path):
    """The sentences of "Why the network decided" are those of `query explain` (clingo)."""
    from cnn2logic import query
    from cnn2logic.export.logic import write_program

    path, text, rules = vis_report
    assert "Why the network decided" in text
    rows = _why_rows(text)
    codes = core_paper1_extraction.test_codes
    # the first test image of every class (the embedded test data has all ten)
    assert len(rows) >= 10
    assert [int(codes.labels[n]) for n, _ in rows[:10]] == list(range(10))
    assert all(s.startswith("Predicted ") for _, s in rows)
    program = tmp_path / "test.lp"
    write_program(program, rules, codes)
    for n, sentence in (rows[0], rows[-1]):  # a class's first image and the last row
        assert query.explain(program, n, image_by="index").words == sentence


def test_explained_images_match_the_query_on_every_image(lp_small, lp_small_lp):
    """M-of-N rules, the default class, disagreements: the same words as `query explain`."""
    import numpy as np

    from cnn2logic import query
    from cnn2logic.visual.report import render_report
    from cnn2logic.visual.why import explained_images

    rules, codes = lp_small
    n = len(codes.bits)
    pictures = np.linspace(0, 1, n * 4).reshape(n, 1, 2, 2)
    cases = explained_images(rules, codes.bits, pictures, codes.classes, codes.labels,
                             codes.predictions, codes.ids)
    network = [codes.classes[i] for i in codes.predictions]
    program = list(rules.predict(codes.bits))
    disagree = [i for i in range(n) if network[i] != program[i]]
    firsts = sorted({int(codes.labels.tolist().index(c)) for c in set(codes.labels.tolist())},
                    key=lambda i: codes.labels[i])
    assert [c.position for c in cases] == firsts + [i for i in disagree if i not in firsts][:3]
    for c in cases:
        assert c.words == query.explain(lp_small_lp, c.position, image_by="index").words
        assert c.image_id == codes.ids[c.position] and c.program == program[c.position]
    page = render_report(rules, explained=cases)
    assert '<section id="why">' in page
    assert [s for _, s in _why_rows(page)] == [c.words for c in cases]
    assert page == render_report(rules, explained=explained_images(
        rules, codes.bits, pictures, codes.classes, codes.labels, codes.predictions,
        codes.ids))  # deterministic
    assert '<section id="why">' not in render_report(rules)


def test_graph_draws_kernels_from_png_pictures():
    """The report hands the graph each kernel's patch mosaic as PNG bytes."""
    import numpy as np

    from cnn2logic.visual.graph import kernel_graph
    from cnn2logic.visual.graph_draw import graph_png
    from cnn2logic.visual.images import patch_mosaic_png

    g = kernel_graph(_hand_rules())
    mosaic = patch_mosaic_png(np.linspace(0, 1, 4 * 25).reshape(4, 1, 5, 5))
    with_png = graph_png(g, pictures={"k6": mosaic})
    assert with_png != graph_png(g) and with_png == graph_png(g, pictures={"k6": mosaic})


# -- activation maximisation for the kernels the rules read only ------------------------
@pytest.fixture(scope="module")
def small_embedded(core_embedded):
    """300 training and 100 test images of the embedded data, every class among them."""
    import numpy as np

    from cnn2logic.data import DataSplits, ImageSet

    rng = np.random.default_rng(0)

    def pick(split, n):
        keep = np.sort(rng.choice(len(split), n, replace=False))
        return ImageSet(split.images[keep], split.labels[keep], split.classes, split.name)

    return DataSplits(pick(core_embedded.train, 300), pick(core_embedded.test, 100),
                      core_embedded.source)


def _rules_reading(*body, meta=None, extra=()) -> RuleSet:
    """paper1's 10 pool kernels (plus ``extra`` variables); one rule over ``body``."""
    variables = tuple(Variable(f"k{i}", "pool", i - 1) for i in range(1, 11)) + tuple(extra)
    heads = tuple(Head(str(c), "class", "out", c) for c in range(10))
    return RuleSet(variables, heads, (Rule("3", tuple(body)),), default="1", meta=meta or {})


def test_report_computes_actmax_for_the_kernels_the_rules_read(tmp_path, core_paper1,
                                                               small_embedded):
    import json

    import numpy as np

    from cnn2logic.visual.visuals import MANIFEST, load_visuals

    model, _ = core_paper1
    vis_dir = tmp_path / "vis"
    rules = _rules_reading(Literal("k6"), Literal("k8", False))
    kw = dict(visuals_dir=vis_dir, samples=3, top=3, progress=False)
    text = build_report(model, rules, small_embedded, tmp_path / "a.html",
                        **kw).read_text(encoding="utf-8")
    vis = load_visuals(vis_dir)
    assert vis.params["actmax_kernels"] == [5, 7] and vis.actmax_kernels == (5, 7)
    assert vis.actmax.shape == (10, 1, 28, 28)
    assert np.isnan(np.delete(vis.actmax, [5, 7], axis=0)).all()
    assert np.isfinite(vis.actmax[[5, 7]]).all()
    assert vis.evidence.has_kind("actmax").sum() == 2
    assert sorted(p.name for p in (vis_dir / "kernels").glob("*_actmax.png")) == [
        "k_k6_actmax.png", "k_k8_actmax.png"]
    # The page renders: every card has its saliency image (SmoothGrad for the kernels
    # without act. max), and says whose act. max it holds.
    _decode_pngs(text)
    kernels = text.split('<section id="kernels">')[1].split("</section>")[0]
    for i in range(1, 11):
        card = kernels.split(f'<div class="kc" id="kernel-k{i}">')[1].split('<div class="kc"')[0]
        assert re.search(r'alt="k%d (smoothgrad|actmax)"' % i, card)
        if i not in (6, 8):
            assert f'alt="k{i} actmax"' not in card
    assert "act. max (for 2 of the 10 kernels)" in kernels
    assert "(of the 2 kernels that have it)" in kernels
    # Reuse: rules reading k6 only are covered; rules reading k2 too are not.
    stamp = (vis_dir / MANIFEST).stat().st_mtime_ns
    build_report(model, _rules_reading(Literal("k6")), small_embedded, tmp_path / "b.html",
                 **kw)
    assert (vis_dir / MANIFEST).stat().st_mtime_ns == stamp
    text = build_report(model, _rules_reading(Literal("k2"), Literal("k6")), small_embedded,
                        tmp_path / "c.html", **kw).read_text(encoding="utf-8")
    assert ("lack the activation-maximisation images of 1 kernel(s) the rules read; "
            "recomputed") in text
    assert load_visuals(vis_dir).params["actmax_kernels"] == [1, 5]
    manifest = json.loads((vis_dir / MANIFEST).read_text())
    assert manifest["params"]["actmax_kernels"] == [1, 5]


def test_report_actmax_kernels_of_groups_table_terms_and_positions(tmp_path, core_paper1,
                                                                   small_embedded):
    from cnn2logic.extract.grouping import GROUP_LAYER
    from cnn2logic.visual.visuals import load_visuals

    model, _ = core_paper1
    kw = dict(samples=2, top=2, actmax=True, progress=False)
    # a group stands for its members; the table terms are shown as well as the rules
    meta = {"groups": {"members": {"g1": ["k2", "k3"]}, "rule": "any", "threshold": 0.9},
            "table": [{"class": "5", "body": [["k9", True]]}]}
    rules = _rules_reading(Literal("g1"), Literal("k6", False), meta=meta,
                           extra=(Variable("g1", GROUP_LAYER, 0),))
    build_report(model, rules, small_embedded, tmp_path / "g.html",
                 visuals_dir=tmp_path / "g", **kw)
    assert load_visuals(tmp_path / "g").params["actmax_kernels"] == [1, 2, 5, 8]
    # one unit per kernel and map position (conv1's 2x2 maps): k3_r1c2 is unit 9 but
    # kernel 3's, so kernels 3 and 7 (0-based 2 and 6) are drawn and paired
    names = position_names("conv1", 10, 2, 2)
    heads = tuple(Head(str(c), "class", "out", c) for c in range(10))
    rules = RuleSet(tuple(Variable(n, "conv1", i) for i, n in enumerate(names)), heads,
                    (Rule("3", (Literal("k3_r1c2"), Literal("k7_r2c2", False))),), default="1",
                    meta={"layer": "conv1", "settings": {"reduce": "position"}})
    text = build_report(model, rules, None, tmp_path / "p.html", visuals_dir=tmp_path / "p",
                        **kw).read_text(encoding="utf-8")
    vis = load_visuals(tmp_path / "p")
    assert vis.params["actmax_kernels"] == [2, 6] and vis.actmax_kernels == (2, 6)
    assert vis.layer == "conv1" and "k3_r1c2" in text
