"""Seeing what the rules mean: kernel images, kernel-relation graphs, the HTML report.

A rule variable ``k6`` is a kernel's pooled unit; this package shows each kernel as the
image that maximises its unit, draws how the kernels relate in the rules, and puts rules,
images and measurements in one report.  One concept per module:

``saliency``
    the unit as a differentiable function of the input (:class:`LayerUnits`), SmoothGrad
    (:func:`smoothgrad`, the paper's maximising image), activation maximisation and the
    top-activating data images.
``filters``
    a kernel's filter when it sees the input, its correlation with the SmoothGrad image,
    and the response matrix (does each image activate its own unit most?).
``kernels``
    :func:`visualize`: all of the above for every kernel of a layer, in one
    :class:`KernelVisuals`; :func:`model_fingerprint` names the model they belong to.
``receptive``
    where a kernel looks: the map layer behind a pooled unit and the measured receptive
    field of every map position (:func:`receptive_field`).
``evidence``, ``measures``
    evidence a person can look at per kernel (:func:`kernel_evidence`): top patches, class
    profile, and the selectivity of each evidence kind (:func:`selectivity_margins`,
    :func:`choose_kinds`, :func:`profile_agreement`).
``gallery``
    the report's kernel gallery (one card of evidence per kernel).
``visuals``
    :class:`KernelVisuals` and its files: PNGs, ``visuals.npz`` and the ``visuals.json``
    manifest (:func:`write_visuals`, :func:`load_visuals`); :func:`match_kernels` and
    :func:`kernel_index` pair rule variables with kernels.
``images``
    pictures of arrays: the diverging colour scale, PNG encoding, the kernel grid.
``relations``
    how kernels relate in a rule set: literal uses, co-occurrence, conflicts,
    dependencies (plain functions over a :class:`~cnn2logic.rules.RuleSet`).
``graph``, ``graph_draw``
    those relations as a networkx graph written as GraphML and DOT, and its PNG drawing.
``report``
    the self-contained HTML report, rendered from objects it is given (loading models
    and data and measuring the rules is ``cnn2logic report``'s work:
    :func:`cnn2logic.cli.report.build_report`).

Every name below is re-exported here.  They load on first use (as in the top-level
package): reading a graph or writing a report should not import torch.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "saliency": ("SMOOTHGRAD_MEAN", "SMOOTHGRAD_STDEV", "SMOOTHGRAD_SAMPLES", "BASES",
                 "DEFAULT_BASE", "DEFAULT_TOP", "LayerUnits", "units_layer", "top_activating",
                 "smoothgrad", "activation_maximization"),
    "filters": ("input_conv", "input_filters", "filter_correlation", "as_image",
                "response_matrix"),
    "kernels": ("visualize", "model_fingerprint"),
    "receptive": ("ReceptiveField", "find_map_layer", "receptive_field"),
    "evidence": ("BACKGROUNDS", "DEFAULT_PATCHES", "KernelEvidence", "kernel_evidence",
                 "capture_peaks", "paste", "unit_response"),
    "measures": ("EVIDENCE_KINDS", "selectivity_margins", "choose_kinds", "class_profile",
                 "profile_agreement"),
    "gallery": ("kernel_gallery", "kernel_section", "kernel_anchor"),
    "visuals": ("MANIFEST", "ARRAYS", "MANIFEST_FORMAT", "KernelVisuals", "match_kernels",
                "kernel_index", "write_visuals", "load_visuals"),
    "images": ("to_rgb", "png_bytes", "strip", "grid_png", "kernel_pngs"),
    "relations": ("RELATIONS", "SUPPORT_KEYS", "class_rules", "literal_uses", "cooccurrence",
                  "opposite_polarity", "never_together", "conflicts", "table_ruleset",
                  "dependencies"),
    "graph": ("kernel_graph", "graphml_text", "dot_text", "write_graph", "read_graph"),
    "graph_draw": ("graph_png",),
    "report": ("METRICS_SOURCE", "CONFUSION_SOURCE", "render_report", "write_report"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
