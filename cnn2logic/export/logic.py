"""Write a logic program file: ASP (``.lp``) or Prolog (``.pl``), chosen by format or extension.

:data:`FORMATS` is the one list of program languages: the writer of each, and what the
command line says about it.  Adding a language is one writer module in this package and
one :class:`Format` entry here; ``cnn2logic export`` reads its choices from the registry.

Example
-------
>>> import tempfile, pathlib
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet((Variable("k1"),), (Head("a"), Head("b")), (Rule("a", (Literal("k1"),)),),
...              default="b")
>>> out = pathlib.Path(tempfile.mkdtemp()) / "rules.pl"
>>> _ = write_program(out, rs)
>>> out.read_text().splitlines()[0].startswith("% cnn2logic")
True
>>> sorted(FORMATS)
['lp', 'pl']
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

from .._io import atomic_write_text
from ..errors import ExportError
from ..rules import RuleSet
from .asp import to_asp
from .prolog import DEFAULT_MODULE, to_prolog

if TYPE_CHECKING:  # annotations only: importing units loads torch
    from ..units import BinaryCodes


@dataclass(frozen=True)
class Format:
    """One program language.

    Attributes
    ----------
    name : str
        The ``--format`` value, which is also the file extension.
    language : str
        Short name in messages (``"ASP"``).
    kind : str
        What the file is, for ``cnn2logic export``'s report (``"ASP program"``).
    help : str
        The ``--format`` help for this choice.
    write : callable
        ``write(rules, codes, *, unminimized, sources, **options) -> str``.
    options : tuple of str
        The writer's extra keyword options (e.g. ``("module",)``); others are not passed.
    """

    name: str
    language: str
    kind: str
    help: str
    write: Callable[..., str]
    options: tuple[str, ...] = ()


#: Every program language by name, in the order messages list them.
FORMATS: Mapping[str, Format] = {
    "lp": Format("lp", "ASP", "ASP program", "ASP for clingo", to_asp),
    "pl": Format("pl", "Prolog", "Prolog module", "SWI-Prolog module", to_prolog, ("module",)),
}


def program_text(rules: RuleSet, codes: BinaryCodes | None = None, *, format: str = "lp",
                 unminimized: bool = False, sources: Mapping[str, str] | None = None,
                 module: str = DEFAULT_MODULE) -> str:
    """The program for ``rules`` in language ``format`` (a key of :data:`FORMATS`).

    ``module`` goes to the writers that take it (Prolog) and is ignored by the others.

    Raises
    ------
    ExportError
        Unknown format, or the rules / activations cannot be exported.
    """
    spec = FORMATS.get(format)
    if spec is None:
        choices = " or ".join(f"{f.name!r} ({f.language})" for f in FORMATS.values())
        raise ExportError(f"unknown program format {format!r}: use {choices}")
    options = {"module": module}
    return spec.write(rules, codes, unminimized=unminimized, sources=sources,
                      **{k: v for k, v in options.items() if k in spec.options})


def write_program(path: str | os.PathLike[str], rules: RuleSet,
                  codes: BinaryCodes | None = None, *, format: str | None = None,
                  unminimized: bool = False, sources: Mapping[str, str] | None = None,
                  module: str = DEFAULT_MODULE) -> str:
    """Write the program for ``rules`` to ``path`` atomically and return its text.

    ``format`` defaults to the file's extension (``.lp`` or ``.pl``).  On any error no
    partial file is left behind and an existing file is left untouched.

    Raises
    ------
    ExportError
        The format is unknown, or the rules / activations cannot be exported.
    """
    fmt = format or os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    if fmt not in FORMATS:
        choices = " or ".join(f"--format {f.name} ({f.language})" for f in FORMATS.values())
        raise ExportError(f"cannot tell the program format of {os.fspath(path)!r}: "
                          f"use {choices}")
    text = program_text(rules, codes, format=fmt, unminimized=unminimized, sources=sources,
                        module=module)
    atomic_write_text(path, text)
    return text
