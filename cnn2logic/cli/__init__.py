"""The ``cnn2logic`` command line: one module per subcommand.

Each module in :data:`COMMANDS` exposes ``register(subparsers)``, which adds its parser
and sets ``func`` (``args -> int``).  :func:`main` turns every :class:`Cnn2LogicError`
(and unreadable-file errors) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from ..errors import Cnn2LogicError

COMMANDS = ("demo", "train", "extract", "export", "query", "visualize", "graph", "report",
            "capture", "merge", "extract_part")


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
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first.replace("-", "_") if first in COMMANDS_CLI else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Cnn2LogicError as exc:
        print(f"cnn2logic {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"cnn2logic {args.command}: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``cnn2logic query ... | head``): not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"cnn2logic {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
