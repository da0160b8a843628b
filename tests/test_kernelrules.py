"""carpfarm.box.kernelrules prints exactly what the kernel balancer's Jinja templates printed.

tests/data/kernel_templates/ holds the two templates as they were before their text moved to
Python (balancer.rules.j2 and balancer.nft.j2). Every ruleset below is rendered three ways, by
the old template, by the role's template (which calls the carpfarm_kernel_rules filter) and by
kernelrules directly, and the three must be the same bytes.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from carpfarm.box import kernelrules
from carpfarm.inventory import load_hostvars
from support.ansible import filters, render
from support.inventories import wccp_box
from support.paths import ROOT

OLD = ROOT / "tests" / "data" / "kernel_templates"
NEW = ROOT / "roles" / "frontend_balancer" / "templates" / "etc" / "carpfarm"
TEMPLATES = {"iptables": "balancer.rules.j2", "nftables": "balancer.nft.j2"}
MANAGED = "#\n# Ansible managed\n#"  # "Ansible managed" | comment, as support.ansible renders it
SERVICES = [{"standard": 0}, {"id": 90, "ports": [80, 8080], "password": "pw90"}]

# Which instances are held out, by index: none, the first, every other one, all but the last.
HOLDS = {
    "all": lambda n: [],
    "first-out": lambda n: [0] if n > 1 else [],
    "odd-out": lambda n: list(range(1, n, 2)),
    "last-only": lambda n: list(range(n - 1)),
}


@functools.cache
def _play(inventory: str, vcpus: int) -> tuple[Any, Any]:
    groups, hostvars, _ = load_hostvars(ROOT / "inventory" / inventory, vcpus=vcpus)
    return groups, hostvars


def _ruleset(groups: Any, hostvars: Any, hold: str, **carp1: Any) -> dict[str, Any]:
    hostvars = {**hostvars, "carp1": {**hostvars["carp1"], **carp1}}
    f = filters()
    ports = [i["port"] for i in f["carpfarm_frontend_ports"](hostvars, groups, "carp1")]
    held = [ports[n] for n in HOLDS[hold](len(ports))]
    return dict(f["carpfarm_balancer"](hostvars, groups, "carp1", exclude=held))


def inventory_ruleset(inventory: str, vcpus: int, mode: str, hold: str) -> dict[str, Any]:
    groups, hostvars = _play(inventory, vcpus)
    return _ruleset(groups, hostvars, hold, frontend_balancer_mode=mode)


def wccp_ruleset(method: str, instances: int, mode: str, hold: str) -> dict[str, Any]:
    groups, hostvars = wccp_box(
        carpfarm_wccp_forwarding_method=method,
        carpfarm_wccp_services=SERVICES,
        carp_frontend_instances=instances,
        frontend_balancer_mode=mode,
    )
    return _ruleset(groups, hostvars, hold)


CASES = [
    pytest.param(functools.partial(inventory_ruleset, inv, n, mode, hold), id=f"{inv}-{n}-{mode}-{hold}")
    for inv in ("example", "lab")
    for n in range(1, 9)
    for mode in ("random", "roundrobin")
    for hold in HOLDS
    if n > 1 or hold == "all"
] + [
    pytest.param(functools.partial(wccp_ruleset, method, n, mode, hold), id=f"wccp-{method}-{n}-{mode}-{hold}")
    for method in ("gre", "l2")
    for n in range(1, 5)
    for mode in ("random", "roundrobin")
    for hold in HOLDS
    if n > 1 or hold == "all"
]


def _template(directory: Path, kind: str, ruleset: dict[str, Any], **variables: Any) -> str:
    return render(directory / TEMPLATES[kind], __frontend_balancer_ruleset=ruleset, **variables)


@pytest.mark.parametrize("kind", list(TEMPLATES))
@pytest.mark.parametrize("make", CASES)
def test_python_prints_exactly_what_the_old_template_printed(make: Any, kind: str) -> None:
    ruleset = make()
    old = _template(OLD, kind, ruleset)
    assert kernelrules.render(kind, ruleset, kernelrules.Names(), "carp1", MANAGED) == old
    assert _template(NEW, kind, ruleset) == old  # the role's template, through the filter


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_names_host_and_header_are_the_callers(kind: str) -> None:
    ruleset = wccp_ruleset("gre", 3, "random", "first-out")
    names = {
        "__frontend_balancer_chain": "MY_BALANCE",
        "__frontend_balancer_wccp_chain": "MY_WCCP",
        "__frontend_balancer_nft_table": "mine",
        "inventory_hostname": "box7",
        "ansible_managed": "Managed by Ansible: edits are lost",
    }
    old = _template(OLD, kind, ruleset, **names)
    ours = kernelrules.Names(chain="MY_BALANCE", wccp_chain="MY_WCCP", table="mine")
    managed = "#\n# Managed by Ansible: edits are lost\n#"
    assert kernelrules.render(kind, ruleset, ours, "box7", managed) == old
    assert _template(NEW, kind, ruleset, **names) == old
    assert "box7" in old and ("MY_WCCP_GUARD" in old or "table inet mine {" in old)


def test_an_unknown_kind_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="no kernel rules of kind 'pf': use one of iptables, nftables"):
        kernelrules.render("pf", {}, kernelrules.Names(), "carp1", MANAGED)


@pytest.mark.parametrize(
    "make",
    [
        functools.partial(inventory_ruleset, "example", 4, "random", "all"),
        functools.partial(wccp_ruleset, "gre", 3, "roundrobin", "all"),
        functools.partial(wccp_ruleset, "l2", 1, "random", "all"),
    ],
)
def test_the_base_gives_back_the_full_ruleset_over_every_port(make: Any) -> None:
    full = make()
    base = kernelrules.base_ruleset(full)
    assert not {"cascade", "nft_modulus", "nft_map", "hold", "targets"} & set(base)
    assert base["intercept"] is None or "cascade" not in base["intercept"]
    wanted = {k: v for k, v in full.items() if k not in ("hold", "targets")}
    assert kernelrules.ruleset_for(base, base["ports"]) == wanted


def test_no_live_port_is_refused() -> None:
    base = kernelrules.base_ruleset(inventory_ruleset("example", 2, "random", "all"))
    with pytest.raises(ValueError, match=r"no live instance among the ports \[3129, 3130\] \(live: \[4000\]\)"):
        kernelrules.ruleset_for(base, [4000])
