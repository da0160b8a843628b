"""Roles' public interfaces agree: defaults/main.yml, meta/argument_specs.yml and the model."""

from __future__ import annotations

import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
import yaml
from pydantic.fields import FieldInfo

from carpfarm.fields import INTERNAL, Declared
from carpfarm.variables import DECLARED, INTERNAL_NAMES, declarations, in_namespace
from support.ansible import filters
from support.paths import ROOT

ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "defaults" / "main.yml").exists())


def _load(path: Path) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_defaults_match_defaults_main(role: str) -> None:
    defaults = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    options = _load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options), f"{role}: variables in only one of defaults/argument_specs"
    for name, spec in options.items():
        assert spec.get("default") == defaults[name], f"{role}: {name} default differs"
        assert spec.get("description"), f"{role}: {name} has no description"


def _declared_for(role: str) -> dict[str, tuple[FieldInfo, Declared]]:
    return {d.name: (model.model_fields[field], d) for model, field, d in declarations() if role in d.roles}


def _default(field: FieldInfo) -> Any:
    value = field.get_default(call_default_factory=True)
    value = "" if value is None else value
    if isinstance(value, list):
        return [
            v.model_dump(exclude_none=True, exclude_defaults=True) if hasattr(v, "model_dump") else v for v in value
        ]
    return value


def _spec_type(field: FieldInfo) -> tuple[str, list[str] | None]:
    """argument_specs' type (and choices) for a declared field."""
    annotation = field.annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        annotation = args[0]
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal:
        return "str", list(get_args(annotation))
    if annotation is bool:
        return "bool", None
    if annotation is int:
        return "int", None
    if annotation is str:
        return "str", None
    if get_origin(annotation) is list:
        return "list", None
    return "raw", None


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_carry_the_role_prefix_or_are_declared_farm_wide(role: str) -> None:
    declared = _declared_for(role)
    for name in _load(ROOT / "roles" / role / "defaults" / "main.yml"):
        assert name.startswith(role + "_") or (name.startswith("carpfarm_") and name in declared), f"{role}: {name}"


@pytest.mark.parametrize("role", [r for r in ROLES if not r.startswith("lab_")])
def test_defaults_and_argument_specs_are_the_models_declarations(role: str) -> None:
    """One declaration per variable: the model's (carpfarm.variables); the role's files must agree."""
    declared = _declared_for(role)
    defaults = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    options = _load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) == set(declared), f"{role}: defaults/main.yml and the model declare different variables"
    assert set(options) == set(declared), f"{role}: argument_specs and the model declare different variables"
    for name, (field, d) in declared.items():
        assert defaults[name] == _default(field), f"{role}: {name} default differs from the model's"
        spec = options[name]
        assert spec.get("default") == defaults[name], f"{role}: {name} argument_specs default differs"
        kind, choices = _spec_type(field)
        assert spec.get("type", "str") == kind, f"{role}: {name} type {spec.get('type')} is not the model's {kind}"
        assert spec.get("choices") == choices, f"{role}: {name} choices differ from the model's"
        text = spec.get("description")
        text = " ".join(text) if isinstance(text, list) else str(text)
        assert " ".join(text.split()) == " ".join(d.meaning.split()), f"{role}: {name} description differs"


@pytest.mark.parametrize("role", [r for r in ROLES if not r.startswith("lab_")])
def test_readme_variable_table_lists_exactly_the_declared_variables(role: str) -> None:
    readme = (ROOT / "roles" / role / "README.md").read_text()
    rows = set(re.findall(r"^\| `([a-z0-9_]+)` \|", readme, flags=re.MULTILINE))
    public = {name for name, (_, d) in _declared_for(role).items() if INTERNAL not in d.scope}
    assert public <= rows, f"{role}: README table misses {sorted(public - rows)}"
    stray = {r for r in rows if in_namespace(r) and r not in DECLARED}
    assert not stray, f"{role}: README table names undeclared variables {sorted(stray)}"


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


@pytest.mark.parametrize("role", FARM_ROLES)
def test_release_vars_exist_for_exactly_the_supported_releases_and_agree_on_names(role: str) -> None:
    """A role with per-release vars has one file per release validate accepts, each setting the same names."""
    files = sorted((ROOT / "roles" / role / "vars").glob("Debian-*.yml"))
    if not files:
        return
    assert sorted(f.stem for f in files) == sorted(SUPPORTED)
    names = {f.stem: set(_load(f)) for f in files}
    assert len({frozenset(v) for v in names.values()}) == 1, names
    main = ROOT / "roles" / role / "vars" / "main.yml"
    shared = set(_load(main)) if main.exists() else set()
    assert not shared & next(iter(names.values())), "a per-release name is also in vars/main.yml"
    tasks = (ROOT / "roles" / role / "tasks" / "main.yml").read_text()
    assert "ansible_facts.distribution }}-{{ ansible_facts.distribution_major_version }}.yml" in tasks


@pytest.mark.parametrize("role", [r for r in ROLES if r.startswith("lab_")])
def test_lab_role_readme_lists_exactly_its_defaults(role: str) -> None:
    readme = (ROOT / "roles" / role / "README.md").read_text()
    rows = set(re.findall(r"^\| `([a-z0-9_]+)` \|", readme, flags=re.MULTILINE))
    assert rows == set(_load(ROOT / "roles" / role / "defaults" / "main.yml")), f"{role}: README table"
