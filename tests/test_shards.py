"""Sharded activation capture, merging, per-class extraction jobs, several processes."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn2logic.cli import main
from cnn2logic.data import DataSplits, load_data
from cnn2logic.errors import ActivationError, DataError, ExtractionError, RulesFileError
from cnn2logic.model.spec import save_checkpoint
from cnn2logic.extract import ExtractConfig, extract_model
from cnn2logic.extract.layers import output_layer
from cnn2logic.rules import load_rules
from cnn2logic.data import iter_batches
from cnn2logic.extract.parts import extract_part, merge_rule_parts, parse_classes
from cnn2logic.units import (ActivationShard, BinaryCodes, capture, capture_shard,
                             capture_stream, codes_for, fit_stream_thresholds, fit_thresholds,
                             load_thresholds, merge_shards, parse_shard, save_thresholds,
                             shard_range)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def byo_shard_setup(core_embedded, tmp_path_factory):
    """paper1 trained briefly, saved; 1,200 training and 300 test images."""
    from cnn2logic.model.training import TrainConfig, train

    data = DataSplits(core_embedded.train.subset(1200), core_embedded.test.subset(300), "embedded")
    model, _ = train("paper1", data, TrainConfig(iterations=150, seed=0, progress=False))
    d = tmp_path_factory.mktemp("byo_shards")
    save_checkpoint(model, d / "model.safetensors")
    return model, data, d


def test_shard_ranges_partition_the_split():
    for total in (1, 7, 10, 101):
        for count in range(1, min(total, 6) + 1):
            ranges = [shard_range(total, i, count) for i in range(count)]
            assert ranges[0][0] == 0 and ranges[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            sizes = [b - a for a, b in ranges]
            assert max(sizes) - min(sizes) <= 1
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "x/2", "1", "-1/3"):
        with pytest.raises(DataError):
            parse_shard(bad)


def test_half_shards_merge_to_the_single_process_codes(byo_shard_setup):
    model, data, _ = byo_shard_setup
    ref, _, _ = codes_for(model, "pool", data.train, threshold_method="half", progress=False,
                          id_prefix="train")
    x, y = data.train.tensors()
    parts = [capture_shard(model, "pool", x, y, shard=(i, 3), threshold="half",
                           batch_size=128) for i in (2, 0, 1)]
    assert all(p.kind == "bits" for p in parts)
    codes, thresholds = merge_shards(parts)
    assert thresholds.method == "half"
    assert np.array_equal(codes.bits, ref.bits)
    assert np.array_equal(codes.labels, ref.labels)
    assert np.array_equal(codes.predictions, ref.predictions)
    assert codes.ids == ref.ids


@pytest.mark.parametrize("method", ["minmax", "mean", "eric", "median"])
def test_raw_unit_shards_fit_thresholds_over_all_images(byo_shard_setup, tmp_path, method):
    model, data, _ = byo_shard_setup
    x, y = data.train.tensors()
    paths = []
    for i in range(4):
        part = capture_shard(model, "act1", x, y, shard=(i, 4), reduce="mean")
        assert part.kind == "units"
        paths.append(tmp_path / f"s{i}.npz")
        part.save(paths[-1])
    codes, fitted = merge_shards(paths, threshold=method)
    units = capture(model, "act1", x, reduce="mean", progress=False)
    whole = fit_thresholds(units, method)
    assert np.allclose(fitted.values, whole.values, rtol=1e-5, atol=1e-6)
    agree = (codes.bits == whole.apply(units)).mean()
    assert agree > 0.999  # float64 running sums vs float32 means: at most ties flip
    if method in ("minmax", "median"):
        assert agree == 1.0


def test_two_pass_streaming_thresholds(byo_shard_setup):
    model, data, _ = byo_shard_setup
    x, y = data.train.tensors()
    batches = [(x[s:s + 100], y[s:s + 100]) for s in range(0, len(x), 100)]
    th = fit_stream_thresholds(model, "act1", iter(batches), "minmax", reduce="max")
    shard = capture_stream(model, "act1", iter(batches), reduce="max", thresholds=th)
    units = capture(model, "act1", x, progress=False)
    ref = fit_thresholds(units, "minmax")
    assert np.allclose(th.values, ref.values, atol=1e-6)
    assert np.array_equal(shard.data, ref.apply(units))
    with pytest.raises(ActivationError, match="median"):
        fit_stream_thresholds(model, "act1", iter(batches), "median")


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                         *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_streamed_idx_batches_match_load_data(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 37), ("t10k", 11)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    d = load_data(tmp_path)
    got = list(iter_batches(tmp_path, "train", 5, 30, batch_size=8))
    assert [len(b[0]) for b in got] == [8, 8, 8, 1]
    assert np.array_equal(torch.cat([b[0] for b in got]).numpy(), d.train.images[5:30])
    assert np.array_equal(torch.cat([b[1] for b in got]).numpy(), d.train.labels[5:30])
    test = list(iter_batches(tmp_path, "test", batch_size=100))
    assert np.array_equal(test[0][0].numpy(), d.test.images)


def test_merge_refuses_inconsistent_shards(byo_shard_setup, tmp_path):
    model, data, _ = byo_shard_setup
    x, y = data.train.tensors()
    a = [capture_shard(model, "pool", x, y, shard=(i, 3), threshold="half") for i in range(3)]
    with pytest.raises(ActivationError, match="cover"):
        merge_shards(a[:2])
    with pytest.raises(ActivationError, match="repeat"):
        merge_shards([a[0], a[0], a[1], a[2]])
    other_layer = capture_shard(model, "act1", x, y, shard=(1, 3), threshold="half")
    with pytest.raises(ActivationError, match="layer"):
        merge_shards([a[0], other_layer, a[2]])
    raw = capture_shard(model, "pool", x, y, shard=(1, 3))
    with pytest.raises(ActivationError, match="kind"):
        merge_shards([a[0], raw, a[2]])
    th = fit_thresholds(capture(model, "pool", x, progress=False), "mean")
    other_th = capture_shard(model, "pool", x, y, shard=(1, 3), thresholds=th)
    with pytest.raises(ActivationError, match="thresholds"):
        merge_shards([a[0], other_th, a[2]])
    from dataclasses import replace

    foreign = replace(a[1], info={**a[1].info, "model_digest": "another"})
    with pytest.raises(ActivationError, match="model digest"):
        merge_shards([a[0], foreign, a[2]])
    with pytest.raises(ActivationError, match="needs statistics"):
        capture_shard(model, "pool", x, y, shard=(0, 3), threshold="minmax")
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ActivationError, match="not a cnn2logic activation shard"):
        ActivationShard.load(bad)


def test_thresholds_files_round_trip(tmp_path, byo_shard_setup):
    model, data, _ = byo_shard_setup
    units = capture(model, "act1", data.train.tensors()[0], progress=False)
    th = fit_thresholds(units, "eric")
    save_thresholds(th, tmp_path / "t.json", layer="act1", reduce="max", names=units.names)
    back, info = load_thresholds(tmp_path / "t.json")
    assert np.array_equal(back.values, th.values) and back.params == th.params
    assert info["layer"] == "act1"
    with pytest.raises(ActivationError, match="no thresholds"):
        (tmp_path / "x.json").write_text("{}")
        load_thresholds(tmp_path / "x.json")


def test_per_class_parts_merge_to_the_whole_extraction(byo_shard_setup):
    model, data, _ = byo_shard_setup
    config = ExtractConfig(order=3)
    whole = extract_model(model, data, config, progress=False)
    W, b = output_layer(model, "out", 10)
    train = whole.train_codes
    jobs = [parse_classes(f"{i}/3", train.classes) for i in range(3)]
    assert sorted(c for j in jobs for c in j) == sorted(train.classes)
    parts = [extract_part(W, b, train, job, order=3) for job in jobs]
    merged = merge_rule_parts(parts[::-1], train, whole.test_codes)
    assert merged.rules == whole.rules.rules
    assert merged.default == whole.rules.default
    assert merged.meta["metrics"]["rule_accuracy"] == whole.metrics["rule_accuracy"]
    with pytest.raises(RulesFileError, match="no part extracted"):
        merge_rule_parts(parts[:2], train)
    with pytest.raises(RulesFileError, match="more than one part"):
        merge_rule_parts(parts + parts[:1], train)
    with pytest.raises(RulesFileError, match="other settings"):
        merge_rule_parts([parts[0], parts[1], extract_part(W, b, train, jobs[2], order=2)], train)
    flipped = BinaryCodes(~train.bits, train.variables, train.classes, train.labels,
                          train.predictions, train.ids)
    with pytest.raises(RulesFileError, match="other codes"):
        merge_rule_parts(parts, flipped)


def test_parse_classes():
    heads = tuple(str(c) for c in range(10))
    assert parse_classes("3", heads) == ("3",)
    assert parse_classes("0-2,7", heads) == ("0", "1", "2", "7")
    assert parse_classes("1/4", heads) == ("1", "5", "9")
    for bad in ("12", "a-b", ""):
        with pytest.raises(ExtractionError):
            parse_classes(bad, heads)


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "cnn2logic", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_capture_in_several_processes_then_merge_and_extract_by_class(byo_shard_setup, tmp_path):
    """Three capture processes at once, merge, then per-class jobs and a rule merge."""
    model, data, d = byo_shard_setup
    ckpt = d / "model.safetensors"
    procs = [_cli("capture", str(ckpt), "--data", "embedded", "--size", "1200", "--shard",
                  f"{i}/3", "--out", str(tmp_path / f"train-{i}.npz"), "--no-progress")
             for i in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    assert "shard 1/3" in results[1][0]
    # raw units: merge fits minmax over all shards and writes the thresholds
    rc = main(["merge", *[str(tmp_path / f"train-{i}.npz") for i in range(3)], "--threshold",
               "minmax", "--out", str(tmp_path / "codes-train.npz"), "--thresholds-out",
               str(tmp_path / "thresholds.json")])
    assert rc == 0
    codes = BinaryCodes.load(tmp_path / "codes-train.npz")
    ref, units, th = codes_for(model, "pool", data.train, threshold_method="minmax",
                               progress=False, id_prefix="train")
    assert np.array_equal(codes.bits, ref.bits) and np.array_equal(codes.predictions,
                                                                   ref.predictions)
    # the test split is binarised with the training thresholds, in two processes
    procs = [_cli("capture", str(ckpt), "--split", "test", "--size", "300", "--shard", f"{i}/2",
                  "--thresholds", str(tmp_path / "thresholds.json"),
                  "--out", str(tmp_path / f"test-{i}.npz"), "--no-progress") for i in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    assert main(["merge", str(tmp_path / "test-0.npz"), str(tmp_path / "test-1.npz"),
                 "--out", str(tmp_path / "codes-test.npz")]) == 0
    test_codes = BinaryCodes.load(tmp_path / "codes-test.npz")
    ref_test, _, _ = codes_for(model, "pool", data.test, th, progress=False)
    assert np.array_equal(test_codes.bits, ref_test.bits)
    # per-class extraction jobs, then the rule merge
    for i in range(2):
        assert main(["extract-part", str(ckpt), "--codes", str(tmp_path / "codes-train.npz"),
                     "--classes", f"{i}/2", "--order", "3", "--out",
                     str(tmp_path / f"part-{i}.json"), "--no-progress"]) == 0
    assert main(["merge", str(tmp_path / "part-0.json"), str(tmp_path / "part-1.json"),
                 "--codes", str(tmp_path / "codes-train.npz"), "--test-codes",
                 str(tmp_path / "codes-test.npz"), "--out", str(tmp_path / "rules.json")]) == 0
    merged = load_rules(tmp_path / "rules.json")
    whole = extract_model(model, data, ExtractConfig(order=3, threshold="minmax"),
                          progress=False)
    assert merged.rules == whole.rules.rules and merged.default == whole.rules.default
    assert merged.meta["metrics"]["fidelity"] == whole.metrics["fidelity"]


def test_cli_merge_errors_are_one_line(tmp_path, capsys, byo_shard_setup):
    model, data, _ = byo_shard_setup
    x, y = data.train.tensors()
    capture_shard(model, "pool", x, y, shard=(0, 2), threshold="half").save(tmp_path / "a.npz")
    rc = main(["merge", str(tmp_path / "a.npz"), "--out", str(tmp_path / "c.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and "cover" in err and err.count("\n") == 1
    (tmp_path / "p.json").write_text(json.dumps({"format": "cnn2logic-rules"}))
    rc = main(["merge", str(tmp_path / "p.json"), "--out", str(tmp_path / "r.json")])
    assert rc == 2 and "--codes" in capsys.readouterr().err
    rc = main(["capture", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "s.npz")])
    assert rc == 2 and "not found" in capsys.readouterr().err


def test_torchrun_data_parallel_capture(byo_shard_setup, tmp_path):
    """examples/distributed_capture.py under torchrun: 2 processes, all_reduce'd thresholds."""
    model, data, d = byo_shard_setup
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(REPO / "examples" / "distributed_capture.py"), str(d / "model.safetensors"),
         "--size", "1200", "--threshold", "minmax", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    codes = BinaryCodes.load(tmp_path / "codes-train.npz")
    ref, _, th = codes_for(model, "pool", data.train, threshold_method="minmax", progress=False,
                           id_prefix="train")
    assert np.array_equal(codes.bits, ref.bits)
    got, _ = load_thresholds(tmp_path / "thresholds.json")
    assert np.allclose(got.values, th.values, atol=1e-6)
