"""Run the README's quick start as written, as a new operator would (the lab's prepare step).

The quick start's steps are the fenced blocks that follow a marker line::

    <!-- quickstart: run in the carpfarm checkout -->   a shell block, run in the checkout
    <!-- quickstart: run in ~/farm -->                  a shell block, run in that folder
    <!-- quickstart: write ~/farm/inventory/hosts.yml -->   a file, written with the block's text
    <!-- quickstart: lab: append to ~/farm/... -->      what only the lab adds (shown in the README too)

They run in the README's order, each shell block with ``bash -euo pipefail``, in a home of their own
(``--home``), with none of the checkout's Ansible or Python settings in the environment: no ANSIBLE_*,
no virtualenv, no PATH entry of the project's venv. The one thing the lab adds from outside is how ssh
reaches its containers (``ANSIBLE_SSH_EXTRA_ARGS=-F CONFIG``), because ssh takes its key and
known_hosts from the account's passwd home, not from $HOME.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MARKER = re.compile(r"^<!-- quickstart: (?P<what>.+?) -->\s*$")
RUN_IN = re.compile(r"^(?:lab: )?run in (?P<where>.+)$")
WRITE = re.compile(r"^(?:lab: )?(?P<how>write|append to) (?P<path>~/\S+)$")
FENCE = re.compile(r"^```")

Action = Literal["run", "write", "append"]


@dataclass(frozen=True)
class Step:
    """One marked block of the quick start."""

    action: Action
    where: str  # "the carpfarm checkout" or a ~/ path (a folder to run in, or a file to write)
    text: str
    line: int  # the marker's line in the README, for messages
    lab_only: bool


class QuickstartError(ValueError):
    """The README's quick start cannot be read as steps."""


def steps(readme: str) -> list[Step]:
    """The quick start's steps in the README's order."""
    lines = readme.splitlines()
    found: list[Step] = []
    index = 0
    while index < len(lines):
        marker = MARKER.match(lines[index])
        index += 1
        if not marker:
            continue
        what, line = marker["what"], index
        if index >= len(lines) or not FENCE.match(lines[index]):
            raise QuickstartError(f"README.md:{line}: a quickstart marker must stand right above a ``` block")
        end = next((i for i in range(index + 1, len(lines)) if FENCE.match(lines[i])), None)
        if end is None:
            raise QuickstartError(f"README.md:{line}: the block under this quickstart marker is never closed")
        text = "\n".join(lines[index + 1 : end]) + "\n"
        index = end + 1
        run, write = RUN_IN.match(what), WRITE.match(what)
        lab_only = what.startswith("lab: ")
        if run:
            found.append(Step("run", run["where"], text, line, lab_only))
        elif write:
            action: Action = "write" if write["how"] == "write" else "append"
            found.append(Step(action, write["path"], text, line, lab_only))
        else:
            raise QuickstartError(f"README.md:{line}: unknown quickstart marker '{what}'")
    if not found:
        raise QuickstartError("README.md has no quickstart steps (<!-- quickstart: ... --> markers)")
    return found


def operator_environment(home: Path, ssh_config: Path | None) -> dict[str, str]:
    """The environment of a new operator's shell: this one without the checkout's Ansible and venv."""
    venv = os.environ.get("VIRTUAL_ENV")
    project_bins = {str(Path(sys.executable).parent)} | ({str(Path(venv) / "bin")} if venv else set())
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if p and p not in project_bins]
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANSIBLE_", "MOLECULE_", "PYTHON", "VIRTUAL_ENV", "CARPFARM_"))
    }
    kept.update(HOME=str(home), PATH=":".join(path), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    if ssh_config is not None:
        kept["ANSIBLE_SSH_EXTRA_ARGS"] = f"-F {ssh_config}"
        # ssh's control sockets must fit in 108 bytes: not under a checkout that may sit deep in a workspace.
        kept["ANSIBLE_SSH_CONTROL_PATH_DIR"] = f"/tmp/carpfarm-lab-cp-{os.getuid()}"
    return kept


def resolve(where: str, home: Path, checkout: Path) -> Path:
    if where == "the carpfarm checkout":
        return checkout
    if where.startswith("~/"):
        return home / where[2:]
    raise QuickstartError(f"a quickstart step must name '~/...' or 'the carpfarm checkout', not '{where}'")


def run(readme: Path, checkout: Path, home: Path, ssh_config: Path | None) -> int:
    """Carry out the steps in order; the exit status of the first that fails, else 0."""
    env = operator_environment(home, ssh_config)
    home.mkdir(parents=True, exist_ok=True)
    for number, step in enumerate(steps(readme.read_text(encoding="utf-8")), start=1):
        target = resolve(step.where, home, checkout)
        origin = f"README.md:{step.line}"
        if step.action == "run":
            target.mkdir(parents=True, exist_ok=True)
            print(f"== step {number} ({origin}): in {step.where}\n{step.text}", flush=True)
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", step.text], cwd=target, env=env, check=False)
            if done.returncode != 0:
                print(f"quickstart step {number} ({origin}) failed with exit {done.returncode}", file=sys.stderr)
                return done.returncode
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            print(f"== step {number} ({origin}): {step.action} {step.where}", flush=True)
            with target.open("a" if step.action == "append" else "w", encoding="utf-8") as handle:
                handle.write(step.text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=Path("README.md"), help="whose quick start to run")
    parser.add_argument("--checkout", type=Path, default=Path(), help="the carpfarm checkout the steps build from")
    parser.add_argument("--home", type=Path, required=True, help="the operator's home, made if missing")
    parser.add_argument("--ssh-config", type=Path, help="an ssh configuration for the lab (ssh -F)")
    parser.add_argument("--list", action="store_true", help="print the steps and run nothing")
    parser.add_argument("--cwd", type=Path, help="with a command after --: the folder to run it in")
    parser.add_argument("command", nargs="*", help="after --: run this as the operator instead of the steps")
    args = parser.parse_args(argv)
    ssh_config = args.ssh_config.resolve() if args.ssh_config else None
    try:
        if args.command:
            env = operator_environment(args.home.resolve(), ssh_config)
            cwd = args.cwd or args.home
            return subprocess.run(args.command, cwd=cwd, env=env, check=False).returncode
        if args.list:
            for number, step in enumerate(steps(args.readme.read_text(encoding="utf-8")), start=1):
                print(f"{number}. README.md:{step.line}: {step.action} {step.where}{' (lab only)' * step.lab_only}")
            return 0
        return run(args.readme, args.checkout.resolve(), args.home.resolve(), ssh_config)
    except QuickstartError as error:
        print(f"carpfarm quickstart: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
