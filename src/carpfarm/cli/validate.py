"""``carpfarm validate``: check an inventory and count what it describes."""

from __future__ import annotations

import argparse

from carpfarm.cli.common import emit_json, load, stdout


def cmd_validate(args: argparse.Namespace) -> int:
    topology = load(args.inventory, args)
    summary = {
        "valid": True,
        "frontend_hosts": len(topology.frontends),
        "frontend_instances": len(topology.frontend_instances),
        "backend_hosts": len(topology.backends),
        "backend_instances": len(topology.backend_instances),
        "drained_instances": len(topology.drained_peers),
    }
    if args.json:
        emit_json(summary)
    else:
        stdout().print(
            f"[green]valid[/]: {summary['frontend_hosts']} CARP box(es) with {summary['frontend_instances']} "
            f"frontend instance(s); {summary['backend_hosts']} backend host(s) with "
            f"{summary['backend_instances']} instance(s), {summary['drained_instances']} drained"
        )
    return 0
