"""The arithmetic of ``make bench``: summaries of repeated runs, shares, copies, tables.

``bench/run.py`` drives the lab and collects raw figures; everything it concludes from
them is computed here, so that it can be tested without a lab.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any


def summarise(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements (the machine is noisy: never one number alone)."""
    if not values:
        raise ValueError("no measurements to summarise")
    return {
        "median": float(statistics.median(values)),
        "min": float(min(values)),
        "max": float(max(values)),
        "n": len(values),
    }


def wrk_result(output: str) -> dict[str, Any]:
    """The JSON line ``bench/wrk-report.lua`` prints, with rates derived from it."""
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if not lines:
        raise ValueError(f"no result line in wrk's output: {output[-500:]!r}")
    raw = json.loads(lines[-1])
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {
        **raw,
        "errors": errors,
        "rps": raw["requests"] / seconds,
        "mb_per_s": raw["bytes"] / seconds / 1e6,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
    }


def shares(counts: Mapping[str, int]) -> dict[str, Any]:
    """Each target's share of the connections and the largest deviation from 1/n, in percentage points."""
    total = sum(counts.values())
    if total == 0:
        raise ValueError("no connections were counted")
    fair = 1 / len(counts)
    each = {target: count / total for target, count in counts.items()}
    return {
        "connections": total,
        "shares": each,
        "max_deviation_pp": max(abs(share - fair) for share in each.values()) * 100,
    }


def squid_log_entries(lines: Iterable[str]) -> Iterable[tuple[str, str]]:
    """(result code, URL) from Squid's native access.log format."""
    for line in lines:
        fields = line.split()
        if len(fields) >= 7:
            yield fields[3], fields[6]


def copies(stored_by: Mapping[str, Iterable[str]], urls: Sequence[str]) -> dict[str, Any]:
    """How many backend instances hold each URL, from the instances' own logs.

    ``stored_by`` maps an instance to its log lines; an instance holds a URL once it
    fetched it from the origin (a MISS answered 200).
    """
    holders: dict[str, set[str]] = defaultdict(set)
    for instance, lines in stored_by.items():
        for code, url in squid_log_entries(lines):
            if "MISS" in code and code.endswith("/200"):
                holders[url].add(instance)
    counts = [len(holders.get(url, ())) for url in urls]
    histogram: dict[int, int] = defaultdict(int)
    for n in counts:
        histogram[n] += 1
    return {
        "urls": len(urls),
        "mean": sum(counts) / len(counts) if counts else 0.0,
        "max": max(counts, default=0),
        "histogram": dict(sorted(histogram.items())),
    }


# The layers a request crosses, by the component names of ``_component``; the kernel's share
# (NAT rules, veth, bridge: softirq on whatever CPU the packet lands) is the machine's, not a process's.
LAYERS = {"frontend": "squid frontends", "backend": "squid backends", "haproxy": "haproxy", "load": "wrk (load)"}
SOFTIRQ = "kernel softirq (machine)"


def process_cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """User plus system CPU time of one process, from its ``/proc/PID/stat`` line."""
    # The command name is in parentheses and may hold spaces: count fields after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def softirq_seconds(proc_stat: str, ticks_per_second: int) -> float:
    """The machine's softirq time, from the ``cpu`` line of ``/proc/stat``."""
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return int(fields[7]) / ticks_per_second
    raise ValueError("no cpu line in /proc/stat")


