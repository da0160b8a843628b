"""Render a role's template with Ansible's own templar, as the role does, off any host: for the tests
and the benchmarks (which render the balancer's rules to load them into a network namespace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template


def render(template: Path, **variables: Any) -> str:
    """``template`` rendered by Ansible's templar with these variables."""
    init_plugin_loader()
    templar = Templar(loader=DataLoader(), variables=variables)
    return str(templar.template(trust_as_template(template.read_text())))
