#!/usr/bin/env python3
"""What Squid's CARP costs inside HAProxy's Lua (roles/frontend_balancer/files/carpfarm-carp.lua),
per request, at a few peer counts, against the same HAProxy with ``balance roundrobin``.

On loopback, with no lab: one HAProxy (``nbthread 1``) in front of four small HTTP servers
(``carpfarm.lab.haproxyrig``; the N peers' servers share them, so N does not change the servers'
cost), and one client sending absolute-form GETs over a keep-alive connection, one at a time.
For each peer count and each way of choosing, it reports HAProxy's own CPU time per request (the
sum of its threads' ``/proc/PID/task/*/schedstat`` run times, so the servers' and the client's
time are left out) and the client's wall-clock time per request, the median of ``--rounds``
interleaved rounds. The Lua's cost is the difference in CPU time from ``roundrobin``; with
``--repeat N`` the backend evaluates the fetch N times per request (into the same variable), which
lifts that difference above the noise of a shared machine, and the cost per evaluation is the
difference divided by N.

Usage: ``bench/carp_lua.py [--peers 4 16 64] [--requests 2000] [--rounds 3] [--repeat 1]
[--binary 2.6|3.0]`` (3.0 from the trixie root ``lab/build-squid-root.sh`` builds;
``CARPFARM_SQUID_ROOTS`` says where the roots are).
"""

from __future__ import annotations

import argparse
import http.client
import re
import socket
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from carpfarm.carp import CarpPeer
from carpfarm.carp.haproxy_lua import backend_lines, lua_load_lines, peers_lua
from carpfarm.lab.haproxyrig import BINARIES, HaproxyBinary, running_haproxy

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "roles" / "frontend_balancer" / "files" / "carpfarm-carp.lua"
LISTENERS = ["s0", "s1", "s2", "s3"]


def config(port: int, ports: dict[str, int], seen: Path, peers: Sequence[CarpPeer], carp: bool, repeat: int) -> str:
    lines = ["global", "    nbthread 1", f"    stats socket {seen / 'admin.sock'} mode 600 level admin"]
    if carp:
        lines += [f"    {line}" for line in lua_load_lines(str(seen / "carp.lua"), str(seen / "peers.lua"))]
    lines += [
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    http-reuse always",
        "frontend fe",
        f"    bind 127.0.0.1:{port}",
        "    default_backend carp",
        "backend carp",
        *(f"    {line}" for line in (backend_lines() if carp else ["balance roundrobin"])),
    ]
    if carp:  # the fetch once more, repeat - 1 times, before the use-server line
        lines[-1:-1] = [lines[-2]] * (repeat - 1)
    for n, p in enumerate(peers):
        lines.append(f"    server {p.name} 127.0.0.1:{ports[LISTENERS[n % len(LISTENERS)]]} weight {p.weight}")
    return "\n".join(lines) + "\n"


def haproxy_pid(admin: Path) -> int:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(admin))
        conn.sendall(b"show info\n")
        info = b"".join(iter(lambda: conn.recv(4096), b"")).decode()
    found = re.search(r"^Pid: (\d+)$", info, re.MULTILINE)
    assert found, info[:300]
    return int(found.group(1))


def cpu_ns(pid: int) -> int:
    """The process's threads' time on a CPU so far, in nanoseconds."""
    return sum(int(p.read_text().split()[0]) for p in Path(f"/proc/{pid}/task").glob("*/schedstat"))


def urls(count: int) -> list[str]:
    shapes = [
        "http://cdn{m}.example.org/a/b/c{i}.png?v={k}",
        "http://www.Example.com/obj/{i}",
        "https://img.example.net:8443/{i}/x.jpg",
    ]
    return [shapes[i % 3].format(i=i, m=i % 9, k=i % 5) for i in range(count)]


def measure(
    binary: HaproxyBinary, peers: Sequence[CarpPeer], carp: bool, requests: int, repeat: int = 1
) -> tuple[float, float]:
    """(HAProxy's CPU µs per request, the client's wall-clock µs per request)."""
    seen_dir: list[Path] = []

    def render(port: int, ports: dict[str, int], seen: Path) -> str:
        seen_dir.append(seen)
        return config(port, ports, seen, peers, carp, repeat)

    files = {"carp.lua": SCRIPT.read_text(), "peers.lua": peers_lua(peers, "carp")}
    targets = urls(requests)
    with running_haproxy(binary, [(n, None) for n in LISTENERS], render, files) as (port, _):
        pid = haproxy_pid(binary.host_path(seen_dir[0] / "admin.sock"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for url in targets[:200]:  # warm up: connections to the servers, Lua's tables
            conn.request("GET", url, headers={"Host": url.split("/")[2]})
            conn.getresponse().read()
        cpu0, wall0 = cpu_ns(pid), time.perf_counter()
        for url in targets:
            conn.request("GET", url, headers={"Host": url.split("/")[2]})
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
        wall, cpu = time.perf_counter() - wall0, cpu_ns(pid) - cpu0
        conn.close()
    return cpu / 1000 / requests, wall * 1e6 / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--binary", choices=[b.version for b in BINARIES], default=BINARIES[0].version)
    args = parser.parse_args()
    binary = next(b for b in BINARIES if b.version == args.binary)
    print(
        f"haproxy {binary.label}, {args.requests} requests a run, one client, keep-alive, "
        f"median of {args.rounds} interleaved rounds, the fetch {args.repeat}x per request"
    )
    print("| peers | roundrobin CPU µs/req | carp CPU µs/req | Lua µs per call | roundrobin wall µs | carp wall µs |")
    print("|---|---|---|---|---|---|")
    for count in args.peers:
        peers = [CarpPeer(f"cache{n // 2 + 1}-backend{n % 2 + 1}", "127.0.0.1", 1, 1 + n % 4) for n in range(count)]
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for carp in (False, True):
                runs[carp].append(measure(binary, peers, carp, args.requests, args.repeat))
        rr_cpu, rr_wall = (statistics.median(r[i] for r in runs[False]) for i in (0, 1))
        carp_cpu, carp_wall = (statistics.median(r[i] for r in runs[True]) for i in (0, 1))
        per_call = (carp_cpu - rr_cpu) / args.repeat
        print(
            f"| {count} | {rr_cpu:.1f} | {carp_cpu:.1f} | {per_call:.1f} | {rr_wall:.0f} | {carp_wall:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
