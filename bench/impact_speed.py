#!/usr/bin/env python3
"""Time ``carpfarm impact`` and ``carpfarm plan`` on large generated inventories, as whole processes.

Writes production-shaped YAML inventories (like ``inventory/example``, but with hundreds of
backend hosts) into a temporary directory and runs ``.venv/bin/carpfarm`` on them:

* ``impact``: 400 backend hosts x 2 instances, then the same farm with one host appended,
  default sample (5000 URLs);
* ``plan``: 500 backend hosts x 2 instances.

Usage: ``bench/impact_speed.py [--hosts-impact 400] [--hosts-plan 500] [--runs 3] [--profile] [--python PY]``.
``--profile`` also runs each command once under cProfile and prints the top functions (of the
main process only: the CARP batch and the second inventory of ``impact`` run in forked workers,
whose time shows there as waiting).
``--python`` runs ``PY -m carpfarm.cli`` instead of ``.venv/bin/carpfarm`` (for a checkout without its
own venv: ``PYTHONPATH=src bench/impact_speed.py --python ../main/.venv/bin/python``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARPFARM = ROOT / ".venv" / "bin" / "carpfarm"
PYTHON = ROOT / ".venv" / "bin" / "python"

GROUP_VARS = {
    "all.yml": "---\ncarpfarm_client_networks:\n  - 198.51.100.0/24\n",
    "carp_frontends.yml": (
        "---\ncarp_frontend_instances: auto\ncarp_frontend_listen_port: 3128\n"
        "carp_frontend_port_base: 3129\nfrontend_balancer_type: iptables\nfrontend_balancer_mode: random\n"
    ),
    "squid_backends.yml": (
        "---\nsquid_backend_instances: {instances}\nsquid_backend_port_base: 4001\nsquid_backend_weight: 1\n"
        "squid_backend_cache_size_mb: 20480\nsquid_backend_cache_mem_mb: 1024\nsquid_backend_cache_type: aufs\n"
    ),
}


def write_inventory(path: Path, hosts: int, instances: int = 2) -> Path:
    """A farm of one frontend and ``hosts`` backend hosts (cache1..cacheN) with ``instances`` each."""
    (path / "group_vars").mkdir(parents=True)
    for name, text in GROUP_VARS.items():
        (path / "group_vars" / name).write_text(text.format(instances=instances))
    lines = [
        "---",
        "all:",
        "  children:",
        "    carp_frontends:",
        "      hosts:",
        "        carp1:",
        "          ansible_host: 192.0.2.10",
        "    squid_backends:",
        "      hosts:",
    ]
    for n in range(1, hosts + 1):
        lines += [f"        cache{n}:", f"          ansible_host: 10.{n // 65536}.{n // 256 % 256}.{n % 256}"]
    (path / "hosts.yml").write_text("\n".join(lines) + "\n")
    return path


def timed(argv: list[str], runs: int) -> tuple[float, list[float]]:
    """Median and all wall times of ``argv`` over ``runs`` runs; a failing run aborts the bench."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 3):  # impact --strict style exit 3 is an answer, not a failure
            sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return statistics.median(times), times


def profile(python: str, argv: list[str], top: int) -> None:
    """Run the CLI once under cProfile and print the ``top`` functions by cumulative time."""
    code = (
        "import cProfile, pstats, sys\n"
        "from carpfarm.cli import main\n"
        f"sys.argv = {['carpfarm', *argv]!r}\n"
        "p = cProfile.Profile()\n"
        "p.enable()\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "p.disable()\n"
        "sys.stdout = sys.__stderr__\n"
        f"pstats.Stats(p, stream=sys.stderr).sort_stats('cumulative').print_stats({top})\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    print(done.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts-impact", type=int, default=400)
    parser.add_argument("--hosts-plan", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of each command")
    parser.add_argument("--top", type=int, default=35, help="functions to show with --profile")
    parser.add_argument(
        "--python", default=None, help=f"run PYTHON -m carpfarm.cli instead of {CARPFARM.relative_to(ROOT)}"
    )
    args = parser.parse_args()
    env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    command = [args.python, "-m", "carpfarm.cli"] if args.python else [str(CARPFARM)]
    with tempfile.TemporaryDirectory(prefix="carpfarm-bench-") as tmp:
        base = Path(tmp)
        old = write_inventory(base / "old", args.hosts_impact)
        new = write_inventory(base / "new", args.hosts_impact + 1)
        big = write_inventory(base / "plan", args.hosts_plan)
        commands = {
            f"impact {args.hosts_impact}x2 -> {args.hosts_impact + 1}x2 (5000 URLs)": ["impact", str(old), str(new)],
            f"plan {args.hosts_plan}x2 --json": ["plan", "--json", str(big)],
        }
        print(f"carpfarm whole-process wall time, median of {args.runs} ({env_note})")
        for label, argv in commands.items():
            median, times = timed([*command, *argv], args.runs)
            print(f"  {label}: {median:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})")
        if args.profile:
            for label, argv in commands.items():
                print(f"==== cProfile: {label}")
                profile(args.python or str(PYTHON), argv, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
