"""Every warning Ansible's inventory loader gives about an inventory is a problem of `carpfarm validate`,
named by file (and line, where Ansible or the YAML tells it) with what to change; none is printed.

Each case is a real inventory that makes ansible-core 2.19 warn (as `ansible-inventory --list` shows)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from carpfarm.cli import EXIT_INVALID, main
from carpfarm.inventory import load_hostvars

# A valid farm: one CARP box, one backend (10 lines: what a case appends starts at line 11).
FARM = """\
all:
  vars:
    carpfarm_client_networks: [198.51.100.0/24]
  children:
    carp_frontends:
      hosts:
        carp1: {ansible_host: 192.0.2.10}
    squid_backends:
      hosts:
        cache1: {ansible_host: 192.0.2.21}
"""


@dataclass(frozen=True)
class Case:
    """An inventory (file: text, FARM's hosts.yml unless given) and the problem its warning becomes."""

    files: dict[str, str]
    file: str  # the file the problem names
    line: int  # its line (0: the file alone)
    variable: str
    words: str  # in the message
    fix: str  # in the fix
    stops: bool = False  # Ansible could not read the inventory: the model is not asked


CASES = {
    "duplicate key in hosts.yml": Case(
        {"hosts.yml": FARM + "        cache1: {ansible_host: 192.0.2.22}\n"},
        "hosts.yml",
        11,
        "cache1",
        "is written twice in one mapping",
        "keep one 'cache1'",
    ),
    "duplicate key in group_vars": Case(
        {"group_vars/squid_backends.yml": "squid_backend_weight: 2\nsquid_backend_weight: 3\n"},
        "group_vars/squid_backends.yml",
        2,
        "squid_backend_weight",
        "Ansible keeps the last one",
        "delete the other, or merge the two",
    ),
    "reserved name in host_vars": Case(
        {"host_vars/cache1.yml": "---\nenvironment: {http_proxy: x}\n"},
        "host_vars/cache1.yml",
        2,
        "environment",
        "is a name Ansible reserves for itself",
        "rename the variable",
    ),
    "group and host of one name": Case(
        {"hosts.yml": FARM + "    cache1:\n      hosts:\n        cache9:\n"},
        "hosts.yml",
        10,
        "cache1",
        "is the name of both a group and a host",
        "rename the group or the host",
    ),
    "invalid characters in a group name": Case(
        {"hosts.yml": FARM + "    web-proxies:\n      hosts:\n        cache1:\n"},
        "hosts.yml",
        11,
        "web-proxies",
        "is not a valid group name",
        "rename the group to web_proxies",
    ),
    "unexpected key in a group": Case(
        {"hosts.yml": FARM.replace("    squid_backends:\n      hosts:", "    squid_backends:\n      host:")},
        "hosts.yml",
        9,
        "host",
        "is not a section of group 'squid_backends'",
        "did you mean 'hosts'?",
    ),
    "a group key that is no mapping": Case(
        {"hosts.yml": FARM + "      port: 4001\n"},
        "hosts.yml",
        11,
        "port",
        "holds a number and is not a section of group 'squid_backends'",
        "a group holds only hosts:, children: and vars:",
    ),
    "a file in the inventory that is no inventory": Case(
        {"notes.yml": "---\nowner: ops\nticket: 42\n"},
        "notes.yml",
        2,
        "notes.yml",
        "its top-level keys 'owner' and 'ticket' are not groups",
        "move it out of the inventory directory",
    ),
    "hosts given as a list": Case(
        {"hosts.yml": FARM.replace("        cache1: {ansible_host: 192.0.2.21}", "        - cache1")},
        "hosts.yml",
        9,
        "hosts.yml",
        "the hosts: of group 'squid_backends' holds a list, where a mapping goes",
        "write it as a YAML inventory",
        stops=True,
    ),
    "a host entry that is an address": Case(
        {"hosts.yml": FARM.replace("cache1: {ansible_host: 192.0.2.21}", "cache1: 192.0.2.21")},
        "hosts.yml",
        10,
        "hosts.yml",
        "a host's entry holds '192.0.2.21', where a mapping of its variables goes",
        "write it as a YAML inventory",
        stops=True,
    ),
    "group vars given as a list": Case(
        {"hosts.yml": FARM.replace("  vars:\n    carpfarm_client_networks: [198.51.100.0/24]", "  vars:\n    - x")},
        "hosts.yml",
        2,
        "hosts.yml",
        "the vars: of group 'all' holds a list, where a mapping goes (variable: value)",
        "write it as a YAML inventory",
        stops=True,
    ),
    "an INI file that does not parse": Case(
        {"hosts.yml": "", "hosts": "[squid_backends\ncache1 a b c\n"},
        "hosts",
        0,
        "hosts",
        "cannot be read as an inventory: Ansible's ini reader says",
        "write it as a YAML inventory",
        stops=True,
    ),
    "group_vars that is a file": Case(
        {"group_vars": "squid_backend_weight: 2\n"},
        "group_vars",
        0,
        "group_vars",
        "is a file, not a directory: Ansible reads no variables from it",
        "make group_vars a directory",
    ),
    "a second localhost": Case(
        {"hosts.yml": FARM + "    controller:\n      hosts:\n        localhost:\n        127.0.0.1:\n"},
        "hosts.yml",
        14,
        "127.0.0.1",
        "is a second name for the controller (localhost is the first)",
        "keep one localhost entry",
    ),
    "a deprecated YAML tag": Case(
        {"group_vars/squid_backends.yml": "squid_backend_weight: 2\nsquid_backend_extra: !!omap\n  - a: 1\n"},
        "group_vars/squid_backends.yml",
        2,
        "inventory",
        "uses what Ansible will stop supporting: Use of the YAML `!!omap` tag is deprecated",
        "use a standard mapping instead",
    ),
}


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"hosts.yml": FARM, **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if text or name != "hosts.yml":
            path.write_text(text)
    return root


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_loader_warning_is_a_problem_at_its_place(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = _write(tmp_path / "inv", case.files)
    assert main(["validate", str(inventory), "--json"]) == EXIT_INVALID
    out, err = capsys.readouterr()
    problems = json.loads(out)["problems"]
    assert "WARNING" not in err, err  # told as a problem, not printed
    found = [p for p in problems if p["variable"] == case.variable and case.words in p["message"]]
    assert found, problems
    (problem,) = found
    assert problem["file"] == str(inventory / case.file) or problem["file"].endswith(f"inv/{case.file}")
    assert (problem["line"] or 0) == case.line
    assert case.fix in problem["fix"]
    assert problem["host"] == str(inventory)
    if case.stops:  # nothing of the model: it would only repeat that the farm has no hosts
        assert problems == [problem]
    for leak in ("<class", "Tagged", "'dict'"):
        assert leak not in problem["message"]


@pytest.mark.parametrize("case", ["duplicate key in group_vars", "a file in the inventory that is no inventory"])
def test_a_warning_comes_with_the_models_problems(case: str, tmp_path: Path) -> None:
    """A warning does not hide the model's problems: every problem is told at once."""
    files = dict(CASES[case].files)
    files["host_vars/cache1.yml"] = "squid_backend_weight: 0\n"
    _, _, problems = load_hostvars(_write(tmp_path / "inv", files))
    assert [p.variable for p in problems] == [CASES[case].variable]
    assert main(["validate", str(tmp_path / "inv")]) == EXIT_INVALID


def test_the_same_warning_is_told_on_every_read(tmp_path: Path) -> None:
    """Ansible prints a warning once per process; carpfarm tells it each time it reads the inventory."""
    inventory = _write(tmp_path / "inv", CASES["duplicate key in hosts.yml"].files)
    first, second = (load_hostvars(inventory)[2] for _ in range(2))
    assert [str(p) for p in first] == [str(p) for p in second] and len(first) == 1


def test_a_valid_inventory_has_no_warning(tmp_path: Path) -> None:
    assert load_hostvars(_write(tmp_path / "inv", {}))[2] == []
