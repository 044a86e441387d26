"""cnn2logic tune: fine-tuning a CNN so its decision is a compact program (fast, embedded)."""

from __future__ import annotations

import copy
from dataclasses import replace
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn2logic.cli import main
from cnn2logic.data import load_data
from cnn2logic.extract import ExtractConfig, extract_model
from cnn2logic.model import build_from_factory, load_checkpoint, load_model, save_checkpoint
from cnn2logic.model.logic_head import LogicUnits, RuleListHead
from cnn2logic.model.spec import CHECKPOINT_SPEC_KEY, predict_logits, read_safetensors
from cnn2logic.model.training import TrainConfig, train
from cnn2logic.rules import Head, Variable
from cnn2logic.model import tune_loop, tune_setup
from cnn2logic.model.tuning import CollapseError, TuneConfig, save_tuned, tune_model

REPO = Path(__file__).resolve().parents[1]
FACTORY = f"{REPO / 'examples' / 'relu_bn_cnn.py'}:make_net"
SIZES = ["--train-size", "400", "--test-size", "100"]
# one round against the list: each refit of the list costs seconds even on 400 images (the
# doctest of cnn2logic.model.tuning runs the default two rounds)
FAST = TuneConfig(iterations=40, check_every=10, rounds=1, progress=False)


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
                     + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The first fifth of each embedded split as an IDX directory (the splits take the
    classes in turn: every class, 80 / 20 images each)."""
    full = load_data("embedded")
    d = tmp_path_factory.mktemp("idx")
    for split, (img, lab) in (("train", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")),
                              ("test", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))):
        part = getattr(full, split)
        n = len(part) // 5
        _write_idx(d / img, np.round(part.images[:n, 0] * 255))
        _write_idx(d / lab, part.labels[:n])
    return d


@pytest.fixture(scope="module")
def data(data_dir):
    return load_data(data_dir)


@pytest.fixture(scope="module")
def paper1(data):
    net, _ = train("paper1", data, TrainConfig(iterations=150, progress=False))
    return net


@pytest.fixture(scope="module")
def tuned(paper1, data):
    return tune_model(paper1, data, config=FAST)


def _every_image_agrees(model, data, layer="pool", output="out"):
    res = extract_model(model, data, ExtractConfig(layer=layer, output=output), progress=False)
    x, _ = data.test.tensors()
    net = predict_logits(model, x).argmax(1).numpy()
    rules = res.rules.predict_index(res.test_codes.bits)
    return res, bool((net == rules).all())


def test_tune_gives_a_small_program_that_is_the_network(tuned, data):
    model, m = tuned
    assert m["rules"] <= 30 and m["literals"] <= 300 and m["rules"] >= 1
    assert m["iterations"] == 40 and m["max_rule_literals"] is None  # kernel bits: no cap
    res, agree = _every_image_agrees(model, data)
    assert agree and res.metrics["fidelity"] == 1.0
    assert res.rules.meta["rulelist"] == {"embedded": True}
    assert res.rules.meta["rule_kind"] == "exact"
    assert len(res.rules.rules) == m["rules"]
    # each rule records the share of training images it decides, and agrees there with
    # the network (the list is the network's output layer)
    shares = [r.stats["support"] for r in res.rules.rules]
    assert 0 < sum(shares) <= 1 + 1e-5 and all(s > 0 for s in shares)
    assert all(r.stats["precision"] == 1.0 for r in res.rules.rules)


def test_a_cap_on_the_longest_rule_holds_in_the_tuned_program(paper1, data):
    model, m = tune_model(paper1, data, config=replace(FAST, max_rule_literals=2))
    res, agree = _every_image_agrees(model, data)
    assert agree and res.rules.rules and max(len(r.body) for r in res.rules.rules) <= 2
    with pytest.raises(Exception, match="max_rule_literals must be an integer ≥ 1"):
        TuneConfig(max_rule_literals=0)


def test_original_is_left_alone(paper1, tuned):
    assert not any(isinstance(m, (LogicUnits, RuleListHead)) for m in paper1.modules())


def test_reload_is_bit_exact_and_pickle_free(tuned, data, tmp_path):
    model, _ = tuned
    path = tmp_path / "t.safetensors"
    save_tuned(model, path, layer="pool", output="out")
    again = load_checkpoint(path)
    x, _ = data.test.tensors()
    assert torch.equal(predict_logits(again, x), predict_logits(model, x))
    state, meta = read_safetensors(path)
    assert "logic" in json.loads(meta[CHECKPOINT_SPEC_KEY])
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    # the weights-only .pt form holds the same
    pt = tmp_path / "t.pt"
    torch.save({"state_dict": model.state_dict(), "spec": meta[CHECKPOINT_SPEC_KEY]}, pt)
    assert torch.equal(predict_logits(load_checkpoint(pt), x), predict_logits(model, x))
    # deterministic bytes
    path2 = tmp_path / "t2.safetensors"
    save_tuned(model, path2, layer="pool", output="out")
    assert path.read_bytes() == path2.read_bytes()


def test_factory_model_end_to_end(data, tmp_path):
    kwargs = {"kernels": 8, "width": 4}
    torch.manual_seed(0)
    net, _ = train(build_from_factory(FACTORY, kwargs), data,
                   TrainConfig(iterations=20, progress=False))
    model, m = tune_model(net, data, "gap", "fc", FAST)
    path = tmp_path / "f.safetensors"
    save_tuned(model, path, layer="gap", output="fc", factory=FACTORY, factory_kwargs=kwargs)
    again = load_model(path, factory=FACTORY, factory_kwargs=kwargs)
    path2 = tmp_path / "f2.safetensors"
    save_tuned(model, path2, layer="gap", output="fc", factory=FACTORY, factory_kwargs=kwargs)
    assert path.read_bytes() == path2.read_bytes()
    with pytest.raises(Exception, match="--factory"):
        load_model(path)  # names the factory to pass
    x, _ = data.test.tensors()
    assert torch.equal(predict_logits(again, x), predict_logits(model, x))
    res, agree = _every_image_agrees(again, data, "gap", "fc")
    assert agree and res.metrics["fidelity"] == 1.0 and m["rules"] <= 30


def test_cli_end_to_end(paper1, data_dir, tmp_path, capsys):
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(paper1, ckpt)
    out = tmp_path / "tuned.safetensors"
    assert main(["tune", str(ckpt), "--out", str(out), "--data", str(data_dir),
                 "--iterations", "30", "--rounds", "1", "--no-progress"]) == 0
    assert "rules" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "tuned.metrics.json").read_text())
    assert metrics["iterations"] == 30 and metrics["rules"] <= 30
    rules_dir = tmp_path / "rules"
    assert main(["extract", str(out), "--out", str(rules_dir), "--data", str(data_dir),
                 "--no-progress"]) == 0
    doc = json.loads((rules_dir / "rules.json").read_text())
    assert doc["meta"]["metrics"]["fidelity"] == 1.0
    assert len(doc["rules"]) == metrics["rules"]


def _dead(paper1):
    dead = copy.deepcopy(paper1)
    with torch.no_grad():
        dead.conv1.bias.fill_(-1e4)  # every sigmoid unit is 0 on every image
    return dead


def test_collapse_is_detected_and_refused(paper1, data):
    with pytest.raises(CollapseError, match="collapsed"):
        tune_model(_dead(paper1), data, config=FAST)


def test_collapse_cli_writes_nothing(paper1, data_dir, tmp_path, capsys):
    ckpt = tmp_path / "dead.safetensors"
    save_checkpoint(_dead(paper1), ckpt)
    out = tmp_path / "t.safetensors"
    code = main(["tune", str(ckpt), "--out", str(out), "--data", str(data_dir),
                 "--iterations", "30", "--rounds", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "collapsed" in err
    # the cause, when the original itself gives one class to nearly every image
    assert "train it before tuning" in err
    assert not out.exists()


def test_large_accuracy_drop_is_warned_about(paper1, data_dir, tmp_path, capsys):
    ckpt = tmp_path / "p1.safetensors"
    save_checkpoint(paper1, ckpt)
    out = tmp_path / "t.safetensors"
    # a two-rule program cannot keep ten digits apart
    assert main(["tune", str(ckpt), "--out", str(out), "--data", str(data_dir),
                 "--iterations", "20", "--rounds", "1", "--max-rules", "2",
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "warning: the tuned network is" in err and "less accurate" in err
    assert out.exists()


def test_dead_minority_is_recentred_or_tolerated(paper1, data):
    net = copy.deepcopy(paper1)
    with torch.no_grad():
        net.conv1.bias[:3] = -1e4  # three of ten units dead: no collapse
    model, m = tune_model(net, data, config=FAST)
    assert m["recoveries"] == 0 and m["rules"] >= 1


def test_constant_units_recentred(paper1, data):


    model = copy.deepcopy(paper1)
    x, y = data.train.tensors()
    units, selected = tune_setup.wrap_units(model, "pool", "out", x, y.numpy(), 0)
    run = tune_loop.TuneRun(model, units, x, y, predict_logits(paper1, x), FAST, selected)
    with torch.no_grad():
        units.thresholds[:2] = 10.0  # above every unit: constant 0 bits
    run._check()
    bits, _ = run.bits()
    assert run.recentred >= 2 and 0 < bits[:, 0].mean() < 1


@pytest.mark.parametrize("extra, message", [
    (["--layer", "nope"], "no layer named 'nope'"),
    (["--output", "act1"], "not nn.Linear"),
    (["--layer", "act1"], "does not read the units"),
    (["--warm-share", "2"], "warm_share"),
    (["--bit-noise", "-1"], "bit_noise"),
    (["--levels", "9"], "levels must be an integer in [1, 8], got 9"),
    (["--data", "/nonexistent/dir"], ""),
])
def test_bad_inputs_one_line_exit_2(paper1, tmp_path, capsys, extra, message):
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(paper1, ckpt)
    code = main(["tune", str(ckpt), "--out", str(tmp_path / "t.safetensors"), *SIZES,
                 "--iterations", "5", "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err


def test_bad_model_files_one_line(tmp_path, capsys):
    assert main(["tune", str(tmp_path / "missing.safetensors"), "--out",
                 str(tmp_path / "t.safetensors"), "--no-progress"]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    assert main(["tune", "x.safetensors", "--out", str(tmp_path / "d"), "--no-progress"]) == 2
    assert "directory" in capsys.readouterr().err


def test_already_tuned_is_refused(tuned, data):
    with pytest.raises(Exception, match="already tuned"):
        tune_model(tuned[0], data, config=FAST)


def test_head_soft_equals_hard_on_bits():
    head = RuleListHead.from_rules(4, 3, [((1, 1, 0, 0), None, 0), ((1, -1, 1, 1), 2, 2)],
                                   default=1)
    bits = torch.tensor([[a, b, c, d] for a in (0, 1) for b in (0, 1) for c in (0, 1)
                         for d in (0, 1)], dtype=torch.float32)
    hard = head.eval()(bits).argmax(1)
    soft = head.train()(bits).argmax(1)
    assert torch.equal(hard, soft)
    expect = [0 if a and b else 2 if (a + (1 - b) + c + d) >= 2 else 1
              for a, b, c, d in bits.int().tolist()]
    assert hard.tolist() == expect
    rs = head.ruleset([Variable(f"k{i}") for i in range(4)], [Head(str(c)) for c in range(3)])
    assert rs.predict_index(bits.numpy().astype(bool)).tolist() == expect


def test_config_checks():
    for bad in ({"iterations": 0}, {"lr": -1.0}, {"distill": 1.5}, {"target": "x"},
                {"max_kernels": -1}, {"class_kernels": 1.5}, {"bit_noise": float("nan")},
                {"warm_head": "deep"}, {"levels": 0}, {"levels": 9}, {"map_bits": "mean"}):
        with pytest.raises(Exception):
            TuneConfig(**bad)
    assert np.isfinite(TuneConfig().lr)


def test_select_kernels_finds_the_informative_ones():
    rng = np.random.default_rng(0)
    bits = rng.random((2000, 12)) < 0.5
    # the target is a function of kernels 7 and 2 only (XOR-like: neither alone predicts it)
    target = bits[:, 7].astype(int) * 2 + (bits[:, 7] ^ bits[:, 2]).astype(int)
    chosen = tune_setup.select_kernels(bits, target, 2)
    assert sorted(chosen) == [2, 7]
    every = tune_setup.select_kernels(bits, target, 20)  # more than there are: each once
    assert sorted(every) == list(range(12)) and every[:2] == chosen


def test_max_kernels_limits_what_the_program_reads(data, tmp_path):
    kwargs = {"kernels": 8, "width": 4}
    torch.manual_seed(0)
    net, _ = train(build_from_factory(FACTORY, kwargs), data,
                   TrainConfig(iterations=20, progress=False))
    config = TuneConfig(iterations=30, check_every=10, rounds=1, progress=False, max_kernels=3,
                        class_kernels=2, warm_head="mlp", bit_noise=0.5)
    model, m = tune_model(net, data, "gap", "fc", config)
    assert len(m["selected_kernels"]) == 3 and m["kernels"] == 8
    assert 1 <= m["kernels_read"] <= 3
    head = dict(model.named_modules())["fc"]
    read = set(np.flatnonzero((head.signs != 0).any(0).numpy()).tolist())
    assert read <= set(m["selected_kernels"])
    res, agree = _every_image_agrees(model, data, "gap", "fc")
    assert agree and res.metrics["fidelity"] == 1.0
    # the same configuration gives the same network
    again, m2 = tune_model(net, data, "gap", "fc", config)
    x, _ = data.test.tensors()
    assert torch.equal(predict_logits(again, x), predict_logits(model, x))
    assert m2["selected_kernels"] == m["selected_kernels"]
    units = dict(model.named_modules())["gap"]
    assert units.noise == 0.0  # the training-only noise is not handed back
    assert not any(isinstance(mod, tune_loop.WarmHead) for mod in model.modules())


def test_unknown_warm_head_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tune", "x.safetensors", "--out", str(tmp_path / "t.safetensors"),
              "--warm-head", "deep"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and "invalid choice: 'deep'" in err[-1]


def test_levels_give_a_thermometer_code_by_hand():
    units = LogicUnits(torch.nn.Identity(), torch.tensor([[0.2, 0.5], [1.0, 2.0]]),
                       torch.ones(2))
    assert (units.kernels, units.levels, units.n_bits) == (2, 2, 4)
    assert units.unit_names == ("k1_1", "k1_2", "k2_1", "k2_2")
    x = torch.tensor([[0.3, 1.5], [0.6, 0.0], [0.5, 2.0]])
    assert units.eval()(x).tolist() == [[1, 0, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    # maps keep their positions: (n, kernels, h, w) -> (n, kernels * levels, h, w)
    maps = torch.tensor([[[[0.3]], [[1.5]]]])
    assert units(maps).reshape(-1).tolist() == [1, 0, 1, 0]
    # training: the hard bits forward, the surrogate's gradient backward, per level
    units.train()
    x.requires_grad_(True)
    units(x)[:, 0].sum().backward()  # k1_1 only: no gradient reaches kernel 2
    assert x.grad[:, 1].abs().sum() == 0 and (x.grad[:, 0] > 0).all()
    with pytest.raises(Exception, match="thresholds"):
        LogicUnits(torch.nn.Identity(), torch.zeros(2, 9), torch.ones(2))


def test_levels_end_to_end_program_is_the_network(paper1, data, data_dir, tmp_path):
    # straight-through bits only (one list fit: a list over 20 bits costs ~13 s here; the
    # rounds against the list are tested on one level)
    config = TuneConfig(iterations=30, check_every=10, warm_share=1.0, progress=False,
                        levels=2)
    model, m = tune_model(paper1, data, config=config)
    assert (m["kernels"], m["levels"], m["bits"]) == (10, 2, 20)
    assert 1 <= m["kernels_read"] <= 10 and m["kernels_read"] <= m["bits_read"] <= 20
    units = dict(model.named_modules())["pool"]
    # cut at the quantiles of each kernel: a thermometer (sorted) code
    assert (units.thresholds.diff(dim=1) >= 0).all()
    path = tmp_path / "t2.safetensors"
    save_tuned(model, path, layer="pool", output="out")
    again = load_checkpoint(path)
    x, _ = data.test.tensors()
    assert torch.equal(predict_logits(again, x), predict_logits(model, x))
    save_tuned(model, tmp_path / "t2b.safetensors", layer="pool", output="out")
    assert path.read_bytes() == (tmp_path / "t2b.safetensors").read_bytes()
    res, agree = _every_image_agrees(again, data)
    assert agree and res.metrics["fidelity"] == 1.0
    assert [v.name for v in res.rules.variables][:4] == ["k1_1", "k1_2", "k2_1", "k2_2"]
    # the CLI: extract names the levels, and the exported program answers as the network
    out = tmp_path / "rules"
    assert main(["extract", str(path), "--out", str(out), "--data", str(data_dir),
                 "--no-progress"]) == 0
    doc = json.loads((out / "rules.json").read_text())
    assert doc["meta"]["metrics"]["fidelity"] == 1.0
    assert {var for r in doc["rules"] for var, _positive in r["body"]} <= {
        f"k{k}_{lv}" for k in range(1, 11) for lv in (1, 2)}
    # the report draws each bit's kernel from the units the bits threshold (hard bits have
    # no gradient): every variable the rules read gets its kernel's pictures
    html = tmp_path / "report.html"
    assert main(["report", str(path), str(out / "rules.json"), "--data", str(data_dir),
                 "--samples", "1", "--out", str(html), "--no-progress"]) == 0
    text = html.read_text()
    assert "data:image/png" in text and "no maximising image" not in text


def test_bits_of_a_tuned_layer_are_paired_with_the_kernels_they_threshold():
    from cnn2logic.visual import kernel_index, units_layer

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    net[0] = LogicUnits(net[0], torch.zeros(2, 2), torch.ones(2))
    assert units_layer(net, "0") == "0.inner"
    bits = [Variable(n, "0", i) for i, n in enumerate(("k1_1", "k1_2", "k2_1", "k2_2"))]
    names = ("k1", "k2")
    assert kernel_index(bits, "0.inner", names) == {"k1_1": 0, "k1_2": 0, "k2_1": 1,
                                                    "k2_2": 1}
    assert kernel_index([Variable("k2", "0", 1)], "0.inner", names) == {"k2": 1}
    # the layer itself (visuals drawn before units_layer existed): by name, not index
    assert kernel_index(bits[:2], "0", names) == {"k1_1": 0, "k1_2": 0}


def test_levels_on_a_factory_model_with_class_kernels(data):
    kwargs = {"kernels": 8, "width": 4}
    torch.manual_seed(0)
    net, _ = train(build_from_factory(FACTORY, kwargs), data,
                   TrainConfig(iterations=20, progress=False))
    config = TuneConfig(iterations=30, check_every=10, rounds=1, progress=False, levels=2,
                        max_kernels=3, class_kernels=2)
    model, m = tune_model(net, data, "gap", "fc", config)
    head = dict(model.named_modules())["fc"]
    read = {j // 2 for j in np.flatnonzero((head.signs != 0).any(0).numpy())}
    assert read <= set(m["selected_kernels"]) and m["bits"] == 16
    res, agree = _every_image_agrees(model, data, "gap", "fc")
    assert agree and res.metrics["fidelity"] == 1.0


def test_ternary_warm_head_reads_counted_bits(paper1, data):
    # the straight-through phase reads alpha_c * {-1, 0, 1} weights; their gradient reaches
    # the real weights unchanged (straight-through)
    lin = torch.nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, -1.0, 0.5, -0.5], [0.0, 1.0, 1.0, 2.0]]))
        lin.bias.zero_()
    head = tune_loop.WarmHead(lin, [0, 1, 2, 3], TuneConfig(warm_head="ternary"),
                              torch.ones(4))
    b = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    out = head(b)
    # row 0: 2*1 - 2*1 = 0; row 1: mean|w| 1, kept 1, 1, 2 (alpha 4/3): 4/3 * 2
    assert torch.allclose(out, torch.tensor([[0.0, 8.0 / 3.0]]))
    out.sum().backward()
    assert torch.equal(lin.weight.grad, b.expand(2, 4))
    model, m = tune_model(paper1, data, config=TuneConfig(
        iterations=40, check_every=10, rounds=1, progress=False, warm_head="ternary"))
    res, agree = _every_image_agrees(model, data)
    assert m["rules"] >= 1 and agree and res.metrics["fidelity"] == 1.0


HIDDEN_HEAD = '''
import torch
from torch import nn


def make():
    """A user's nn.Sequential: names 0..9, a Linear-ReLU-Linear head after the pool."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 5),
                         nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 16),
                         nn.ReLU(), nn.Linear(16, 10))


