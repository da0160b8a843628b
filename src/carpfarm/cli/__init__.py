"""The ``carpfarm`` command: validate, plan, route, impact and status, straight from an Ansible
inventory. ``main`` parses the command line (``carpfarm.cli.app``) and runs one command, each in
its own module (``validate``, ``plan``, ``route``, ``impact``, ``status``); ``common`` holds what
they share (exit codes, consoles, reading inventories, tables); ``input`` checks what the user
typed; ``status`` also reads and lays out what playbooks/status.yml collected."""

from __future__ import annotations

from carpfarm.cli.app import main
from carpfarm.cli.common import EXIT_INVALID, EXIT_OK, EXIT_UNREACHABLE, EXIT_WARNING

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_WARNING", "main"]
