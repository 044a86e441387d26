"""Approximation-method extraction by class parts: independent jobs, joined afterwards.

Each class's terms depend only on the output layer's weights (the argmax-sound conditions
compare a class with all others, but read nothing else), so the classes of one layer can
be extracted by separate jobs on separate machines:

1. :func:`parse_classes` turns ``"3"``, ``"0,2,5"``, ``"0-4"`` or ``"i/n"`` into the class
   names of one job;
2. :func:`extract_part` extracts and ranks the rules of those classes on the training
   codes, recording which classes it did and a :func:`codes_digest` of the codes;
3. :func:`merge_rule_parts` checks that the parts fit together and cover every class
   exactly once, and ranks (and, with test codes, evaluates) the joined rule set, equal to
   extracting all classes at once.

The search, the default order and the ranking are those of
:class:`~cnn2logic.extract.approximation.ApproximationExtractor` and
:func:`cnn2logic.evaluate.rank_rules`.  The command line is ``cnn2logic extract-part``
and ``cnn2logic merge``.

Example
-------
>>> parse_classes("1/3", ("a", "b", "c", "d"))
('b',)
>>> parse_classes("a-c", ("a", "b", "c", "d"))
('a', 'b', 'c')
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from ..errors import DataError, ExtractionError, RulesFileError
from ..evaluate import evaluate_rules, rank_rules, term_counts
from ..minimize import minimize_terms
from ..rules import Head, Literal, Rule, RuleSet
from ..units import BinaryCodes, parse_shard
from .approximation import ApproximationExtractor, class_terms, default_order

PART_KEY = "part_classes"


def parse_classes(text: str, heads: Sequence[str]) -> tuple[str, ...]:
    """``"3"``, ``"0,2,5"``, ``"0-4"`` or ``"job 2/5"``-style ``"2/5"`` as head names.

    ``i/n`` picks every class whose position modulo ``n`` is ``i``, so ``n`` jobs cover
    all classes.

    Parameters
    ----------
    text : str
        The selection.
    heads : sequence of str
        All class names, in order.

    Returns
    -------
    tuple of str
        The selected names, each once, in the order given.

    Raises
    ------
    ExtractionError
        Unknown class or malformed text.
    """
    text = text.strip()
    if "/" in text:
        try:
            i, n = parse_shard(text)
        except DataError as exc:
            raise ExtractionError(str(exc)) from None
        return tuple(h for j, h in enumerate(heads) if j % n == i)
    out: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "-" in part and part not in heads:
            a, _, b = part.partition("-")
            if a not in heads or b not in heads:
                raise ExtractionError(f"unknown class range {part!r}; classes: {list(heads)}")
            ia, ib = heads.index(a), heads.index(b)
            if ia > ib:  # an empty range would otherwise drop silently
                raise ExtractionError(f"class range {part!r} is empty: {a!r} comes after "
                                      f"{b!r} (write {b}-{a})")
            out.extend(heads[ia:ib + 1])
        elif part in heads:
            out.append(part)
        else:
            raise ExtractionError(f"unknown class {part!r}; classes: {list(heads)}")
    if not out:
        raise ExtractionError("no classes selected")
    return tuple(dict.fromkeys(out))


def rank_target(codes: BinaryCodes) -> np.ndarray | None:
    """What rules are ranked against: the network's predictions, else the labels.

    Parameters
    ----------
    codes : BinaryCodes

    Returns
    -------
    np.ndarray or None
    """
    return codes.predictions if codes.predictions is not None else codes.labels


def codes_digest(codes: BinaryCodes) -> str:
    """A short digest of codes' bits and labels: parts ranked on other codes do not merge.

    Parameters
    ----------
    codes : BinaryCodes

    Returns
    -------
    str
        16 hexadecimal digits of a SHA-256 over the packed bits, labels and predictions.
    """
    h = hashlib.sha256()
    h.update(np.packbits(codes.bits, axis=1).tobytes())
    for arr in (codes.labels, codes.predictions):
        if arr is not None:
            h.update(np.asarray(arr, np.int64).tobytes())
    return h.hexdigest()[:16]


def _check_settings(order: int | None, mode: str, search: str, minimize: str) -> None:
    """The extractor's own checks, plus what a per-class job cannot do."""
    ApproximationExtractor(order=order, mode=mode, search=search)  # validates the settings
    if search == "truth-table":
        raise ExtractionError("per-class jobs use the pruned or naive search")
    if minimize not in ("exact", "none"):
        raise ExtractionError("per-class jobs minimise 'exact' or 'none' (on-codes needs every "
                              "class's codes at once)")


