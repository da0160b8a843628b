"""Section 2: balancer fairness, 20,000 new connections through the real kernel rules in a network namespace.

The rules are the role's own templates rendered by Ansible's templar; beside them, the Squid wiki's
rules (0.25 on every rule) as the unfair reference. This file also runs inside the namespace:
  python3 fairness.py --count-connections TOTAL PORT...
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import struct
import sys
import tempfile
import threading
import time
from typing import Any

from carpfarm.lab import bench
from carpfarm.model import Topology, build_topology
from carpfarm.plan import balancer_rules
from lab import ROOT, log, run


def _count_connections(ports: list[int], total: int) -> dict[str, int]:
    """Inside the namespace: listen on each port, open ``total`` new connections to :3128, count who got each."""
    selector = selectors.DefaultSelector()
    counts = {str(p): 0 for p in ports}
    for port in ports:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(4096)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, str(port))

    def connect() -> None:
        for _ in range(total):
            with socket.socket() as c:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST: no TIME_WAIT
                c.connect(("127.0.0.1", 3128))

    client = threading.Thread(target=connect)
    client.start()
    deadline = time.monotonic() + 120
    while sum(counts.values()) < total and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            try:
                conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            conn.close()
            counts[key.data] += 1
    client.join()
    return counts


def _render(template: str, balancer: dict[str, Any]) -> str:
    from carpfarm.lab.render import render  # Ansible's templar, as the role runs it

    path = ROOT / "roles/frontend_balancer/templates/etc/carpfarm" / template
    return render(
        path,
        ansible_managed="carpfarm bench",
        inventory_hostname="bench",
        __frontend_balancer_ruleset=balancer,
        __frontend_balancer=balancer,
    )


def _topology(n: int) -> Topology:
    carp = {"ansible_host": "192.0.2.10", "carp_frontend_instances": n, "carpfarm_client_networks": ["127.0.0.0/8"]}
    return build_topology(
        {"carp_frontends": ["bench"], "squid_backends": ["cache1"]},
        {"bench": carp, "cache1": {"ansible_host": "192.0.2.21"}},
    )


def section(total: int) -> list[dict[str, Any]]:
    cases: list[tuple[str, int, str, str]] = []  # (label, n, loader, rules text)
    for n in (2, 4, 8):
        rules = balancer_rules(_topology(n), "bench")
        cases.append(("carpfarm iptables cascade (random)", n, "iptables", _render("balancer.rules.j2", rules)))
        cases.append(("carpfarm nftables numgen (random)", n, "nft", _render("balancer.nft.j2", rules)))
    wiki = ["*nat", ":CARPFARM_BALANCE - [0:0]"]
    wiki += [
        f"-A CARPFARM_BALANCE -p tcp -m statistic --mode random --probability 0.25 -j REDIRECT --to-ports {3129 + i}"
        for i in range(3)
    ]
    wiki += ["-A CARPFARM_BALANCE -p tcp -j REDIRECT --to-ports 3132", "COMMIT", ""]
    cases.append(("Squid wiki: 0.25 on every rule", 4, "iptables", "\n".join(wiki)))
    rows = []
    for label, n, loader, text in cases:
        namespace = f"carpfarm-bench-{os.getpid()}"
        run(["ip", "netns", "add", namespace])
        try:
            inside = ["ip", "netns", "exec", namespace]
            run([*inside, "ip", "link", "set", "lo", "up"])
            with tempfile.NamedTemporaryFile("w", suffix=".rules") as f:
                f.write(text)
                f.flush()
                if loader == "iptables":
                    run([*inside, "iptables-restore", "--noflush", f.name])
                    run(
                        [
                            *inside,
                            "iptables",
                            "-t",
                            "nat",
                            "-A",
                            "OUTPUT",
                            "-p",
                            "tcp",
                            "-d",
                            "127.0.0.1",
                            "--dport",
                            "3128",
                            "-j",
                            "CARPFARM_BALANCE",
                        ]
                    )
                else:
                    run([*inside, "nft", "-f", f.name])
            out = run([*inside, sys.executable, __file__, "--count-connections", str(total),
                       *[str(3129 + i) for i in range(n)]]).stdout  # fmt: skip
        finally:
            run(["ip", "netns", "del", namespace], check=False)
        counts = json.loads(out)
        row = {"rules": label, "n": n, **bench.shares(counts)}
        rows.append(row)
        log(f"  {label:36} n={n}: max deviation {row['max_deviation_pp']:.2f} pp")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count-connections", type=int, required=True)
    parser.add_argument("ports", nargs="+", type=int)
    arguments = parser.parse_args()
    print(json.dumps(_count_connections(arguments.ports, arguments.count_connections)))
