"""The section layout of an exported ASP program, written by one side and read by the other.

:mod:`cnn2logic.export.asp` writes these lines; :class:`cnn2logic.query.program.Program`
finds them to load only the parts a query needs.  Both import them from here, so the two
cannot drift apart.

An exported program is, in this order: the header, declarations and rules (ending with the
semantics), then optionally the activation patterns after :data:`PATTERNS_MARKER`, then the
data after :data:`DATA_MARKER`, one line per image that opens with the facts
:func:`image_facts` writes.

Example
-------
>>> image_facts("i_a", '"a"', 0)
['image(i_a).', 'image_id(i_a, "a").', 'image_index(i_a, 0).']
>>> bool(IMAGE_LINE.match('image(i_a). image_id(i_a, "a"). image_index(i_a, 0). active(i_a, k_k1).'))
True
"""

from __future__ import annotations

import re

#: How the activation-pattern section's marker line starts.  A reader matches this prefix
#: only, so the explanation after it may change without breaking the split.
PATTERNS_PREFIX = "% ---- activation patterns"

#: The line that opens the activation patterns (each distinct activation vector once).
PATTERNS_MARKER = (f"{PATTERNS_PREFIX}: each distinct activation vector of the data "
                   "once, with its number of images and its first image")

#: The line that opens the data section, one line per image; a whole line.
DATA_MARKER = "% ---- data: one line per image"

#: The opening facts of a data line: group 1 is the identifier, group 2 the quoted
#: original id, group 3 the position in the data.
IMAGE_LINE = re.compile(
    r'^image\(([a-z][a-zA-Z0-9_]*)\)\. image_id\(\1, ("(?:[^"\\]|\\.)*")\)\. '
    r'image_index\(\1, (\d+)\)\.', re.M)


def image_facts(ident: str, quoted_id: str, index: int) -> list[str]:
    """The facts a data line opens with, in the order :data:`IMAGE_LINE` reads them.

    Parameters
    ----------
    ident : str
        The image's identifier (``i_...``).
    quoted_id : str
        Its original id as an ASP string (:func:`cnn2logic.names.asp_string`).
    index : int
        Its position in the data.

    Returns
    -------
    list of str
        ``image/1``, ``image_id/2`` and ``image_index/2`` facts.
    """
    return [f"image({ident}).", f"image_id({ident}, {quoted_id}).",
            f"image_index({ident}, {index})."]


#: How the first line of every exported program (ASP or Prolog) starts.
HEADER_PREFIX = "% cnn2logic "

#: The last line of every exported program: its own counts, so a reader can tell a
#: program cut short (at a line boundary, too) or missing lines from a complete one.
TRAILER = re.compile(r"% cnn2logic end: (\d+) rules, (\d+) patterns, (\d+) images\n\Z")


def program_counts(text: str) -> tuple[int, int, int]:
    """``(rules, patterns, images)``: the rule/derives facts, pattern and image lines of ``text``.

    Both languages open these facts at the start of a line (``rule(``, ``derives(``,
    ``pattern(``, ``image(``), and no other line of an exported program does.
    """
    return (text.count("\nrule(") + text.count("\nderives("), text.count("\npattern("),
            text.count("\nimage("))


def trailer(text: str) -> str:
    """The end line for the program ``text`` (which ends with a newline)."""
    rules, patterns, images = program_counts(text)
    return f"% cnn2logic end: {rules} rules, {patterns} patterns, {images} images\n"


def check_complete(text: str) -> str | None:
    """Why the exported program ``text`` is incomplete, or None when it is whole.

    Text that does not open with the exporter's header is someone's own program and is
    not checked.
    """
    if not text.startswith(HEADER_PREFIX):
        return None
    end = text.rfind("\n", 0, len(text) - 1) + 1
    m = TRAILER.match(text, end)
    if m is None:
        return ("it has no end line '% cnn2logic end: ...' (cut short, or written by an "
                "older cnn2logic): export it again")
    expected = tuple(int(g) for g in m.groups())
    found = program_counts(text[:end])
    if found != expected:
        return (f"it holds {found[0]} rules, {found[1]} patterns and {found[2]} images but "
                f"was exported with {expected[0]}, {expected[1]} and {expected[2]} (lines "
                "lost or edited): export it again")
    return None
