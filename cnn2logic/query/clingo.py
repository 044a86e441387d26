"""Run clingo on an exported program plus a query program, and read the answers back.

:class:`Session` wraps one ``clingo.Control``: clingo's log messages are captured, and a
program clingo rejects raises :class:`~cnn2logic.errors.SolverError` carrying clingo's own
message, with the file, line and column it names in ``location``.  :func:`open_session`
loads the parts of a :class:`~cnn2logic.query.program.Program` a question needs and grounds
them with the query; :class:`Names` maps the identifiers of the grounded program back to
the user's kernel, class and image names.  :func:`programs_dir` finds the shipped query
programs (``programs/*.lp``).

Example
-------
>>> s = Session()
>>> s.add("p(1). p(2). q(X) :- p(X).", "<example>")
>>> s.ground()
>>> [str(a) for a in s.atoms("q", 1)]
['q(1)', 'q(2)']
>>> try:
...     Session().add("p(X :- q.", "mine.lp")
... except SolverError as err:
...     err.location
('mine.lp', 1, 5)
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import clingo

from ..errors import QueryError, SolverError
from .program import Program

#: A ``time.monotonic()`` by which every timed search must stop, or None.  Set only in the
#: child process of :func:`cnn2logic.query.bounded.run_bounded`, where one time limit
#: covers loading, grounding and solving: a search then gets what is left of it.
DEADLINE: float | None = None

# A #script statement outside comments and strings (clingo's Python API here runs no
# embedded scripts: loading one fails without a message, so we say why).
_SCRIPT = re.compile(r'(?m)^[^%\n"]*?#script\b')

# The location clingo's messages open with: "file:line:col[-col | -line:col]: ".
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
    # This module is in cnn2logic/query/: the package directory (with programs/) is one up.
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "programs", here.parent / "programs"):
        if (candidate / "implies.lp").is_file():
            return candidate
    raise QueryError(f"the query programs (implies.lp, ...) are missing: looked in "
                     f"{here / 'programs'} and {here.parent / 'programs'}")


def program_path(name: str) -> Path:
    """The shipped query program ``name`` (``"implies"`` or ``"implies.lp"``).

    Raises
    ------
    QueryError
        No shipped program has that name.
    """
    stem = name[:-3] if name.endswith(".lp") else name
    path = programs_dir() / f"{stem}.lp"
    if not path.is_file():
        known = sorted(p.stem for p in programs_dir().glob("*.lp"))
        raise QueryError(f"no shipped query program {stem!r}; known: {', '.join(known)}")
    return path


@dataclass
class Answer:
    """One model, copied out of clingo's callback (its model object dies with the call).

    Attributes
    ----------
    symbols : list of clingo.Symbol
        The shown atoms.
    cost : list of int
        The model's cost vector (empty without optimisation).
    optimal : bool
        clingo proved the model optimal.
    """

    symbols: list[clingo.Symbol]
    cost: list[int]
    optimal: bool


class Session:
    """One clingo Control whose log messages become exceptions or warnings.

    Parameters
    ----------
    args : sequence of str
        clingo's command-line arguments (``-c name=value``, ``--opt-mode=optN``, ...).

    Attributes
    ----------
    ctl : clingo.Control
    messages : list of (clingo.MessageCode, str)
        Everything clingo logged so far.
    complete : bool
        False once a search was interrupted or stopped by its timeout.

    Raises
    ------
    SolverError
        clingo rejects ``args``.
    """

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
        loc = _LOCATION.match(text)
        return SolverError(
            text, location=(loc.group("file"), int(loc.group("line")), int(loc.group("col")))
            if loc else None, messages=[m for _, m in self.messages])

    def add(self, text: str, origin: str) -> None:
        """Add program text; ``origin`` names it in clingo's messages.

        Raises
        ------
        SolverError
            clingo cannot parse it.
        """
        try:
            self.ctl.add("base", [], text)
        except RuntimeError:
            raise _script_error(text, origin) or self._fail("parsing", origin) from None

    def load(self, path: Path) -> None:
        """Load a program file.

        Raises
        ------
        SolverError
            clingo cannot read or parse it.
        """
        try:
            self.ctl.load(str(path))
        except RuntimeError:
            try:
                text = Path(path).read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            raise _script_error(text, str(path)) or self._fail(f"reading {path}") from None

    def ground(self) -> None:
        """Ground the base program.

        Raises
        ------
        SolverError
            clingo fails while grounding (e.g. unsafe variables).
        """
        try:
            self.ctl.ground([("base", [])])
        except RuntimeError:
            raise self._fail("grounding") from None

    def atoms(self, name: str, arity: int, facts_only: bool = False) -> list[clingo.Symbol]:
        """The grounded atoms ``name/arity`` (only facts with ``facts_only``), sorted."""
        return sorted(a.symbol for a in self.ctl.symbolic_atoms.by_signature(name, arity)
                      if a.is_fact or not facts_only)

    def solve(self, timeout: float | None = None, keep: Callable[[clingo.Model], bool] | None
              = None) -> tuple[list[Answer], bool | None]:
        """Solve; return the answers (those ``keep`` accepts) and satisfiability.

        Satisfiability is None when the search stopped before deciding; a stop by
        ``timeout`` (seconds) also sets :attr:`complete` to False.

        Raises
        ------
        SolverError
            clingo fails while solving.
        """
        answers: list[Answer] = []

        def on_model(model: clingo.Model) -> None:
            # The model object dies with the callback: copy what we need out of it.
            if keep is None or keep(model):
                answers.append(Answer(list(model.symbols(shown=True)), list(model.cost),
                                      model.optimality_proven))

        if timeout is not None and DEADLINE is not None:
            timeout = max(min(timeout, DEADLINE - time.monotonic()), 0.001)
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
        """clingo's messages other than errors, each on one line."""
        return [" ".join(m.split()) for c, m in self.messages
                if c != clingo.MessageCode.RuntimeError]


