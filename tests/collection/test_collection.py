"""The carpfarm.farm collection (make collection): built from the checkout, installed offline from its
tarball, then used from a directory of its own, with a Python that has no carpfarm installed.

That directory's ansible.cfg names only the installed collections: no roles_path, filter_plugins or
inventory of the checkout. The roles, the filters and the carpfarm package must all come from the
collection.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from carpfarm.inventory import load_topology
from support.paths import EXAMPLE, ROOT

BIN = Path(sys.executable).parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
URL = "http://www.example.com/logo.png"

# A playbook outside the collection: the filters by their full names, the farm from the example inventory.
PLAY = """
- name: Call the collection's filters
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Build the topology
      ansible.builtin.set_fact:
        farm: "{{ hostvars | carpfarm.farm.carpfarm_topology(groups) }}"

    - name: Write what the filters return
      ansible.builtin.copy:
        dest: "{{ out }}"
        mode: "0644"
        content: "{{ result | to_nice_json }}"
      vars:
        result:
          backend_instances: "{{ farm.backends | map(attribute='instances') | map('length') | sum }}"
          route: "{{ url | carpfarm.farm.carpfarm_route(farm) }}"
"""


@dataclass(frozen=True)
class Installed:
    """The collection installed under ``collections``, and a project directory that uses it."""

    collection: Path
    project: Path
    python: Path
    env: dict[str, str]

    def run(self, tool: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """An ansible command (ansible-playbook, ...) run by the Python without carpfarm, in the project."""
        return _run([str(self.python), str(BIN / tool), *args], self.project, {**self.env, **env})


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout}{result.stderr}"
    return result


def _python_without_carpfarm(target: Path) -> Path:
    """A venv that sees .venv's packages (ansible-core, pydantic, ...) through a .pth line: the .pth
    files in that directory, carpfarm's editable install among them, are not read from there."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    python = target / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "carpfarm-test-packages.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("collection")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    build = _run(
        [sys.executable, str(ROOT / "lab" / "build-collection.py"), "--build-dir", str(work / "build")], ROOT, env
    )
    tarball = Path(build.stdout.strip().splitlines()[-1])
    assert tarball.name == f"carpfarm-farm-{VERSION}.tar.gz"

    project = work / "project"
    project.mkdir()
    shutil.copytree(EXAMPLE, project / "inventory")
    (project / "ansible.cfg").write_text(f"[defaults]\ncollections_path = {work / 'collections'}\n")
    env.update(
        ANSIBLE_CONFIG=str(project / "ansible.cfg"), ANSIBLE_HOME=str(work / "ansible-home"), ANSIBLE_NOCOLOR="1"
    )
    found = Installed(
        work / "collections" / "ansible_collections" / "carpfarm" / "farm",
        project,
        _python_without_carpfarm(work / "python"),
        env,
    )
    found.run("ansible-galaxy", "collection", "install", "-p", str(work / "collections"), str(tarball))
    return found


def test_the_collection_holds_the_checkouts_parts(installed: Installed) -> None:
    manifest = json.loads((installed.collection / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("carpfarm", "farm", VERSION)
    roles = {p.name for p in (ROOT / "roles").iterdir()}
    assert {p.name for p in (installed.collection / "roles").iterdir()} == roles
    playbooks = {p.name for p in (ROOT / "playbooks").glob("*.yml")} | {"site.yml"}
    assert {p.name for p in (installed.collection / "playbooks").glob("*.yml")} == playbooks
    assert (installed.collection / "python" / "carpfarm" / "__init__.py").is_file()
    assert not list(installed.collection.rglob("__pycache__"))


def test_no_filter_is_called_by_its_short_name_in_the_collection(installed: Installed) -> None:
    short = re.compile(r"\|\s*carpfarm_\w+")
    files = [
        p for d in ("roles", "playbooks") for p in (installed.collection / d).rglob("*") if p.suffix in (".yml", ".j2")
    ]
    assert [f"{p}: {m}" for p in files for m in short.findall(p.read_text())] == []


def test_its_python_has_no_carpfarm_but_ansible_and_pydantic(installed: Installed) -> None:
    code = "import importlib.util, ansible, pydantic; print(importlib.util.find_spec('carpfarm'))"
    assert _run([str(installed.python), "-c", code], installed.project, installed.env).stdout.strip() == "None"


def test_site_passes_the_syntax_check(installed: Installed) -> None:
    result = installed.run("ansible-playbook", "-i", "inventory", "carpfarm.farm.site", "--syntax-check")
    assert f"{installed.collection}/playbooks/site.yml" in result.stdout


def test_site_lists_the_tasks_of_the_collections_roles(installed: Installed) -> None:
    listed = installed.run("ansible-playbook", "-i", "inventory", "carpfarm.farm.site", "--list-tasks").stdout
    for role in ("squid_backend", "carp_frontend", "frontend_balancer"):
        assert f"carpfarm.farm.{role} : " in listed
    assert "Validate the carpfarm inventory" in listed


def test_the_filter_docs(installed: Installed) -> None:
    doc = installed.run("ansible-doc", "-t", "filter", "carpfarm.farm.carpfarm_route").stdout
    assert "carpfarm.farm.carpfarm_route" in doc
    assert "groups" in doc  # from the doc fragment carpfarm.farm.carpfarm
    assert "| carpfarm.farm.carpfarm_route(hostvars, groups)" in doc


def test_sites_validate_play_runs_the_filters_from_the_collection(installed: Installed) -> None:
    # Only localhost: the other plays find no host, so none is contacted.
    args = ("-i", "inventory", "-i", "localhost,", "carpfarm.farm.site", "--limit", "localhost")
    result = installed.run("ansible-playbook", *args)
    assert "1 CARP box(es), 8 backend instance(s) on 3 host(s)" in result.stdout


def test_a_playbook_calls_the_filters_by_their_full_names(installed: Installed) -> None:
    (installed.project / "play.yml").write_text(PLAY)
    out = installed.project / "out.json"
    extra = {"out": str(out), "url": URL, "ansible_python_interpreter": str(installed.python)}
    installed.run("ansible-playbook", "-i", "inventory", "-i", "localhost,", "play.yml", "-e", json.dumps(extra))
    result = json.loads(out.read_text())
    assert int(result["backend_instances"]) == 8
    chosen = load_topology(EXAMPLE).route(URL)
    assert chosen is not None
    assert result["route"] == {"url": URL, **chosen.model_dump(mode="json")}
