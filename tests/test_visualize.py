"""Maximising images: SmoothGrad (captum), activation maximisation, top images, filters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from cnn2logic import visual as V
from cnn2logic.cli import main
from cnn2logic.errors import ModelError, VisualizationError
from cnn2logic.model.spec import build_model, save_checkpoint
from cnn2logic.units import capture, position_names


@pytest.fixture(scope="module")
def vis_paper1_visuals(core_paper1, core_embedded):
    model, _ = core_paper1
    return V.visualize(model, "pool", core_embedded.train, progress=False)


def _plain_gradient(model, base, kernel):
    x = torch.from_numpy(base[None].copy()).requires_grad_(True)
    V.LayerUnits(model, "pool")(x)[0, kernel].backward()
    return x.grad[0].numpy()


def test_smoothgrad_looks_like_the_filter_on_trained_paper1(core_paper1, vis_paper1_visuals):
    """The paper's Figure 3 claim: for paper1 each SmoothGrad image resembles its filter."""
    model, metrics = core_paper1
    assert metrics["test_accuracy"] > 0.8
    vis = vis_paper1_visuals
    assert vis.filters is not None and vis.filters.shape == (10, 1, 27, 27)
    corr = vis.correlation
    print("SmoothGrad-filter correlation per kernel:", np.round(corr, 3).tolist())
    assert corr.shape == (10,)
    assert corr.mean() > 0.7, corr
    assert corr.min() > 0.4, corr


def test_default_base_is_the_measured_best_cheap_choice(core_paper1, core_embedded):
    """'mean' (the default) correlates with the filters at least as well as 'zeros'/'gray'."""
    model, _ = core_paper1
    f = V.input_filters(model, "pool")
    scores = {}
    for base in ("zeros", "gray", "mean"):
        maps = V.smoothgrad(model, "pool", base=base, images=core_embedded.train, progress=False)
        scores[base] = float(V.filter_correlation(maps, f)[0].mean())
    print("mean correlation by base:", scores)
    assert V.DEFAULT_BASE == "mean"
    assert scores["mean"] >= max(scores["zeros"], scores["gray"]) - 0.02


def test_smoothgrad_without_noise_is_the_plain_gradient():
    model = build_model("paper1", seed=3)
    rng = np.random.default_rng(0)
    base = rng.random((1, 28, 28), dtype=np.float32)
    maps = V.smoothgrad(model, "pool", base=base, samples=3, stdev=0.0, progress=False)
    for k in (0, 4, 9):
        np.testing.assert_allclose(maps[k], _plain_gradient(model, base, k), rtol=1e-5,
                                   atol=1e-8)


def test_smoothgrad_averages_signed_gradients_over_gaussian_noise():
    """captum's noise tunnel agrees with a hand-written Monte Carlo average (std 0.1)."""
    model = build_model("paper1", seed=1)
    base = np.zeros((1, 28, 28), np.float32)
    maps = V.smoothgrad(model, "pool", base="zeros", samples=400, stdev=0.1, progress=False)
    gen = torch.Generator().manual_seed(7)
    noisy = torch.randn((400, 1, 28, 28), generator=gen) * 0.1
    x = (torch.from_numpy(base)[None] + noisy).requires_grad_(True)
    units = V.LayerUnits(model, "pool")(x)
    for k in (0, 5):
        (g,) = torch.autograd.grad(units[:, k].sum(), x, retain_graph=True)
        manual = g.mean(0).numpy()
        r = np.corrcoef(manual.ravel(), maps[k].ravel())[0, 1]
        ratio = np.abs(maps[k]).sum() / np.abs(manual).sum()
        assert r > 0.95, r
        assert 0.8 < ratio < 1.25, ratio
    # A different noise level gives a measurably different result: stdev is passed on.
    wide = V.smoothgrad(model, "pool", base="zeros", samples=400, stdev=2.0, progress=False)
    assert not np.allclose(wide, maps, atol=1e-4)


