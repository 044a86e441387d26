"""Shared fixtures.  Each engineer's fixtures carry a prefix (core_, lp_, vis_, meth_, byo_)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# CI replays the same examples on every run (a submission's result must not depend on
# which random inputs one run happened to draw); local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
FULL_MNIST = REPO.parent / "shared" / "data" / "mnist"

# One torch thread: the test models are tiny, and a second thread only pays off on an
# otherwise idle machine (measured: 300 paper1 steps 1-3 s with one thread, 12 s with two
# under load).  Also avoids denormal stalls.
torch.set_num_threads(1)
torch.set_flush_denormal(True)


def full_mnist_or_skip() -> Path:
    if not (FULL_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"full MNIST not present at {FULL_MNIST}")
    return FULL_MNIST


@pytest.fixture(scope="session")
def core_embedded():
    from cnn2logic.data import load_data

    return load_data("embedded")


@pytest.fixture(scope="session")
def core_paper1(core_embedded):
    """paper1 trained briefly on the embedded data (shared by many tests)."""
    from cnn2logic.model.training import TrainConfig, train

    model, metrics = train("paper1", core_embedded,
                           TrainConfig(iterations=1500, seed=0, progress=False))
    return model, metrics


@pytest.fixture(scope="session")
def core_paper1_extraction(core_paper1, core_embedded):
    from cnn2logic.extract import ExtractConfig, extract_model

    model, _ = core_paper1
    return extract_model(model, core_embedded, ExtractConfig(method="approximation"),
                         progress=False,
                         model_name="core_paper1")


# ---- lp_: logic programs (export, queries) -------------------------------------------

LP_CLASSES = ("3", "8", "cat-dog", "never", "9")
LP_IMAGES = {  # id -> active kernels; answers in tests/test_query.py are worked out by hand
    "a": (), "B b": ("k4",), "c'3": ("k1", "k2"), "d": ("k3",), "e": ("k1", "k2", "k3"),
    "f": ("k4",), "g": ("k1",),
}


def lp_make_small_rules():
    """The hand-made rule base the query tests check against answers computed by hand.

    rank 1: 3 <- k1 & k2 & ~k3       rank 4: 8 <- k1 & k2 & k3
    rank 2: 8 <- k3 & ~k1            rank 5: cat-dog <- 2-of(k1, ~k2, k4)
    rank 3: 3 <- k4                  rank 6: never <- k1 & k2
    default: cat-dog; class 9 has no rule.
    """
    from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable

    L = Literal
    rules = (
        Rule("3", (L("k1"), L("k2"), L("k3", False))),
        Rule("8", (L("k3"), L("k1", False))),
        Rule("3", (L("k4"),)),
        Rule("8", (L("k1"), L("k2"), L("k3"))),
        Rule("cat-dog", (L("k1"), L("k2", False), L("k4")), min_true=2),
        Rule("never", (L("k1"), L("k2"))),
    )
    return RuleSet(
        variables=tuple(Variable(f"k{i}", "conv", i - 1) for i in range(1, 5)),
        heads=tuple(Head(c, "class", "out", i) for i, c in enumerate(LP_CLASSES)),
        rules=rules, default="cat-dog",
        meta={"model": "hand.safetensors", "data": "by hand", "settings": {"order": 3}},
    )


def lp_make_small_codes():
    import numpy as np

    from cnn2logic.rules import Variable
    from cnn2logic.units import BinaryCodes

    names = ("k1", "k2", "k3", "k4")
    bits = np.array([[n in act for n in names] for act in LP_IMAGES.values()], dtype=bool)
    labels = np.array([2, 0, 0, 1, 1, 1, 0])
    network = np.array([2, 0, 0, 1, 1, 0, 0])
    return BinaryCodes(bits, tuple(Variable(n, "conv", i) for i, n in enumerate(names)),
                       LP_CLASSES, labels, network, tuple(LP_IMAGES))


@pytest.fixture(scope="session")
def lp_small():
    """(rules, codes) of the hand-made rule base."""
    return lp_make_small_rules(), lp_make_small_codes()


@pytest.fixture(scope="session")
def lp_small_lp(lp_small, tmp_path_factory):
    """The hand-made rule base and its images exported to an .lp file."""
    from cnn2logic.export.logic import write_program

    rules, codes = lp_small
    path = tmp_path_factory.mktemp("lp") / "small.lp"
    write_program(path, rules, codes)
    return path


# ---- meth_: the other extraction methods (M-of-N, ERIC, chaining, pedagogical) ----------

@pytest.fixture(scope="session")
def meth_hidden_model(core_embedded):
    """paper1's conv + pooling with a hidden layer of 12 sigmoid units, trained briefly.

    Chaining composes pool -> hidden_act1 -> out with the approximation method; 12 hidden
    units keep the output layer's truth table (and the tests) small.
    """
    from cnn2logic.model.spec import ConvSpec, ModelSpec
    from cnn2logic.model.training import TrainConfig, train

    spec = ModelSpec(convs=(ConvSpec(10, 27),), hidden=(12,), name="meth-hidden12")
    model, _ = train(spec, core_embedded, TrainConfig(iterations=1200, seed=0, progress=False))
    return model


@pytest.fixture(scope="session")
def meth_extractions(core_paper1, core_embedded, meth_hidden_model):
    """One pipeline extraction per method on the embedded data (shared by several tests)."""
    from cnn2logic.extract import REGISTRY, ExtractConfig, extract_model

    model, _ = core_paper1
    out = {}
    for method in (m for m in REGISTRY if m != "chaining"):  # chaining: below
        out[method] = extract_model(model, core_embedded, ExtractConfig(method=method),
                                    progress=False, model_name="core_paper1")
    out["chaining"] = extract_model(meth_hidden_model, core_embedded,
                                    ExtractConfig(method="chaining"), progress=False,
                                    model_name="meth_hidden")
    return out
