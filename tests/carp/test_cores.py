"""Forked workers give what a plain call gives, or fall back to one."""

from __future__ import annotations

import os
from typing import Any

import pytest

from carpfarm.carp import cores


@pytest.fixture(autouse=True)
def forking_allowed() -> Any:
    """As in the CLI; elsewhere (Ansible's workers) carpfarm never forks."""
    cores.allow_forking()
    yield
    cores.allow_forking(False)


def test_without_the_clis_leave_nothing_is_forked() -> None:
    cores.allow_forking(False)
    assert cores.usable_cores() == 1
    assert {pid for _, pid in cores.fork_map(lambda i: os.getpid(), 4, 2)} == {os.getpid()}


needs_two = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one usable core: nothing is forked")


@pytest.mark.parametrize("workers", [1, 2])
def test_fork_map_gives_every_result_once(workers: int) -> None:
    base = 10  # a closure: workers read it from their forked memory
    got = dict(cores.fork_map(lambda i: (i * base, os.getpid()), 7, workers))
    assert sorted(got) == list(range(7))
    assert [value for value, _ in (got[i] for i in range(7))] == [i * 10 for i in range(7)]


@needs_two
def test_fork_map_runs_elsewhere_with_two_workers() -> None:
    pids = {pid for _, pid in dict(cores.fork_map(lambda i: os.getpid(), 4, 2)).items()}
    assert os.getpid() not in pids


def test_fork_map_raises_what_the_task_raises() -> None:
    def task(i: int) -> int:
        if i == 3:
            raise ValueError("three")
        return i

    with pytest.raises(ValueError, match="three"):
        list(cores.fork_map(task, 5, 2))


def test_fork_map_without_workers_computes_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: Any) -> Any:
        raise OSError("fork refused")

    monkeypatch.setattr(cores, "_pool", refused)
    assert sorted(cores.fork_map(lambda i: i + 1, 3, 2)) == [(0, 1), (1, 2), (2, 3)]


def test_background_returns_the_plain_result() -> None:
    with cores.Background(lambda: {"pid": os.getpid(), "data": [1, 2]}) as later:
        result = later.result()
    assert result["data"] == [1, 2]


def test_background_recomputes_what_cannot_come_back() -> None:
    here = os.getpid()
    with cores.Background(lambda: lambda: here) as later:  # a lambda does not pickle
        assert later.result()() == here


def test_background_raises_here_what_a_plain_call_raises() -> None:
    def fails() -> None:
        raise KeyError("nope")

    with cores.Background(fails) as later, pytest.raises(KeyError, match="nope"):
        later.result()
