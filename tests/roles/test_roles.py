"""Roles' public interfaces: generated from the declarations (carpfarm.variables.roledocs), and used as declared."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from carpfarm.box.kernelrules import DEFAULT_NAMES
from carpfarm.variables import DECLARED, INTERNAL_NAMES, roledocs
from support.ansible import filters
from support.paths import ROOT

ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "defaults" / "main.yml").exists())


def _load(path: Path) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(path.read_text()) or {}


def test_generated_role_files_are_the_declarations(capsys: pytest.CaptureFixture[str]) -> None:
    """defaults/main.yml, meta/argument_specs.yml and the README variable tables are what roledocs writes."""
    code = roledocs.main(["--check", "--root", str(ROOT)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err


def test_every_role_with_declared_variables_is_generated() -> None:
    assert set(roledocs.roles()) == {r for r in ROLES if not r.startswith("lab_")}


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_carry_the_role_prefix_or_are_declared_farm_wide(role: str) -> None:
    declared = {name for name, d in DECLARED.items() if role in d.roles}
    for name in _load(ROOT / "roles" / role / "defaults" / "main.yml"):
        assert name.startswith(role + "_") or (name.startswith("carpfarm_") and name in declared), f"{role}: {name}"


NOT_VARIABLES = {
    # filters of plugins/filter/carpfarm.py
    *filters(),
    # facts a play sets, Squid ACL and HAProxy section names, an inventory group
    "carpfarm_validated",
    "carpfarm_status",
    "carpfarm_clients",
    "carpfarm_gateway_error",
    "carpfarm_proxy",
    "carpfarm_verify_clients",
    "carpfarm_boxes",
    "carpfarm_snmp_community",
    "carpfarm_to_farm",
    "carpfarm_to_linklocal",
    "squid_common_started",
    "squid_common_changed",
    "squid_common_stale",
}


def test_every_variable_a_role_or_playbook_reads_is_declared() -> None:
    """Names in carpfarm's namespaces that roles and playbooks read are declared, or are no variable."""
    text = "\n".join(
        path.read_text()
        for folder in ("roles", "playbooks")
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in (".yml", ".j2") and "/lab_" not in str(path)
    )
    pattern = r"\b((?:squid_backend|carp_frontend|frontend_balancer|carpfarm|squid_common)_[a-z0-9_]+)"
    used = set(re.findall(pattern, text))
    unknown = used - set(DECLARED) - set(INTERNAL_NAMES) - NOT_VARIABLES
    assert not unknown, f"read by roles or playbooks but not declared in carpfarm.variables: {sorted(unknown)}"


@pytest.mark.parametrize("example", ["playbooks/backends.yml", "inventory/lab/group_vars/squid_backends.yml"])
def test_backend_readme_example_is_what_molecule_converges(example: str) -> None:
    readme = (ROOT / "roles" / "squid_backend" / "README.md").read_text()
    assert f"```yaml\n{(ROOT / example).read_text()}```" in readme


@pytest.mark.parametrize(
    ("role", "example"),
    [
        ("carp_frontend", "playbooks/frontends.yml"),
        ("carp_frontend", "inventory/lab/group_vars/carp_frontends.yml"),
        ("frontend_balancer", "playbooks/balancer.yml"),
        ("wccp", "playbooks/wccp.yml"),
        ("wccp", "molecule/wccp/vars/wccp.yml"),
    ],
)
def test_frontend_readme_examples_are_what_molecule_converges(role: str, example: str) -> None:
    readme = (ROOT / "roles" / role / "README.md").read_text()
    assert f"```yaml\n{(ROOT / example).read_text()}```" in readme


SUPPORTED = yaml.safe_load((ROOT / "playbooks" / "validate.yml").read_text())[1]["vars"][
    "__validate_supported_releases"
]
FARM_ROLES = [r for r in ROLES if not r.startswith("lab_")]


def test_validate_supports_debian_12_and_13() -> None:
    assert SUPPORTED == {"Debian-12": "bookworm", "Debian-13": "trixie"}


@pytest.mark.parametrize("role", FARM_ROLES)
def test_meta_lists_every_supported_release(role: str) -> None:
    platforms = _load(ROOT / "roles" / role / "meta" / "main.yml")["galaxy_info"]["platforms"]
    assert platforms == [{"name": "Debian", "versions": sorted(SUPPORTED.values())}]


RELEASE_VARS_ROLES = [r for r in FARM_ROLES if any((ROOT / "roles" / r / "vars").glob("Debian-*.yml"))]
RELEASE_VARS_INCLUDE = "ansible_facts.distribution }}-{{ ansible_facts.distribution_major_version }}.yml"


def test_release_vars_are_in_exactly_the_roles_that_load_them() -> None:
    loading = [r for r in FARM_ROLES if RELEASE_VARS_INCLUDE in (ROOT / "roles" / r / "tasks" / "main.yml").read_text()]
    assert RELEASE_VARS_ROLES, "no role has vars/Debian-*.yml"
    assert loading == RELEASE_VARS_ROLES, "roles whose tasks/main.yml loads vars/Debian-*.yml != roles that have them"


