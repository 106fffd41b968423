"""Isolated worker processes for route sets: one fresh process per task, a few at a time.

libsumo holds one simulation per process and a simulator or agent can crash or hang, so each
route of an evaluation runs in its own forked process (:func:`run_isolated`). A task that raises,
a process that dies (killed, ``os._exit``, a segfault) or one still running after ``timeout_s``
wall-clock seconds becomes a failed :class:`TaskOutcome` with the reason, and the other tasks go
on. Outcomes reach the caller in the parent process only (``on_outcome``), so the caller alone
writes files such as a checkpoint. An interruption of the parent (``KeyboardInterrupt``) stops
every worker before it propagates.

Task values travel back through a pipe, pickled: return plain data (dicts, lists, numbers).
"""

from __future__ import annotations

import enum
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["OutcomeKind", "TaskOutcome", "default_workers", "run_isolated"]

Task = tuple[str, Callable[[], Any]]
"""``(key, function)``: the function runs in a fresh process and returns picklable data."""


class OutcomeKind(enum.Enum):
    """How a task ended."""

    OK = "ok"
    RAISED = "raised"
    """The task raised an exception (the outcome holds its traceback's last line)."""
    DIED = "died"
    """The worker process ended without a result (killed by a signal, ``os._exit``, a crash)."""
    TIMED_OUT = "timed_out"
    """The task ran past the wall-clock limit and its worker was killed."""


@dataclass(frozen=True)
class TaskOutcome:
    """The end of one task."""

    key: str
    kind: OutcomeKind
    value: Any = None
    """The task's return value (``OK`` only)."""
    error: str | None = None
    """Why the task failed, one line; None when ``OK``."""
    detail: str | None = None
    """The full traceback of a task that raised, else None."""
    wall_s: float = 0.0
    """[s] wall-clock time from the worker's start to the outcome."""

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.OK


def default_workers() -> int:
    """The number of cores this process may use (at least 1)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return max(os.cpu_count() or 1, 1)


def _worker(function: Callable[[], Any], conn: multiprocessing.connection.Connection) -> None:
    """Worker body: run ``function``, send ``("ok", value)`` or ``("raised", line, traceback)``.
    Math libraries run on one thread: the workers share the cores."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a worker stops
    try:
        value = function()
        message: tuple[Any, ...] = ("ok", value)
    except BaseException as err:  # reported to the parent; the other tasks go on
        line = f"{type(err).__name__}: {err}".splitlines()[0]
        message = ("raised", line, traceback.format_exc())
    try:
        conn.send(message)
    finally:
        conn.close()


@dataclass
class _Running:
    key: str
    process: Any
    conn: multiprocessing.connection.Connection
    started: float


def _kill(process: Any) -> None:
    if process.is_alive():
        process.terminate()
        process.join(2.0)
    if process.is_alive():
        process.kill()
    process.join()


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the worker process was killed by {name}"
    return f"the worker process exited with code {exitcode} before returning a result"


def run_isolated(
    tasks: Sequence[Task],
    *,
    workers: int,
    on_outcome: Callable[[TaskOutcome], None],
    timeout_s: float | None = None,
    poll_s: float = 0.5,
) -> None:
    """Run ``tasks`` in order, each in a fresh forked process, at most ``workers`` at a time.

    ``on_outcome`` is called in this (the parent) process once per task, as each ends, in the
    order they end. ``timeout_s`` [s] is the wall-clock limit per task (None: no limit).
    Raises ``ValueError`` on a bad argument; stops all workers if ``on_outcome`` raises or the
    parent is interrupted.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"run_isolated: workers must be an integer >= 1, got {workers!r}")
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"run_isolated: timeout_s must be > 0 s or None, got {timeout_s!r}")
    keys = [key for key, _ in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError(f"run_isolated: task keys repeat: {keys}")
    context = multiprocessing.get_context("fork")
    pending = list(tasks)
    running: list[_Running] = []
    try:
        while pending or running:
            while pending and len(running) < workers:
                key, function = pending.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(
                    target=_worker, args=(function, sender), name=f"kaido-task-{key}", daemon=True
                )
                process.start()
                sender.close()  # the child holds its end: EOF here once it is gone
                running.append(_Running(key, process, receiver, time.monotonic()))
            ready = multiprocessing.connection.wait([r.conn for r in running], timeout=poll_s)
            now = time.monotonic()
            for task in list(running):
                outcome: TaskOutcome | None = None
                wall = now - task.started
                if task.conn in ready:
                    try:
                        message = task.conn.recv()
                    except (EOFError, OSError):
                        task.process.join(5.0)
                        message = None
                    if message is None:
                        outcome = TaskOutcome(
                            task.key,
                            OutcomeKind.DIED,
                            error=_describe_exit(task.process.exitcode),
                            wall_s=wall,
                        )
                    elif message[0] == "ok":
                        outcome = TaskOutcome(
                            task.key, OutcomeKind.OK, value=message[1], wall_s=wall
                        )
                    else:
                        outcome = TaskOutcome(
                            task.key,
                            OutcomeKind.RAISED,
                            error=str(message[1]),
                            detail=str(message[2]),
                            wall_s=wall,
                        )
                elif timeout_s is not None and wall > timeout_s:
                    outcome = TaskOutcome(
                        task.key,
                        OutcomeKind.TIMED_OUT,
                        error=f"no result after {timeout_s:g} s wall clock; the worker was killed",
                        wall_s=wall,
                    )
                if outcome is None:
                    continue
                running.remove(task)
                _kill(task.process)
                task.conn.close()
                on_outcome(outcome)
    finally:
        for task in running:
            _kill(task.process)
            task.conn.close()
