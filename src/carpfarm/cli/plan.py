"""``carpfarm plan``: every layer, port, balancer rule and CARP share, one table per CARP box and
one of the backends."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from carpfarm.cli.common import emit_json, interactive, load, print_table, progress_bar, stdout
from carpfarm.model import Topology
from carpfarm.plan import plan, sample_urls

FRONTEND_COLUMNS = ("instance", "port", "rule", "probability", "iptables", "share", "realised")
BACKEND_COLUMNS = ("host", "instance", "CARP peer", "address:port", "weight", "state", "share", "sampled")


def cmd_plan(args: argparse.Namespace) -> int:
    topology = load(args.inventory, args)
    data = _plan_data(topology, args)
    if args.json:
        emit_json(data)
        return 0
    console = stdout()
    for f in data["frontends"]:
        _print_frontend(console, f)
    justify: dict[str, JustifyMethod] = {
        c: "right" if c in ("weight", "share", "sampled") else "left" for c in BACKEND_COLUMNS
    }
    print_table(console, "Backends (cache_peer order)", justify, _backend_rows(data["backends"]))
    for tip in data.get("advice", []):
        console.print(Text.assemble(("warning", "yellow"), f": {tip}"))
    return 0


def _plan_data(topology: Topology, args: argparse.Namespace) -> dict[str, Any]:
    """``plan.plan``, sampling ``--sample`` URLs (with a progress bar for a person watching)."""
    urls = sample_urls(args.sample) if args.sample is not None else None
    if urls and interactive(args):
        with progress_bar("sampling CARP shares", len(urls)) as advance:
            return plan(topology, urls, progress=advance)
    return plan(topology, urls)


def _auto_note(frontend: Mapping[str, Any]) -> str:
    """What a frontend table's title says of ``instances: auto`` (nothing for a count)."""
    if frontend["instances_setting"] != "auto":
        return ""
    if frontend["vcpus"]:
        return f" (auto, {frontend['vcpus']} vCPU)"
    return " (auto: vCPUs unknown without facts, showing 1; pass --vcpus N)"


def _rule_match(rule: Mapping[str, Any], mode: str) -> str:
    """How a balancer rule picks its connections: the rest, every nth, or at random."""
    if rule["last"]:
        return "rest"
    return f"nth every {rule['every']}" if mode == "roundrobin" else "random"


def _frontend_table(f: Mapping[str, Any]) -> Table:
    """One CARP box's instances and the balancer rule that feeds each."""
    table = Table(title=f"Frontend {f['host']} ({f['address']}), clients on :{f['listen_port']}{_auto_note(f)}")
    for column in FRONTEND_COLUMNS:
        table.add_column(column, justify="right" if column not in ("instance",) else "left")
    balancer = f["balancer"]
    for inst, rule in zip(f["instances"], balancer["cascade"], strict=True):
        table.add_row(
            inst["name"],
            str(inst["port"]),
            _rule_match(rule, balancer["mode"]),
            f"{rule['probability']:.6f}",
            "-" if rule["last"] else rule["iptables_probability"],
            f"{rule['share']:.4%}",
            f"{rule['realised_share']:.6%}",
        )
    return table


def _print_smp_frontend(console: Console, f: Mapping[str, Any]) -> None:
    """A CARP box in smp mode: its one Squid, its workers and their cores."""
    affinity = f["cpu_affinity_map"] or "none (vCPUs unknown without facts: the kernel places the workers)"
    console.print(
        f"Frontend {f['host']} ({f['address']}), clients on :{f['listen_port']}{_auto_note(f)}\n"
        f"  mode: smp: one Squid ({f['instances'][0]['name']}) with {f['workers']} workers sharing "
        f":{f['listen_port']}, no balancer; cpu_affinity_map: {affinity}\n"
        f"  clients: {', '.join(f['client_networks'])}"
    )


def _print_frontend(console: Console, f: Mapping[str, Any]) -> None:
    """A CARP box's table, its balancer and clients, and its WCCPv2 stanzas when it has them."""
    if f["mode"] == "smp":
        _print_smp_frontend(console, f)
        return
    balancer = f["balancer"]
    console.print(_frontend_table(f))
    console.print("  mode: instances (carp_frontend_mode): one Squid per row, behind the balancer")
    console.print(
        f"  balancer: {balancer['type']} ({balancer['mode']}); clients: {', '.join(f['client_networks'])}; "
        f"the wiki's 0.25-per-rule cascade would give: " + " / ".join(f"{s:.2%}" for s in f["naive_wiki_shares"])
    )
    if f["wccp"]:
        console.print(f"  WCCPv2 squid.conf lines ({f['instances'][0]['name']} speaks WCCP for the box):")
        for line in f["wccp"]["squid"]:
            console.print(f"    {line}", markup=False, highlight=False)
        console.print("  Router side (Cisco IOS), ready to paste:")
        console.print(f["wccp"]["router"], markup=False, highlight=False)


def _backend_row(host: str, i: Mapping[str, Any]) -> tuple[str, ...]:
    """One backend instance's cells, in ``BACKEND_COLUMNS`` order."""
    share = i["share"]
    sampled = "-" if share["sampled"] is None else f"{share['sampled']:.2%}"
    return (
        host,
        i["name"],
        i["peer_name"],
        f"{i['address']}:{i['port']}",
        str(i["weight"]),
        i["state"],
        f"{share['expected']:.2%}",
        sampled,
    )


def _backend_rows(backends: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    return [_backend_row(b["host"], i) for b in backends for i in b["instances"]]