def test_smoothgrad_batching_and_seed():
    model = build_model("paper3", seed=0)
    kw = dict(base="gray", samples=4, progress=False)
    one = V.smoothgrad(model, "pool", stdev=0.0, batch_size=10_000, **kw)
    small = V.smoothgrad(model, "pool", stdev=0.0, batch_size=7, **kw)
    np.testing.assert_allclose(one, small, rtol=1e-5, atol=1e-9)
    a = V.smoothgrad(model, "pool", seed=5, **kw)
    b = V.smoothgrad(model, "pool", seed=5, **kw)
    np.testing.assert_array_equal(a, b)
    state = torch.random.get_rng_state()
    V.smoothgrad(model, "pool", seed=9, **kw)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched


def test_smoothgrad_bases_and_kernel_subset(core_embedded):
    model = build_model("paper1", seed=0)
    imgs = core_embedded.train.subset(300)
    for base in ("zeros", "gray", "mean", "top"):
        maps = V.smoothgrad(model, "pool", base=base, images=imgs, samples=4, top=3,
                            kernels=[2, 7], progress=False)
        assert maps.shape == (2, 1, 28, 28)
        assert np.isfinite(maps).all() and np.abs(maps).max() > 0
    full = V.smoothgrad(model, "pool", base="zeros", samples=2, stdev=0.0, progress=False)
    sub = V.smoothgrad(model, "pool", base="zeros", samples=2, stdev=0.0, kernels=[7],
                       progress=False)
    np.testing.assert_allclose(sub[0], full[7], rtol=1e-6)


def test_units_of_larger_maps_and_other_models():
    """act1 of paper1 is a 2x2 map per kernel: the unit is its max (or mean), as capture."""
    model = build_model("paper1", seed=0)
    x = torch.rand(5, 1, 28, 28)
    for reduce in ("max", "mean"):
        with torch.no_grad():
            got = V.LayerUnits(model, "act1", reduce)(x).numpy()
        want = capture(model, "act1", x, reduce=reduce, progress=False).values
        np.testing.assert_allclose(got, want, rtol=1e-6)
    maps = V.smoothgrad(model, "act1", base="zeros", samples=3, reduce="mean", progress=False)
    assert maps.shape == (10, 1, 28, 28)

    class Net(nn.Module):  # not a Sequential, no spec: shape comes from the images
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 5), nn.ReLU())
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.features(x).amax(dim=(2, 3)))

    net = Net()
    imgs = np.random.default_rng(0).random((6, 3, 12, 12), dtype=np.float32)
    maps = V.smoothgrad(net, "features.1", base="mean", images=imgs, samples=3, progress=False)
    assert maps.shape == (4, 3, 12, 12)
    assert V.input_filters(net, "features.1").shape == (4, 3, 5, 5)
    with pytest.raises(VisualizationError, match="input shape"):
        V.smoothgrad(net, "features.1", base="zeros", progress=False)


def test_input_filters_only_when_the_kernel_sees_the_input():
    p1, p3 = build_model("paper1", seed=0), build_model("paper3", seed=0)
    f = V.input_filters(p1, "pool")
    np.testing.assert_array_equal(f, p1.conv1.weight.detach().numpy())
    assert V.input_filters(p1, "act1").shape == (10, 1, 27, 27)
    assert V.input_filters(p1, "out") is None
    assert V.input_filters(p3, "pool") is None
    assert V.input_filters(p3, "act1").shape == (10, 1, 8, 8)
    with pytest.raises(ModelError, match="no layer named"):
        V.input_filters(p1, "conv9")


