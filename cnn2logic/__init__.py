"""cnn2logic: turn a trained convolutional network into logic programs you can query.

Where things live (each package is one stage; data flows down the list)
------------------------------------------------------------------------
``rules``, ``names``, ``errors``
    the base: the one immutable rule type every stage consumes, the one name sanitiser for
    ASP/Prolog identifiers (and for kernel labels), the one exception hierarchy.
``data/``
    images in: the embedded MNIST subset, IDX files, image folders (``ImageFolder``
    layout), ``.npz`` arrays and any ``Dataset``, read in batches through a ``DataLoader``.
``model/``
    networks: specs and checkpoints, loading any ``nn.Module`` (``load_model``; nothing in
    a model file is executed, see ``model.safeload``), training, logic-friendly training,
    where the kernel layer is (``layers``), and ``tuning``: fine-tuning any trained CNN
    until its decision *is* a rule list over kernel bits (``logic_head``).
``units/``
    kernel units: capture each kernel's pooled activation, binarise it (thresholds), the
    binary codes and the shard files of a distributed capture.
``extract/``
    where rules are extracted: ``run`` is the one driver (capture, fit, minimise, rank,
    evaluate), ``base`` the ``Extractor`` class and the ``REGISTRY`` of methods, ``config``
    their settings, one module per method; adding a method is one module there.
``minimize``, ``evaluate``
    espresso minimisation of each class's DNF; accuracy, fidelity, coverage, ceilings.
``labels``, ``words``
    what a kernel means: its class profile and automatic label (``k12 · on for 0, 6, 8``),
    your own label file; the one or two sentences that say why an image got its answer.
``export/``
    where programs are written: ASP for clingo, Prolog for SWI-Prolog, Markdown; adding a
    language is one module and one ``FORMATS`` entry.
``query/``
    where questions are asked: the program layout, the clingo session, the ``QUESTIONS``
    registry (implies, conflicts, necessary, explain, flip), ``swipl`` for Prolog.
``visual/``
    seeing the kernels: each kernel's evidence (top patches cut to its receptive field,
    class profile, SmoothGrad and activation maximisation, each with its measured
    selectivity), kernel-relation graphs, the HTML report.
``cli/``
    the ``cnn2logic`` command: argparse only, one module per subcommand.
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
    "RuleListExtractor": "extract.rulelist",
    "load_model": "model", "save_weights": "model",
    "write_program": "export.logic", "program_text": "export.logic",
    "Program": "query", "implies": "query", "conflicts": "query", "necessary": "query",
    "explain": "query", "flip": "query", "predictions": "query",
    "visualize": "visual", "kernel_graph": "visual", "write_graph": "visual",
    "write_report": "visual",
    "load_image_folder": "data", "load_arrays": "data", "ImageTransform": "data",
    "kernel_evidence": "visual.evidence", "KernelEvidence": "visual.evidence",
    "kernel_labels": "labels", "read_labels": "labels",
    "tune_model": "model.tuning", "TuneConfig": "model.tuning",
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
