"""The README's quick start as steps (carpfarm.lab.quickstart): what the lab runs is what the README says."""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

import pytest
import yaml

from carpfarm.lab import quickstart

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_quick_start_is_the_readmes_first_section() -> None:
    sections = [line for line in README.splitlines() if line.startswith("## ")]
    assert sections[0].startswith("## Quick start")


def test_the_readmes_steps_install_the_collection_then_run_site_from_a_repository_of_their_own() -> None:
    steps = quickstart.steps(README)
    runs = [step for step in steps if step.action == "run"]
    assert runs[0].where == "the carpfarm checkout"
    assert "lab/build-collection.py" in runs[0].text
    assert all(step.where.startswith("~/") for step in steps[1:]), "only the build runs in the checkout"
    assert any("ansible-galaxy collection install" in step.text for step in runs)
    assert runs[-1].where == "~/farm"
    assert runs[-1].text.strip().endswith("ansible-playbook carpfarm.farm.site")
    written = {step.where for step in steps if step.action == "write"}
    assert {"~/farm/ansible.cfg", "~/farm/inventory/hosts.yml"} <= written
    # What only the lab adds is shown in the README too, and it is nothing but a setting of the inventory.
    lab_only = [step for step in steps if step.lab_only]
    assert [step.action for step in lab_only] == ["append"]
    assert set(yaml.safe_load(lab_only[0].text)) == {"squid_common_nofile"}


def test_the_readmes_ansible_cfg_checks_host_keys_and_pipelines() -> None:
    (cfg_step,) = [step for step in quickstart.steps(README) if step.where == "~/farm/ansible.cfg"]
    cfg = configparser.ConfigParser()
    cfg.read_string(cfg_step.text)
    assert cfg.getboolean("ssh_connection", "pipelining")
    assert "StrictHostKeyChecking=yes" in cfg.get("ssh_connection", "ssh_args")
    assert cfg.getboolean("defaults", "host_key_checking", fallback=True)


def test_the_readmes_inventory_names_a_login_account_and_both_layers() -> None:
    (hosts_step,) = [step for step in quickstart.steps(README) if step.where == "~/farm/inventory/hosts.yml"]
    inventory = yaml.safe_load(hosts_step.text)["all"]
    assert inventory["vars"]["ansible_user"] == "deploy"
    assert set(inventory["children"]) == {"carp_frontends", "squid_backends"}


def test_the_checkouts_own_ansible_cfg_names_no_inventory_and_keeps_host_keys_checked() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "ansible.cfg")
    assert not cfg.has_option("defaults", "inventory")
    assert cfg.getboolean("defaults", "host_key_checking", fallback=True)


def test_steps_run_in_order_in_their_folders_and_write_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n\n<!-- quickstart: run in the carpfarm checkout -->\n```sh\npwd > ~/where\n```\n\n"
        "<!-- quickstart: write ~/farm/a.yml -->\n```yaml\na: 1\n```\n"
        "<!-- quickstart: lab: append to ~/farm/a.yml -->\n```yaml\nb: 2\n```\n"
        "<!-- quickstart: run in ~/farm -->\n```sh\n"
        "cat a.yml >> ~/where; env | grep -c '^ANSIBLE_CONFIG=' >> ~/where || true\n```\n",
        encoding="utf-8",
    )
    checkout, home = tmp_path / "checkout", tmp_path / "home"
    checkout.mkdir()
    monkeypatch.setenv("ANSIBLE_CONFIG", "/nowhere/ansible.cfg")
    assert quickstart.run(readme, checkout, home, None) == 0
    assert (home / "where").read_text().splitlines() == [str(checkout), "a: 1", "b: 2", "0"]


def test_a_failing_step_stops_the_rest_with_its_exit_status(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- quickstart: run in ~/ -->\n```sh\nfalse\ntouch ~/after-false\n```\n"
        "<!-- quickstart: run in ~/ -->\n```sh\ntouch ~/next-step\n```\n",
        encoding="utf-8",
    )
    assert quickstart.run(readme, tmp_path, tmp_path / "home", None) == 1
    assert not (tmp_path / "home" / "after-false").exists()
    assert not (tmp_path / "home" / "next-step").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- quickstart: run in ~/ -->\nnot a block\n", "must stand right above"),
        ("<!-- quickstart: run in ~/ -->\n```sh\ntrue\n", "never closed"),
        ("<!-- quickstart: dance in ~/ -->\n```sh\ntrue\n```\n", "unknown quickstart marker 'dance in ~/'"),
        ("no markers at all\n", "no quickstart steps"),
    ],
)
def test_a_malformed_quick_start_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(quickstart.QuickstartError, match=message):
        quickstart.steps(text)


def test_the_operators_environment_has_none_of_the_checkouts_ansible_or_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_ROLES_PATH", "/checkout/roles")
    monkeypatch.setenv("MOLECULE_PROJECT_DIRECTORY", "/checkout")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin")
    env = quickstart.operator_environment(Path("/home/op"), Path("/lab/ssh/config"))
    assert not any(key.startswith(("ANSIBLE_ROLES", "MOLECULE_")) for key in env)
    assert env["PATH"] == "/usr/bin"
    assert env["HOME"] == "/home/op"
    assert env["ANSIBLE_SSH_EXTRA_ARGS"] == "-F /lab/ssh/config"
