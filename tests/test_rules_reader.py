"""The rules.json reader: strict types, bounded sizes, one-line errors, never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn2logic.errors import RulesFileError
from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable, load_rules


def _doc() -> dict:
    rs = RuleSet(variables=(Variable("k1", "conv", 0), Variable("k2", "conv", 1)),
                 heads=(Head("a"), Head("b")),
                 rules=(Rule("a", (Literal("k1"), Literal("k2", False))),
                        Rule("b", (Literal("k1"), Literal("k2")), min_true=1)),
                 default="b",
                 meta={"method": "approximation", "metrics": {"fidelity": 0.5},
                       "thresholds": {"method": "half", "params": {}, "values": [0.5, 0.5]}})
    return rs.to_dict()


def _set(doc, path, value):
    obj = doc
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value
    return doc


@pytest.mark.parametrize("path, value, message", [
    (("meta",), [1, 2], "meta must be an object"),
    (("meta",), "text", "meta must be an object"),
    (("default",), ["a"], "default must be"),
    (("rules", 0, "body", 1, 1), "false", r"body\[1\] must be"),   # no truthy strings
    (("rules", 0, "body", 1, 1), 0, r"body\[1\] must be"),
    (("rules", 1, "min_true"), 2.7, "min_true must be an integer"),
    (("rules", 1, "min_true"), True, "min_true must be an integer"),
    (("rules", 1, "min_true"), 3, "min_true must be an integer in 0..2"),
    (("variables", 0, "index"), 1e300, "index must be an integer"),
    (("variables", 0, "index"), 2**40, "index must be an integer"),
    (("variables", 0, "name"), 7, "name must be a string"),
    (("variables",), {"k1": 1}, "'variables' must be a list"),
    (("heads", 0), "a", r"heads\[0\] must be an object"),
    (("rules", 0, "head"), None, "head must be a string"),
    (("rules", 0, "stats"), [1], "stats must be an object"),
    (("meta", "metrics"), [0.5], "meta.metrics must be an object"),
    (("meta", "metrics", "fidelity"), [0.5], "meta.metrics.fidelity must be a number"),
    (("meta", "thresholds", "values"), ["0.5", 1], "values must be a list of numbers"),
    (("meta", "unminimized_rules"), [{"head": "a", "body": [["k1", "yes"]]}], "must be"),
    (("version",), True, "unsupported rules version"),
])
def test_wrong_types_are_refused_by_name(path, value, message):
    doc = _set(_doc(), path, value)
    with pytest.raises(RulesFileError, match=message) as info:
        RuleSet.from_dict(doc)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", [
    '{"format": "cnn2logic-rules", "version": 1, "meta": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"format": "cnn2logic-rules", "version": ' + "9" * 5000 + "}",
    "[" * 100_000,
])
def test_hostile_json_is_refused(text):
    with pytest.raises(RulesFileError) as info:
        RuleSet.from_json(text)
    assert "\n" not in str(info.value)


def test_valid_documents_round_trip_unchanged():
    doc = _doc()
    assert RuleSet.from_dict(json.loads(json.dumps(doc))).to_dict() == doc


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(_set(_doc(), ("meta",), [])), encoding="utf-8")
    with pytest.raises(RulesFileError, match=str(path)):
        load_rules(path)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_subnormal=False)
                    | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["variables", "heads", "rules", "default", "meta", "version"]),
                min_size=1, max_size=3), JSON, st.data())
def test_fuzzed_documents_load_or_fail_cleanly(keys, value, data):
    """Replace parts of a valid document by arbitrary JSON: a RuleSet or a RulesFileError."""
    doc = _doc()
    for key in keys:
        target = doc[key]
        if isinstance(target, list) and target and data.draw(st.booleans()):
            idx = data.draw(st.integers(0, len(target) - 1))
            if isinstance(target[idx], dict) and target[idx]:
                sub = data.draw(st.sampled_from(sorted(target[idx])))
                target[idx][sub] = value
                continue
            target[idx] = value
        else:
            doc[key] = value
    try:
        rs = RuleSet.from_dict(doc)
    except RulesFileError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(rs, RuleSet)
        rs.to_json()
