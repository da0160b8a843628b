"""Roles' public interfaces agree: defaults/main.yml, meta/argument_specs.yml and the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from carpfarm.model import BackendVars
from conftest import ROOT

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


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_carry_the_role_prefix(role: str) -> None:
    for name in _load(ROOT / "roles" / role / "defaults" / "main.yml"):
        assert name.startswith(role + "_"), f"{role}: {name}"


def test_backend_role_defaults_are_the_models_defaults() -> None:
    defaults = _load(ROOT / "roles" / "squid_backend" / "defaults" / "main.yml")
    for field in BackendVars.model_fields.values():
        assert field.alias in defaults, f"{field.alias} missing from squid_backend defaults"
        model_default = field.default if field.default is not None else ""
        assert defaults[field.alias] == model_default, field.alias


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
