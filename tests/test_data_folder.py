"""Image folders (ImageFolder layout), Datasets and DataLoaders as data.

Every folder is built on the fly from the embedded MNIST digits (RGB PNGs of 32x32, grey
JPEGs of 28x28): no download.
"""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cnn2logic.cli import main
from cnn2logic.data import (STREAM_BATCH, DataSplits, FolderImages, ImageSet, ImageTransform,
                            LazyImages, StreamSet, as_splits, load_data, spread_indices)
from cnn2logic.errors import DataError
from cnn2logic.export.logic import program_text
from cnn2logic.extract.config import ExtractConfig
from cnn2logic.extract.run import extract_model
from cnn2logic.model.spec import ConvSpec, ModelSpec, build_model, save_checkpoint
from cnn2logic.names import asp_string
from cnn2logic.units import capture


def digits(core_embedded, per_class: int, split: str = "train"):
    """``per_class`` images of each digit (uint8 28x28) and their labels, in a fixed order."""
    s = core_embedded.train if split == "train" else core_embedded.test
    idx = np.concatenate([np.flatnonzero(s.labels == c)[:per_class] for c in range(10)])
    return (s.images[idx, 0] * 255).round().astype(np.uint8), s.labels[idx]


def write_images(root, images, labels, names=None, size=32, mode="RGB", ext="png"):
    names = names or [f"digit{c}" for c in range(10)]
    for i, (img, y) in enumerate(zip(images, labels)):
        p = root / names[y] / f"{i:04d}.{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(img)
        if size != 28:
            im = im.resize((size, size), Image.BILINEAR)
        im.convert(mode).save(p)
    return root


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory, core_embedded):
    """DIR/train/<class>/*.png and DIR/test/<class>/*.png, RGB 32x32."""
    root = tmp_path_factory.mktemp("rgb")
    write_images(root / "train", *digits(core_embedded, 6))
    write_images(root / "test", *digits(core_embedded, 2, "test"))
    return root


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(ModelSpec(convs=(ConvSpec(6, 5),), input_shape=(3, 32, 32),
                                  name="rgb"), seed=0)
    path = tmp_path_factory.mktemp("model") / "rgb.safetensors"
    save_checkpoint(model, path)
    return model, path


def test_train_test_layout_streams_rgb_images(rgb_folder):
    d = load_data(rgb_folder)
    assert isinstance(d.train, StreamSet) and isinstance(d.train.dataset, FolderImages)
    assert (len(d.train), len(d.test)) == (60, 20)
    assert d.train.classes == tuple(f"digit{c}" for c in range(10))
    assert d.train.images.shape == (60, 3, 32, 32)
    x = d.train.images[:2]
    assert x.shape == (2, 3, 32, 32) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert np.array_equal(d.train.labels, np.repeat(np.arange(10), 6))
    assert d.transform["layout"] == "train/test" and d.transform["channels"] == 3


def test_train_size_on_a_class_ordered_folder_keeps_every_class(rgb_folder):
    """A folder lists class after class: --train-size takes images of every class in
    proportion (the first 20 would be digits 0-3 only), and the same ones each time."""
    full = load_data(rgb_folder)
    d = load_data(rgb_folder, train_size=20, test_size=10)
    assert np.array_equal(np.bincount(d.train.labels, minlength=10), np.full(10, 2))
    assert np.array_equal(np.bincount(d.test.labels, minlength=10), np.ones(10, int))
    assert np.array_equal(d.train.images[:], full.train.images[d.train.dataset.indices])
    again = load_data(rgb_folder, train_size=20, test_size=10)
    assert d.train.dataset.indices == again.train.dataset.indices
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)  # uneven classes: largest remainders
    assert np.bincount(labels[spread_indices(labels, 5)]).tolist() == [3, 1, 1]


def test_folder_is_read_in_batches_never_as_one_tensor(rgb_folder, monkeypatch):
    """Bounded memory: the split holds file paths, its DataLoader yields batches, and
    extraction never asks for all images at once."""
    d = load_data(rgb_folder, batch_size=16)
    seen = []
    real = FolderImages.__getitem__

    def whole(*_a, **_k):
        raise AssertionError("the image folder was loaded as one tensor")

    monkeypatch.setattr(StreamSet, "tensors", whole)
    monkeypatch.setattr(LazyImages, "__array__", whole)
    monkeypatch.setattr(FolderImages, "__getitem__",
                        lambda self, i: seen.append(i) or real(self, i))
    model = build_model(ModelSpec(convs=(ConvSpec(6, 5),), input_shape=(3, 32, 32),
                                  pool="global-max", name="rgbgap"), seed=0)
    for method in ("rulelist", "approximation"):
        extract_model(model, d, ExtractConfig(method=method, order=2), progress=False)
    assert seen  # the images were decoded, one item at a time
    assert all(isinstance(s, tuple) and isinstance(s[0], str) for s in d.train.dataset.samples)
    loader = d.train.loader()
    assert loader.batch_size == 16 and not loader.drop_last
    sizes = [len(x) for x, _ in d.train.batches()]
    assert sizes == [16, 16, 16, 12]
    assert load_data(rgb_folder).train.batch_size == STREAM_BATCH


