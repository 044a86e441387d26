"""Run a query in a child process with a wall-clock and a memory limit.

clingo's own time limit (``Session.solve(timeout)``) bounds the *search* only: grounding
``p(0). p(X+1) :- p(X).`` never ends and takes all memory.  :func:`run_bounded` forks a
child that does the whole query (loading, grounding, solving) and returns its result
through a pipe; the parent kills the child when the time is up, and the child's address
space is capped (``RLIMIT_AS``), so a hostile or careless program costs at most what the
user allowed.  Inside the child the session's search gets the time that is left of the
whole budget (:data:`cnn2logic.query.clingo.DEADLINE`), so a query that finishes is
answered exactly as before.

Forking is cheap (copy-on-write: the program text is not copied); measured on the
embedded-data programs it adds a few milliseconds per query.  Without ``fork`` (not
POSIX) the query runs in this process, unbounded, as before.

Example
-------
>>> run_bounded(sum, [1, 2, 3], timeout=10)
6
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from typing import Any, Callable

from .. import errors
from ..errors import Cnn2LogicError, QueryError, SolverError
from . import clingo as clingo_session

try:
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]

#: Seconds the parent waits beyond the time limit for the child to send its answer (an
#: interrupted search still has to be read back and sent).
GRACE = 2.0


def _child(conn, fn: Callable[..., Any], args: tuple, kwargs: dict,
           deadline: float | None, memory: int | None) -> None:
    try:
        if memory is not None and resource is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        clingo_session.DEADLINE = deadline
        conn.send(("ok", fn(*args, **kwargs)))
    except SolverError as exc:
        conn.send(("solver", str(exc), exc.location, list(exc.messages)))
    except Cnn2LogicError as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
    except MemoryError:
        conn.send(("memory",))
    except BaseException as exc:  # sent back and raised in the parent, with its trace
        conn.send(("crash", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        conn.close()


def run_bounded(fn: Callable[..., Any], *args: Any, timeout: float | None = None,
                memory_mb: int | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a forked child, killed after ``timeout`` seconds.

    Parameters
    ----------
    fn : callable
        A query (e.g. :func:`cnn2logic.query.run_program`); its result must pickle.
    timeout : float, optional
        Seconds for the whole call: loading, grounding and solving.  None: no limit.
    memory_mb : int, optional
        The child's address-space limit in MiB.  None: no limit.

    Raises
    ------
    QueryError
        The time or memory limit was reached (one line saying which), or ``fn`` raised a
        :class:`~cnn2logic.errors.Cnn2LogicError` (re-raised with its class and message).
    SolverError
        clingo rejected the program (re-raised with its location).
    RuntimeError
        ``fn`` failed in an unexpected way (the child's traceback is in the message).
    """
    if "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover
        return fn(*args, **kwargs)
    ctx = multiprocessing.get_context("fork")
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    memory = None if memory_mb is None else int(memory_mb) * 2**20
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, fn, args, kwargs, deadline, memory),
                        daemon=True)
    child.start()
    send.close()
    try:
        wait = None if timeout is None else timeout + GRACE
        if not receive.poll(wait):
            raise QueryError(f"clingo did not finish within --timeout {timeout:g} s (loading "
                             "and grounding count too; a program such as 'p(X+1) :- p(X).' "
                             "never ends): stopped it")
        try:
            message = receive.recv()
        except (EOFError, OSError):
            child.join(5)
            if memory_mb is not None:
                raise QueryError(f"clingo stopped without an answer (exit {child.exitcode}); "
                                 f"it may have run out of its --max-memory {memory_mb} MB"
                                 ) from None
            raise QueryError(
                f"clingo stopped without an answer (exit {child.exitcode})") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receive.close()
    kind = message[0]
    if kind == "ok":
        return message[1]
    if kind == "solver":
        raise SolverError(message[1], location=message[2], messages=message[3])
    if kind == "error":
        cls = getattr(errors, message[1], None)
        if not (isinstance(cls, type) and issubclass(cls, Cnn2LogicError)):
            cls = QueryError
        raise cls(message[2])
    if kind == "memory":
        raise QueryError(f"clingo ran out of memory (--max-memory {memory_mb} MB): the "
                         "program grounds to more than that")
    raise RuntimeError(f"the query failed in its child process: {message[1]}\n{message[2]}")


def default_memory_mb() -> int | None:
    """Three quarters of the physical memory, in MiB (None when it cannot be told)."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return int(pages * size * 3 // 4 // 2**20) or None
