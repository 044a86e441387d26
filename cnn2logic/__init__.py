"""cnn2logic: turn a trained convolutional network into logic programs you can query.

Where things live
-----------------
``data``, ``models``, ``training``
    images in, trained networks out (checkpoints are safetensors + spec).
``units``
    kernel units: capture each kernel's pooled activation and binarise it.
``extract/``
    where rules are extracted (``approximation``: Tsukimoto's method, and the others).
``minimize``
    pyeda espresso minimisation of each class's DNF.
``evaluate``
    accuracy, fidelity, coverage, ceiling, the paper's table.
``export/``
    where programs are written (ASP for clingo, Prolog for SWI-Prolog, Markdown).
``query``
    where queries run (clingo).
``rules``
    the one immutable rule type everything above consumes.
"""

from .errors import Cnn2LogicError
from .rules import Head, Literal, Rule, RuleSet, Variable, load_rules, save_rules

__version__ = "0.1.0"

# The torch-backed parts load on first use, so reading a rules file stays light.
_LAZY = {
    "load_data": "data", "build_model": "model", "load_checkpoint": "model",
    "save_checkpoint": "model", "train": "model", "TrainConfig": "model",
    "capture": "units", "fit_thresholds": "units", "BinaryCodes": "units",
    "extract_model": "extract.run", "ExtractConfig": "extract.config",
    "ApproximationExtractor": "extract.approximation",
}

__all__ = [
    "Cnn2LogicError", "Head", "Literal", "Rule", "RuleSet", "Variable", "load_rules",
    "save_rules", "__version__", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'cnn2logic' has no attribute {name!r}")
