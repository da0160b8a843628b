"""The vault password on carpfarm's command line, as ansible-playbook takes it: --vault-password-file
FILE (repeatable) and --ask-vault-pass, on validate, plan, route, impact and status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from carpfarm.cli import EXIT_INVALID, main, status

PASSWORD = "for-this-test-only"
URL = "http://www.example.com/0.png"


@pytest.fixture(autouse=True)
def no_vault_yet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts as a new carpfarm process would: Ansible holds no vault secrets yet, and
    neither the environment nor ansible.cfg gives one."""
    from ansible.parsing.vault import VaultSecretsContext

    monkeypatch.setattr(VaultSecretsContext, "_current", None)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("ANSIBLE_VAULT_IDENTITY_LIST", raising=False)
    yield


@pytest.fixture
def vaulted(tmp_path: Path) -> Path:
    """An inventory whose VRRP password is vaulted with PASSWORD."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    sealed = VaultLib([("default", VaultSecret(PASSWORD.encode()))]).encrypt("s3cret").decode()
    inventory = tmp_path / "vaulted"
    (inventory / "group_vars").mkdir(parents=True)
    boxes = {f"carp{n}": {"ansible_host": f"192.0.2.{10 + n}", "carp_frontend_instances": 2} for n in (1, 2)}
    caches = {f"cache{n}": {"ansible_host": f"192.0.2.{20 + n}", "squid_backend_instances": 2} for n in (1, 2)}
    hosts = {
        "all": {
            "vars": {"carpfarm_client_networks": ["198.51.100.0/24"]},
            "children": {"carp_frontends": {"hosts": boxes}, "squid_backends": {"hosts": caches}},
        }
    }
    (inventory / "hosts.yml").write_text(json.dumps(hosts))
    indented = "\n".join("  " + line for line in sealed.splitlines())
    (inventory / "group_vars" / "carp_frontends.yml").write_text(
        f"carpfarm_vip: 192.0.2.9/24\ncarpfarm_vrrp_password: !vault |\n{indented}\n"
    )
    return inventory


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "vault-pass"
    path.write_text(PASSWORD + "\n")
    return path


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The prompts --ask-vault-pass shows; each is answered with PASSWORD."""
    import getpass

    asked: list[str] = []

    def answer(prompt: str = "Password: ", stream: object = None) -> str:
        asked.append(prompt)
        return PASSWORD

    monkeypatch.setattr(getpass, "getpass", answer)
    return asked


def _command(name: str, inventory: Path) -> list[str]:
    """``carpfarm NAME`` on ``inventory`` (impact compares it with a copy of itself)."""
    if name == "impact":
        copy = inventory.with_name("vaulted-new")
        shutil.copytree(inventory, copy, dirs_exist_ok=True)
        return ["impact", str(inventory), str(copy), "--sample", "50", "--json"]
    if name == "route":
        return ["route", str(inventory), URL, "--json"]
    return [name, str(inventory), "--json"]


COMMANDS = ["validate", "plan", "route", "impact"]


