"""The settings of an extraction: common sections and one dataclass per method.

Every setting is declared once, as a field made with :func:`setting`: its default, its
``cnn2logic extract`` option (flags, parser, choices, help text) and its check.  From these
declarations come

Common sections are declared here; each method declares its own section in its module
and registers it (:class:`~cnn2logic.extract.base.Method`), and :func:`build` assembles

* :class:`ExtractConfig`, the flat settings object every caller uses (all fields of
  :data:`SECTIONS`, in order, so ``ExtractConfig(order=3, method="mofn")`` keeps working
  and ``dataclasses.asdict`` gives the ``settings`` stored in a rules file);
* the settings check (:meth:`Settings.check`), run when a config is made;
* the CLI options (:func:`cnn2logic.cli.extract.register` reads :data:`SECTIONS`).

A method reads the settings of other sections too where it shares them (chaining uses
ERIC's ``alpha``/``gamma``/``norm`` and the tree settings, and the approximation
method's ``order``); each is still declared in one place.

Example
-------
>>> from cnn2logic.extract import ExtractConfig
>>> from cnn2logic.extract.mofn import MofNSettings
>>> c = ExtractConfig(method="mofn", beta=0.1)
>>> c.section(MofNSettings)
MofNSettings(beta=0.1, max_n=None)
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from typing import Any, Callable, Sequence

from ..errors import ExtractionError
from ..units import BINARISATIONS, REDUCTIONS, THRESHOLDS
from .base import REGISTRY

# Choices of the approximation and chaining settings (re-exported by those modules).
MODES = ("argmax", "per-logit")
SEARCHES = ("pruned", "naive", "truth-table")
LEARNERS = ("auto", "approximation", "tree")
MINIMIZE = ("exact", "on-codes", "none")
TARGETS = ("prediction", "label")
CHAIN_THRESHOLDS = tuple(t for t in THRESHOLDS if t != "half")

Check = Callable[[Any], None]


def setting(default: Any, *, help: str | None = None, flags: Sequence[str] = (),
            parse: str = "str", choices: Sequence[str] | None = None,
            check: Check | None = None, const: Any = None) -> Any:
    """A settings field: its default, its CLI option and its check.

    Parameters
    ----------
    default : object
        The default value (also the CLI default).
    help : str, optional
        The option's help text.
    flags : sequence of str
        Extra option strings (``--name`` from the field name always comes first).
    parse : {"str", "int", "float", "positive_int", "positive_float", "flag", "names", \
"optional_fraction"}
        How the CLI parses the option (``names``: a comma-separated list;
        ``optional_fraction``: a number in (0, 1], or ``const`` when the option is given
        without one).
    choices : sequence of str, optional
        The CLI choices.
    check : callable, optional
        Raises :class:`~cnn2logic.errors.ExtractionError` for a bad value.
    const : object, optional
        The value of an ``optional_fraction`` option given without a value.

    Returns
    -------
    dataclasses.Field
    """
    return field(default=default, metadata={"help": help, "flags": tuple(flags),
                                            "parse": parse, "choices": choices,
                                            "check": check, "const": const})


def one_of(label: str, choices: Callable[[], Sequence[str]] | Sequence[str]) -> Check:
    """A check: the value is one of ``choices`` (a callable is read when checking).

    Returns
    -------
    callable
        Raising ``ExtractionError("unknown LABEL 'x'; choose from ...")``.
    """
    def check(value: Any) -> None:
        allowed = choices() if callable(choices) else choices
        if value not in allowed:
            raise ExtractionError(f"unknown {label} {value!r}; choose from {allowed}")
    return check


def at_least_one(label: str) -> Check:
    """A check: None or a number ≥ 1.

    Returns
    -------
    callable
        Raising ``ExtractionError("LABEL must be ≥ 1, got x")``.
    """
    def check(value: Any) -> None:
        if value is not None and value < 1:
            raise ExtractionError(f"{label} must be ≥ 1, got {value}")
    return check


def finite(label: str, minimum: float | None = None) -> Check:
    """A check: a finite number (and ≥ ``minimum`` when given).

    Returns
    -------
    callable
        Raising ``ExtractionError`` naming ``label``.
    """
    def check(value: Any) -> None:
        if minimum is None:
            if not math.isfinite(value):
                raise ExtractionError(f"{label} must be a finite number")
        elif not (math.isfinite(value) and value >= minimum):
            raise ExtractionError(f"{label} must be a finite number ≥ {minimum:g}, "
                                  f"got {value}")
    return check


class Settings:
    """Base of the settings dataclasses: checks every field on construction.

    ``GROUP`` is the CLI argument group of the section's options (``"main"``: the
    command's own options; ``"method"``: the "method" group).
    """

    GROUP = "method"

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Run every field's check.

        Raises
        ------
        ExtractionError
            The first bad value.
        """
        check_fields(self, fields(self))


