#!/usr/bin/env python3
"""Send real HTTP requests through a proxy and report what came back, one JSON line each.

carpfarm-probe.py --proxy HOST:PORT [--source ADDR] [--repeat N] [--timeout S] URL...
carpfarm-probe.py --direct [...] URL...   (to the URL's own host, as a client behind a WCCP router does)
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


def fetch(proxy: str | None, source: str | None, url: str, timeout: float) -> dict[str, object]:
    authority = url.split("/")[2]
    if proxy:
        host, _, port = proxy.rpartition(":")
        target = url
    else:
        host, _, port = authority.partition(":")
        target = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    conn = http.client.HTTPConnection(
        host, int(port or 80), timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", target, headers={"Host": authority, "Connection": "close"})
        response = conn.getresponse()
        response.read()
        return {
            "url": url,
            "status": response.status,
            "x_cache": response.headers.get_all("X-Cache") or [],
            "via": response.headers.get("Via") or "",
        }
    except OSError as exc:
        return {"url": url, "status": -1, "x_cache": [], "error": f"{type(exc).__name__}: {exc}"}
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--proxy", help="HOST:PORT of the proxy (absolute-form requests)")
    where.add_argument("--direct", action="store_true", help="to the URL's host (origin-form requests)")
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
