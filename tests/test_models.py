"""Architectures, specs and checkpoints (safetensors, weights-only, clear errors)."""

from __future__ import annotations

import json

import pytest
import torch

from cnn2logic.errors import CheckpointError, ModelError
from cnn2logic.model.spec import (ConvSpec, ModelSpec, build_model, load_checkpoint,
                                  named_spec, save_checkpoint, spec_from_arg)


def test_paper_architectures_shapes():
    x = torch.zeros(3, 1, 28, 28)
    for name, widths in (("paper1", [10]), ("paper3", [10, 10, 10])):
        model = build_model(name)
        assert [m.out_channels for n, m in model.named_children() if n.startswith("conv")] == widths
        pooled = model[: list(dict(model.named_children())).index("pool") + 1](x)
        assert pooled.shape == (3, 10, 1, 1)  # one pooled unit per kernel, as in the paper
        assert model(x).shape == (3, 10)
    assert [m.kernel_size for n, m in build_model("paper3").named_children()
            if n.startswith("conv")] == [(8, 8), (7, 7), (14, 14)]


def test_generic_spec_round_trip_and_hidden_layers():
    spec = ModelSpec(convs=(ConvSpec(8, 5, "relu", batchnorm=True), ConvSpec(16, 3, "relu")),
                     pool="global-max", hidden=(12,), name="mine")
    assert ModelSpec.from_dict(json.loads(spec.to_json())) == spec
    model = build_model(spec)
    assert "bn1" in dict(model.named_children()) and "hidden1" in dict(model.named_children())
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert spec_from_arg(spec.to_json()) == spec


@pytest.mark.parametrize("bad, match", [
    ({"convs": []}, "at least one conv"),
    ({"convs": [{"filters": 4, "size": 3, "activation": "swish"}]}, "unknown activation"),
    ({"convs": [{"filters": 4, "size": 30}]}, "leaves no output"),
    ({"convs": [{"filters": 4, "size": 3}], "pool": "median"}, "unknown pool"),
    ({"convs": [{"filters": 4, "size": 3, "colour": 1}]}, "invalid model spec"),
])
def test_bad_specs(bad, match):
    with pytest.raises(ModelError, match=match):
        build_model(ModelSpec.from_dict(bad))


def test_unknown_architecture_name(tmp_path):
    with pytest.raises(ModelError, match="unknown architecture 'paper2'"):
        spec_from_arg("paper2")
    with pytest.raises(ModelError, match="paper9"):
        named_spec("paper9")


def test_checkpoint_round_trip(tmp_path):
    model = build_model("paper1", seed=3)
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model.eval()(x), loaded(x))
    assert loaded.spec == model.spec
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left


def test_weights_only_pt_checkpoint(tmp_path):
    model = build_model("paper1", seed=1)
    path = tmp_path / "m.pt"
    torch.save({"state_dict": model.state_dict(), "spec": model.spec.to_json()}, path)
    assert torch.equal(load_checkpoint(path).out.weight, model.out.weight)


def test_pickled_object_is_refused(tmp_path):
    import argparse

    path = tmp_path / "evil.pt"
    # any non-tensor object needs unpickling, which weights_only loading refuses
    torch.save({"state_dict": {}, "spec": argparse.Namespace(payload="x")}, path)
    with pytest.raises(CheckpointError, match="not a readable weights-only checkpoint"):
        load_checkpoint(path)


def test_corrupt_missing_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.safetensors: corrupt"):
        load_checkpoint(junk)
    # weights of paper1 under the spec of paper3
    from safetensors.torch import save_file

    bad = tmp_path / "mismatch.safetensors"
    state = {k: v.contiguous() for k, v in build_model("paper1").state_dict().items()}
    save_file(state, str(bad), metadata={"cnn2logic_spec": named_spec("paper3").to_json()})
    with pytest.raises(CheckpointError, match="weights do not fit the spec"):
        load_checkpoint(bad)
    nospec = tmp_path / "nospec.safetensors"
    save_file(state, str(nospec))
    with pytest.raises(CheckpointError, match="no cnn2logic model spec"):
        load_checkpoint(nospec)
