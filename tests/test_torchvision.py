"""torchvision architectures by name, forward hooks on residual / in-place layers, and what
the rules replace (the rest of the network on binarised units)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnn2logic.cli import main as cli_main
from cnn2logic.errors import ActivationError, ModelError
from cnn2logic.export.markdown import replaces_sentence
from cnn2logic.extract.rest import (bit_levels, forward_order, layer_calls, network_on_bits,
                                    replaced_layers, replaced_summary)
from cnn2logic.model.factory import BUILD_ATTR, build_arch, build_from_factory, build_info
from cnn2logic.model.load import load_model, save_weights
from cnn2logic.units import capture
from cnn2logic.units.activations import iter_layer_units

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "resnet_imagefolder.py"


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    net = build_arch("torchvision:resnet18", {"num_classes": 10}).eval()
    # random BatchNorm statistics so that the blocks' values are not all alike
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net


# -- architectures by name ---------------------------------------------------------------

def test_arch_by_name_builds_without_download_and_loads_weights(tmp_path, resnet):
    assert build_info(resnet) == {"arch": "torchvision:resnet18", "kwargs": {"num_classes": 10}}
    assert BUILD_ATTR not in resnet.state_dict()
    path = tmp_path / "r.safetensors"
    save_weights(resnet, path)
    again = load_model(path, factory="torchvision:resnet18", factory_kwargs='{"num_classes": 10}')
    assert torch.equal(again.fc.weight, resnet.fc.weight)
    assert build_info(again)["arch"] == "torchvision:resnet18"
    pt = tmp_path / "r.pt"
    torch.save(resnet.state_dict(), pt)
    assert torch.equal(load_model(pt, factory="torchvision:resnet18",
                                  factory_kwargs={"num_classes": 10}).conv1.weight,
                       resnet.conv1.weight)


@pytest.mark.parametrize("arch, kwargs, words", [
    ("torchvision:resnet81", None, ["close names", "resnet18"]),
    ("torchvision:vgg11bn", None, ["vgg11_bn"]),
    ("torchvision:", None, ["torchvision:<name>"]),
    ("torchvision:resnet18", {"weights": "IMAGENET1K_V1"}, ["download"]),
    ("torchvision:resnet18", {"pretrained": True}, ["download"]),
    ("torchvision:resnet18", {"no_such_arg": 1}, ["rejected"]),
])
def test_bad_arch_is_one_line_model_error(arch, kwargs, words):
    with pytest.raises(ModelError) as err:
        build_from_factory(arch, kwargs)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_cli_arch_errors_exit_2(tmp_path, capsys, resnet):
    path = tmp_path / "r.safetensors"
    save_weights(resnet, path)
    base = ["extract", str(path), "--layer", "layer4", "--output", "fc", "--out",
            str(tmp_path / "ex"), "--no-progress"]
    assert cli_main(base + ["--arch", "torchvision:resnet81"]) == 2
    err = capsys.readouterr().err
    assert "close names" in err and len(err.strip().splitlines()) == 1
    assert cli_main(base + ["--arch", "resnet18", "--arch-kwargs",
                            '{"num_classes": 10, "weights": "DEFAULT"}']) == 2
    assert "download" in capsys.readouterr().err
    assert cli_main(base + ["--arch", "resnet18", "--arch-kwargs", '{"num_classes": 7}']) == 2
    assert "do not fit" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ex:  # argparse's usage error
        cli_main(base + ["--arch", "timm:resnet18"])
    assert ex.value.code == 2
    with pytest.raises(SystemExit) as ex:
        cli_main(base + ["--arch", "resnet18", "--factory", "x.py:make"])
    assert ex.value.code == 2
    assert "not both" in capsys.readouterr().err


# -- hooks against a manual forward pass ---------------------------------------------------

class Block(nn.Module):
    """A residual block like torchvision's BasicBlock: one in-place ReLU, called twice."""

    def __init__(self, c: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.conv1(x))
        out = self.bn2(out)
        out += x           # modifies bn2's output in place
        return self.relu(out)


def _block_net():
    torch.manual_seed(1)
    net = nn.Sequential()
    net.add_module("conv", nn.Conv2d(1, 3, 3, padding=1))
    net.add_module("act", nn.ReLU(inplace=True))      # overwrites conv's output
    net.add_module("block", Block())
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    net.add_module("flat", nn.Flatten())
    net.add_module("fc1", nn.Linear(3, 4))
    net.add_module("act2", nn.ReLU(inplace=True))     # overwrites fc1's output
    net.add_module("drop", nn.Dropout())
    net.add_module("out", nn.Linear(4, 2))
    net.block.bn2.running_mean.fill_(0.3)
    return net.eval()


