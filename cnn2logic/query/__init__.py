"""Ask questions of an exported logic program: clingo for ASP, SWI-Prolog for Prolog.

The concepts, one module each:

* :mod:`.program`: a :class:`Program` is an exported ASP program (``.lp`` from
  ``cnn2logic export`` or :meth:`Program.from_rules`), split along the sections the
  exporter writes (rules, activation patterns, one line per image; the markers are in
  :mod:`cnn2logic.export.layout`) so that a question loads only what it needs;
* :mod:`.clingo`: a session of clingo's Python API on a program plus a query program
  (clingo's messages are captured and raised as :class:`~cnn2logic.errors.SolverError`
  with file and line), the shipped query programs (:func:`programs_dir`), and the
  mapping from identifiers back to the user's names;
* :mod:`.questions`: the questions (:func:`implies`, :func:`conflicts`,
  :func:`necessary`, :func:`explain`, :func:`flip`), :func:`run_program` for a query
  program of the user's, :func:`predictions`, and :data:`QUESTIONS`, the registry
  ``cnn2logic query`` reads its choices from;
* :mod:`.results`: what the questions return; each prints as tables (``format``) or JSON
  (``to_json``);
* :mod:`.swipl`: SWI-Prolog on an exported ``.pl`` (:func:`check_program`,
  :func:`prolog_predictions`): the Prolog side of the cross-checks.

Errors: an unknown class or image raises :class:`~cnn2logic.errors.QueryError`; a program
a solver rejects raises :class:`~cnn2logic.errors.SolverError` carrying the solver's own
message.

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

from .clingo import program_path, programs_dir
from .program import Program
from .questions import (QUERIES, QUESTIONS, WHEN, Question, conflicts, explain, flip, implies,
                        necessary, predictions, run_program)
from .results import (ConflictsResult, ExplainResult, FlipResult, ImpliesResult,
                      NecessaryResult, ProgramResult, Result, Term, Witness)
from .swipl import SWIPL, check_program, prolog_predictions, run_goal, swipl_path

__all__ = [
    "Program", "programs_dir", "program_path",
    "QUESTIONS", "QUERIES", "WHEN", "Question",
    "implies", "conflicts", "necessary", "explain", "flip", "run_program", "predictions",
    "Result", "Term", "ImpliesResult", "Witness", "ConflictsResult", "NecessaryResult",
    "ExplainResult", "FlipResult", "ProgramResult",
    "SWIPL", "swipl_path", "run_goal", "check_program", "prolog_predictions",
]
