"""Ask questions of an exported ASP program with clingo.

The questions are the ASP programs shipped in ``programs/`` (:func:`programs_dir`); each
works on any program written by :mod:`cnn2logic.export.asp` and can be run with clingo
directly (its header says how).  This module runs them through clingo's Python API, turns
the answers back into the user's names and formats them:

* :func:`implies`: the terms of a class, kernels in every / some term, and the minimal
  kernel sets that guarantee the class;
* :func:`conflicts`: kernel pairs never used together, kernels used with both polarities
  for one class, and contradictions (two classes firing) on the data and in principle;
* :func:`necessary`: kernels that must be active, or inactive, for a class;
* :func:`explain`: which rules fire for an image, and the predictions;
* :func:`flip`: the fewest kernel flips that change an image's prediction to a class;
* :func:`run_program`: any query program of the user's.

A :class:`Program` knows the layout of exported programs (rules, then activation patterns,
then one line per image) and loads only the parts a question needs, so that questions
about the rules or one image stay fast on programs with many images.  A program without
that layout is loaded whole.

Errors: clingo's messages are captured; a program clingo rejects raises
:class:`~cnn2logic.errors.SolverError` carrying clingo's own message (file, line, column);
an unknown class or image raises :class:`~cnn2logic.errors.QueryError`.

Example
-------
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> rs = RuleSet((Variable("k1"), Variable("k2")), (Head("3"), Head("8")),
...              (Rule("3", (Literal("k1"), Literal("k2", False))),), default="8")
>>> prog = Program.from_rules(rs)
>>> result = implies(prog, "3")
>>> [t.text for t in result.terms], result.sufficient
(['k1 ∧ ¬k2'], [['k1']])
>>> need = necessary(prog, "3")
>>> need.must_be_active, need.must_be_inactive
(['k1'], ['k2'])
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import clingo

from .errors import QueryError, SolverError
from .names import asp_string, is_identifier
from .rules import RuleSet
from .units import BinaryCodes

QUERIES = ("implies", "conflicts", "necessary", "explain", "flip")
WHEN = ("predicted", "fires")

_PATTERNS_LINE = "% ---- activation patterns"
_DATA_LINE = "% ---- data: one line per image"
_IMAGE_LINE = re.compile(
    r'^image\(([a-z][a-zA-Z0-9_]*)\)\. image_id\(\1, ("(?:[^"\\]|\\.)*")\)\. '
    r'image_index\(\1, (\d+)\)\.', re.M)
_LOCATION = re.compile(r"^(?P<file>.*?):(?P<line>\d+):(?P<col>\d+)(?:-\d+(?::\d+)?)?: ")


def programs_dir() -> Path:
    """Where the shipped query programs are.

    A wheel installs them as package data (``cnn2logic/programs``); a source checkout or an
    editable install finds them in the repository's top-level ``programs/`` (which the
    package directory links to).

    Raises
    ------
    QueryError
        Neither place holds them (a broken installation).
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "programs", here.parent / "programs"):
        if (candidate / "implies.lp").is_file():
            return candidate
    raise QueryError(f"the query programs (implies.lp, ...) are missing: looked in "
                     f"{here / 'programs'} and {here.parent / 'programs'}")


def program_path(name: str) -> Path:
    """The shipped query program ``name`` (``"implies"`` or ``"implies.lp"``)."""
    stem = name[:-3] if name.endswith(".lp") else name
    path = programs_dir() / f"{stem}.lp"
    if not path.is_file():
        known = sorted(p.stem for p in programs_dir().glob("*.lp"))
        raise QueryError(f"no shipped query program {stem!r}; known: {', '.join(known)}")
    return path


# ---------------------------------------------------------------------------------------
# Programs


