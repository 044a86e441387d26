"""``cnn2logic report``: one self-contained HTML report for a model and its rules.

:func:`build_report` prepares what :func:`cnn2logic.visual.report.write_report` renders:
it loads the rules, the model and the data when they are given as paths, computes (or
reuses) the kernels' visuals, and measures the rules on the test split when the rules
file lacks metrics or the confusion matrix (capture and binarise with
:func:`cnn2logic.units.codes_for`, then :func:`cnn2logic.evaluate.evaluate_rules` and
:func:`cnn2logic.evaluate.confusion`, as ``cnn2logic extract`` does).  With a model and
test data it also explains a few test images in words
(:func:`cnn2logic.visual.why.explained_images`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._io import refuse_overwriting_inputs
from ._model_args import add_model_args, load_model, model_from_args
from ..data import StreamSet, as_splits, load_data
from ._data_args import add_data_args, data_from_args
from ..errors import Cnn2LogicError, ModelError, VisualizationError
from ..evaluate import confusion, evaluate_rules
from ..labels import LABELS_HELP, apply_label_file
from ..rules import RuleSet, load_rules
from ..units import REDUCTIONS, Thresholds, capture, check_model_input, codes_for, kernel_names
from ..visual.kernels import model_fingerprint, visualize
from ..visual.relations import table_ruleset
from ..visual.report import CONFUSION_SOURCE, METRICS_SOURCE, write_report
from ..visual.saliency import (BASES, DEFAULT_TOP, SMOOTHGRAD_SAMPLES, SMOOTHGRAD_STDEV,
                               units_layer)
from ..visual.visuals import (MANIFEST, KernelVisuals, kernel_index, load_visuals,
                              match_kernels, write_visuals)
from ..visual.why import explained_images
from ._common import add_progress_arg, positive_int


#: At most this many training images of a streamed split (an image folder) are loaded
#: for the visuals (top-activating images, the mean base), which hold them in memory.
VISUAL_IMAGES = 5000


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand to ``sub``."""
    p = sub.add_parser(
        "report", help="self-contained HTML report (rules read with the kernels' images)",
        description="Metrics beside the paper's figures, each class's rule with every "
                    "literal shown as its kernel's SmoothGrad image, all rules, the SmoothGrad "
                    "grid, the kernel-relation graph and rules-vs-network confusion, in one "
                    "HTML file with every image embedded (opens with no network access).")
    p.add_argument("model", help="checkpoint the rules were extracted from (with --factory, "
                                 "any state dict, TorchScript or .pt2 file)")
    p.add_argument("rules", help="rules JSON written by 'cnn2logic extract'")
    add_model_args(p)
    p.add_argument("--out", required=True, help="the HTML file to write")
    add_data_args(p, none_ok=True, batch_size=True,
                  data_help="images for top-activating images, the SmoothGrad 'mean' base "
                            "and metrics missing from the rules file")
    p.add_argument("--visuals", default=None, metavar="DIR",
                   help="reuse (or write) 'cnn2logic visualize' output in DIR")
    p.add_argument("--layer", default=None, help="default: the layer recorded in the rules")
    p.add_argument("--reduce", choices=REDUCTIONS, default=None,
                   help="how a kernel's map becomes one unit (default: the reduction "
                        "recorded in the rules, else max)")
    p.add_argument("--base", choices=BASES, default=None,
                   help="SmoothGrad base image (default 'mean' with data, else 'zeros')")
    p.add_argument("--samples", type=positive_int, default=SMOOTHGRAD_SAMPLES)
    p.add_argument("--top", type=int, default=DEFAULT_TOP)
    p.add_argument("--actmax", action="store_true", default=None,
                   help="add activation-maximisation images of the kernels the rules "
                        "read (default: with the evidence)")
    p.add_argument("--no-actmax", dest="actmax", action="store_false")
    p.add_argument("--no-evidence", dest="evidence", action="store_false",
                   help="no top patches / class profiles in the kernel gallery")
    p.add_argument("--max-rules", type=positive_int, default=40,
                   help="rules listed per class (default 40)")
    p.add_argument("--title", default=None)
    p.add_argument("--labels", metavar="FILE", help=LABELS_HELP)
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the rules, the model and the data named by ``args`` and write the report.

    Raises
    ------
    Cnn2LogicError
        An unreadable rules file, model or data, or a bad visualisation parameter.
    """
    refuse_overwriting_inputs([args.out], [args.rules, args.model])
    rules = apply_label_file(load_rules(args.rules), args.labels)
    model = model_from_args(args)  # a cnn2logic checkpoint, or --factory / .pt2 (any CNN)
    data = data_from_args(args, "cnn2logic report")
    path = build_report(model, rules, data, args.out, visuals_dir=args.visuals,
                        layer=args.layer, reduce=args.reduce, base=args.base,
                        samples=args.samples, top=args.top, actmax=args.actmax,
                        evidence=args.evidence, title=args.title, max_rules=args.max_rules, progress=args.progress)
    print(f"wrote {path}")
    return 0


def build_report(model: Any, rules: RuleSet | str | os.PathLike[str], data: Any = None,
                 out_path: str | os.PathLike[str] = "report.html", *,
                 visuals_dir: str | os.PathLike[str] | None = None,
                 layer: str | None = None, reduce: str | None = None,
                 base: str | None = None, samples: int = SMOOTHGRAD_SAMPLES,
                 stdev: float = SMOOTHGRAD_STDEV,
                 top: int = DEFAULT_TOP, actmax: bool | None = None, evidence: bool = True,
                 title: str | None = None, max_rules: int = 40,
                 progress: bool = True) -> Path:
    """Write the HTML report for ``model`` and ``rules`` to ``out_path``; return the path.

    Parameters
    ----------
    model : nn.Module, path or None
        The network (or its checkpoint: anything :func:`cnn2logic.model.load_model` reads
        without a factory; load your own model with a factory first).  None: no
        maximising images.
    rules : RuleSet or path
        The rules (``meta`` from ``cnn2logic extract`` supplies metrics, the table terms
        and the confusion matrix).
    data : DataSplits, "embedded", a path, Dataset(s), DataLoader(s) or None
        Training images give the top-activating images and the ``mean`` SmoothGrad base;
        test images let the report compute metrics and confusion missing from ``meta``
        and explain a few test images in words ("Why the network decided").
    out_path : path
        The HTML file (written atomically).
    visuals_dir : path, optional
        Reuse the visuals written there for this model and layer, or compute them and
        write them there (PNGs, ``visuals.json``).  Without it visuals stay in memory.
    layer : str, optional
        Default: ``rules.meta["layer"]``, else ``"pool"``.
    reduce : str, optional
        How a kernel's map becomes one unit (:data:`cnn2logic.units.REDUCTIONS`).
        Default: ``rules.meta["settings"]["reduce"]``, else ``"max"``.
    base : str, optional
        SmoothGrad base; default ``"mean"`` with data, ``"zeros"`` without.
    samples, stdev, top, actmax, evidence
        Passed to :func:`cnn2logic.visual.kernels.visualize` (the evidence's class
        profiles use the rules' thresholds when ``meta`` records them).  Activation
        maximisation, the slowest part, runs only for the kernels the rules read (their
        literals, the table terms, the members of the groups they read); the other
        kernels' cards show SmoothGrad.  Visuals in ``visuals_dir`` without those
        kernels' images are recomputed.
    title : str, optional
        The page heading.
    max_rules : int
        Rules listed per class in the full rule list (the rest are counted).
    progress : bool
        Show progress bars while computing visuals.

    Returns
    -------
    Path
        The written HTML file.

    Raises
    ------
    RulesFileError
        ``rules`` is a path that cannot be read.
    CheckpointError
        ``model`` is a path that cannot be loaded.
    ModelError, DataError
        The model's layer has another number of kernel units than the rules have
        variables on it, or the data do not fit the model.
    VisualizationError
        A bad visualisation parameter or an unwritable output path.
    """
    if not isinstance(rules, RuleSet):
        rules = load_rules(rules)
    model = _load_model(model)
    data = _load_data(data)
    out = Path(out_path)
    if out.is_dir():  # before any work: computing visuals can take long
        raise VisualizationError(f"{out} is a directory; give the report's file name")
    meta: Mapping[str, Any] = rules.meta if isinstance(rules.meta, Mapping) else {}
    layer = layer or str(meta.get("layer") or "pool")
    settings = meta.get("settings") if isinstance(meta.get("settings"), Mapping) else {}
    reduce = reduce or str(settings.get("reduce") or "max")
    arch = str(meta.get("architecture")
               or getattr(getattr(model, "spec", None), "name", "") or "")
    n_units = _check_model_fits(model, rules, data, layer, reduce)
    notes: list[str] = []
    vis_dir = Path(visuals_dir) if visuals_dir is not None else None
    # a tuned network's bits are drawn from the continuous units they threshold
    vis_layer = units_layer(model, layer) if model is not None else layer
    thresholds = _rule_thresholds(rules, layer)
    if vis_layer != layer:
        # one unit per kernel there, its bits (and their thresholds) in the network
        n_units = getattr(dict(model.named_modules())[layer], "kernels", None)
        thresholds = None
    vis = _visuals(model, vis_layer, data, vis_dir, base=base, samples=samples, stdev=stdev,
                   top=top, actmax=actmax, reduce=reduce, progress=progress, notes=notes,
                   evidence=evidence, thresholds=thresholds,
                   kernels=_read_kernels(rules, vis_layer, n_units))
    if vis is not None:
        index = match_kernels(rules.variables, vis)
        missing = [v.name for v in rules.variables if v.name not in index]
        if missing:
            notes.append(f"no maximising image for {len(missing)} rule variable(s) not in "
                         f"layer {layer!r}: {', '.join(missing[:8])}"
                         + (" …" if len(missing) > 8 else ""))
    measured = _measurements(model, rules, data, meta, layer, reduce, notes)
    return write_report(rules, out, visuals=vis, layer=layer, architecture=arch,
                        title=title, max_rules=max_rules, notes=notes, **measured)


def _check_model_fits(model: Any, rules: RuleSet, data: Any, layer: str, reduce: str
                      ) -> int | None:
    """Refuse, before any work, data the model cannot read and a model not the rules'.

    One image (the data's first, else zeros of the model's declared input) gives the
    number of units of ``layer``; the rules' variables on that layer must be as many.
    Returns that number (None without a model or an image to run).
    """
    if model is None:
        return None
    sample = None
    if data is not None:
        check_model_input(model, data.train.images[:1], data.train.labels, data.train.name)
        check_model_input(model, data.test.images[:1], data.test.labels, data.test.name)
        sample = data.train.images[:1]
    elif getattr(getattr(model, "spec", None), "input_shape", None):
        sample = np.zeros((1, *model.spec.input_shape), np.float32)
    if sample is None:
        return None
    on_layer = [v for v in rules.variables if v.layer == layer]
    n_units = capture(model, layer, sample, reduce=reduce, progress=False).values.shape[1]
    if on_layer and (n_units != len(on_layer) or any(v.index >= n_units for v in on_layer)):
        raise ModelError(f"the model's layer {layer!r} has {n_units} kernel units but the "
                         f"rules have {len(on_layer)} variables on it: not the model the "
                         "rules were extracted from")
    return int(n_units)


def _load_model(model: Any) -> Any:
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)  # a cnn2logic checkpoint or a .pt2 program
    return model


def _load_data(data: Any) -> Any:
    if data is None or (isinstance(data, str) and data == "none"):
        return None
    if isinstance(data, (str, os.PathLike)):
        return load_data(data)
    return as_splits(data)  # DataSplits, Datasets, DataLoaders or a (train, test) pair


def _rule_thresholds(rules: RuleSet, layer: str) -> np.ndarray | None:
    """The rules' thresholds of ``layer``'s kernels (``meta['thresholds']``), if recorded."""
    meta_thr = rules.meta.get("thresholds") if isinstance(rules.meta, Mapping) else None
    if not (isinstance(meta_thr, Mapping) and meta_thr.get("values")):
        return None
    values = np.asarray(meta_thr["values"], dtype=float)
    on_layer = [v for v in rules.variables if v.layer == layer]
    return values if values.ndim == 1 and len(values) == len(on_layer) else None


def _read_kernels(rules: RuleSet, layer: str, n_units: int | None) -> list[int] | None:
    """The kernels of ``layer`` (0-based) whose pictures the report shows; None: all.

    Those of the variables the rules' literals and the per-class table terms
    (``meta["table"]``) read, a group (``meta["groups"]``) standing for its members,
    paired with kernels as the report pairs them (:func:`kernel_index`: a unit of one
    map position, ``k3_r1c2``, is kernel 3's).  None when the pairing is unclear: an
    unknown layer width, or a name the rules do not declare.
    """
    if n_units is None:
        return None
    try:
        table = table_ruleset(rules).rules
    except VisualizationError:  # no per-class table
        table = ()
    read = {lit.var for rule in (*rules.rules, *table) for lit in rule.body}
    meta = rules.meta if isinstance(rules.meta, Mapping) else {}
    groups = meta.get("groups") if isinstance(meta.get("groups"), Mapping) else {}
    members = groups.get("members") if isinstance(groups.get("members"), Mapping) else {}
    for group in read & set(members):
        read |= {str(k) for k in members[group]}
    by_name = {v.name: v for v in rules.variables}
    if not read <= set(by_name):
        return None
    index = kernel_index([by_name[n] for n in sorted(read)], layer,
                         kernel_names(layer, n_units))
    return sorted(set(index.values()))


def _visuals(model: Any, layer: str, data: Any, visuals_dir: Path | None, *, base: str | None,
             samples: int, stdev: float, top: int, actmax: bool | None, reduce: str,
             progress: bool,
             notes: list[str], evidence: bool = True,
             thresholds: np.ndarray | None = None,
             kernels: list[int] | None = None) -> KernelVisuals | None:
    """The visuals in ``visuals_dir`` when they belong to ``model`` and have the pictures
    wanted, else computed anew (activation maximisation for ``kernels`` only; None: all).
    """
    if reduce == "position":  # maximising images are per kernel
        notes.append("the rules read one unit per map position; the kernels' maximising "
                     "images are those of their max-pooled units")
        reduce = "max"
    if visuals_dir is not None and (visuals_dir / MANIFEST).is_file():
        try:
            vis = load_visuals(visuals_dir)
        except VisualizationError as exc:
            notes.append(f"existing visuals not used ({exc}); recomputed")
        else:
            same_model = (model is None
                          or vis.params.get("model_sha256") == model_fingerprint(model))
            same_units = vis.params.get("reduce", "max") == reduce
            # visuals without the evidence are not reused when it can now be computed
            has_evidence = vis.evidence is not None or not evidence or data is None
            # nor without the act-max images of the kernels shown (visuals of other
            # rules may have them for other kernels only)
            wanted = (actmax if actmax is not None
                      else bool(evidence and data is not None and top > 0))
            needed = set(range(len(vis)) if kernels is None else kernels)
            has_actmax = not wanted or needed <= set(vis.actmax_kernels)
            if (vis.layer == layer and same_model and same_units and has_evidence
                    and has_actmax):
                return vis
            if model is None:
                return vis
            other = ("belong to another model or layer" if vis.layer != layer or not same_model
                     else f"belong to another reduction ({vis.params.get('reduce', 'max')}, "
                     f"not {reduce})" if not same_units
                     else "have no kernel evidence" if not has_evidence
                     else f"lack the activation-maximisation images of "
                          f"{len(needed - set(vis.actmax_kernels))} kernel(s) the rules read")
            notes.append(f"visuals in {visuals_dir} {other}; recomputed")
    if model is None:
        notes.append("no model given: kernels are shown by name, without maximising images")
        return None
    images = data.train if data is not None else None
    if isinstance(images, StreamSet) and len(images) > VISUAL_IMAGES:
        # the visuals hold their images in memory: a streamed split is cut to
        # VISUAL_IMAGES (spread over the classes when the split lists class after class,
        # StreamSet.subset); metrics are still measured on every image, batch by batch
        notes.append(f"top-activating images and the mean base are taken from "
                     f"{VISUAL_IMAGES} of the {len(images)} training images")
        images = images.subset(VISUAL_IMAGES)
    chosen = base or ("mean" if images is not None else "zeros")
    if images is None:
        notes.append("no data given: no top-activating images, and SmoothGrad starts from "
                     f"the {chosen!r} image instead of the mean data image")
    vis = visualize(model, layer, images, base=chosen, samples=samples, stdev=stdev,
                    top=top if images is not None else 0, actmax=actmax,
                    actmax_kernels=kernels, reduce=reduce, progress=progress,
                    evidence=evidence, thresholds=thresholds)
    if visuals_dir is not None:
        vis = write_visuals(vis, visuals_dir, progress=progress)
    return vis


def _measurements(model: Any, rules: RuleSet, data: Any, meta: Mapping[str, Any], layer: str,
                  reduce: str, notes: list[str]) -> dict[str, Any]:
    """Metrics and confusion (with their sources) from ``meta``, else measured on ``data``,
    and the test images explained in words (with model and data)."""
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), Mapping) else None
    cm = meta.get("confusion")
    out = {"metrics": metrics, "confusion": cm, "metrics_source": METRICS_SOURCE,
           "confusion_source": CONFUSION_SOURCE, "explained": []}
    if data is None or model is None:
        return out
    measured = _test_codes(model, rules, data, layer, reduce, notes)
    if measured is None:
        return out
    codes, X = measured
    heads = rules.head_names
    if list(heads) != [str(c) for c in data.test.classes][: len(heads)]:
        notes.append("rule heads are not the data's classes: metrics not computed, no "
                     "test images explained")
        return out
    out["explained"] = explained_images(rules, X, data.test.images, codes.classes,
                                        codes.labels, codes.predictions, codes.ids)
    if metrics is None or not cm:
        source = f"computed by the report on {data.test.name}"
        if metrics is None:
            out["metrics"] = evaluate_rules(rules, X, codes.labels, codes.predictions)
            out["metrics_source"] = source
        if not cm:
            out["confusion"] = confusion(codes.predictions, rules.predict_index(X), len(heads))
            out["confusion_source"] = source
    return out


def _test_codes(model: Any, rules: RuleSet, data: Any, layer: str, reduce: str,
                notes: list[str]) -> tuple[Any, np.ndarray] | None:
    """``data.test``'s binary codes and their columns of the rule variables (None, noted,
    when they cannot be computed)."""
    meta_thr = rules.meta.get("thresholds") if isinstance(rules.meta, Mapping) else None
    thr = None
    if isinstance(meta_thr, Mapping) and meta_thr.get("values"):
        thr = Thresholds(np.asarray(meta_thr["values"], dtype=float),
                         str(meta_thr.get("method", "given")))
    try:
        if thr is None:  # the training images fit the thresholds the rules do not record
            _, _, thr = codes_for(model, layer, data.train, None, threshold_method="half",
                                  reduce=reduce, progress=False)
        codes, _, _ = codes_for(model, layer, data.test, thr, reduce=reduce, progress=False)
    except Cnn2LogicError as exc:
        notes.append(f"the test images' codes could not be computed (no metrics from the "
                     f"data, no images explained): {exc}")
        return None
    column = {n: i for i, n in enumerate(codes.names)}
    cols = []
    for v in rules.variables:
        if v.name in column:
            cols.append(column[v.name])
        elif v.layer == layer and 0 <= v.index < len(codes.names):
            cols.append(v.index)
        else:
            notes.append(f"rule variable {v.name!r} is not a kernel of layer {layer!r}: "
                         "no metrics from the data, no images explained")
            return None
    return codes, codes.bits[:, cols]
