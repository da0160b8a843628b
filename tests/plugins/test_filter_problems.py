"""carpfarm_topology as site.yml's validate play calls it: with the inventory's sources it tells every
problem at the file and line of its variable, Ansible's loader warnings among them; with report=true
it returns them for the play to print once, instead of failing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from carpfarm.inventory import load_hostvars
from support.ansible import filters
from support.paths import EXAMPLE


def _play(inventory: Path) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """hostvars and groups (every host in 'all') as a play over ``inventory`` has them."""
    groups, hostvars, _ = load_hostvars(inventory)
    return hostvars, {**groups, "all": sorted(hostvars)}


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLE, tmp_path / "inv"))


def test_a_valid_inventory_gives_the_topology_with_report(inventory: Path) -> None:
    hostvars, groups = _play(inventory)
    topology = filters()["carpfarm_topology"](hostvars, groups, check_names=True, sources=[str(inventory)], report=True)
    assert "problems" not in topology and topology["carpfarm_topology_format"] == 1


def test_the_sources_warnings_and_places_are_problems(inventory: Path) -> None:
    with (inventory / "group_vars" / "squid_backends.yml").open("a") as group_vars:
        group_vars.write("squid_backend_port_base: 4001\n")  # written twice
    (inventory / "stray.yml").write_text("owner: ops\n")
    hostvars, groups = _play(inventory)
    hostvars["cache2"] = {**hostvars["cache2"], "squid_backend_wieght": 2}  # as -e or a host's vars would give it
    report = filters()["carpfarm_topology"](hostvars, groups, check_names=True, sources=[str(inventory)], report=True)
    assert report["report"].startswith("the inventory has 3 problems; nothing was changed\n  - ")
    twice, stray, typo = report["problems"]
    assert "group_vars/squid_backends.yml:" in twice and "squid_backend_port_base: is written twice" in twice
    assert "stray.yml:1: is not an inventory" in stray
    assert typo.startswith("cache2: squid_backend_wieght = 2: is not a carpfarm variable")
    with pytest.raises(AnsibleFilterError, match="the inventory has 3 problems"):
        filters()["carpfarm_topology"](hostvars, groups, check_names=True, sources=[str(inventory)])