class Doubled(nn.Module):
    """The same, but its forward changes the head's result (a function, not a layer)."""

    def __init__(self):
        super().__init__()
        self.net = make()

    def forward(self, x):
        return self.net(x) * 2


def doubled():
    return Doubled()


def flat():
    """The usual small CNN: the head reads the last pool's maps flattened (8 x 4 x 4)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 5),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 16),
                         nn.ReLU(), nn.Linear(16, 10))


def wide_flat():
    """The same with a larger last map (12 x 10 x 10 values: more than a bit each)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 12, 3),
                         nn.ReLU(), nn.Identity(), nn.Flatten(), nn.Linear(1200, 16),
                         nn.ReLU(), nn.Linear(16, 10))


class Tutorial(nn.Module):
    """PyTorch's tutorial net: one pooling module called after each convolution."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1, self.fc2 = nn.Linear(256, 32), nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def tutorial():
    torch.manual_seed(0)
    return Tutorial()


class Reused(nn.Module):
    """One ReLU module after two convolutions of the same output shape."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act, self.fc = nn.ReLU(), nn.Linear(4, 10)

    def forward(self, x):
        x = self.act(self.c2(self.act(self.c1(x))))
        return self.fc(x.amax((2, 3)))


def reused():
    torch.manual_seed(0)
    return Reused()
