#!/usr/bin/env python3
"""``make bench``: what the three layers buy, measured side by side on the lab in one run.

  python bench/run.py [--no-fresh] [--rounds 3] [--seconds 3] [--out bench/results]

Sections (each figure a ratio, or the median, min and max of interleaved runs; the arithmetic is carpfarm.bench):
  5. control plane: site.yml on a freshly created lab, then again (changed=0); carpfarm plan at scale
  1. throughput and latency with wrk: origin direct, one Squid serving a HIT, the three layers with
     each balancer that runs here (iptables, nftables, haproxy); CPU per component with pidstat
  3. duplication and hit ratio: a working set twice one backend instance's cache, fetched twice,
     parents 'carp' vs 'round-robin'; copies counted from the backends' logs
  2. balancer fairness: 20,000 new connections through the real kernel rules in a network namespace
  4. remap on change: delete / drain / append one of 5 peers on a real Squid, beside carpfarm impact
Every load is bounded in requests and time; traffic stays on this machine (lab containers, loopback,
a private network namespace). Writes <out>/<date>.json, .md and .png, and prints the tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # support: the real-Squid rig and the renderer the tests use

from carpfarm import bench  # noqa: E402
from carpfarm.model import Topology  # noqa: E402
from carpfarm.plan import balancer_rules, impact  # noqa: E402

BIN = Path(sys.executable).parent
INVENTORY = ROOT / "inventory" / "lab"
CARP_BOX = ("carpfarm-carp1", "198.18.0.10")
BACKEND = ("carpfarm-cache1", "198.18.0.21", 4001)  # the one Squid of the baseline: cache1-backend1
CLIENT = "carpfarm-client"
ORIGIN = "198.18.0.50"
OBJECTS = {"1 KiB": f"http://{ORIGIN}:8080/bench/1k", "64 KiB": f"http://{ORIGIN}:8080/bench/64k"}
BALANCERS = ("iptables", "nftables", "haproxy")
CONNECTIONS = 16


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def run(argv: list[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kwargs)


def podman(container: str, *argv: str, check: bool = True) -> str:
    return run(["podman", "exec", container, *argv], check=check).stdout


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


# ---------------------------------------------------------------- 5. control plane


def control_plane(fresh: bool) -> dict[str, Any]:
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


# ---------------------------------------------------------------- 1. throughput and latency


def copy_to(container: str, path: Path) -> str:
    run(["podman", "cp", str(path), f"{container}:/tmp/{path.name}"])
    return f"/tmp/{path.name}"


def wrk(container: str, endpoint: str, url: str, seconds: int) -> dict[str, Any]:
    out = podman(
        container, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s",
        "-s", "/tmp/wrk-report.lua", endpoint, "--", url,
    )  # fmt: skip
    return bench.wrk_result(out)


def warm(url: str) -> None:
    """Put the object in the caches that will serve it: cache1-backend1, and its CARP owner."""
    podman(CARP_BOX[0], "curl", "-sf", "-o", "/dev/null", "-x", f"http://{BACKEND[1]}:{BACKEND[2]}", url)
    podman(CLIENT, "curl", "-sf", "-o", "/dev/null", "-x", f"http://{CARP_BOX[1]}:3128", url)


def cpu_sample(seconds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["pidstat", "-u", "-l", "-h", "1", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )


def throughput(rounds: int, seconds: int) -> dict[str, Any]:
    lua = ROOT / "bench" / "wrk-report.lua"
    for container in (CLIENT, CARP_BOX[0]):
        copy_to(container, lua)
    runs: list[dict[str, Any]] = []
    cpu: dict[str, dict[str, float]] = {}
    for number, balancer in enumerate(BALANCERS):
        if number:
            log(f"throughput: switching the lab's balancer to {balancer}")
            playbook("site.yml", "-e", f"frontend_balancer_type={balancer}")
        for url in OBJECTS.values():
            warm(url)
        targets = {
            "origin direct": (CLIENT, f"http://{ORIGIN}:8080", None),
            "one Squid (HIT)": (CARP_BOX[0], f"http://{BACKEND[1]}:{BACKEND[2]}", "absolute"),
            f"three layers ({balancer})": (CLIENT, f"http://{CARP_BOX[1]}:3128", "absolute"),
        }
        for r in range(rounds):
            for size, url in OBJECTS.items():
                for target, (container, endpoint, form) in targets.items():
                    path = url if form else url.split(":8080", 1)[1]
                    sampler = cpu_sample(seconds) if r == 0 and size == "64 KiB" and target != "origin direct" else None
                    result = wrk(container, endpoint, path, seconds)
                    if sampler:
                        label = "one Squid (HIT)" if target.startswith("one") else target
                        cpu[label] = bench.cpu_by_component(sampler.communicate()[0])
                    runs.append({"balancer": balancer, "round": r, "size": size, "target": target, **result})
                    log(f"  {balancer:8} r{r} {size:6} {target:24} {result['rps']:8.0f} req/s "
                        f"p99 {result['p99_ms']:6.2f} ms errors {result['errors']}")  # fmt: skip
    return {"rounds": rounds, "seconds": seconds, "connections": CONNECTIONS, "runs": runs,
            "summary": summarise(runs), "ratios": ratios(runs), "cpu": cpu}  # fmt: skip


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = sorted(
        {(r["balancer"], r["size"], r["target"]) for r in runs}, key=lambda k: (BALANCERS.index(k[0]), k[1], k[2])
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


def ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for balancer in BALANCERS:
        for size in OBJECTS:
            pairs = []
            for r in sorted({x["round"] for x in runs}):
                same = [x for x in runs if x["balancer"] == balancer and x["size"] == size and x["round"] == r]
                three = [x["rps"] for x in same if x["target"].startswith("three")]
                one = [x["rps"] for x in same if x["target"].startswith("one")]
                if three and one:
                    pairs.append(three[0] / one[0])
            if pairs:
                rows.append({"balancer": balancer, "size": size, "ratio": bench.summarise(pairs)})
    return rows


# ---------------------------------------------------------------- 3. duplication and hit ratio

FETCHER = r"""
import http.client, json, sys, threading, time
proxy, base, count, passes, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
urls = [f"{base}{i}" for i in range(count)]
results = []
for p in range(passes):
    hits, misses, errors, lock = [0], [0], [0], threading.Lock()
    def work(part):
        conn = None
        for url in part:
            for _ in range(2):
                try:
                    conn = conn or http.client.HTTPConnection(proxy, 3128, timeout=20)
                    conn.request("GET", url, headers={"Host": url.split("/")[2]})
                    r = conn.getresponse(); r.read()
                    # the first hop's verdict: X-Cache (Squid 5) "HIT from NAME", Cache-Status (6) "NAME;hit"
                    first = (r.getheader("X-Cache") or r.getheader("Cache-Status") or "").split(",")[0]
                    with lock:
                        if r.status != 200: errors[0] += 1
                        elif first.startswith("HIT") or ";hit" in first: hits[0] += 1
                        else: misses[0] += 1
                    break
                except OSError:
                    conn = None
            else:
                with lock: errors[0] += 1
    started = time.monotonic()
    parts = [urls[i::threads] for i in range(threads)]
    ts = [threading.Thread(target=work, args=(part,)) for part in parts]
    [t.start() for t in ts]; [t.join() for t in ts]
    results.append({"hits": hits[0], "misses": misses[0], "errors": errors[0], "seconds": time.monotonic() - started})