def _script_error(text: str, origin: str) -> SolverError | None:
    """The error for a program holding a ``#script`` block, or None when it holds none."""
    m = _SCRIPT.search(text)
    if m is None:
        return None
    line = text.count("\n", 0, m.end()) + 1
    return SolverError(f"{origin}:{line}: #script blocks are not run: cnn2logic queries are "
                       "pure ASP (no embedded Python or Lua); compute such values beforehand "
                       "and pass them as facts or -c constants",
                       location=(origin, line, 1))


def const_args(name: str, value: str) -> list[str]:
    """clingo arguments ``-c name=value``, checked first.

    Raises
    ------
    QueryError
        ``name`` is not a clingo identifier or ``value`` not a clingo term.
    """
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
    # clingo integers are 32-bit signed and parse_term wraps larger ones silently
    # (4294967297 becomes 1): refuse them, naming the value.
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', value)
    for m in re.finditer(r"(?<![A-Za-z0-9_'])(-?)\s*(\d+)", bare):
        digits = m.group(2).lstrip("0") or "0"
        # len() first: int() refuses strings over 4,300 digits
        number = int(digits) * (-1 if m.group(1) else 1) if len(digits) <= 10 else 2**31
        if not -2**31 <= number < 2**31:
            shown = digits if len(digits) <= 30 else f"{digits[:12]}... ({len(digits)} digits)"
            raise QueryError(f"constant {name}={value[:60]!r}: {shown} does not fit clingo's "
                             "32-bit integers (-2147483648 to 2147483647)")
    return ["-c", f"{name}={value}"]


def open_session(program: Program, query: str | Path, *, args: Sequence[str] = (),
                 images: str | Sequence[str] | None = "all", patterns: bool = True
                 ) -> Session:
    """A grounded session of ``program`` (the parts asked for) and a query program.

    ``query`` is a file, or the name of a shipped query program (:func:`program_path`).

    ``images`` and ``patterns`` are as in :meth:`Program.parts`; a program without the
    export layout that was read from a file is loaded by clingo from that file.

    Raises
    ------
    SolverError
        clingo rejects the arguments or either program.
    QueryError
        No shipped query program has that name.
    """
    s = Session(args)
    if program.layered or program.path is None:
        for origin, text in program.parts(images, patterns):
            s.add(text, origin)
    else:
        s.load(program.path)
    s.load(query if isinstance(query, Path) else program_path(query))
    s.ground()
    return s


class Names:
    """Identifiers of a grounded program -> the user's names.

    Parameters
    ----------
    s : Session
        A grounded session of ``program``.
    program : Program
        Where image ids are looked up when the session holds no ``image_id/2`` for them.
    """

    def __init__(self, s: Session, program: Program) -> None:
        self.kernel = {str(a.arguments[0]): a.arguments[1].string
                       for a in s.atoms("kernel_name", 2)}
        self.kernel_key = {str(a.arguments[0]): (a.arguments[1].string, a.arguments[2].number)
                           for a in s.atoms("kernel", 3)}
        self.cls = {str(a.arguments[0]): a.arguments[1].string for a in s.atoms("class_name", 2)}
        self.class_order = [str(a.arguments[0]) for a in s.atoms("class", 1)]
        self._session, self._program = s, program
        self._images: dict[str, str] | None = None

    def k(self, ident: str | clingo.Symbol) -> str:
        """The kernel's name (the identifier itself when unknown)."""
        return self.kernel.get(str(ident), str(ident))

    def c(self, ident: str | clingo.Symbol) -> str:
        """The class's name (the identifier itself when unknown)."""
        return self.cls.get(str(ident), str(ident))

    def kernels(self, idents: Iterable[str | clingo.Symbol]) -> list[str]:
        """Kernel names, distinct, in (layer, index) order."""
        keys = sorted({str(i) for i in idents},
                      key=lambda i: (self.kernel_key.get(i, ("", 0)), self.k(i)))
        return [self.k(i) for i in keys]

    def image(self, ident: str | clingo.Symbol) -> str:
        """The image's original id (the identifier itself when unknown)."""
        if self._images is None:
            self._images = {str(a.arguments[0]): a.arguments[1].string
                            for a in self._session.atoms("image_id", 2)}
        ident = str(ident)
        if ident not in self._images:
            self._images[ident] = self._program.image_name(ident) or ident
        return self._images[ident]

    def known_classes(self) -> str:
        """Up to 30 class names, quoted, for an error message."""
        names = [self.cls.get(c, c) for c in sorted(self.cls)]
        return ", ".join(repr(n) for n in names[:30]) + (" ..." if len(names) > 30 else "")


def by_name(symbols: Iterable[clingo.Symbol]) -> dict[str, list[clingo.Symbol]]:
    """``symbols`` grouped by predicate name, in their order."""
    out: dict[str, list[clingo.Symbol]] = {}
    for sym in symbols:
        out.setdefault(sym.name, []).append(sym)
    return out
