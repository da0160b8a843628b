"""The arithmetic of `make bench` (carpfarm.bench), on figures whose answers are known."""

from __future__ import annotations

import json

import pytest

from carpfarm import bench

WRK = (
    "Running 3s test @ http://198.18.0.10:3128\n  1 threads and 16 connections\n"
    + json.dumps(
        {
            "requests": 3000, "duration_us": 2000000, "bytes": 6000000, "connect_errors": 0, "read_errors": 1,
            "write_errors": 0, "status_errors": 2, "timeouts": 0, "p50_us": 1500, "p99_us": 9000, "mean_us": 2000.0,
        }
    )
    + "\n"
)  # fmt: skip


def test_spread_is_median_min_max() -> None:
    assert bench.summarise([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
    with pytest.raises(ValueError, match="no measurements"):
        bench.summarise([])


def test_wrk_result_reads_the_report_line_and_derives_rates() -> None:
    result = bench.wrk_result(WRK)
    assert result["rps"] == 1500 and result["mb_per_s"] == 3.0
    assert result["p50_ms"] == 1.5 and result["p99_ms"] == 9.0
    assert result["errors"] == 3  # a read error and two non-2xx answers
    with pytest.raises(ValueError, match="no result line"):
        bench.wrk_result("wrk: connection refused\n")


def test_shares_and_the_wiki_rules_deviation() -> None:
    fair = bench.shares({"a": 5000, "b": 5000})
    assert fair["shares"] == {"a": 0.5, "b": 0.5} and fair["max_deviation_pp"] == 0
    # The Squid wiki's 0.25-per-rule cascade over 4 ports: 25 / 18.75 / 14.06 / 42.19 %.
    wiki = bench.shares({"3129": 2500, "3130": 1875, "3131": 1406, "3132": 4219})
    assert wiki["max_deviation_pp"] == pytest.approx(17.19, abs=0.01)


def test_copies_count_instances_that_fetched_each_url() -> None:
    logs = {
        "cache1-backend1": [
            "1.0 5 198.18.0.10 TCP_MISS/200 65800 GET http://o/x?1 - FIRSTUP_PARENT/o application/octet-stream",
            "2.0 1 198.18.0.10 TCP_MEM_HIT/200 65800 GET http://o/x?1 - HIER_NONE/- application/octet-stream",
            "3.0 5 198.18.0.10 TCP_MISS/200 65800 GET http://o/x?2 - HIER_DIRECT/o application/octet-stream",
        ],
        "cache2-backend1": [
            "4.0 5 198.18.0.10 TCP_MISS/200 65800 GET http://o/x?1 - HIER_DIRECT/o application/octet-stream",
            "5.0 5 198.18.0.10 TCP_MISS/503 0 GET http://o/x?3 - HIER_DIRECT/o -",
            "garbage",
        ],
    }
    held = bench.copies(logs, ["http://o/x?1", "http://o/x?2", "http://o/x?3"])
    assert held["histogram"] == {0: 1, 1: 1, 2: 1}  # x?3 failed: nothing was stored
    assert held["mean"] == 1.0 and held["max"] == 2


def test_cpu_by_component_groups_squid_instances_by_layer() -> None:
    pidstat = "\n".join(
        [
            "Linux 6.1 (host)  11/27/26  _x86_64_  (2 CPU)",
            "# Time   UID   PID  %usr %system  %guest   %wait    %CPU   CPU  Command",
            "1000  13  11  20.00  10.00  0.00  0.00  30.00  0  (squid-1) --kid squid-1 -n frontend1",
            "1000  13  12  10.00  10.00  0.00  0.00  20.00  1  (squid-1) --kid squid-1 -n backend1",
            "1000  0  13  5.00  5.00  0.00  0.00  10.00  1  wrk -t1 -c16",
            "13:53:40  13  11  30.00  10.00  0.00  0.00  40.00  0  (squid-1) --kid squid-1 -n frontend2",
            "13:53:40  0  14  0.00  4.00  0.00  0.00  4.00  0  ksoftirqd/0",
        ]
    )  # fmt: skip
    assert bench.cpu_by_component(pidstat) == {
        "squid frontends": 35.0,
        "squid backends": 10.0,
        "wrk (load)": 5.0,
        "kernel softirq threads": 2.0,
    }


def test_markdown_has_every_section_it_is_given() -> None:
    spread = bench.summarise([1.0, 2.0, 3.0])
    report = {
        "started": "2026-11-27T00:00:00Z",
        "machine": {"cpu": "x", "vcpus": 2, "memory_gib": 24, "kernel": "6.1", "squid": "Squid 5.7"},
        "throughput": {
            "rounds": 3, "seconds": 3, "connections": 16,
            "summary": [{"balancer": "iptables", "size": "1 KiB", "target": "origin direct", "rps": spread,
                         "mb_per_s": spread, "p50_ms": spread, "p99_ms": spread, "errors": 0}],
            "ratios": [{"balancer": "iptables", "size": "1 KiB", "ratio": spread}],
            "cpu": {"one Squid (HIT)": {"squid backends": 90.0}},
        },
        "fairness": [{"rules": "wiki", "n": 4, "connections": 20000, "shares": {"a": 0.25}, "max_deviation_pp": 17.2}],
        "duplication": [{"selection": "carp", "urls": 4096, "object_kib": 64, "working_set_mb": 256.0,
                         "working_set_to_one_cache": 2.0, "cache_mb": 128,
                         "copies": {"mean": 1.0, "histogram": {"1": 4096}}, "hit_ratio_pass2": 0.99}],
        "remap": [
            {"change": "drain cache3", "urls": 2000, "squid_moved": 0.2, "impact_moved": 0.2, "same_urls": "yes"}
        ],
        "control_plane": {"site_fresh_s": 200.0, "site_rerun_s": 60.0, "site_rerun_changed": 0,
                          "plan": [{"farm": "500 hosts x 2 instances", "seconds": spread, "result": "planned"}]},
    }  # fmt: skip
    text = bench.markdown(report)
    for heading in ("**1. Throughput", "**2. Balancer fairness", "**3. Duplication", "**4. Remap", "**5. Control"):
        assert heading in text
    assert "| iptables | 1 KiB | origin direct | 2 (1-3) |" in text
    assert "| carp | 1.00 | 4096 / 0 / 0 | 99.0 % |" in text
    assert "| `site.yml` again (changed=0) | 60 s |" in text
