"""``carpfarm status``: run ``playbooks/status.yml`` and show its data as one table per layer.

The counters are read by Ansible on each host, from localhost (see the playbook);
this module only finds the playbook, runs it and renders what it wrote (``cmd_status``, the
command, refuses a bad inventory before Ansible reaches any host). A host the
playbook could not reach or read is in that data as ``{"unreachable": REASON, "squids": []}``,
so the layers it did reach are still shown.

``python -m carpfarm.cli.status FILE`` (or ``-`` for stdin) prints that data as plain tables;
the playbook shows its own result that way.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from carpfarm.cli.common import EXIT_OK, EXIT_UNREACHABLE, busy, emit_json, load, stderr, stdout, unlock_vault
from carpfarm.cli.input import UsageError

PLAYBOOK = Path("playbooks") / "status.yml"


class StatusError(RuntimeError):
    """The status playbook could not run or collect the counters."""


def find_playbook(start: Path | None = None) -> Path:
    """``playbooks/status.yml`` of the carpfarm checkout: $CARPFARM_HOME, the cwd, or this package's."""
    candidates = [Path(os.environ["CARPFARM_HOME"])] if os.environ.get("CARPFARM_HOME") else []
    candidates += [start or Path.cwd(), Path(__file__).resolve().parents[3]]
    for root in candidates:
        if (root / PLAYBOOK).is_file():
            return root / PLAYBOOK
    raise StatusError(f"{PLAYBOOK} not found; run from the carpfarm checkout or set CARPFARM_HOME")


def playbook_args(args: argparse.Namespace) -> list[str]:
    """What ``carpfarm status`` passes to ansible-playbook: --limit (with localhost, whose play
    writes the data), each --vault-password-file, then the arguments after ``--``."""
    passed = list(args.ansible_args)
    if any(a in ("-l", "--limit") or a.startswith(("-l", "--limit=")) for a in passed):
        raise UsageError(
            f"give the limit as 'carpfarm status {args.inventory} --limit PATTERN', not after '--': "
            "status adds localhost, where the tables are made"
        )
    limit = ["--limit", f"{args.limit},localhost"] if args.limit else []
    vault = [arg for file in args.vault_password_files for arg in ("--vault-password-file", file)]
    return [*limit, *vault, *passed]


@contextlib.contextmanager
def _password_pipe(password: bytes) -> Iterator[int]:
    """The read end of a pipe holding ``password``, for ansible-playbook to read as a vault
    password file (/dev/fd/N): the password typed at carpfarm's prompt is not asked for again,
    and is never on disk or in the environment."""
    read, write = os.pipe()
    try:
        with os.fdopen(write, "wb") as pipe:  # a password is far smaller than a pipe's buffer
            pipe.write(password + b"\n")
        yield read
    finally:
        os.close(read)


def collect(inventory: str, extra_args: Sequence[str] = (), vault_password: bytes | None = None) -> dict[str, Any]:
    """Run the status playbook against ``inventory`` and return the data it wrote; the vault
    password typed at carpfarm's prompt, if any, is handed on through a pipe.

    Hosts it could not reach are marked in the data, not raised: only a playbook that
    wrote nothing is a ``StatusError``.
    """
    playbook = find_playbook()
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(playbook.parents[1] / "ansible.cfg"))
    with tempfile.TemporaryDirectory(prefix="carpfarm-status-") as tmp, contextlib.ExitStack() as stack:
        fds = [] if vault_password is None else [stack.enter_context(_password_pipe(vault_password))]
        out = Path(tmp) / "status.json"
        argv = [str(ansible_playbook), "-i", inventory, str(playbook), "-e", f"carpfarm_status_file={out}"]
        argv += [arg for fd in fds for arg in ("--vault-password-file", f"/dev/fd/{fd}")]
        run = subprocess.run([*argv, *extra_args], capture_output=True, text=True, env=env, check=False, pass_fds=fds)
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


def _table(title: str, columns: Sequence[str], right: Collection[str] = ()) -> Table:
    """An empty table of ``columns``, those in ``right`` right-justified (numbers)."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


Row = tuple[str | Text, ...]


def _backend_rows(host: str, status: dict[str, Any]) -> Iterator[Row]:
    """A backend host's rows: UNREACHABLE, or one per Squid (its error, or its counters)."""
    if "unreachable" in status:
        yield (host, _red("UNREACHABLE"), "", "", "", "")
    for s in status.get("squids", []):
        if "error" in s:
            yield (f"{host}/{s['name']}", _red(s["error"]), "", "", "", "")
            continue
        objects = "-" if s.get("objects") is None else str(s["objects"])
        yield (
            f"{host}/{s['name']}",
            str(s["requests"]),
            str(s["hits"]),
            _percent(s["hit_ratio"]),
            objects,
            str(s["connections"]),
        )


def _frontend_rows(host: str, status: dict[str, Any]) -> Iterator[Row]:
    """A CARP box's rows: UNREACHABLE, or one per Squid (its error, or its counters and peers)."""
    if "unreachable" in status:
        yield (host, _red("UNREACHABLE"), "", "", "")
    for s in status.get("squids", []):
        if "error" in s:
            yield (f"{host}/{s['name']}", _red(s["error"]), "", "", "")
            continue
        peers = s.get("peers", [])
        down = [p["name"] for p in peers if p["status"] != "Up"]
        yield (
            f"{host}/{s['name']}",
            str(s["requests"]),
            str(s["connections"]),
            str(len(peers) - len(down)),
            ", ".join(down) or "none",
        )


