"""The ``carpfarm`` command: validate, plan, route, impact and status, straight from an Ansible
inventory. ``main`` parses the command line (``carpfarm.cli.commands``); ``input`` checks what the
user typed; ``status`` reads and lays out what playbooks/status.yml collected."""

from __future__ import annotations

from carpfarm.cli.commands import EXIT_INVALID, EXIT_OK, EXIT_UNREACHABLE, EXIT_WARNING, main

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_WARNING", "main"]
