"""Output files: the one atomic writer, and the checks every command that writes runs first.

* :func:`atomic_path` writes beside the target and renames at the end, so a reader never
  sees a half-written file.  Its OS errors name the *user's* path (never the temporary
  file), an existing target keeps its permission bits, and every live temporary file is
  tracked in :data:`LIVE_TEMPORARIES` so a signal handler can remove them
  (:func:`remove_live_temporaries`; ``cnn2logic.cli.main`` turns SIGTERM into
  :class:`Terminated`, whose unwinding removes them like Ctrl-C does).
* :func:`atomic_directory` does the same for a *set* of files in one folder
  (``extract``'s rules.json, rules.md and codes): they are written into a temporary sibling
  folder and moved in together at the end, so an interrupted run never leaves new files
  beside old ones.
* :func:`refuse_overwriting_inputs` stops a command whose output would replace one of its
  inputs (``export rules.json --out rules.json``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import Cnn2LogicError

#: Temporary files and folders being written right now (removed on SIGTERM / at exit).
LIVE_TEMPORARIES: set[Path] = set()


class OutputError(Cnn2LogicError, ValueError):
    """An output path is unusable: it would overwrite an input, or is not a directory."""


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler so that cleanup runs exactly as for Ctrl-C."""


def check_parents(target: Path) -> None:
    """Refuse a target whose existing ancestor is a file (mkdir would say 'File exists').

    Raises
    ------
    NotADirectoryError
        Naming ``target`` (the CLI prints it as one line, exit 2).
    """
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                         str(target))
            return


def _user_error(exc: OSError, target: Path) -> OSError:
    """``exc`` re-labelled with the user's path (its errno and reason kept)."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), str(target))


def _final_mode(target: Path) -> int:
    """The mode the written file gets: the existing target's, else what open() would give."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    ``suffix`` lets writers that insist on an extension (``np.savez``) see one.  An
    existing ``path`` keeps its permission bits.

    Raises
    ------
    OSError
        Creating, writing or renaming failed; the error names ``path``, not the
        temporary file (``NotADirectoryError`` when an ancestor of ``path`` is a file).
    """
    target = Path(path)
    try:
        check_parents(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        # A short temporary name: a target name near the OS limit must still fail with
        # the target's own name, not a temporary one that is even longer.
        fd, tmp = tempfile.mkstemp(prefix=".c2l-", suffix=suffix + ".tmp", dir=target.parent)
    except OSError as exc:
        raise _user_error(exc, target) from None
    os.close(fd)
    tmp_path = Path(tmp)
    LIVE_TEMPORARIES.add(tmp_path)
    try:
        yield tmp_path
        try:
            os.chmod(tmp_path, _final_mode(target))
            if target.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
            os.replace(tmp_path, target)
        except OSError as exc:
            raise _user_error(exc, target) from None
    except OSError as exc:
        # A writer failing on the temporary file (a full disk) names it, or names no file
        # at all (zipfile, for np.savez): name the target.
        if exc.filename is None or Path(exc.filename) == tmp_path:
            raise _user_error(exc, target) from None
        raise
    finally:
        LIVE_TEMPORARIES.discard(tmp_path)
        with contextlib.suppress(OSError):
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success its files replace those in ``path``.

    The files written into the yielded folder are moved into ``path`` (created if need
    be) only after the block succeeds, each by an atomic rename on the same file system,
    so an interrupted command leaves ``path`` exactly as it was.  Files of ``path`` that
    the block did not write are kept.

    Raises
    ------
    OSError
        ``path`` (or an ancestor) is a file, or creating / renaming failed; the error names
        ``path``.
    """
    target = Path(path)
    try:
        check_parents(target / "x")
        if target.exists() and not target.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".c2l-", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise _user_error(exc, target) from None
    LIVE_TEMPORARIES.add(tmp)
    try:
        yield tmp
        # Ctrl-C / SIGTERM wait until every file is moved: the set is never half replaced
        # (each move is one rename on the same file system, microseconds each).
        blocked = _block_signals()
        try:
            target.mkdir(exist_ok=True)
            for item in sorted(tmp.iterdir()):
                dest = target / item.name
                os.chmod(item, _final_mode(dest))
                os.replace(item, dest)
        except OSError as exc:
            raise _user_error(exc, target) from None
        finally:
            _unblock_signals(blocked)
    finally:
        LIVE_TEMPORARIES.discard(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def _block_signals() -> set | None:
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _unblock_signals(previous: set | None) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def remove_live_temporaries() -> None:
    """Remove every temporary file or folder a writer is still filling (best effort)."""
    for tmp in list(LIVE_TEMPORARIES):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()
        LIVE_TEMPORARIES.discard(tmp)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def refuse_overwriting_inputs(outputs: Iterable[str | os.PathLike[str] | None],
                              inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """Refuse when an output path is (or resolves to, or is a hard link of) an input.

    ``None`` entries and ``-`` (standard output / input) are skipped.

    Raises
    ------
    OutputError
        Some output would overwrite an input; the message names both as given.
    """
    ins = [Path(p) for p in inputs if p is not None and os.fspath(p) != "-"]
    for out in outputs:
        if out is None or os.fspath(out) == "-":
            continue
        o = Path(out)
        for i in ins:
            if _same_file(o, i):
                raise OutputError(f"output {os.fspath(o)} is the input {os.fspath(i)}: "
                                  "writing it would destroy the input; choose another path")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`).

    Raises
    ------
    OSError
        See :func:`atomic_path`.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_path`).

    Raises
    ------
    OSError
        See :func:`atomic_path`.
    """
    # newline="\n" keeps output byte-identical across platforms.
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
