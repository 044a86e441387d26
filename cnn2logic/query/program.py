"""An exported ASP program, split along its sections so a question loads only what it needs.

:mod:`cnn2logic.export.asp` writes the rules, then the activation patterns, then one line
per image (the markers are in :mod:`cnn2logic.export.layout`).  :class:`Program` finds
those sections by plain string search, so questions about the rules or one image stay fast
on programs with many images.  A program without that layout is loaded whole.

Example
-------
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet((Variable("k1"),), (Head("a"), Head("b")), (Rule("a", (Literal("k1"),)),),
...              default="b")
>>> prog = Program.from_rules(rs)
>>> prog.layered, prog.has_data, [origin for origin, _ in prog.parts()]
(False, False, ['<exported program>'])
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import QueryError
from ..export.asp import to_asp
from ..export.layout import DATA_MARKER, IMAGE_LINE, PATTERNS_PREFIX, check_complete
from ..names import asp_string, is_identifier
from ..rules import RuleSet

if TYPE_CHECKING:  # annotations only: importing units loads torch
    from ..units import BinaryCodes


class Program:
    """An exported ASP program, split into the parts a query may need.

    Build one with :meth:`from_file` or :meth:`from_rules`.

    Parameters
    ----------
    text : str
        The whole program.
    path : Path, optional
        The file it was read from.

    Attributes
    ----------
    text : str
        The whole program.
    path : Path or None
    layered : bool
        The text has the exporter's layout (rules, patterns, data) and is loaded in parts.
    """

    def __init__(self, text: str, path: Path | None = None) -> None:
        self.text = text
        self.path = path
        p = text.find("\n" + PATTERNS_PREFIX)
        d = text.find("\n" + DATA_MARKER + "\n")
        # Only the exact layout the exporter writes is split; anything else loads whole.
        self.layered = 0 <= p < d
        if self.layered:
            self._head, self._patterns = text[:p + 1], text[p + 1:d + 1]
            self._data = text[d + 1:]
        else:
            self._head, self._patterns, self._data = text, "", ""

    @property
    def head_text(self) -> str:
        """The rules part of a layered program (the whole text otherwise)."""
        return self._head

    @property
    def pattern_text(self) -> str:
        """The activation-pattern section of a layered program ("" when it has none)."""
        return self._patterns

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Program":
        """Read an exported ``.lp`` file.

        Raises
        ------
        QueryError
            The file does not exist, is not UTF-8 text, or is an exported program that
            was cut short or lost lines (its end line counts them; see
            :func:`cnn2logic.export.layout.check_complete`).
        """
        p = Path(path)
        if not p.is_file():
            raise QueryError(f"program file not found: {p}")
        try:
            # newline="": no translation, so a name holding "\r" reaches clingo as written
            # (universal newlines would turn it into a line break inside a string).
            with open(p, encoding="utf-8", newline="") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise QueryError(f"cannot read program {p}: {exc}") from None
        problem = check_complete(text)
        if problem is not None:
            raise QueryError(f"program {p} is incomplete: {problem}")
        return cls(text, p)

    @classmethod
    def from_rules(cls, rules: RuleSet, codes: BinaryCodes | None = None, *,
                   unminimized: bool = False) -> "Program":
        """Export ``rules`` (and ``codes``) in memory; see :func:`cnn2logic.export.asp.to_asp`.

        Raises
        ------
        ExportError
            The rules or activations cannot be exported.
        """
        return cls(to_asp(rules, codes, unminimized=unminimized))

    @property
    def origin(self) -> str:
        """The file name for clingo's messages, or ``<exported program>``."""
        return str(self.path) if self.path is not None else "<exported program>"

    @property
    def has_data(self) -> bool:
        """Whether the program holds images."""
        return bool(self._data) or "\nimage(" in self._head

    # -- the data section ------------------------------------------------------------
    # Lines are found by plain string search: no need to parse 10,000 lines to load one.
    def _line_at(self, pos: int) -> str:
        start = self._data.rfind("\n", 0, pos) + 1
        end = self._data.find("\n", pos)
        return self._data[start:len(self._data) if end < 0 else end]

    def _line_of(self, ident: str) -> str | None:
        pos = self._data.find(f"\nimage({ident}).")
        return None if pos < 0 else self._line_at(pos + 1)

    def image_name(self, ident: str) -> str | None:
        """The original id of image ``ident``, read from its data line (None: not found)."""
        line = self._line_of(ident) if self.layered else None
        m = IMAGE_LINE.match(line) if line else None
        return _unquote(m.group(2)) if m else None

    def candidate_lines(self, image: str, by: str = "any") -> list[str]:
        """Data lines that may be the image ``image`` names (by id, identifier or index).

        ``by`` is ``"any"`` (all three), ``"id"`` (the original id only) or ``"index"``
        (the position only).  Which line is meant is decided by the query program itself,
        exactly as when the whole program is loaded.  Empty for a program without the
        layout.
        """
        lines = []
        pos = self._data.find(f", {asp_string(image)}). image_index(") if by != "index" else -1
        if pos >= 0:
            lines.append(self._line_at(pos))
        if by == "any" and is_identifier(image):
            line = self._line_of(image)
            if line is not None:
                lines.append(line)
        if by != "id" and image.isdigit():
            m = re.search(rf"\. image_index\([a-z][a-zA-Z0-9_]*, {int(image)}\)\.",
                          self._data)
            if m:
                lines.append(self._line_at(m.start()))
        return sorted(set(lines))

    def parts(self, images: str | Sequence[str] | None = "all", patterns: bool = True
              ) -> list[tuple[str, str]]:
        """``(origin, text)`` pieces to load: the rules, optionally patterns and images.

        ``images`` is ``"all"``, ``None`` (no image lines) or image lines to include.
        """
        if not self.layered:
            return [(self.origin, self.text)]
        out = [(self.origin, self._head)]
        if patterns and self._patterns:
            out.append((f"{self.origin} (activation patterns)", self._patterns))
        if images == "all":
            if self._data:
                out.append((f"{self.origin} (data)", self._data))
        elif images:
            out.append((f"{self.origin} (data)", "\n".join(images) + "\n"))
        return out


def as_program(program: Program | str | os.PathLike[str]) -> Program:
    """``program`` itself, or the program read from that file.

    Raises
    ------
    QueryError
        See :meth:`Program.from_file`.
    """
    return program if isinstance(program, Program) else Program.from_file(program)


def unknown_image(program: Program, image: str) -> QueryError:
    """The error for an image ``program`` does not hold (says why when it has none)."""
    if not program.has_data:
        return QueryError(f"unknown image {image!r}: the program has no images (export it "
                          "with --activations)")
    return QueryError(f"unknown image {image!r}: give an image id (e.g. 'img17'), its "
                      "identifier (i_img17) or its position in the data (17)")


def _unquote(asp: str) -> str:
    body = asp[1:-1]
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), body)