def _manual(net, x):
    with torch.no_grad():
        conv = net.conv(x)
        act = torch.relu(conv)
        b = net.block
        inner = torch.relu(b.conv1(act))
        bn2 = b.bn2(inner)
        block = torch.relu(bn2 + act)
        fc1 = net.fc1(block.mean((2, 3)))
    return {"conv": conv, "act": act, "block.bn2": bn2, "block.relu": block, "block": block,
            "fc1": fc1, "act2": torch.relu(fc1)}


@pytest.mark.parametrize("layer", ["conv", "act", "block.bn2", "block.relu", "block", "fc1",
                                   "act2"])
@pytest.mark.parametrize("reduce", ["max", "position"])
def test_capture_matches_manual_forward_hand_built(layer, reduce):
    net = _block_net()
    x = torch.randn(5, 1, 6, 6)
    ref = _manual(net, x)[layer]
    if ref.ndim == 4:
        ref = ref.amax((2, 3)) if reduce == "max" else ref.flatten(1)
    got = capture(net, layer, x, reduce=reduce, progress=False, batch_size=2)
    assert got.values.shape == tuple(ref.shape)
    np.testing.assert_allclose(got.values, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_module_called_twice_is_read_at_its_last_call():
    net = _block_net()
    x = torch.randn(4, 1, 6, 6)
    assert layer_calls(net, "block.relu", x[:1]) == 2
    batch = next(iter_layer_units(net, "block.relu", [x], "mean"))
    assert len(batch.outputs) == 2                              # both calls seen ...
    np.testing.assert_allclose(batch.units(), _manual(net, x)["block"].mean((2, 3)).numpy(),
                               rtol=1e-5, atol=1e-6)           # ... the last one used
    assert replaced_layers(net, "block.relu", x[:1]) == ["pool", "flat", "fc1", "act2",
                                                         "drop", "out"]
    assert replaced_layers(net, "block.bn2", x[:1])[0] == "block.relu"
    assert forward_order(net, x[:1]).count("block") == 1


def test_module_that_never_runs_is_a_clear_error():
    net = _block_net()
    net.block.add_module("unused", nn.ReLU())  # Block.forward never calls it
    with pytest.raises(ActivationError, match="did not run"):
        capture(net, "block.unused", torch.randn(2, 1, 6, 6), progress=False)
    with pytest.raises(ModelError, match="does not run"):
        replaced_layers(net, "block.unused", torch.randn(1, 1, 6, 6))


def _resnet_manual(net, x):
    with torch.no_grad():
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        h = net.layer3(net.layer2(net.layer1(h)))
        b0 = net.layer4[0]
        o = torch.relu(b0.bn1(b0.conv1(h)))
        o = b0.bn2(b0.conv2(o))
        first = torch.relu(o + b0.downsample(h))
        b1 = net.layer4[1]
        o = torch.relu(b1.bn1(b1.conv1(first)))
        bn2 = b1.bn2(b1.conv2(o))
        last = torch.relu(bn2 + first)
    return {"layer4.0.relu": first, "layer4.0": first, "layer4.1.bn2": bn2,
            "layer4.1.relu": last, "layer4.1": last, "layer4": last}


def test_resnet18_capture_matches_manual_forward(resnet):
    torch.manual_seed(2)
    x = torch.randn(3, 3, 64, 64)   # layer4 maps of 2x2: max and position differ
    ref = _resnet_manual(resnet, x)
    for layer, maps in ref.items():
        for reduce in ("max", "position"):
            want = maps.amax((2, 3)) if reduce == "max" else maps.flatten(1)
            got = capture(resnet, layer, x, reduce=reduce, progress=False)
            assert got.values.shape == tuple(want.shape), (layer, reduce)
            np.testing.assert_allclose(got.values, want.numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=f"{layer} {reduce}")
    assert capture(resnet, "layer4", x, progress=False).values.shape == (3, 512)
    assert layer_calls(resnet, "layer4.1.relu", x[:1]) == 2
    assert replaced_layers(resnet, "layer4", x[:1]) == ["avgpool", "fc"]
    assert replaced_summary(replaced_layers(resnet, "layer4", x[:1])) == "avgpool → fc"


# -- the rest of the network on binarised units --------------------------------------------

def test_network_on_bits_matches_manual_replacement():
    net = _block_net()
    torch.manual_seed(3)
    x_fit, x = torch.randn(40, 1, 6, 6), torch.randn(20, 1, 6, 6)
    th = np.median(capture(net, "block", x_fit, progress=False).values, axis=0)
    off, on = bit_levels(net, "block", "max", th, [x_fit[:25], x_fit[25:]])
    maps = _manual(net, x_fit)["block"]
    bits = (maps.amax((2, 3)) >= torch.as_tensor(th, dtype=torch.float32))
    for k in range(3):
        np.testing.assert_allclose(on[k].numpy(), maps[bits[:, k], k].mean(0).numpy(),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(off[k].numpy(), maps[~bits[:, k], k].mean(0).numpy(),
                                   rtol=1e-5, atol=1e-6)
    # by hand: the block's maps replaced by the levels, the rest of the network run on them
    m = _manual(net, x)["block"]
    b = (m.amax((2, 3)) >= torch.as_tensor(th, dtype=torch.float32))[:, :, None, None]
    with torch.no_grad():
        rest = net.out(torch.relu(net.fc1(torch.where(b, on, off).mean((2, 3)))))
        pred = net(x).argmax(1).numpy()
    want = rest.argmax(1).numpy()
    labels = np.zeros(len(x), np.int64)
    got = network_on_bits(net, "block", "max", th, [x_fit], [x[:7], x[7:]], pred, labels)
    assert got["fidelity"] == round(float((want == pred).mean()), 6)
    assert got["accuracy"] == round(float((want == labels).mean()), 6)
    assert got["images"] == 20 and got["level_images"] == 40
    # a layer run twice is replaced at its last call: the same result through block.relu
    twice = network_on_bits(net, "block.relu", "max", th, [x_fit], [x], pred, labels, calls=2)
    assert twice["fidelity"] == got["fidelity"]


def test_replaces_sentence_in_rules_md():
    meta = {"rest_of_network": {"layer": "layer4", "replaces": ["avgpool", "fc"],
                                "layer_calls": 1, "output_reads_units": False,
                                "network_on_bits": {"fidelity": 0.97, "accuracy": 0.96}}}
    text = replaces_sentence(meta)
    assert "`layer4` replace avgpool → fc" in text and "97.0%" in text
    assert replaces_sentence({"rest_of_network": {"output_reads_units": True}}) == ""
    assert replaces_sentence({}) == ""


def test_extraction_records_what_the_rules_replace():
    from cnn2logic.data import DataSplits, ImageSet
    from cnn2logic.export.markdown import to_markdown
    from cnn2logic.extract.config import ExtractConfig
    from cnn2logic.extract.run import extract_model

    net = _block_net()
    rng = np.random.default_rng(0)
    sets = [ImageSet(rng.normal(size=(n, 1, 6, 6)).astype(np.float32),
                     rng.integers(0, 2, n), ("a", "b"), name)
            for n, name in ((120, "train"), (60, "test"))]
    result = extract_model(net, DataSplits(*sets, "random"),
                           ExtractConfig(layer="block", output="out"), progress=False)
    rest = result.rules.meta["rest_of_network"]
    assert rest["replaces"] == ["pool", "flat", "fc1", "act2", "drop", "out"]
    assert rest["output_reads_units"] is False
    assert result.metrics["binarized_network_accuracy"] is None
    assert 0.0 <= result.metrics["network_on_bits_fidelity"] <= 1.0
    assert "- replaces: the rules over `block` replace" in to_markdown(result.rules)
    # a layer the output reads directly: no rest-of-network run, the usual measure
    direct = extract_model(net, DataSplits(*sets, "random"),
                           ExtractConfig(layer="act2", output="out"), progress=False)
    assert direct.rules.meta["rest_of_network"]["output_reads_units"] is False  # dropout
    assert "network_on_bits_fidelity" in direct.metrics


# -- the example, reduced -----------------------------------------------------------------

def _load_example():
    spec = importlib.util.spec_from_file_location("resnet_imagefolder_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resnet_imagefolder_example_reduced(tmp_path, capsys):
    example = _load_example()
    out = tmp_path / "rn"
    rc = example.main(["--out", str(out), "--train-images", "200", "--test-images", "60",
                       "--steps", "6", "--samples", "1", "--families", "resnet18"])
    assert rc == 0
    printed = capsys.readouterr().out
    for step in ("extract", "export", "query", "graph", "report"):
        assert f"$ cnn2logic {step}" in printed
    assert "--arch torchvision:resnet18" in printed
    rules = json.loads((out / "resnet18" / "extract" / "rules.json").read_text())
    meta = rules["meta"]
    assert len(rules["variables"]) == 512 and meta["layer"] == "layer4"
    assert meta["architecture"] == "torchvision:resnet18"
    assert meta["model_build"] == {"arch": "torchvision:resnet18", "kwargs": {"num_classes": 10}}
    assert meta["rest_of_network"]["replaces"] == ["avgpool", "fc"]
    assert "network_on_bits_fidelity" in meta["metrics"]
    assert (out / "resnet18" / "rules.lp").stat().st_size > 0
    assert (out / "resnet18" / "graph" / "kernels.graphml").stat().st_size > 0
    assert "data:image/png" in (out / "resnet18" / "report.html").read_text()


def test_rulelist_on_a_network_predicting_one_class():
    # an untrained wide network may predict one class only: the linear M-of-N ranking
    # (a logistic read-out) has nothing to fit, and the list is the default class
    from cnn2logic.extract.rulelist import RuleListExtractor

    X = np.random.default_rng(0).random((50, 40)) < 0.5
    ext = RuleListExtractor().fit(X, np.full(50, 3), heads=[f"c{i}" for i in range(5)])
    assert ext.rules_.default == "c3" and (ext.predict(X) == 3).all()


def test_vgg_and_mobilenet_classifiers_are_what_the_rules_replace():
    x = torch.rand(6, 3, 32, 32)
    vgg = build_arch("torchvision:vgg11_bn", {"num_classes": 4}).eval()
    assert replaced_layers(vgg, "features", x[:1]) == (
        ["avgpool"] + [f"classifier.{i}" for i in range(7)])
    mnv3 = build_arch("torchvision:mobilenet_v3_small", {"num_classes": 4}).eval()
    assert replaced_layers(mnv3, "features", x[:1])[-1] == "classifier.3"
    units = capture(mnv3, "features", x, progress=False).values
    with torch.no_grad():
        pred = mnv3(x).argmax(1).numpy()
    got = network_on_bits(mnv3, "features", "max", np.median(units, axis=0), [x], [x], pred,
                          pred)
    assert got["images"] == 6 and 0.0 <= got["fidelity"] <= 1.0
    assert replaced_summary([f"m{i}" for i in range(9)]) == "m0 → m1 → m2 → … (4 more) → m7 → m8"


def test_tune_a_torchvision_resnet_then_extract_reads_its_program(tmp_path):
    """``tune --arch``: ResNet-18 decides by a rule list over ``avgpool``'s 512 bits, the
    checkpoint rebuilds through its architecture name, and ``extract`` reads the list."""
    model = ["--arch", "torchvision:resnet18", "--arch-kwargs", '{"num_classes": 10}']
    data = ["--train-size", "300", "--test-size", "100", "--channels", "3", "--resize", "32",
            "--no-progress"]
    ckpt, tuned = tmp_path / "rn.safetensors", tmp_path / "tuned.safetensors"
    assert cli_main(["train", *model, *data, "--iterations", "40", "--out", str(ckpt)]) == 0
    units = ["--layer", "avgpool", "--output", "fc"]
    assert cli_main(["tune", str(ckpt), *model, *units, *data, "--iterations", "20",
                     "--rounds", "1", "--out", str(tuned)]) == 0
    metrics = json.loads(tuned.with_suffix(".metrics.json").read_text())
    assert metrics["factory"] == "torchvision:resnet18" and metrics["kernels"] == 512
    assert 1 <= metrics["rules"] <= 30 and metrics["literals"] <= 300
    again = load_model(tuned, factory="torchvision:resnet18",
                       factory_kwargs={"num_classes": 10})
    assert type(again.avgpool).__name__ == "LogicUnits"
    assert cli_main(["extract", str(tuned), *model, *units, *data,
                     "--out", str(tmp_path / "ex")]) == 0
    meta = json.loads((tmp_path / "ex" / "rules.json").read_text())["meta"]
    assert meta["rulelist"]["embedded"] is True and meta["metrics"]["fidelity"] == 1.0
    assert len(json.loads((tmp_path / "ex" / "rules.json").read_text())["rules"]) == \
        metrics["rules"]
