"""WCCPv2 settings, Squid's wccp2_* stanza (checked by the real squid -k parse) and the router's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from carpfarm.model import Topology, build_topology
from carpfarm.plan import balancer_rules, plan
from carpfarm.problems import TopologyError
from carpfarm.wccp.settings import (
    WccpService,
    WccpSettings,
    handshake_defects,
    router_stanza,
    squid_stanza,
    squid_version,
)
from support.inventories import wccp_box

SQUID = "/usr/sbin/squid"


def _topology(**wccp: Any) -> Topology:
    return build_topology(*wccp_box(**wccp))


def test_routers_come_from_the_list_and_the_group_and_intercept_ports_follow_the_instances() -> None:
    wccp = _topology().frontends[0].wccp
    assert wccp is not None
    assert wccp.routers == ("192.0.2.1", "192.0.2.2")
    assert wccp.intercept_ports == (3229, 3230)
    assert wccp.return_method == wccp.forwarding_method == "gre"
    assert [s.ident for s in wccp.services] == [0]


@pytest.mark.squid
@pytest.mark.parametrize("method", ["gre", "l2"])
def test_squid_accepts_the_stanza(tmp_path: Path, method: str) -> None:
    services = [{"standard": 0}, {"id": 90, "ports": [80, 8080], "flags": ["src_ip_hash", "ports_source"]}]
    wccp = (
        _topology(
            carpfarm_wccp_forwarding_method=method,
            carpfarm_wccp_assignment_method="mask",
            carpfarm_wccp_services=services,
            carpfarm_wccp_password="s3cret",
        )
        .frontends[0]
        .wccp
    )
    assert wccp is not None
    lines = squid_stanza(wccp)
    assert lines[:2] == ["wccp2_router 192.0.2.1", "wccp2_router 192.0.2.2"]
    assert f"wccp2_forwarding_method {method}" in lines and "wccp2_assignment_method mask" in lines
    assert "wccp2_service standard 0 password=s3cret" in lines
    assert "wccp2_service_info 90 protocol=tcp flags=src_ip_hash,ports_source priority=240 ports=80,8080" in lines
    conf = tmp_path / "squid.conf"
    conf.write_text("\n".join(["http_port 127.0.0.1:3999", "http_port 127.0.0.1:3998 intercept", *lines]) + "\n")
    result = subprocess.run([SQUID, "-k", "parse", "-f", str(conf)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Processing: wccp2_service dynamic 90 password=s3cret" in result.stderr


def test_router_stanza_redirects_only_clients_and_admits_only_the_box() -> None:
    wccp = (
        _topology(carpfarm_wccp_services=[{"standard": 0, "password": "pw"}, {"id": 91, "ports": [8080, 3000]}])
        .frontends[0]
        .wccp
    )
    assert wccp is not None
    text = router_stanza("carp1", "192.0.2.10", ["198.51.100.0/24", "2001:db8::/32"], wccp)
    lines = text.splitlines()
    assert "ip access-list standard CARPFARM-CARP1-CACHES" in lines and " permit host 192.0.2.10" in lines
    assert " deny   ip host 192.0.2.10 any" in lines  # the box's own fetches are never redirected back
    assert " permit tcp 198.51.100.0 0.0.0.255 any eq 80" in lines
    assert " permit tcp 198.51.100.0 0.0.0.255 any eq 8080" in lines
    assert " permit tcp 198.51.100.0 0.0.0.255 any eq 3000" in lines
    assert not any("2001:db8" in line for line in lines)  # IOS WCCPv2 redirect ACLs are IPv4
    # No cleartext password: a placeholder the operator replaces, and a comment that says so.
    assert (
        "ip wccp web-cache redirect-list CARPFARM-CARP1-REDIRECT-0 group-list CARPFARM-CARP1-CACHES "
        "password 0 <web-cache-password>" in lines
    )
    assert "pw" not in text.replace("password", "")
    assert any(line.startswith("! carpfarm writes no password here") for line in lines)
    assert "ip wccp 91 redirect-list CARPFARM-CARP1-REDIRECT-91 group-list CARPFARM-CARP1-CACHES" in lines
    assert lines[-4:] == [
        "interface GigabitEthernet0/0",
        " ip wccp web-cache redirect in",
        " ip wccp 91 redirect in",
        "!",
    ]


def test_plan_carries_both_stanzas() -> None:
    data = plan(_topology())
    wccp = data["frontends"][0]["wccp"]
    assert wccp["squid"][:2] == ["wccp2_address 192.0.2.10", "wccp2_router 192.0.2.1"]
    assert "ip wccp web-cache redirect-list" in wccp["router"]
    assert plan(_topology(carpfarm_wccp=False))["frontends"][0]["wccp"] is None


def test_plan_shows_no_wccp_password_anywhere() -> None:
    """plan (and so carpfarm plan and --json) masks every password; the squid.conf lines keep theirs."""
    services = [{"standard": 0}, {"id": 90, "ports": [8080], "password": "own9pw"}]
    topology = _topology(carpfarm_wccp_password="s3cret", carpfarm_wccp_services=services)
    wccp = plan(topology)["frontends"][0]["wccp"]
    text = json.dumps(wccp)
    assert "s3cret" not in text and "own9pw" not in text
    assert "wccp2_service standard 0 password=<set>" in wccp["squid"]
    assert "wccp2_service dynamic 90 password=<set>" in wccp["squid"]
    assert [s["password"] for s in wccp["settings"]["services"]] == ["<set>", "<set>"]
    assert " password 0 <service-90-password>" in wccp["router"]
    settings = topology.frontends[0].wccp
    assert settings is not None
    assert "wccp2_service standard 0 password=s3cret" in squid_stanza(settings)  # what squid.conf gets
    assert plan(_topology())["frontends"][0]["wccp"]["settings"]["services"][0]["password"] is None


@pytest.mark.parametrize(
    ("service", "words"),
    [
        ({"standard": 0, "id": 90}, "not both or neither"),
        ({"id": 90}, "needs 'ports'"),
        ({"standard": 0, "ports": [80]}, "remove 'ports'"),
        ({"id": 50, "ports": [80]}, "greater than or equal to 51"),
        ({"id": 90, "ports": list(range(1, 10))}, "at most 8"),
    ],
)
def test_bad_services_are_refused(service: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        WccpService(**service)


def test_the_redirect_takes_every_service_port_and_spreads_like_the_balancer() -> None:
    services = [{"standard": 0}, {"id": 90, "ports": [8080, 80]}]
    topology = _topology(carpfarm_wccp_services=services, carpfarm_wccp_forwarding_method="l2")
    rules = balancer_rules(topology, "carp1")
    intercept = rules["intercept"]
    assert intercept["dports"] == [80, 8080] and intercept["interfaces"] == []
    assert intercept["ports"] == [3229, 3230]
    assert [r["target"] for r in intercept["cascade"]] == [3229, 3230]
    assert [r["iptables_probability"] for r in intercept["cascade"]] == ["0.50000000000", "1.00000000000"]
    held = balancer_rules(topology, "carp1", exclude=[3130])["intercept"]  # frontend2 held out: its 3230 too
    assert [r["target"] for r in held["cascade"]] == [3229] and {e["port"] for e in held["nft_map"]} == {3229}
    gre = balancer_rules(_topology(), "carp1")["intercept"]
    assert gre["interfaces"] == ["carpfarm-wccp0", "carpfarm-wccp1"]  # one tunnel per router
    assert balancer_rules(_topology(carpfarm_wccp=False), "carp1")["intercept"] is None


@pytest.mark.parametrize(
    ("overrides", "variable", "words"),
    [
        ({"frontend_balancer_type": "haproxy"}, "frontend_balancer_type", "needs a kernel balancer"),
        ({"frontend_balancer_type": "balance"}, "frontend_balancer_type", "needs a kernel balancer"),
        ({"carpfarm_wccp_services": [{"id": 70, "ports": [443]}]}, "carpfarm_wccp_services[0]", "not plain HTTP"),
        (
            {"carpfarm_wccp_services": [{"standard": 0}, {"id": 92, "ports": [53], "protocol": "udp"}]},
            "carpfarm_wccp_services[1]",
            "not plain HTTP",
        ),
    ],
)
def test_what_cannot_be_intercepted_is_refused(overrides: dict[str, Any], variable: str, words: str) -> None:
    with pytest.raises(TopologyError) as caught:
        _topology(**overrides)
    problems = [p for p in caught.value.problems if p.host == "carp1" and p.variable == variable]
    assert any(words in p.message for p in problems), caught.value.problems


@pytest.mark.parametrize(
    ("written", "version", "defects"),
    [
        ("Squid Cache: Version 5.7", (5, 7), 2),  # Debian 12
        ("5.7-2+deb12u6", (5, 7), 2),
        ("6.13-2", (6, 13), 2),  # Debian 13
        ("1:7.7-1", (7, 7), 1),  # the inverted check is fixed from 7.0.1, the offsets are not
        ("7.0.1", (7, 0, 1), 1),
        ("4.17", (4, 17), 2),
        ("5.2", (5, 2), 2),
        ("4.16", (4, 16), 0),  # before the rewrite that brought both
        ("5.1", (5, 1), 0),
    ],
)
def test_each_squid_release_is_told_the_handshake_defects_it_has(written: str, version: Any, defects: int) -> None:
    assert squid_version(written) == version
    found = handshake_defects(version)
    assert len(found) == defects
    assert all(what and fix for what, fix in found)


def test_text_without_a_version_has_none() -> None:
    assert squid_version("squid: command not found") is None


def _wccp_box(name: str, address: str, **overrides: object) -> tuple[str, str, tuple[str, ...], WccpSettings]:
    settings = WccpSettings(routers=("192.0.2.1",), forwarding_method="l2", return_method="l2")
    return (name, address, ("198.51.100.0/24",), settings.model_copy(update=overrides))


def test_boxes_that_share_a_router_get_one_stanza_admitting_them_all() -> None:
    from carpfarm.wccp.settings import service_group

    boxes = [_wccp_box("carp1", "192.0.2.10"), _wccp_box("carp2", "192.0.2.11"),
             _wccp_box("carp3", "192.0.2.12", routers=("192.0.2.2",))]  # fmt: skip
    group = service_group("carp2", boxes)
    assert group == [("carp1", "192.0.2.10"), ("carp2", "192.0.2.11")]
    first = router_stanza("carp1", "192.0.2.10", ["198.51.100.0/24"], boxes[0][3], group)
    assert router_stanza("carp2", "192.0.2.11", ["198.51.100.0/24"], boxes[1][3], group) == first
    lines = first.splitlines()
    assert lines[lines.index("ip access-list standard CARPFARM-CARP1-CACHES") + 1 :][:2] == [
        " permit host 192.0.2.10",
        " permit host 192.0.2.11",
    ]
    assert " deny   ip host 192.0.2.11 any" in lines and " deny   ip host 192.0.2.10 any" in lines
    assert service_group("carp3", boxes) == [("carp3", "192.0.2.12")]


def test_boxes_in_one_service_group_must_agree_and_each_difference_is_named() -> None:
    from carpfarm.wccp.settings import service_group_problems

    base = _wccp_box("carp1", "192.0.2.10")
    assert list(service_group_problems([base, _wccp_box("carp2", "192.0.2.11")])) == []
    other_router = _wccp_box("carp3", "192.0.2.12", routers=("192.0.2.2",))
    assert list(service_group_problems([base, other_router])) == []  # no router in common: no group
    mask = _wccp_box("carp2", "192.0.2.11", assignment_method="mask")
    (problem,) = service_group_problems([base, mask])
    assert (problem.host, problem.variable, problem.value) == ("carp2", "carpfarm_wccp_assignment_method", "mask")
    assert "shares router 192.0.2.1 with carp1" in problem.message and "carp1 has 'hash'" in problem.message
    service = WccpService(id=90, ports=[80], priority=200)
    wider = _wccp_box("carp2", "192.0.2.11", services=(service.model_copy(update={"ports": [80, 8080]}),),
                      routers=("192.0.2.1",))  # fmt: skip
    problems = list(service_group_problems([_wccp_box("carp1", "192.0.2.10", services=(service,)), wider]))
    assert [p.variable for p in problems] == ["carpfarm_wccp_services"]
    more_routers = _wccp_box("carp2", "192.0.2.11", routers=("192.0.2.1", "192.0.2.2"))
    (problem,) = service_group_problems([base, more_routers])
    assert problem.variable == "carpfarm_wccp_routers" and "spans the same routers" in problem.message
    clients = ("carp2", "192.0.2.11", ("203.0.113.0/24",), base[3])
    assert [p.variable for p in service_group_problems([base, clients])] == ["carpfarm_client_networks"]
