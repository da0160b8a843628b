#!/usr/bin/env python3
"""A bounded, open-loop HTTP load through a proxy; every response is recorded.

carpfarm-load.py (--proxy HOST:PORT | --direct) --urls-file FILE --out FILE
                 [--source ADDR]... [--rate R] [--seconds S] [--timeout T] [--workers W]
                 [--stop-file PATH]

Request i is sent at start + i/R for S seconds (R x S requests in all, each on a
new TCP connection, so the frontend balancer places every one anew), cycling
through the URLs and the source addresses. --direct sends each request to the URL's own host, as a
client behind a WCCP router does. Each request's outcome is one JSON line in --out:
{"t": send time (epoch s), "dt": duration, "url", "source", "status" (-1 = no answer),
 "backend": who served it (the first hop's cache verdict), "frontend": the CARP frontend instance
 that took it (the last hop's verdict, when there are two), "error"}. The run never outlasts
S + T seconds, whatever the farm does; it stops sending early once --stop-file exists.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from carpfarm_probe import cache_verdicts  # playbooks/files/carpfarm-probe.py, copied beside


def fetch(proxy: tuple[str, int] | None, source: str | None, url: str, timeout: float) -> dict[str, object]:
    started = time.time()
    authority = url.split("/")[2]
    if proxy is None:  # straight to the URL's host: the request line holds the path alone
        host, _, port = authority.partition(":")
        target, proxy = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/", (host, int(port or 80))
    else:
        target = url
    conn = http.client.HTTPConnection(*proxy, timeout=timeout, source_address=(source, 0) if source else None)
    row: dict[str, object] = {"t": round(started, 4), "url": url, "source": source}
    try:
        conn.request("GET", target, headers={"Host": authority, "Connection": "close"})
        response = conn.getresponse()
        response.read()
        verdicts = cache_verdicts(response.headers)
        served = verdicts[0].split(" from ", 1) if verdicts else ["", ""]
        row.update(status=response.status, verdict=served[0], backend=served[-1])
        if len(verdicts) > 1:
            row["frontend"] = verdicts[-1].split(" from ", 1)[-1]
    except OSError as exc:
        row.update(status=-1, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
    row["dt"] = round(time.time() - started, 4)
    return row


def main() -> int:
    parser = argparse.ArgumentParser()
    way = parser.add_mutually_exclusive_group(required=True)
    way.add_argument("--proxy")
    way.add_argument("--direct", action="store_true", help="to the URL's own host, no proxy")
    parser.add_argument("--urls-file", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--source", action="append", default=[], help="source address; several: in turn")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--stop-file", type=Path, help="stop sending once this file exists")
    args = parser.parse_args()

    proxy = None
    if args.proxy:
        host, _, port = args.proxy.rpartition(":")
        proxy = (host, int(port))
    sources = args.source or [None]
    urls = [line.strip() for line in args.urls_file.read_text().splitlines() if line.strip()]
    total = int(args.rate * args.seconds)
    lock = threading.Lock()
    with args.out.open("w") as out, ThreadPoolExecutor(max_workers=args.workers) as pool:

        def record(row: dict[str, object]) -> None:
            with lock:
                out.write(json.dumps(row) + "\n")

        start = time.monotonic()
        for i in range(total):
            if args.stop_file and args.stop_file.exists():
                total = i
                break
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            source = sources[i % len(sources)]
            future = pool.submit(fetch, proxy, source, urls[i % len(urls)], args.timeout)
            future.add_done_callback(lambda f: record(f.result()))
    print(json.dumps({"requests": total, "seconds": round(time.monotonic() - start, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
