"""``carpfarm route``: which backend instance serves each URL, as Squid 5.7 picks it."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from carpfarm.cli.common import emit_json, interactive, load, progress_bar, stdout
from carpfarm.cli.input import check_peers, check_urls

# URLs from which route may pass 2 s on a large farm (300 URLs on 500 x 2: about 2 s): it shows its progress.
ROUTE_PROGRESS_FROM = 200


def cmd_route(args: argparse.Namespace) -> int:
    urls = check_urls(args.urls)
    topology = load(args.inventory, args)
    down = check_peers(args.down, [i.peer_name for i in topology.backend_instances], args.inventory)
    if interactive(args) and len(urls) >= ROUTE_PROGRESS_FROM:
        with progress_bar("routing URLs", len(urls)) as advance:
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
        emit_json(rows)
        return 0
    table = Table(title="CARP route (as Squid 5.7 picks)")
    for column in ("URL", "backend instance", "address:port"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["url"], r["peer_name"] or "[red]none usable[/]", f"{r['address']}:{r['port']}" if r["address"] else "-"
        )
    stdout().print(table)
    return 0