def cpu_used(before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per component between two snapshots of ``pid -> (command line, seconds)``.

    A process is charged what it used between the snapshots (a new one all it used); one that
    ended in between is lost, which a bench run avoids by not restarting anything inside it.
    """
    used: dict[str, float] = defaultdict(float)
    for pid, (command, seconds) in after.items():
        earlier = before.get(pid)
        start = earlier[1] if earlier and earlier[0] == command else 0.0
        used[_component(command)] += max(0.0, seconds - start)
    return dict(used)


def per_request_us(used: Mapping[str, float], requests: int) -> dict[str, float]:
    """Microseconds of CPU per request, per component, largest first."""
    if requests <= 0:
        raise ValueError("no requests were served: no cost per request")
    ordered = sorted(used.items(), key=lambda kv: -kv[1])
    costs = {name: round(seconds / requests * 1e6, 1) for name, seconds in ordered}
    return {name: us for name, us in costs.items() if us > 0}


def percent_of_core(used: Mapping[str, float], seconds: float) -> dict[str, float]:
    """Average share of one core per component over ``seconds`` of wall time, largest first."""
    ordered = sorted(used.items(), key=lambda kv: -kv[1])
    shares = {name: round(value / seconds * 100, 1) for name, value in ordered}
    return {name: share for name, share in shares.items() if share > 0}


def perf_rows(report: str) -> list[dict[str, Any]]:
    """Every entry of ``perf report --stdio --no-children --sort dso,symbol``: self time, largest first."""
    rows: list[dict[str, Any]] = []
    for line in report.splitlines():
        fields = line.split(None, 3)
        if len(fields) == 4 and fields[0].endswith("%") and fields[2] in ("[.]", "[k]"):
            where = "kernel" if fields[2] == "[k]" else "user"
            symbol = re.sub(r"(\s+-)+\s*$", "", fields[3]).strip()  # perf pads with empty columns
            rows.append({"percent": float(fields[0][:-1]), "dso": fields[1], "symbol": symbol, "where": where})
    rows.sort(key=lambda r: -r["percent"])
    return rows


def perf_top(report: str, limit: int = 12) -> list[dict[str, Any]]:
    """The heaviest entries of a perf report (``perf_rows``)."""
    return perf_rows(report)[:limit]


def perf_by_dso(report: str) -> dict[str, float]:
    """Self time summed per shared object (squid, libc, libstdc++, the kernel ...), largest first.

    Give it the whole report (no ``--percent-limit``): what a limit leaves out is missing from the sums.
    """
    totals: dict[str, float] = defaultdict(float)
    for row in perf_rows(report):
        totals[row["dso"]] += row["percent"]
    return {k: round(v, 2) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def _component(command: str) -> str:
    if "squid" in command:
        for role in ("frontend", "backend"):
            if f"-n {role}" in command:
                return f"squid {role}s"
        return "squid (other)"
    for name, label in (
        ("haproxy", "haproxy"),
        ("wrk", "wrk (load)"),
        ("nginx", "origin (nginx)"),
        ("ksoftirqd", "kernel softirq threads"),
        ("conmon", "podman"),
        ("podman", "podman"),
    ):
        if name in command:
            return label
    return "other"


def _range(s: Mapping[str, float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def _header(columns: Sequence[str]) -> list[str]:
    """A markdown table's head: the column names and the line under them."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _section(title: str, columns: Sequence[str]) -> list[str]:
    """A blank line, the section's title, a blank line and its table's head."""
    return ["", title, "", *_header(columns)]


def _machine_line(report: Mapping[str, Any]) -> str:
    """Where and when the report was made, and how its figures were taken."""
    machine = report.get("machine", {})
    rounds = report.get("throughput", {}).get("rounds")
    how = f"; every figure is the median of {rounds} interleaved runs with (min-max)" if rounds else ""
    return (
        f"Run {report.get('started', '?')} on {machine.get('cpu', '?')} ({machine.get('vcpus', '?')} vCPUs, "
        f"{machine.get('memory_gib', '?')} GiB), kernel {machine.get('kernel', '?')}, {machine.get('squid', '?')}"
        f"{how}."
    )


def _throughput_row(row: Mapping[str, Any]) -> str:
    return (
        f"| {row['balancer']} | {row['size']} | {row['target']} | {_range(row['rps'])} | "
        f"{_range(row['mb_per_s'], '{:,.1f}')} | {_range(row['p50_ms'], '{:.2f}')} | "
        f"{_range(row['p99_ms'], '{:.2f}')} | {row['errors']} |"
    )


# wrk is not among them: it starts and ends inside the run, so the snapshots never see its time.
COST_COLUMNS = (LAYERS["frontend"], LAYERS["backend"], LAYERS["haproxy"], SOFTIRQ)


def cost_summary(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Median CPU per request of each component, per balancer, object and path, over the rounds."""
    rows = []
    keys = list(dict.fromkeys((r["balancer"], r["size"], r["target"]) for r in runs if r.get("cpu_us")))
    for balancer, size, target in keys:
        mine = [r["cpu_us"] for r in runs if (r["balancer"], r["size"], r["target"]) == (balancer, size, target)]
        names = sorted({name for cost in mine for name in cost})
        rows.append(
            {
                "balancer": balancer, "size": size, "target": target,
                "us_per_request": {n: statistics.median([c.get(n, 0.0) for c in mine]) for n in names},
            }
        )  # fmt: skip
    return rows


def _cost_table(cost: Sequence[Mapping[str, Any]]) -> list[str]:
    """CPU time per request by layer (empty when none was measured)."""
    if not cost:
        return []
    out = _section(
        "CPU per request served (µs of CPU time, process user+system over a run ÷ requests; median of the "
        "rounds; softirq is the whole machine's: packets of every hop, and the kernel balancer's rules):",
        ("balancer", "object", "path", *COST_COLUMNS, "frontend ÷ backend"),
    )
    for row in cost:
        us = row["us_per_request"]
        cells = [f"{us[c]:.1f}" if c in us else "-" for c in COST_COLUMNS]
        front, back = us.get(COST_COLUMNS[0]), us.get(COST_COLUMNS[1])
        ratio = f"{front / back:.2f}" if front and back else "-"
        out.append(f"| {row['balancer']} | {row['size']} | {row['target']} | {' | '.join(cells)} | {ratio} |")
    return out


def _profile(profile: Mapping[str, Any]) -> list[str]:
    """Where one frontend's CPU goes (perf), when a profile was taken."""
    if not profile or not profile.get("top"):
        return []
    dsos = ", ".join(f"{k} {v:.1f} %" for k, v in list(profile["by_dso"].items())[:6])
    out = _section(
        f"Profile of {profile['process']} under {profile['load']} ({profile['tool']}, {profile['samples']} "
        f"samples, self time). By object: {dsos}.",
        ("self %", "object", "function"),
    )
    out += [f"| {r['percent']:.2f} | {r['dso']} | `{r['symbol']}` |" for r in profile["top"]]
    return out


def _throughput(tp: Mapping[str, Any]) -> list[str]:
    """Section 1: requests per second and latency per balancer, object and path; CPU; the profile."""
    if "summary" not in tp:  # the profile alone (make bench BENCH_ARGS="--only profile")
        return _profile(tp.get("profile") or {})
    out = _section(
        f"**1. Throughput and latency** (wrk, {tp['connections']} connections, {tp['seconds']} s a run, "
        "one cached object)",
        ("balancer", "object", "path", "req/s", "MB/s", "p50 ms", "p99 ms", "errors"),
    )
    out += [_throughput_row(row) for row in tp["summary"]]
    out += ["", *_header(("balancer", "object", "three layers ÷ one Squid (req/s, paired by run)"))]
    out += [f"| {row['balancer']} | {row['size']} | {_range(row['ratio'], '{:.2f}')} |" for row in tp["ratios"]]
    return out + _cost_table(tp.get("cost") or []) + _profile(tp.get("profile") or {})


def _fairness(fair: Sequence[Mapping[str, Any]]) -> list[str]:
    """Section 2: each rule set's shares of new connections."""
    out = _section(
        f"**2. Balancer fairness** ({fair[0]['connections']:,} new connections each, real kernel rules in a "
        "network namespace)",
        ("rules", "n", "shares (%)", "max deviation from 1/n"),
    )
    for row in fair:
        listed = " / ".join(f"{100 * s:.2f}" for s in row["shares"].values())
        out.append(f"| {row['rules']} | {row['n']} | {listed} | {row['max_deviation_pp']:.2f} pp |")
    return out


def _duplication_row(row: Mapping[str, Any]) -> str:
    h = {int(k): v for k, v in row["copies"]["histogram"].items()}
    more = sum(v for k, v in h.items() if k > 2)
    return (
        f"| {row['selection']} | {row['copies']['mean']:.2f} | {h.get(1, 0)} / {h.get(2, 0)} / {more} | "
        f"{100 * row['hit_ratio_pass2']:.1f} % |"
    )


def _duplication(dup: Sequence[Mapping[str, Any]]) -> list[str]:
    """Section 3: copies per URL and the hit ratio of a second pass, per parent selection."""
    out = _section(
        f"**3. Duplication and hit ratio** ({dup[0]['urls']:,} distinct {dup[0]['object_kib']} KiB URLs = "
        f"{dup[0]['working_set_mb']:.0f} MB, {dup[0]['working_set_to_one_cache']:.1f}x one backend "
        f"instance's {dup[0]['cache_mb']} MB cache, fetched twice through the frontends)",
        ("parent selection", "copies per URL (mean)", "URLs held 1x / 2x / more", "hit ratio, 2nd pass"),
    )
    return out + [_duplication_row(row) for row in dup]


def _remap(remap: Sequence[Mapping[str, Any]]) -> list[str]:
    """Section 4: URLs moved by a change, on real Squid and as ``carpfarm impact`` predicts."""
    out = _section(
        f"**4. Remap on change** ({remap[0]['urls']:,} URLs, 5 equal backend instances, real Squid "
        "frontend vs `carpfarm impact`)",
        ("change", "moved on Squid", "`carpfarm impact`", "same URLs"),
    )
    out += [
        f"| {row['change']} | {100 * row['squid_moved']:.2f} % | {100 * row['impact_moved']:.2f} % | "
        f"{row['same_urls']} |"
        for row in remap
    ]
    return out


def _control_plane(cp: Mapping[str, Any]) -> list[str]:
    """Section 5: wall times of site.yml and of ``carpfarm plan --json``."""
    out = _section("**5. Control plane**", ("what", "wall time"))
    if cp.get("site_fresh_s") is not None:
        out.append(f"| `site.yml` on a fresh lab | {cp['site_fresh_s']:.0f} s |")
    if cp.get("site_rerun_s") is not None:
        out.append(f"| `site.yml` again (changed={cp['site_rerun_changed']}) | {cp['site_rerun_s']:.0f} s |")
    out += [
        f"| `carpfarm plan --json`, {row['farm']} | {_range(row['seconds'], '{:.2f}')} s ({row['result']}) |"
        for row in cp.get("plan", [])
    ]
    return out


def _smp(smp: Mapping[str, Any]) -> list[str]:
    """Section 6: SMP workers as the frontend: the spread of new connections, a killed worker's cost."""
    spread, killed = smp["spread"], smp["killed_worker"]
    out = _section(
        f"**6. SMP workers as the frontend** ({smp['workers']} workers sharing the listen port; throughput and "
        "CPU above, as 'smp')",
        ("what", "figure"),
    )
    listed = " / ".join(f"{100 * s:.1f}" for s in spread["shares"].values())
    out.append(
        f"| {spread['connections']:,} new connections, share per worker (%) | {listed} "
        f"(max deviation from 1/n {spread['max_deviation_pp']:.1f} pp) |"
    )
    hit, calm = killed["killed"], killed["calm"]
    out.append(
        f"| worker 1 killed {killed['kill_after_s']:g} s into {killed['seconds']} s of wrk "
        f"({killed['connections']} connections) | {hit['errors']} errors of {hit['requests']:,} requests "
        f"(calm run: {calm['errors']} of {calm['requests']:,}); the master's new worker accepted after "
        f"{killed['restart_s']:.2f} s; {killed['requests_ratio']:.2f} of the calm run's requests |"
    )
    return out


# The report's sections in docs/benchmarks.md's order: (report key, its table); a section absent or empty is left out.
_SECTIONS: tuple[tuple[str, Callable[[Any], list[str]]], ...] = (
    ("throughput", _throughput),
    ("fairness", _fairness),
    ("duplication", _duplication),
    ("remap", _remap),
    ("control_plane", _control_plane),
    ("smp", _smp),
)


def markdown(report: Mapping[str, Any]) -> str:
    """The report's tables, as docs/benchmarks.md shows them."""
    out = [_machine_line(report)]
    for key, section in _SECTIONS:
        if report.get(key):
            out += section(report[key])
    return "\n".join(out) + "\n"
