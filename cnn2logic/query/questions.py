"""The questions: each a shipped ASP program (``programs/*.lp``) plus the Python that asks it.

Each question works on any program written by :mod:`cnn2logic.export.asp` and can be run
with clingo directly (its header says how); here it runs through clingo's Python API
(:mod:`.clingo`), and the answer comes back in the user's names as a result of
:mod:`.results`:

* :func:`implies`: the terms of a class, kernels in every / some term, and the minimal
  kernel sets that guarantee the class;
* :func:`conflicts`: kernel pairs never used together, kernels used with both polarities
  for one class, and contradictions (two classes firing) on the data and in principle;
* :func:`necessary`: kernels that must be active, or inactive, for a class;
* :func:`explain`: which rules fire for an image, and the predictions;
* :func:`flip`: the fewest kernel flips that change an image's prediction to a class;
* :func:`run_program`: any query program of the user's;
* :func:`predictions`: every image's predicted class (the clingo side of the cross-checks).

:data:`QUESTIONS` lists the five questions with what each needs; ``cnn2logic query`` builds
its choices and calls from it.  Adding a question is one ``programs/<name>.lp``, one
function here and one :class:`Question` entry.

The module runs past the usual ~500 lines on purpose: every question is one function
beside the session helpers all of them share (image and class arguments, terms, labels);
one module per question would pass those private helpers between modules.

Errors: an unknown class or image raises :class:`~cnn2logic.errors.QueryError`; a program
clingo rejects raises :class:`~cnn2logic.errors.SolverError` with clingo's own message.

Example
-------
>>> from cnn2logic.rules import Head, Literal, Rule, RuleSet, Variable
>>> from cnn2logic.query.program import Program
>>> rs = RuleSet((Variable("k1"), Variable("k2")), (Head("3"), Head("8")),
...              (Rule("3", (Literal("k1"), Literal("k2", False))),), default="8")
>>> prog = Program.from_rules(rs)
>>> result = implies(prog, "3")
>>> [t.text for t in result.terms], result.sufficient
(['k1 ∧ ¬k2'], [['k1']])
>>> need = necessary(prog, "3")
>>> need.must_be_active, need.must_be_inactive
(['k1'], ['k2'])
>>> QUESTIONS["flip"].needs
('image', 'to')
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import clingo

from ..errors import QueryError
from ..words import why
from ..names import asp_string, is_identifier, label_text
from ..rules import natural_key
from .clingo import Answer, Names, Session, by_name, const_args, open_session
from .ondata import data_conflicts
from .program import Program, as_program, unknown_image
from .results import (ConflictsResult, ExplainResult, FlipResult, ImpliesResult,
                      NecessaryResult, ProgramResult, Result, Term, Witness)

#: The conditions :func:`necessary` knows: the rules predict the class, or some rule fires.
WHEN = ("predicted", "fires")


def _class_args(value: str, name: str = "class") -> list[str]:
    args = const_args(name, asp_string(value))
    if is_identifier(value):
        args += const_args(f"{name}_ident", value)
    return args


#: How an image value is read: as an id, an identifier or a position (``"any"``; an id
#: that is also another image's position is refused as ambiguous), as an id only, or as a
#: position only.
IMAGE_BY = ("any", "id", "index")


def _image_args(value: str, by: str = "any") -> list[str]:
    if by not in IMAGE_BY:
        raise QueryError(f"image_by must be one of {', '.join(IMAGE_BY)}, got {by!r}")
    if by == "index" and not value.isdigit():
        raise QueryError(f"an image position is a number 0, 1, ..., got {value!r}")
    args = const_args("image", asp_string(value)) if by != "index" else []
    if by == "any" and is_identifier(value):
        args += const_args("image_ident", value)
    if by != "id" and value.isdigit():
        args += const_args("image_index", str(int(value)))
    return args


def _check_unambiguous(s: Session, value: str, by: str) -> None:
    """Refuse ``--image 0`` when an image has the id "0" and another sits at position 0."""
    if by != "any" or not value.isdigit():
        return
    named = {str(a.arguments[0]) for a in s.atoms("image_id", 2)
             if a.arguments[1].type == clingo.SymbolType.String
             and a.arguments[1].string == value}
    placed = {str(a.arguments[0]) for a in s.atoms("image_index", 2)
              if a.arguments[1].type == clingo.SymbolType.Number
              and a.arguments[1].number == int(value)}
    if named and placed and named != placed:
        raise QueryError(f"image {value!r} is ambiguous: one image has the id {value!r} and "
                         f"another is at position {int(value)}; say which with --image-id "
                         f"{value} or --image-index {value} (image_by='id' or 'index')")


def _check_class(s: Session, names: Names, value: str, what: str = "class") -> str:
    found = s.atoms("target_class", 1)
    if not found:
        raise QueryError(f"unknown {what} {value!r}; classes: {names.known_classes()}")
    return str(found[0].arguments[0])


def _image_session(program: Program | str | os.PathLike[str], query: str, image: str,
                   image_by: str, args: Sequence[str] = ()
                   ) -> tuple[Program, Session, Names, str]:
    """A session of ``query`` on the one image ``image`` names (explain, flip).

    Returns ``(program, session, names, image identifier)``.

    Raises
    ------
    QueryError
        The image is unknown or ambiguous.
    """
    prog = as_program(program)
    lines = prog.candidate_lines(image, image_by) if prog.layered else []
    if prog.layered and not lines:
        raise unknown_image(prog, image)
    s = open_session(prog, query, images=lines, patterns=False,
                     args=list(args) + _image_args(image, image_by))
    names = Names(s, prog)
    _check_unambiguous(s, image, image_by)
    return prog, s, names, _check_image(s, prog, image)


def _check_image(s: Session, program: Program, value: str) -> str:
    found = s.atoms("target_image", 1)
    if not found:
        raise unknown_image(program, value)
    return str(found[0].arguments[0])


def _terms(d: dict[str, list[clingo.Symbol]], names: Names, prefix: str,
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


def _kernel_sets(answers: Sequence[Answer], name: str, names: Names) -> list[list[str]]:
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
    prog = as_program(program)
    s = open_session(prog, "implies", images=None, patterns=False,
                 args=["--heuristic=Domain", "--enum-mode=domRec", str(max(limit, 0))]
                 + _class_args(cls))
    names = Names(s, prog)
    target = names.c(_check_class(s, names, cls))
    d = by_name(a.symbol for name, ar in (("term", 1), ("term_pos", 2), ("term_neg", 2),
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
    every activation pattern (images x rules).  On an exported program that is done in
    Python (:func:`cnn2logic.query.ondata.data_conflicts`, same answers), because clingo
    would first parse and ground every ``pattern_active/2`` fact (24 of 25 s on 10,000
    images x 512 kernels); other programs leave it to ``programs/conflicts.lp``.

    Raises
    ------
    SolverError
        clingo rejects the program.
    """
    start = time.perf_counter()
    prog = as_program(program)
    # The data part is evaluated in Python when the program has the exporter's shape: in
    # clingo it costs parsing every pattern_active/2 fact (ondata's docstring has figures).
    fast = data_conflicts(prog) if data else None
    in_asp = data and fast is None
    s = open_session(prog, "conflicts", images=None, patterns=in_asp,
                 args=["--heuristic=Domain", "--enum-mode=domRec", str(max(limit, 0))]
                 + const_args("max_pairs", str(max_pairs if max_pairs > 0 else 2 ** 31 - 1))
                 + const_args("data", "1" if in_asp else "0"))
    names = Names(s, prog)
    facts = by_name(a.symbol for name, ar in (("listed_pair", 2), ("opposite", 4),
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
    if fast is None:
        examples = {(str(x.arguments[0]), str(x.arguments[1])): str(x.arguments[2])
                    for x in facts.get("data_example", [])}
        fast = [(str(x.arguments[0]), str(x.arguments[1]), x.arguments[2].number,
                 examples.get((str(x.arguments[0]), str(x.arguments[1])), ""))
                for x in facts.get("data_conflict", [])]
    on_data = []
    for c1, c2, n_images, example in fast:
        on_data.append({"classes": [names.c(c1), names.c(c2)], "images": n_images,
                        "example": names.image(example),
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
    prog = as_program(program)
    s = open_session(prog, "necessary", images=None, patterns=False,
                 args=["--enum-mode=brave", "0"] + _class_args(cls) + const_args("when", when))
    names = Names(s, prog)
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


def explain(program: Program | str | os.PathLike[str], image: str | int, *,
            image_by: str = "any", labels: Mapping[str, str] | None = None
            ) -> ExplainResult:
    """Which rules fire for ``image`` (id, identifier or position), and the predictions.

    ``image_by`` (see :data:`IMAGE_BY`) says how ``image`` is read; with ``"any"`` a number
    that is one image's id and another's position is refused as ambiguous.  The answer
    also says why in words (:func:`cnn2logic.words.why`), naming kernels with
    their labels: the program's ``kernel_label/2``, over which ``labels`` (kernel name ->
    label, e.g. a user's label file) take precedence.

    Raises
    ------
    QueryError
        The image is unknown or ambiguous, the program has no images, or ``labels``
        names a kernel the program does not have.
    SolverError
        clingo rejects the program.
    """
    start = time.perf_counter()
    image = str(image)
    prog, s, names, _ = _image_session(program, "explain", image, image_by)
    answers, _ = s.solve()
    if not answers:  # an exported program always has one: this one was changed
        raise QueryError(f"explain: the program has no answer set for image {image!r}; "
                         "it is inconsistent (edited or damaged?): export it again")
    d = by_name(answers[0].symbols)
    classes = {x.arguments[0].number: names.c(x.arguments[1]) for x in d.get("explain_fired", [])}

    def one(key: str) -> str | None:
        return names.c(d[key][0].arguments[0]) if d.get(key) else None

    first = d.get("explain_first")
    active = names.kernels(x.arguments[0] for x in d.get("explain_active", []))
    fired = _terms(d, names, "explain", classes)
    rank = first[0].arguments[0].number if first else None
    known = _labels(s, names, labels)
    prediction = one("explain_prediction")
    # the deciding rule (first firing in rank order) is chosen as the report chooses it
    words = why(prediction, _all_terms(s, names), [t.rank for t in fired], active, known)
    mentioned = set(active) | {k for t in fired for k in (*t.pos, *t.neg)}
    return ExplainResult(
        d["explain_id"][0].arguments[0].string if d.get("explain_id") else image,
        d["explain_index"][0].arguments[0].number if d.get("explain_index") else None,
        active, fired, rank, prediction, one("explain_network"), one("explain_label"),
        round(time.perf_counter() - start, 4), words,
        {k: known[k] for k in sorted(known, key=natural_key) if k in mentioned})


def _labels(s: Session, names: Names, given: Mapping[str, str] | None) -> dict[str, str]:
    """Kernel name -> label: the program's ``kernel_label/2``, then ``given`` over them."""
    out = {names.k(a.arguments[0]): label_text(a.arguments[1].string)
           for a in s.atoms("kernel_label", 2, facts_only=True)
           if a.arguments[1].type == clingo.SymbolType.String}
    if given:
        known = sorted(names.kernel.values(), key=natural_key)
        unknown = [k for k in given if k not in set(known)]
        if unknown:
            raise QueryError(f"labels: unknown kernel {unknown[0]!r}; the program's kernels "
                             f"are {', '.join(known[:8])}{' ...' if len(known) > 8 else ''}")
        out.update({k: label_text(v) for k, v in given.items()})
    return out


def _all_terms(s: Session, names: Names) -> list[tuple[int, str, list[str], list[str], int]]:
    """Every class rule of the program as ``(rank, class, pos, neg, need)``, in rank order."""
    pos: dict[int, list[str]] = {}
    neg: dict[int, list[str]] = {}
    for name, into in (("pos", pos), ("neg", neg)):
        for a in s.atoms(name, 2, facts_only=True):
            into.setdefault(a.arguments[0].number, []).append(str(a.arguments[1]))
    need = {a.arguments[0].number: a.arguments[1].number
            for a in s.atoms("need", 2, facts_only=True)}
    return [(r, names.c(a.arguments[1]), names.kernels(pos.get(r, [])),
             names.kernels(neg.get(r, [])), need.get(r, 0))
            for a in s.atoms("rule", 2, facts_only=True)
            for r in (a.arguments[0].number,)]


def flip(program: Program | str | os.PathLike[str], image: str | int, to: str, *,
         limit: int = 20, timeout: float | None = None, image_by: str = "any") -> FlipResult:
    """The fewest input-kernel flips that make the rules predict ``to`` for ``image``.

    All optimal solutions are enumerated, at most ``limit`` (0: all).  ``image_by`` is as
    in :func:`explain`.

    Raises
    ------
    QueryError
        Unknown or ambiguous image, or unknown class.
    SolverError
        clingo rejects the program.
    """
    start = time.perf_counter()
    image = str(image)
    prog, s, names, ident = _image_session(
        program, "flip", image, image_by,
        ["--opt-mode=optN", str(max(limit, 0))] + _class_args(to, "to"))
    image_name = names.image(ident)
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
    prog = as_program(program)
    qpath = Path(query)
    if not qpath.is_file():
        raise QueryError(f"query program not found: {qpath}")
    cargs: list[str] = [str(max(models, 0))] + list(args)
    for name, value in (consts or {}).items():
        cargs += const_args(name, value)
    s = open_session(prog, qpath, args=cargs)
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
    prog = as_program(program)
    s = open_session(prog, "predictions", patterns=False)
    names = Names(s, prog)
    answers, _ = s.solve()
    out: dict[str, str | None] = {names.image(a.arguments[0]): None
                                  for a in s.atoms("image", 1)}
    for sym in answers[0].symbols if answers else []:
        out[names.image(sym.arguments[0])] = names.c(sym.arguments[1])
    return out


@dataclass(frozen=True)
class Question:
    """One question ``cnn2logic query`` can ask.

    Attributes
    ----------
    name : str
        The question as typed on the command line; also its shipped program's name.
    ask : callable
        ``ask(program, *needs, **options) -> Result``.
    needs : tuple of str
        Values the question cannot do without, passed in this order: ``"cls"`` (the
        ``--class`` option), ``"image"``, ``"to"``.
    options : tuple of str
        Keyword arguments of ``ask`` the command line passes under the same name
        (``limit``, ``max_pairs``, ``data``, ``when``, ``timeout``).
    usage : str
        How to ask it, for the command's help.
    """

    name: str
    ask: Callable[..., Result]
    needs: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    usage: str = ""

    def run(self, program: Program | str | os.PathLike[str], values: Mapping[str, Any]
            ) -> Result:
        """Ask the question of ``program`` with the needs and options found in ``values``.

        Raises
        ------
        KeyError
            ``values`` lacks a need or an option.
        QueryError, SolverError
            See the question's function.
        """
        return self.ask(program, *(values[n] for n in self.needs),
                        **{o: values[o] for o in self.options})


#: The questions by name, in the order the command line lists them.
QUESTIONS: Mapping[str, Question] = {q.name: q for q in (
    Question("implies", implies, ("cls",), ("limit", "timeout"), "implies --class C"),
    Question("conflicts", conflicts, (), ("limit", "max_pairs", "data", "timeout"),
             "conflicts"),
    Question("necessary", necessary, ("cls",), ("when", "timeout"),
             f"necessary --class C [--when {'|'.join(WHEN)}]"),
    Question("explain", explain, ("image",), ("image_by", "labels"), "explain --image N"),
    Question("flip", flip, ("image", "to"), ("limit", "timeout", "image_by"),
             "flip --image N --to C"),
)}

#: The names of :data:`QUESTIONS` (kept for code that imported it).
QUERIES = tuple(QUESTIONS)
