"""What every ``carpfarm`` command shares: its exit codes, its consoles, reading inventories, and
tables and progress bars drawn fast."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from carpfarm.carp.cores import Background
from carpfarm.cli.input import check_inventory_path
from carpfarm.inventory import load_topology, use_vault
from carpfarm.model import Topology
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


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=False, width=160 if not sys.stdout.isatty() else None)


def usage_error(prog: str, message: str) -> None:
    stderr().print(Text.assemble(f"{prog}: ", ("error", "red"), f": {message}"))


def interactive(args: argparse.Namespace) -> bool:
    """Spinners and progress bars only for a person watching stderr, never with --json."""
    return sys.stderr.isatty() and not getattr(args, "json", False)


def busy(args: argparse.Namespace, message: str) -> contextlib.AbstractContextManager[object]:
    return stderr().status(message) if interactive(args) else contextlib.nullcontext()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def _read(path: str, vcpus: int | None) -> Topology:
    check_inventory_path(path)
    return load_topology(path, vcpus=vcpus)


def unlock_vault(args: argparse.Namespace) -> bytes | None:
    """Set up the vault password from --vault-password-file and --ask-vault-pass (asked once per
    command; ansible.cfg's and the environment's are read too) before any inventory is read.
    Returns the password typed at the prompt, if one was asked for (``inventory.use_vault``)."""
    if not hasattr(args, "vault_password"):
        args.vault_password = use_vault(
            getattr(args, "vault_password_files", ()), getattr(args, "ask_vault_pass", False)
        )
    password: bytes | None = args.vault_password
    return password


def load(path: str, args: argparse.Namespace) -> Topology:
    """The inventory at ``path`` (``args.vcpus`` for ``instances: auto``), with a spinner for a
    person watching."""
    check_inventory_path(path)
    unlock_vault(args)
    with busy(args, f"reading inventory {path} ..."):
        return _read(path, args.vcpus)


def load_both(old: str, new: str, args: argparse.Namespace) -> tuple[Topology, Topology]:
    """``(load(old), load(new))``; NEW is read by a forked process meanwhile, on another core.

    When either is invalid, ``TopologyError`` has the problems of both, each prefixed with which
    inventory it is (OLD or NEW) and its path, and so does its first line."""
    check_inventory_path(old)
    unlock_vault(args)  # before the fork: the password is asked once, and both readers hold it
    with Background(functools.partial(_read, new, args.vcpus)) as later:
        before = _which("OLD", old, lambda: load(old, args))
        with busy(args, f"reading inventory {new} ..."):
            after = _which("NEW", new, later.result)
    if isinstance(before, TopologyError) or isinstance(after, TopologyError):
        refused = [e for e in (before, after) if isinstance(e, TopologyError)]
        which = " and the ".join(e.inventory for e in refused)
        raise TopologyError([p for e in refused for p in e.problems], inventory=which)
    return before, after


def _which(label: str, path: str, read: Callable[[], Topology]) -> Topology | TopologyError:
    """The topology ``read`` returns, or its problems told as those of the ``label`` inventory at ``path``."""
    try:
        return read()
    except TopologyError as exc:
        inventory = f"{label} inventory {path}"
        return TopologyError([dataclasses.replace(p, inventory=inventory) for p in exc.problems], inventory)


def print_table(
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


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, advanced by calling what it yields with (done, total)."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # Redrawn on each report, without a refresh thread: the CARP batch forks its workers meanwhile.
    with Progress(*columns, console=stderr(), transient=True, auto_refresh=False) as bar:
        task = bar.add_task(label, total=total)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, refresh=True)

        yield advance
