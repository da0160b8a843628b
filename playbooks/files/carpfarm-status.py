#!/usr/bin/env python3
"""Read one host's carpfarm counters where they live, and print them as JSON.

carpfarm-status.py SPEC_JSON

SPEC: {"squids": [{"name", "role", "address", "port", "proxy_header"}],
       "balancer": {"type", "haproxy_stats_port", "nft_table", "iptables_chain", "watch_state"}}
The balancer's chain and table are the playbook's (carpfarm_balancer's names): this script has none of its own.

Each Squid's cache manager is asked from 127.0.0.1 (the only source its
``http_access allow localhost manager`` admits), so nothing is opened to the
network. Frontends behind HAProxy require a PROXY header: a v1 header is sent.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT = 5.0


def _mgr_plain(address: str, port: int, page: str) -> str:
    conn = http.client.HTTPConnection(address, port, timeout=TIMEOUT, source_address=("127.0.0.1", 0))
    try:
        conn.request("GET", f"/squid-internal-mgr/{page}")
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        if response.status != 200:
            raise OSError(f"cache manager answered {response.status} for {page}")
        return body
    finally:
        conn.close()


def _mgr_proxied(address: str, port: int, page: str) -> str:
    """The same request, after a PROXY v1 header (the instance has require-proxy-header)."""
    with socket.create_connection((address, port), timeout=TIMEOUT, source_address=("127.0.0.1", 0)) as sock:
        local = sock.getsockname()
        header = f"PROXY TCP4 127.0.0.1 {address} {local[1]} {port}\r\n"
        request = f"GET /squid-internal-mgr/{page} HTTP/1.0\r\nHost: {address}:{port}\r\n\r\n"
        sock.sendall((header + request).encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks).decode("utf-8", "replace")
    head, _, body = raw.partition("\r\n\r\n")
    status = head.split(" ", 2)[1] if " " in head else "?"
    if status != "200":
        raise OSError(f"cache manager answered {status} for {page}")
    return body


def _counters(text: str) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)


def _peers(text: str) -> list[dict[str, str]]:
    peers, current = [], None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        if key in ("Parent", "Sibling", "Multicast"):
            current = {"name": value, "status": "?"}
            peers.append(current)
        elif key == "Status" and current is not None:
            current["status"] = value
    return peers


def _connections(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (IPv4 and IPv6)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        count += 1
        except FileNotFoundError:
            pass
    return count


def squid_status(spec: dict[str, Any]) -> dict[str, Any]:
    fetch = _mgr_proxied if spec.get("proxy_header") else _mgr_plain
    row: dict[str, Any] = {key: spec[key] for key in ("name", "role", "port")}
    try:
        counters = _counters(fetch(spec["address"], spec["port"], "counters"))
        info = fetch(spec["address"], spec["port"], "info")
        requests, hits = int(counters["client_http.requests"]), int(counters["client_http.hits"])
        row.update(requests=requests, hits=hits, hit_ratio=round(hits / requests, 4) if requests else None)
        objects = re.search(r"(\d+) on-disk objects", info)
        row["objects"] = int(objects.group(1)) if objects else None
        row["connections"] = _connections(spec["port"])
        if spec["role"] == "frontend":
            row["peers"] = _peers(fetch(spec["address"], spec["port"], "server_list"))
    except (OSError, KeyError, ValueError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=TIMEOUT).stdout


def balancer_status(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec.get("type")
    out: dict[str, Any] = {"type": kind, "rules": []}
    try:
        if kind == "iptables":
            text = _run(["iptables", "-t", "nat", "-L", spec["iptables_chain"], "-v", "-n", "-x"])
            for line in text.splitlines()[2:]:
                fields = line.split()
                port = re.search(r"redir ports (\d+)", line)
                if fields and port:
                    out["rules"].append({"target": int(port.group(1)), "packets": int(fields[0])})
        elif kind == "nftables":
            text = _run(["nft", "list", "table", "inet", spec["nft_table"]])
            chain = ""
            for line in text.splitlines():
                named = re.match(r"\s*chain (\S+)", line)
                chain = named.group(1) if named else chain
                counted = re.search(r"counter packets (\d+)", line)
                if counted:
                    out["rules"].append({"target": chain, "packets": int(counted.group(1))})
        elif kind == "haproxy":
            conn = http.client.HTTPConnection("127.0.0.1", int(spec["haproxy_stats_port"]), timeout=TIMEOUT)
            conn.request("GET", "/;csv")
            text = conn.getresponse().read().decode()
            rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
            for r in rows:
                if r["svname"] not in ("FRONTEND", "BACKEND") and r["pxname"] != "stats":
                    out["rules"].append(
                        {"target": r["svname"], "packets": None, "sessions": int(r["stot"] or 0), "status": r["status"]}
                    )
    except (OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    if spec.get("watch_state"):
        out["watch"] = watch_status(spec["watch_state"])
    return out


def watch_status(path: str) -> dict[str, Any]:
    """What carpfarm-watch last wrote: each instance's health and whether the rules send to it."""
    try:
        state = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {"error": f"no {path}: carpfarm-watch has not run"}
    except (OSError, ValueError) as exc:
        return {"error": f"{path}: {type(exc).__name__}: {exc}"}
    keep = ("instances", "fallback", "updated", "error")
    return {k: state.get(k) for k in keep}


def main() -> int:
    spec = json.loads(sys.argv[1])
    result = {"squids": [squid_status(s) for s in spec.get("squids", [])]}
    if spec.get("balancer"):
        result["balancer"] = balancer_status(spec["balancer"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
