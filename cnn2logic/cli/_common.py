"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import sys


def _int_at_least(text: str, minimum: int, requirement: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (else a one-line usage error)."""
    return _int_at_least(text, 1, "at least 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    return _int_at_least(text, 0, "0 or more")


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_data_args(p: argparse.ArgumentParser) -> None:
    """The data options of :func:`cnn2logic.cli._data_args.add_data_args` (kept for callers
    of this older name)."""
    # deferred: _data_args is a sibling module that may itself import this one
    from ._data_args import add_data_args as add

    add(p)


def resolve_progress(args: argparse.Namespace) -> None:
    """Decide an unset ``args.progress``: bars only when standard error is a terminal.

    A log file would otherwise hold hundreds of ``\\r``-joined bar frames before the one
    line that matters; ``--progress`` / ``--no-progress`` decide explicitly.
    """
    if getattr(args, "progress", False) is None:
        isatty = getattr(sys.stderr, "isatty", None)
        try:
            args.progress = bool(isatty()) if isatty is not None else False
        except (ValueError, OSError):  # a closed stderr
            args.progress = False


def add_progress_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--progress`` / ``--no-progress``.

    The default (None) means: bars only when standard error is a terminal
    (:func:`resolve_progress`, called by ``cnn2logic.cli.main``).
    """
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="draw progress bars on standard error (default: only on a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars")


def note_found_layers(model, layer: str, output: str | None = None,
                      bypassed: list[str] | None = None) -> None:
    """Say on stderr which layers were found on a user's model (``--layer auto``).

    Silent for a spec net, whose ``pool`` / ``out`` are what its user expects.
    """
    from ..model.spec import SpecCNN

    if isinstance(model, SpecCNN):
        return
    read = f", read by {output!r}" if output else ""
    skipped = f"; {', '.join(bypassed)} bypassed" if bypassed else ""
    print(f"kernel layer {layer!r}{read} (found on the model; --layer / --output choose "
          f"others){skipped}", file=sys.stderr)