def check_fields(obj: Any, which: Sequence[Any]) -> None:
    """Run the checks of the fields ``which`` on ``obj``'s values.

    Raises
    ------
    ExtractionError
        The first bad value.
    """
    for f in which:
        check = f.metadata.get("check")
        if check is not None:
            check(getattr(obj, f.name))


@dataclass(frozen=True)
class CaptureSettings(Settings):
    """Common: which layers, and how kernel units are binarised."""

    GROUP = "main"
    layer: str = setting("auto", help="layer whose kernels are the rule variables (default "
                         "'auto': a spec net's 'pool'; on any other CNN the last map after "
                         "the last convolution, e.g. torchvision's 'avgpool')")
    output: str = setting("auto", help="linear layer the rules replace (default 'auto': a "
                          "spec net's 'out', else the last linear layer: the class scores)")
    threshold: str = setting(
        "auto", choices=BINARISATIONS, check=one_of("threshold", BINARISATIONS),
        help="binarisation: 'auto' (default: 'half' on units in [0, 1], else 'infogain'; "
             "rulelist: 'lookup' up to 16 kernels), 'half' (0.5, sigmoid units), per-kernel "
             "statistics, or fitted for fidelity to the network ('infogain', 'lookup')")
    reduce: str = setting("max", choices=REDUCTIONS, check=one_of("reduction", REDUCTIONS),
                          help="how a kernel's map becomes one unit")


#: ``--group-kernels`` given without a threshold (see :mod:`cnn2logic.extract.grouping`).
GROUP_THRESHOLD = 0.9


def fraction_or_none(label: str) -> Check:
    """A check: None or a number in (0, 1].

    Returns
    -------
    callable
        Raising ``ExtractionError`` naming ``label``.
    """
    def check(value: Any) -> None:
        if value is not None and not (isinstance(value, (int, float))
                                      and not isinstance(value, bool) and 0 < value <= 1):
            raise ExtractionError(f"{label} must be a number in (0, 1], got {value!r}")
    return check


@dataclass(frozen=True)
class GroupingSettings(Settings):
    """Common: merge kernels that respond to the same inputs into one predicate."""

    GROUP = "main"
    group_kernels: float | None = setting(
        None, parse="optional_fraction", const=GROUP_THRESHOLD,
        check=fraction_or_none("group threshold"),
        help="merge kernels whose binary codes agree on at least this share of the training "
             f"images (default {GROUP_THRESHOLD}) into one predicate, on iff any member is "
             "on (methods on binary codes: rulelist, pedagogical)")


@dataclass(frozen=True)
class ApproximationSettings(Settings):
    """The approximation method's settings (``order`` is also chaining's)."""

    GROUP = "main"
    order: int | None = setting(None, flags=("-k",), parse="int",
                                check=at_least_one("order k"),
                                help="largest term order k (default: all units when ≤ 12, "
                                     "else 3)")
    mode: str = setting("argmax", choices=MODES, check=one_of("mode", MODES),
                        help="softmax treatment: argmax-sound or per-logit sigmoid")
    search: str = setting("pruned", choices=SEARCHES, check=one_of("search", SEARCHES))
    data_limited: bool = setting(False, parse="flag",
                                 help="worst case over covered training codes instead of "
                                      "the whole cube")
    min_support: int = setting(1, parse="positive_int")
    max_terms: int | None = setting(None, parse="positive_int",
                                    help="keep at most N terms per class (best ranked)")


@dataclass(frozen=True)
class MinimizeSettings(Settings):
    """Common: the driver's espresso step (its timeout also caps pedagogical/chaining)."""

    GROUP = "main"
    minimize: str = setting("exact", choices=MINIMIZE, check=one_of("minimisation", MINIMIZE),
                            help="espresso: exact equivalence, or don't-cares off the "
                                 "observed codes")
    minimize_timeout: float = setting(60.0, parse="positive_float")


