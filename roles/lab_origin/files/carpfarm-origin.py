#!/usr/bin/env python3
"""carpfarm lab origin: a small web server whose objects carry cacheable headers.

GET /obj/<anything>[?size=N][&delay=S]  -> N bytes (default 1024), Cache-Control: public, max-age=3600,
                                after S seconds (default 0, at most 10)
GET /nocache/<anything>       -> the same body, Cache-Control: no-store
GET /stats                    -> JSON: requests served per path (to tell HITs from fetches)
Each response names the origin and counts how often that path was fetched.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STARTED = formatdate(usegmt=True)
FETCHES: Counter[str] = Counter()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "carpfarm-origin/1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/stats":
            with LOCK:
                body = json.dumps(FETCHES).encode()
            self._reply(200, body, {"Content-Type": "application/json", "Cache-Control": "no-store"})
            return
        if not parts.path.startswith(("/obj/", "/nocache/")):
            self._reply(404, b"not found\n", {"Cache-Control": "no-store"})
            return
        query = parse_qs(parts.query)
        size = int(query.get("size", ["1024"])[0])
        time.sleep(min(10.0, max(0.0, float(query.get("delay", ["0"])[0]))))
        with LOCK:
            FETCHES[self.path] += 1
            count = FETCHES[self.path]
        body = (f"{self.path}\n".encode() * (size // max(1, len(self.path) + 1) + 1))[:size]
        cache = "no-store" if parts.path.startswith("/nocache/") else "public, max-age=3600"
        self._reply(
            200,
            body,
            {
                "Content-Type": "application/octet-stream",
                "Cache-Control": cache,
                "Last-Modified": STARTED,
                "X-Origin-Fetch": str(count),
            },
        )

    def do_HEAD(self) -> None:
        self.do_GET()

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"{self.address_string()} {format % args}\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    Server(("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 80), Handler).serve_forever()
