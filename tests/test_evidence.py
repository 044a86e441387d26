"""Kernel evidence: receptive fields, exact crops, class profiles, selectivity, bytes."""

from __future__ import annotations

import hashlib
import importlib.util
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnn2logic.data import ImageSet
from cnn2logic.errors import VisualizationError
from cnn2logic.visual.evidence import kernel_evidence, paste, unit_response
from cnn2logic.visual.kernels import visualize
from cnn2logic.visual.measures import (choose_kinds, class_profile, profile_agreement,
                                       selectivity_margins)
from cnn2logic.visual.receptive import find_map_layer, receptive_field
from cnn2logic.visual.visuals import load_visuals, write_visuals

ROOT = Path(__file__).resolve().parents[1]


def _net(padding: int = 0) -> nn.Module:
    """Two 3x3 kernels (a box sum and a vertical-edge detector), global max-pool."""
    conv = nn.Conv2d(1, 2, 3, padding=padding, bias=False)
    with torch.no_grad():
        conv.weight[0] = 1.0
        conv.weight[1] = torch.tensor([[-1.0, 0.0, 1.0]] * 3)
    return nn.Sequential(OrderedDict([("conv", conv), ("pool", nn.AdaptiveMaxPool2d(1)),
                                      ("flat", nn.Flatten())])).eval()


def _blob(row: int, col: int, size: int = 6) -> np.ndarray:
    img = np.zeros((1, size, size), np.float32)
    img[0, row:row + 3, col:col + 3] = np.arange(1, 10, dtype=np.float32).reshape(3, 3) / 10
    return img


def test_receptive_field_of_a_plain_conv_is_exact():
    net = _net()
    assert find_map_layer(net, "pool", torch.zeros(1, 1, 6, 6)) == ("conv", (2, 4, 4))
    rf = receptive_field(net, "conv", (1, 6, 6))
    assert rf.size == (3, 3) and rf.stride == (1, 1)
    for i in range(4):
        for j in range(4):
            assert list(rf.boxes[i, j]) == [i, j, i + 3, j + 3]


def test_crop_is_exactly_the_pixels_around_the_peak():
    images = np.stack([_blob(2, 1), _blob(0, 3), np.zeros((1, 6, 6), np.float32)])
    ev = kernel_evidence(_net(), "pool", images, np.array([0, 1, 1]), top=2,
                         thresholds=np.array([1.0, 0.5]))
    assert ev.map_layer == "conv" and ev.receptive.size == (3, 3)
    # Kernel 1 (box sum): image 0 and 1 tie (same blob sum 4.5); the first in data order wins.
    assert list(ev.top_index[0]) == [0, 1]
    assert [list(p) for p in ev.peaks[0]] == [[2, 1], [0, 3]]
    np.testing.assert_array_equal(ev.patches[0, 0], images[0][:, 2:5, 1:4])
    np.testing.assert_array_equal(ev.patches[0, 1], images[1][:, 0:3, 3:6])
    assert ev.top_values[0, 0] == pytest.approx(4.5)


def test_crop_at_the_border_is_padded_to_the_nominal_size():
    net = _net(padding=1)
    rf = receptive_field(net, "conv", (1, 6, 6))
    assert rf.size == (3, 3) and list(rf.boxes[0, 0]) == [0, 0, 2, 2]
    assert rf.window(0, 0) == (-1, -1) and rf.window(5, 5) == (4, 4)
    img = np.arange(36, dtype=np.float32).reshape(1, 6, 6)
    crop = rf.crop(img, 0, 0)
    assert np.isnan(crop[0, 0]).all() and np.isnan(crop[0, :, 0]).all()
    np.testing.assert_array_equal(crop[0, 1:, 1:], img[0, :2, :2])
    with pytest.raises(VisualizationError):
        rf.crop(img, 6, 0)


