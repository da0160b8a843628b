"""``carpfarm status``: run ``playbooks/status.yml`` and show its data as one table per layer.

The counters are read by Ansible on each host, from localhost (see the playbook);
this module only finds the playbook, runs it and renders what it wrote. A host the
playbook could not reach or read is in that data as ``{"unreachable": REASON, "squids": []}``,
so the layers it did reach are still shown.

``python -m carpfarm.status FILE`` (or ``-`` for stdin) prints that data as plain tables;
the playbook shows its own result that way.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

PLAYBOOK = Path("playbooks") / "status.yml"


class StatusError(RuntimeError):
    """The status playbook could not run or collect the counters."""


def find_playbook(start: Path | None = None) -> Path:
    """``playbooks/status.yml`` of the carpfarm checkout: $CARPFARM_HOME, the cwd, or this package's."""
    candidates = [Path(os.environ["CARPFARM_HOME"])] if os.environ.get("CARPFARM_HOME") else []
    candidates += [start or Path.cwd(), Path(__file__).resolve().parents[2]]
    for root in candidates:
        if (root / PLAYBOOK).is_file():
            return root / PLAYBOOK
    raise StatusError(f"{PLAYBOOK} not found; run from the carpfarm checkout or set CARPFARM_HOME")


def collect(inventory: str, extra_args: Sequence[str] = ()) -> dict[str, Any]:
    """Run the status playbook against ``inventory`` and return the data it wrote.

    Hosts it could not reach are marked in the data, not raised: only a playbook that
    wrote nothing is a ``StatusError``.
    """
    playbook = find_playbook()
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(playbook.parents[1] / "ansible.cfg"))
    with tempfile.TemporaryDirectory(prefix="carpfarm-status-") as tmp:
        out = Path(tmp) / "status.json"
        argv = [str(ansible_playbook), "-i", inventory, str(playbook), "-e", f"carpfarm_status_file={out}", *extra_args]
        run = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if not out.is_file():
            tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-25:])
            raise StatusError(f"status playbook failed (exit {run.returncode}):\n{tail}")
        data: dict[str, Any] = json.loads(out.read_text())
        return data


def unreachable(data: dict[str, Any]) -> dict[str, str]:
    """Host -> why the playbook got no counters from it, in the data's order."""
    lost: dict[str, str] = {}
    for layer in ("backends", "frontends"):
        for host, status in data.get(layer, {}).items():
            if "unreachable" in status:
                lost.setdefault(host, str(status["unreachable"]))
    return lost


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1%}"


def _red(text: str) -> Text:
    return Text(text, style="red")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def tables(data: dict[str, Any]) -> list[Table]:
    """One table per layer: backends, frontends (with the peers each sees), balancers;
    then the hosts that could not be read, with Ansible's reason."""
    backends = Table(title="Caching backends")
    for column in ("instance", "requests", "hits", "hit ratio", "objects", "connections"):
        backends.add_column(column, justify="left" if column == "instance" else "right")
    for host, status in data.get("backends", {}).items():
        if "unreachable" in status:
            backends.add_row(host, _red("UNREACHABLE"), "", "", "", "")
        for s in status.get("squids", []):
            if "error" in s:
                backends.add_row(f"{host}/{s['name']}", _red(s["error"]), "", "", "", "")
                continue
            objects = "-" if s.get("objects") is None else str(s["objects"])
            backends.add_row(
                f"{host}/{s['name']}",
                str(s["requests"]),
                str(s["hits"]),
                _percent(s["hit_ratio"]),
                objects,
                str(s["connections"]),
            )

    frontends = Table(title="CARP frontends")
    for column in ("instance", "requests", "connections", "peers up", "peers down"):
        frontends.add_column(column, justify="right" if column in ("requests", "connections", "peers up") else "left")
    balancers = Table(title="Frontend balancers")
    for column in ("box", "type", "target", "count"):
        balancers.add_column(column, justify="right" if column == "count" else "left")
    for host, status in data.get("frontends", {}).items():
        if "unreachable" in status:
            frontends.add_row(host, _red("UNREACHABLE"), "", "", "")
            balancers.add_row(host, "?", _red("UNREACHABLE"), "")
        for s in status.get("squids", []):
            if "error" in s:
                frontends.add_row(f"{host}/{s['name']}", _red(s["error"]), "", "", "")
                continue
            peers = s.get("peers", [])
            down = [p["name"] for p in peers if p["status"] != "Up"]
            frontends.add_row(
                f"{host}/{s['name']}",
                str(s["requests"]),
                str(s["connections"]),
                str(len(peers) - len(down)),
                ", ".join(down) or "none",
            )
        balancer = status.get("balancer", {})
        if "error" in balancer:
            balancers.add_row(host, balancer.get("type", "?"), _red(balancer["error"]), "")
        for rule in balancer.get("rules", []):
            count = (
                f"{rule['packets']} packets"
                if rule.get("packets") is not None
                else f"{rule.get('sessions', 0)} sessions ({rule.get('status', '?')})"
            )
            balancers.add_row(host, balancer["type"], str(rule["target"]), count)
    lost = unreachable(data)
    if not lost:
        return [backends, frontends, balancers]
    hosts = Table(title="Unreachable hosts (their counters are missing above)")
    for column in ("host", "state", "reason"):
        hosts.add_column(column)
    for host, reason in lost.items():
        hosts.add_row(host, _red("UNREACHABLE"), _one_line(reason))
    return [backends, frontends, balancers, hosts]


def render_text(data: dict[str, Any], width: int = 140) -> str:
    """The tables as plain ASCII text, for Ansible's output (no colour, no box-drawing characters)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False, emoji=False)
    for table in tables(data):
        table.box = box.ASCII
        console.print(table)
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m carpfarm.status FILE|-``: print the playbook's data as tables."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m carpfarm.status FILE|-  (the JSON playbooks/status.yml collects)\n")
        return 2
    text = sys.stdin.read() if args[0] == "-" else Path(args[0]).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    sys.stdout.write(render_text(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
