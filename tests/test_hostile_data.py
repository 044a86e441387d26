"""Hostile and broken data: IDX files, codes and shard .npz files, data that do not fit.

Two kinds of tests keep issue 10's data part fixed:

* Hypothesis fuzzing of the readers (IDX, codes, shards): mutated bytes or arrays of a
  valid file give a valid result or a ``Cnn2LogicError`` with a one-line message, never
  another exception;
* a CLI corpus: every broken input through the subcommands that read it gives exit code
  2, exactly one stderr line, no traceback, and leaves every file (inputs, outputs) as it
  was.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn2logic.cli import main
from cnn2logic.data import read_idx
from cnn2logic.errors import Cnn2LogicError
from cnn2logic.model.spec import ConvSpec, ModelSpec, build_model, save_checkpoint
from cnn2logic.units import ActivationShard, BinaryCodes

N_TRAIN, N_TEST = 24, 12


def idx_bytes(array, code=0x08, dtype=np.uint8) -> bytes:
    array = np.asarray(array)
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    return header + np.asarray(array, dtype=dtype).tobytes()


def write_idx_dir(d: Path, train_images=None, train_labels=None, test_images=None,
                  test_labels=None, gz=False) -> Path:
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    parts = {
        "train-images-idx3-ubyte": train_images if train_images is not None
        else idx_bytes(rng.integers(0, 256, (N_TRAIN, 28, 28))),
        "train-labels-idx1-ubyte": train_labels if train_labels is not None
        else idx_bytes(np.arange(N_TRAIN) % 10),
        "t10k-images-idx3-ubyte": test_images if test_images is not None
        else idx_bytes(rng.integers(0, 256, (N_TEST, 28, 28))),
        "t10k-labels-idx1-ubyte": test_labels if test_labels is not None
        else idx_bytes(np.arange(N_TEST) % 10),
    }
    for name, data in parts.items():
        if gz:
            (d / (name + ".gz")).write_bytes(gzip.compress(data, mtime=0))
        else:
            (d / name).write_bytes(data)
    return d


def one_line_error(exc: Cnn2LogicError) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text


# -- fixtures: tiny data, a tiny model, valid outputs to break -------------------------

@pytest.fixture(scope="session")
def hd_valid(tmp_path_factory):
    """A valid IDX directory, paper1-shaped model, its extraction, codes and a shard."""
    root = tmp_path_factory.mktemp("hd_valid")
    data = write_idx_dir(root / "data")
    model = build_model("paper1", seed=0)
    save_checkpoint(model, root / "model.safetensors")
    other = build_model(ModelSpec(convs=(ConvSpec(6, 27),), name="six"), seed=0)
    save_checkpoint(other, root / "six.safetensors")
    nan_model = build_model("paper1", seed=0)
    for prm in nan_model.parameters():
        prm.data.fill_(float("nan"))
    save_checkpoint(nan_model, root / "nan.safetensors")
    assert main(["extract", str(root / "model.safetensors"), "--data", str(data),
                 "--out", str(root / "run"), "--no-progress"]) == 0
    assert main(["capture", str(root / "model.safetensors"), "--data", str(data),
                 "--out", str(root / "shard0.npz"), "--shard", "0/1",
                 "--no-progress"]) == 0
    return root


def _snapshot(*dirs: Path) -> dict[str, str]:
    out = {}
    for d in dirs:
        for p in sorted(Path(d).rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[str(p)] = "dir"
    return out


def assert_refused(argv, capsys, *watched: Path) -> str:
    """Run the CLI: exit 2, one stderr line, no traceback, no file changed or created."""
    capsys.readouterr()
    before = _snapshot(*watched)
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert _snapshot(*watched) == before
    return err


# -- Hypothesis: the readers never raise anything but a one-line Cnn2LogicError ---------

_FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def _mutate(data: bytes, edits, cut: int | None, extra: bytes) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        if buf:
            buf[pos % len(buf)] = value
    if cut is not None:
        buf = buf[:cut % (len(buf) + 1)]
    return bytes(buf) + extra


_edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6)
_cut = st.none() | st.integers(0, 10**6)
_extra = st.binary(max_size=8)

_VALID_IDX = idx_bytes(np.arange(3 * 4 * 4).reshape(3, 4, 4) % 256)
_VALID_IDX_F = idx_bytes(np.linspace(0, 1, 12).reshape(3, 4), 0x0D, ">f4")
_VALID_LABELS_I4 = idx_bytes(np.array([0, 1, 70000]), 0x0C, ">i4")


@_FUZZ
@given(which=st.sampled_from([_VALID_IDX, _VALID_IDX_F, _VALID_LABELS_I4]),
       gz=st.booleans(), edits=_edits, cut=_cut, extra=_extra)
def test_fuzz_idx_reader(tmp_path, which, gz, edits, cut, extra):
    raw = gzip.compress(which, mtime=0) if gz else which
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(_mutate(raw, edits, cut, extra))
    try:
        arr = read_idx(path)
    except Cnn2LogicError as exc:
        one_line_error(exc)
    else:
        assert isinstance(arr, np.ndarray)
        if arr.dtype.kind == "f":
            assert np.isfinite(arr).all()


def _valid_codes() -> BinaryCodes:
    from cnn2logic.rules import Variable

    bits = np.array([[1, 0, 1], [0, 1, 1]], bool)
    return BinaryCodes(bits, tuple(Variable(f"k{i}", "pool", i) for i in range(3)),
                       ("a", "b"), np.array([0, 1]), np.array([1, -1]), ("x", "y"))


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _save_npz(arrays, compressed: bool) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


@pytest.fixture(scope="module")
def hd_npz(tmp_path_factory):
    d = tmp_path_factory.mktemp("hd_npz")
    _valid_codes().save(d / "codes.npz")
    import torch
    from torch import nn

    from cnn2logic.units import capture_shard
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Sigmoid(), nn.AdaptiveMaxPool2d(1),
                        nn.Flatten(), nn.Linear(3, 2))
    x, y = torch.rand(6, 1, 6, 6, generator=torch.Generator().manual_seed(0)), \
        torch.arange(6) % 2
    capture_shard(net, "1", x, y, shard=(0, 2), threshold="half").save(d / "bits.npz")
    capture_shard(net, "1", x, y, shard=(1, 2)).save(d / "units.npz")
    return {name: _npz_arrays(d / f"{name}.npz") for name in ("codes", "bits", "units")}


def _load_any(path: Path, name: str):
    return (BinaryCodes if name == "codes" else ActivationShard).load(path)


@_FUZZ
@given(name=st.sampled_from(["codes", "bits", "units"]), compressed=st.booleans(),
       edits=_edits, cut=_cut, extra=_extra)
def test_fuzz_npz_bytes(tmp_path, hd_npz, name, compressed, edits, cut, extra):
    path = tmp_path / "f.npz"
    path.write_bytes(_mutate(_save_npz(hd_npz[name], compressed), edits, cut, extra))
    try:
        _load_any(path, name)
    except Cnn2LogicError as exc:
        one_line_error(exc)


_arrays = st.one_of(
    st.just(None),  # delete the key
    st.builds(np.array, st.integers(-2**40, 2**40)),
    st.builds(np.array, st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False)),
    st.builds(np.array, st.text(max_size=5)),
    st.builds(lambda v: np.array(v, np.int64), st.lists(st.integers(-3, 70000), max_size=9)),
    st.builds(lambda v: np.array(v, np.float32),
              st.lists(st.floats(width=32, allow_nan=True, allow_subnormal=False), max_size=9)),
    st.builds(lambda v: np.array(v, np.uint8).reshape(-1, 1),
              st.lists(st.integers(0, 255), max_size=6)),
    st.builds(lambda v: np.array(v, np.uint8).reshape(1, -1),
              st.lists(st.integers(0, 255), max_size=6)),
    st.builds(lambda v: np.array(v), st.lists(st.text(max_size=3), max_size=4)),
    st.builds(lambda: np.zeros((0,))),
)


@_FUZZ
@given(name=st.sampled_from(["codes", "bits", "units"]), data=st.data(),
       changes=st.integers(1, 3))
def test_fuzz_npz_arrays(tmp_path, hd_npz, name, data, changes):
    arrays = dict(hd_npz[name])
    for _ in range(changes):
        key = data.draw(st.sampled_from(sorted(arrays)) if arrays else st.just("x"))
        value = data.draw(_arrays)
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    path = tmp_path / "f.npz"
    path.write_bytes(_save_npz(arrays, False))
    try:
        _load_any(path, name)
    except Cnn2LogicError as exc:
        one_line_error(exc)


def test_valid_npz_round_trip(tmp_path, hd_npz):
    codes = _valid_codes()
    codes.save(tmp_path / "c.npz")
    again = BinaryCodes.load(tmp_path / "c.npz")
    assert np.array_equal(again.bits, codes.bits) and again.ids == codes.ids
    assert again.variables == codes.variables and again.classes == codes.classes
    for name in ("bits", "units"):
        (tmp_path / f"{name}.npz").write_bytes(_save_npz(hd_npz[name], True))
        assert len(ActivationShard.load(tmp_path / f"{name}.npz")) == 3


# -- the CLI over a corpus of broken inputs --------------------------------------------

def _gz_corrupt(data: bytes) -> bytes:
    raw = bytearray(gzip.compress(data, mtime=0))
    for i in range(20, min(len(raw) - 10, 60)):
        raw[i] ^= 0x5A
    return bytes(raw)


def _broken_data(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    good = idx_bytes(rng.integers(0, 256, (N_TRAIN, 28, 28)))
    nan_images = rng.random((N_TRAIN, 28, 28)).astype(">f4")
    nan_images[3, 4, 5] = np.nan
    cases = {
        "gzip-corrupt": dict(train_images=_gz_corrupt(good)),
        "zero-images": dict(test_images=idx_bytes(np.zeros((0, 28, 28))),
                            test_labels=idx_bytes(np.zeros(0))),
        "huge-label": dict(train_labels=idx_bytes(np.r_[np.arange(N_TRAIN - 1) % 10,
                                                        2_000_000_000], 0x0C, ">i4")),
        "header-vs-size": dict(train_images=good[:-28 * 28]),
        "nan-pixels": dict(train_images=idx_bytes(nan_images, 0x0D, ">f4")),
        "14x14": dict(train_images=idx_bytes(rng.integers(0, 256, (N_TRAIN, 14, 14))),
                      test_images=idx_bytes(rng.integers(0, 256, (N_TEST, 14, 14)))),
        "labels-above-outputs": dict(train_labels=idx_bytes(np.arange(N_TRAIN) % 12)),
    }
    out = {}
    for name, parts in cases.items():
        d = write_idx_dir(root / name, **parts)
        if name == "gzip-corrupt":  # the corrupt file is gzipped, under the .gz name
            (d / "train-images-idx3-ubyte").unlink()
            (d / "train-images-idx3-ubyte.gz").write_bytes(parts["train_images"])
        out[name] = d
    return out


@pytest.fixture(scope="session")
def hd_corpus(hd_valid, tmp_path_factory):
    root = tmp_path_factory.mktemp("hd_corpus")
    data = _broken_data(root / "data")
    npz = root / "npz"
    npz.mkdir()
    valid_codes = (hd_valid / "run" / "codes-test.npz").read_bytes()
    arrays = _npz_arrays(hd_valid / "run" / "codes-test.npz")
    (npz / "empty.npz").write_bytes(b"")
    (npz / "truncated.npz").write_bytes(valid_codes[:len(valid_codes) // 2])
    (npz / "text.npz").write_bytes(b"not an npz\n")
    for name, change in {
        "fewer-ids": {"ids": arrays["ids"][:-1]},
        "float-bits": {"bits": arrays["bits"].astype(np.float32)},
        "kernel-count": {"n_kernels": np.array(20)},
        "twenty-classes": {"classes": np.array([str(c) for c in range(20)])},
    }.items():
        (npz / f"{name}.npz").write_bytes(_save_npz({**arrays, **change}, True))
    shard = _npz_arrays(hd_valid / "shard0.npz")
    (npz / "shard-truncated.npz").write_bytes((hd_valid / "shard0.npz").read_bytes()[:300])
    (npz / "shard-indices.npz").write_bytes(
        _save_npz({**shard, "indices": shard["indices"] + 10**6}, True))
    return data, npz


DATA_CASES = ["gzip-corrupt", "zero-images", "huge-label", "header-vs-size", "nan-pixels",
              "14x14", "labels-above-outputs"]


@pytest.mark.parametrize("case", DATA_CASES)
def test_cli_extract_and_capture_refuse_broken_data(hd_valid, hd_corpus, tmp_path, capsys,
                                                    case):
    data = hd_corpus[0][case]
    model = hd_valid / "model.safetensors"
    err = assert_refused(["extract", model, "--data", data, "--out", tmp_path / "x",
                          "--no-progress"], capsys, data, tmp_path, hd_valid)
    if case == "14x14":
        assert "(1, 14, 14)" in err and "(1, 28, 28)" in err
    split = "test" if case == "zero-images" else "train"
    assert_refused(["capture", model, "--data", data, "--split", split,
                    "--out", tmp_path / "s.npz", "--no-progress"], capsys, data, tmp_path)


@pytest.mark.parametrize("case", ["gzip-corrupt", "14x14", "huge-label"])
def test_cli_demo_refuses_broken_data(hd_corpus, tmp_path, capsys, case):
    data = hd_corpus[0][case]
    assert_refused(["demo", "--data", data, "--out", tmp_path / "demo", "--iterations", "1",
                    "--no-progress"], capsys, data, tmp_path)


def test_cli_sizes_above_the_data(hd_valid, tmp_path, capsys):
    model, data = hd_valid / "model.safetensors", hd_valid / "data"
    err = assert_refused(["extract", model, "--data", data, "--train-size", "1000",
                          "--out", tmp_path / "x", "--no-progress"], capsys, tmp_path, data)
    assert "1000" in err and str(N_TRAIN) in err
    assert_refused(["capture", model, "--data", data, "--size", "1000",
                    "--out", tmp_path / "s.npz", "--no-progress"], capsys, tmp_path, data)


def test_cli_nan_checkpoint(hd_valid, tmp_path, capsys):
    err = assert_refused(["extract", hd_valid / "nan.safetensors", "--data",
                          hd_valid / "data", "--out", tmp_path / "x", "--no-progress"],
                         capsys, tmp_path, hd_valid)
    assert "NaN" in err


NPZ_CASES = ["empty", "truncated", "text", "fewer-ids", "float-bits", "kernel-count"]


@pytest.mark.parametrize("case", NPZ_CASES + ["twenty-classes"])
def test_cli_export_refuses_broken_activations(hd_valid, hd_corpus, tmp_path, capsys, case):
    npz = hd_corpus[1] / f"{case}.npz"
    err = assert_refused(["export", hd_valid / "run" / "rules.json", "--activations", npz,
                          "--out", tmp_path / "p.lp"], capsys, tmp_path, hd_corpus[1],
                         hd_valid / "run")
    assert str(npz) in err


@pytest.mark.parametrize("case", NPZ_CASES)
def test_cli_extract_part_and_merge_refuse_broken_codes(hd_valid, hd_corpus, tmp_path, capsys,
                                                        case):
    npz = hd_corpus[1] / f"{case}.npz"
    assert_refused(["extract-part", hd_valid / "model.safetensors", "--codes", npz,
                    "--classes", "0", "--out", tmp_path / "part.json"], capsys, tmp_path,
                   hd_corpus[1])
    assert_refused(["merge", npz, "--out", tmp_path / "codes.npz"], capsys, tmp_path,
                   hd_corpus[1])


@pytest.mark.parametrize("case", ["shard-truncated", "shard-indices"])
def test_cli_merge_refuses_broken_shards(hd_corpus, tmp_path, capsys, case):
    assert_refused(["merge", hd_corpus[1] / f"{case}.npz", "--out", tmp_path / "codes.npz"],
                   capsys, tmp_path, hd_corpus[1])


def test_cli_report_refuses_a_model_with_other_kernels(hd_valid, tmp_path, capsys):
    err = assert_refused(["report", hd_valid / "six.safetensors", hd_valid / "run" / "rules.json",
                          "--data", hd_valid / "data", "--out", tmp_path / "r.html",
                          "--no-progress"], capsys, tmp_path, hd_valid)
    assert "6" in err and "10" in err
