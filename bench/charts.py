"""The chart of a bench run: the 64 KiB throughput, the balancers' fairness, carp against round-robin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from throughput import BALANCERS


def charts(report: dict[str, Any], path: Path) -> bool:
    """Draw the chart when the run has its three sections; whether it was drawn."""
    if "summary" not in report.get("throughput", {}) or not report.get("fairness") or not report.get("duplication"):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1.1, 1.2, 0.9]})
    rows = [
        r
        for r in report["throughput"]["summary"]
        if r["size"] == "64 KiB" and (r["target"].startswith("three") or r["balancer"] == BALANCERS[0])
    ]
    labels = [r["target"] for r in rows]
    med = [r["rps"]["median"] for r in rows]
    low = [m - r["rps"]["min"] for m, r in zip(med, rows, strict=True)]
    high = [r["rps"]["max"] - m for m, r in zip(med, rows, strict=True)]
    axes[0].barh(labels, med, xerr=[low, high], color="tab:blue")
    axes[0].set_title("cached 64 KiB object, req/s (median, min-max)")
    axes[0].invert_yaxis()
    fair = report["fairness"]
    axes[1].barh(
        [f"{r['rules'].split(' (')[0].replace('carpfarm ', '')}, n={r['n']}" for r in fair],
        [r["max_deviation_pp"] for r in fair],
        color=["tab:red" if "wiki" in r["rules"] else "tab:orange" for r in fair],
    )
    axes[1].set_title("max deviation from 1/n, pp")
    axes[1].invert_yaxis()
    dup = report["duplication"]
    width = 0.38
    for n, row in enumerate(dup):
        axes[2].bar(
            [x + n * width for x in (0, 1)],
            [row["copies"]["mean"], row["hit_ratio_pass2"]],
            width,
            label=row["selection"],
        )
    axes[2].set_xticks([width / 2, 1 + width / 2], ["copies per URL", "2nd-pass hit ratio"])
    axes[2].set_title("parents carp vs round-robin")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return True
