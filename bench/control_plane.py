"""Section 5: the control plane: site.yml on a freshly created lab and again (changed=0); carpfarm plan at scale."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from carpfarm.lab import bench
from lab import BIN, changed_total, log, playbook, run


def section(fresh: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"site_fresh_s": None, "site_rerun_s": None}
    if fresh:
        log("control plane: recreating the lab to time site.yml from scratch")
        playbook("playbooks/lab-down.yml")
        playbook("playbooks/lab-up.yml")
        playbook("playbooks/lab-prepare.yml")
        result["site_fresh_s"], _ = playbook("site.yml")
        log(f"  site.yml on a fresh lab: {result['site_fresh_s']:.0f} s")
    result["site_rerun_s"], recap = playbook("site.yml")
    result["site_rerun_changed"] = changed_total(recap)
    log(f"  site.yml again: {result['site_rerun_s']:.0f} s, changed={result['site_rerun_changed']}")
    result["plan"] = [plan_timing(hosts, per_host) for hosts, per_host in ((500, 2), (500, 8))]
    return result


def plan_timing(hosts: int, per_host: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "hosts.yml"
        backends = {
            f"cache{n}": {"ansible_host": f"10.{n // 250}.{n % 250}.1", "squid_backend_instances": per_host}
            for n in range(1, hosts + 1)
        }
        data = {
            "all": {
                "vars": {"carpfarm_client_networks": ["192.0.2.0/24"]},
                "children": {
                    "carp_frontends": {
                        "hosts": {"carp1": {"ansible_host": "192.0.2.10", "carp_frontend_instances": 8}}
                    },
                    "squid_backends": {"hosts": backends},
                },
            }
        }
        inventory.write_text(json.dumps(data))  # JSON is YAML
        times, codes = [], set()
        for _ in range(3):
            started = time.monotonic()
            done = run([str(BIN / "carpfarm"), "plan", str(Path(tmp)), "--json"], check=False)
            times.append(time.monotonic() - started)
            codes.add(done.returncode)
    result = "planned" if codes == {0} else "refused: over Squid's 1000-peer CARP limit" if codes == {2} else str(codes)
    log(f"  carpfarm plan, {hosts} hosts x {per_host}: {statistics.median(times):.2f} s ({result})")
    return {"farm": f"{hosts} hosts x {per_host} instances", "seconds": bench.summarise(times), "result": result}
