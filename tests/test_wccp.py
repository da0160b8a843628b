"""WCCPv2 settings, Squid's wccp2_* stanza (checked by the real squid -k parse) and the router's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from carpfarm.model import Topology
from carpfarm.plan import plan
from carpfarm.wccp import WccpService, router_stanza, squid_stanza

SQUID = "/usr/sbin/squid"


def _topology(**wccp: Any) -> Topology:
    carp1 = {
        "ansible_host": "192.0.2.10",
        "carpfarm_client_networks": ["198.51.100.0/24", "2001:db8::/32"],
        "carp_frontend_instances": 2,
        "carpfarm_wccp": True,
        "carpfarm_wccp_routers": ["192.0.2.1"],
        **wccp,
    }
    groups = {"carp_frontends": ["carp1"], "squid_backends": ["cache1"], "wccp_routers": ["r2"]}
    hostvars = {"carp1": carp1, "cache1": {"ansible_host": "192.0.2.21"}, "r2": {"ansible_host": "192.0.2.2"}}
    return Topology.from_inventory(groups, hostvars)


def test_routers_come_from_the_list_and_the_group_and_intercept_ports_follow_the_instances() -> None:
    wccp = _topology().frontends[0].wccp
    assert wccp is not None
    assert wccp.routers == ("192.0.2.1", "192.0.2.2")
    assert wccp.intercept_ports == (3229, 3230)
    assert wccp.return_method == wccp.forwarding_method == "gre"
    assert [s.ident for s in wccp.services] == [0]


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
        _topology(carpfarm_wccp_services=[{"standard": 0, "password": "pw"}, {"id": 91, "ports": [443]}])
        .frontends[0]
        .wccp
    )
    assert wccp is not None
    text = router_stanza("carp1", "192.0.2.10", ["198.51.100.0/24", "2001:db8::/32"], wccp)
    lines = text.splitlines()
    assert "ip access-list standard CARPFARM-CARP1-CACHES" in lines and " permit host 192.0.2.10" in lines
    assert " deny   ip host 192.0.2.10 any" in lines  # the box's own fetches are never redirected back
    assert " permit tcp 198.51.100.0 0.0.0.255 any eq 80" in lines
    assert " permit tcp 198.51.100.0 0.0.0.255 any eq 443" in lines
    assert not any("2001:db8" in line for line in lines)  # IOS WCCPv2 redirect ACLs are IPv4
    assert (
        "ip wccp web-cache redirect-list CARPFARM-CARP1-REDIRECT-0 group-list CARPFARM-CARP1-CACHES password 0 pw"
        in lines
    )
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
    assert wccp["squid"][0] == "wccp2_router 192.0.2.1"
    assert "ip wccp web-cache redirect-list" in wccp["router"]
    assert plan(_topology(carpfarm_wccp=False))["frontends"][0]["wccp"] is None


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


def test_site_yml_refuses_wccp_before_touching_any_host(example_inventory: Path) -> None:
    """The host side of WCCP is not built yet: the controller's validate play says so and stops."""
    root = Path(__file__).resolve().parents[1]
    (example_inventory / "host_vars" / "carp1.yml").write_text(
        "carpfarm_wccp: true\ncarpfarm_wccp_routers: [192.0.2.1]\n"
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(root / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            str(example_inventory),
            str(root / "playbooks" / "validate.yml"),
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
    )
    assert result.returncode != 0
    assert "carp1: carpfarm_wccp is true, but this version of carpfarm does not yet" in result.stdout.replace("\n", " ")
