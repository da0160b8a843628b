"""Section 1: throughput, latency and CPU per request, side by side in one run.

Origin direct, one Squid serving a HIT, and the three layers with each balancer that runs here and with
SMP workers as the frontend instead ("smp": carp_frontend_mode smp, no balancer), at 1 KiB and 64 KiB,
in interleaved rounds. Around every wrk run the host's /proc gives each layer's CPU
time (``cpu.Meter``); divided by the requests wrk completed, it is each layer's cost per request.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from cpu import Meter

from carpfarm.lab import bench
from lab import BACKEND, CARP_BOX, CLIENT, LAB_BALANCER, OBJECTS, ORIGIN, ROOT, copy_to, log, playbook, podman

# The frontend arrangements compared: instances behind each balancer, HAProxy as the CARP frontend
# (carp_frontend_mode: haproxy) with each selection, then SMP workers (last: the SMP section runs on
# the lab as this leaves it).
BALANCERS = ("iptables", "nftables", "haproxy", "haproxy-consistent", "haproxy-carp", "smp")
SMP = "smp"
# carp_frontend_mode: haproxy's arrangements: their carp_frontend_haproxy_selection.
HTTP_FRONTENDS = {"haproxy-consistent": "consistent", "haproxy-carp": "carp"}
CONNECTIONS = 16
ONE_SQUID = "one Squid (HIT)"


def wrk_argv(endpoint: str, url: str, seconds: int) -> list[str]:
    """wrk's command line: one thread, CONNECTIONS connections, the report script copied by prepare()."""
    return ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s",
            "-s", "/tmp/wrk-report.lua", endpoint, "--", url]  # fmt: skip


def wrk_start(endpoint: str, url: str, seconds: int) -> subprocess.Popen[str]:
    """wrk in the client, in the background: its output is read with ``communicate()``."""
    argv = ["podman", "exec", CLIENT, *wrk_argv(endpoint, url, seconds)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def wrk(container: str, endpoint: str, url: str, seconds: int) -> dict[str, Any]:
    return bench.wrk_result(podman(container, *wrk_argv(endpoint, url, seconds)))


def warm(url: str) -> None:
    """Put the object in the caches that will serve it: cache1-backend1, and its CARP owner."""
    podman(CARP_BOX[0], "curl", "-sf", "-o", "/dev/null", "-x", f"http://{BACKEND[1]}:{BACKEND[2]}", url)
    podman(CLIENT, "curl", "-sf", "-o", "/dev/null", "-x", f"http://{CARP_BOX[1]}:3128", url)


def targets(balancer: str) -> dict[str, tuple[str, str, bool]]:
    """path -> (where wrk runs, the endpoint it loads, whether it sends absolute URLs)."""
    return {
        "origin direct": (CLIENT, f"http://{ORIGIN}:8080", False),
        ONE_SQUID: (CARP_BOX[0], f"http://{BACKEND[1]}:{BACKEND[2]}", True),
        f"three layers ({balancer})": (CLIENT, f"http://{CARP_BOX[1]}:3128", True),
    }


def prepare() -> None:
    lua = ROOT / "bench" / "wrk-report.lua"
    for container in (CLIENT, CARP_BOX[0]):
        copy_to(container, lua)


def measure(balancer: str, rounds: int, seconds: int) -> list[dict[str, Any]]:
    """Every path and object of one balancer, ``rounds`` times interleaved; one row per wrk run."""
    for url in OBJECTS.values():
        warm(url)
    runs = []
    meter = Meter()
    for r in range(rounds):
        for size, url in OBJECTS.items():
            for target, (container, endpoint, absolute) in targets(balancer).items():
                meter.start()
                result = wrk(container, endpoint, url if absolute else url.split(":8080", 1)[1], seconds)
                used = meter.stop()
                row = {"balancer": balancer, "round": r, "size": size, "target": target, **result}
                if target != "origin direct":
                    row["cpu_us"] = bench.per_request_us(used, result["requests"])
                    row["cpu_percent"] = bench.percent_of_core(used, result["duration_us"] / 1e6)
                runs.append(row)
                cost = row.get("cpu_us", {})
                front, back = (cost.get(bench.LAYERS[k], 0.0) for k in ("frontend", "backend"))
                log(f"  {balancer:8} r{r} {size:6} {target:24} {result['rps']:8.0f} req/s "
                    f"p99 {result['p99_ms']:6.2f} ms errors {result['errors']}  "
                    f"CPU/request: frontend {front:.0f} us, backend {back:.0f} us")  # fmt: skip
    return runs


def switch_args(arrangement: str) -> tuple[str, ...]:
    """site.yml's extra variables for one frontend arrangement."""
    if arrangement == SMP:
        return ("-e", "carp_frontend_mode=smp", "-e", "frontend_balancer_watch=false")
    if arrangement in HTTP_FRONTENDS:
        # No frontend Squid: the lab's watch and its frontend squid.conf lines do not apply (validate says so).
        http = {
            "carp_frontend_mode": "haproxy",
            "carp_frontend_haproxy_selection": HTTP_FRONTENDS[arrangement],
            "frontend_balancer_watch": False,
            "carp_frontend_extra_http_access": [],
            "carp_frontend_extra_config": "",
        }
        return ("-e", json.dumps(http))
    return ("-e", f"frontend_balancer_type={arrangement}")


def section(rounds: int, seconds: int, balancers: tuple[str, ...] = BALANCERS) -> dict[str, Any]:
    prepare()
    runs: list[dict[str, Any]] = []
    for number, balancer in enumerate(balancers):
        if number or balancer != LAB_BALANCER:
            log(f"throughput: switching the lab's frontends to {balancer}")
            playbook("site.yml", *switch_args(balancer))
        runs += measure(balancer, rounds, seconds)
    return {
        "rounds": rounds, "seconds": seconds, "connections": CONNECTIONS, "runs": runs,
        "summary": summarise(runs, balancers), "ratios": ratios(runs, balancers), "cost": bench.cost_summary(runs),
    }  # fmt: skip


def summarise(runs: list[dict[str, Any]], balancers: tuple[str, ...]) -> list[dict[str, Any]]:
    keys = sorted(
        {(r["balancer"], r["size"], r["target"]) for r in runs}, key=lambda k: (balancers.index(k[0]), k[1], k[2])
    )
    rows = []
    for balancer, size, target in keys:
        mine = [r for r in runs if (r["balancer"], r["size"], r["target"]) == (balancer, size, target)]
        rows.append(
            {
                "balancer": balancer, "size": size, "target": target,
                **{k: bench.summarise([r[k] for r in mine]) for k in ("rps", "mb_per_s", "p50_ms", "p99_ms")},
                "errors": sum(r["errors"] for r in mine),
            }
        )  # fmt: skip
    return rows


def ratios(runs: list[dict[str, Any]], balancers: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    for balancer in balancers:
        for size in OBJECTS:
            pairs = []
            for r in sorted({x["round"] for x in runs}):
                same = [x for x in runs if x["balancer"] == balancer and x["size"] == size and x["round"] == r]
                three = [x["rps"] for x in same if x["target"].startswith("three")]
                one = [x["rps"] for x in same if x["target"] == ONE_SQUID]
                if three and one:
                    pairs.append(three[0] / one[0])
            if pairs:
                rows.append({"balancer": balancer, "size": size, "ratio": bench.summarise(pairs)})
    return rows
