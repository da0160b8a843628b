"""carpfarm.lab.watchlog: what carpfarm-watch's log says it did, for molecule's kill-frontend check.

``rule_changes`` reads when the rules took a port out and put it back from the watch's log lines
(as ``carpfarm.box.health.Event.line`` writes them); ``out_and_back`` (the filter
carpfarm_watch_out_and_back) measures both from a fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


def rule_changes(lines: Iterable[str], port: int) -> list[tuple[float, str]]:
    """When the rules took ``port`` out and put it back, read from the watch's log lines (as
    Event.line writes them, e.g. ``journalctl -o cat``): (epoch seconds, "out" or "in")."""
    changes = []
    for line in lines:
        stamp, _, rest = line.strip().partition(" ")
        kind, _, detail = rest.partition(": ")
        if kind != "live" or "(" not in detail:
            continue
        for change in detail.rpartition("(")[2].rstrip(")").split(", "):
            direction, _, ports = change.partition(" ")
            if direction in ("out", "in") and str(port) in ports.split():
                changes.append((datetime.fromisoformat(stamp).timestamp(), direction))
    return changes


def out_and_back(lines: Iterable[str], port: int, since: float) -> dict[str, float | None]:
    """Seconds from ``since`` (a fault) until the rules first took ``port`` out, and until they
    next put it back (None for what did not happen)."""
    out = back = None
    for at, direction in rule_changes(lines, port):
        if at < since:
            continue
        if direction == "out" and out is None:
            out = round(at - since, 3)
        elif direction == "in" and out is not None and back is None:
            back = round(at - since, 3)
    return {"out_s": out, "in_s": back}