def _keep_best(ranked: RuleSet, max_terms: int | None) -> RuleSet:
    """At most ``max_terms`` rules per head, best ranked first (as the extractor keeps)."""
    if max_terms is None:
        return ranked
    kept, count = [], {}
    for r in ranked.rules:
        count[r.head] = count.get(r.head, 0) + 1
        if count[r.head] <= max_terms:
            kept.append(r)
    return ranked.replace(rules=tuple(kept))


def extract_part(weight: np.ndarray, bias: np.ndarray, codes: BinaryCodes,
                 classes: Sequence[str] | None = None, *, order: int | None = 3,
                 mode: str = "argmax", search: str = "pruned", minimize: str = "exact",
                 minimize_timeout: float = 60.0, max_terms: int | None = None,
                 layer_names: tuple[str, str] = ("", "out")) -> RuleSet:
    """The rules of the selected classes only, ranked on ``codes`` (the training codes).

    Ranked by precision against the network's predictions, as
    :func:`~cnn2logic.pipeline.extract_model` ranks.  Every class's terms depend only on
    ``weight`` and ``bias`` (the whole output layer, as the argmax-sound conditions compare
    a class with all others), so jobs over disjoint class sets can run anywhere and be
    joined with :func:`merge_rule_parts`.

    Parameters
    ----------
    weight, bias : np.ndarray
        The output layer, (classes, units) and (classes,).
    codes : BinaryCodes
        The training codes.
    classes : sequence of str, optional
        The classes of this job (default all).
    order, mode, search
        As :class:`~cnn2logic.extract.approximation.ApproximationExtractor` (``order``
        None: its default order; no truth-table search).
    minimize : {"exact", "none"}
        Minimise each class's terms exactly, or not.
    minimize_timeout : float
        Seconds per class for the exact minimisation.
    max_terms : int, optional
        Keep at most this many rules per class, best ranked first.
    layer_names : (str, str)
        The captured layer and the output layer, recorded in ``meta``.

    Returns
    -------
    RuleSet
        With ``meta["part_classes"]``, the settings and the codes' digest.

    Raises
    ------
    ExtractionError
        Weights and codes do not fit, or bad settings.
    """
    W = np.asarray(weight, np.float64)
    b = np.asarray(bias, np.float64)
    n = len(codes.variables)
    if W.ndim != 2 or W.shape[1] != n or b.shape != (W.shape[0],):
        raise ExtractionError(f"output layer {W.shape} does not read the codes' {n} kernel units")
    head_names = (tuple(codes.classes) if len(codes.classes) == W.shape[0]
                  else tuple(str(c) for c in range(W.shape[0])))
    heads = tuple(Head(h, "class", layer_names[1], i) for i, h in enumerate(head_names))
    selected = tuple(head_names) if classes is None else tuple(classes)
    unknown = [c for c in selected if c not in head_names]
    if unknown:
        raise ExtractionError(f"unknown classes {unknown}; classes: {list(head_names)}")
    _check_settings(order, mode, search, minimize)
    k = min(order if order is not None else default_order(n), n)
    names = [v.name for v in codes.variables]
    rules: list[Rule] = []
    report: dict[str, Any] = {}
    for c in selected:
        terms = class_terms(W, b, head_names.index(c), mode, search, k)
        if minimize == "exact":
            res = minimize_terms(terms, n, timeout=minimize_timeout)
            terms, report[c] = res.terms, {"kind": res.kind, "before": res.before,
                                            "after": res.after, "note": res.note}
        rules.extend(Rule(c, tuple(Literal(names[v], p) for v, p in t)) for t in terms)
    raw = RuleSet(codes.variables, heads, tuple(rules), None)
    ranked = _keep_best(rank_rules(raw, codes.bits, rank_target(codes), default=None),
                        max_terms)
    meta = {"method": "approximation", "output_layer": layer_names[1], "layer": layer_names[0],
            PART_KEY: list(selected),
            "settings": {"order": order, "order_used": k, "mode": mode, "search": search,
                         "minimize": minimize, "max_terms": max_terms},
            "minimization": report, "codes_digest": codes_digest(codes)}
    return ranked.replace(meta=meta)