class Program:
    """An exported ASP program, split into the parts a query may need.

    Build one with :meth:`from_file` or :meth:`from_rules`.  ``text`` is the whole program.
    """

    def __init__(self, text: str, path: Path | None = None) -> None:
        self.text = text
        self.path = path
        p = text.find("\n" + _PATTERNS_LINE)
        d = text.find("\n" + _DATA_LINE + "\n")
        # Only the exact layout the exporter writes is split; anything else loads whole.
        self.layered = 0 <= p < d
        if self.layered:
            self._head, self._patterns = text[:p + 1], text[p + 1:d + 1]
            self._data = text[d + 1:]
        else:
            self._head, self._patterns, self._data = text, "", ""

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Program":
        """Read an exported ``.lp`` file.

        Raises
        ------
        QueryError
            The file does not exist or is not UTF-8 text.
        """
        p = Path(path)
        if not p.is_file():
            raise QueryError(f"program file not found: {p}")
        try:
            return cls(p.read_text(encoding="utf-8"), p)
        except (OSError, UnicodeDecodeError) as exc:
            raise QueryError(f"cannot read program {p}: {exc}") from None

    @classmethod
    def from_rules(cls, rules: RuleSet, codes: BinaryCodes | None = None, *,
                   unminimized: bool = False) -> "Program":
        """Export ``rules`` (and ``codes``) in memory; see :func:`cnn2logic.export.asp.to_asp`."""
        from .export.asp import to_asp

        return cls(to_asp(rules, codes, unminimized=unminimized))

    @property
    def origin(self) -> str:
        return str(self.path) if self.path is not None else "<exported program>"

    @property
    def has_data(self) -> bool:
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
        """The original id of image ``ident``, read from its data line."""
        line = self._line_of(ident) if self.layered else None
        m = _IMAGE_LINE.match(line) if line else None
        return _unquote(m.group(2)) if m else None

    def _candidate_lines(self, image: str) -> list[str]:
        """Data lines that may be the image ``image`` names (by id, identifier or index).

        Which one is meant is decided by the query program itself, exactly as when the
        whole program is loaded.
        """
        lines = []
        pos = self._data.find(f", {asp_string(image)}). image_index(")
        if pos >= 0:
            lines.append(self._line_at(pos))
        if is_identifier(image):
            line = self._line_of(image)
            if line is not None:
                lines.append(line)
        if image.isdigit():
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


def _unquote(asp: str) -> str:
    body = asp[1:-1]
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), body)


# ---------------------------------------------------------------------------------------
# Running clingo


@dataclass
class _Answer:
    symbols: list[clingo.Symbol]
    cost: list[int]
    optimal: bool


class _Session:
    """One clingo Control whose log messages become exceptions or warnings."""

    def __init__(self, args: Sequence[str] = ()) -> None:
        self.messages: list[tuple[clingo.MessageCode, str]] = []
        try:
            self.ctl = clingo.Control(list(args), logger=self._log, message_limit=50)
        except RuntimeError as exc:  # clingo rejects its command-line arguments
            raise SolverError(f"clingo: {' '.join(str(exc).split())}") from None
        self.complete = True

    def _log(self, code: clingo.MessageCode, message: str) -> None:
        self.messages.append((code, message))

    def _fail(self, what: str, origin: str | None = None) -> SolverError:
        errors = [m for c, m in self.messages if c == clingo.MessageCode.RuntimeError]
        shown = errors or [m for _, m in self.messages] or [f"clingo failed while {what}"]
        text = " ".join(" ".join(m.split()) for m in shown)
        if origin:
            text = text.replace("<block>", origin)
        err = SolverError(text)
        loc = _LOCATION.match(text)
        err.location = (loc.group("file"), int(loc.group("line")), int(loc.group("col"))) \
            if loc else None  # type: ignore[attr-defined]
        err.messages = [m for _, m in self.messages]  # type: ignore[attr-defined]
        return err

    def add(self, text: str, origin: str) -> None:
        try:
            self.ctl.add("base", [], text)
        except RuntimeError:
            raise self._fail("parsing", origin) from None

    def load(self, path: Path) -> None:
        try:
            self.ctl.load(str(path))
        except RuntimeError:
            raise self._fail(f"reading {path}") from None

    def ground(self) -> None:
        try:
            self.ctl.ground([("base", [])])
        except RuntimeError:
            raise self._fail("grounding") from None

    def atoms(self, name: str, arity: int, facts_only: bool = False) -> list[clingo.Symbol]:
        return sorted(a.symbol for a in self.ctl.symbolic_atoms.by_signature(name, arity)
                      if a.is_fact or not facts_only)

    def solve(self, timeout: float | None = None, keep: Callable[[clingo.Model], bool] | None
              = None) -> tuple[list[_Answer], bool | None]:
        answers: list[_Answer] = []

        def on_model(model: clingo.Model) -> None:
            # The model object dies with the callback: copy what we need out of it.
            if keep is None or keep(model):
                answers.append(_Answer(list(model.symbols(shown=True)), list(model.cost),
                                       model.optimality_proven))

        try:
            if timeout is None:
                result = self.ctl.solve(on_model=on_model)
            else:
                with self.ctl.solve(on_model=on_model, async_=True) as handle:
                    if not handle.wait(timeout):
                        handle.cancel()
                        self.complete = False
                    result = handle.get()
        except RuntimeError:
            raise self._fail("solving") from None
        if result.interrupted:
            self.complete = False
        sat = True if result.satisfiable else False if result.unsatisfiable else None
        return answers, sat

    @property
    def warnings(self) -> list[str]:
        return [" ".join(m.split()) for c, m in self.messages
                if c != clingo.MessageCode.RuntimeError]