def test_single_folder_holdout_is_stratified_seeded_and_grey(tmp_path, core_embedded):
    images, labels = digits(core_embedded, 10)
    write_images(tmp_path / "d", images, labels, size=28, mode="L", ext="jpg")
    a, b = load_data(tmp_path / "d"), load_data(tmp_path / "d")
    assert a.train.images.shape[1:] == (1, 28, 28)
    assert (len(a.train), len(a.test)) == (80, 20)
    assert np.bincount(a.test.labels, minlength=10).tolist() == [2] * 10
    tr = {p for p, _ in a.train.dataset.samples}
    te = {p for p, _ in a.test.dataset.samples}
    assert not tr & te
    assert a.train.dataset.samples == b.train.dataset.samples  # seeded: the same split
    assert a.transform["holdout"]["fraction"] == 0.2


def test_transform_resize_crop_normalise(rgb_folder):
    d = load_data(rgb_folder, transform=ImageTransform(resize=(40, 40), center_crop=36,
                                                        mean=(0.5,), std=(0.25,)))
    x = d.train.images[:4]
    assert x.shape == (4, 3, 36, 36)
    assert float(x.min()) < 0  # normalised
    raw = load_data(rgb_folder, transform=ImageTransform(channels=1)).train.images[:1]
    assert raw.shape == (1, 1, 32, 32)
    with pytest.raises(DataError, match="--mean/--std give 2 values"):
        load_data(rgb_folder, transform=ImageTransform(mean=(0.1, 0.2), std=(1.0, 1.0)))
    with pytest.raises(DataError, match="both --mean and --std"):
        ImageTransform(mean=(0.5,))
    with pytest.raises(DataError, match="positive"):
        ImageTransform(mean=(0.5,), std=(0.0,))
    with pytest.raises(DataError, match="smaller than --center-crop"):
        load_data(rgb_folder, transform=ImageTransform(center_crop=40))


def test_normalisation_recorded_in_meta(rgb_folder, rgb_model):
    model, _ = rgb_model
    t = ImageTransform(mean=(0.1307,) * 3, std=(0.3081,) * 3)
    r = extract_model(model, load_data(rgb_folder, transform=t), ExtractConfig(),
                      progress=False)
    meta = r.rules.meta["data_transform"]
    assert meta["mean"] == [0.1307] * 3 and meta["std"] == [0.3081] * 3
    assert meta["kind"] == "image_folder" and meta["resize"] is None
    # an untrained network is near chance: the warning suggests the preprocessing options
    if r.metrics["network_accuracy"] < 0.15:
        assert any("prepared as in training" in w and "mean=" in w for w in r.warnings)


def test_cli_extract_on_a_folder_is_byte_identical(rgb_folder, rgb_model, tmp_path, capsys):
    _, ckpt = rgb_model
    outs = []
    for i, workers in enumerate((0, 2)):
        out = tmp_path / f"o{i}"
        assert main(["extract", str(ckpt), "--data", str(rgb_folder), "--out", str(out),
                     "--no-progress", "--workers", str(workers), "--batch-size", "7"]) == 0
        outs.append((out / "rules.json").read_bytes())
    assert outs[0] == outs[1]
    meta = json.loads(outs[0])["meta"]
    assert meta["data_transform"]["layout"] == "train/test"


