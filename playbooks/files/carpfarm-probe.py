#!/usr/bin/env python3
"""Send real HTTP requests through a proxy and report what came back, one JSON line each.

carpfarm-probe.py --proxy HOST:PORT [--source ADDR] [--repeat N] [--timeout S] URL...
Every request uses a new TCP connection (so each one is balanced anew). Output per
request: {"url", "status", "x_cache": [...], "error"}. A bounded load: at most
len(URLs) x repeat requests, each with a timeout, then it exits.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time


def fetch(proxy: str, source: str | None, url: str, timeout: float) -> dict[str, object]:
    host, _, port = proxy.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout, source_address=(source, 0) if source else None)
    try:
        conn.request("GET", url, headers={"Host": url.split("/")[2], "Connection": "close"})
        response = conn.getresponse()
        response.read()
        return {"url": url, "status": response.status, "x_cache": response.headers.get_all("X-Cache") or []}
    except OSError as exc:
        return {"url": url, "status": -1, "x_cache": [], "error": f"{type(exc).__name__}: {exc}"}
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--source")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--summary", action="store_true", help="print only counts per status")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    counts: dict[str, int] = {}
    started = time.monotonic()
    for _ in range(args.repeat):
        for url in args.urls:
            result = fetch(args.proxy, args.source, url, args.timeout)
            if args.summary:
                counts[str(result["status"])] = counts.get(str(result["status"]), 0) + 1
            else:
                print(json.dumps(result))
    if args.summary:
        print(json.dumps({"counts": counts, "seconds": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
