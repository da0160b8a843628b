"""Rows as playbooks/files/carpfarm-probe.py prints them: one JSON object a line."""

from __future__ import annotations

import json
from collections.abc import Sequence


def probe_line(url: str, *verdicts: str, status: int = 200, via: str = "1.1 carp1 (squid/5.7)") -> str:
    """An answered request: its status, each hop's verdict (origin side first) and the Via header."""
    return json.dumps({"url": url, "status": status, "x_cache": list(verdicts), "via": via})


def failed_line(url: str, error: str = "TimeoutError: timed out") -> str:
    """A request that got no answer: status -1, no verdicts, no Via, the error."""
    return json.dumps({"url": url, "status": -1, "x_cache": [], "error": error})


def two_passes(urls: Sequence[str], backends: Sequence[str], box: str = "carp1-frontend1") -> list[str]:
    """A good --repeat 2 run: every URL a MISS from its backend, then a HIT from it (and a HIT or MISS on the box)."""
    first = [probe_line(u, f"MISS from {b}", f"MISS from {box}") for u, b in zip(urls, backends, strict=True)]
    second = [probe_line(u, f"HIT from {b}", f"MISS from {box}") for u, b in zip(urls, backends, strict=True)]
    return first + second
