"""The ``cnn2logic`` command line: one module per subcommand.

Each module in :data:`COMMANDS` exposes ``register(subparsers)``, which adds its parser
and sets ``func`` (``args -> int``).  :func:`main` turns every :class:`Cnn2LogicError`
(and unreadable-file errors) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from typing import Sequence

from .._io import Terminated, remove_live_temporaries
from ..errors import Cnn2LogicError
from ._common import resolve_progress

COMMANDS = ("demo", "train", "extract", "export", "query", "visualize", "graph", "report",
            "capture", "merge", "extract_part", "tune")


# Subcommand names as typed (module extract_part is the command extract-part, if any).
COMMANDS_CLI = {name.replace("_", "-") for name in COMMANDS} | set(COMMANDS)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like our own errors
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that subcommand is registered.

    Registering a subcommand imports what its options need (some of that imports torch),
    so a call that names its subcommand pays only for that one.
    """
    parser = _Parser(prog="cnn2logic",
                     description="Turn a trained CNN into logic programs you can query.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS if only is None else (only,):
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; every error we expect becomes one line on stderr and exit 2.

    Raises
    ------
    SystemExit
        From argparse on ``--help`` or a usage error (exit 2, one line).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first.replace("-", "_") if first in COMMANDS_CLI else None)
    args = parser.parse_args(argv)
    resolve_progress(args)
    previous = _terminate_like_interrupt()
    stdout = sys.stdout
    if stdout is not None:
        sys.stdout = _NamedStdout(stdout)
    try:
        code = int(args.func(args) or 0)
        _flush_stdout()
        return code
    except Cnn2LogicError as exc:
        return _fail(args.command, str(exc))
    except BrokenPipeError:
        # The reader went away (``cnn2logic query ... | head``): not an error of ours.
        _silence_stdout()
        return 0
    except OSError as exc:  # a full disk, a read-only file system, a name too long ...
        if isinstance(exc, _StdoutError):
            _silence_stdout()  # else the interpreter's final flush fails again, loudly
        return _fail(args.command, _os_message(exc))
    except KeyboardInterrupt as exc:
        remove_live_temporaries()
        terminated = isinstance(exc, Terminated)
        print(f"cnn2logic {args.command}: {'terminated' if terminated else 'interrupted'}",
              file=sys.stderr)
        return 143 if terminated else 130
    finally:
        sys.stdout = stdout
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _terminate_like_interrupt():
    """Make SIGTERM unwind like Ctrl-C (temporary files removed); return the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None  # only the main thread may set signal handlers
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):
        return None


class _StdoutError(OSError):
    """Writing to standard output failed (``> /dev/full``)."""


class _NamedStdout:
    """Standard output whose write errors name it (print's OSError names no file)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _StdoutError(exc.errno, exc.strerror, "standard output") from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _StdoutError(exc.errno, exc.strerror, "standard output") from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def _silence_stdout() -> None:
    # Point stdout at /dev/null so nothing is written (or fails) at the final flush.
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _os_message(exc: OSError) -> str:
    what = exc.strerror or exc.__class__.__name__
    return what if exc.filename is None else f"{what}: {exc.filename}"


def _fail(command: str, message: str) -> int:
    # One line, whatever the names in the message hold (a class named "a\nb").
    for char, escaped in (("\r", "\\r"), ("\n", "\\n"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029"), ("\x85", "\\x85"), ("\x0b", "\\x0b"),
                          ("\x0c", "\\x0c"), ("\x1c", "\\x1c"), ("\x1d", "\\x1d"),
                          ("\x1e", "\\x1e")):
        message = message.replace(char, escaped)
    try:
        print(f"cnn2logic {command}: error: {message}", file=sys.stderr)
    except OSError:
        pass
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