def _rule_count(rule: dict[str, Any]) -> str:
    """What a balancer rule has counted: packets (kernel rules) or sessions (HAProxy)."""
    if rule.get("packets") is not None:
        return f"{rule['packets']} packets"
    return f"{rule.get('sessions', 0)} sessions ({rule.get('status', '?')})"


def _balancer_rows(host: str, status: dict[str, Any]) -> Iterator[Row]:
    """A CARP box's balancer: UNREACHABLE, its error, and one row per rule."""
    if "unreachable" in status:
        yield (host, "?", _red("UNREACHABLE"), "")
    balancer = status.get("balancer", {})
    if "error" in balancer:
        yield (host, balancer.get("type", "?"), _red(balancer["error"]), "")
    for rule in balancer.get("rules", []):
        yield (host, balancer["type"], str(rule["target"]), _rule_count(rule))


def _health_rows(host: str, status: dict[str, Any]) -> Iterator[Row]:
    """A CARP box's frontend instances as carpfarm-watch sees them (kernel balancers with the watch)."""
    watch = status.get("balancer", {}).get("watch")
    if not watch:
        return
    if watch.get("error"):
        yield (host, "", _red(str(watch["error"])), "")
    for i in watch.get("instances") or []:
        health = "up" if i["healthy"] else _red("DOWN")
        rules = "held out" if i.get("held") else ("yes" if i.get("live") else _red("no"))
        yield (host, str(i["port"]), health, rules)
    if watch.get("fallback"):
        yield (host, "", _red("fallback"), str(watch["fallback"]))


def _layer_table(table: Table, layer: dict[str, Any], rows: Callable[[str, dict[str, Any]], Iterator[Row]]) -> Table:
    """``table`` with the rows of every host of a layer (host -> status), in the data's order."""
    for host, status in layer.items():
        for row in rows(host, status):
            table.add_row(*row)
    return table


def tables(data: dict[str, Any]) -> list[Table]:
    """One table per layer: backends, frontends (with the peers each sees), balancers;
    then the hosts that could not be read, with Ansible's reason."""
    backends = _table(
        "Caching backends",
        ("instance", "requests", "hits", "hit ratio", "objects", "connections"),
        right=("requests", "hits", "hit ratio", "objects", "connections"),
    )
    frontends = _table(
        "CARP frontends",
        ("instance", "requests", "connections", "peers up", "peers down"),
        right=("requests", "connections", "peers up"),
    )
    balancers = _table("Frontend balancers", ("box", "type", "target", "count"), right=("count",))
    health = _table("Frontend health (carpfarm-watch)", ("box", "instance port", "health", "in the rules"))
    found = [
        _layer_table(backends, data.get("backends", {}), _backend_rows),
        _layer_table(frontends, data.get("frontends", {}), _frontend_rows),
        _layer_table(balancers, data.get("frontends", {}), _balancer_rows),
    ]
    if any(s.get("balancer", {}).get("watch") for s in data.get("frontends", {}).values()):
        found.append(_layer_table(health, data.get("frontends", {}), _health_rows))
    lost = unreachable(data)
    return [*found, _unreachable_table(lost)] if lost else found


def _unreachable_table(lost: dict[str, str]) -> Table:
    """The hosts the playbook could not read, with Ansible's reason on one line."""
    hosts = _table("Unreachable hosts (their counters are missing above)", ("host", "state", "reason"))
    for host, reason in lost.items():
        hosts.add_row(host, _red("UNREACHABLE"), _one_line(reason))
    return hosts


def render_text(data: dict[str, Any], width: int = 140) -> str:
    """The tables as plain ASCII text, for Ansible's output (no colour, no box-drawing characters)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False, emoji=False)
    for table in tables(data):
        table.box = box.ASCII
        console.print(table)
    return buffer.getvalue()


def cmd_status(args: argparse.Namespace) -> int:
    passed = playbook_args(args)
    load(args.inventory, args)  # a bad inventory is refused before Ansible reaches any host
    try:
        with busy(args, f"running {PLAYBOOK} on {args.inventory} ..."):
            data = collect(args.inventory, passed, vault_password=unlock_vault(args))
    except StatusError as exc:
        stderr().print(Text.assemble(("error", "red"), f": {exc}"))
        return EXIT_UNREACHABLE
    if args.json:
        emit_json(data)
    else:
        console = stdout()
        for table in tables(data):
            console.print(table)
    lost = unreachable(data)
    if not lost:
        return EXIT_OK
    hosts = len({*data.get("backends", {}), *data.get("frontends", {})})
    stderr().print(Text.assemble(("error", "red"), f": {len(lost)} of {hosts} host(s) UNREACHABLE: {', '.join(lost)}"))
    return EXIT_UNREACHABLE


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m carpfarm.cli.status FILE|-``: print the playbook's data as tables."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m carpfarm.cli.status FILE|-  (the JSON playbooks/status.yml collects)\n")
        return 2
    text = sys.stdin.read() if args[0] == "-" else Path(args[0]).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    sys.stdout.write(render_text(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
