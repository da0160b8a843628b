"""What every section of ``make bench`` shares: the lab's names, and running things on it."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

BIN = Path(sys.executable).parent
INVENTORY = ROOT / "inventory" / "lab"
CARP_BOX = ("carpfarm-carp1", "198.18.0.10")
LAB_BALANCER = "iptables"  # what inventory/lab/group_vars/carp_frontends.yml builds
BACKEND = ("carpfarm-cache1", "198.18.0.21", 4001)  # the one Squid of the baseline: cache1-backend1
BACKEND_HOSTS = ("carpfarm-cache1", "carpfarm-cache2")
CLIENT = "carpfarm-client"
ORIGIN = "198.18.0.50"
OBJECTS = {"1 KiB": f"http://{ORIGIN}:8080/bench/1k", "64 KiB": f"http://{ORIGIN}:8080/bench/64k"}


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def run(argv: list[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kwargs)


def podman(container: str, *argv: str, check: bool = True) -> str:
    return run(["podman", "exec", container, *argv], check=check).stdout


def copy_to(container: str, path: Path) -> str:
    """Copy a file of this tree into a lab container's /tmp; its path there."""
    run(["podman", "cp", str(path), f"{container}:/tmp/{path.name}"])
    return f"/tmp/{path.name}"


def playbook(path: str, *extra: str) -> tuple[float, str]:
    """Run a playbook on the lab; its wall time and its recap."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    started = time.monotonic()
    result = run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), str(ROOT / path), *extra], check=False, env=env)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{path} {' '.join(extra)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    recap = "\n".join(line for line in result.stdout.splitlines() if re.search(r" : ok=\d+", line))
    return seconds, recap


def changed_total(recap: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", recap))
