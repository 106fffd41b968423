"""Route sets on a Ray cluster: each task a Ray task with retries, outcomes in the parent.

:func:`run_on_ray` is the distributed counterpart of
:func:`kaido.simulation.eval_pool.run_isolated`: it takes the same ``(key, function)`` tasks
and reports the same :class:`TaskOutcome` objects to ``on_outcome`` in this (the driver)
process, so the caller's bookkeeping (checkpoint, results file) is the same for both. Each task
is one Ray task needing one CPU, run by a worker process that runs no other task
(``max_calls=1``: libsumo holds one simulation per process). A worker that dies (killed,
``os._exit``, a segfault, out of memory) is retried up to ``retries`` times by Ray; after that,
or when the task raised, the outcome is a failure with the reason.

At most as many tasks as the cluster has CPUs are in flight at once, so a task starts about when
it is submitted and ``timeout_s`` [s] counts from its submission (it includes the worker's
start-up, about a second); a task past it is force-cancelled and reported ``TIMED_OUT``.

Ray is imported only when :func:`run_on_ray` runs. ``address`` is ``"local"`` (start a Ray
instance on this machine, stopped afterwards), ``"auto"`` (the cluster this machine belongs to)
or a cluster address (``ray://host:10001``, ``host:6379``); when this process is already
connected (``ray.init`` was called), that connection is used as it is. Every node needs the same
kaido installation as the driver: task functions travel pickled and import kaido on the worker.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kaido.simulation.eval_pool import OutcomeKind, Task, TaskOutcome

__all__ = ["LOCAL", "run_on_ray"]

LOCAL = "local"
"""The address that starts a Ray instance on this machine for the run."""


def _run_task(function: Callable[[], Any]) -> Any:
    """Ray task body: the task's function, in a worker process that runs nothing else."""
    return function()


@dataclass
class _InFlight:
    key: str
    ref: Any
    submitted: float


@contextlib.contextmanager
def _connected(address: str) -> Iterator[Any]:
    """The ``ray`` module, connected to ``address`` (disconnected afterwards if connected here)."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(
            f"run_on_ray: address must be 'local', 'auto' or a Ray address, got {address!r}"
        )
    try:
        import ray
    except ImportError as err:
        raise ImportError(
            "kaido eval --ray needs Ray: pip install 'ray==2.60.0' (on every node)"
        ) from err
    if ray.is_initialized():
        yield ray
        return
    if address == LOCAL:
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as err:
            raise ConnectionError(f"--ray {address}: no Ray cluster there ({err})") from err
    try:
        yield ray
    finally:
        ray.shutdown()


def _failure(ray: Any, key: str, err: BaseException, retries: int, wall: float) -> TaskOutcome:
    """The outcome of a task whose ``ray.get`` raised ``err``."""
    exceptions = ray.exceptions
    if isinstance(err, exceptions.TaskCancelledError):
        return TaskOutcome(
            key, OutcomeKind.TIMED_OUT, error="the Ray task was cancelled", wall_s=wall
        )
    if isinstance(err, exceptions.RayTaskError):
        cause = err.cause if isinstance(err.cause, BaseException) else err
        line = f"{type(cause).__name__}: {cause}".splitlines()[0]
        return TaskOutcome(key, OutcomeKind.RAISED, error=line, detail=str(err), wall_s=wall)
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return TaskOutcome(
        key,
        OutcomeKind.DIED,
        error=f"the Ray worker died, {retries} retries spent ({type(err).__name__}: {first})",
        wall_s=wall,
    )


def run_on_ray(
    tasks: Sequence[Task],
    *,
    address: str,
    retries: int = 2,
    on_outcome: Callable[[TaskOutcome], None],
    timeout_s: float | None = None,
    poll_s: float = 0.5,
) -> None:
    """Run ``tasks`` as Ray tasks (one CPU each, a fresh worker process each, ``retries``
    retries after a worker death), submitted in order.

    ``on_outcome`` is called in this process once per task, as each ends, in the order they end.
    ``timeout_s`` [s]: wall-clock limit per task from its submission (None: no limit). Raises
    ``ValueError`` on a bad argument, ``ConnectionError`` when no cluster answers at
    ``address``; cancels the tasks in flight if ``on_outcome`` raises or this process is
    interrupted.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"run_on_ray: retries must be an integer >= 0, got {retries!r}")
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"run_on_ray: timeout_s must be > 0 s or None, got {timeout_s!r}")
    keys = [key for key, _ in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError(f"run_on_ray: task keys repeat: {keys}")
    if not tasks:
        return
    with _connected(address) as ray:
        remote = ray.remote(num_cpus=1, max_calls=1, max_retries=retries)(_run_task)
        window = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        pending = list(tasks)
        running: list[_InFlight] = []
        try:
            while pending or running:
                while pending and len(running) < window:
                    key, function = pending.pop(0)
                    running.append(_InFlight(key, remote.remote(function), time.monotonic()))
                ready, _ = ray.wait(
                    [r.ref for r in running], num_returns=len(running), timeout=poll_s
                )
                done = set(ready)
                now = time.monotonic()
                for task in list(running):
                    wall = now - task.submitted
                    outcome: TaskOutcome | None = None
                    if task.ref in done:
                        try:
                            value = ray.get(task.ref)
                            outcome = TaskOutcome(
                                task.key, OutcomeKind.OK, value=value, wall_s=wall
                            )
                        except ray.exceptions.RayError as err:
                            outcome = _failure(ray, task.key, err, retries, wall)
                    elif timeout_s is not None and wall > timeout_s:
                        ray.cancel(task.ref, force=True, recursive=True)
                        outcome = TaskOutcome(
                            task.key,
                            OutcomeKind.TIMED_OUT,
                            error=f"no result after {timeout_s:g} s wall clock; the Ray task "
                            "was cancelled",
                            wall_s=wall,
                        )
                    if outcome is None:
                        continue
                    running.remove(task)
                    on_outcome(outcome)
        finally:
            for task in running:
                with contextlib.suppress(Exception):
                    ray.cancel(task.ref, force=True, recursive=True)
