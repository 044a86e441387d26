"""Explanations in words: why the rules predict a class for one image, in one or two
sentences built from the deciding rule and the kernels' labels (:mod:`cnn2logic.labels`).

``cnn2logic query ... explain`` prints :func:`explanation` beside its tables (and in
``--json`` as ``words``)::

    Predicted 3 by rule 4: k6 (on for 3, 5, 8) and k8 are on, k4 (on for 4, 9) is off.
    The rules above it do not fire: rule 1 (→ 7) needs k2 on; ...

The first sentence names the literals of the deciding rule that hold (for an M-of-N rule,
how many hold and how many are needed); the second, for the rules ranked above it, the
literals that fail (at most :data:`MAX_EARLIER` rules are named).  The same wording
serves decision lists (the first firing rule decides, earlier rules are its exceptions)
and unordered rule sets (rank order decides among the firing rules).

Example
-------
>>> explanation("8", None, [], {})
'Predicted 8, the default class: no rule fires.'
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from .labels import mention

#: At most this many literals are named per polarity in a sentence; earlier rules named.
MAX_NAMED, MAX_EARLIER = 8, 3


def _join(items: Sequence[str], more: int = 0) -> str:
    items = list(items) + ([f"{more} more"] if more else [])
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _state(names: Sequence[str], labels: Mapping[str, str], on: bool) -> str:
    shown = [mention(n, labels) for n in names[:MAX_NAMED]]
    more = max(len(names) - MAX_NAMED, 0)
    verb = "is" if len(names) == 1 else "are"
    return f"{_join(shown, more)} {verb} {'on' if on else 'off'}"


def explanation(prediction: str | None, deciding: Sequence[Any] | None,
                active: Iterable[str], labels: Mapping[str, str],
                earlier: Sequence[Sequence[Any]] = (), *, n_fired: int = 0) -> str:
    """One or two sentences: why the rules predict ``prediction`` for one image.

    Parameters
    ----------
    prediction : str or None
        The rules' prediction.
    deciding : (rank, class, pos, neg, need) or None
        The first firing rule in rank order (its positive and negative kernels and how
        many literals it needs); None when no rule fires (the default class).
    active : iterable of str
        The image's active kernels.
    labels : mapping
        Kernel name -> label (:func:`kernel_labels`); kernels without one are named bare.
    earlier : sequence of (rank, class, pos, neg, need)
        Rules ranked before the deciding one (all rules when none fires), which do not
        fire; up to :data:`MAX_EARLIER` are explained.
    n_fired : int
        How many rules fire in all (said when more than the deciding one do).

    Returns
    -------
    str

    Examples
    --------
    >>> explanation("3", (4, "3", ["k6", "k8"], ["k4"], 3), ["k6", "k8"],
    ...             {"k6": "on for 3, 5, 8", "k4": "on for 4, 9"})
    'Predicted 3 by rule 4: k6 (on for 3, 5, 8) and k8 are on, k4 (on for 4, 9) is off.'
    """
    on = set(active)
    if deciding is None:
        first = f"Predicted {prediction}, the default class: no rule fires."
    else:
        rank, _cls, pos, neg, need = deciding
        held_pos = [k for k in pos if k in on]
        held_neg = [k for k in neg if k not in on]
        parts = ([_state(held_pos, labels, True)] if held_pos else []) + (
            [_state(held_neg, labels, False)] if held_neg else [])
        n = len(pos) + len(neg)
        by = f"by rule {rank}" + (f" (the first of {n_fired} rules that fire)"
                                  if n_fired > 1 else "")
        if n == 0 or need == 0:
            first = f"Predicted {prediction} {by}, which always fires."
        elif need == n:
            first = f"Predicted {prediction} {by}: {', '.join(parts)}."
        else:
            first = (f"Predicted {prediction} {by}: {len(held_pos) + len(held_neg)} of its "
                     f"{n} conditions hold ({need} needed): {', '.join(parts)}.")
    if not earlier:
        return first
    reasons = []
    for rank, cls, pos, neg, need in earlier[:MAX_EARLIER]:
        miss_pos = [k for k in pos if k not in on]
        miss_neg = [k for k in neg if k in on]
        n = len(pos) + len(neg)
        if need == n:
            wants = ([f"{_join([mention(k, labels) for k in miss_pos[:2]])} on"]
                     if miss_pos else []) + (
                [f"{_join([mention(k, labels) for k in miss_neg[:2]])} off"]
                if miss_neg else [])
            reasons.append(f"rule {rank} (→ {cls}) needs {' and '.join(wants)}")
        else:
            held = n - len(miss_pos) - len(miss_neg)
            reasons.append(f"rule {rank} (→ {cls}) has only {held} of the {need} conditions "
                           "it needs")
    more = len(earlier) - min(len(earlier), MAX_EARLIER)
    why = "; ".join(reasons) + (f"; and {more} more" if more else "") + "."
    if deciding is None:
        return f"Predicted {prediction}, the default class, as no rule fires: {why}"
    return f"{first} The rules above it do not fire: {why}"
