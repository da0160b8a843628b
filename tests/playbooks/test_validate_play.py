"""site.yml with a bad inventory stops in its validate play, on localhost, before any host is touched,
and prints the list of problems once; a warning of Ansible's inventory loader stops it too.

Safe to run: with a bad inventory the run ends on localhost; the farm's hosts are never contacted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import EXAMPLE, ROOT

FIRST_LAYER = "PLAY [Build the caching backends]"


def _site(inventory: Path) -> subprocess.CompletedProcess[str]:
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    return subprocess.run(
        [str(ansible_playbook), "-i", str(inventory), "site.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLE, tmp_path / "inv"))


def test_site_prints_the_problems_once_and_stops_before_any_host(inventory: Path) -> None:
    with (inventory / "group_vars" / "squid_backends.yml").open("a") as group_vars:
        group_vars.write("squid_backend_instancs: 2\n")
    (inventory / "host_vars" / "cache3.yml").write_text("squid_backend_weight: 0\n")
    run = _site(inventory)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    typo = [text for text in output.splitlines() if "squid_backend_instancs = 2" in text]
    assert len(typo) == 1, output  # once, for its 3 hosts
    assert "group_vars/squid_backends.yml:" in typo[0]
    assert "[group squid_backends, 3 hosts: cache1, cache2 and cache3]" in typo[0]
    assert output.count("squid_backend_weight = 0") == 1, output
    assert "the inventory has 2 problems; nothing was changed" in output
    assert "Stop before any host is touched" in output
    assert FIRST_LAYER not in output and "Check every farm host runs a Debian release" not in output


def test_a_loader_warning_stops_site(inventory: Path) -> None:
    with (inventory / "group_vars" / "carp_frontends.yml").open("a") as group_vars:
        group_vars.write("carp_frontend_listen_port: 3128\n")  # written twice: Ansible warns, keeps the last
    run = _site(inventory)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    problems = [text for text in run.stdout.splitlines() if "is written twice in one mapping" in text]
    assert len(problems) == 1 and "group_vars/carp_frontends.yml:" in problems[0], run.stdout
    assert FIRST_LAYER not in output