def _const(name: str, value: str) -> list[str]:
    # clingo 5.8 aborts the whole process on some malformed -c values (its logger gets
    # undecodable bytes), so every value is parsed here first.
    if not re.fullmatch(r"[a-z_][A-Za-z0-9_']*", name):
        raise QueryError(f"constant name {name!r} is not a clingo identifier")
    messages: list[str] = []
    try:
        clingo.parse_term(value, logger=lambda _code, msg: messages.append(msg))
    except RuntimeError as exc:
        detail = " ".join(str(exc).split()).replace("<string>:", "")
        raise QueryError(f"constant {name}={value!r} is not a clingo term ({detail}); strings "
                         "need double quotes, e.g. -c name='\"text\"'") from None
    return ["-c", f"{name}={value}"]


def _session(program: Program, query: str | Path, *, args: Sequence[str] = (),
             images: str | Sequence[str] | None = "all", patterns: bool = True) -> _Session:
    s = _Session(args)
    if program.layered or program.path is None:
        for origin, text in program.parts(images, patterns):
            s.add(text, origin)
    else:
        s.load(program.path)
    s.load(query if isinstance(query, Path) else program_path(query))
    s.ground()
    return s


class _Names:
    """Identifiers of a grounded program -> the user's names."""

    def __init__(self, s: _Session, program: Program) -> None:
        self.kernel = {str(a.arguments[0]): a.arguments[1].string
                       for a in s.atoms("kernel_name", 2)}
        self.kernel_key = {str(a.arguments[0]): (a.arguments[1].string, a.arguments[2].number)
                           for a in s.atoms("kernel", 3)}
        self.cls = {str(a.arguments[0]): a.arguments[1].string for a in s.atoms("class_name", 2)}
        self.class_order = [str(a.arguments[0]) for a in s.atoms("class", 1)]
        self._session, self._program = s, program
        self._images: dict[str, str] | None = None

    def k(self, ident: str | clingo.Symbol) -> str:
        return self.kernel.get(str(ident), str(ident))

    def c(self, ident: str | clingo.Symbol) -> str:
        return self.cls.get(str(ident), str(ident))

    def kernels(self, idents: Iterable[str | clingo.Symbol]) -> list[str]:
        keys = sorted({str(i) for i in idents},
                      key=lambda i: (self.kernel_key.get(i, ("", 0)), self.k(i)))
        return [self.k(i) for i in keys]

    def image(self, ident: str | clingo.Symbol) -> str:
        if self._images is None:
            self._images = {str(a.arguments[0]): a.arguments[1].string
                            for a in self._session.atoms("image_id", 2)}
        ident = str(ident)
        if ident not in self._images:
            self._images[ident] = self._program.image_name(ident) or ident
        return self._images[ident]

    def known_classes(self) -> str:
        names = [self.cls.get(c, c) for c in sorted(self.cls)]
        return ", ".join(repr(n) for n in names[:30]) + (" ..." if len(names) > 30 else "")


def _by_name(symbols: Iterable[clingo.Symbol]) -> dict[str, list[clingo.Symbol]]:
    out: dict[str, list[clingo.Symbol]] = {}
    for sym in symbols:
        out.setdefault(sym.name, []).append(sym)
    return out


def _class_args(value: str, name: str = "class") -> list[str]:
    args = _const(name, asp_string(value))
    if is_identifier(value):
        args += _const(f"{name}_ident", value)
    return args


def _image_args(value: str) -> list[str]:
    args = _const("image", asp_string(value))
    if is_identifier(value):
        args += _const("image_ident", value)
    if value.isdigit():
        args += _const("image_index", str(int(value)))
    return args


def _check_class(s: _Session, names: _Names, value: str, what: str = "class") -> str:
    found = s.atoms("target_class", 1)
    if not found:
        raise QueryError(f"unknown {what} {value!r}; classes: {names.known_classes()}")
    return str(found[0].arguments[0])


def _check_image(s: _Session, program: Program, value: str) -> str:
    found = s.atoms("target_image", 1)
    if not found:
        if not program.has_data:
            raise QueryError(f"unknown image {value!r}: the program has no images (export "
                             "it with --activations)")
        raise QueryError(f"unknown image {value!r}: give an image id (e.g. 'img17'), its "
                         "identifier (i_img17) or its position in the data (17)")
    return str(found[0].arguments[0])


# ---------------------------------------------------------------------------------------
# Results


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], max_rows: int | None = None
           ) -> str:
    rows = [[str(c) for c in r] for r in rows]
    shown = rows if max_rows is None else rows[:max_rows]
    widths = [max([len(h)] + [len(r[i]) for r in shown]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in shown]
    if len(shown) < len(rows):
        lines.append(f"... and {len(rows) - len(shown)} more (--rows 0 or --json shows all)")
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


class _Result:
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        # Rules listed in a result carry their readable text too.
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, list) and value and all(isinstance(t, Term) for t in value):
                for t, td in zip(value, d[f.name]):
                    td["text"] = t.text
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Term(_Result):
    """One rule: rank, class, literals (original kernel names) and threshold."""

    rank: int
    cls: str
    pos: list[str]
    neg: list[str]
    need: int

    @property
    def text(self) -> str:
        lits = self.pos + [f"¬{k}" for k in self.neg]
        if not lits:
            return "⊤"
        if self.need == len(lits):
            return " ∧ ".join(lits)
        return f"{self.need}-of({', '.join(lits)})"


