"""One exception hierarchy for the whole package.

Every error cnn2logic raises on purpose derives from :class:`Cnn2LogicError`; the
subclasses also derive from the matching built-in so that callers who already catch
``ValueError`` or ``FileNotFoundError`` keep working.  The CLI turns any of them into a
one-line message and exit code 2.
"""

from __future__ import annotations

from typing import Sequence


class Cnn2LogicError(Exception):
    """Base class of every error raised on purpose by cnn2logic."""


class DataError(Cnn2LogicError, ValueError):
    """A data set is missing, malformed, or inconsistent (names the file)."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file or directory that was asked for does not exist."""


class ModelError(Cnn2LogicError, ValueError):
    """A model spec, checkpoint or layer name is invalid."""


class CheckpointError(ModelError):
    """A checkpoint file is unreadable, corrupt, or does not fit its config."""


class ActivationError(Cnn2LogicError, ValueError):
    """Captured activations are not what the step that consumes them needs."""


class ExtractionError(Cnn2LogicError, ValueError):
    """Rule extraction was configured or called wrongly."""


class RulesFileError(Cnn2LogicError, ValueError):
    """A rules JSON file is unreadable or does not follow the schema."""


class ExportError(Cnn2LogicError, ValueError):
    """A logic program could not be written."""


class SolverError(Cnn2LogicError, RuntimeError):
    """clingo or SWI-Prolog rejected a program; carries the solver's own message.

    Parameters
    ----------
    message : str
        The solver's message, quoted.
    location : tuple of (str, int, int), optional
        File, line and column the message points at, when it names one.
    messages : sequence of str, optional
        Every message the solver logged, in order.

    Attributes
    ----------
    location : tuple of (str, int, int) or None
    messages : list of str
    """

    def __init__(self, message: str, *, location: tuple[str, int, int] | None = None,
                 messages: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.location = location
        self.messages = list(messages)


class QueryError(Cnn2LogicError, ValueError):
    """A query names an unknown class, kernel or image, or is malformed."""


class NotFittedError(Cnn2LogicError, AttributeError):
    """An extractor's results were used before ``fit`` was called."""


class VisualizationError(Cnn2LogicError, ValueError):
    """A maximising image, kernel graph or report cannot be made as asked."""


class LabelsError(Cnn2LogicError, ValueError):
    """A kernel label file (or the labels of a rules file) is malformed (names the value)."""