def _check_parts(parts: Sequence[RuleSet], digest: str) -> None:
    """Refuse parts that disagree, overlap, leave classes out or were ranked elsewhere."""
    first = parts[0]
    covered: list[str] = []
    for i, part in enumerate(parts):
        if PART_KEY not in part.meta:
            raise RulesFileError(f"part {i + 1} is not a per-class part (no {PART_KEY!r} in meta)")
        if part.variables != first.variables or part.heads != first.heads:
            raise RulesFileError(f"part {i + 1} has other kernels or classes than part 1")
        if dict(part.meta.get("settings", {})) != dict(first.meta.get("settings", {})):
            raise RulesFileError(f"part {i + 1} was extracted with other settings than part 1")
        if part.meta.get("codes_digest") != digest:
            raise RulesFileError(f"part {i + 1} was ranked on other codes than those given")
        covered.extend(part.meta[PART_KEY])
    dup = sorted({c for c in covered if covered.count(c) > 1})
    missing = [h for h in first.head_names if h not in covered]
    if dup:
        raise RulesFileError(f"classes extracted by more than one part: {dup}")
    if missing:
        raise RulesFileError(f"classes no part extracted: {missing}")


def merge_rule_parts(parts: Sequence[RuleSet], codes: BinaryCodes,
                     test_codes: BinaryCodes | None = None) -> RuleSet:
    """Join per-class parts into one ranked rule set with its default class.

    The parts must share variables, heads and settings, have been ranked on ``codes`` and
    cover every class exactly once.  With ``test_codes`` the merged rules carry the
    evaluation in ``meta["metrics"]``.

    Parameters
    ----------
    parts : sequence of RuleSet
        From :func:`extract_part`.
    codes : BinaryCodes
        The training codes the parts were ranked on.
    test_codes : BinaryCodes, optional
        Codes to evaluate the merged rules on (:func:`cnn2logic.evaluate.evaluate_rules`).

    Returns
    -------
    RuleSet

    Raises
    ------
    RulesFileError
        Parts disagree, overlap, leave classes out, or were ranked on other codes.
    """
    if not parts:
        raise RulesFileError("no rule parts to merge")
    _check_parts(parts, codes_digest(codes))
    first = parts[0]
    merged = first.replace(rules=tuple(r for p in parts for r in p.rules), meta={})
    ranked = rank_rules(merged, codes.bits, rank_target(codes))
    minimization: dict[str, Any] = {}
    for p in parts:
        minimization.update(p.meta.get("minimization", {}))
    meta = {k: v for k, v in first.meta.items() if k not in (PART_KEY, "minimization")}
    meta.update({"merged_parts": len(parts), "minimization": minimization})
    if test_codes is not None:
        if test_codes.names != codes.names:
            raise RulesFileError("test codes have other kernels than the training codes")
        metrics = evaluate_rules(ranked, test_codes.bits, test_codes.labels,
                                 test_codes.predictions)
        metrics.update(term_counts(ranked))
        meta["metrics"] = metrics
    return ranked.replace(meta=meta)
