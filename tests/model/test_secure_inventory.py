"""Secure by default, as the model sees it: what validate refuses (cache_dirs, open proxies, line breaks,
balance, SNMP communities) and what it still takes; every refusal names host, variable and fix."""

from __future__ import annotations

import copy
import json
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pytest

from carpfarm.model import addresses, build_topology
from carpfarm.model.rules import access
from carpfarm.problems import HIDDEN, Problem, TopologyError
from carpfarm.variables import BACKEND_GROUP, FRONTEND_GROUP, WCCP_GROUP, FrontendVars, declarations
from carpfarm.variables.fields import ANYWHERE, INTERNAL

Inventory = tuple[dict[str, list[str]], dict[str, dict[str, Any]]]


def _inventory(**carp1: Any) -> Inventory:
    groups = {"carp_frontends": ["carp1"], "squid_backends": ["cache1", "cache2"], WCCP_GROUP: ["r1"]}
    hostvars: dict[str, dict[str, Any]] = {
        "carp1": {"ansible_host": "192.0.2.10", "carpfarm_client_networks": ["198.51.100.0/24"], **carp1},
        "cache1": {"ansible_host": "192.0.2.21", "squid_backend_instances": 2},
        "cache2": {"ansible_host": "192.0.2.22", "squid_backend_instances": 2},
        "r1": {"ansible_host": "192.0.2.1"},
    }
    return groups, hostvars


def _problems(groups: dict[str, list[str]], hostvars: dict[str, dict[str, Any]]) -> list[Problem]:
    try:
        build_topology(groups, hostvars)
    except TopologyError as caught:
        assert all(p.fix for p in caught.problems)
        return caught.problems
    return []


def _with(host: str, **values: Any) -> list[Problem]:
    groups, hostvars = _inventory()
    hostvars[host].update(values)
    return _problems(groups, hostvars)


# ---------------------------------------------------------------- what stays valid


