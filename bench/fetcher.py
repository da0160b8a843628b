"""make bench, section 3: fetch COUNT URLs through a proxy PASSES times with THREADS threads, and count.

Runs in the client container (plain python3, standard library only):
  python3 fetcher.py PROXY_ADDRESS BASE_URL COUNT PASSES THREADS
Prints one JSON list, one object per pass: hits, misses, errors (by the first hop's cache verdict), seconds.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time


def fetch_all(proxy: str, urls: list[str], threads: int) -> dict[str, float]:
    counts = {"hits": 0, "misses": 0, "errors": 0}
    lock = threading.Lock()

    def work(part: list[str]) -> None:
        conn = None
        for url in part:
            for _ in range(2):
                try:
                    conn = conn or http.client.HTTPConnection(proxy, 3128, timeout=20)
                    conn.request("GET", url, headers={"Host": url.split("/")[2]})
                    response = conn.getresponse()
                    response.read()
                    # The first hop's verdict: X-Cache (Squid 5) "HIT from NAME", Cache-Status (6) "NAME;hit".
                    first = (response.getheader("X-Cache") or response.getheader("Cache-Status") or "").split(",")[0]
                    hit = first.startswith("HIT") or ";hit" in first
                    verdict = "errors" if response.status != 200 else "hits" if hit else "misses"
                    with lock:
                        counts[verdict] += 1
                    break
                except OSError:
                    conn = None
            else:
                with lock:
                    counts["errors"] += 1

    started = time.monotonic()
    workers = [threading.Thread(target=work, args=(urls[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {**counts, "seconds": time.monotonic() - started}


def main() -> None:
    proxy, base, count, passes, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    urls = [f"{base}{i}" for i in range(count)]
    print(json.dumps([fetch_all(proxy, urls, threads) for _ in range(passes)]))


if __name__ == "__main__":
    main()
