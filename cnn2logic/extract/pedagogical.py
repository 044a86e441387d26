"""The pedagogical baseline: the Boolean function read off the observed codes, minimised.

The network is treated as a black box.  Every distinct binary code seen in training gets
the majority target of the images that produced it (the network's prediction by default,
or the true label); for each class the codes mapped to it form the ON-set, the codes
mapped to other classes the OFF-set, and every code never seen is a don't-care.
espresso (pyeda) then finds a small DNF per class that covers its ON-set and avoids the
OFF-set.  On the training codes the rules reproduce the lookup table exactly; on unseen
codes they generalise however the don't-cares fell.

Codes seen fewer than ``min_count`` times can be made don't-cares as well, and at most
``max_codes`` distinct codes (the most frequent; ties in code order) enter the table: with
many kernels nearly every image has a code of its own, espresso's cost grows with the
number of cubes, and a table of unique codes does not generalise anyway.  When espresso
exceeds its time cap the class keeps its ON-codes as full minterms (the unminimised
lookup table) and ``stats_`` says so.

Example
-------
>>> import numpy as np
>>> X = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]], bool)
>>> y = np.array([1, 1, 0, 0, 0])                         # planted: c1 <- k1 and k2
>>> ext = PedagogicalExtractor().fit(X, y)
>>> [str(r) for r in ext.rules_.rules if r.head == "c1"]
['c1 ← k1 ∧ k2']
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from ..errors import ExtractionError, NotFittedError
from ..rules import Head, RuleSet, Variable
from ._common import (Term, as_codes, as_target, check_count, majority_per_code,
                      most_frequent, names_for, term_rule)


def espresso_on_off(on: np.ndarray, off: np.ndarray, *, timeout: float = 60.0
                    ) -> list[Term] | None:
    """A small DNF true on every row of ``on``, false on every row of ``off``.

    Rows absent from both are don't-cares.  Returns None when espresso exceeds
    ``timeout`` seconds (it runs in a forked process for large inputs).

    Raises
    ------
    ExtractionError
        ``on`` and ``off`` share a row, or espresso itself fails.
    """
    from pyeda.boolalg.espresso import FTYPE, RTYPE

    from ..minimize import _PC_ONE, _PC_ZERO, _run

    on = np.asarray(on, dtype=bool)
    off = np.asarray(off, dtype=bool)
    n = on.shape[1] if on.ndim == 2 else off.shape[1]
    if len(on) == 0:
        return []
    if len(off) == 0:
        return [()]
    if len({r.tobytes() for r in np.packbits(on, axis=1)}
           & {r.tobytes() for r in np.packbits(off, axis=1)}):
        raise ExtractionError("a code is in both the ON- and the OFF-set")
    cover = set()
    for rows, val in ((on, (1,)), (off, (0,))):
        for row in rows:
            cover.add((tuple(_PC_ONE if x else _PC_ZERO for x in row), val))
    return _run(n, cover, FTYPE | RTYPE, timeout)


class PedagogicalExtractor:
    """Rules per class from the observed codes, minimised with unseen codes as don't-cares.

    Parameters
    ----------
    min_count : int
        Codes seen fewer times than this are don't-cares too (1: every code counts).
    max_codes : int
        At most this many distinct codes (the most frequent) form the table; the others
        are don't-cares.
    timeout : float
        espresso's time cap per class in seconds.

    Attributes
    ----------
    rules_ : RuleSet
        Every class's DNF, ranked with :func:`cnn2logic.evaluate.rank_rules`; ``default``
        the most frequent target among training codes no rule covers (all of them when
        every code is covered).
    table_ : tuple of (codes, counts, majority)
        The lookup table read off the training codes.
    stats_ : dict
        ``seconds``, distinct codes, and per class whether espresso finished.

    Raises
    ------
    ExtractionError
        Bad settings or inputs.
    """

    def __init__(self, min_count: int = 1, timeout: float = 60.0,
                 max_codes: int = 3000) -> None:
        check_count("min_count", min_count)
        check_count("max_codes", max_codes)
        if not timeout > 0:
            raise ExtractionError(f"timeout must be positive, got {timeout!r}")
        self.min_count, self.max_codes = int(min_count), int(max_codes)
        self.timeout = float(timeout)

    def get_params(self) -> dict[str, Any]:
        return {"min_count": self.min_count, "timeout": self.timeout,
                "max_codes": self.max_codes}

    def fit(self, X: np.ndarray, y: np.ndarray, *, variables: Sequence[Variable] | None = None,
            heads: Sequence[Head] | None = None, n_classes: int | None = None
            ) -> "PedagogicalExtractor":
        """Read the lookup table off ``(X, y)`` and minimise each class.

        Parameters
        ----------
        X : (samples, n) bool array
            Binary codes of the training images.
        y : (samples,) int array
            Target per sample (normally the network's prediction).
        variables, heads, n_classes : optional
            Names and the number of classes (as in the other extractors).

        Raises
        ------
        ExtractionError
            ``X`` not binary, or shapes disagree.
        """
        start = time.perf_counter()
        X = as_codes(X, "codes")
        if n_classes is None:
            n_classes = len(heads) if heads is not None else int(np.max(y)) + 1
        y = as_target(y, len(X), n_classes)
        variables, heads = names_for(variables, heads, X.shape[1], n_classes)
        codes, counts, majority = majority_per_code(X, y, n_classes)
        self.table_ = (codes, counts, majority)
        used = counts >= self.min_count
        if used.sum() > self.max_codes:
            # the most frequent used codes (unused ones count 0 here; more than
            # max_codes are used, so none of them is picked)
            used = most_frequent(np.where(used, counts, 0), self.max_codes)
        rules = []
        finished: dict[str, bool] = {}
        for c in range(n_classes):
            on = codes[used & (majority == c)]
            off = codes[used & (majority != c)]
            terms = espresso_on_off(on, off, timeout=self.timeout)
            finished[heads[c].name] = terms is not None
            if terms is None:
                # Over the time cap: keep the class's codes as they are (the lookup table).
                terms = [tuple((j, bool(b)) for j, b in enumerate(row)) for row in on]
            rules += [term_rule(heads[c].name, t, variables) for t in terms]
        raw = RuleSet(variables, heads, tuple(rules), None,
                      {"method": "pedagogical", "settings": self.get_params()})
        from ..evaluate import rank_rules

        self.rules_ = rank_rules(raw, X, y)
        self.stats_ = {"seconds": time.perf_counter() - start, "distinct_codes": len(codes),
                       "codes_used": int(used.sum()), "espresso_finished": finished}
        return self

    @property
    def rules(self) -> RuleSet:
        if not hasattr(self, "rules_"):
            raise NotFittedError("call fit() before reading the rules")
        return self.rules_