def test_filter_correlation_finds_the_placement():
    rng = np.random.default_rng(1)
    filt = rng.normal(size=(3, 1, 27, 27)).astype(np.float32)
    maps = np.zeros((3, 1, 28, 28), np.float32)
    maps[0, :, 1:, :27] = filt[0]
    maps[1, :, :27, 1:] = -filt[1]
    maps[2] = rng.normal(size=(1, 28, 28))
    corr, off = V.filter_correlation(maps, filt)
    assert corr[0] == pytest.approx(1.0, abs=1e-5) and tuple(off[0]) == (1, 0)
    assert corr[1] < 0.5  # an inverted filter is not "alike"
    assert abs(corr[2]) < 0.3
    with pytest.raises(VisualizationError):
        V.filter_correlation(maps, None)
    with pytest.raises(VisualizationError):
        V.filter_correlation(maps, filt[:2])


def test_top_activating_matches_capture(core_paper1, core_embedded):
    model, _ = core_paper1
    imgs = core_embedded.test
    idx, vals = V.top_activating(model, "pool", imgs, 5, progress=False)
    units = capture(model, "pool", imgs.images, progress=False).values
    assert idx.shape == vals.shape == (10, 5)
    for k in range(10):
        np.testing.assert_allclose(vals[k], units[idx[k], k])
        assert vals[k, -1] >= np.sort(units[:, k])[-5] - 1e-7
        assert (np.diff(vals[k]) <= 0).all()
    with pytest.raises(VisualizationError):
        V.top_activating(model, "pool", imgs, 0, progress=False)


def test_activation_maximization_raises_every_unit(core_paper1):
    model, _ = core_paper1
    am = V.activation_maximization(model, "pool", steps=60, progress=False)
    assert am.shape == (10, 1, 28, 28)
    assert am.min() >= 0.0 and am.max() <= 1.0
    units = V.LayerUnits(model, "pool")
    with torch.no_grad():
        reached = units(torch.from_numpy(am)).numpy().diagonal()
        start = units(torch.full((1, 1, 28, 28), 0.5)).numpy()[0]
    assert (reached >= start - 1e-6).all()
    assert reached.mean() > 0.9, reached
    # The contrastive image is specific: it drives its own unit more than the others do.
    con = V.activation_maximization(model, "pool", steps=60, contrast=1.0, progress=False)
    with torch.no_grad():
        resp = units(torch.from_numpy(con)).numpy().T
        plain = units(torch.from_numpy(am)).numpy().T
    selective = (V.selectivity_margins(resp) > 0).mean()
    assert selective >= 0.5 and selective >= (V.selectivity_margins(plain) > 0).mean()
    with pytest.raises(VisualizationError):
        V.activation_maximization(model, "pool", contrast=-1.0, progress=False)
    with pytest.raises(VisualizationError):
        V.activation_maximization(model, "pool", start="plaid", progress=False)
    with pytest.raises(VisualizationError):
        V.activation_maximization(model, "pool", objective="nope", steps=1, progress=False)


def test_errors():
    model = build_model("paper1", seed=0)
    with pytest.raises(VisualizationError, match="unknown SmoothGrad base"):
        V.smoothgrad(model, "pool", base="noise", progress=False)
    with pytest.raises(VisualizationError, match="needs data images"):
        V.smoothgrad(model, "pool", base="mean", progress=False)
    with pytest.raises(VisualizationError, match="samples"):
        V.smoothgrad(model, "pool", samples=0, progress=False)
    with pytest.raises(VisualizationError, match="outside"):
        V.smoothgrad(model, "pool", base="zeros", kernels=[10], progress=False)
    with pytest.raises(ModelError, match="no layer named 'nope'"):
        V.smoothgrad(model, "nope", base="zeros", progress=False)
    with pytest.raises(VisualizationError, match="picture kind"):
        V.to_rgb(np.zeros((3, 3)), "rainbow")