@pytest.mark.parametrize(
    ("host", "values"),
    [
        ("cache1", {"squid_backend_instances": [{"cache_dir": "/srv/cache1"}, {"cache_dir": "/srv/cache10"}]}),
        ("cache1", {"squid_backend_instances": [{"cache_dir": "/mnt/disk1/squid"}, {"cache_dir": "/mnt/disk2/squid"}]}),
        ("cache1", {"squid_backend_instances": [{"name": "a", "cache_dir": "/cache1"}, {"name": "b"}]}),
        ("cache1", {"squid_backend_instances": [{"name": "a", "cache_dir": "/var/spool/squid/a"}, {"name": "b"}]}),
        ("carp1", {"carpfarm_client_networks": ["10.0.0.0/8", "192.168.0.0/16"]}),
        ("carp1", {"carpfarm_client_networks": ["198.18.0.128/26"]}),  # the lab's
        ("carp1", {"carpfarm_client_networks": ["11.0.0.0/9", "2001:db8::/32"], "frontend_balancer_type": "nftables"}),
        ("carp1", {"carpfarm_client_networks": ["0.0.0.0/0"], "carpfarm_allow_open_proxy": True}),
        ("cache1", {"squid_backend_extra_allowed_networks": ["0.0.0.0/0", "::/0"], "carpfarm_allow_open_proxy": True}),
        ("cache1", {"squid_backend_extra_allowed_networks": ["10.9.0.0/16", "2001:db8:1::/48"]}),
        ("carp1", {"carp_frontend_extra_config": "http_access allow all\n", "carpfarm_allow_open_proxy": True}),
        ("carp1", {"carp_frontend_extra_config": "reply_header_add X-Layer frontend all\n"}),
        (
            "carp1",
            {
                "carp_frontend_extra_http_access": [
                    "acl blocked urlpath_regex ^/obj/blocked$",
                    "http_access deny blocked",
                    "acl office src 10.0.0.0/8  # the office",
                    "http_access allow office",
                ]
            },
        ),
        ("cache1", {"squid_backend_extra_http_access": ["acl bad dstdomain .bad.example", "http_access deny bad"]}),
        ("carp1", {"carpfarm_denied_destinations": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]}),
        ("cache1", {"squid_backend_snmp_port_base": 3401, "squid_backend_snmp_community": "k7-Frog.Tea"}),
        ("cache1", {"squid_backend_snmp_community": ""}),  # SNMP off: no community needed
        ("carp1", {"carpfarm_forwarded_for": "truncate", "carpfarm_cache_status_headers": "true"}),
        ("carp1", {"carp_frontend_extra_config": "acl a src 10.0.0.0/8\nhttp_access allow a\n# two\n# lines\n"}),
        ("carp1", {"carp_frontend_extra_config": "acl a src \\\n  10.0.0.0/8\r\nhttp_access allow a\r\n"}),
        ("carp1", {"carp_frontend_extra_config": "include /etc/squid/more.conf\n", "carpfarm_allow_open_proxy": True}),
        ("carp1", {"carp_frontend_extra_config": "acl a src 11.0.0.0/9\nhttp_access allow a\n"}),
        ("cache1", {"squid_backend_extra_http_access": ["acl a src 11.0.0.0/10", "http_access allow a"]}),
        ("carp1", {"carp_frontend_extra_http_access": ["acl users proxy_auth REQUIRED", "http_access allow users"]}),
        ("carp1", {"carpfarm_client_networks": ["::ffff:10.0.0.0/104"], "frontend_balancer_type": "nftables"}),
    ],
)
def test_a_safe_inventory_stays_valid(host: str, values: dict[str, Any]) -> None:
    assert _with(host, **values) == []


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("host", "values", "variable", "words"),
    [
        (
            "cache1",
            {"squid_backend_instances": [{"cache_dir": "/etc"}, {}]},
            "squid_backend_instances[0].cache_dir",
            "ProtectSystem",
        ),
        (
            "cache1",
            {"squid_backend_instances": [{}, {"cache_dir": "/var/spool/squid/backend1"}]},
            "squid_backend_instances[1].cache_dir",
            "(its default)",
        ),
        (
            "cache1",
            {"squid_backend_instances": [{"cache_dir": "/srv/c/x"}, {"cache_dir": "/srv/c"}]},
            "squid_backend_instances[1].cache_dir",
            "contains instance 'backend1''s",
        ),
        (
            "carp1",
            {"carpfarm_client_networks": ["0.0.0.0/1", "128.0.0.0/1"]},
            "carpfarm_client_networks",
            "100.00% of the public IPv4 space",
        ),
        ("carp1", {"carpfarm_client_networks": ["0.0.0.0/0"]}, "carpfarm_client_networks[0]", "open proxy"),
        (
            "carp1",
            {"carpfarm_client_networks": ["::/0"], "frontend_balancer_type": "nftables"},
            "carpfarm_client_networks[0]",
            "public IPv6 space",
        ),
        ("carp1", {"carpfarm_client_networks": ["10.50.1.7/16"]}, "carpfarm_client_networks[0]", "host bits"),
        (
            "cache2",
            {"squid_backend_extra_allowed_networks": ["0.0.0.0/0", "::/0"]},
            "squid_backend_extra_allowed_networks[1]",
            "IPv6",
        ),
        (
            "carp1",
            {"carp_frontend_extra_config": "http_access allow all"},
            "carp_frontend_extra_config",
            "line 1 lets every client",
        ),
        (
            "cache1",
            {"squid_backend_extra_http_access": ["http_access allow"]},
            "squid_backend_extra_http_access[0]",
            "names no ACL",
        ),
        (
            "carp1",
            {"carp_frontend_log_format": "squid\nhttp_access allow all"},
            "carp_frontend_log_format",
            "line break",
        ),
        (
            "carp1",
            {"frontend_balancer_type": "balance"},
            "frontend_balancer_type",
            "balance hides every client's address",
        ),
        (
            "carp1",
            {"frontend_balancer_type": "balance", "carp_frontend_mode": "smp"},
            "frontend_balancer_type",
            "balance hides",
        ),
        ("cache1", {"squid_backend_snmp_port_base": 3401}, "squid_backend_snmp_community", "is required"),
        (
            "cache1",
            {"squid_backend_snmp_port_base": 3401, "squid_backend_snmp_community": "Public"},
            "squid_backend_snmp_community",
            "well-known",
        ),
        (
            "carp1",
            {"carp_frontend_extra_http_access": ["http_access allow ALL"]},
            "carp_frontend_extra_http_access[0]",
            "'ALL' matches every client",
        ),
        (
            "carp1",
            {"carp_frontend_extra_config": "acl CARPFARM_CLIENTS src 0.0.0.0/0", "carpfarm_allow_open_proxy": True},
            "carp_frontend_extra_config",
            "adds to ACL 'carpfarm_clients'",
        ),
        (
            "carp1",
            {"carp_frontend_extra_config": "http_access allow al\\\nl\n"},
            "carp_frontend_extra_config",
            "line 1 lets every client use the proxy, an open proxy: 'all' matches every client",
        ),
        (
            "carp1",
            {"carp_frontend_extra_config": "acl x src 0.0.0.0/0\n# \racl x proxy_auth REQUIRED\nhttp_access allow x\n"},
            "carp_frontend_extra_config",
            "line 3 lets every client use the proxy, an open proxy: 'x' is src over 100.00%",
        ),
        (
            "carp1",
            {"carp_frontend_extra_config": "acl office\x0ccall src all\nhttp_access allow office\x0ccall\n"},
            "carp_frontend_extra_config",
            "line 2 lets every client",
        ),
        (
            "carp1",
            {"carp_frontend_extra_config": "\xa0http_access allow all"},
            "carp_frontend_extra_config",
            "line 1 lets every client",
        ),
        (
            "cache1",
            {"squid_backend_extra_http_access": ["acl x src ipv4", "http_access allow x"]},
            "squid_backend_extra_http_access[1]",
            "'x' is src with a value that could not be measured ('ipv4'",
        ),
        (
            "carp1",
            {"carp_frontend_extra_config": "Include /etc/squid/conf.d/*.conf"},
            "carp_frontend_extra_config",
            "line 1 includes other files",
        ),
        (
            "carp1",
            {"carp_frontend_extra_config": "acl ${service_name} src all\nhttp_access allow frontend1\n"},
            "carp_frontend_extra_config",
            "line 1 names an ACL through a macro",
        ),
        (
            "carp1",
            {"carp_frontend_extra_config": "configuration_includes_quoted_values on\n"},
            "carp_frontend_extra_config",
            "changes how Squid reads",
        ),
        (
            "carp1",
            {
                "carp_frontend_extra_http_access": ["acl m method PURGE", "http_access deny m \\"],
                "carpfarm_allow_open_proxy": True,
            },
            "carp_frontend_extra_http_access[1]",
            "ends in a backslash",
        ),
        (
            "carp1",
            {"carp_frontend_extra_config": "acl d dstdomain " + "a" * 8200 + " b\n"},
            "carp_frontend_extra_config",
            "line 1 is 8218 bytes long",
        ),
        (
            "carp1",
            {
                "carp_frontend_extra_config": "acl a all-of carpfarm_clients CONNECT\nacl a all-of all\n"
                "http_access allow a\n"
            },
            "carp_frontend_extra_config",
            "line 3 lets every client",
        ),
        (
            "carp1",
            {"carpfarm_client_networks": ["::ffff:0:0/96"], "frontend_balancer_type": "nftables"},
            "carpfarm_client_networks[0]",
            "admits 100.00% of the public IPv4 space on its own",
        ),
        (
            "cache1",
            {"squid_backend_extra_allowed_networks": ["::ffff:0.0.0.0/97", "::ffff:128.0.0.0/97"]},
            "squid_backend_extra_allowed_networks",
            "100.00% of the public IPv4 space",
        ),
        (
            "cache1",
            {"squid_backend_extra_http_access": ["acl x src ::ffff:0:0/96", "http_access allow x"]},
            "squid_backend_extra_http_access[1]",
            "'x' is src over 100.00% of the public IPv4 space",
        ),
        (
            "carp1",
            {
                "carp_frontend_extra_config": "acl a src 11.0.0.0/9\nacl b src 12.0.0.0/9\n"
                "http_access allow a\nhttp_access allow b\n"
            },
            "carp_frontend_extra_config",
            "admit together 0.45% of the public IPv4 space",
        ),
        (
            "carp1",
            {"carp_frontend_extra_http_access": ["acl d srcdomain .", "http_access allow d"]},
            "carp_frontend_extra_http_access[1]",
            "'d' is srcdomain '.', which matches every client",
        ),
    ],
)
def test_each_refusal_names_host_variable_and_reason(
    host: str, values: dict[str, Any], variable: str, words: str
) -> None:
    found = [p for p in _with(host, **values) if p.host == host and p.variable == variable]
    assert any(words in p.message for p in found), _with(host, **values)