def _terms(d: dict[str, list[clingo.Symbol]], names: _Names, prefix: str,
           classes: Mapping[int, str]) -> list[Term]:
    pos: dict[int, list[str]] = {}
    neg: dict[int, list[str]] = {}
    need: dict[int, int] = {}
    for sym in d.get(f"{prefix}_pos", []):
        pos.setdefault(sym.arguments[0].number, []).append(str(sym.arguments[1]))
    for sym in d.get(f"{prefix}_neg", []):
        neg.setdefault(sym.arguments[0].number, []).append(str(sym.arguments[1]))
    for sym in d.get(f"{prefix}_need", []):
        need[sym.arguments[0].number] = sym.arguments[1].number
    return [Term(r, classes[r], names.kernels(pos.get(r, [])), names.kernels(neg.get(r, [])),
                 need.get(r, 0)) for r in sorted(classes)]


@dataclass(frozen=True)
class ImpliesResult(_Result):
    """What makes the rules conclude ``cls`` (see :func:`implies`)."""

    cls: str
    terms: list[Term]
    in_every_term: list[str]
    in_some_term: list[str]
    sufficient: list[list[str]]
    complete: bool  # False when the enumeration of sufficient sets hit the limit or timeout
    seconds: float = 0.0

    def format(self, max_rows: int | None = 20) -> str:
        out = [f"class {self.cls!r}: {len(self.terms)} term(s)", ""]
        out.append(_table(["rank", "term"], [(t.rank, t.text) for t in self.terms], max_rows))
        out += ["", "kernels positive in every term: " + (", ".join(self.in_every_term)
                                                          or "(none)"),
                "kernels positive in some term:  " + (", ".join(self.in_some_term) or "(none)"),
                "", "minimal sets of active kernels that guarantee the class (an image with "
                    "exactly these active is predicted it):"]
        rows = [(len(s), "{" + ", ".join(s) + "}") for s in self.sufficient]
        out.append(_table(["size", "kernels"], rows, max_rows))
        if not self.complete:
            out.append("(stopped at --limit; there may be more)")
        return "\n".join(out)


@dataclass(frozen=True)
class Witness(_Result):
    kernels: list[str]
    classes: list[str]
    on_data: bool  # the same classes also fire together on some image


@dataclass(frozen=True)
class ConflictsResult(_Result):
    """Kernels kept apart and contradictions (see :func:`conflicts`)."""

    never_together: list[tuple[str, str]]  # empty when there are more than max_pairs
    never_together_count: int
    opposite_polarity: list[dict[str, Any]]
    on_data: list[dict[str, Any]]
    in_principle: list[Witness]
    complete: bool
    has_data: bool  # the program has data and it was evaluated
    seconds: float = 0.0
    data_skipped: bool = False  # the program has data; the query was asked not to use it

    def format(self, max_rows: int | None = 20) -> str:
        out = [f"kernel pairs never positive together in a rule: {self.never_together_count}"]
        if len(self.never_together) == self.never_together_count:
            out.append(_table(["kernel", "kernel"], self.never_together, max_rows))
        else:
            out.append("(not listed: more than --max-pairs pairs)")
        out += ["", "kernels used with both polarities for one class: "
                f"{len(self.opposite_polarity)}"]
        out.append(_table(["class", "kernel", "positive in", "negative in"],
                          [(o["class"], o["kernel"], o["positive"], o["negative"])
                           for o in self.opposite_polarity], max_rows))
        out.append("")
        if self.has_data:
            out.append(f"contradictions found on the data (rules of two classes fire on the "
                       f"same image): {len(self.on_data)} class pair(s)")
            out.append(_table(["class", "class", "images", "example"],
                              [(o["classes"][0], o["classes"][1], o["images"], o["example"])
                               for o in self.on_data], max_rows))
        elif self.data_skipped:
            out.append("contradictions on the data: not evaluated (--no-data)")
        else:
            out.append("contradictions on the data: no data in the program")
        out += ["", "contradictions possible in principle (minimal sets of active kernels "
                    f"that fire two or more classes): {len(self.in_principle)}"
                    + ("" if self.complete else " (stopped at --limit; there may be more)")]
        out.append(_table(["classes", "kernels", "also on data"],
                          [(", ".join(w.classes), "{" + ", ".join(w.kernels) + "}",
                            ("yes" if w.on_data else "no") if self.has_data else "-")
                           for w in self.in_principle],
                          max_rows))
        return "\n".join(out)


