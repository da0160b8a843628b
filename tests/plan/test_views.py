"""The typed views between the layers, held to what the roles read and to what the plan builds.

carpfarm_balancer returns ``carpfarm.plan.views.BalancerView`` (the ruleset of
``carpfarm.box.kernelrules.Ruleset`` and what the role needs besides), carpfarm_frontend returns
``FrontendView`` (with ``carpfarm.wccp.settings.SettingsView`` and ``Rendered``), and carpfarm-watch's
configuration carries a ``kernelrules.BaseRuleset``. Every key a role's template or task reads from one
of these facts must be a key of its TypedDict, found by walking Jinja's syntax tree; and the data the
filters return must be exactly of those types, key for key, for every kind of box.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Any, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest
import yaml
from jinja2 import Environment, nodes

from carpfarm.box import kernelrules
from carpfarm.inventory import load_hostvars
from carpfarm.plan import views
from carpfarm.wccp import settings
from support.ansible import filters
from support.inventories import wccp_box
from support.paths import ROOT

# Which fact holds which view, in which files.
FACTS: dict[str, tuple[type, tuple[str, ...]]] = {
    "__frontend_balancer": (views.BalancerView, ("roles/frontend_balancer",)),
    "__frontend_balancer_held": (views.BalancerView, ("roles/frontend_balancer",)),
    "__frontend_balancer_ruleset": (views.BalancerView, ("roles/frontend_balancer",)),
    "__carp_frontend_self": (views.FrontendView, ("roles/carp_frontend",)),
    "__wccp_box": (views.FrontendView, ("roles/wccp",)),
    "__box": (views.FrontendView, ("playbooks/status.yml",)),
    "__names": (kernelrules.NameSet, ("playbooks/status.yml",)),
}
# YAML keys whose strings are bare Jinja expressions, not templates.
EXPRESSIONS = {"when", "that", "changed_when", "failed_when", "until"}
ENV = Environment()


def _files(where: str) -> Iterator[Path]:
    path = ROOT / where
    yield from [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".j2"))


def _templates(path: Path) -> Iterator[str]:
    """Every piece of Jinja in a template, or in a task file's strings."""
    if path.suffix == ".j2":
        yield path.read_text()
        return

    def walk(value: Any, key: str = "") -> Iterator[str]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield from walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                yield from walk(v, key)
        elif isinstance(value, str) and (key in EXPRESSIONS or "{{" in value or "{%" in value):
            yield f"{{{{ {value} }}}}" if key in EXPRESSIONS and "{{" not in value else value

    yield from walk(yaml.safe_load(path.read_text()))


def _paths(source: str, fact: str) -> Iterator[tuple[str, ...]]:
    """The keys read from ``fact``, as paths: ``fact.a.b`` and ``fact['a']`` alike (``fact.a`` too)."""
    for node in ENV.parse(source).find_all((nodes.Getattr, nodes.Getitem)):
        path: list[str] = []
        inner: nodes.Node = node
        while isinstance(inner, nodes.Getattr | nodes.Getitem):
            if isinstance(inner, nodes.Getattr):
                path.insert(0, inner.attr)
            elif isinstance(inner.arg, nodes.Const) and isinstance(inner.arg.value, str):
                path.insert(0, inner.arg.value)
            else:
                path = []
            inner = inner.node
        if isinstance(inner, nodes.Name) and inner.name == fact and path:
            yield tuple(path)


def _bare(hint: Any) -> Any:
    """The TypedDict inside ``NotRequired[...]`` and ``X | None``, or the hint itself."""
    if get_origin(hint) is NotRequired:
        hint = get_args(hint)[0]
    if get_origin(hint) in (Union, UnionType):
        typed = [a for a in get_args(hint) if is_typeddict(a)]
        return typed[0] if len(typed) == 1 else hint
    return hint


def _unknown(typed: type, path: tuple[str, ...]) -> str | None:
    """The first key of ``path`` the TypedDict (and those nested in it) has not, or None."""
    hints = get_type_hints(typed, include_extras=True)
    if path[0] not in hints:
        return f"{path[0]} is no key of {typed.__name__}"
    inner = _bare(hints[path[0]])
    return _unknown(inner, path[1:]) if len(path) > 1 and is_typeddict(inner) else None


READS = [(fact, path) for fact, (_, places) in FACTS.items() for where in places for path in _files(where)]


@pytest.mark.parametrize(("fact", "path"), READS, ids=[f"{f}:{p.relative_to(ROOT)}" for f, p in READS])
def test_every_key_a_role_reads_from_a_view_is_a_key_of_its_type(fact: str, path: Path) -> None:
    typed = FACTS[fact][0]
    reads = {p for source in _templates(path) for p in _paths(source, fact)}
    assert not [f"{fact}.{'.'.join(p)}: {_unknown(typed, p)}" for p in sorted(reads) if _unknown(typed, p)]


