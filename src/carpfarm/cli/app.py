"""The ``carpfarm`` command line: its parser (each subcommand's --help ends with its exit codes)
and ``main``, which runs a subcommand and reports a command-line mistake or an invalid inventory."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence
from typing import NoReturn

from rich.console import Console
from rich.text import Text

import carpfarm
from carpfarm.carp import cores
from carpfarm.cli.common import EXIT_CODES, EXIT_INVALID, EXIT_WARNING, emit_json, usage_error
from carpfarm.cli.impact import cmd_impact
from carpfarm.cli.input import UsageError, limit_pattern, positive_int, vault_password_file
from carpfarm.cli.plan import cmd_plan
from carpfarm.cli.route import cmd_route
from carpfarm.cli.status import cmd_status
from carpfarm.cli.validate import cmd_validate
from carpfarm.problems import TopologyError

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


def _exit_codes(*codes: int) -> str:
    return "exit codes:\n" + "".join(f"  {code}  {EXIT_CODES[code]}\n" for code in codes)


class _Parser(argparse.ArgumentParser):
    """argparse, reporting its errors on one line like every other command-line mistake."""

    def error(self, message: str) -> NoReturn:
        usage_error(self.prog, f"{message} (see '{self.prog} --help')")
        raise SystemExit(EXIT_INVALID)


def _version() -> str:
    try:
        return importlib.metadata.version("carpfarm")
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(carpfarm, "__version__", "unknown"))


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
    # As ansible-playbook takes them (one or the other); ansible.cfg's and ANSIBLE_VAULT_PASSWORD_FILE also count.
    vault = common.add_mutually_exclusive_group()
    vault.add_argument(
        "--vault-password-file",
        dest="vault_password_files",
        action="append",
        default=[],
        type=vault_password_file,
        metavar="FILE",
        help="the Ansible Vault password is in FILE (or printed by FILE, when executable); repeatable",
    )
    vault.add_argument("--ask-vault-pass", action="store_true", help="ask for the Ansible Vault password, once")
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
    p.add_argument(
        "--limit",
        "-l",
        type=limit_pattern,
        metavar="PATTERN",
        help="read only the hosts this Ansible pattern matches (e.g. cache1, or 'squid_backends:!cache2')",
    )
    p.add_argument("ansible_args", nargs="*", metavar="ANSIBLE_ARG", help="passed to ansible-playbook (after --)")
    p.set_defaults(func=cmd_status)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line parsed; for status, everything after its first ``--`` is passed to
    ansible-playbook wherever the ``--`` stands (argparse alone takes it only right after INVENTORY)."""
    words = list(argv)
    if words[:1] != ["status"] or "--" not in words:
        return build_parser().parse_args(words)
    cut = words.index("--")
    args = build_parser().parse_args(words[:cut])
    args.ansible_args = [*args.ansible_args, *words[cut + 1 :]]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    cores.allow_forking()  # the CLI owns its process: its long computations may use every core
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help, --version, or argparse's error (already printed on one line)
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except UsageError as exc:
        usage_error(f"carpfarm {args.command}", str(exc))
        return EXIT_INVALID
    except TopologyError as exc:
        if getattr(args, "json", False):
            emit_json({"valid": False, "problems": [p.as_dict() for p in exc.problems]})
        else:
            console = Console(stderr=True, highlight=False, soft_wrap=True)
            console.print(Text.assemble(("error", "red"), f": {exc.args[0].splitlines()[0]}"))
            for problem in exc.problems:
                console.print(f"  - {problem}", markup=False)
        return EXIT_INVALID


if __name__ == "__main__":
    raise SystemExit(main())