@dataclass(frozen=True)
class NecessaryResult(_Result):
    """Kernels every activation with the class shares (see :func:`necessary`)."""

    cls: str
    when: str
    possible: bool  # some activation meets the condition at all
    must_be_active: list[str]
    must_be_inactive: list[str]
    free: list[str]
    seconds: float = 0.0

    def format(self, max_rows: int | None = 20) -> str:
        cond = "predicted" if self.when == "predicted" else "fire"
        if not self.possible:
            return f"no activation makes the rules {cond} class {self.cls!r}"
        return "\n".join([
            f"for the rules to {'predict' if self.when == 'predicted' else 'fire'} class "
            f"{self.cls!r}:",
            "  must be active:   " + (", ".join(self.must_be_active) or "(none)"),
            "  must be inactive: " + (", ".join(self.must_be_inactive) or "(none)"),
            "  either:           " + (", ".join(self.free) or "(none)"),
        ])


@dataclass(frozen=True)
class ExplainResult(_Result):
    """Why the rules predict what they predict for one image (see :func:`explain`)."""

    image: str
    index: int | None
    active: list[str]
    fired: list[Term]
    deciding_rank: int | None  # None: no rule fired, the default class was predicted
    prediction: str | None
    network: str | None
    label: str | None
    seconds: float = 0.0

    def format(self, max_rows: int | None = 20) -> str:
        def show(v: str | None) -> str:
            return "(none)" if v is None else repr(v)

        out = [f"image {self.image!r}" + ("" if self.index is None else f" (#{self.index})"),
               "active kernels: " + (", ".join(self.active) or "(none)"),
               f"rules predict: {show(self.prediction)}"
               + ("  (no rule fires: default class)" if self.deciding_rank is None else
                  f"  (rule {self.deciding_rank} decides)"),
               f"network predicts: {show(self.network)}",
               f"true label: {show(self.label)}", "",
               f"rules that fire: {len(self.fired)}"]
        out.append(_table(["rank", "class", "term"],
                          [(t.rank, t.cls, t.text) for t in self.fired], max_rows))
        return "\n".join(out)


@dataclass(frozen=True)
class FlipResult(_Result):
    """The fewest kernel flips that make the rules predict ``to`` (see :func:`flip`)."""

    image: str
    to: str
    before: str | None
    possible: bool
    flips: int | None
    solutions: list[dict[str, list[str]]]  # {"on": [...], "off": [...]} per optimal solution
    complete: bool
    seconds: float = 0.0

    def format(self, max_rows: int | None = 20) -> str:
        if not self.possible:
            return (f"image {self.image!r}: no activation at all makes the rules predict "
                    f"{self.to!r}")
        out = [f"image {self.image!r}: rules predict {self.before!r}; fewest flips to predict "
               f"{self.to!r}: {self.flips}"]
        rows = [(i, ", ".join(s["on"]) or "-", ", ".join(s["off"]) or "-")
                for i, s in enumerate(self.solutions, 1)]
        out.append(_table(["#", "switch on", "switch off"], rows, max_rows))
        if not self.complete:
            out.append("(stopped at --limit; there may be more optimal solutions)")
        return "\n".join(out)


@dataclass(frozen=True)
class ProgramResult(_Result):
    """Answers of a user's query program (see :func:`run_program`)."""

    satisfiable: bool | None
    models: list[list[str]]
    costs: list[list[int]]
    optimal: bool
    complete: bool
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def format(self, max_rows: int | None = 20) -> str:
        if self.satisfiable is False:
            return "UNSATISFIABLE"
        out = []
        for i, (atoms, cost) in enumerate(zip(self.models, self.costs), 1):
            head = f"answer {i}" + (f" (cost {' '.join(map(str, cost))})" if cost else "")
            out.append(head + f": {len(atoms)} atom(s)")
            shown = atoms if max_rows is None else atoms[:max_rows]
            out += [f"  {a}" for a in shown]
            if len(shown) < len(atoms):
                out.append(f"  ... and {len(atoms) - len(shown)} more")
        if not self.models:
            out.append("no answer" + ("" if self.complete else " (interrupted)"))
        if self.costs and self.costs[-1]:
            out.append("OPTIMUM FOUND" if self.optimal else "(optimum not proven)")
        return "\n".join(out)


# ---------------------------------------------------------------------------------------
# The queries


def _program(program: Program | str | os.PathLike[str]) -> Program:
    return program if isinstance(program, Program) else Program.from_file(program)


