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

from dataclasses import dataclass

import time
from typing import Any, Sequence

import numpy as np

from ..errors import ExtractionError
from ..evaluate import rank_rules
from ..rules import Head, RuleSet, Variable
from ._common import (as_codes, as_target, check_count, espresso_on_off, majority_per_code,
                      most_frequent, names_for, term_rule)
from .base import Extractor, Method, Outcome, Prepared, register
from .config import Settings
from .layers import ModelInputs, binarise, bits_fit_args, learned_outcome


@dataclass(frozen=True)
class PedagogicalSettings(Settings):
    """Pedagogical has no settings of its own (it uses threshold, alpha, gamma, timeout)."""


class PedagogicalExtractor(Extractor):
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
        """The settings, as stored in the rules' meta."""
        return {"min_count": self.min_count, "timeout": self.timeout,
                "max_codes": self.max_codes}

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            output: tuple[np.ndarray, np.ndarray | None] | None = None,
            variables: Sequence[Variable] | None = None,
            heads: Sequence[Head] | None = None, n_classes: int | None = None
            ) -> "PedagogicalExtractor":
        """Read the lookup table off ``(X, y)`` and minimise each class.

        Parameters
        ----------
        X : (samples, n) bool array
            Binary codes of the training images.
        y : (samples,) int array
            Target per sample (normally the network's prediction).
        output : ignored
            (The lookup table does not read the output layer.)
        variables, heads, n_classes : optional
            Names and the number of classes (as in the other extractors).

        Returns
        -------
        PedagogicalExtractor
            ``self``.

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
        self.rules_ = rank_rules(raw, X, y)
        self.stats_ = {"seconds": time.perf_counter() - start, "distinct_codes": len(codes),
                       "codes_used": int(used.sum()), "espresso_finished": finished}
        return self


def prepare(inputs: ModelInputs) -> Prepared:
    """The driver's capture step: ``config.threshold`` / ``config.reduce`` on
    ``config.layer``, like the approximation method.

    Raises
    ------
    ModelError
        ``config.layer`` does not exist.
    """
    config = inputs.config
    bin_ = binarise(inputs, config.threshold)
    extractor = PedagogicalExtractor(timeout=config.minimize_timeout)

    def finish(ext: PedagogicalExtractor) -> Outcome:
        lookup = {k: v for k, v in ext.stats_.items() if k != "seconds"}
        return learned_outcome(inputs, bin_, ext.rules_, {"pedagogical": {"lookup": lookup}})

    return Prepared(extractor, bits_fit_args(inputs, bin_), finish)


register(Method("pedagogical", PedagogicalExtractor, PedagogicalSettings, prepare,
                "observed codes minimised"))
