"""The pedagogical baseline: lookup table of observed codes, minimised with don't-cares."""

from __future__ import annotations

import numpy as np
import pytest

from cnn2logic.errors import ExtractionError, NotFittedError
from cnn2logic.extract.approximation import vertices
from cnn2logic.extract.pedagogical import PedagogicalExtractor, espresso_on_off
from cnn2logic.minimize import dnf_value


def test_planted_dnf_is_recovered_from_every_code():
    V = vertices(6)
    planted = (V[:, 0] & V[:, 1]) | (~V[:, 2] & V[:, 3])
    X = np.repeat(V, 3, axis=0)  # every code observed, three times
    y = np.repeat(planted.astype(int), 3)
    ext = PedagogicalExtractor().fit(X, y)
    c1 = {r.format() for r in ext.rules_.rules_for("c1")}
    assert c1 == {"k1 ∧ k2", "k4 ∧ ¬k3"}
    # no don't-cares: the rules are the planted function on the whole cube
    assert (ext.rules_.fires(V)[:, 1] == planted).all()
    assert (ext.rules_.fires(V)[:, 0] == ~planted).all()


def test_unseen_codes_are_dont_cares():
    V = vertices(5)
    planted = V[:, 0] & ~V[:, 4]
    seen = np.random.default_rng(0).random(len(V)) < 0.5
    seen[[0, len(V) - 1]] = True
    ext = PedagogicalExtractor().fit(V[seen], planted[seen].astype(int))
    # exact on every observed code, whatever it does elsewhere
    assert (ext.rules_.predict_index(V[seen]) == planted[seen]).all()
    table_codes, counts, majority = ext.table_
    assert len(table_codes) == seen.sum() and (counts == 1).all()
    # don't-cares only ever shorten: no more literals than one full minterm per ON code
    assert sum(len(r.body) for r in ext.rules_.rules) <= 5 * len(V)


def test_majority_label_per_code_and_min_count():
    X = np.array([[1, 0]] * 3 + [[0, 1]] * 2 + [[1, 1]], dtype=bool)
    y = np.array([1, 1, 0, 0, 0, 1])
    ext = PedagogicalExtractor().fit(X, y)
    pred = ext.rules_.predict_index(np.array([[1, 0], [0, 1], [1, 1]], bool))
    assert pred.tolist() == [1, 0, 1]
    rare = PedagogicalExtractor(min_count=2).fit(X, y)
    assert rare.stats_["codes_used"] == 2  # the single [1, 1] became a don't-care
    assert rare.rules_.predict_index(np.array([[1, 0], [0, 1]], bool)).tolist() == [1, 0]


def test_espresso_on_off_separates():
    rng = np.random.default_rng(1)
    codes = np.unique(rng.random((60, 8)) < 0.5, axis=0)
    label = rng.random(len(codes)) < 0.4
    terms = espresso_on_off(codes[label], codes[~label])
    assert (dnf_value(terms, codes) == label).all()
    with pytest.raises(ExtractionError):
        espresso_on_off(codes[:2], codes[:1])
    assert espresso_on_off(codes[:0], codes) == []
    assert espresso_on_off(codes, codes[:0]) == [()]


def test_bad_inputs():
    with pytest.raises(ExtractionError):
        PedagogicalExtractor(min_count=0)
    with pytest.raises(ExtractionError):
        PedagogicalExtractor().fit(np.array([[0.5, 1.0]]), np.array([0]))
    with pytest.raises(NotFittedError):
        PedagogicalExtractor().rules


def test_pipeline_pedagogical_reproduces_the_lookup_table(meth_extractions):
    r = meth_extractions["pedagogical"]
    assert r.rules.meta["method"] == "pedagogical"
    codes, _, majority = r.extractor.table_
    # on every training code the rules give the table's class (the network's majority)
    assert (r.rules.predict_index(codes) == majority).all()
    assert all(r.rules.meta["pedagogical"]["lookup"]["espresso_finished"].values())
