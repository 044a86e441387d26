"""What every extractor is, and the registry of extraction methods.

An extractor is configured in ``__init__`` and learns in :meth:`Extractor.fit`, which
has one signature for every method (scikit-learn / imodels style)::

    extractor.fit(X, y=None, *, output=None, variables=None, heads=None)

``X`` is what the method learns from (kernel-unit values or bits; for chaining the list
of :class:`~cnn2logic.extract.chaining.ChainLayer`), ``y`` the target class per sample
(normally the network's prediction) and ``output`` the ``(weight, bias)`` of the linear
output layer for the methods that read it.  The learned rules are in ``rules_``.

A method is registered as a :class:`Method`: its extractor class, its settings dataclass
(:mod:`cnn2logic.extract.config` builds ``ExtractConfig``, the CLI options and the
settings check from these) and the ``prepare`` step the driver
(:mod:`cnn2logic.extract.run`) calls to capture and binarise the model's units for it.
Adding a method is one module that declares its extractor, its settings section and its
``prepare`` step and calls :func:`register`, plus its import line in
``cnn2logic/extract/__init__.py`` (which fixes its place in the registry).  The CLI
options, the settings check, ``ExtractConfig``'s fields, the contract test and the docs
check all follow from the registry.

Example
-------
>>> import cnn2logic.extract
>>> list(REGISTRY)
['approximation', 'mofn', 'eric', 'chaining', 'pedagogical', 'rulelist']
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ExtractionError, NotFittedError
from ..rules import Head, RuleSet, Variable


class Extractor:
    """Base class of the rule extractors.

    Subclasses take their settings as ``__init__`` keyword arguments (stored under the
    same names, so :meth:`get_params` can read them back) and implement :meth:`fit`.

    Attributes
    ----------
    rules_ : RuleSet
        The learned rules (set by :meth:`fit`).
    """

    def get_params(self) -> dict[str, Any]:
        """The settings given to ``__init__``, by name (scikit-learn's convention).

        Returns
        -------
        dict
            One entry per ``__init__`` parameter.
        """
        names = [p for p in inspect.signature(type(self).__init__).parameters
                 if p != "self"]
        return {name: getattr(self, name) for name in names}

    def fit(self, X: Any, y: np.ndarray | None = None, *,
            output: tuple[np.ndarray, np.ndarray | None] | None = None,
            variables: Sequence[Variable] | None = None,
            heads: Sequence[Head] | None = None) -> "Extractor":
        """Learn the rules (the same signature for every method; module docstring).

        Parameters
        ----------
        X : array or sequence
            What the method learns from.
        y : (samples,) int array, optional
            Target class per sample.
        output : (weight, bias), optional
            The linear output layer.
        variables, heads : optional
            Names of the inputs and of the classes.

        Returns
        -------
        Extractor
            ``self``, with ``rules_`` set.

        Raises
        ------
        NotImplementedError
            In this base class.
        """
        raise NotImplementedError

    @property
    def rules(self) -> RuleSet:
        """The learned rules.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        if not hasattr(self, "rules_"):
            raise NotFittedError("call fit() before reading the rules")
        return self.rules_


@dataclass
class Prepared:
    """What a method's ``prepare`` step hands the driver.

    ``fit_args`` are the keyword arguments of ``extractor.fit`` (``X``, ``y``, ``output``,
    ``variables``, ``heads``); after the fit the driver calls ``finish(extractor)``,
    which returns the :class:`Outcome`.
    """

    extractor: Extractor
    fit_args: dict[str, Any]
    finish: Callable[[Extractor], "Outcome"]


@dataclass
class Outcome:
    """A fitted method's rules and codes, and how the driver ranks and reports them.

    Attributes
    ----------
    unminimized : RuleSet
        The extractor's rules before minimisation.
    train_codes, test_codes : BinaryCodes
        The codes the rules read (saved as ``codes-*.npz``).
    target : ndarray
        Per training code, what rules are ranked against.
    rank_default : str or None
        ``default`` of :func:`cnn2logic.evaluate.rank_rules` for the minimised rules.
    binarized_accuracy : float or None
        The output layer's accuracy on the test bits (None when it does not read them).
    thresholds : dict
        The binarisation, as stored in the rules file's ``meta``.
    settings : dict
        Entries added to ``meta["settings"]`` (what the method resolved itself).
    meta : dict
        Entries added to (or replacing) the rules file's ``meta``.
    """

    unminimized: RuleSet
    train_codes: Any
    test_codes: Any
    target: np.ndarray
    rank_default: str | None
    binarized_accuracy: float | None
    thresholds: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """One registered extraction method (``cnn2logic extract --method NAME``).

    Attributes
    ----------
    name : str
        The ``--method`` value.
    extractor : type
        Its :class:`Extractor` subclass.
    settings : type
        Its settings dataclass (fields with :func:`cnn2logic.extract.config.setting`).
    prepare : callable
        ``prepare(inputs) -> Prepared``, ``inputs`` a
        :class:`cnn2logic.extract.run.ModelInputs`.
    summary : str
        A few words for the ``--method`` help.
    kind : {"guaranteed", "learned"}
        ``guaranteed``: every rule is sound in the worst case over all inputs (the
        approximation method); ``learned``: the rules hold on the measured share of the
        data (their fidelity), nothing more.  Written to the rules file, ``rules.md``, the
        programs and the report.
    ordered : bool
        The rules are a decision list whose order is part of the program (an earlier rule
        is an exception to the later ones): the driver neither minimises per class nor
        re-ranks them.
    """

    name: str
    extractor: type
    settings: type
    prepare: Callable[[Any], Prepared]
    summary: str
    kind: str = "learned"
    ordered: bool = False


#: What a method's rules promise (see :class:`Method`).
RULE_KINDS = ("guaranteed", "learned")

# Filled by the method modules as ``cnn2logic.extract`` imports them, in that order.
REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`REGISTRY`.

    Raises
    ------
    ExtractionError
        A method of that name is already registered.
    """
    if method.kind not in RULE_KINDS:
        raise ExtractionError(f"method {method.name!r}: kind must be one of {RULE_KINDS}")
    if method.name in REGISTRY:
        raise ExtractionError(f"method {method.name!r} is registered twice")
    REGISTRY[method.name] = method
    return method
