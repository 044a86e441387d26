"""The answers to the questions, as dataclasses that print as tables or serialise as JSON.

Every result has ``format(max_rows)`` (the text ``cnn2logic query`` prints) and
``to_dict()`` / ``to_json()`` (what ``--json`` prints: sorted keys, stable order).  Kernel,
class and image names are the user's own, never the program's identifiers; a rule listed
in a result (a :class:`Term`) carries its readable ``text`` in the JSON too.

Example
-------
>>> t = Term(1, "3", ["k1"], ["k2"], 2)
>>> t.text
'k1 ∧ ¬k2'
>>> print(NecessaryResult("3", "predicted", True, ["k1"], ["k2"], []).format())
for the rules to predict class '3':
  must be active:   k1
  must be inactive: k2
  either:           (none)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence


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


class Result:
    """Base of every result dataclass: JSON serialisation."""

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data; rules listed in it carry their ``text`` too."""
        d = asdict(self)  # type: ignore[call-overload]
        # Rules listed in a result carry their readable text too.
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, list) and value and all(isinstance(t, Term) for t in value):
                for t, td in zip(value, d[f.name]):
                    td["text"] = t.text
        return d

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON with sorted keys, ending in a newline."""
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Term(Result):
    """One rule: rank, class, literals (original kernel names) and threshold."""

    rank: int
    cls: str
    pos: list[str]
    neg: list[str]
    need: int

    @property
    def text(self) -> str:
        """The rule's body in the user's names: ``k1 ∧ ¬k2``, ``2-of(k1, k2, k3)`` or ``⊤``."""
        lits = self.pos + [f"¬{k}" for k in self.neg]
        if not lits:
            return "⊤"
        if self.need == len(lits):
            return " ∧ ".join(lits)
        return f"{self.need}-of({', '.join(lits)})"


@dataclass(frozen=True)
class ImpliesResult(Result):
    """What makes the rules conclude ``cls`` (see :func:`implies`)."""

    cls: str
    terms: list[Term]
    in_every_term: list[str]
    in_some_term: list[str]
    sufficient: list[list[str]]
    complete: bool  # False when the enumeration of sufficient sets hit the limit or timeout
    seconds: float = 0.0

    def format(self, max_rows: int | None = 20) -> str:
        """The answer as text, at most ``max_rows`` rows per table (None: all)."""
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
class Witness(Result):
    """A minimal set of active kernels on which rules of several classes fire."""

    kernels: list[str]
    classes: list[str]
    on_data: bool  # the same classes also fire together on some image


@dataclass(frozen=True)
class ConflictsResult(Result):
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
        """The answer as text, at most ``max_rows`` rows per table (None: all)."""
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
class NecessaryResult(Result):
    """Kernels every activation with the class shares (see :func:`necessary`)."""

    cls: str
    when: str
    possible: bool  # some activation meets the condition at all
    must_be_active: list[str]
    must_be_inactive: list[str]
    free: list[str]
    seconds: float = 0.0

    def format(self, max_rows: int | None = 20) -> str:
        """The answer as text, at most ``max_rows`` rows per table (None: all)."""
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
class ExplainResult(Result):
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
    words: str = ""  # why, in one or two sentences (cnn2logic.words.explanation)
    kernel_labels: dict[str, str] = field(default_factory=dict)  # of the kernels named

    def format(self, max_rows: int | None = 20) -> str:
        """The answer as text, at most ``max_rows`` rows per table (None: all)."""
        def show(v: str | None) -> str:
            return "(none)" if v is None else repr(v)

        out = [f"image {self.image!r}" + ("" if self.index is None else f" (#{self.index})"),
               "active kernels: " + (", ".join(self.active) or "(none)"),
               f"rules predict: {show(self.prediction)}"
               + ("  (no rule fires: default class)" if self.deciding_rank is None else
                  f"  (rule {self.deciding_rank} decides)"),
               f"network predicts: {show(self.network)}",
               f"true label: {show(self.label)}", ""]
        if self.words:
            out += ["in words: " + self.words, ""]
        out.append(f"rules that fire: {len(self.fired)}")
        out.append(_table(["rank", "class", "term"],
                          [(t.rank, t.cls, t.text) for t in self.fired], max_rows))
        if self.kernel_labels:
            out += ["", "kernel labels:"]
            out.append(_table(["kernel", "label"], list(self.kernel_labels.items()),
                              max_rows))
        return "\n".join(out)


@dataclass(frozen=True)
class FlipResult(Result):
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
        """The answer as text, at most ``max_rows`` rows per table (None: all)."""
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
class ProgramResult(Result):
    """Answers of a user's query program (see :func:`run_program`)."""

    satisfiable: bool | None
    models: list[list[str]]
    costs: list[list[int]]
    optimal: bool
    complete: bool
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def format(self, max_rows: int | None = 20) -> str:
        """The answer as text, at most ``max_rows`` rows per table (None: all)."""
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


