#!/usr/bin/env python3
"""``make bench``: what the three layers buy, measured side by side on the lab in one run.

  python bench/run.py [--no-fresh] [--rounds 3] [--seconds 3] [--only SECTION ...] [--out bench/results]

One module per section (each figure a ratio, or the median, min and max of interleaved runs; the
arithmetic is carpfarm.lab.bench):
  control_plane.py  5. site.yml on a freshly created lab, then again (changed=0); carpfarm plan at scale
  throughput.py     1. throughput, latency and CPU per request with wrk: origin direct, one Squid serving
                       a HIT, the three layers with each balancer that runs here; perf_profile.py: perf of a frontend
  duplication.py    3. a working set twice one backend instance's cache, fetched twice (fetcher.py),
                       parents 'carp' vs 'round-robin'; copies counted from the backends' logs
  fairness.py       2. 20,000 new connections through the real kernel rules in a network namespace
  remap.py          4. delete / drain / append one of 5 peers on a real Squid, beside carpfarm impact
  smp.py            6. SMP workers as the frontend: how new connections spread over the workers, and
                       what a killed worker costs (throughput.py measures their throughput beside the balancers)
Every load is bounded in requests and time; traffic stays on this machine (lab containers, loopback,
a private network namespace). Writes <out>/<date>.json, .md and .png, and prints the tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import charts
import control_plane
import duplication
import fairness
import perf_profile
import remap
import smp
import throughput

from carpfarm.lab import bench
from lab import CARP_BOX, ROOT, log, playbook, podman, run

SECTIONS = ("control", "throughput", "profile", "smp", "duplication", "fairness", "remap")


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    mem = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    )
    squid = podman(CARP_BOX[0], "squid", "-v", check=False).splitlines()
    return {
        "cpu": cpu, "vcpus": os.cpu_count(), "memory_gib": round(mem / 1024 / 1024, 1), "kernel": platform.release(),
        "squid": squid[0].replace("Squid Cache: ", "Squid ") if squid else "?",
        "podman": run(["podman", "--version"]).stdout.strip(), "note": "every layer shares these vCPUs",
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-fresh", action="store_true", help="skip recreating the lab (no fresh site.yml time)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=20000)
    parser.add_argument("--remap-urls", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--replot", type=Path, help="only redraw the charts of a results JSON")
    parser.add_argument("--profile-seconds", type=int, default=5)
    parser.add_argument("--balancers", nargs="+", choices=throughput.BALANCERS, default=list(throughput.BALANCERS))
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="run these sections only")
    args = parser.parse_args()
    if args.replot:
        charts.charts(json.loads(args.replot.read_text()), args.replot.with_suffix(".png"))
        return 0

    started = time.monotonic()
    report: dict[str, Any] = {"started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if "control" in args.only:
        report["control_plane"] = control_plane.section(fresh=not args.no_fresh)
    log("preparing the lab for loads (wrk, nginx origin)")
    playbook("playbooks/bench-prepare.yml")
    report["machine"] = machine()
    profile = None
    if "profile" in args.only:  # first: the lab still runs the inventory's own balancer
        log(f"profile: perf on {perf_profile.INSTANCE} for {args.profile_seconds} s under load")
        throughput.prepare()
        profile = perf_profile.frontend(args.profile_seconds)
    if "throughput" in args.only:
        report["throughput"] = throughput.section(args.rounds, args.seconds, tuple(args.balancers))
    if profile:
        report.setdefault("throughput", {})["profile"] = profile
    if "smp" in args.only:
        if not ("throughput" in args.only and args.balancers[-1] == throughput.SMP):
            log("smp: switching the lab's frontends to SMP workers")
            playbook("site.yml", *throughput.switch_args(throughput.SMP))
        report["smp"] = smp.section()
    if "duplication" in args.only:
        report["duplication"] = duplication.section()
    if "fairness" in args.only:
        log(f"fairness: {args.connections} new connections per rule set, in a network namespace")
        report["fairness"] = fairness.section(args.connections)
    if "remap" in args.only:
        log(f"remap: {args.remap_urls} URLs on a real Squid with 5 peers")
        report["remap"] = remap.section(args.remap_urls)
    switched = "smp" in args.only or ("throughput" in args.only and len(args.balancers) > 1)
    if switched and "duplication" not in args.only:
        log("back to the inventory's own frontends and balancer")
        playbook("site.yml")
    report["seconds"] = round(time.monotonic() - started, 1)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / report["started"].replace(":", "")
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    table = bench.markdown(report)
    stem.with_suffix(".md").write_text(table)
    charts.charts(report, stem.with_suffix(".png"))
    print()
    print(table)
    log(f"done in {report['seconds']:.0f} s: {stem}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