@dataclass(frozen=True)
class MethodChoice(Settings):
    """Common: which registered method runs."""

    method: str | None = setting(
        None, check=one_of("method", lambda: list(REGISTRY)),
        help="default: rulelist, or approximation when one of its settings (--order, "
             "--mode, --search, --data-limited, --min-support, --max-terms) is given")


@dataclass(frozen=True)
class LearnedSettings(Settings):
    """Common to the learned methods (all but approximation)."""

    target: str = setting("prediction", choices=TARGETS, check=one_of("target", TARGETS),
                          help="learned methods fit the network's prediction (fidelity) or "
                               "the true label")


# The common sections before and after the methods' own: ExtractConfig's fields and the
# CLI options come in this order (build() puts each registered method's section between).
COMMON_FIRST: tuple[type[Settings], ...] = (
    CaptureSettings, GroupingSettings, ApproximationSettings, MinimizeSettings, MethodChoice)
COMMON_LAST: tuple[type[Settings], ...] = (LearnedSettings,)
#: Every section, common and per method (set by :func:`build`).
SECTIONS: tuple[type[Settings], ...] = ()
# Checked for every config; the others only when another method is chosen or
# chain_layers is given (as before the split: an approximation run ignores them).
ALWAYS_CHECKED = (CaptureSettings, GroupingSettings, ApproximationSettings, MinimizeSettings)


#: The method of a config that names none (see :func:`default_method`).
DEFAULT_METHOD = "rulelist"


def default_method(config: Any) -> str:
    """The method a config without ``method`` runs.

    :data:`DEFAULT_METHOD`, unless a setting only the approximation method reads differs
    from its default: asking for ``order=3`` or ``mode="per-logit"`` means that method.
    """
    for f in fields(ApproximationSettings):
        if getattr(config, f.name) != f.default:
            return "approximation"
    return DEFAULT_METHOD


def _post_init(self: Any) -> None:
    if self.method is None:
        object.__setattr__(self, "method", default_method(self))
    if self.chain_layers is not None:
        object.__setattr__(self, "chain_layers", tuple(self.chain_layers))
    if self.method != "approximation" or self.chain_layers is not None:
        for section in SECTIONS:
            if section not in ALWAYS_CHECKED:
                check_fields(self, fields(section))
    for section in ALWAYS_CHECKED:
        check_fields(self, fields(section))


def _section(self: Any, cls: type) -> Any:
    """This config's values of the section ``cls`` as a ``cls`` instance.

    Raises
    ------
    ExtractionError
        A value of the section fails its check.
    """
    return cls(**{f.name: getattr(self, f.name) for f in fields(cls)})


def _config_fields(sections: Sequence[type]) -> list[tuple[str, Any, Any]]:
    out = []
    for section in sections:
        for f in fields(section):
            default = f.default if f.default is not MISSING else None
            out.append((f.name, f.type, field(default=default, metadata=f.metadata)))
    return out


def build() -> type:
    """Make :data:`SECTIONS` and :class:`ExtractConfig` from the registered methods.

    Called once by ``cnn2logic/extract/__init__.py`` after every method module has
    registered itself (each declares its own settings section), so that a method's
    settings live in its module and reach the config and the CLI from the registry.

    Returns
    -------
    type
        ``ExtractConfig``.
    """
    global SECTIONS, ExtractConfig
    own = []
    for method in REGISTRY.values():
        if method.settings not in COMMON_FIRST + COMMON_LAST + tuple(own):
            own.append(method.settings)
    SECTIONS = COMMON_FIRST + tuple(own) + COMMON_LAST
    ExtractConfig = make_dataclass(
        "ExtractConfig", _config_fields(SECTIONS), frozen=True,
        namespace={"__post_init__": _post_init, "section": _section,
                   "__module__": __name__,
                   "__doc__": "Settings of one extraction: the fields of every section of "
                              ":data:`SECTIONS` (all of them end up in the rules file's "
                              "``meta``).\n\n    ``section(cls)`` returns one section's "
                              "values.\n\n    Raises\n    ------\n    ExtractionError\n"
                              "        A setting fails its check.\n"})
    return ExtractConfig