def test_model_expecting_another_size_names_resize(rgb_model, tmp_path, core_embedded,
                                                   capsys):
    _, ckpt = rgb_model
    write_images(tmp_path / "d28", *digits(core_embedded, 3), size=28, mode="L")
    code = main(["extract", str(ckpt), "--data", str(tmp_path / "d28"), "--out",
                 str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "--resize 32 32" in err and "--channels 3" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["extract", str(ckpt), "--data", str(tmp_path / "d28"), "--out",
                 str(tmp_path / "o"), "--no-progress", "--resize", "32", "--channels",
                 "3"]) == 0


def test_corrupt_file_one_line_error_or_skipped(tmp_path, core_embedded, rgb_model, capsys):
    root = write_images(tmp_path / "d", *digits(core_embedded, 5))
    (root / "digit3" / "garbage.png").write_bytes(b"not a png at all")
    good = (root / "digit4" / "0020.png").read_bytes()
    (root / "digit4" / "cut.png").write_bytes(good[:60])  # a valid header, cut pixels
    with pytest.raises(DataError, match=r"garbage\.png: cannot read image.*--skip-bad-images"):
        load_data(root)
    d = load_data(root, skip_bad_images=True)
    assert d.transform["skipped_images"] == 2
    assert sorted(d.transform["skipped_files"]) == ["digit3/garbage.png", "digit4/cut.png"]
    assert len(d.train) + len(d.test) == 50
    _, ckpt = rgb_model
    assert main(["extract", str(ckpt), "--data", str(root), "--out", str(tmp_path / "o"),
                 "--no-progress", "--skip-bad-images"]) == 0
    assert "skipped 2 unreadable image file(s)" in capsys.readouterr().err


def test_file_failing_only_when_decoded_names_it(tmp_path, core_embedded):
    root = write_images(tmp_path / "d", *digits(core_embedded, 5))
    good = (root / "digit4" / "0020.png").read_bytes()
    (root / "digit4" / "cut.png").write_bytes(good[:60])
    d = load_data(root)  # the header reads: found only when the pixels are decoded
    with pytest.raises(DataError, match=r"cut\.png: cannot read image") as exc:
        for _ in d.train.batches():
            pass
        for _ in d.test.batches():
            pass
    assert "\n" not in str(exc.value)


def test_worker_error_comes_back_as_one_line(tmp_path, core_embedded):
    root = write_images(tmp_path / "d", *digits(core_embedded, 5))
    good = (root / "digit0" / "0000.png").read_bytes()
    for c in range(10):
        (root / f"digit{c}" / "cut.png").write_bytes(good[:60])
    d = load_data(root, workers=1)
    with pytest.raises(DataError, match=r"cut\.png: cannot read image") as exc:
        for _ in d.train.batches():
            pass
    assert "\n" not in str(exc.value) and "Traceback" not in str(exc.value)


@pytest.mark.parametrize("case, match", [
    ("empty", "no class folders; expected"),
    ("flat", r"lie directly in it: put each class's images in"),
    ("empty_class", r"digit9: no images"),
    ("train_only", r"has train/ but no test/"),
    ("test_extra", r"class folder 'other' is not in"),
    ("sizes", r"images differ in size.*pass --resize H W"),
    ("modes", r"grey and colour images mixed.*--channels 3"),
])
def test_bad_folders_name_the_fix(tmp_path, core_embedded, case, match):
    images, labels = digits(core_embedded, 5)
    root = tmp_path / "d"
    root.mkdir()
    if case == "flat":
        Image.fromarray(images[0]).save(root / "a.png")
    elif case == "empty_class":
        write_images(root, images, labels)
        for p in (root / "digit9").iterdir():
            p.unlink()
    elif case in ("train_only", "test_extra"):
        write_images(root / "train", images, labels)
        if case == "test_extra":
            write_images(root / "test", images[:3], np.zeros(3, int), names=["other"])
    elif case == "sizes":
        write_images(root, images[:25], labels[:25], size=32)
        write_images(root, images[25:], labels[25:], size=28)
    elif case == "modes":
        write_images(root, images[:25], labels[:25], mode="L")
        write_images(root, images[25:], labels[25:], mode="RGB")
    with pytest.raises(DataError, match=match) as exc:
        load_data(root)
    assert "\n" not in str(exc.value)
    if case == "sizes":
        assert load_data(root, transform=ImageTransform(resize=30)).train.images.shape[2:] \
            == (30, 30)
    if case == "modes":
        assert load_data(root, transform=ImageTransform(channels=3)).train.image_shape[0] == 3


def test_hostile_class_names_survive_to_the_program(tmp_path, core_embedded):
    images, labels = digits(core_embedded, 4)
    keep = labels < 4
    names = ["a b", '"x"', unicodedata.normalize("NFD", "ünï"), ":-"]
    root = write_images(tmp_path / "d", images[keep], labels[keep], names=names)
    (root / ".hidden").mkdir()  # hidden folders are not classes
    d = load_data(root)
    assert d.train.classes == tuple(sorted(unicodedata.normalize("NFC", n) for n in names))
    model = build_model(ModelSpec(convs=(ConvSpec(6, 5),), input_shape=(3, 32, 32),
                                  classes=4, name="rgb4"), seed=0)
    r = extract_model(model, d, ExtractConfig(), progress=False)
    assert [h.name for h in r.rules.heads] == list(d.train.classes)
    text = program_text(r.rules, format="lp")
    for name in d.train.classes:  # every original name, quoted, in the program
        assert asp_string(name) in text
    clingo = pytest.importorskip("clingo")
    ctl = clingo.Control(["--warn=none"])
    ctl.add("base", [], text)  # the sanitised identifiers parse
    ctl.ground([("base", [])])


class Digits(Dataset):
    """A user's own Dataset: (image tensor, label) items."""

    def __init__(self, images, labels, as_pil=False):
        self.images, self.labels, self.as_pil = images, labels, as_pil
        self.classes = [str(c) for c in range(10)]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i]).resize((32, 32)).convert("RGB")
        if self.as_pil:
            return img, int(self.labels[i])
        return torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous(), int(self.labels[i])


