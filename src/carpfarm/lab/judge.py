"""Judge what real requests through the farm got back against where carpfarm says URLs live.

The input is what ``playbooks/files/carpfarm-probe.py`` prints, one JSON object per request:
``{"url", "status", "x_cache": [...], "via", "error"}``, where ``x_cache`` holds each hop's
cache verdict, origin side first ("MISS from cache1-backend1"), so its first entry names the
backend instance that served the URL. A request that failed has status -1, no verdicts, no
``via`` and an ``error``. The verify plays fetch every URL twice; the first pass through the
first box is a MISS, everything after it a HIT from the same backend.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_PROBE_FIX = "pass the stdout_lines of playbooks/files/carpfarm-probe.py (one JSON object a line)"


@dataclass(frozen=True)
class ProbeRow:
    """One request carpfarm-probe.py made, and what came back."""

    url: str
    status: int
    x_cache: tuple[str, ...] = ()
    via: str = ""
    error: str = ""

    @classmethod
    def parse(cls, line: str | Mapping[str, Any]) -> ProbeRow:
        """A row from one line of carpfarm-probe.py's output (or that line already decoded)."""
        try:
            data = json.loads(line) if isinstance(line, str) else line
            if not isinstance(data, Mapping):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            return cls(
                url=str(data["url"]),
                status=int(data["status"]),
                x_cache=tuple(str(verdict) for verdict in data.get("x_cache") or ()),
                via=str(data.get("via") or ""),
                error=str(data.get("error") or ""),
            )
        except (ValueError, TypeError, KeyError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise ValueError(f"not a carpfarm-probe.py row: {line!r} ({problem}); {_PROBE_FIX}") from exc

    @property
    def served(self) -> str:
        """The verdict of the hop nearest the origin ("HIT from NAME"), or "" when none came back."""
        return self.x_cache[0] if self.x_cache else ""


def parse_rows(lines: Iterable[str | Mapping[str, Any]]) -> list[ProbeRow]:
    """Every row of carpfarm-probe.py's output, in order."""
    return [ProbeRow.parse(line) for line in lines]


def wanted_verdict(index: int, predicted: Sequence[str], first_pass_misses: bool) -> str:
    """What the ``index``-th request of a run over ``predicted``'s URLs (repeated) should get back.

    The URLs are fetched in order, pass after pass; the first pass is a MISS when it is the
    first time any cache sees them (``first_pass_misses``), every other request a HIT."""
    if not predicted:
        raise ValueError("no predicted backends: give one peer name per URL, in the order the URLs were fetched")
    verdict = "MISS" if index < len(predicted) and first_pass_misses else "HIT"
    return f"{verdict} from {predicted[index % len(predicted)]}"


def route_mismatches(
    rows: Sequence[ProbeRow], predicted: Sequence[str], first_pass_misses: bool = True, via: str | None = None
) -> list[tuple[ProbeRow, str]]:
    """The rows not answered 200 by the predicted backend with the wanted verdict, each with that verdict.

    With ``via``, a row must also have passed through that CARP box (its name in the Via header)."""
    wrong = []
    for index, row in enumerate(rows):
        want = wanted_verdict(index, predicted, first_pass_misses)
        if row.status != 200 or row.served != want or (via is not None and via not in row.via):
            wrong.append((row, want))
    return wrong


def farm_mismatches(rows_by_box: Mapping[str, Sequence[ProbeRow]], predicted: Sequence[str]) -> list[str]:
    """playbooks/verify.yml's check: every box's rows on the predicted backends, MISS only on the first pass of
    the first box (the first to see the URLs), HIT everywhere else.

    ``rows_by_box`` maps each CARP box to its rows, in the order the boxes were asked."""
    return [
        f"{box} {row.url}: status {row.status}, verdicts {'; '.join(row.x_cache)}, want {want}"
        for position, (box, rows) in enumerate(rows_by_box.items())
        for row, want in route_mismatches(rows, predicted, first_pass_misses=position == 0)
    ]


def intercept_mismatches(rows: Sequence[ProbeRow], predicted: Sequence[str], box: str) -> list[str]:
    """The WCCP check: every redirected request went through ``box`` to its predicted backend, MISS then HIT."""
    return [
        f"{row.url}: {row.status} {'; '.join(row.x_cache)} via {row.via}, want {want}"
        for row, want in route_mismatches(rows, predicted, via=box)
    ]


def served_by(rows: Iterable[ProbeRow]) -> dict[str, list[str]]:
    """Each URL's verdict and backend as ``[verdict, backend]`` (the last row for a URL wins).

    A request without a verdict reads ``["failed", "status STATUS"]``."""
    return {row.url: (row.served or f"failed from status {row.status}").split(" from ") for row in rows}


def change_outcome(
    urls: Sequence[str],
    served: Mapping[str, Sequence[str]],
    predicted: Mapping[str, str],
    served_before: Mapping[str, str],
) -> dict[str, Any]:
    """How a farm change moved ``urls``: the ones served elsewhere than predicted, and counts of moved and kept.

    ``served`` is ``served_by`` after the change, ``predicted`` the backend ``carpfarm route`` names
    for each URL, ``served_before`` who served each URL before. Returns ``mismatch`` (messages),
    ``moved``/``kept`` (URLs whose backend changed or not) and ``moved_hit``/``kept_hit`` (of them, HITs)."""
    outcome: dict[str, Any] = {"mismatch": [], "moved": 0, "moved_hit": 0, "kept": 0, "kept_hit": 0}
    for url in urls:
        for table, name in ((served, "served"), (predicted, "predicted"), (served_before, "served_before")):
            if url not in table:
                raise KeyError(f"{url} is not in {name}; give every URL a {name} entry")
        verdict, backend = served[url]
        if backend != predicted[url]:
            outcome["mismatch"].append(f"{url}: {verdict} from {backend}, predicted {predicted[url]}")
        key = "kept" if backend == served_before[url] else "moved"
        outcome[key] += 1
        outcome[f"{key}_hit"] += 1 if verdict == "HIT" else 0
    return outcome