def _kernel_sets(answers: Sequence[_Answer], name: str, names: _Names) -> list[list[str]]:
    sets = {tuple(names.kernels(str(s.arguments[0]) for s in a.symbols if s.name == name))
            for a in answers}
    return [list(s) for s in sorted(sets, key=lambda s: (len(s), s))]


def implies(program: Program | str | os.PathLike[str], cls: str, *, limit: int = 20,
            timeout: float | None = None) -> ImpliesResult:
    """The terms of class ``cls`` and the kernel sets sufficient for it.

    ``sufficient`` lists subset-minimal sets S of input kernels such that an image on which
    exactly the kernels of S are active is predicted ``cls`` (rank order and default
    included), at most ``limit`` of them (0: all).

    Raises
    ------
    QueryError
        ``cls`` names no class of the program.
    SolverError
        clingo rejects the program.
    """
    start = time.perf_counter()
    prog = _program(program)
    s = _session(prog, "implies", images=None, patterns=False,
                 args=["--heuristic=Domain", "--enum-mode=domRec", str(max(limit, 0))]
                 + _class_args(cls))
    names = _Names(s, prog)
    target = names.c(_check_class(s, names, cls))
    d = _by_name(a.symbol for name, ar in (("term", 1), ("term_pos", 2), ("term_neg", 2),
                                             ("term_need", 2), ("in_every_term", 1),
                                             ("in_some_term", 1))
                 for a in s.ctl.symbolic_atoms.by_signature(name, ar) if a.is_fact)
    classes = {sym.arguments[0].number: target for sym in d.get("term", [])}
    answers, _ = s.solve(timeout)
    complete = s.complete and (limit == 0 or len(answers) < limit)
    return ImpliesResult(
        target, _terms(d, names, "term", classes),
        names.kernels(sym.arguments[0] for sym in d.get("in_every_term", [])),
        names.kernels(sym.arguments[0] for sym in d.get("in_some_term", [])),
        _kernel_sets(answers, "sufficient", names), complete,
        round(time.perf_counter() - start, 4))


def conflicts(program: Program | str | os.PathLike[str], *, limit: int = 20,
              max_pairs: int = 10_000, data: bool = True,
              timeout: float | None = None) -> ConflictsResult:
    """Kernel pairs kept apart, polarity clashes, and contradictions in the rules.

    Contradictions (activations on which rules of two classes fire) are reported twice:
    *on the data* (class pairs, number of images, first image; from the activation
    patterns of the exported data) and *in principle* (at most ``limit`` subset-minimal
    kernel sets that fire two or more classes, each marked when its classes also co-fire on
    the data).  Kernel pairs never used together are listed when there are at most
    ``max_pairs`` of them (0: always); their number is always given.

    ``data=False`` skips the contradictions on the data: they need every rule evaluated on
    every activation pattern (images x rules), which dominates on large rule bases
    (``bench/scale.py`` measures both).

    Raises
    ------
    SolverError
        clingo rejects the program.
    """
    start = time.perf_counter()
    prog = _program(program)
    s = _session(prog, "conflicts", images=None, patterns=data,
                 args=["--heuristic=Domain", "--enum-mode=domRec", str(max(limit, 0))]
                 + _const("max_pairs", str(max_pairs if max_pairs > 0 else 2 ** 31 - 1))
                 + _const("data", "1" if data else "0"))
    names = _Names(s, prog)
    facts = _by_name(a.symbol for name, ar in (("listed_pair", 2), ("opposite", 4),
                                                 ("never_together_count", 1),
                                                 ("data_conflict", 3), ("data_example", 3))
                     for a in s.ctl.symbolic_atoms.by_signature(name, ar) if a.is_fact)
    order = {k: i for i, k in enumerate(names.kernels(names.kernel))}
    pairs = []
    for sym in facts.get("listed_pair", []):
        a, b = (names.k(x) for x in sym.arguments)
        pairs.append(tuple(sorted((a, b), key=lambda n: order.get(n, 0))))
    pairs.sort(key=lambda p: (order.get(p[0], 0), order.get(p[1], 0)))
    corder = {c: i for i, c in enumerate(names.class_order)}
    opposite = sorted(({"class": names.c(a[0]), "kernel": names.k(a[1]),
                        "positive": a[2].number, "negative": a[3].number}
                       for a in (sym.arguments for sym in facts.get("opposite", []))),
                      key=lambda o: (o["class"], order.get(o["kernel"], 0)))
    examples = {(str(x.arguments[0]), str(x.arguments[1])): str(x.arguments[2])
                for x in facts.get("data_example", [])}
    on_data = []
    for sym in facts.get("data_conflict", []):
        c1, c2 = str(sym.arguments[0]), str(sym.arguments[1])
        on_data.append({"classes": [names.c(c1), names.c(c2)], "images": sym.arguments[2].number,
                        "example": names.image(examples.get((c1, c2), "")),
                        "_key": (corder.get(c1, 0), corder.get(c2, 0))})
    on_data.sort(key=lambda o: (-o["images"], o["_key"]))
    data_pairs = {tuple(o["classes"]) for o in on_data}
    for o in on_data:
        del o["_key"]
    answers, _ = s.solve(timeout)
    witnesses = []
    seen = set()
    for a in answers:
        kern = names.kernels(str(x.arguments[0]) for x in a.symbols if x.name == "witness")
        idents = sorted((str(x.arguments[0]) for x in a.symbols if x.name == "witness_class"),
                        key=lambda c: corder.get(c, 0))
        key = (tuple(kern), tuple(idents))
        if key in seen:
            continue
        seen.add(key)
        cls_names = [names.c(c) for c in idents]
        both = any((x, y) in data_pairs or (y, x) in data_pairs
                   for i, x in enumerate(cls_names) for y in cls_names[i + 1:])
        witnesses.append(Witness(kern, cls_names, both))
    witnesses.sort(key=lambda w: (len(w.kernels), w.kernels, w.classes))
    complete = s.complete and (limit == 0 or len(answers) < limit)
    count = facts["never_together_count"][0].arguments[0].number
    return ConflictsResult(pairs, count, opposite, on_data, witnesses, complete,
                           prog.has_data and data, round(time.perf_counter() - start, 4),
                           prog.has_data and not data)


