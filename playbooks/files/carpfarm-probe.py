#!/usr/bin/env python3
"""Send real HTTP requests through a proxy and report what came back, one JSON line each.

carpfarm-probe.py --proxy HOST:PORT [--source ADDR] [--repeat N] [--timeout S] URL...
carpfarm-probe.py --direct [...] URL...   (to the URL's own host, as a client behind a WCCP router does)
Every request uses a new TCP connection (so each one is balanced anew). Output per
request: {"url", "status", "x_cache": [...], "error"}, where "x_cache" holds each hop's
cache verdict, origin side first, written as X-Cache writes it ("HIT from NAME"), whether
the hop's Squid sent X-Cache (Squid 5) or Cache-Status (Squid 6, RFC 9211). A bounded
load: at most len(URLs) x repeat requests, each with a timeout, then it exits.
carpfarm-load.py imports cache_verdicts() from this file (copied as carpfarm_probe.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from email.message import Message


def cache_verdicts(headers: Message) -> list[str]:
    """Every hop's verdict, origin side first: "HIT from NAME" or "MISS from NAME".

    Squid up to 5 adds "X-Cache: HIT from NAME"; Squid 6 adds "Cache-Status: NAME;hit" or
    "NAME;fwd=miss;detail=..." instead. Each hop appends its own field after those it
    received, so the fields' order on the wire is the hops' order, whichever one each wrote.
    """
    verdicts = []
    for field, value in headers.items():
        if field.lower() == "x-cache":
            verdicts.append(value.strip())
        elif field.lower() == "cache-status":
            for member in value.split(","):
                cache, *params = (part.strip() for part in member.split(";"))
                verdict = "HIT" if "hit" in params else "MISS"
                verdicts.append(f"{verdict} from {cache.strip(chr(34))}")
    return verdicts


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
            "x_cache": cache_verdicts(response.headers),
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
