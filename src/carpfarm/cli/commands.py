"""``carpfarm``: validate, plan, route, impact and status, straight from an Ansible inventory."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import inspect
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

import carpfarm
from carpfarm.carp import cores
from carpfarm.carp.cores import Background
from carpfarm.cli.input import UsageError, check_inventory_path, check_peers, check_urls, positive_int, read_urls
from carpfarm.cli.status import PLAYBOOK, StatusError, collect, tables, unreachable
from carpfarm.inventory import load_topology
from carpfarm.model import Topology
from carpfarm.plan import Impact, impact, plan, sample_urls
from carpfarm.problems import TopologyError

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_INVALID = 2
EXIT_WARNING = 3

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_UNREACHABLE: "status: a host could not be reached or read (every layer reached is still shown), "
    "or the status playbook did not run",
    EXIT_INVALID: "invalid input: a command-line mistake (one line on stderr) or an invalid inventory "
    "(every problem listed)",
    EXIT_WARNING: "impact --strict: some URLs would move between unchanged backends (avoidable remap)",
}
INVENTORY_HELP = (
    "an Ansible inventory: a directory with hosts.yml, group_vars/ and host_vars/ "
    "(e.g. inventory/example), or one hosts file"
)
ARGUMENTS = """arguments:
  INVENTORY  an Ansible inventory: a directory with hosts.yml, group_vars/ and host_vars/
             (e.g. inventory/example), or one hosts file
  OLD, NEW   two inventories of one farm, before and after a change (impact)
  URL        an absolute http://, https:// or ftp:// URL, as a client asks the proxy for it