print(json.dumps(results))
"""


def backend_logs(token: str) -> dict[str, list[str]]:
    logs: dict[str, list[str]] = {}
    for host in ("carpfarm-cache1", "carpfarm-cache2"):
        listing = podman(host, "sh", "-c", "ls -d /var/log/squid/backend*/")
        for directory in listing.split():
            name = Path(directory).name
            text = podman(host, "sh", "-c", f"grep -h -- '{token}' {directory}access.log || true")
            logs[f"{host.removeprefix('carpfarm-')}-{name}"] = text.splitlines()
    return logs


def duplication(selection: str, count: int, cache_mb: int, object_kib: int) -> dict[str, Any]:
    token = f"ws-{selection}-{dt.datetime.now():%H%M%S}-"
    base = f"{OBJECTS['64 KiB']}/{token}"  # a path: Squid's logs strip query strings
    out = podman(CLIENT, "python3", "-c", FETCHER, CARP_BOX[1], base, str(count), "2", "8")
    passes = json.loads(out)
    urls = [f"{base}{i}" for i in range(count)]
    held = bench.copies(backend_logs(token), urls)
    second = passes[1]
    row = {
        "selection": selection, "urls": count, "object_kib": object_kib, "cache_mb": cache_mb,
        "working_set_mb": count * object_kib / 1024, "working_set_to_one_cache": count * object_kib / 1024 / cache_mb,
        "passes": passes, "copies": held,
        "hit_ratio_pass2": second["hits"] / max(1, second["hits"] + second["misses"] + second["errors"]),
    }  # fmt: skip
    log(f"  {selection:11} copies/URL {held['mean']:.2f} (max {held['max']}), 2nd-pass hit ratio "
        f"{100 * row['hit_ratio_pass2']:.1f} %, errors {sum(p['errors'] for p in passes)}")  # fmt: skip
    return row


def duplication_section() -> list[dict[str, Any]]:
    cache_mb = 128  # inventory/lab/group_vars/squid_backends.yml: squid_backend_cache_size_mb
    count = 2 * cache_mb * 1024 // 64
    rows = []
    log(f"duplication: {count} URLs of 64 KiB, parents carp")
    rows.append(duplication("carp", count, cache_mb, 64))
    log("duplication: switching the frontends' parents to round-robin")
    playbook("site.yml", "-e", "carp_frontend_parent_selection=round-robin")
    rows.append(duplication("round-robin", count, cache_mb, 64))
    log("duplication: back to the inventory's own settings (carp, iptables)")
    playbook("site.yml")
    return rows


# ---------------------------------------------------------------- 2. fairness (kernel rules in a netns)


def _count_connections(ports: list[int], total: int) -> dict[str, int]:
    """Inside the namespace: listen on each port, open ``total`` new connections to :3128, count who got each."""
    selector = selectors.DefaultSelector()
    counts = {str(p): 0 for p in ports}
    for port in ports:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(4096)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, str(port))

    def connect() -> None:
        for _ in range(total):
            with socket.socket() as c:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST: no TIME_WAIT
                c.connect(("127.0.0.1", 3128))

    client = threading.Thread(target=connect)
    client.start()
    deadline = time.monotonic() + 120
    while sum(counts.values()) < total and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            try:
                conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            conn.close()
            counts[key.data] += 1
    client.join()
    return counts


def _render(template: str, balancer: dict[str, Any]) -> str:
    from support.ansible import render  # the tests' renderer: Ansible's templar, as the role runs it

    path = ROOT / "roles/frontend_balancer/templates/etc/carpfarm" / template
    return render(
        path, ansible_managed="carpfarm bench", inventory_hostname="bench", __frontend_balancer_ruleset=balancer
    )


def _topology(n: int) -> Topology:
    carp = {"ansible_host": "192.0.2.10", "carp_frontend_instances": n, "carpfarm_client_networks": ["127.0.0.0/8"]}
    return Topology.from_inventory(
        {"carp_frontends": ["bench"], "squid_backends": ["cache1"]},
        {"bench": carp, "cache1": {"ansible_host": "192.0.2.21"}},
    )


def fairness(total: int) -> list[dict[str, Any]]:
    cases: list[tuple[str, int, str, str]] = []  # (label, n, loader, rules text)
    for n in (2, 4, 8):
        rules = balancer_rules(_topology(n), "bench")
        cases.append(("carpfarm iptables cascade (random)", n, "iptables", _render("balancer.rules.j2", rules)))
        cases.append(("carpfarm nftables numgen (random)", n, "nft", _render("balancer.nft.j2", rules)))
    wiki = ["*nat", ":CARPFARM_BALANCE - [0:0]"]
    wiki += [
        f"-A CARPFARM_BALANCE -p tcp -m statistic --mode random --probability 0.25 -j REDIRECT --to-ports {3129 + i}"
        for i in range(3)
    ]
    wiki += ["-A CARPFARM_BALANCE -p tcp -j REDIRECT --to-ports 3132", "COMMIT", ""]
    cases.append(("Squid wiki: 0.25 on every rule", 4, "iptables", "\n".join(wiki)))
    rows = []
    for label, n, loader, text in cases:
        namespace = f"carpfarm-bench-{os.getpid()}"
        run(["ip", "netns", "add", namespace])
        try:
            inside = ["ip", "netns", "exec", namespace]
            run([*inside, "ip", "link", "set", "lo", "up"])
            with tempfile.NamedTemporaryFile("w", suffix=".rules") as f:
                f.write(text)
                f.flush()
                if loader == "iptables":
                    run([*inside, "iptables-restore", "--noflush", f.name])
                    run(
                        [
                            *inside,
                            "iptables",
                            "-t",
                            "nat",
                            "-A",
                            "OUTPUT",
                            "-p",
                            "tcp",
                            "-d",
                            "127.0.0.1",
                            "--dport",
                            "3128",
                            "-j",
                            "CARPFARM_BALANCE",
                        ]
                    )
                else:
                    run([*inside, "nft", "-f", f.name])
            out = run([*inside, sys.executable, __file__, "--count-connections", str(total),
                       *[str(3129 + i) for i in range(n)]]).stdout  # fmt: skip
        finally:
            run(["ip", "netns", "del", namespace], check=False)
        counts = json.loads(out)
        row = {"rules": label, "n": n, **bench.shares(counts)}
        rows.append(row)
        log(f"  {label:36} n={n}: max deviation {row['max_deviation_pp']:.2f} pp")
    return rows


# ---------------------------------------------------------------- 4. remap on change


def _farm(names: list[str], drained: str | None = None) -> Topology:
    hostvars: dict[str, Any] = {"carp1": {"ansible_host": "192.0.2.10", "carpfarm_client_networks": ["127.0.0.0/8"]}}
    for n, name in enumerate(names):
        hostvars[name] = {"ansible_host": f"192.0.2.{21 + n}", "squid_backend_instances": 1}
        if name == drained:
            hostvars[name]["squid_backend_state"] = "drained"
    return Topology.from_inventory({"carp_frontends": ["carp1"], "squid_backends": names}, hostvars)


def remap(count: int) -> list[dict[str, Any]]:
    from support.squidrig import PeerSpec, running_squid

    hosts = [f"cache{i}" for i in range(1, 6)]
    middle = hosts[2]
    urls = [f"http://origin.example/obj/remap-{i}" for i in range(count)]

    def answers(peers: list[PeerSpec]) -> dict[str, str | None]:
        with running_squid(peers) as squid:
            return {url: squid.parent_for(url) for url in urls}

    before_peers = [PeerSpec(f"{h}-backend1") for h in hosts]
    before = answers(before_peers)
    gone = f"{middle}-backend1"
    changes = {
        f"delete {middle}": ([p for p in before_peers if p.name != gone], _farm([h for h in hosts if h != middle])),
        f"drain {middle}": ([PeerSpec(p.name, denied=p.name == gone) for p in before_peers], _farm(hosts, middle)),
        "append cache6": ([*before_peers, PeerSpec("cache6-backend1")], _farm([*hosts, "cache6"])),
    }
    old = _farm(hosts)
    rows = []
    for change, (peers, new) in changes.items():
        after = answers(peers)
        moved = {u for u in urls if after[u] != before[u]}
        predicted = impact(old, new, urls)
        predicted_urls = {u for u in urls if _owner(new, u) != _owner(old, u)}
        rows.append(
            {
                "change": change, "urls": count, "squid_moved": len(moved) / count,
                "impact_moved": predicted.moved_fraction, "same_urls": "yes" if moved == predicted_urls else
                f"no ({len(moved ^ predicted_urls)} differ)",
            }
        )  # fmt: skip
        log(
            f"  {change:16} Squid moved {100 * len(moved) / count:.2f} %, impact {100 * predicted.moved_fraction:.2f} %"
        )
    return rows


def _owner(topology: Topology, url: str) -> str | None:
    chosen = topology.route(url)
    return None if chosen is None else chosen.peer_name


# ---------------------------------------------------------------- report


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


def charts(report: dict[str, Any], path: Path) -> None:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-fresh", action="store_true", help="skip recreating the lab (no fresh site.yml time)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=20000)
    parser.add_argument("--remap-urls", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--replot", type=Path, help="only redraw the charts of a results JSON")
    parser.add_argument("--count-connections", type=int, help=argparse.SUPPRESS)
    parser.add_argument("ports", nargs="*", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_connections:  # the part that runs inside the fairness namespace
        print(json.dumps(_count_connections(args.ports, args.count_connections)))
        return 0
    if args.replot:
        charts(json.loads(args.replot.read_text()), args.replot.with_suffix(".png"))
        return 0

    started = time.monotonic()
    report: dict[str, Any] = {"started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    report["control_plane"] = control_plane(fresh=not args.no_fresh)
    log("preparing the lab for loads (wrk, nginx origin)")
    playbook("playbooks/bench-prepare.yml")
    report["machine"] = machine()
    report["throughput"] = throughput(args.rounds, args.seconds)
    report["duplication"] = duplication_section()
    log(f"fairness: {args.connections} new connections per rule set, in a network namespace")
    report["fairness"] = fairness(args.connections)
    log(f"remap: {args.remap_urls} URLs on a real Squid with 5 peers")
    report["remap"] = remap(args.remap_urls)
    report["seconds"] = round(time.monotonic() - started, 1)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / report["started"].replace(":", "")
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    table = bench.markdown(report)
    stem.with_suffix(".md").write_text(table)
    charts(report, stem.with_suffix(".png"))
    print()
    print(table)
    log(f"done in {report['seconds']:.0f} s: {stem}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
