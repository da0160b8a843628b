"""CPU time by component, read from the host's /proc: every lab container's processes are visible here.

A snapshot maps each process to its command line and the user+system CPU seconds it has used;
two snapshots around a run give what each layer spent on it (``carpfarm.lab.bench.cpu_used``).
"""

from __future__ import annotations

import os
from pathlib import Path

from carpfarm.lab import bench

TICKS = os.sysconf("SC_CLK_TCK")


def snapshot() -> dict[int, tuple[str, float]]:
    """pid -> (command line, CPU seconds used so far), for every process on the machine."""
    processes: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # it ended while we looked
            continue
        processes[int(entry.name)] = (
            command or stat.split("(", 1)[1].rsplit(")", 1)[0],
            bench.process_cpu_seconds(stat, TICKS),
        )
    return processes


def softirq() -> float:
    return bench.softirq_seconds(Path("/proc/stat").read_text(), TICKS)


class Meter:
    """CPU used by each component between ``start()`` and ``stop()``, and the machine's softirq."""

    def start(self) -> None:
        self._before, self._softirq = snapshot(), softirq()

    def stop(self) -> dict[str, float]:
        used = bench.cpu_used(self._before, snapshot())
        used[bench.SOFTIRQ] = softirq() - self._softirq
        return used


def squid_pids(instance: str) -> list[int]:
    """The processes of one Squid instance (``squid -n NAME``: the master and its kids)."""
    return sorted(pid for pid, (command, _) in snapshot().items() if f" -n {instance} " in f" {command} ")