"""
# The progress keyword of plan.impact() is newer than some checkouts of plan.py.
_IMPACT_TAKES_PROGRESS = "progress" in inspect.signature(impact).parameters


def _exit_codes(*codes: int) -> str:
    return "exit codes:\n" + "".join(f"  {code}  {EXIT_CODES[code]}\n" for code in codes)


class _Parser(argparse.ArgumentParser):
    """argparse, reporting its errors on one line like every other command-line mistake."""

    def error(self, message: str) -> NoReturn:
        _usage_error(self.prog, f"{message} (see '{self.prog} --help')")
        raise SystemExit(EXIT_INVALID)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def _usage_error(prog: str, message: str) -> None:
    _stderr().print(Text.assemble(f"{prog}: ", ("error", "red"), f": {message}"))


def _interactive(args: argparse.Namespace) -> bool:
    """Spinners and progress bars only for a person watching stderr, never with --json."""
    return sys.stderr.isatty() and not getattr(args, "json", False)


def _busy(args: argparse.Namespace, message: str) -> contextlib.AbstractContextManager[object]:
    return _stderr().status(message) if _interactive(args) else contextlib.nullcontext()


def _version() -> str:
    try:
        return importlib.metadata.version("carpfarm")
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(carpfarm, "__version__", "unknown"))


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False, width=160 if not sys.stdout.isatty() else None)


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def _read(path: str, vcpus: int | None) -> Topology:
    check_inventory_path(path)
    return load_topology(path, vcpus=vcpus)


def _load(path: str, args: argparse.Namespace) -> Topology:
    """``_read``, with a spinner for a person watching."""
    with _busy(args, f"reading inventory {path} ..."):
        return _read(path, args.vcpus)


def _load_both(old: str, new: str, args: argparse.Namespace) -> tuple[Topology, Topology]:
    """``(_load(old), _load(new))``, with the same results and errors in the same order; NEW is
    read by a forked process meanwhile, on another core."""
    check_inventory_path(old)
    with Background(functools.partial(_read, new, args.vcpus)) as later:
        before = _load(old, args)
        with _busy(args, f"reading inventory {new} ..."):
            return before, later.result()


def _print_table(
    console: Console, title: str, columns: Mapping[str, JustifyMethod], rows: Sequence[Sequence[str | Text]]
) -> None:
    """Print a table of ``columns`` (name: justify) and ``rows``, drawn fast when it fits the console.

    Hundreds of rows take rich about a millisecond each. When no cell needs wrapping, the same
    text comes out of one row whose cells hold every line, several times faster; a table too wide
    for the console is drawn row by row, so that wrapped cells keep their rows together."""

    def empty() -> Table:
        table = Table(title=title)
        for name, justify in columns.items():
            table.add_column(name, justify=justify)
        return table

    # Each cell becomes the Text a table makes of it (markup, no highlighting), then one per column.
    cells = [[c if isinstance(c, Text) else console.render_str(c, highlight=False) for c in row] for row in rows]
    fast = empty()
    if cells:
        fast.add_row(*(Text("\n").join(row[n] for row in cells) for n in range(len(columns))))
    natural = Measurement.get(console, console.options.update_width(1 << 20), fast).maximum
    if natural <= console.options.max_width:
        console.print(fast)
        return
    table = empty()
    for row in cells:
        table.add_row(*row)
    console.print(table)


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
    data = _plan_data(topology, args)
    if args.json:
        _emit_json(data)
        return 0
    console = _console()
    for f in data["frontends"]:
        _print_frontend(console, f)
    justify: dict[str, JustifyMethod] = {
        c: "right" if c in ("weight", "share", "sampled") else "left" for c in BACKEND_COLUMNS
    }
    _print_table(console, "Backends (cache_peer order)", justify, _backend_rows(data["backends"]))
    for tip in data.get("advice", []):
        console.print(Text.assemble(("warning", "yellow"), f": {tip}"))
    return 0


FRONTEND_COLUMNS = ("instance", "port", "rule", "probability", "iptables", "share", "realised")
BACKEND_COLUMNS = ("host", "instance", "CARP peer", "address:port", "weight", "state", "share", "sampled")


def _plan_data(topology: Topology, args: argparse.Namespace) -> dict[str, Any]:
    """``plan.plan``, sampling ``--sample`` URLs (with a progress bar for a person watching)."""
    urls = sample_urls(args.sample) if args.sample is not None else None
    if urls and _interactive(args):
        with _progress("sampling CARP shares", len(urls)) as advance:
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


# URLs from which route may pass 2 s on a large farm (300 URLs on 500 x 2: about 2 s): it shows its progress.
ROUTE_PROGRESS_FROM = 200


def cmd_route(args: argparse.Namespace) -> int:
    urls = check_urls(args.urls)
    topology = _load(args.inventory, args)
    down = check_peers(args.down, [i.peer_name for i in topology.backend_instances], args.inventory)
    if _interactive(args) and len(urls) >= ROUTE_PROGRESS_FROM:
        with _progress("routing URLs", len(urls)) as advance:
            chosen_all = topology.routes(urls, down=down, progress=advance)
    else:
        chosen_all = topology.routes(urls, down=down)
    rows: list[dict[str, Any]] = []
    for url, chosen in zip(urls, chosen_all, strict=True):
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


@contextlib.contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, advanced by calling what it yields with (done, total)."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # Redrawn on each report, without a refresh thread: the CARP batch forks its workers meanwhile.
    with Progress(*columns, console=_stderr(), transient=True, auto_refresh=False) as bar:
        task = bar.add_task(label, total=total)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, refresh=True)

        yield advance


def _impact(old: Topology, new: Topology, urls: list[str], show_progress: bool) -> Impact:
    """``plan.impact``, drawing a progress bar on stderr when asked and ``impact`` can report progress."""
    if not (show_progress and _IMPACT_TAKES_PROGRESS):
        return impact(old, new, urls)
    with _progress("routing URLs", len(urls)) as advance:
        with_progress: Callable[..., Impact] = impact
        return with_progress(old, new, urls, progress=advance)


def cmd_impact(args: argparse.Namespace) -> int:
    urls = read_urls(args.urls_file) if args.urls_file else sample_urls(args.sample)
    old, new = _load_both(args.old, args.new, args)
    result = _impact(old, new, urls, _interactive(args))
    if args.json:
        _emit_json(result.as_dict())
    else:
        console = _console()
        counts = ("before", "after", "lost", "gained")
        rows = []
        for name, row in result.per_peer.items():
            mark = " *" if name in result.changed_peers else ""
            rows.append((Text(name + mark), *(Text(f"{row[k] / result.urls:.2%}") for k in counts)))
        columns: dict[str, JustifyMethod] = {"CARP peer": "left", **dict.fromkeys(counts, "right")}
        _print_table(console, f"Impact over {result.urls} URLs", columns, rows)
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
            console.print(Text.assemble(("warning", "yellow"), f": {tip}"))
    return EXIT_WARNING if result.collateral and args.strict else 0


def cmd_status(args: argparse.Namespace) -> int:
    _load(args.inventory, args)  # a bad inventory is refused before Ansible reaches any host
    try:
        with _busy(args, f"running {PLAYBOOK} on {args.inventory} ..."):
            data = collect(args.inventory, args.ansible_args)
    except StatusError as exc:
        _stderr().print(Text.assemble(("error", "red"), f": {exc}"))
        return EXIT_UNREACHABLE
    if args.json:
        _emit_json(data)
    else:
        console = _console()
        for table in tables(data):
            console.print(table)
    lost = unreachable(data)
    if not lost:
        return EXIT_OK
    hosts = len({*data.get("backends", {}), *data.get("frontends", {})})
    _stderr().print(Text.assemble(("error", "red"), f": {len(lost)} of {hosts} host(s) UNREACHABLE: {', '.join(lost)}"))
    return EXIT_UNREACHABLE


def _subcommand(
    sub: argparse._SubParsersAction[_Parser],
    name: str,
    summary: str,
    codes: Sequence[int],
    common: _Parser,
) -> _Parser:
    """A subcommand whose --help ends with the exit codes it can return."""
    return sub.add_parser(
        name,
        parents=[common],
        help=summary,
        description=summary,
        epilog=_exit_codes(*codes),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="carpfarm",
        description="carpfarm: validate, plan, route, impact and status, straight from an Ansible inventory.",
        epilog=ARGUMENTS + "\n" + _exit_codes(*EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    common.add_argument(
        "--vcpus",
        type=positive_int,
        default=None,
        help="vCPU count to assume for 'carp_frontend_instances: auto' (facts are not gathered here)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _subcommand(sub, "validate", "check an inventory; exit 2 with every problem", [0, 2], common)
    p.add_argument("inventory", metavar="INVENTORY", help=INVENTORY_HELP)
    p.set_defaults(func=cmd_validate)

    p = _subcommand(sub, "plan", "show every layer, port, balancer rule and CARP share", [0, 2], common)
    p.add_argument("inventory", metavar="INVENTORY", help=INVENTORY_HELP)
    p.add_argument("--sample", type=positive_int, default=None, help="URLs to sample for CARP shares (default: auto)")
    p.set_defaults(func=cmd_plan)

    p = _subcommand(sub, "route", "which backend instance serves each URL", [0, 2], common)
    p.add_argument("inventory", metavar="INVENTORY", help=INVENTORY_HELP)
    p.add_argument("urls", nargs="+", metavar="URL", help="an absolute http://, https:// or ftp:// URL")
    p.add_argument(
        "--down",
        action="append",
        default=[],
        metavar="PEER",
        help="treat this CARP peer (e.g. cache1-backend1) as down; repeatable",
    )
    p.set_defaults(func=cmd_route)

    p = _subcommand(sub, "impact", "fraction of URLs that change backend between inventories", [0, 2, 3], common)
    p.add_argument("old", metavar="OLD", help="the inventory as it is now")
    p.add_argument("new", metavar="NEW", help="the inventory as it will be after the change")
    p.add_argument("--sample", type=positive_int, default=5000, help="number of sample URLs (default 5000)")
    p.add_argument("--urls-file", metavar="FILE", help="one URL per line, instead of the sample")
    p.add_argument("--strict", action="store_true", help=f"exit {EXIT_WARNING} when some remap was avoidable")
    p.set_defaults(func=cmd_impact)

    p = _subcommand(
        sub, "status", "each layer's counters, read on the hosts by playbooks/status.yml", [0, 1, 2], common
    )
    p.add_argument("inventory", metavar="INVENTORY", help=INVENTORY_HELP)
    p.add_argument("ansible_args", nargs="*", metavar="ANSIBLE_ARG", help="passed to ansible-playbook (after --)")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    cores.allow_forking()  # the CLI owns its process: its long computations may use every core
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's error (already printed on one line)
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except UsageError as exc:
        _usage_error(f"carpfarm {args.command}", str(exc))
        return EXIT_INVALID
    except TopologyError as exc:
        if getattr(args, "json", False):
            _emit_json({"valid": False, "problems": [p.as_dict() for p in exc.problems]})
        else:
            console = Console(stderr=True, highlight=False, soft_wrap=True)
            console.print(Text.assemble(("error", "red"), f": {exc.args[0].splitlines()[0]}"))
            for problem in exc.problems:
                console.print(f"  - {problem}", markup=False)
        return EXIT_INVALID


if __name__ == "__main__":
    raise SystemExit(main())
