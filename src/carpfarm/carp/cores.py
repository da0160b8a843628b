"""Use the controller's other CPU cores for carpfarm's long computations, by forking.

A forked worker starts with a copy of the parent's memory, so a task's inputs need no
pickling: the task is a closure over them, and only its result travels back. Where fork is
not available, or only one core is, everything runs in this process, in the same order.

Fork only while this process runs no other thread (no live progress bar, no other pool):
a thread holding a lock at the fork would leave that lock held forever in the child.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # imported when first needed: most runs never fork
    from concurrent.futures import Future, ProcessPoolExecutor

R = TypeVar("R")

# The task of the pool being started: workers forked from this process read it from their copy.
_task: Callable[[int], Any] | None = None


# Whether this process may fork workers: the CLI says so (cli.main). Elsewhere, above all in
# Ansible's own forked workers, where the filter plugin runs, carpfarm computes in the caller.
_forking_allowed = False


def allow_forking(allowed: bool = True) -> None:
    """Let (or stop) carpfarm fork workers in this process; only a program that owns its process may."""
    global _forking_allowed
    _forking_allowed = allowed


def usable_cores() -> int:
    """CPU cores this process may run on; 1 unless forking was allowed, and but on Linux, the one
    system where forking a process that has threads' libraries loaded is known safe (macOS's
    are not fork-safe)."""
    if not (_forking_allowed and hasattr(os, "fork") and hasattr(os, "sched_getaffinity")):
        return 1
    return len(os.sched_getaffinity(0))


def _run(index: int) -> Any:
    if _task is None:
        raise RuntimeError("a carpfarm worker started without its task (it must be forked, not spawned)")
    return _task(index)


def _pool(task: Callable[[int], Any], workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes forked (at the first submit) with ``task`` in their memory."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _task
    _task = task
    # Whatever sits in the parent's buffers would be written again by every child on exit.
    sys.stdout.flush()
    sys.stderr.flush()
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))


def fork_map(task: Callable[[int], R], count: int, workers: int) -> Iterator[tuple[int, R]]:
    """``(i, task(i))`` for every ``i`` in ``range(count)``: in ``workers`` forked processes, in
    the order they finish, or here in order when ``workers`` (capped by the usable cores) is 1.

    Results must pickle; an exception raised by ``task`` is raised here."""
    workers = min(workers, count, usable_cores())
    if workers <= 1:
        for index in range(count):
            yield index, task(index)
        return
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    done: set[int] = set()
    try:
        with _pool(task, workers) as pool:
            futures: dict[Future[R], int] = {pool.submit(_run, index): index for index in range(count)}
            for future in as_completed(futures):
                result = future.result()
                done.add(futures[future])
                yield futures[future], result
    except (BrokenProcessPool, OSError):  # no worker could start, or one died: the rest here
        pass
    for index in range(count):
        if index not in done:
            yield index, task(index)


class Background(Generic[R]):
    """``function()`` computed in a forked process while this one goes on; ``result()`` waits for it.

    Should the background process fail in any way (its exception, a result that does not
    pickle, a killed worker), ``result()`` calls ``function()`` here instead, so it returns
    or raises exactly what an ordinary call would. Use it in a ``with`` block: leaving the
    block waits for the process to end."""

    def __init__(self, function: Callable[[], R]) -> None:
        self._function = function
        self._pool: ProcessPoolExecutor | None = None
        self._future: Future[R] | None = None
        if usable_cores() > 1:
            self._pool = _pool(lambda _: function(), 1)
            try:
                self._future = self._pool.submit(_run, 0)
            except Exception:  # no process could start: result() computes it here
                self._future = None

    def __enter__(self) -> Background[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def result(self) -> R:
        if self._future is not None:
            try:
                return self._future.result()
            except Exception:  # any failure there: compute it here, as a plain call would
                self._future = None
        return self._function()
