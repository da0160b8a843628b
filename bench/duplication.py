"""Section 3: duplication and hit ratio, parents 'carp' against 'round-robin'.

A working set twice one backend instance's cache is fetched twice through the frontends
(``fetcher.py`` in the client); the backends' own logs say how many instances hold each URL.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from carpfarm.lab import bench
from lab import BACKEND_HOSTS, CARP_BOX, CLIENT, OBJECTS, ROOT, copy_to, log, playbook, podman

FETCHER = "/tmp/fetcher.py"


def backend_logs(token: str) -> dict[str, list[str]]:
    logs: dict[str, list[str]] = {}
    for host in BACKEND_HOSTS:
        listing = podman(host, "sh", "-c", "ls -d /var/log/squid/backend*/")
        for directory in listing.split():
            name = Path(directory).name
            text = podman(host, "sh", "-c", f"grep -h -- '{token}' {directory}access.log || true")
            logs[f"{host.removeprefix('carpfarm-')}-{name}"] = text.splitlines()
    return logs


def duplication(selection: str, count: int, cache_mb: int, object_kib: int) -> dict[str, Any]:
    token = f"ws-{selection}-{dt.datetime.now():%H%M%S}-"
    base = f"{OBJECTS['64 KiB']}/{token}"  # a path: Squid's logs strip query strings
    out = podman(CLIENT, "python3", FETCHER, CARP_BOX[1], base, str(count), "2", "8")
    passes = json.loads(out)
    urls = [f"{base}{i}" for i in range(count)]
    held = bench.copies(backend_logs(token), urls)
    second = passes[1]
    row = {
        "selection": selection, "urls": count, "object_kib": object_kib, "cache_mb": cache_mb,
        "working_set_mb": count * object_kib / 1024, "working_set_to_one_cache": count * object_kib / 1024 / cache_mb,
        "passes": passes, "copies": held,
        "hit_ratio_pass2": second["hits"] / max(1, second["hits"] + second["misses"] + second["errors"]),
    }  # fmt: skip
    log(f"  {selection:11} copies/URL {held['mean']:.2f} (max {held['max']}), 2nd-pass hit ratio "
        f"{100 * row['hit_ratio_pass2']:.1f} %, errors {sum(p['errors'] for p in passes)}")  # fmt: skip
    return row


def section() -> list[dict[str, Any]]:
    copy_to(CLIENT, ROOT / "bench" / "fetcher.py")
    cache_mb = 128  # inventory/lab/group_vars/squid_backends.yml: squid_backend_cache_size_mb
    count = 2 * cache_mb * 1024 // 64
    rows = []
    log(f"duplication: {count} URLs of 64 KiB, parents carp")
    rows.append(duplication("carp", count, cache_mb, 64))
    log("duplication: switching the frontends' parents to round-robin")
    playbook("site.yml", "-e", "carp_frontend_parent_selection=round-robin")
    rows.append(duplication("round-robin", count, cache_mb, 64))
    log("duplication: back to the inventory's own settings (carp, iptables)")
    playbook("site.yml")
    return rows
