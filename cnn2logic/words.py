"""Explanations in words: why the rules predict a class for one image, in one or two
sentences built from the deciding rule and the kernels' labels (:mod:`cnn2logic.labels`).

``cnn2logic query ... explain`` prints :func:`explanation` beside its tables (and in
``--json`` as ``words``)::

    Predicted 3 by rule 4: k6 (on for 3, 5, 8) and k8 are on, k4 (on for 4, 9) is off.
    The rules above it do not fire: rule 1 (→ 7) needs k2 on; ...

:func:`why` chooses the deciding rule and the rules above it from all class rules and
the ranks that fire; the query and the report's "Why the network decided" both call it.
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

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .labels import mention

if TYPE_CHECKING:  # only for annotations: cnn2logic.rules imports cnn2logic.labels
    from .rules import RuleSet

#: One class rule as the explanation reads it: ``(rank, class, pos, neg, need)``.
Term = tuple[int, str, Sequence[str], Sequence[str], int]

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


def rule_terms(rules: "RuleSet") -> list[Term]:
    """The class rules of ``rules`` as ``(rank, class, pos, neg, need)``, in rank order.

    The rank is the rule's 1-based position in the rule list, as in an exported program
    (:func:`cnn2logic.export.model.prepare`), and the kernels of each polarity are in
    (layer, index) order, as the queries name them; rules concluding a kernel are left
    out (they are not class rules).

    Parameters
    ----------
    rules : RuleSet

    Returns
    -------
    list of (int, str, list of str, list of str, int)
    """
    kind = {h.name: h.kind for h in rules.heads}
    key = {v.name: (v.layer, int(v.index), v.name) for v in rules.variables}

    def ordered(names: Iterable[str]) -> list[str]:
        return sorted(set(names), key=lambda n: key.get(n, ("", 0, n)))

    return [(rank, rule.head, ordered(l.var for l in rule.body if l.positive),
             ordered(l.var for l in rule.body if not l.positive), int(rule.threshold))
            for rank, rule in enumerate(rules.rules, 1) if kind.get(rule.head) == "class"]


def why(prediction: str | None, terms: Sequence[Term], fired: Iterable[int],
        active: Iterable[str], labels: Mapping[str, str]) -> str:
    """:func:`explanation` of one image from all class rules and the ranks that fire.

    The deciding rule is the first firing one in rank order; the rules ranked above it
    (all rules when none fires) are the ones that do not fire.  ``cnn2logic query ...
    explain`` and the report's "Why the network decided" both call this, so that they
    say the same words.

    Parameters
    ----------
    prediction : str or None
        The rules' prediction for the image.
    terms : sequence of (rank, class, pos, neg, need)
        Every class rule, in rank order (e.g. :func:`rule_terms`).
    fired : iterable of int
        The ranks of the class rules that fire for the image.
    active : iterable of str
        The image's active kernels.
    labels : mapping
        Kernel name -> label.

    Returns
    -------
    str

    Examples
    --------
    >>> why("1", [(1, "3", ["k6"], [], 1), (2, "1", ["k2"], [], 1)], [2], ["k2"], {})
    'Predicted 1 by rule 2: k2 is on. The rules above it do not fire: rule 1 (→ 3) needs k6 on.'
    """
    ranks = set(fired)
    firing = [t for t in terms if t[0] in ranks]
    deciding = firing[0] if firing else None
    earlier = [t for t in terms if deciding is None or t[0] < deciding[0]]
    return explanation(prediction, deciding, active, labels, earlier, n_fired=len(firing))