def test_write_and_load_visuals(tmp_path, core_paper1, core_embedded):
    from PIL import Image

    model, _ = core_paper1
    vis = V.visualize(model, "pool", core_embedded.test, samples=10, top=4, actmax=True,
                      actmax_steps=20, progress=False)
    written = V.write_visuals(vis, tmp_path / "vis", progress=False)
    manifest = json.loads((tmp_path / "vis" / V.MANIFEST).read_text())
    assert manifest["format"] == V.MANIFEST_FORMAT
    assert manifest["params"]["samples"] == 10 and manifest["params"]["noise_stdev"] == 0.1
    assert manifest["params"]["base"] == "mean"
    assert len(manifest["kernels"]) == 10
    assert set(manifest["filter_correlation"]) == set(vis.names)
    for name in vis.names:
        for kind in ("smoothgrad", "filter", "top", "actmax"):
            path = written.image_path(name, kind)
            with Image.open(path) as im:
                assert im.format == "PNG"
                if kind in ("smoothgrad", "actmax"):
                    assert im.size == (112, 112)
                if kind == "filter":
                    assert im.size == (108, 108)
    with Image.open(tmp_path / "vis" / "grid.png") as im:
        assert im.width > 7 * 84 and im.height > 10 * 84  # 7 columns, 10 rows of 84 px
    back = V.load_visuals(tmp_path / "vis")
    np.testing.assert_array_equal(back.smoothgrad, vis.smoothgrad)
    np.testing.assert_array_equal(back.top_images, vis.top_images)
    np.testing.assert_allclose(back.correlation, vis.correlation)
    assert back.names == vis.names and back.layer == "pool"
    assert back.params["model_sha256"] == V.model_fingerprint(model)
    assert not list((tmp_path / "vis").glob("**/*.tmp"))


def test_load_visuals_errors(tmp_path):
    with pytest.raises(VisualizationError, match="no visuals.json"):
        V.load_visuals(tmp_path)
    (tmp_path / V.MANIFEST).write_text('{"format": "other"}')
    with pytest.raises(VisualizationError, match="not a cnn2logic visuals manifest"):
        V.load_visuals(tmp_path)
    (tmp_path / "file").write_text("x")
    vis = V.visualize(build_model("paper1", seed=0), base="zeros", samples=2, progress=False)
    with pytest.raises(VisualizationError, match="not a directory"):
        V.write_visuals(vis, tmp_path / "file", progress=False)


def test_match_kernels_by_layer_index_or_name():
    from cnn2logic.rules import Variable

    vis = V.visualize(build_model("paper1", seed=0), base="zeros", samples=2, progress=False)
    got = V.match_kernels([Variable("pool.k3", "pool", 2), Variable("k5"),
                           Variable("conv2.k1", "conv2", 0), Variable("pool.k7")], vis)
    assert got == {"pool.k3": 2, "k5": 4, "pool.k7": 6}
    # one unit per position: its index counts units, its name names the kernel
    pos = [Variable(n, "pool", i) for i, n in enumerate(position_names("pool", 10, 2, 2))]
    got = V.match_kernels([pos[9], pos[39], Variable("pool.k4_r1c1")], vis)
    assert got == {"k3_r1c2": 2, "k10_r2c2": 9, "pool.k4_r1c1": 3}