def necessary(program: Program | str | os.PathLike[str], cls: str, *, when: str = "predicted",
              timeout: float | None = None) -> NecessaryResult:
    """Kernels that are active (inactive) in every activation that gives class ``cls``.

    ``when="predicted"``: the rules predict ``cls`` (rank order, default class);
    ``when="fires"``: some rule for ``cls`` fires.  Computed as clingo's cautious and
    brave consequences over all activations of the input kernels.

    Raises
    ------
    QueryError
        Unknown class or ``when``.
    SolverError
        clingo rejects the program.
    """
    if when not in WHEN:
        raise QueryError(f"when must be one of {WHEN}, got {when!r}")
    start = time.perf_counter()
    prog = _program(program)
    s = _session(prog, "necessary", images=None, patterns=False,
                 args=["--enum-mode=brave", "0"] + _class_args(cls) + _const("when", when))
    names = _Names(s, prog)
    target = names.c(_check_class(s, names, cls))
    inputs = [str(a.arguments[0]) for a in s.atoms("input_kernel", 1)]
    brave, sat = s.solve(timeout)
    if not s.complete:
        raise QueryError("necessary: clingo did not finish within the time limit; the brave "
                         "and cautious consequences are unknown (raise --timeout)")
    if not sat:
        return NecessaryResult(target, when, bool(sat), [], [],
                               [], round(time.perf_counter() - start, 4))
    s.ctl.configuration.solve.enum_mode = "cautious"  # type: ignore[union-attr]
    cautious, _ = s.solve(timeout)
    if not s.complete or not cautious:
        raise QueryError("necessary: clingo did not finish within the time limit; the brave "
                         "and cautious consequences are unknown (raise --timeout)")
    maybe = {str(x.arguments[0]) for x in brave[-1].symbols if x.name == "on"}
    always = {str(x.arguments[0]) for x in cautious[-1].symbols if x.name == "on"}
    return NecessaryResult(
        target, when, True, names.kernels(always),
        names.kernels(k for k in inputs if k not in maybe),
        names.kernels(k for k in maybe if k not in always),
        round(time.perf_counter() - start, 4))


def explain(program: Program | str | os.PathLike[str], image: str | int) -> ExplainResult:
    """Which rules fire for ``image`` (id, identifier or position), and the predictions.

    Raises
    ------
    QueryError
        The image is unknown or the program has no images.
    SolverError
        clingo rejects the program.
    """
    start = time.perf_counter()
    prog = _program(program)
    image = str(image)
    lines = prog._candidate_lines(image) if prog.layered else []
    if prog.layered and not lines:
        _unknown_image(prog, image)
    s = _session(prog, "explain", images=lines, patterns=False, args=_image_args(image))
    names = _Names(s, prog)
    _check_image(s, prog, image)
    answers, _ = s.solve()
    d = _by_name(answers[0].symbols)
    classes = {x.arguments[0].number: names.c(x.arguments[1]) for x in d.get("explain_fired", [])}

    def one(key: str) -> str | None:
        return names.c(d[key][0].arguments[0]) if d.get(key) else None

    first = d.get("explain_first")
    return ExplainResult(
        d["explain_id"][0].arguments[0].string if d.get("explain_id") else image,
        d["explain_index"][0].arguments[0].number if d.get("explain_index") else None,
        names.kernels(x.arguments[0] for x in d.get("explain_active", [])),
        _terms(d, names, "explain", classes),
        first[0].arguments[0].number if first else None,
        one("explain_prediction"), one("explain_network"), one("explain_label"),
        round(time.perf_counter() - start, 4))


