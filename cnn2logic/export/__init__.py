"""Program writers: ASP for clingo (:mod:`.asp`) and Prolog for SWI-Prolog (:mod:`.prolog`)."""
