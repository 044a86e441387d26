"""Write a logic program file: ASP (``.lp``) or Prolog (``.pl``), chosen by format or extension.

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
"""

from __future__ import annotations

import os
from typing import Mapping

from .._io import atomic_write_text
from ..errors import ExportError
from ..rules import RuleSet
from ..units import BinaryCodes
from .asp import to_asp
from .prolog import DEFAULT_MODULE, to_prolog

FORMATS = ("lp", "pl")


def program_text(rules: RuleSet, codes: BinaryCodes | None = None, *, format: str = "lp",
                 unminimized: bool = False, sources: Mapping[str, str] | None = None,
                 module: str = DEFAULT_MODULE) -> str:
    """The ASP (``format="lp"``) or Prolog (``"pl"``) program for ``rules``.

    Raises
    ------
    ExportError
        Unknown format, or the rules / activations cannot be exported.
    """
    if format == "lp":
        return to_asp(rules, codes, unminimized=unminimized, sources=sources)
    if format == "pl":
        return to_prolog(rules, codes, unminimized=unminimized, sources=sources, module=module)
    raise ExportError(f"unknown program format {format!r}: use 'lp' (ASP) or 'pl' (Prolog)")


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
        raise ExportError(f"cannot tell the program format of {os.fspath(path)!r}: "
                          "use --format lp (ASP) or --format pl (Prolog)")
    text = program_text(rules, codes, format=fmt, unminimized=unminimized, sources=sources,
                        module=module)
    atomic_write_text(path, text)
    return text