def test_class_profile_counts_by_hand():
    units = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6], [0.4, 0.9]])
    bits = units >= 0.5
    on, mean, counts = class_profile(bits, units, np.array([0, 0, 1, 2]), 4)
    np.testing.assert_array_equal(counts, [2, 1, 1, 0])
    np.testing.assert_allclose(on[0], [0.5, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(on[1], [0.5, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(mean[0], [0.55, 0.7, 0.4, 0.0])
    with pytest.raises(VisualizationError):
        class_profile(bits, units, np.array([0, 0, 1, 9]), 4)


def test_class_profile_of_kernel_evidence_uses_the_thresholds():
    images = np.stack([_blob(2, 1), _blob(0, 3), np.zeros((1, 6, 6), np.float32)])
    ev = kernel_evidence(_net(), "pool", images, np.array([0, 1, 1]), top=1,
                         thresholds=np.array([1.0, 0.5]))
    # kernel 1 is on for images 0 and 1 (4.5 >= 1), off for the blank one.
    np.testing.assert_allclose(ev.on_share[0], [1.0, 0.5])
    rec = ev.kernel_record(0)
    assert rec["class_profile"]["1"]["on_share"] == 0.5 and rec["threshold"] == 1.0


def test_selectivity_on_a_constructed_case():
    r = np.array([[3.0, 1.0, 2.0], [2.0, 1.0, 0.5], [0.0, 0.0, 0.0]])
    m = selectivity_margins(r)
    np.testing.assert_allclose(m, [1.0, -1.0, 0.0])  # a tie is not selective
    assert selectivity_margins(np.array([[0.0]]))[0] == np.inf
    # Mixing kinds: "a" fails kernel 1, "b" fails kernel 0; shown together both pass.
    a = np.array([[2.0, 1.0], [3.0, 1.0]])
    b = np.array([[0.0, 1.0], [0.0, 5.0]])
    assert choose_kinds({"patches": a, "smoothgrad": b}, np.ones(2)) == ("patches", "smoothgrad")
    mixed = np.array([[2.0, 1.0], [3.0, 5.0]])
    assert (selectivity_margins(mixed) > 0).all()
    with pytest.raises(VisualizationError):
        selectivity_margins(np.zeros((2, 3)))


def test_selectivity_of_a_kind_some_kernels_lack():
    # act. max computed for kernels 0 and 1 only: kernel 2's column is NaN
    nan = np.nan
    a = np.array([[1.0, 0.0, 5.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])  # patches
    c = np.array([[4.0, 0.0, nan], [1.0, 0.0, nan], [0.0, 0.0, nan]])
    m = selectivity_margins(c)
    # the missing picture is no competitor: kernel 0's act. max beats kernel 1's only
    assert m[0] == 4.0 and m[1] == -1.0 and np.isnan(m[2])
    only = np.array([[1.0, nan], [0.0, nan]])
    assert selectivity_margins(only)[0] == np.inf and np.isnan(selectivity_margins(only)[1])
    # Showing kernel 2 by the act. max it lacks would drop it from kernel 0's test and
    # raise the count (kernel 0 selective): that choice is never made.
    dropped = np.column_stack([a[:, 0], a[:, 1], c[:, 2]])
    assert (selectivity_margins(dropped) > 0).sum() > (selectivity_margins(a) > 0).sum()
    assert choose_kinds({"patches": a, "actmax": c}, np.ones(3)) == ("patches",) * 3


def test_pasted_patch_keeps_the_peak_value():
    images = np.stack([_blob(2, 1), _blob(0, 3)])
    ev = kernel_evidence(_net(), "pool", images, top=1, thresholds=np.zeros(2))
    win = np.array([ev.receptive.window(*ev.peaks[0, 0])])
    pasted = paste(ev.patches[0], win, np.zeros((1, 6, 6), np.float32))
    np.testing.assert_array_equal(pasted[0], images[ev.top_index[0, 0]])
    assert unit_response(_net(), "pool", pasted)[0, 0] == pytest.approx(ev.top_values[0, 0])
    assert ev.responses["patches"][0, 0] == pytest.approx(ev.top_values[0, 0])


def test_profile_agreement():
    a = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.2]])
    out = profile_agreement(a, a.copy(), top=2)
    assert out["correlation"] == [1.0, 1.0] and out["same_top"] == 1.0
    out = profile_agreement(a, a[:, ::-1].copy(), top=1)
    assert out["correlation"] == [0.5, 1.0] and out["same_top"] == 0.5


def _relu_bn(kernels: int = 6) -> nn.Module:
    spec = importlib.util.spec_from_file_location("relu_bn_cnn", ROOT / "examples/relu_bn_cnn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    net = mod.make_net(kernels=kernels)
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_relu_bn_model_receptive_field_and_crops():
    net = _relu_bn()
    rng = np.random.default_rng(0)
    images = rng.random((40, 1, 28, 28), dtype=np.float32)
    ev = kernel_evidence(net, "gap", images, rng.integers(0, 3, 40), top=3)
    # conv3 -> pool2 -> conv3 -> pool2 -> conv3: 18x18 at stride 4; map of features.relu3.
    assert ev.map_layer == "features.relu3" and ev.receptive.size == (18, 18)
    assert ev.receptive.stride == (4, 4)
    assert ev.patches.shape == (6, 3, 1, 18, 18) and ev.on_share.shape == (6, 3)
    k, t = 2, 0
    top, left = ev.receptive.window(*ev.peaks[k, t])
    img = images[ev.top_index[k, t]]
    r0, c0 = max(top, 0), max(left, 0)
    inside = ev.patches[k, t][:, r0 - top:, c0 - left:]
    part = img[:, r0:top + 18, c0:left + 18]
    np.testing.assert_array_equal(inside[:, :part.shape[1], :part.shape[2]], part)
    # The pasted patch reproduces the map value at the peak exactly (its whole field).
    pasted = paste(ev.patches[k, t:t + 1], np.array([[top, left]]), np.zeros_like(img))
    maps = []
    h = dict(net.named_modules())["features.relu3"].register_forward_hook(
        lambda _m, _i, o: maps.append(o.detach()))
    with torch.no_grad():
        net(torch.from_numpy(np.stack([img, pasted[0]])))
    h.remove()
    i, j = ev.peaks[k, t]
    assert float(maps[0][1, k, i, j]) == pytest.approx(float(maps[0][0, k, i, j]), rel=1e-5)


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 3, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.pool(h + self.body(h)).flatten(1)


def test_residual_net_map_is_the_sum_not_a_branch():
    torch.manual_seed(0)
    net = _Residual().eval()
    name, shape = find_map_layer(net, "pool", torch.zeros(1, 1, 8, 8))
    # the sum h + body(h) is no module's output: the last module before pool is body's ReLU
    assert shape == (3, 8, 8) and name in ("body", "body.1")
    rf = receptive_field(net, "stem", (1, 8, 8))
    assert rf.size == (3, 3)


def test_visualize_writes_evidence_with_deterministic_bytes(tmp_path):
    net = _relu_bn(4)
    rng = np.random.default_rng(1)
    data = ImageSet(rng.random((30, 1, 28, 28), dtype=np.float32), rng.integers(0, 3, 30),
                    ("a", "b", "c"), "random")
    digests = []
    for run in ("one", "two"):
        vis = visualize(net, "gap", data, samples=3, top=3, actmax_steps=3, progress=False)
        vis = write_visuals(vis, tmp_path / run, progress=False)
        files = sorted(p for p in (tmp_path / run).rglob("*") if p.is_file())
        digests.append({str(p.relative_to(tmp_path / run)):
                        hashlib.sha256(p.read_bytes()).hexdigest() for p in files
                        if p.name != "visuals.json"})  # the manifest records timings
    assert digests[0] == digests[1]
    assert "evidence.json" in digests[0] and "kernels/k_k1_patches.png" in digests[0]
    assert "kernels/k_k1_profile.png" in digests[0]
    back = load_visuals(tmp_path / "one")
    assert back.evidence is not None and back.evidence.chosen == vis.evidence.chosen
    assert back.evidence.classes == ("a", "b", "c")
    np.testing.assert_array_equal(back.evidence.patches, vis.evidence.patches)
    assert back.selectivity == pytest.approx(vis.selectivity)
    assert set(back.summary()["selectivity_by_kind"]) == {"patches", "smoothgrad", "actmax"}


def test_bad_evidence_parameters():
    images = np.zeros((2, 1, 6, 6), np.float32)
    with pytest.raises(VisualizationError):
        kernel_evidence(_net(), "pool", images, top=0)
    with pytest.raises(VisualizationError):
        kernel_evidence(_net(), "pool", images, background="plaid")
    with pytest.raises(VisualizationError):
        kernel_evidence(_net(), "pool", images, thresholds=np.zeros(3))


class _ReusedPool(nn.Module):
    """PyTorch's tutorial shape: one pool module after each of two convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 3, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        return self.fc(self.pool(torch.relu(self.conv2(x))).flatten(1))


def test_a_layer_run_twice_is_pictured_at_its_last_call_as_capture_reads_it():
    from cnn2logic.units import capture
    from cnn2logic.visual.evidence import capture_peaks
    from cnn2logic.visual.saliency import LayerUnits
    torch.manual_seed(0)
    net = _ReusedPool().eval()
    x = torch.rand(6, 1, 16, 16)
    with torch.no_grad():  # by hand: conv2's maps after the second pool, 3 x 2 x 2
        last = net.pool(torch.relu(net.conv2(net.pool(torch.relu(net.conv1(x))))))
    units = LayerUnits(net, "pool")
    assert units.calls(x) == 2
    torch.testing.assert_close(units(x), last.amax((2, 3)))
    assert find_map_layer(net, "pool", x[:1]) == ("pool", (3, 2, 2))
    # conv 3 -> pool 2 -> conv 3 -> pool 2: 10 x 10 windows, 4 pixels apart
    rf = receptive_field(net, "pool", (1, 16, 16))
    assert rf.size == (10, 10) and rf.stride == (4, 4)
    u, peaks, preds = capture_peaks(net, "pool", "pool", x.numpy(), batch_size=4)
    np.testing.assert_allclose(u, capture(net, "pool", x, progress=False).values, rtol=1e-6)
    np.testing.assert_array_equal(peaks, last.flatten(2).argmax(2).numpy())
    assert preds.shape == (6,)
    data = ImageSet(x.numpy(), np.arange(6) % 2, ("a", "b"), "random")
    vis = visualize(net, "pool", data, samples=2, top=2, actmax_steps=2, progress=False)
    # three kernels, and no filter: conv1's (defined before pool) are not these kernels'
    assert vis.smoothgrad.shape[0] == 3 and vis.filters is None


def test_a_position_literal_shows_the_window_it_sees():
    import io

    from PIL import Image

    from cnn2logic.unitnames import position_of
    from cnn2logic.visual.gallery import literal_thumbnail
    torch.manual_seed(0)
    net = _ReusedPool().eval()
    x = torch.rand(6, 1, 16, 16)
    data = ImageSet(x.numpy(), np.arange(6) % 2, ("a", "b"), "random")
    vis = visualize(net, "pool", data, samples=2, top=2, actmax_steps=2, progress=False)
    box = vis.evidence.receptive.boxes[1, 0]  # row 2, column 1: rows 4..13, columns 0..9
    assert position_of("k2_r2c1") == (2, 1) and tuple(box) == (4, 0, 14, 10)
    plain, where = (np.asarray(Image.open(io.BytesIO(png))) for png in (
        literal_thumbnail(vis, 1), literal_thumbnail(vis, 1, position_of("k2_r2c1"))))
    # the patches as before, then a gap and the 16 x 16 input frame (both drawn 2x)
    assert where.shape[1] == plain.shape[1] + 2 * (2 + 16)
    np.testing.assert_array_equal(where[:plain.shape[0], :plain.shape[1]], plain)
    frame = where[:32, plain.shape[1] + 4:]
    lit = (frame == [255, 214, 0]).all(axis=2)
    assert lit.sum() == 4 * 10 * 10 and lit[8:28, 0:20].all()
    # a position outside the map: the patches alone
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(literal_thumbnail(vis, 1, (3, 1))))), plain)
