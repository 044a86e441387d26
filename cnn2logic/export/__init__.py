"""Program writers: a rule set (and optionally a data set's activations) as a logic program.

How the pieces fit:

* :mod:`.model`: :func:`~.model.prepare` turns a :class:`~cnn2logic.rules.RuleSet` into a
  :class:`~.model.ProgramModel` (legal identifiers, ranked rules, aligned data, header
  lines) that every language consumes, so all of them agree on names and facts;
* one module per language formats the model: :mod:`.asp` (clingo) and :mod:`.prolog`
  (SWI-Prolog);
* :mod:`.logic`: :data:`~.logic.FORMATS`, the registry of languages (name -> writer), and
  :func:`~.logic.write_program`, which picks one by format or file extension;
* :mod:`.layout`: the section markers of an ASP program, shared with the query side
  (:class:`cnn2logic.query.Program`), which loads only the sections a question needs;
* :mod:`.markdown`: the human-readable rules and metrics (not a program).

Adding a language: a module with ``to_<language>(rules, codes, *, unminimized, sources)``
formatting a :class:`~.model.ProgramModel`, and one entry in :data:`~.logic.FORMATS`.
"""