def test_the_canonical_network_is_the_fix_for_host_bits() -> None:
    (problem,) = list(addresses.cidrs("carp1", "carpfarm_client_networks", ["10.50.1.7/16", "10.50.0.0/16", "::1/128"]))
    assert problem.fix == "write 10.50.0.0/16" and problem.variable == "carpfarm_client_networks[0]"


def test_an_open_proxy_is_told_once_per_item_and_once_for_what_the_items_add() -> None:
    fix = access.OPEN_PROXY_FIX
    single = list(addresses.admitted_space("carp1", "v", ["0.0.0.0/0", "10.0.0.0/8"], False, fix))
    assert [p.variable for p in single] == ["v[0]"]  # the list adds nothing to its first item
    halves = list(addresses.admitted_space("carp1", "v", ["0.0.0.0/1", "128.0.0.0/1"], False, fix))
    assert [p.variable for p in halves] == ["v[0]", "v[1]", "v"]
    assert list(addresses.admitted_space("carp1", "v", ["0.0.0.0/0"], True, fix)) == []


@pytest.mark.parametrize(
    ("admitted", "lines", "allow_open", "variables"),
    [
        ([("carpfarm_client_networks", ["12.0.0.0/9"])], ["acl a src 11.0.0.0/9", "http_access allow a"], False, ["e"]),
        ([("v", ["::ffff:12.0.0.0/105"])], ["acl a src 11.0.0.0/9", "http_access allow a"], False, ["e"]),
        ([("v", ["12.0.0.0/9"])], ["acl a src 11.0.0.0/9", "acl m method GET", "http_access allow a m"], False, ["e"]),
        ([("v", ["12.0.0.0/9"])], ["acl a src 11.0.0.0/9", "follow_x_forwarded_for allow a"], False, ["e"]),
        ([("v", ["12.0.0.0/9"])], ["acl a src 11.0.0.0/9", "http_access deny a"], False, []),
        (
            [("v", ["12.0.0.0/9"])],
            ["acl a src 11.0.0.0/9", "acl u proxy_auth REQUIRED", "http_access allow a u"],
            False,
            [],
        ),
        (
            [("v", ["12.0.0.0/9"])],
            ["acl a src 11.0.0.0/9", "acl b src 11.0.0.0/10", "http_access allow a b"],
            False,
            [],
        ),
        ([("v", ["12.0.0.0/9"])], ["acl a src 11.0.0.0/9", "http_access allow a"], True, []),
        ([("v", ["11.0.0.0/9"])], ["acl a src 11.0.0.0/9", "http_access allow a"], False, []),  # the same clients
        ([], ["http_access allow all"], False, ["e[0]"]),  # told for the line alone, not again for the total
    ],
)
def test_the_allow_lines_and_the_hosts_networks_are_measured_together(
    admitted: list[tuple[str, list[str]]], lines: list[str], allow_open: bool, variables: list[str]
) -> None:
    found = list(access.extra_access("carp1", [("e", lines)], allow_open, admitted))
    assert [p.variable for p in found] == variables, found
    if variables == ["e"]:
        assert "admit together 0.45% of the public IPv4 space" in found[0].message
        assert f"with {admitted[0][0]}" in found[0].message and "carpfarm_allow_open_proxy" in found[0].fix