@pytest.mark.parametrize("role", RELEASE_VARS_ROLES)
def test_release_vars_exist_for_exactly_the_supported_releases_and_agree_on_names(role: str) -> None:
    """A role with per-release vars has one file per release validate accepts, each setting the same names."""
    files = sorted((ROOT / "roles" / role / "vars").glob("Debian-*.yml"))
    assert sorted(f.stem for f in files) == sorted(SUPPORTED)
    names = {f.stem: set(_load(f)) for f in files}
    assert len({frozenset(v) for v in names.values()}) == 1, names
    main = ROOT / "roles" / role / "vars" / "main.yml"
    shared = set(_load(main)) if main.exists() else set()
    assert not shared & next(iter(names.values())), "a per-release name is also in vars/main.yml"


@pytest.mark.parametrize("role", [r for r in ROLES if r.startswith("lab_")])
def test_lab_role_readme_lists_exactly_its_defaults(role: str) -> None:
    readme = (ROOT / "roles" / role / "README.md").read_text()
    rows = set(re.findall(r"^\| `([a-z0-9_]+)` \|", readme, flags=re.MULTILINE))
    assert rows == set(_load(ROOT / "roles" / role / "defaults" / "main.yml")), f"{role}: README table"


SHELL_SCRIPTS = sorted(p for p in (ROOT / "roles").glob("*/files/*") if p.read_text().startswith("#!/bin/sh\n"))


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_the_roles_shell_scripts_are_posix_sh(script: Path) -> None:
    checked = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


# A stand-in for iptables over a JSON file: {table: {chain: [rule, ...]}}; -S, -D, -F and -X as iptables does
# them (-X refuses a built-in chain or one a rule still jumps to); every call is logged.
_IPTABLES = """#!{python}
import json, sys
state_file, log = sys.argv[0] + ".json", sys.argv[0] + ".log"
_, table, op, chain, *rest = sys.argv[1:]
open(log, "a").write(" ".join(sys.argv[1:]) + "\\n")
state = json.load(open(state_file))
chains = state[table]
if chain not in chains:
    sys.exit(1)
if op == "-S":
    print(f"-P {{chain}} ACCEPT" if chain.isupper() and "_" not in chain else f"-N {{chain}}")
    print("".join(f"-A {{chain}} {{rule}}\\n" for rule in chains[chain]), end="")
elif op == "-D" and " ".join(rest) in chains[chain]:
    chains[chain].remove(" ".join(rest))
elif op == "-F":
    chains[chain] = []
elif op == "-X" and not any(r.endswith("-j " + chain) for t in state.values() for rs in t.values() for r in rs):
    del chains[chain]
else:
    sys.exit(1)
json.dump(state, open(state_file, "w"))
"""


def test_the_iptables_cleanup_removes_the_chains_it_is_given_and_their_jumps(tmp_path: Path) -> None:
    """frontend_balancer's cleanup.yml runs it with carpfarm_balancer's leftovers.iptables_chains."""
    n = DEFAULT_NAMES
    jump = "-p tcp -m addrtype --dst-type LOCAL -m tcp --dport 3128 -m comment --comment carpfarm-balancer"
    jump += f" -j {n.chain}"
    wccp = f"-p tcp -m comment --comment carpfarm-wccp -j {n.wccp_chain}"
    state = {
        "nat": {
            "PREROUTING": [wccp, jump, "-p udp -j ACCEPT"],
            "OUTPUT": [jump],
            "INPUT": [],
            n.chain: ["-p tcp -j REDIRECT --to-ports 3129"],
            n.wccp_chain: [f"-s 198.51.100.0/24 -j {n.wccp_spread}"],
            n.wccp_spread: ["-p tcp -j REDIRECT --to-ports 3229"],
        },
        "filter": {"INPUT": [f"-p tcp -m comment --comment carpfarm-wccp -j {n.wccp_guard}"], n.wccp_guard: []},
    }
    iptables = tmp_path / "iptables"
    iptables.write_text(_IPTABLES.format(python=sys.executable))
    iptables.chmod(0o755)
    script = ROOT / "roles" / "frontend_balancer" / "files" / "carpfarm-remove-iptables-chains"
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    runs = []
    for _ in range(2):
        (tmp_path / "iptables.json").write_text(json.dumps(state))
        runs.append(subprocess.run(["sh", script, *n.iptables_chains()], env=env, capture_output=True, text=True))
        state = json.loads((tmp_path / "iptables.json").read_text())
    assert [r.stdout for r in runs] == [
        f"removed: {n.chain} {n.wccp_chain} {n.wccp_spread} {n.wccp_guard}\n",
        "removed:\n",
    ]
    assert state == {"nat": {"PREROUTING": ["-p udp -j ACCEPT"], "OUTPUT": [], "INPUT": []}, "filter": {"INPUT": []}}


def test_release_reads_only_the_roles_variables_and_what_its_argument_specs_declares() -> None:
    """hold leaves __frontend_balancer_hold for release, and release's argument_specs requires it: no fact
    of hold's reaches release undeclared."""
    role = ROOT / "roles" / "frontend_balancer"
    text = "\n".join(p.read_text() for p in sorted((role / "tasks").glob("release*.yml")))
    read = set(re.findall(r"\b_*frontend_balancer_[a-z0-9_]+", text))
    known = {
        *_load(role / "defaults" / "main.yml"),
        *_load(role / "vars" / "main.yml"),
        *_load(role / "vars" / "Debian-12.yml"),
        *re.findall(r"register: (\w+)", text),
        *_load(role / "meta" / "argument_specs.yml")["argument_specs"]["release"]["options"],
    }
    assert read - known == set()
    assert "__frontend_balancer_hold" in read
    hold = "\n".join(p.read_text() for p in sorted((role / "tasks").glob("hold*.yml")))
    assert "    __frontend_balancer_hold:" in hold
