"""The one place where user-given names become ASP / Prolog identifiers.

Classes, layers and kernels can be called anything (``Conv1``, ``cat-dog``, ``3``,
``größe``).  Logic programs need identifiers that are constants in both clingo and
SWI-Prolog: a lower-case ASCII letter followed by letters, digits and underscores.
:class:`NameTable` maps every original name to such an identifier, deterministically and
injectively (a clash gets a numeric suffix), and the original text is kept in quoted form
(:func:`asp_string`, :func:`prolog_atom`) so programs can print it back.

Example
-------
>>> t = NameTable("c")
>>> [t.add(n) for n in ["3", "cat-dog", "Cat_Dog", "cat dog"]]
['c_3', 'c_cat_dog', 'c_cat_dog_2', 'c_cat_dog_3']
>>> t.original("c_cat_dog_2")
'Cat_Dog'
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

_IDENT = re.compile(r"^[a-z][a-zA-Z0-9_]*$")


def identifier(name: str, prefix: str) -> str:
    """The readable identifier for ``name`` (not yet made unique).

    Accents are folded to ASCII, everything else outside ``[a-z0-9]`` becomes ``_``, and
    ``prefix`` (a lower-case word such as ``k`` or ``c``) guarantees a legal first letter.
    """
    if not re.fullmatch(r"[a-z][a-z0-9]*", prefix):
        raise ValueError(f"identifier prefix must be a lower-case word, got {prefix!r}")
    folded = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    body = re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")
    return f"{prefix}_{body}" if body else prefix


class NameTable:
    """An injective, deterministic map from original names to identifiers.

    Names are assigned in the order they are added; adding the same original twice
    returns the same identifier.
    """

    def __init__(self, prefix: str, names: Iterable[str] = ()) -> None:
        self.prefix = prefix
        self._to_ident: dict[str, str] = {}
        self._to_original: dict[str, str] = {}
        for name in names:
            self.add(name)

    def add(self, name: str) -> str:
        """The identifier of ``name``, made (unique in this table) on first use."""
        name = str(name)
        if name in self._to_ident:
            return self._to_ident[name]
        base = identifier(name, self.prefix)
        ident, n = base, 1
        while ident in self._to_original:
            n += 1
            ident = f"{base}_{n}"
        self._to_ident[name] = ident
        self._to_original[ident] = name
        return ident

    def __getitem__(self, name: str) -> str:
        return self._to_ident[str(name)]

    def __contains__(self, name: object) -> bool:
        return str(name) in self._to_ident

    def original(self, ident: str) -> str:
        """The name ``ident`` was made for.

        Raises
        ------
        KeyError
            No name has that identifier.
        """
        return self._to_original[ident]

    def items(self) -> list[tuple[str, str]]:
        """``(original, identifier)`` pairs in insertion order."""
        return list(self._to_ident.items())


def is_identifier(text: str) -> bool:
    """True when ``text`` is a constant in both clingo and SWI-Prolog syntax."""
    return bool(_IDENT.match(text))


#: Characters that Python's ``splitlines`` (and many editors) treat as line breaks, besides
#: ``\n``.  Prolog atoms escape them; clingo strings cannot (clingo knows only ``\\``,
#: ``\"`` and ``\n``), so they stay raw there and programs are read without newline
#: translation (``open(..., newline="")``).
LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def asp_string(text: str) -> str:
    """``text`` as a clingo string literal (``"..."`` with ``\\``, ``"`` and newline escaped).

    clingo has no escape for ``\\r`` and the other :data:`LINE_BREAKS`: they are kept raw,
    which clingo reads back exactly as long as the file is read without newline
    translation.
    """
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def prolog_atom(text: str) -> str:
    """``text`` as a quoted SWI-Prolog atom (``'...'``, every line break escaped).

    ``\\``, ``'``, ``\\n`` and ``\\r`` get their usual escapes and the other
    :data:`LINE_BREAKS` the ``\\xHEX\\`` form, so the atom stays on one physical line.
    """
    escaped = (
        str(text).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        .replace("\r", "\\r")
    )
    for char in LINE_BREAKS[1:]:
        escaped = escaped.replace(char, f"\\x{ord(char):x}\\")
    return f"'{escaped}'"


def comment_safe(text: str) -> str:
    """``text`` fit for one line of a ``%`` comment in either language."""
    return re.sub(f"[\n{LINE_BREAKS}]+", " ", str(text))


def label_text(text: str, max_chars: int = 80) -> str:
    """``text`` made fit to show as a kernel label anywhere: one line, no control characters.

    Line breaks, control and format characters (``Cc``, ``Cf``) become a space, runs of
    white space one space, and text longer than ``max_chars`` is cut with ``…``.  Each
    output still escapes the result its own way (:func:`asp_string`, :func:`prolog_atom`,
    :func:`comment_safe`, :func:`markdown_text`, ``html.escape``, the DOT quoting).
    """
    chars = [" " if (c in LINE_BREAKS or unicodedata.category(c) in ("Cc", "Cf", "Cs",
                                                                     "Zl", "Zp")) else c
             for c in str(text)]
    clean = " ".join("".join(chars).split())
    return clean if len(clean) <= max_chars else clean[:max_chars - 1].rstrip() + "…"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~])")


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown table-cell text: one line, every markup character escaped.

    ``|`` cannot end the cell, ``<script>`` cannot become HTML (``<`` and ``&`` are written
    as entities, which every Markdown renderer shows as the characters).
    """
    one_line = label_text(text, max_chars=10_000)
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", one_line.replace("&", "&amp;"))
    return escaped.replace("\\<", "&lt;").replace("\\>", "&gt;")
