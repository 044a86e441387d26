"""The contract every registered extraction method keeps (imodels' model_api_test style).

For each method in :data:`cnn2logic.extract.REGISTRY`, on a tiny three-conv-layer model
(every method applies to it, chaining included): the extractor follows the common
interface, the driver's fit works, ``rules_`` is a :class:`RuleSet`, the rules export to
ASP and Prolog, and clingo (and SWI-Prolog, when installed) predict what the Python
evaluator predicts on the codes.  The CLI offers every setting of the method's settings
class, and docs/methods.md (when present) lists the method in a table.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest

from cnn2logic.cli import build_parser
from cnn2logic.data import load_data
from cnn2logic.export.asp import to_asp
from cnn2logic.export.prolog import to_prolog
from cnn2logic.extract import REGISTRY, Extractor, ExtractConfig, extract_model
from cnn2logic.extract.config import SECTIONS
from cnn2logic.rules import RuleSet
from cnn2logic.model.training import TrainConfig, train

METHODS = tuple(REGISTRY)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "methods.md"
SWIPL = shutil.which("swipl")


@pytest.fixture(scope="module")
def tiny():
    data = load_data("embedded", train_size=200, test_size=60)
    model, _ = train("paper3", data, TrainConfig(iterations=30, progress=False, seed=0))
    return model, data


@pytest.fixture(scope="module")
def results(tiny):
    model, data = tiny
    return {name: extract_model(model, data, ExtractConfig(method=name), progress=False)
            for name in METHODS}


def clingo_predictions(rules: RuleSet, codes) -> dict[str, str]:
    import clingo

    ctl = clingo.Control(["--warn=none"])
    ctl.add("base", [], to_asp(rules, codes))
    ctl.ground([("base", [])])
    found: dict[str, list] = {"prediction": [], "image_id": [], "class_name": []}
    with ctl.solve(yield_=True) as handle:
        for model in handle:
            for sym in model.symbols(atoms=True):
                if sym.name in found and len(sym.arguments) == 2:
                    found[sym.name].append(sym.arguments)
    image = {str(a[0]): a[1].string for a in found["image_id"]}
    cls = {str(a[0]): a[1].string for a in found["class_name"]}
    return {image[str(a[0])]: cls[str(a[1])] for a in found["prediction"]}


def test_registry_is_not_empty():
    assert METHODS[0] == "approximation"
    assert len(METHODS) == len(set(METHODS)) >= 5


@pytest.mark.parametrize("name", METHODS)
def test_extractor_interface(name):
    method = REGISTRY[name]
    assert issubclass(method.extractor, Extractor)
    params = list(inspect.signature(method.extractor.fit).parameters)
    assert params[:6] == ["self", "X", "y", "output", "variables", "heads"]
    ext = method.extractor()  # every setting has a default
    assert isinstance(ext.get_params(), dict)
    with pytest.raises(Exception, match="fit"):
        ext.rules  # noqa: B018 - not fitted yet


@pytest.mark.parametrize("name", METHODS)
def test_fit_gives_rules_that_export_and_agree(name, results, tmp_path):
    result = results[name]
    assert isinstance(result.extractor, REGISTRY[name].extractor)
    assert isinstance(result.extractor.rules_, RuleSet)
    assert isinstance(result.rules, RuleSet) and result.rules.meta["method"] == name
    codes = result.test_codes
    python = dict(zip(codes.ids, (str(p) for p in result.rules.predict(codes.bits))))
    assert clingo_predictions(result.rules, codes) == python
    program = to_prolog(result.rules, codes)
    assert "prediction" in program
    if SWIPL is not None:
        path = tmp_path / "rules.pl"
        path.write_text(program, encoding="utf-8")
        goal = ("forall((image(I), image_id(I, Id), prediction(I, C), class_name(C, N)), "
                "format('~w\\t~w~n', [Id, N]))")
        out = subprocess.run([SWIPL, "-q", "-g", goal, "-t", "halt", str(path)],
                             capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stderr[-2000:]
        assert dict(line.split("\t") for line in out.stdout.splitlines() if line) == python


@pytest.mark.parametrize("name", METHODS)
def test_cli_offers_every_setting(name):
    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and a.choices
               and "extract" in a.choices).choices["extract"]
    options = {s for a in sub._actions for s in a.option_strings}
    assert name in next(a for a in sub._actions if "--method" in a.option_strings).choices
    settings = REGISTRY[name].settings
    assert settings in SECTIONS
    for f in fields(settings):
        assert "--" + f.name.replace("_", "-") in options


@pytest.mark.skipif(not DOCS.exists(), reason="docs/methods.md is not there yet")
@pytest.mark.parametrize("name", METHODS)
def test_method_is_in_the_docs_table(name):
    rows = [line for line in DOCS.read_text(encoding="utf-8").splitlines()
            if line.lstrip().startswith("|")]
    assert any(re.search(rf"(^|[^\w-]){re.escape(name)}([^\w-]|$)", row) for row in rows), \
        f"docs/methods.md has no table row for {name!r}"
