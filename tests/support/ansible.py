"""Ansible's own machinery, as the roles use it: the templar, the filter plugin, role defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader, init_plugin_loader
from ansible.template import Templar

from carpfarm.lab.render import render as lab_render
from support.paths import ROLES, ROOT, load_script

# What every role template may print that no test sets: the header and the host. (The chains' and
# tables' names come with the views, from carpfarm.box.kernelrules.Names.)
TEMPLATE_BASE = {
    "ansible_managed": "Ansible managed",
    "inventory_hostname": "carp1",
}


def render(template: Path, **variables: Any) -> str:
    """The template rendered by Ansible's templar with TEMPLATE_BASE and these variables."""
    return lab_render(template, **{**TEMPLATE_BASE, **variables})


def preflight(
    role: str, groups: dict[str, list[str]], hostvars: dict[str, dict[str, Any]], host: str, **variables: Any
) -> dict[str, Any]:
    """The variables ``role``'s templates see on ``host``: its defaults, the host's inventory variables,
    ``variables`` (as ``-e`` gives them), and the facts the set_fact tasks of roles/ROLE/tasks/preflight.yml
    set, evaluated in order by Ansible's templar with carpfarm's filters (as ansible.cfg loads them)."""
    play = {**role_defaults(role), **hostvars[host], **variables}
    play.update(hostvars=hostvars, groups=groups, inventory_hostname=host)
    init_plugin_loader()
    filter_loader.add_directory(str(ROOT / "plugins" / "filter"))
    tasks = DataLoader().load_from_file(str(ROLES / role / "tasks" / "preflight.yml"), trusted_as_template=True)
    for task in tasks:
        templar = Templar(loader=DataLoader(), variables=play)  # one task's facts see only the earlier ones
        play.update({name: templar.template(value) for name, value in task.get("ansible.builtin.set_fact", {}).items()})
    return play


def filters() -> dict[str, Any]:
    """plugins/filter/carpfarm.py's filters, loaded from the file as Ansible loads them."""
    return dict(load_script(ROOT / "plugins" / "filter" / "carpfarm.py").FilterModule().filters())


def role_defaults(role: str) -> dict[str, Any]:
    """The role's defaults/main.yml, as Ansible loads it."""
    path = ROOT / "roles" / role / "defaults" / "main.yml"
    return dict(DataLoader().load_from_file(str(path), trusted_as_template=True))


def peer_options(variables: dict[str, Any]) -> dict[str, Any]:
    """The cache_peer options carp_frontend's preflight passes carpfarm_cache_peers, from its variables."""
    return {
        "selection": variables["carp_frontend_parent_selection"],
        "connect_fail_limit": int(variables["carp_frontend_connect_fail_limit"]),
        "connect_timeout": int(variables["carp_frontend_peer_connect_timeout"]),
    }
