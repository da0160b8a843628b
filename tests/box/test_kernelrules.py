"""carpfarm.box.kernelrules prints exactly what the kernel balancer's Jinja templates printed.

tests/data/kernel_templates/ holds the two templates as they were before their text moved to
Python (balancer.rules.j2 and balancer.nft.j2). Every ruleset below is rendered three ways, by
the old template, by the role's template (which calls the carpfarm_kernel_rules filter) and by
kernelrules directly, and the three must be the same bytes.
"""

from __future__ import annotations

import functools
import re
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


def _keys(typed: Any) -> frozenset[str]:
    return frozenset(typed.__required_keys__ | typed.__optional_keys__)


def _old_names(names: kernelrules.Names) -> dict[str, str]:
    """The role variables the old templates read the names from (the role no longer has them)."""
    return {
        "__frontend_balancer_chain": names.chain,
        "__frontend_balancer_wccp_chain": names.wccp_chain,
        "__frontend_balancer_nft_table": names.table,
    }


def _template(directory: Path, kind: str, ruleset: dict[str, Any], **variables: Any) -> str:
    old_names = _old_names(kernelrules.names_of(ruleset)) if directory == OLD else {}
    return render(directory / TEMPLATES[kind], __frontend_balancer_ruleset=ruleset, **old_names, **variables)


@pytest.mark.parametrize("kind", list(TEMPLATES))
@pytest.mark.parametrize("make", CASES)
def test_python_prints_exactly_what_the_old_template_printed(make: Any, kind: str) -> None:
    ruleset = make()
    old = _template(OLD, kind, ruleset)
    assert kernelrules.render(kind, ruleset, kernelrules.Names(), "carp1", MANAGED) == old
    assert _template(NEW, kind, ruleset) == old  # the role's template, through the filter


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_names_come_with_the_ruleset_host_and_header_are_the_callers(kind: str) -> None:
    ours = kernelrules.Names(chain="MY_BALANCE", wccp_chain="MY_WCCP", table="mine")
    ruleset = {**wccp_ruleset("gre", 3, "random", "first-out"), "names": ours.view()}
    header = {"inventory_hostname": "box7", "ansible_managed": "Managed by Ansible: edits are lost"}
    old = _template(OLD, kind, ruleset, **header)
    managed = "#\n# Managed by Ansible: edits are lost\n#"
    assert kernelrules.render(kind, ruleset, ours, "box7", managed) == old
    assert _template(NEW, kind, ruleset, **header) == old
    assert "box7" in old and ("MY_WCCP_GUARD" in old or "table inet mine {" in old)


def test_the_names_are_stated_once_and_the_views_carry_them() -> None:
    """kernelrules.Names alone says what the chains and table are called; a ruleset without names
    (the plan's, before the view adds them) is printed with those, and the role passes none."""
    names = kernelrules.DEFAULT_NAMES
    assert kernelrules.names_of({}) == names == kernelrules.names_of({"names": names.view()})
    assert inventory_ruleset("example", 2, "random", "all")["names"] == names.view()
    assert names.iptables_chains() == [
        f"nat:{names.chain}",
        f"nat:{names.wccp_chain}",
        f"nat:{names.wccp_spread}",
        f"filter:{names.wccp_guard}",
    ]
    roles = "\n".join(p.read_text() for p in (ROOT / "roles").rglob("*") if p.suffix in (".yml", ".j2"))
    playbooks = "\n".join(p.read_text() for p in (ROOT / "playbooks").rglob("*") if p.is_file())
    assert names.chain not in roles + playbooks and names.wccp_chain not in roles + playbooks
    for table in (names.table, *kernelrules.FORMER_TABLES):
        assert not re.search(rf"\binet {table}\b|table: {table}\b|table={table}\b", roles + playbooks), table


@pytest.mark.parametrize(
    ("rules", "chains", "tables"),
    [
        ("iptables", False, ["carpfarm", "carpfarm_clients"]),
        ("nftables", True, ["carpfarm_clients"]),
        (None, True, None),
    ],
)
def test_a_box_removes_the_other_kinds_rules_and_earlier_releases_tables(
    rules: str | None, chains: bool, tables: list[str] | None
) -> None:
    left = kernelrules.leftovers(rules)
    assert left["iptables_chains"] == (kernelrules.DEFAULT_NAMES.iptables_chains() if chains else [])
    assert left["nft_tables"] == (tables or ["carpfarm", *kernelrules.FORMER_TABLES])


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
    full = make()  # carpfarm_balancer's view: the ruleset and what the role needs besides
    base = kernelrules.base_ruleset(full)
    assert set(base) == {*kernelrules.BASE_KEYS, "ports"}
    assert base["intercept"] is None or set(base["intercept"]) == set(kernelrules.INTERCEPT_BASE_KEYS)
    wanted = {k: v for k, v in full.items() if k in _keys(kernelrules.Ruleset) and k != "hold"}
    assert kernelrules.ruleset_for(base, base["ports"]) == wanted


def test_no_live_port_is_refused() -> None:
    base = kernelrules.base_ruleset(inventory_ruleset("example", 2, "random", "all"))
    with pytest.raises(ValueError, match=r"no live instance among the ports \[3129, 3130\] \(live: \[4000\]\)"):
        kernelrules.ruleset_for(base, [4000])
