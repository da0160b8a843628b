"""The ``carpfarm`` command: validate, plan, route, impact and status, straight from an Ansible
inventory. ``main`` parses the command line (``carpfarm.cli.app``) and runs one command, each in
its own module (``validate``, ``plan``, ``route``, ``impact``, ``status``); ``common`` holds what
they share (exit codes, consoles, reading inventories, tables); ``input`` checks what the user
typed; ``status`` also reads and lays out what playbooks/status.yml collected."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from cryptography.utils import CryptographyDeprecationWarning

from carpfarm.cli.common import EXIT_INVALID, EXIT_OK, EXIT_UNREACHABLE, EXIT_WARNING

# ansible-core's ssh-agent support imports cryptography's DSA, which warns twice on every command.
# That one warning, from that one module, is silenced; every other warning still shows. The
# commands import ansible only when they read an inventory or run a playbook, after this.
warnings.filterwarnings(
    "ignore", category=CryptographyDeprecationWarning, module=r"ansible\._internal\._ssh\._ssh_agent\Z"
)

if TYPE_CHECKING:
    from carpfarm.cli.app import main


def __getattr__(name: str) -> object:
    """``main``, imported when asked for: ``python -m carpfarm.cli.app`` (or ``.status``) then runs
    that module once, without runpy's warning that the package had imported it already."""
    if name == "main":
        from carpfarm.cli.app import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_WARNING", "main"]