def test_the_walk_finds_what_the_templates_read() -> None:
    """The check above sees attribute and item access, nested, in templates and in task files."""
    loader = ROOT / "roles/frontend_balancer/templates/usr/local/sbin/carpfarm-balancer-iptables.j2"
    found = {p for s in _templates(loader) for p in _paths(s, "__frontend_balancer")}
    assert {("listen_port",), ("names", "chain"), ("names", "wccp_guard"), ("intercept",)} <= found
    cleanup = {
        p
        for s in _templates(ROOT / "roles/frontend_balancer/tasks/cleanup.yml")
        for p in _paths(s, "__frontend_balancer")
    }
    assert ("leftovers", "units") in cleanup and ("kernel_rules",) in cleanup
    assert set(_paths("{{ x['names'].tabel }}", "x")) == {("names",), ("names", "tabel")}  # each level
    assert _unknown(views.BalancerView, ("names", "tabel")) == "tabel is no key of NameSet"


# ---------------------------------------------------------------- the data is of its type


def problems(value: Any, hint: Any, where: str = "") -> list[str]:
    """Where ``value`` is not of type ``hint`` (TypedDicts key for key, lists, unions, plain types)."""
    hint = get_args(hint)[0] if get_origin(hint) is NotRequired else hint
    origin = get_origin(hint)
    if is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is no {hint.__name__}"]
        fields = get_type_hints(hint, include_extras=True)
        found = [f"{where}.{k}: no key of {hint.__name__}" for k in value if k not in fields]
        for key, field in fields.items():
            if key in value:
                found += problems(value[key], field, f"{where}.{key}")
            elif get_origin(field) is not NotRequired:
                found.append(f"{where}.{key}: missing")
        return found
    if origin in (Union, UnionType):
        arms = [problems(value, arm, where) for arm in get_args(hint)]
        return [] if [] in arms else min(arms, key=len)
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: {value!r} is no list"]
        return [p for n, v in enumerate(value) for p in problems(v, get_args(hint)[0], f"{where}[{n}]")]
    if hint is Any or origin is dict:
        return [] if hint is Any or isinstance(value, dict) else [f"{where}: {value!r} is no dict"]
    wanted = {float: (int, float), type(None): (type(None),)}.get(hint, (hint,))
    return [] if isinstance(value, wanted) else [f"{where}: {value!r} is no {getattr(hint, '__name__', hint)}"]


@functools.cache
def _lab() -> tuple[Any, Any]:
    groups, hostvars, _ = load_hostvars(ROOT / "inventory" / "lab", vcpus=3)
    return groups, hostvars


def _farm(case: str) -> tuple[Any, Any]:
    if case.startswith("wccp-"):
        return wccp_box(carpfarm_wccp_forwarding_method=case.removeprefix("wccp-"), carpfarm_wccp_password="pw")
    groups, hostvars = _lab()
    carp1 = {"carp_frontend_mode": "smp", "frontend_balancer_watch": False} if case == "smp" else {}
    carp1 = carp1 or {"frontend_balancer_type": case}
    return groups, {**hostvars, "carp1": {**hostvars["carp1"], **carp1}}


CASES = ["iptables", "nftables", "haproxy", "smp", "wccp-gre", "wccp-l2"]


@pytest.mark.parametrize("case", CASES)
def test_the_filters_return_exactly_the_views_types(case: str) -> None:
    groups, hostvars = _farm(case)
    f = filters()
    balancer = f["carpfarm_balancer"](hostvars, groups, "carp1")
    assert problems(balancer, views.BalancerView) == []
    if case != "smp":
        held = f["carpfarm_balancer"](hostvars, groups, "carp1", exclude=[balancer["targets"][0]["port"]])
        assert problems(held, views.BalancerView) == []
    frontend = f["carpfarm_frontend"](hostvars, groups, "carp1")
    assert problems(frontend, views.FrontendView) == []
    assert (frontend["wccp"] is None) == (not case.startswith("wccp-"))
    if frontend["wccp"]:
        assert problems(frontend["wccp"], settings.SettingsView) == []
        assert set(settings.SettingsView.__annotations__) == set(settings.WccpSettings.model_fields)


def test_the_frontend_view_is_the_models_box_and_the_views_own_keys() -> None:
    from carpfarm.model import FrontendHost

    own = {"balancer_hold", "balancer_kernel_rules", "balancer_proxy_header", "wccp_rendered"}
    assert set(get_type_hints(views.FrontendView)) == set(FrontendHost.model_fields) | own


@pytest.mark.parametrize("case", [c for c in CASES if c not in ("haproxy", "smp")])
def test_the_watch_configuration_carries_a_base_ruleset_that_gives_back_a_ruleset(case: str) -> None:
    groups, hostvars = _farm(case)
    f = filters()
    full = f["carpfarm_balancer"](hostvars, groups, "carp1")
    config = f["carpfarm_watch_config"](full, "carp1", "# managed")
    assert problems(config["ruleset"], kernelrules.BaseRuleset) == []
    assert config["names"] == {k: v for k, v in full["names"].items() if k in ("chain", "wccp_chain", "table")}
    again = kernelrules.ruleset_for(config["ruleset"], config["ruleset"]["ports"])
    assert problems(again, kernelrules.Ruleset) == []
