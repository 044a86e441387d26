"""Data loading: the embedded subset, IDX directories, and clear errors naming the file."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from cnn2logic.data import load_data, read_idx
from cnn2logic.errors import DataError, DataFileNotFoundError

from .conftest import full_mnist_or_skip


def write_idx(path, array, gz=False):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def make_idx_dir(tmp_path, n_train=20, n_test=10, gz=False, layout="."):
    d = tmp_path / layout
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    write_idx(d / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_train, 28, 28)), gz)
    write_idx(d / f"train-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_train), gz)
    write_idx(d / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 28, 28)), gz)
    write_idx(d / f"t10k-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_test), gz)
    return tmp_path


def test_embedded_split_is_fixed_stratified_and_disjoint(core_embedded):
    d = core_embedded
    assert (len(d.train), len(d.test)) == (4000, 1000)
    assert d.train.images.shape[1:] == (1, 28, 28) and d.train.images.dtype == np.float32
    assert 0.0 <= d.train.images.min() and d.train.images.max() <= 1.0
    counts = np.bincount(d.test.labels, minlength=10)
    assert counts.min() >= 90  # stratified: every digit ~20 % held out
    again = load_data("embedded")
    assert np.array_equal(again.test.labels, d.test.labels)
    train_rows = {r.tobytes() for r in d.train.images[:500]}
    assert not any(r.tobytes() in train_rows for r in d.test.images)


def test_subsets_hold_every_class(tmp_path):
    # the embedded splits take the classes in turn: a subset holds every digit
    d = load_data("embedded", train_size=1000, test_size=200)
    assert np.bincount(d.train.labels, minlength=10).tolist() == [100] * 10
    assert np.bincount(d.test.labels, minlength=10).tolist() == [20] * 10
    # arrays ordered by class are subset in proportion, others by their first images
    labels = np.repeat(np.arange(4), 5)
    images = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1).repeat(4, 2).repeat(4, 3)
    np.savez(tmp_path / "sorted.npz", train_images=images, train_labels=labels,
             test_images=images, test_labels=labels)
    sub = load_data(tmp_path / "sorted.npz", train_size=8).train
    assert sub.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    shuffled = np.random.default_rng(0).permutation(20)
    np.savez(tmp_path / "mixed.npz", train_images=images[shuffled],
             train_labels=labels[shuffled], test_images=images, test_labels=labels)
    assert load_data(tmp_path / "mixed.npz", train_size=8).train.labels.tolist() == \
        labels[shuffled][:8].tolist()


def test_sharded_size_on_class_ordered_idx_is_refused(tmp_path):
    from cnn2logic.data import open_split

    root = make_idx_dir(tmp_path)
    write_idx(root / "train-labels-idx1-ubyte", np.sort(np.arange(20) % 10))
    assert open_split(root, "train").total == 20  # the whole split is fine
    with pytest.raises(DataError, match="ordered by class"):
        open_split(root, "train", 10)


@pytest.mark.parametrize("gz, layout", [(False, "."), (True, "."), (True, "MNIST/raw")])
def test_idx_directory_plain_gzip_and_torchvision_layout(tmp_path, gz, layout):
    root = make_idx_dir(tmp_path, gz=gz, layout=layout)
    d = load_data(root)
    assert (len(d.train), len(d.test)) == (20, 10)
    assert d.train.images.shape == (20, 1, 28, 28)
    assert load_data(root, train_size=5).train.images.shape[0] == 5


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        load_data(tmp_path / "nope")
    root = make_idx_dir(tmp_path)
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataFileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_data(root)


def test_count_mismatch_names_the_file(tmp_path):
    root = make_idx_dir(tmp_path)
    write_idx(root / "train-labels-idx1-ubyte", np.zeros(19))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: 19 labels but"):
        load_data(root)


def test_wrong_shape_and_corrupt_files(tmp_path):
    root = make_idx_dir(tmp_path)
    write_idx(root / "train-images-idx3-ubyte", np.zeros((20, 784)))
    with pytest.raises(DataError, match="train-images-idx3-ubyte: expected \\(n, rows, cols\\)"):
        load_data(root)
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x10abc")
    with pytest.raises(DataError, match="bad-idx: header says"):
        read_idx(bad)
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(DataError, match="junk: not an IDX file"):
        read_idx(tmp_path / "junk")


def test_full_mnist_when_present():
    d = load_data(full_mnist_or_skip(), train_size=50000)
    assert (len(d.train), len(d.test)) == (50000, 10000)
    assert np.bincount(d.test.labels).tolist()[:3] == [980, 1135, 1032]