def _unknown_image(prog: Program, image: str) -> None:
    if not prog.has_data:
        raise QueryError(f"unknown image {image!r}: the program has no images (export it "
                         "with --activations)")
    raise QueryError(f"unknown image {image!r}: give an image id (e.g. 'img17'), its "
                     "identifier (i_img17) or its position in the data (17)")


def flip(program: Program | str | os.PathLike[str], image: str | int, to: str, *,
         limit: int = 20, timeout: float | None = None) -> FlipResult:
    """The fewest input-kernel flips that make the rules predict ``to`` for ``image``.

    All optimal solutions are enumerated, at most ``limit`` (0: all).

    Raises
    ------
    QueryError
        Unknown image or class.
    SolverError
        clingo rejects the program.
    """
    start = time.perf_counter()
    prog = _program(program)
    image = str(image)
    lines = prog._candidate_lines(image) if prog.layered else []
    if prog.layered and not lines:
        _unknown_image(prog, image)
    s = _session(prog, "flip", images=lines, patterns=False,
                 args=["--opt-mode=optN", str(max(limit, 0))] + _image_args(image)
                 + _class_args(to, "to"))
    names = _Names(s, prog)
    image_name = names.image(_check_image(s, prog, image))
    target = _check_class(s, names, to)
    before = [names.c(a.arguments[0]) for a in s.atoms("flip_from", 1)]
    answers, sat = s.solve(timeout, keep=lambda m: m.optimality_proven)
    if not sat:
        return FlipResult(image_name, names.c(target), before[0] if before else None, False,
                          None, [], s.complete, round(time.perf_counter() - start, 4))
    if not answers:
        raise QueryError("flip: clingo did not prove an optimum within the time limit "
                         "(raise --timeout)")
    sols = sorted({(tuple(names.kernels(x.arguments[0] for x in a.symbols if x.name == "flip_on")),
                    tuple(names.kernels(x.arguments[0] for x in a.symbols
                                        if x.name == "flip_off")))
                   for a in answers}, key=lambda t: (t[0], t[1]))
    complete = s.complete and (limit == 0 or len(answers) < limit)
    return FlipResult(image_name, names.c(target), before[0] if before else None, True,
                      answers[0].cost[0] if answers[0].cost else 0,
                      [{"on": list(on), "off": list(off)} for on, off in sols], complete,
                      round(time.perf_counter() - start, 4))


def run_program(program: Program | str | os.PathLike[str], query: str | os.PathLike[str], *,
                consts: Mapping[str, str] | None = None, models: int = 1,
                args: Sequence[str] = (), timeout: float | None = None) -> ProgramResult:
    """Run the user's query program ``query`` together with the exported ``program``.

    ``consts`` become ``-c name=value``; ``models`` answers are computed (0: all); ``args``
    are passed to clingo as they are (e.g. ``["--opt-mode=optN"]``).  With an optimisation
    statement only optimal answers are kept.  Clingo's warnings are returned, not raised.

    Raises
    ------
    QueryError
        The query file does not exist.
    SolverError
        clingo rejects the program: the message is clingo's own, with file and line.
    """
    start = time.perf_counter()
    prog = _program(program)
    qpath = Path(query)
    if not qpath.is_file():
        raise QueryError(f"query program not found: {qpath}")
    cargs: list[str] = [str(max(models, 0))] + list(args)
    for name, value in (consts or {}).items():
        cargs += _const(name, value)
    s = _session(prog, qpath, args=cargs)
    answers, sat = s.solve(timeout)
    optimising = any(a.cost for a in answers)
    if optimising:
        best = [a for a in answers if a.optimal] or answers[-1:]
        answers = best
    return ProgramResult(sat, [[str(x) for x in sorted(a.symbols)] for a in answers],
                         [a.cost for a in answers], all(a.optimal for a in answers),
                         s.complete, s.warnings, round(time.perf_counter() - start, 4))


def predictions(program: Program | str | os.PathLike[str]) -> dict[str, str | None]:
    """Original image id -> the rules' predicted class name (None: no prediction).

    Runs ``programs/predictions.lp`` on every image: the clingo side of the cross-checks.

    Raises
    ------
    SolverError
        clingo rejects the program.
    """
    prog = _program(program)
    s = _session(prog, "predictions", patterns=False)
    names = _Names(s, prog)
    answers, _ = s.solve()
    out: dict[str, str | None] = {names.image(a.arguments[0]): None
                                  for a in s.atoms("image", 1)}
    for sym in answers[0].symbols if answers else []:
        out[names.image(sym.arguments[0])] = names.c(sym.arguments[1])
    return out
