"""Where a frontend's CPU goes: ``perf record`` on one CARP frontend instance while wrk loads the three layers.

perf (Debian's linux-perf) runs on the host: the containers' processes are the host's, and perf reads
their binaries through /proc/PID/root. It samples on the ``cpu-clock`` software event, which works in
a VM without a hardware PMU. Squid's own functions are named because Debian's squid exports its symbols.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import cpu
import throughput

from carpfarm.lab import bench
from lab import CARP_BOX, OBJECTS, log, run

INSTANCE = "frontend1"


def frontend(seconds: int, size: str = "1 KiB") -> dict[str, Any]:
    pids = cpu.squid_pids(INSTANCE)
    if not pids:
        raise RuntimeError(f"no process of the Squid instance {INSTANCE} on this machine")
    load = f"wrk, {throughput.CONNECTIONS} connections, {size} HITs through the three layers"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        wrk = throughput.wrk_start(f"http://{CARP_BOX[1]}:3128", OBJECTS[size], seconds + 2)
        try:
            time.sleep(1)
            run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-p", ",".join(map(str, pids)),
                 "-o", str(data), "--", "sleep", str(seconds)])  # fmt: skip
        finally:
            wrk.communicate(timeout=seconds + 30)
        report = run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "-g", "none",
                      "--sort", "dso,symbol"]).stdout  # fmt: skip
    samples = re.search(r"# Samples: (\S+)", report)
    result = {
        "process": f"{INSTANCE} (squid, {len(pids)} processes)", "load": load, "seconds": seconds,
        "tool": "perf record -e cpu-clock -F 999", "samples": samples.group(1) if samples else "?",
        "top": bench.perf_top(report), "by_dso": bench.perf_by_dso(report),
    }  # fmt: skip
    for row in result["top"][:5]:
        log(f"  {row['percent']:5.2f} %  {row['dso']:20} {row['symbol']}")
    return result
