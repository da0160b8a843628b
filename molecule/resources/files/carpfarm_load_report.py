#!/usr/bin/env python3
"""Judge a load recorded by carpfarm-load.py against carpfarm's own CARP predictions.

carpfarm_load_report.py --inventory INV --rows FILE [--down PEER ...] [--after-inventory INV2]
                        [--fault-at T] [--back-at T]

Every request is put in a phase by its send time: ``before`` the fault, ``during``
it (fault-at .. back-at) and ``after`` (from back-at, when the broken part listens again); a
request sent before the fault that failed while still in flight when it struck counts ``during``.
For each answered request the backend that served it (its cache verdict, X-Cache or Cache-Status) is compared with:

* ``owner``: where carpfarm routes the URL with every peer up;
* ``alternate``: where it routes it with the --down peers marked down, or, for a
  change of the farm, where --after-inventory routes it;
* ``fallback``: the first peer in configuration order that is not down. Until a
  frontend has counted ``connect-fail-limit`` failures it still picks the dead
  peer; when the connect fails, Squid's next destination is not the CARP second
  choice but the first live parent in configuration order (never_direct adds all
  parents as ``ANY_OLD_PARENT``). Those requests are counted, not hidden.

Prints one JSON object; the playbook asserts on it. Runs on the controller,
with the Python that has carpfarm installed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from carpfarm.inventory import load_topology

# How long after the fault's timestamp a killed process may still hold its sockets.
KILL_TAKES_S = 0.05
# A CARP frontend instance's name is <box>-frontend<n> (carpfarm.model).
FRONTEND_NAME = re.compile(r"^(?P<box>.+)-frontend\d+$")


def box_runs(rows: list[dict[str, Any]], fault_at: float | None) -> list[dict[str, Any]]:
    """Which CARP box answered, in send order: one {box, from_s, to_s, answers} per run of answers
    by the same box, times (of the answers) in seconds from the fault (from the first request
    without one)."""
    answered = sorted((r for r in rows if r["status"] == 200 and r.get("frontend")), key=lambda r: r["t"])
    origin = fault_at if fault_at is not None else (answered[0]["t"] if answered else 0.0)
    runs: list[dict[str, Any]] = []
    for row in answered:
        found = FRONTEND_NAME.match(row["frontend"])
        box = found.group("box") if found else row["frontend"]
        at = round(row["t"] + row["dt"] - origin, 3)
        if runs and runs[-1]["box"] == box:
            runs[-1].update(to_s=at, answers=runs[-1]["answers"] + 1)
        else:
            runs.append({"box": box, "from_s": at, "to_s": at, "answers": 1})
    return runs


def _phase(t: float, fault_at: float | None, back_at: float | None) -> str:
    if fault_at is None or t < fault_at:
        return "before"
    if back_at is None or t < back_at:
        return "during"
    return "after"


def _in_flight(row: dict[str, Any], fault_at: float | None) -> bool:
    """Whether a failed request was already on the wire when the fault struck: no balancer can
    save a request whose server process is killed under it. The fault's time is read just before
    the kill, and a killed Squid's sockets close only once the kernel has torn the process down,
    so a request that reached it up to KILL_TAKES_S after that time was still inside it (seen: a
    request sent 4 ms after, reset 2 ms later, behind HAProxy); one sent before it and answered
    (broken) after it was inside it too (seen: sent 0.2 s before a kill -9, behind HAProxy)."""
    if not fault_at:
        return False
    return bool(row["t"] - KILL_TAKES_S <= fault_at <= row["t"] + row["dt"] + 0.05)


def report(
    rows: list[dict[str, Any]],
    owner: dict[str, str],
    alternate: dict[str, str],
    fallback: str,
    fault_at: float | None,
    back_at: float | None,
) -> dict[str, Any]:
    down_urls = {url for url in owner if owner[url] != alternate[url]}
    phases: dict[str, Counter[str]] = {p: Counter() for p in ("before", "during", "after")}
    moved_urls: set[str] = set()
    unexpected: list[str] = []
    failures: list[dict[str, Any]] = []
    last_fallback = 0.0
    returned_at = back_at  # the last time a down URL was served elsewhere after back-at
    for row in sorted(rows, key=lambda r: r["t"]):
        phase = _phase(row["t"], fault_at, back_at)
        if row["status"] != 200 and _in_flight(row, fault_at):
            # Sent just before the fault, broken by it: the fault's failure, not the farm's before it.
            phase = "during"
        count = phases[phase]
        count["requests"] += 1
        url, served = row["url"], row.get("backend", "")
        if row["status"] != 200:
            count["failed"] += 1
            failures.append({**row, "phase": phase, "at": round(row["t"] - (fault_at or row["t"]), 3)})
            continue
        if served == owner[url]:
            count["owner"] += 1
        elif served == alternate[url]:
            count["alternate"] += 1
            moved_urls.add(url)
        elif served == fallback and url in down_urls:
            count["fallback"] += 1
            last_fallback = max(last_fallback, row["t"] - (fault_at or row["t"]))
        else:
            count["other"] += 1
            unexpected.append(f"{phase} {url}: served by {served}, owner {owner[url]}, alternate {alternate[url]}")
        if url in down_urls:
            count["down_urls_requests"] += 1
            count["down_urls_owner"] += served == owner[url]
            if phase == "after" and served != owner[url] and returned_at is not None:
                returned_at = max(returned_at, row["t"])
    fail_at = [f["at"] for f in failures]
    in_flight = [f for f in failures if _in_flight(f, fault_at)]
    return {
        "requests": len(rows),
        "failed": len(failures),
        "failed_in_flight": len(in_flight),
        "urls": len(owner),
        "fallback_peer": fallback,
        "predicted_moved_urls": len(down_urls),
        "predicted_moved_fraction": round(len(down_urls) / len(owner), 4) if owner else 0.0,
        "observed_moved_urls": len(moved_urls),
        "moved_outside_prediction": sorted(moved_urls - down_urls),
        "phases": {p: dict(c) for p, c in phases.items()},
        "unexpected": unexpected[:20],
        "unexpected_count": len(unexpected),
        "failures": failures[:10],
        "last_failures": failures[10:][-5:],
        "last_fallback_s": round(last_fallback, 3),
        "first_failure_s": min(fail_at, default=None),
        "last_failure_s": max(fail_at, default=None),
        "back_after_s": round(back_at - fault_at, 3) if fault_at and back_at else None,
        # How long after the part was back the frontends still sent its URLs elsewhere.
        "returned_after_s": round(returned_at - back_at, 3) if returned_at and back_at else None,
        "down_urls_requests_after_return": sum(
            1 for r in rows if returned_at and r["t"] > returned_at and r["url"] in down_urls
        ),
        "max_duration_s": max((r["dt"] for r in rows), default=0.0),
        "box_runs": box_runs(rows, fault_at),
        # Failed requests by whole second of send time after the fault.
        "failed_by_second": dict(sorted(Counter(str(int(a // 1)) for a in fail_at).items(), key=lambda i: int(i[0]))),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--rows", required=True, type=Path)
    parser.add_argument("--down", action="append", default=[])
    parser.add_argument("--after-inventory", help="the farm after a change; its routes are the alternates")
    parser.add_argument("--fault-at", type=float)
    parser.add_argument("--back-at", type=float)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    topology = load_topology(args.inventory, vcpus=1)
    changed = load_topology(args.after_inventory, vcpus=1) if args.after_inventory else topology
    urls = sorted({row["url"] for row in rows})
    fallback = next(i.peer_name for i in changed.backend_instances if i.active and i.peer_name not in args.down)
    owner, alternate = {}, {}
    for url in urls:
        up, down = topology.route(url), changed.route(url, down=args.down)
        owner[url] = up.peer_name if up else ""
        alternate[url] = down.peer_name if down else ""
    result = {"down": args.down, **report(rows, owner, alternate, fallback, args.fault_at, args.back_at)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
