"""``carpfarm``: validate, plan, route, impact and status, straight from an Ansible inventory."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from carpfarm.inventory import load_topology
from carpfarm.model import Topology
from carpfarm.plan import impact, plan, sample_urls
from carpfarm.problems import TopologyError
from carpfarm.status import StatusError, collect, tables

EXIT_INVALID = 2
EXIT_WARNING = 3


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False, width=160 if not sys.stdout.isatty() else None)


def _emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def _load(path: str, args: argparse.Namespace) -> Topology:
    return load_topology(path, vcpus=args.vcpus)


def cmd_validate(args: argparse.Namespace) -> int:
    topology = _load(args.inventory, args)
    summary = {
        "valid": True,
        "frontend_hosts": len(topology.frontends),
        "frontend_instances": len(topology.frontend_instances),
        "backend_hosts": len(topology.backends),
        "backend_instances": len(topology.backend_instances),
        "drained_instances": len(topology.drained_peers),
    }
    if args.json:
        _emit_json(summary)
    else:
        _console().print(
            f"[green]valid[/]: {summary['frontend_hosts']} CARP box(es) with {summary['frontend_instances']} "
            f"frontend instance(s); {summary['backend_hosts']} backend host(s) with "
            f"{summary['backend_instances']} instance(s), {summary['drained_instances']} drained"
        )
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    topology = _load(args.inventory, args)
    urls = sample_urls(args.sample) if args.sample is not None else None
    data = plan(topology, urls)
    if args.json:
        _emit_json(data)
        return 0
    console = _console()
    for f in data["frontends"]:
        auto = f" (auto, {f['vcpus']} vCPU)" if f["instances_setting"] == "auto" and f["vcpus"] else ""
        if f["instances_setting"] == "auto" and not f["vcpus"]:
            auto = " (auto: vCPUs unknown without facts, showing 1; pass --vcpus N)"
        table = Table(title=f"Frontend {f['host']} ({f['address']}), clients on :{f['listen_port']}{auto}")
        for column in ("instance", "port", "rule", "probability", "iptables", "share", "realised"):
            table.add_column(column, justify="right" if column not in ("instance",) else "left")
        balancer = f["balancer"]
        for inst, rule in zip(f["instances"], balancer["cascade"], strict=True):
            match = (
                "rest"
                if rule["last"]
                else (f"nth every {rule['every']}" if balancer["mode"] == "roundrobin" else "random")
            )
            table.add_row(
                inst["name"],
                str(inst["port"]),
                match,
                f"{rule['probability']:.6f}",
                "-" if rule["last"] else rule["iptables_probability"],
                f"{rule['share']:.4%}",
                f"{rule['realised_share']:.6%}",
            )
        console.print(table)
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
    table = Table(title="Backends (cache_peer order)")
    for column in ("host", "instance", "CARP peer", "address:port", "weight", "state", "share", "sampled"):
        table.add_column(column, justify="right" if column in ("weight", "share", "sampled") else "left")
    for b in data["backends"]:
        for i in b["instances"]:
            share = i["share"]
            sampled = "-" if share["sampled"] is None else f"{share['sampled']:.2%}"
            table.add_row(
                b["host"],
                i["name"],
                i["peer_name"],
                f"{i['address']}:{i['port']}",
                str(i["weight"]),
                i["state"],
                f"{share['expected']:.2%}",
                sampled,
            )
    console.print(table)
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    topology = _load(args.inventory, args)
    rows = []
    for url in args.urls:
        chosen = topology.route(url, down=args.down)
        rows.append(
            {
                "url": url,
                "peer_name": chosen.peer_name if chosen else None,
                "host": chosen.host if chosen else None,
                "instance": chosen.name if chosen else None,
                "address": chosen.address if chosen else None,
                "port": chosen.port if chosen else None,
            }
        )
    if args.json:
        _emit_json(rows)
        return 0
    table = Table(title="CARP route (as Squid 5.7 picks)")
    for column in ("URL", "backend instance", "address:port"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["url"], r["peer_name"] or "[red]none usable[/]", f"{r['address']}:{r['port']}" if r["address"] else "-"
        )
    _console().print(table)
    return 0


def cmd_impact(args: argparse.Namespace) -> int:
    old, new = _load(args.old, args), _load(args.new, args)
    urls: list[str]
    if args.urls_file:
        with open(args.urls_file, encoding="utf-8") as handle:
            urls = [line.strip() for line in handle if line.strip()]
    else:
        urls = sample_urls(args.sample)
    result = impact(old, new, urls)
    if args.json:
        _emit_json(result.as_dict())
    else:
        console = _console()
        table = Table(title=f"Impact over {result.urls} URLs")
        for column in ("CARP peer", "before", "after", "lost", "gained"):
            table.add_column(column, justify="left" if column == "CARP peer" else "right")
        for name, row in result.per_peer.items():
            mark = " *" if name in result.changed_peers else ""
            table.add_row(name + mark, *(f"{row[k] / result.urls:.2%}" for k in ("before", "after", "lost", "gained")))
        console.print(table)
        console.print(
            f"moved: {result.moved_fraction:.2%} of URLs; caused by changed peers (*): "
            f"{result.necessary_fraction:.2%}; avoidable: {result.collateral_fraction:.2%}"
        )
        if result.moved_if_drained_fraction is not None:
            console.print(
                f"deleting {', '.join(result.deleted_peers)} moves {result.moved_fraction:.2%} of URLs; "
                f"draining instead (state: drained) would move {result.moved_if_drained_fraction:.2%}"
            )
        for tip in result.advice:
            console.print(f"[yellow]warning[/]: {tip}")
    return EXIT_WARNING if result.collateral and args.strict else 0


def cmd_status(args: argparse.Namespace) -> int:
    _load(args.inventory, args)  # a bad inventory is refused before Ansible reaches any host
    try:
        data = collect(args.inventory, args.ansible_args)
    except StatusError as exc:
        Console(stderr=True, highlight=False).print(f"[red]error[/]: {exc}", markup=True)
        return 1
    if args.json:
        _emit_json(data)
        return 0
    console = _console()
    for table in tables(data):
        console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carpfarm", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    common.add_argument(
        "--vcpus",
        type=int,
        default=None,
        help="vCPU count to assume for 'carp_frontend_instances: auto' (facts are not gathered here)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", parents=[common], help="check an inventory; exit 2 with every problem")
    p.add_argument("inventory")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", parents=[common], help="show every layer, port, balancer rule and CARP share")
    p.add_argument("inventory")
    p.add_argument("--sample", type=int, default=None, help="URLs to sample for CARP shares (default: auto)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("route", parents=[common], help="which backend instance serves each URL")
    p.add_argument("inventory")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("--down", action="append", default=[], metavar="PEER", help="treat a CARP peer as down")
    p.set_defaults(func=cmd_route)

    p = sub.add_parser("impact", parents=[common], help="fraction of URLs that change backend between inventories")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--sample", type=int, default=5000, help="number of sample URLs (default 5000)")
    p.add_argument("--urls-file", help="one URL per line, instead of the sample")
    p.add_argument("--strict", action="store_true", help=f"exit {EXIT_WARNING} when some remap was avoidable")
    p.set_defaults(func=cmd_impact)

    p = sub.add_parser(
        "status", parents=[common], help="each layer's counters, read on the hosts by playbooks/status.yml"
    )
    p.add_argument("inventory")
    p.add_argument("ansible_args", nargs="*", metavar="ANSIBLE_ARG", help="passed to ansible-playbook (after --)")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TopologyError as exc:
        if getattr(args, "json", False):
            _emit_json({"valid": False, "problems": [p.as_dict() for p in exc.problems]})
        else:
            console = Console(stderr=True, highlight=False, soft_wrap=True)
            console.print(f"[red]error[/]: {exc.args[0].splitlines()[0]}", markup=True)
            for problem in exc.problems:
                console.print(f"  - {problem}", markup=False)
        return EXIT_INVALID


if __name__ == "__main__":
    raise SystemExit(main())