'''


@pytest.fixture(scope="module")
def hidden_head(data_dir, tmp_path_factory):
    """A trained user CNN whose head has a hidden layer (factory file, checkpoint)."""
    d = tmp_path_factory.mktemp("hidden")
    (d / "net.py").write_text(HIDDEN_HEAD)
    ckpt = d / "net.safetensors"
    assert main(["train", "--factory", f"{d / 'net.py'}:make", "--out", str(ckpt),
                 "--data", str(data_dir), "--iterations", "150", "--no-progress"]) == 0
    return d, ckpt


def test_cli_any_cnn_with_a_hidden_head_without_layer_flags(hidden_head, data_dir, tmp_path,
                                                            capsys):
    d, ckpt = hidden_head
    factory = f"{d / 'net.py'}:make"
    capsys.readouterr()
    # extract finds the kernel layer and the class layer itself, and says which
    assert main(["extract", str(ckpt), "--factory", factory, "--out", str(tmp_path / "r0"),
                 "--data", str(data_dir), "--no-progress"]) == 0
    assert "kernel layer '5', read by '9'" in capsys.readouterr().err
    meta = json.loads((tmp_path / "r0" / "rules.json").read_text())["meta"]
    assert (meta["layer"], meta["output_layer"]) == ("5", "9")
    # tune replaces the head from its first linear layer on; the rest is bypassed
    out = tmp_path / "tuned.safetensors"
    assert main(["tune", str(ckpt), "--factory", factory, "--out", str(out),
                 "--data", str(data_dir), "--iterations", "40", "--rounds", "1",
                 "--no-progress"]) == 0
    m = json.loads((tmp_path / "tuned.metrics.json").read_text())
    assert (m["layer"], m["output"], m["bypassed"]) == ("5", "7", ["8", "9"])
    again = load_model(out, factory=factory)
    assert [type(again.get_submodule(n)).__name__ for n in ("5", "7", "8", "9")] == [
        "LogicUnits", "RuleListHead", "Bypassed", "Bypassed"]
    assert main(["extract", str(out), "--factory", factory, "--out", str(tmp_path / "r"),
                 "--data", str(data_dir), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "r" / "rules.json").read_text())
    assert doc["meta"]["metrics"]["fidelity"] == 1.0 and len(doc["rules"]) == m["rules"]
    # the reloaded network is the program on every test image
    data = load_data(data_dir)
    res, agree = _every_image_agrees(again, data, "5", "7")
    assert agree and res.rules.meta["rule_kind"] == "exact"


@pytest.mark.parametrize("builder, extra, message", [
    ("doubled", [], "changes what follows its layer 'net.7'"),
    ("make", ["--class-kernels", "3"], "--class-kernels needs an output layer that gives"),
])
def test_cli_a_head_that_cannot_be_bypassed_is_one_line(hidden_head, data_dir, tmp_path,
                                                        capsys, builder, extra, message):
    d, ckpt = hidden_head
    if builder == "doubled":  # the same weights under the wrapper's names
        from safetensors.torch import load_file, save_file
        ckpt2 = tmp_path / "doubled.safetensors"
        save_file({f"net.{k}": v for k, v in load_file(ckpt).items()}, str(ckpt2))
        ckpt = ckpt2
    out = tmp_path / "t.safetensors"
    code = main(["tune", str(ckpt), "--factory", f"{d / 'net.py'}:{builder}", "--out",
                 str(out), "--data", str(data_dir), "--iterations", "5", "--no-progress",
                 *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


@pytest.fixture(scope="module")
def flat_heads(hidden_head, data_dir):
    """Trained CNNs whose first linear layer reads the flattened maps: ``flat`` (8 x 4 x 4
    values) and ``wide_flat`` (12 x 10 x 10)."""
    d, _ = hidden_head
    got = {}
    for name in ("flat", "wide_flat"):
        ckpt = d / f"{name}.safetensors"
        assert main(["train", "--factory", f"{d / 'net.py'}:{name}", "--out", str(ckpt),
                     "--data", str(data_dir), "--iterations", "150", "--no-progress"]) == 0
        got[name] = (f"{d / 'net.py'}:{name}", ckpt)
    return got


def _tune_flat(factory, ckpt, data_dir, tmp_path, layer="5", output="7"):
    out = tmp_path / "tuned.safetensors"
    assert main(["tune", str(ckpt), "--factory", factory, "--out", str(out),
                 "--data", str(data_dir), "--iterations", "40", "--rounds", "1",
                 "--no-progress"]) == 0
    m = json.loads((tmp_path / "tuned.metrics.json").read_text())
    assert main(["extract", str(out), "--factory", factory, "--out", str(tmp_path / "r"),
                 "--data", str(data_dir), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "r" / "rules.json").read_text())
    assert doc["meta"]["metrics"]["fidelity"] == 1.0 and doc["meta"]["rulelist"]["embedded"]
    again = load_model(out, factory=factory)
    res, agree = _every_image_agrees(again, load_data(data_dir), layer, output)
    assert agree and res.rules.meta["rule_kind"] == "exact"
    x = load_data(data_dir).test.tensors()[0][:5]
    # what reaches the bits' layer at its last call
    units, seen = again.get_submodule(layer), []
    h = units.register_forward_pre_hook(lambda _m, i: seen.append(i[0]))
    with torch.no_grad():
        again.eval()(x)
    h.remove()
    return m, units, seen[-1], doc


def test_cli_a_head_that_reads_flattened_maps_gets_a_bit_per_position(flat_heads, data_dir,
                                                                     tmp_path):
    m, units, before, doc = _tune_flat(*flat_heads["flat"], data_dir, tmp_path)
    assert (m["layer"], m["output"], m["bypassed"], m["kernels"], m["bits"], m["bits_of"]) == (
        "5", "7", ["8", "9"], 8, 128, "position")
    assert isinstance(units, LogicUnits) and units.map_shape == (8, 4, 4)
    assert units.unit_names[:2] == ("k1_r1c1", "k1_r1c2") and units.unit_names[-1] == "k8_r4c4"
    assert torch.equal(units(before),
                       (units.inner(before).flatten(1) >= units.thresholds).float())
    read = {lit[0] for r in doc["rules"] for lit in r["body"]}
    assert read and read <= set(units.unit_names)
    # position bits: rules of at most 16 literals unless asked otherwise
    assert m["max_rule_literals"] == 16 and max(len(r["body"]) for r in doc["rules"]) <= 16


def test_cli_a_head_that_reads_large_flattened_maps_gets_pooled_bits(flat_heads, data_dir,
                                                                     tmp_path):
    m, units, before, _ = _tune_flat(*flat_heads["wide_flat"], data_dir, tmp_path)
    # one bit per kernel (the max of its 10 x 10 map), not 1,200
    assert (m["bits"], m["kernels"], m["bits_of"], units.pool) == (12, 12, "max", "max")
    assert torch.equal(units(before),
                       (units.inner(before).amax((2, 3)) >= units.thresholds).float())


def test_position_bits_have_one_level(flat_heads, data_dir, tmp_path, capsys):
    factory, ckpt = flat_heads["flat"]
    capsys.readouterr()
    assert main(["tune", str(ckpt), "--factory", factory, "--out", str(tmp_path / "t.safetensors"),
                 "--data", str(data_dir), "--levels", "2", "--no-progress"]) == 2
    assert "one bit each, so --levels must be 1" in capsys.readouterr().err


def test_cli_a_pool_called_after_every_convolution_gives_bits_at_its_last_call(
        hidden_head, data_dir, tmp_path):
    d, _ = hidden_head
    factory = f"{d / 'net.py'}:tutorial"
    ckpt = tmp_path / "tutorial.safetensors"
    assert main(["train", "--factory", factory, "--out", str(ckpt), "--data", str(data_dir),
                 "--iterations", "100", "--no-progress"]) == 0
    m, units, before, doc = _tune_flat(factory, ckpt, data_dir, tmp_path, "pool", "fc1")
    assert (m["layer"], m["output"], m["bits"], m["bits_of"]) == ("pool", "fc1", 256,
                                                                  "position")
    assert units.at == (16, 4, 4) and units.unit_names[-1] == "k16_r4c4"
    # the first call (after conv1) passes its maps on; the last one gives the bits
    maps = torch.rand(5, 6, 24, 24)
    assert torch.equal(units(maps), units.inner(maps))
    assert torch.equal(units(before),
                       (units.inner(before).flatten(1) >= units.thresholds).float())
    _, meta = read_safetensors(tmp_path / "tuned.safetensors")
    assert json.loads(meta["cnn2logic_logic"])["at"] == [16, 4, 4]
    # the report pictures the 16 kernels of the last call (it stopped on conv1's 6 before)
    page = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "tuned.safetensors"), str(tmp_path / "r" / "rules.json"),
                 "--factory", factory, "--data", str(data_dir), "--samples", "4",
                 "--out", str(page), "--no-progress"]) == 0
    text = page.read_text()
    assert "256 units of 16 kernels" in text and "the window that position sees" in text


def test_cli_a_layer_called_twice_with_one_shape_is_refused_in_one_line(hidden_head, data_dir,
                                                                        tmp_path, capsys):
    d, _ = hidden_head
    factory = f"{d / 'net.py'}:reused"
    ckpt = tmp_path / "reused.safetensors"
    assert main(["train", "--factory", factory, "--out", str(ckpt), "--data", str(data_dir),
                 "--iterations", "20", "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "t.safetensors"
    code = main(["tune", str(ckpt), "--factory", factory, "--layer", "act", "--output", "fc",
                 "--out", str(out), "--data", str(data_dir), "--iterations", "5",
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "layer 'act' runs 2 times in one forward pass, its last call with the same " in err[0]
    assert not out.exists()


def test_pool_in_the_checkpoint_is_checked(tmp_path):
    from cnn2logic.model.logic_head import apply_logic_layers, logic_info
    assert json.loads(logic_info("a", "b", pool="max"))["pool"] == "max"
    assert "pool" not in json.loads(logic_info("a", "b"))  # older files stay byte-identical
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
                                torch.nn.Linear(2, 2))
    info = json.dumps({"layer": "0", "output": "2", "pool": "sum", "version": 1})
    with pytest.raises(Exception, match="invalid cnn2logic_logic metadata"):
        apply_logic_layers(model, info, {"0.thresholds": torch.zeros(2)})
    # a map shape that does not give one unit per threshold
    info = json.dumps({"layer": "0", "output": "2", "pool": "position", "map": [2, 2, 2],
                       "version": 1})
    with pytest.raises(Exception, match=r"a map of shape \(2, 2, 2\) does not give 3"):
        apply_logic_layers(model, info, {"0.thresholds": torch.zeros(3)})
    # the call that gives bits: its shape must give the thresholds' units
    for at, units in (([3, 4, 4], 2), ([2, 0, 4], 2)):
        info = json.dumps({"layer": "0", "output": "2", "at": at, "version": 1})
        with pytest.raises(Exception, match=r"bits at a call of output shape .* do not fit 2"):
            apply_logic_layers(model, info, {"0.thresholds": torch.zeros(units)})
    info = json.dumps({"layer": "0", "output": "2", "pool": "position", "map": [2, 1, 1],
                       "at": [2, 2, 2], "version": 1})
    with pytest.raises(Exception, match=r"output shape \(2, 2, 2\) do not fit 2 units of"):
        apply_logic_layers(model, info, {"0.thresholds": torch.zeros(2)})
    info = json.dumps({"layer": "0", "output": "2", "at": "16x4x4", "version": 1})
    with pytest.raises(Exception, match="invalid cnn2logic_logic metadata"):
        apply_logic_layers(model, info, {"0.thresholds": torch.zeros(2)})

