"""Section 6: Squid SMP workers as the CARP frontend (``carp_frontend_mode: smp``), beside the instances.

Throughput, latency and CPU per request come from throughput.py, where "smp" is one more arrangement
beside the balancers. This section measures what only SMP has, on the lab while it runs in smp mode:
how the kernel spreads new connections over workers that share one accept queue (counted in each
worker's own access log), and what a worker killed under wrk's load costs while the master restarts it.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from typing import Any

import throughput

from carpfarm.lab import bench
from lab import CARP_BOX, CLIENT, OBJECTS, ROOT, copy_to, log, podman

NAME = "frontend"  # the SMP Squid's -n name (carpfarm.model.smp.INSTANCE)


def workers() -> int:
    return int(podman(CARP_BOX[0], "pgrep", "-fc", rf"^\(squid-[0-9]+\) .* -n {NAME} "))


def worker_counts(url: str, count: int) -> dict[str, int]:
    """Lines for ``url`` in each worker's access log (kid1 .. kid<count>; the coordinator is the last kid)."""
    found = {}
    for kid in range(1, count + 1):
        text = podman(CARP_BOX[0], "grep", "-cF", "--", f" {url} ", f"/var/log/squid/{NAME}/access-kid{kid}.log",
                      check=False)  # fmt: skip
        found[f"kid{kid}"] = int(text.strip() or 0)
    return found


def spread(connections: int) -> dict[str, Any]:
    """``connections`` new connections, one request each, one after another, from the client."""
    url = f"{OBJECTS['1 KiB']}/smp-spread-{dt.datetime.now():%H%M%S}"
    probe = copy_to(CLIENT, ROOT / "playbooks" / "files" / "carpfarm-probe.py")
    answered = podman(CLIENT, "python3", probe, "--proxy", f"{CARP_BOX[1]}:3128", "--repeat", str(connections),
                      "--summary", url)  # fmt: skip
    result = {**bench.shares(worker_counts(url, workers())), "answers": answered.strip()}
    log(f"  {connections} new connections over the workers: "
        + ", ".join(f"{k} {v:.1%}" for k, v in result["shares"].items())
        + f" (largest deviation from fair {result['max_deviation_pp']:.1f} points)")  # fmt: skip
    return result


def _wrk(seconds: int) -> subprocess.Popen[str]:
    return throughput.wrk_start(f"http://{CARP_BOX[1]}:3128", OBJECTS["1 KiB"], seconds)


def killed_worker(seconds: int, kill_after: float) -> dict[str, Any]:
    """wrk for ``seconds`` without a fault, then again with worker 1 killed ``kill_after`` s in."""
    calm = bench.wrk_result(_wrk(seconds).communicate()[0])
    script = copy_to(CARP_BOX[0], ROOT / "molecule" / "resources" / "files" / "carpfarm-kill-worker.sh")
    load = _wrk(seconds)
    time.sleep(kill_after)
    killed_at, back_at, pids = podman(CARP_BOX[0], "bash", script, NAME).split("\n")[:3]
    hit = bench.wrk_result(load.communicate()[0])
    result = {
        "seconds": seconds, "kill_after_s": kill_after, "connections": throughput.CONNECTIONS,
        "restart_s": round(float(back_at) - float(killed_at), 3), "pids": pids,
        "calm": {k: calm[k] for k in ("requests", "errors", "rps", "p99_ms")},
        "killed": {k: hit[k] for k in ("requests", "errors", "rps", "p99_ms", "read_errors", "connect_errors",
                                       "timeouts", "status_errors")},
        "requests_ratio": hit["requests"] / calm["requests"],
    }  # fmt: skip
    log(f"  worker 1 killed {kill_after} s into {seconds} s of wrk: {hit['errors']} errors of {hit['requests']} "
        f"requests, the master's new worker accepted after {result['restart_s']} s, "
        f"{result['requests_ratio']:.2f} of a calm run's requests")  # fmt: skip
    return result


def section(connections: int = 2000, seconds: int = 8, kill_after: float = 2.0) -> dict[str, Any]:
    log(f"smp: {connections} new connections, then a worker killed under wrk")
    throughput.prepare()
    throughput.warm(OBJECTS["1 KiB"])
    return {"workers": workers(), "spread": spread(connections), "killed_worker": killed_worker(seconds, kill_after)}
