"""``carpfarm plan``: every layer, port, balancer rule and CARP share, one table per CARP box (with
its balancer's rules in the balancer's own terms, carpfarm-watch, and the floating address it shares),
one of the backends and one of their caches."""

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

# An iptables box's table; an nftables or HAProxy box's has the instance, its port, its part of the
# balancer's configuration (balancer_config's column) and its share.
FRONTEND_COLUMNS = ("instance", "port", "rule", "probability", "iptables", "share", "realised")
BACKEND_COLUMNS = ("host", "instance", "CARP peer", "address:port", "weight", "state", "share", "sampled")
CACHE_COLUMNS = ("host", "instance", "cache_type", "cache_dir", "cache_size_mb", "cache_mem_mb")


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
    cache_justify: dict[str, JustifyMethod] = {c: "right" if c.endswith("_mb") else "left" for c in CACHE_COLUMNS}
    print_table(console, "Backend caches (cache_dir, cache_mem)", cache_justify, _cache_rows(data["backends"]))
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


def _title(f: Mapping[str, Any]) -> str:
    return f"Frontend {f['host']} ({f['address']}), clients on :{f['listen_port']}{_auto_note(f)}"


def _frontend_table(f: Mapping[str, Any]) -> Table:
    """One CARP box's instances and the balancer rule that feeds each, in the balancer's own terms."""
    if f["balancer_config"]["type"] != "iptables":
        return _config_table(f)
    table = Table(title=_title(f))
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


def _config_table(f: Mapping[str, Any]) -> Table:
    """An nftables or HAProxy box's instances: each one's numgen key or server line, and its share."""
    config = f["balancer_config"]
    title = _title(f)
    table = Table(title=title, min_width=len(title))  # narrower than its title: keep the title on one line
    for column in ("instance", "port", config["column"], "share"):
        table.add_column(column, justify="right" if column in ("port", "share") else "left")
    cells = zip(f["instances"], config["per_instance"], f["balancer"]["cascade"], strict=True)
    for inst, cell, rule in cells:
        table.add_row(inst["name"], str(inst["port"]), Text(cell), f"{rule['share']:.4%}")
    return table


def _print_smp_frontend(console: Console, f: Mapping[str, Any]) -> None:
    """A CARP box in smp mode: its one Squid, its workers and their cores."""
    affinity = f["cpu_affinity_map"] or "none (vCPUs unknown without facts: the kernel places the workers)"
    console.print(
        f"{_title(f)}\n"
        f"  mode: smp: one Squid ({f['instances'][0]['name']}) with {f['workers']} workers sharing "
        f":{f['listen_port']}, no balancer; cpu_affinity_map: {affinity}\n"
        f"  clients: {', '.join(f['client_networks'])}"
    )


def _balancer_lines(f: Mapping[str, Any]) -> list[str]:
    """What the table does not say of the balancer: its type, mode and clients, its rules' whole form,
    and whether carpfarm-watch keeps them."""
    balancer, config = f["balancer"], f["balancer_config"]
    line = f"  balancer: {balancer['type']} ({balancer['mode']}); clients: {', '.join(f['client_networks'])}"
    lines = []
    if config["type"] == "iptables":
        shares = " / ".join(f"{s:.2%}" for s in f["naive_wiki_shares"])
        lines.append(f"{line}; the wiki's 0.25-per-rule cascade would give: {shares}")
    elif config["type"] == "nftables":
        lines += [line, f"  nftables: tcp dport {balancer['listen_port']} redirect to :{config['lines'][0]}"]
    else:
        lines += [line, f"  haproxy.cfg backend carp_frontends: {config['lines'][0]}, over the server lines above"]
    if f["watch"] is not None:
        lines.append(
            "  carpfarm-watch: on (frontend_balancer_watch): probes every instance and keeps the rules on those "
            "that answer"
            if f["watch"]
            else "  carpfarm-watch: off (frontend_balancer_watch: false): the rules keep every instance, answering "
            "or not"
        )
    return lines


def _vip_line(f: Mapping[str, Any]) -> str | None:
    """The floating address a box shares and every box of its group with its VRRP priority."""
    vip = f["vip"]
    if vip is None:
        return None
    members = ", ".join(
        f"{m['host']} priority {m['priority']}" + (" (this box)" if m["host"] == f["host"] else "")
        for m in vip["members"]
    )
    preempt = "preempt" if vip["preempt"] else "no preempt"
    return f"  floating address (carpfarm_vip): {vip['cidr']}, VRRP id {vip['vrrp_id']}, {preempt}: {members}"


def _print_frontend(console: Console, f: Mapping[str, Any]) -> None:
    """A CARP box's table, its balancer and clients, its floating address, and its WCCPv2 stanzas when
    it has them."""
    vip = _vip_line(f)
    if f["mode"] == "smp":
        _print_smp_frontend(console, f)
    elif f["mode"] == "haproxy":
        how = (
            "Squid's CARP choice, in a Lua fetch (no remap against Squid frontends)"
            if f["haproxy_selection"] == "carp"
            else "HAProxy's consistent URI hash (balance uri whole)"
        )
        console.print(
            f"  {f['host']}: mode haproxy (carp_frontend_mode): one HAProxy in HTTP mode on :{f['listen_port']}, "
            f"one thread per vCPU ({f['vcpus'] or 'unknown until facts'}), no frontend Squid; it picks the backend "
            f"by {f['haproxy_selection']} (carp_frontend_haproxy_selection): {how}",
            markup=False,
            highlight=False,
        )
        console.print(f"  clients: {', '.join(f['client_networks'])}", markup=False, highlight=False)
    else:
        console.print(_frontend_table(f))
        console.print("  mode: instances (carp_frontend_mode): one Squid per row, behind the balancer")
        for line in _balancer_lines(f):
            console.print(line, markup=False, highlight=False)
    if vip:
        console.print(vip, markup=False, highlight=False)
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


def _cache_rows(backends: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """Each backend instance's cache, in ``CACHE_COLUMNS`` order."""
    return [
        (b["host"], i["name"], i["cache_type"], i["cache_dir"] or "-", str(i["cache_size_mb"]), str(i["cache_mem_mb"]))
        for b in backends
        for i in b["instances"]
    ]
