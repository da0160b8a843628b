"""The arithmetic of `make bench` (carpfarm.lab.bench), on figures whose answers are known."""

from __future__ import annotations

import json

import pytest

from carpfarm.lab import bench

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


# /proc/PID/stat of a Squid kid whose command name holds a space and a parenthesis: utime 250, stime 50.
KID_STAT = "4242 (squid-1) x) S 4241 4241 4241 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 1 0 100 0 0"


def test_process_cpu_seconds_reads_user_and_system_after_the_command_name() -> None:
    assert bench.process_cpu_seconds(KID_STAT, 100) == 3.0


def test_softirq_seconds_is_the_seventh_figure_of_the_cpu_line() -> None:
    proc_stat = "cpu  100 0 50 9000 10 5 321 0 0 0\ncpu0 50 0 25 4500 5 2 160 0 0 0\n"
    assert bench.softirq_seconds(proc_stat, 100) == 3.21
    with pytest.raises(ValueError, match="no cpu line"):
        bench.softirq_seconds("intr 1 2 3\n", 100)


def test_cpu_used_charges_each_process_what_it_used_between_snapshots() -> None:
    front = "(squid-1) --kid squid-1 -n frontend1 -f /etc/squid/frontend1.conf"
    before = {11: (front, 10.0), 12: ("(squid-1) --kid squid-1 -n backend1", 4.0), 13: ("wrk -t1", 1.0)}
    after = {
        11: (front, 10.5),
        12: ("(squid-1) --kid squid-1 -n backend1", 4.2),
        14: ("(squid-1) --kid squid-1 -n frontend2", 0.3),  # started in between: all it used
        13: ("haproxy -f /etc/haproxy/haproxy.cfg", 2.0),  # the pid was reused: counted from zero
    }
    used = bench.cpu_used(before, after)
    assert used == pytest.approx({"squid frontends": 0.8, "squid backends": 0.2, "haproxy": 2.0})


def test_per_request_us_and_percent_of_core() -> None:
    used = {"squid frontends": 0.9, "squid backends": 0.3, "wrk (load)": 0.0, "podman": 0.000001}
    assert bench.per_request_us(used, 30000) == {"squid frontends": 30.0, "squid backends": 10.0}
    assert bench.percent_of_core(used, 3.0) == {"squid frontends": 30.0, "squid backends": 10.0}
    with pytest.raises(ValueError, match="no requests"):
        bench.per_request_us(used, 0)


PERF_REPORT = """# Samples: 4K of event 'cpu-clock'
#
# Overhead  Shared Object        Symbol
# ........  ...................  ..............................
#
     9.50%  [kernel.kallsyms]    [k] _raw_spin_unlock_irqrestore                -      -
     4.25%  squid                [.] HttpHeader::parse(char const*, unsigned long, Http::ContentLengthInterpreter&)
     3.00%  libc.so.6            [.] __memmove_avx_unaligned_erms
     1.00%  squid                [.] Comm::DoSelect(int)
"""


def test_perf_top_reads_self_time_with_spaces_in_symbols() -> None:
    top = bench.perf_top(PERF_REPORT, limit=3)
    assert [r["percent"] for r in top] == [9.5, 4.25, 3.0]
    assert top[1] == {
        "percent": 4.25, "dso": "squid", "where": "user",
        "symbol": "HttpHeader::parse(char const*, unsigned long, Http::ContentLengthInterpreter&)",
    }  # fmt: skip
    assert top[0]["where"] == "kernel"
    assert bench.perf_by_dso(PERF_REPORT) == {"[kernel.kallsyms]": 9.5, "squid": 5.25, "libc.so.6": 3.0}


def test_cost_summary_takes_the_median_of_the_rounds() -> None:
    runs = [
        {"balancer": "iptables", "size": "1 KiB", "target": "three layers", "cpu_us": {"squid frontends": f}}
        for f in (30.0, 10.0, 20.0)
    ] + [{"balancer": "iptables", "size": "1 KiB", "target": "origin direct"}]
    assert bench.cost_summary(runs) == [
        {"balancer": "iptables", "size": "1 KiB", "target": "three layers", "us_per_request": {"squid frontends": 20.0}}
    ]


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
            "cost": [{"balancer": "iptables", "size": "1 KiB", "target": "three layers (iptables)",
                      "us_per_request": {"squid frontends": 60.0, "squid backends": 30.0}}],
            "profile": {"process": "frontend1", "load": "wrk", "tool": "perf", "samples": "4K",
                        "top": bench.perf_top(PERF_REPORT), "by_dso": bench.perf_by_dso(PERF_REPORT)},
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
        "smp": {"workers": 2, "spread": {"connections": 2000, "shares": {"kid1": 0.55, "kid2": 0.45},
                                         "max_deviation_pp": 5.0},
                "killed_worker": {"seconds": 8, "kill_after_s": 2.0, "connections": 16, "restart_s": 0.41,
                                  "calm": {"requests": 30000, "errors": 0}, "killed": {"requests": 27000, "errors": 7},
                                  "requests_ratio": 0.9}},
    }  # fmt: skip
    text = bench.markdown(report)
    headings = (
        "**1. Throughput",
        "**2. Balancer fairness",
        "**3. Duplication",
        "**4. Remap",
        "**5. Control",
        "**6. SMP",
    )
    for heading in headings:
        assert heading in text
    assert "| iptables | 1 KiB | origin direct | 2 (1-3) |" in text
    assert "| carp | 1.00 | 4096 / 0 / 0 | 99.0 % |" in text
    assert "| iptables | 1 KiB | three layers (iptables) | 60.0 | 30.0 | - | - | 2.00 |" in text
    assert "| 4.25 | squid | `HttpHeader::parse(char const*, unsigned long, Http::ContentLengthInterpreter&)` |" in text
    assert "| `site.yml` again (changed=0) | 60 s |" in text
    assert "| 2,000 new connections, share per worker (%) | 55.0 / 45.0 (max deviation from 1/n 5.0 pp) |" in text
    assert "7 errors of 27,000 requests (calm run: 0 of 30,000); the master's new worker accepted after 0.41 s" in text
