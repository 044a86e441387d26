"""``--data FILE.npz``: arrays of images and labels, read without pickle and validated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnn2logic.cli import main
from cnn2logic.data import ImageSet, ImageTransform, load_data
from cnn2logic.errors import DataError, DataFileNotFoundError
from cnn2logic.model.spec import ConvSpec, ModelSpec, build_model, save_checkpoint


@pytest.fixture(scope="module")
def mnist_arrays(core_embedded):
    s = core_embedded.train
    idx = np.concatenate([np.flatnonzero(s.labels == c)[:10] for c in range(10)])
    return (s.images[idx, 0] * 255).round().astype(np.uint8), s.labels[idx]


@pytest.mark.parametrize("layout", ["nhw", "nchw", "nhwc", "float"])
def test_npz_layouts(tmp_path, mnist_arrays, layout):
    x, y = mnist_arrays
    arr = {"nhw": x, "nchw": x[:, None], "nhwc": np.repeat(x[..., None], 3, axis=3),
           "float": x[:, None].astype(np.float32) / 255}[layout]
    np.savez(tmp_path / "d.npz", images=arr, labels=y)
    d = load_data(tmp_path / "d.npz")
    assert isinstance(d.train, ImageSet)
    c = 3 if layout == "nhwc" else 1
    assert d.train.images.shape[1:] == (c, 28, 28) and d.train.images.dtype == np.float32
    assert (len(d.train), len(d.test)) == (80, 20)  # the seeded, stratified 20 %
    assert np.bincount(d.test.labels).tolist() == [2] * 10
    assert float(d.train.images.max()) <= 1.0
    assert np.allclose(d.train.images[:, :1], load_data(tmp_path / "d.npz").train.images[:, :1])
    assert d.transform == {"kind": "arrays", "layout": "holdout",
                           "holdout": {"fraction": 0.2, "seed": 20181213}}


def test_npz_train_test_and_classes(tmp_path, mnist_arrays):
    x, y = mnist_arrays
    names = np.array([f"class {c}" for c in range(10)])
    np.savez_compressed(tmp_path / "d.npz", train_images=x[:70], train_labels=y[:70],
                        test_images=x[70:], test_labels=y[70:], classes=names)
    d = load_data(tmp_path / "d.npz", test_size=5)
    assert (len(d.train), len(d.test)) == (70, 5)
    assert d.train.classes == tuple(names.tolist())
    t = load_data(tmp_path / "d.npz", transform=ImageTransform(resize=32, channels=3,
                                                               mean=(0.5,), std=(0.5,)))
    assert t.train.images.shape[1:] == (3, 32, 32) and float(t.train.images.min()) < 0
    assert t.transform["resize"] == [32, 32] and t.transform["kind"] == "arrays"


@pytest.mark.parametrize("arrays, match", [
    ({"images": "obj", "labels": "ok"}, "cannot read arrays"),
    ({"labels": "ok"}, "expected arrays 'images' and 'labels'"),
    ({"images": "ok", "labels": "ok", "extra": "ok"}, "unknown array 'extra'"),
    ({"images": "ok", "labels": "neg"}, "negative label"),
    ({"images": "ok", "labels": "short"}, "100 images in 'images' but 99 labels"),
    ({"images": "nan", "labels": "ok"}, "NaN or infinity"),
    ({"images": "int300", "labels": "ok"}, r"must lie in 0\.\.255"),
    ({"images": "rgba", "labels": "ok"}, "1 or 3 channels"),
    ({"images": "bool", "labels": "ok"}, "must be uint8 or float"),
    ({"images": "ok", "labels": "frac"}, "whole numbers"),
    ({"images": "ok", "labels": "ok", "classes": "few"}, "names only 3 classes"),
    ({"images": "ok", "labels": "ok", "classes": "ints"}, "1-d array of strings"),
])
def test_npz_refuses_bad_arrays(tmp_path, mnist_arrays, arrays, match):
    x, y = mnist_arrays
    values = {"ok": None, "obj": np.array([object()] * 3, dtype=object),
              "neg": np.where(np.arange(100) == 5, -1, y), "short": y[:-1],
              "nan": np.where(np.arange(100)[:, None, None] == 3, np.nan, x / 255.0),
              "int300": x.astype(np.int64) + 100, "rgba": np.repeat(x[..., None], 4, 3),
              "bool": x > 100, "frac": y + 0.5, "few": np.array(["a", "b", "c"]),
              "ints": np.arange(10)}
    kw = {}
    for key, what in arrays.items():
        kw[key] = values[what] if what != "ok" else {"images": x, "labels": y}.get(key, y)
    path = tmp_path / "d.npz"
    if "images" in arrays and arrays["images"] == "obj":
        np.savez(path, images=kw["images"], labels=y)  # pickled object array
    else:
        np.savez(path, **kw)
    with pytest.raises(DataError, match=match) as exc:
        load_data(path)
    assert "\n" not in str(exc.value)


def test_npz_missing_and_corrupt_file(tmp_path):
    with pytest.raises(DataFileNotFoundError):
        load_data(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_data(tmp_path / "bad.npz")


def test_cli_extract_on_arrays(tmp_path, mnist_arrays, capsys):
    x, y = mnist_arrays
    np.savez(tmp_path / "d.npz", images=np.repeat(x[:, None], 3, axis=1), labels=y)
    model = build_model(ModelSpec(convs=(ConvSpec(4, 5),), input_shape=(3, 32, 32),
                                  name="rgb"), seed=0)
    save_checkpoint(model, tmp_path / "m.safetensors")
    args = ["extract", str(tmp_path / "m.safetensors"), "--data", str(tmp_path / "d.npz"),
            "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(args) == 2
    assert "pass --resize 32 32" in capsys.readouterr().err
    assert main(args + ["--resize", "32", "32", "--mean", "0.13", "--std", "0.31"]) == 0
    meta = json.loads((tmp_path / "o" / "rules.json").read_text())["meta"]
    assert meta["data_transform"]["mean"] == [0.13] and meta["data_transform"]["resize"] == [32, 32]
