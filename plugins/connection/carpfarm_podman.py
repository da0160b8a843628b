"""The podman connection with pipelining: one ``podman exec`` per module instead of five."""

from __future__ import annotations

import shlex
from typing import Any

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection

DOCUMENTATION = r"""
name: carpfarm_podman
short_description: Run tasks in podman containers, each module piped to python's stdin
description:
  - C(containers.podman.podman) with pipelining. That plugin runs C(podman exec) without C(-i), so a
    module written to stdin never arrives, and it declares it cannot pipeline. This one passes C(-i)
    when Ansible has input for the command, so Ansible runs a module with one C(podman exec) instead
    of creating, filling, running and removing a temporary directory in the container with several.
  - Everything else (file transfer, options, variables) is the podman plugin's.
  - Used by the lab inventory (C(inventory/lab/group_vars/all.yml)); pipelining is on unless turned off.
author: carpfarm
options:
  remote_addr:
    description: The container's name or ID.
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_podman_host
  remote_user:
    description: The user to run as in the container (the container's default when unset).
    vars:
      - name: ansible_user
  podman_executable:
    description: The podman binary.
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
  pipelining:
    description: Pipe each module to python's stdin (the reason for this plugin); false falls back to
      the podman plugin's temporary files.
    type: boolean
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
  podman_extra_args:
    description: Extra arguments put after C(podman) on every call.
    default: ""
    vars:
      - name: ansible_podman_extra_args
    env:
      - name: ANSIBLE_PODMAN_EXTRA_ARGS
"""


def exec_arguments(user: str | None, has_input: bool) -> list[str]:
    """The ``podman exec`` options: ``-i`` only when there is something for stdin."""
    args = ["exec"]
    if has_input:
        args.append("-i")
    if user:
        args += ["--user", user]
    return args


class Connection(PodmanConnection):  # type: ignore[misc]
    """containers.podman.podman, able to pipeline."""

    transport = "carpfarm_podman"
    has_pipelining = True

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = False) -> Any:
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        argv = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        return self._podman(exec_arguments(self.user, in_data is not None), argv, in_data)