def test_datasets_and_dataloaders_in_the_python_api(core_embedded, rgb_model):
    model, _ = rgb_model
    xtr, ytr = digits(core_embedded, 6)
    xte, yte = digits(core_embedded, 2, "test")
    train, test = Digits(xtr, ytr), Digits(xte, yte, as_pil=True)
    r_ds = extract_model(model, (train, test), ExtractConfig(), progress=False)
    # the same images in memory give the same rules
    mem = as_splits((train, test))
    arrays = DataSplits(ImageSet(mem.train.tensors()[0].numpy(), ytr, mem.train.classes, "tr"),
                        ImageSet(mem.test.tensors()[0].numpy(), yte, mem.test.classes, "te"),
                        "memory")
    r_mem = extract_model(model, arrays, ExtractConfig(), progress=False)
    assert r_ds.rules.to_dict()["rules"] == r_mem.rules.to_dict()["rules"]
    assert r_ds.metrics["fidelity"] == r_mem.metrics["fidelity"]
    loaders = (DataLoader(train, batch_size=5), DataLoader(test, batch_size=3))
    r_dl = extract_model(model, loaders, ExtractConfig(), progress=False)
    assert r_dl.rules.to_dict()["rules"] == r_mem.rules.to_dict()["rules"]
    u_ds = capture(model, "pool", train, progress=False)
    u_t = capture(model, "pool", arrays.train.images, progress=False)
    assert np.allclose(u_ds.values, u_t.values, atol=1e-6)
    with pytest.raises(DataError, match="shuffle=False"):
        as_splits((DataLoader(train, shuffle=True), test))
    one = as_splits(train)  # one Dataset: the seeded, stratified hold-out
    assert (len(one.train), len(one.test)) == (50, 10)
    with pytest.raises(DataError, match="cannot read data of type"):
        as_splits(42)


def test_visualize_and_report_take_datasets(core_embedded, rgb_model, tmp_path):
    from cnn2logic.cli.report import build_report
    from cnn2logic.visual.kernels import visualize

    model, _ = rgb_model
    xtr, ytr = digits(core_embedded, 3)
    xte, yte = digits(core_embedded, 1, "test")
    train, test = Digits(xtr, ytr), Digits(xte, yte)
    vis = visualize(model, "pool", train, samples=2, top=2, progress=False)
    assert vis.top_images.shape[:2] == (6, 2)
    rules = extract_model(model, (train, test), ExtractConfig(), progress=False).rules
    out = build_report(model, rules.replace(meta={k: v for k, v in rules.meta.items()
                                                   if k not in ("metrics", "confusion")}),
                       (train, test), tmp_path / "r.html", samples=2, top=2, progress=False)
    assert "computed by the report on test" in out.read_text()  # measured, streamed


def test_cli_capture_shards_of_a_folder_merge(rgb_folder, rgb_model, tmp_path, capsys):
    from cnn2logic.units import BinaryCodes

    _, ckpt = rgb_model
    for i in range(2):
        assert main(["capture", str(ckpt), "--data", str(rgb_folder), "--shard", f"{i}/2",
                     "--out", str(tmp_path / f"s{i}.npz"), "--no-progress",
                     "--workers", str(i)]) == 0
    assert main(["merge", str(tmp_path / "s0.npz"), str(tmp_path / "s1.npz"), "--threshold",
                 "minmax", "--out", str(tmp_path / "codes.npz")]) == 0
    codes = BinaryCodes.load(tmp_path / "codes.npz")
    assert len(codes.labels) == 60 and codes.classes[0] == "digit0"
    assert np.array_equal(codes.labels, np.repeat(np.arange(10), 6))