def test_cli_visualize(tmp_path, capsys, core_paper1):
    model, _ = core_paper1
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(model, ckpt)
    out = tmp_path / "vis"
    rc = main(["visualize", str(ckpt), "--out", str(out), "--samples", "20", "--top", "3",
               "--train-size", "500", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "correlation with filter" in text and "mean" in text
    assert (out / "grid.png").is_file() and (out / V.MANIFEST).is_file()
    assert len(list((out / "kernels").glob("*_smoothgrad.png"))) == 10
    # With data: the evidence (patches, profiles, selectivity of every kind) by default.
    assert "evidence selective (patches" in text and "receptive field 27x27" in text
    assert len(list((out / "kernels").glob("*_patches.png"))) == 10
    manifest = json.loads((out / V.MANIFEST).read_text())
    assert set(manifest["selectivity_by_kind"]) == {"patches", "smoothgrad", "actmax"}
    assert manifest["evidence_file"] == "evidence.json" and (out / "evidence.json").is_file()
    rc = main(["visualize", str(ckpt), "--out", str(tmp_path / "v2"), "--data", "none",
               "--samples", "5", "--no-progress"])
    assert rc == 0 and "base 'zeros'" in capsys.readouterr().out
    rc = main(["visualize", str(tmp_path / "missing.safetensors"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "checkpoint not found" in err
    rc = main(["visualize", str(ckpt), "--out", str(out), "--layer", "nope", "--data", "none"])
    assert rc == 2 and "no layer named" in capsys.readouterr().err


def test_actmax_for_some_kernels_round_trips(tmp_path, core_paper1, core_embedded):
    from PIL import Image

    model, _ = core_paper1
    data = core_embedded.test.subset(200)
    kw = dict(samples=3, top=3, actmax=True, actmax_steps=5, progress=False)
    vis = V.visualize(model, "pool", data, actmax_kernels=[7, 2, 2], **kw)
    # one row per kernel: the two computed, the other kernels' all NaN
    assert vis.params["actmax_kernels"] == [2, 7] and vis.actmax_kernels == (2, 7)
    assert vis.actmax.shape == (10, 1, 28, 28)
    assert np.isfinite(vis.actmax[[2, 7]]).all()
    assert np.isnan(np.delete(vis.actmax, [2, 7], axis=0)).all()
    assert vis.actmax_image(3) is None and vis.actmax_image(7).shape == (1, 28, 28)
    # the evidence has act. max for those two only, and never shows it for another
    ev = vis.evidence
    assert ev.has_kind("actmax").tolist() == [i in (2, 7) for i in range(10)]
    assert not any(ev.chosen[i] == "actmax" for i in range(10) if i not in (2, 7))
    margins = ev.margins("actmax")
    assert np.isnan(np.delete(margins, [2, 7])).all() and not np.isnan(margins[[2, 7]]).any()
    assert 0 <= ev.selectivity("actmax") <= 1 and 0 <= ev.selectivity() <= 1
    written = V.write_visuals(vis, tmp_path / "vis", progress=False)
    assert [n for n in vis.names if written.image_path(n, "actmax")] == ["k3", "k8"]
    assert sorted(p.name for p in (tmp_path / "vis" / "kernels").glob("*_actmax.png")) == [
        "k_k3_actmax.png", "k_k8_actmax.png"]
    with Image.open(tmp_path / "vis" / "grid.png") as im:
        im.load()
    manifest = json.loads((tmp_path / "vis" / V.MANIFEST).read_text())
    assert manifest["params"]["actmax_kernels"] == [2, 7]
    assert manifest["evidence"]["kernels_with_kind"] == {"actmax": 2}
    record = json.loads((tmp_path / "vis" / "evidence.json").read_text())["kernels"]
    assert record[0]["margins"]["actmax"] is None and record[2]["margins"]["actmax"] is not None
    back = V.load_visuals(tmp_path / "vis")
    np.testing.assert_array_equal(back.actmax, vis.actmax)  # NaN rows included
    assert back.actmax_kernels == (2, 7) and back.params["actmax_kernels"] == [2, 7]
    assert back.evidence.chosen == ev.chosen
    np.testing.assert_array_equal(back.evidence.responses["actmax"], ev.responses["actmax"])
    # every kernel listed is all kernels (no entry); none listed is no act. max at all
    every = V.visualize(model, "pool", data, actmax_kernels=range(10), **kw)
    assert "actmax_kernels" not in every.params and every.actmax_kernels == tuple(range(10))
    none = V.visualize(model, "pool", data, actmax_kernels=[], **kw)
    assert none.actmax is None and none.params["actmax_kernels"] == []
    assert none.params["actmax_steps"] == 0 and "actmax" not in none.evidence.kinds
    with pytest.raises(VisualizationError, match=r"actmax_kernels \[10\] outside 0..9"):
        V.visualize(model, "pool", data, actmax_kernels=[3, 10], **kw)