def test_many_small_src_acls_add_up() -> None:
    lines = [f"acl a{n} src 11.{n // 2}.{128 * (n % 2)}.0/17" for n in range(512)]
    lines += [f"http_access allow a{n}" for n in range(512)]
    (problem,) = access.extra_access("carp1", [("carp_frontend_extra_http_access", lines)], False)
    assert problem.variable == "carp_frontend_extra_http_access"
    assert "the allow lines of carp_frontend_extra_http_access admit together 0.45%" in problem.message


# ---------------------------------------------------------------- one line, from the declarations


def _plain_type(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        annotation = args[0]
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _one_line_variables() -> list[tuple[str, str, Any]]:
    """(host, variable, a value with a line break) for every declared string and list of strings."""
    found = []
    for model, field_name, d in declarations():
        if d.multiline or INTERNAL in d.scope:
            continue
        kind = _plain_type(model.model_fields[field_name].annotation)
        if kind is str:
            value: Any = "one\nhttp_access allow all"
        elif get_origin(kind) is list and _plain_type(get_args(kind)[0]) is str:
            value = ["one\rhttp_access allow all"]
        else:
            continue
        scope = set(d.scope)
        host = "carp1" if scope & {ANYWHERE, FRONTEND_GROUP} else "cache1" if BACKEND_GROUP in scope else "r1"
        found.append((host, d.name, value))
    return found


ONE_LINE = _one_line_variables()


def test_the_one_line_rule_covers_the_declared_strings() -> None:
    names = {name for _, name, _ in ONE_LINE}
    assert {"carp_frontend_log_format", "squid_backend_log_format", "carpfarm_verify_url"} <= names
    assert {"carp_frontend_extra_http_access", "squid_backend_extra_http_access"} <= names
    assert not {"carp_frontend_extra_config", "squid_backend_extra_config"} & names


@pytest.mark.parametrize(("host", "variable", "value"), ONE_LINE, ids=[name for _, name, _ in ONE_LINE])
def test_no_one_line_variable_takes_a_line_break(host: str, variable: str, value: Any) -> None:
    groups, hostvars = _inventory()
    hostvars[host][variable] = value
    shown = variable if isinstance(value, str) else f"{variable}[0]"
    assert [p for p in _problems(groups, hostvars) if p.variable == shown], f"{variable} took a line break"


def test_a_line_break_inside_a_list_of_maps_is_found_too() -> None:
    services = [{"id": 90, "ports": [8080], "password": "a\nb"}]
    problems = list(access.one_line("carp1", FrontendVars, {"carpfarm_wccp_services": services}))
    assert [(p.variable, p.value) for p in problems] == [("carpfarm_wccp_services[0].password", "a\nb")]


# ---------------------------------------------------------------- secrets


def test_the_snmp_community_is_a_secret_never_shown() -> None:
    for values in (
        {"squid_backend_snmp_port_base": 3401, "squid_backend_snmp_community": "public"},
        {"squid_backend_snmp_community": "two words"},
        {"squid_backend_snmp_community": "sec\nret"},
        {"squid_backend_snmp_comunity": "s3cret"},  # a misspelling of it
    ):
        groups, hostvars = _inventory()
        hostvars["cache1"].update(values)
        try:
            build_topology(groups, hostvars, check_names=True)
        except TopologyError as caught:
            text = str(caught) + json.dumps([p.as_dict() for p in caught.problems])
            assert HIDDEN in text and not any(str(v) in text for v in values.values() if isinstance(v, str)), text
        else:
            pytest.fail(f"{values} was taken")
    groups, hostvars = _inventory()
    hostvars["cache1"].update(squid_backend_snmp_port_base=3401, squid_backend_snmp_community="k7-Frog")
    assert "k7-Frog" not in json.dumps(build_topology(groups, hostvars).model_dump())


@pytest.mark.parametrize(
    "services",
    [
        [{"id": 90, "standard": 0, "password": "Sekrit12"}],
        [{"id": 90, "password": "Sekrit12"}],
        [{"standard": 0, "ports": [80], "password": "Sekrit12"}],
        [{"standard": 0, "password": "Sekrit1234"}],
        [{"id": 90, "ports": [8080], "password": "Sekrit12", "flags": ["bogus"], "extra": {"pwd": "Sekrit12"}}],
        [{"id": 9, "ports": [8080], "password": "Sekrit12"}],
    ],
)
def test_a_wccp_services_password_is_never_shown(services: list[dict[str, Any]]) -> None:
    groups, hostvars = _inventory(carpfarm_wccp=True, carpfarm_wccp_services=services)
    problems = _problems(groups, hostvars)
    text = "\n".join(str(p) for p in problems) + json.dumps([p.as_dict() for p in problems])
    assert any(p.variable.startswith("carpfarm_wccp_services") for p in problems), problems
    assert "Sekrit" not in text, text


def test_every_problem_of_a_secure_default_is_reported_at_once() -> None:
    groups, hostvars = copy.deepcopy(_inventory())
    hostvars["carp1"].update(frontend_balancer_type="balance", carpfarm_client_networks=["0.0.0.0/1", "128.0.0.0/1"])
    hostvars["cache1"].update(squid_backend_instances=[{"cache_dir": "/etc"}], squid_backend_snmp_port_base=3401)
    hostvars["cache2"].update(squid_backend_extra_config="http_access allow all", squid_backend_log_format="a\nb")
    told = {(p.host, p.variable) for p in _problems(groups, hostvars)}
    assert told >= {
        ("carp1", "frontend_balancer_type"),
        ("carp1", "carpfarm_client_networks"),
        ("cache1", "squid_backend_instances[0].cache_dir"),
        ("cache1", "squid_backend_snmp_community"),
        ("cache2", "squid_backend_extra_config"),
        ("cache2", "squid_backend_log_format"),
    }


def test_balance_stays_a_choice_so_its_refusal_is_the_specific_one() -> None:
    from carpfarm.variables import BALANCER_TYPES

    assert "balance" in BALANCER_TYPES
    (problem,) = [p for p in _with("carp1", frontend_balancer_type="balance") if p.variable == "frontend_balancer_type"]
    assert "haproxy" in problem.fix and "PROXY v2" in problem.fix


def test_forwarded_for_takes_squids_words() -> None:
    assert _with("carp1", carpfarm_forwarded_for="transparent") == []
    assert any(p.variable == "carpfarm_forwarded_for" for p in _with("carp1", carpfarm_forwarded_for=True))
