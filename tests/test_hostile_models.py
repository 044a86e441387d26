"""Model and thresholds files, fuzzed: a model or a one-line Cnn2LogicError, nothing else.

Every byte-mutated or cut copy of a valid checkpoint (cnn2logic safetensors, a plain state
dict as safetensors and as weights-only ``.pt``, a ``torch.export`` archive) and of a
thresholds file goes through the loaders a command uses.  Allowed outcomes: the file loads
(a mutation inside a tensor's bytes is still a valid file), or a
:class:`~cnn2logic.errors.Cnn2LogicError` whose message is one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

from cnn2logic.errors import Cnn2LogicError
from cnn2logic.model import load_model, save_weights
from cnn2logic.model.spec import build_model, save_checkpoint
from cnn2logic.units import Thresholds, load_thresholds, save_thresholds

REPO = Path(__file__).resolve().parents[1]


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 5)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(torch.amax(torch.relu(self.conv(x)), dim=(2, 3)))


TINY_SOURCE = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 5)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(torch.amax(torch.relu(self.conv(x)), dim=(2, 3)))
"""


@pytest.fixture(scope="module")
def tiny_factory(tmp_path_factory):
    path = tmp_path_factory.mktemp("factory") / "tiny.py"
    path.write_text(TINY_SOURCE, encoding="utf-8")
    return f"{path}:Tiny"


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_checkpoint(build_model("paper1", seed=0), d / "paper1.safetensors")
    tiny = _Tiny().eval()
    torch.save(tiny.state_dict(), d / "tiny.pt")
    save_weights(tiny, d / "tiny.safetensors")
    ep = torch.export.export(tiny, (torch.rand(2, 1, 12, 12),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, str(d / "tiny.pt2"))
    save_thresholds(Thresholds(np.array([0.5, 0.25]), "median", {}), d / "th.json",
                    layer="pool")
    return {p.name: p.read_bytes() for p in d.iterdir()}


def _mutate(data: bytes, edits, cut: int | None, extra: bytes) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    if cut is not None and out:
        out = out[: cut % len(out)]
    return bytes(out) + extra


def _load(path: Path, name: str, factory: str):
    if name.startswith("th"):
        return load_thresholds(path)
    if name == "paper1.safetensors":
        return load_model(path)
    if name == "tiny.pt2":
        return load_model(path)
    # plain state dicts need the code that builds the model
    return load_model(path, factory=factory)


MUTATIONS = dict(
    name=st.sampled_from(["paper1.safetensors", "tiny.safetensors", "tiny.pt", "tiny.pt2",
                          "th.json"]),
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 1 << 20),
    extra=st.binary(max_size=16),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(**MUTATIONS)
# Found by this test: a byte in a member name that is not UTF-8 made zipfile raise
# UnicodeDecodeError (not BadZipFile) while listing the archive.
@example(name="tiny.pt", edits=[(2147, 128)], cut=None, extra=b"")
def test_fuzzed_model_and_threshold_files(valid_files, tiny_factory, tmp_path, name, edits,
                                         cut, extra):
    path = tmp_path / name
    path.write_bytes(_mutate(valid_files[name], edits, cut, extra))
    try:
        _load(path, name, tiny_factory)
    except Cnn2LogicError as exc:
        assert "\n" not in str(exc), str(exc)


def test_valid_files_load(valid_files, tiny_factory, tmp_path):
    for name in ("paper1.safetensors", "tiny.safetensors", "tiny.pt", "tiny.pt2", "th.json"):
        path = tmp_path / name
        path.write_bytes(valid_files[name])
        assert _load(path, name, tiny_factory) is not None


@pytest.mark.parametrize("doc, message", [
    ([1, 2], "object"),
    ({"format": "cnn2logic-thresholds", "values": "0.5"}, "values"),
    ({"format": "cnn2logic-thresholds", "values": [0.5, "x"]}, "values"),
    ({"format": "cnn2logic-thresholds", "values": [1e308, "inf"]}, "values"),
])
def test_thresholds_reader_refuses_wrong_types(tmp_path, doc, message):
    path = tmp_path / "th.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(Cnn2LogicError) as info:
        load_thresholds(path)
    assert "\n" not in str(info.value)
