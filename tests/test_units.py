"""Kernel-unit capture with forward hooks, binarisation, and the codes file."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cnn2logic.errors import ActivationError, ModelError
from cnn2logic.units import BinaryCodes, capture, check_binary, fit_thresholds


def tiny_net():
    conv = nn.Conv2d(1, 2, 2, bias=False)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, -1.0]]]])
    return nn.Sequential(OrderedDict(conv=conv, flat=nn.Flatten()))


def test_capture_reduces_each_kernel_map_by_max_or_mean():
    x = torch.arange(9, dtype=torch.float32).reshape(1, 1, 3, 3)
    # kernel 1 reads the top-left pixel of each 2x2 window: values 0, 1, 3, 4
    # kernel 2 reads minus the bottom-right pixel: -4, -5, -7, -8
    units = capture(tiny_net(), "conv", x, progress=False)
    assert units.values.tolist() == [[4.0, -4.0]]
    mean = capture(tiny_net(), "conv", x, reduce="mean", progress=False)
    assert mean.values.tolist() == [[2.0, -6.0]]
    assert units.names == ("k1", "k2") and units.layer == "conv"


def test_capture_in_batches_matches_one_pass_and_removes_hook():
    net = tiny_net()
    x = torch.rand(23, 1, 5, 5)
    a = capture(net, "conv", x, batch_size=4, progress=False)
    b = capture(net, "conv", x, batch_size=100, progress=False)
    assert np.array_equal(a.values, b.values)
    assert not net.conv._forward_hooks


def test_unknown_layer_lists_the_layers():
    with pytest.raises(ModelError, match="no layer named 'conv9'; layers: conv, flat"):
        capture(tiny_net(), "conv9", torch.zeros(1, 1, 3, 3), progress=False)


def test_thresholds():
    vals = np.array([[0.1, 2.0], [0.9, 4.0], [0.5, 6.0]])
    with pytest.raises(ActivationError, match="needs units in \\[0, 1\\]"):
        fit_thresholds(vals, "half")
    assert fit_thresholds(vals[:, :1], "half").values.tolist() == [0.5]
    assert fit_thresholds(vals, "minmax").values.tolist() == [0.5, 4.0]
    eric = fit_thresholds(vals, "eric", alpha=1.0, gamma=0.0)
    assert np.allclose(eric.values, vals.mean(0))
    t = fit_thresholds(vals, "median")
    assert t.apply(vals).tolist() == [[False, False], [True, True], [True, True]]
    with pytest.raises(ActivationError, match="unknown threshold"):
        fit_thresholds(vals, "otsu")
    with pytest.raises(ActivationError, match="expected activations with 2 kernels"):
        t.apply(np.zeros((3, 5)))


def test_check_binary_names_the_first_bad_value():
    with pytest.raises(ActivationError, match="value 0.7 at row 1, column 0"):
        check_binary(np.array([[0, 1], [0.7, 1]]))


def test_codes_file_round_trip(tmp_path, core_paper1_extraction):
    codes = core_paper1_extraction.test_codes
    path = tmp_path / "codes.npz"
    codes.save(path)
    again = BinaryCodes.load(path)
    assert np.array_equal(again.bits, codes.bits)
    assert again.variables == codes.variables and again.classes == codes.classes
    assert np.array_equal(again.labels, codes.labels)
    assert np.array_equal(again.predictions, codes.predictions)
    assert again.ids == codes.ids
    # compact: 10 kernels pack into 2 bytes per image
    assert path.stat().st_size < len(codes) * 4 + 20_000
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ActivationError, match="bad.npz: not a cnn2logic activations file"):
        BinaryCodes.load(tmp_path / "bad.npz")
