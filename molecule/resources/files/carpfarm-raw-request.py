#!/usr/bin/env python3
"""Send request lines to a proxy exactly as written, one new connection each, and print the answers.

carpfarm-raw-request.py --proxy HOST:PORT [--source ADDR [--source-port N]] [--timeout S] TARGET...

A TARGET is a request line's method and target, e.g. "GET http://2130706433/" or
"CONNECT [::1]:443". A client library would normalise such URLs (curl turns 2130706433 into
127.0.0.1) before the proxy sees them; this sends the bytes as written, so the proxy's own
parsing is what is tested. Output, one JSON line per target: {"target", "status", "error"}; the
status is the proxy's answer (for CONNECT, its answer to the CONNECT itself). A bounded probe:
one request per target, each with a timeout, then it exits. With --source-port, every request
leaves from that port, and the answer is read to its end (the proxy closes first, so the port is
free again at once: no TIME_WAIT on this side).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from urllib.parse import urlsplit


def request_bytes(target: str) -> bytes:
    """The request for "METHOD TARGET": a Host header from the target's authority."""
    method, _, uri = target.partition(" ")
    authority = uri if method == "CONNECT" else urlsplit(uri).netloc
    return f"{method} {uri} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode()


def status_of(answer: bytes) -> int | None:
    """The status code of an HTTP/1.x status line, or None."""
    parts = answer.split(b"\r\n", 1)[0].split()
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def _connect(proxy: tuple[str, int], source: str | None, port: int, timeout: float) -> socket.socket:
    if not port:
        return socket.create_connection(proxy, timeout=timeout, source_address=(source, 0) if source else None)
    s = socket.socket(socket.AF_INET6 if ":" in proxy[0] else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(timeout)
        s.bind((source or "", port))
        s.connect(proxy)
    except OSError:
        s.close()
        raise
    return s


def probe(proxy: tuple[str, int], source: str | None, target: str, timeout: float, port: int = 0) -> dict[str, object]:
    try:
        with _connect(proxy, source, port, timeout) as s:
            s.sendall(request_bytes(target))
            answer = b""
            while b"\r\n" not in answer or port:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        return {"target": target, "status": status_of(answer), "error": None}
    except OSError as exc:
        return {"target": target, "status": None, "error": str(exc)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", required=True, help="HOST:PORT")
    parser.add_argument("--source", help="local source address")
    parser.add_argument("--source-port", type=int, default=0, help="local source port (default: any)")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args(argv)
    host, _, port = args.proxy.rpartition(":")
    for target in args.targets:
        print(
            json.dumps(probe((host.strip("[]"), int(port)), args.source, target, args.timeout, args.source_port)),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