@pytest.mark.parametrize("command", COMMANDS)
def test_without_the_password_the_vaulted_inventory_is_refused_with_the_flags_named(
    vaulted: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert main(_command(command, vaulted)) == EXIT_INVALID
    out = capsys.readouterr().out
    problems = json.loads(out)["problems"]
    assert any("--vault-password-file" in p["fix"] and "--ask-vault-pass" in p["fix"] for p in problems), problems


@pytest.mark.parametrize("command", COMMANDS)
def test_vault_password_file_opens_the_vault(
    vaulted: Path, password_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    wrong = tmp_path / "another-vaults-password"
    wrong.write_text("not-this-one\n")
    # Repeatable, as with ansible-playbook: each file's password is tried.
    assert (
        main(
            [
                *_command(command, vaulted),
                "--vault-password-file",
                str(wrong),
                "--vault-password-file",
                str(password_file),
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert "s3cret" not in out and err == ""


@pytest.mark.parametrize("command", COMMANDS)
def test_ask_vault_pass_asks_once(
    vaulted: Path, prompts: list[str], capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert main([*_command(command, vaulted), "--ask-vault-pass"]) == 0
    assert prompts == ["Vault password: "]  # impact too: asked before NEW is read in another process
    assert "s3cret" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--vault-password-file", "/nonexistent/vault-pass"], "'/nonexistent/vault-pass' does not exist"),
        (["--vault-password-file", "/"], "'/' is a directory"),
        (["--vault-password-file", "/etc/hostname", "--ask-vault-pass"], "not allowed with argument"),
    ],
)
def test_a_password_file_that_cannot_be_used_is_a_command_line_mistake(
    vaulted: Path, capsys: pytest.CaptureFixture[str], flags: list[str], words: str
) -> None:
    assert main(["validate", str(vaulted), *flags]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def _fake_playbook(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], str | None]]:
    """ansible-playbook replaced: each run's argv and the password it read from a /dev/fd/N
    password file, if it was given one; it writes an empty status."""
    runs: list[tuple[list[str], str | None]] = []

    def playbook(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        piped = [a for a in argv if a.startswith("/dev/fd/")]
        read = None
        if piped:
            fd = int(piped[0].removeprefix("/dev/fd/"))
            assert list(kwargs["pass_fds"]) == [fd]  # type: ignore[call-overload]
            read = os.read(fd, 1024).decode().strip()
        runs.append((argv, read))
        out = Path(next(a for a in argv if a.startswith("carpfarm_status_file=")).split("=", 1)[1])
        out.write_text(json.dumps({"backends": {}, "frontends": {}}))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(status.subprocess, "run", playbook)
    return runs


def test_status_passes_each_password_file_on_to_ansible_playbook(
    vaulted: Path, password_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _fake_playbook(monkeypatch)
    assert main(["status", str(vaulted), "--vault-password-file", str(password_file), "--json"]) == 0
    [(argv, piped)] = runs
    assert argv[-2:] == ["--vault-password-file", str(password_file)] and piped is None


def test_status_hands_the_typed_password_to_ansible_playbook_through_a_pipe(
    vaulted: Path, prompts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _fake_playbook(monkeypatch)
    assert main(["status", str(vaulted), "--ask-vault-pass", "--json"]) == 0
    [(argv, piped)] = runs
    assert prompts == ["Vault password: "]  # ansible-playbook does not ask again
    assert "--ask-vault-pass" not in argv and piped == PASSWORD
    assert argv[argv.index("--vault-password-file") + 1].startswith("/dev/fd/")


def test_the_real_ansible_playbook_reads_the_typed_password_from_the_pipe(
    tmp_path: Path, prompts: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """playbooks/status.yml on this machine (cache1, local), whose address is vaulted: the backend's
    task builds the model from every host's variables, so it is read only with the password."""
    import sys

    import yaml
    from ansible.parsing.vault import VaultLib, VaultSecret

    sealed = VaultLib([("default", VaultSecret(PASSWORD.encode()))]).encrypt("192.0.2.21").decode()
    local = {"ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": sys.executable}
    inventory = tmp_path / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    hosts = {
        "all": {
            "vars": {"carpfarm_client_networks": ["192.0.2.128/26"]},
            "children": {
                "carp_frontends": {"hosts": {"carp1": {"carp_frontend_address": "192.0.2.10"}}},
                "squid_backends": {"hosts": {"cache1": local}},
            },
        }
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    indented = "\n".join("  " + line for line in sealed.splitlines())
    (inventory / "host_vars" / "cache1.yml").write_text(f"squid_backend_address: !vault |\n{indented}\n")
    assert main(["status", str(inventory), "--limit", "cache1", "--ask-vault-pass", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["backends"]["cache1"]["squids"]] == ["backend1"]
    assert prompts == ["Vault password: "]


def test_a_group_vars_file_vaulted_whole_is_read_not_refused(
    vaulted: Path, password_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """group_vars/carp_frontends/vault.yml encrypted whole with ansible-vault (the usual layout) is not
    'a file that holds a string': Ansible decrypts it, and its variables count like any others."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    plain = (vaulted / "group_vars" / "carp_frontends.yml").read_text().split("carpfarm_vrrp_password")[0]
    folder = vaulted / "group_vars" / "carp_frontends"
    folder.mkdir()
    (vaulted / "group_vars" / "carp_frontends.yml").unlink()
    (folder / "main.yml").write_text(plain)
    sealed = VaultLib([("default", VaultSecret(PASSWORD.encode()))]).encrypt("carpfarm_vrrp_password: s3cret\n")
    (folder / "vault.yml").write_bytes(sealed)
    assert main(["validate", str(vaulted), "--vault-password-file", str(password_file)]) == 0
    out, err = capsys.readouterr()
    assert "holds a string" not in out + err and "s3cret" not in out + err
