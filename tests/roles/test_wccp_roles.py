"""The WCCP parts of the roles' templates, rendered by Ansible and checked by the real tools.

The molecule `wccp` scenario runs l2 forwarding for real. GRE cannot run on this kernel, so
its rules, tunnel script and Squid configs are checked here: rendered, then handed to
`squid -k parse`, `iptables-restore --test`, `nft -c` and `sh -n`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from support.ansible import filters, render, role_defaults
from support.inventories import wccp_box
from support.paths import ROOT

ROLES = ROOT / "roles"
SQUID = "/usr/sbin/squid"
SERVICES = [{"standard": 0}, {"id": 90, "ports": [80, 8080], "password": "pw90"}]
NAMES = {
    "__frontend_balancer_chain": "CARPFARM_BALANCE",
    "__frontend_balancer_wccp_chain": "CARPFARM_WCCP",
    "__frontend_balancer_nft_table": "carpfarm",
}


def _facts(method: str) -> dict[str, Any]:
    """What the roles' preflight tasks compute for carp1 (two instances, two routers)."""
    groups, hostvars = wccp_box(carpfarm_wccp_forwarding_method=method, carpfarm_wccp_services=SERVICES)
    f = filters()
    return {
        "__carp_frontend_self": f["carpfarm_frontend"](hostvars, groups, "carp1"),
        "__carp_frontend_own": f["carpfarm_own_destinations"](hostvars, groups),
        "__carp_frontend_instances": f["carpfarm_frontend_ports"](hostvars, groups, "carp1"),
        "__carp_frontend_peers": f["carpfarm_cache_peers"](
            hostvars, groups, options={"selection": "carp", "connect_fail_limit": 2, "connect_timeout": 2}
        ),
        "__frontend_balancer": f["carpfarm_balancer"](hostvars, groups, "carp1"),
        "__wccp_box": f["carpfarm_frontend"](hostvars, groups, "carp1"),
        # What the squid.conf template reads besides the facts (carpfarm_wccp_squid's input).
        "hostvars": hostvars,
        "groups": groups,
        "inventory_hostname": "carp1",
    }


@pytest.mark.squid
@pytest.mark.parametrize("method", ["gre", "l2"])
def test_every_instance_intercepts_and_only_the_first_joins_the_routers(tmp_path: Path, method: str) -> None:
    facts = _facts(method)
    configs = {}
    for item in facts["__carp_frontend_instances"]:
        text = render(
            ROLES / "carp_frontend/templates/etc/squid/frontend.conf.j2",
            item=item,
            **role_defaults("carp_frontend"),
            **facts,
        )
        path = tmp_path / f"{item['name']}.conf"
        path.write_text(text)
        parsed = subprocess.run([SQUID, "-k", "parse", "-f", str(path)], capture_output=True, text=True, check=False)
        assert parsed.returncode == 0, parsed.stderr
        configs[item["name"]] = text.splitlines()
    one, two = configs["frontend1"], configs["frontend2"]
    assert "http_port 3229 intercept" in one and "http_port 3230 intercept" in two
    assert [line for line in one if line.startswith("wccp2_router")] == [
        "wccp2_router 192.0.2.1",
        "wccp2_router 192.0.2.2",
    ]
    assert "wccp2_address 192.0.2.10" in one and f"wccp2_forwarding_method {method}" in one
    assert "wccp2_service dynamic 90 password=pw90" in one
    assert not any(line.startswith("wccp2_") for line in two)


def test_no_fact_holds_a_wccp_password() -> None:
    """What the filters return becomes facts, which -v prints: the passwords are masked there, and the
    topology made from those facts masks them still; only carpfarm_wccp_squid (squid.conf) has them."""
    facts = _facts("gre")
    groups, hostvars = facts["groups"], facts["hostvars"]
    f = filters()
    topology = f["carpfarm_topology"](hostvars, groups)
    shown = [facts[k] for k in facts if k.startswith("__")] + [topology, f["carpfarm_frontend"](topology, "carp1")]
    assert "pw90" not in json.dumps(shown)
    assert "password=<set>" in json.dumps(facts["__carp_frontend_self"])
    assert "wccp2_service dynamic 90 password=pw90" in f["carpfarm_wccp_squid"](hostvars, groups, "carp1")
    with pytest.raises(AnsibleFilterError, match="holds no WCCP password"):
        f["carpfarm_wccp_squid"](topology, groups, "carp1")


@pytest.mark.iptables
@pytest.mark.nft
@pytest.mark.parametrize("mode", ["random", "roundrobin"])
@pytest.mark.parametrize("method", ["gre", "l2"])
def test_the_redirect_rules_pass_the_real_checkers(tmp_path: Path, method: str, mode: str) -> None:
    balancer = {**_facts(method)["__frontend_balancer"], "mode": mode}
    ipt = render(
        ROLES / "frontend_balancer/templates/etc/carpfarm/balancer.rules.j2",
        __frontend_balancer_ruleset=balancer,
        **NAMES,
    )
    nft = render(
        ROLES / "frontend_balancer/templates/etc/carpfarm/balancer.nft.j2",
        __frontend_balancer_ruleset=balancer,
        **NAMES,
    )
    tunnels = " -i carpfarm-wccp0" if method == "gre" else ""
    select = (
        f"-A CARPFARM_WCCP -s 198.51.100.0/24{tunnels} -p tcp -m multiport --dports 80,8080 "
        "-m addrtype ! --dst-type LOCAL -j CARPFARM_WCCP_SPREAD"
    )
    assert select in ipt.splitlines()
    assert "-A CARPFARM_WCCP_SPREAD -p tcp -j REDIRECT --to-ports 3230" in ipt.splitlines()
    assert "--dports 3229,3230 -m conntrack ! --ctstate DNAT -j DROP" in ipt
    assert "2001:db8" not in ipt  # WCCPv2 redirects IPv4
    gen = "inc" if mode == "roundrobin" else "random"
    assert f"tcp dport {{ 80, 8080 }} counter redirect to :numgen {gen} mod 2 map {{ 0 : 3229, 1 : 3230 }}" in nft
    assert ("iifname { carpfarm-wccp0, carpfarm-wccp1 }" in nft) == (method == "gre")
    assert "tcp dport { 3229, 3230 } ct status & dnat == 0 counter drop" in nft
    (tmp_path / "r").write_text(ipt)
    (tmp_path / "n").write_text(nft)
    subprocess.run(["iptables-restore", "--test", "--noflush", str(tmp_path / "r")], check=True, capture_output=True)
    subprocess.run(["nft", "-c", "-f", str(tmp_path / "n")], check=True, capture_output=True)


@pytest.mark.parametrize("wccp", [True, False])
def test_the_loader_script_adds_or_removes_the_wccp_jumps(tmp_path: Path, wccp: bool) -> None:
    balancer = {**_facts("l2")["__frontend_balancer"], "type": "iptables"}
    if not wccp:
        balancer = {**balancer, "intercept": None}
    script = render(
        ROLES / "frontend_balancer/templates/usr/local/sbin/carpfarm-balancer-iptables.j2",
        __frontend_balancer=balancer,
        **NAMES,
    )
    (tmp_path / "loader").write_text(script)
    subprocess.run(["sh", "-n", str(tmp_path / "loader")], check=True)
    assert ('has nat PREROUTING "$wccp_nat" || iptables -t nat -I PREROUTING 1 $wccp_nat' in script) == wccp
    assert ("while has nat PREROUTING" in script) == (not wccp)


def test_the_gre_tunnel_script_names_one_tunnel_per_router(tmp_path: Path) -> None:
    facts = _facts("gre")
    script = render(ROLES / "wccp/templates/usr/local/sbin/carpfarm-wccp-tunnels.j2", **facts)
    (tmp_path / "tunnels").write_text(script)
    subprocess.run(["sh", "-n", str(tmp_path / "tunnels")], check=True)
    lines = script.splitlines()
    assert "local_address=192.0.2.10" in lines
    assert "carpfarm-wccp0 192.0.2.1" in lines and "carpfarm-wccp1 192.0.2.2" in lines
    assert 'ip tunnel add "$1" mode gre remote "$2" local "$local_address" ttl 255' in script
    # Loose reverse-path filtering on the tunnel alone (the kernel takes the higher of 'all' and the tunnel's).
    assert 'echo 2 > "/proc/sys/net/ipv4/conf/$1/rp_filter"' in script
    assert "ip_forward" not in script.replace("no ip_forward", "")


def test_gre_makes_the_box_no_router() -> None:
    """A REDIRECTed packet is delivered locally: no ip_forward, no host-wide rp_filter change."""
    tasks = yaml.safe_load((ROLES / "wccp/tasks/tunnels.yml").read_text())
    build = next(t for t in tasks if t["name"] == "Build the GRE tunnels")["block"]
    assert [t for t in build if "ansible.posix.sysctl" in t] == []
    assert "net.ipv4.ip_forward: 1" not in (ROLES / "wccp/tasks/tunnels.yml").read_text()


PREFLIGHT_INVENTORY = """
all:
  vars:
    carpfarm_client_networks: [198.51.100.0/24]
  children:
    carp_frontends:
      hosts:
        carp1:
          ansible_host: 192.0.2.10
          ansible_connection: local
          carp_frontend_instances: 2
          carpfarm_wccp: true
          carpfarm_wccp_routers: [192.0.2.1]
          carpfarm_wccp_forwarding_method: l2
    squid_backends:
      hosts:
        cache1:
          ansible_host: 192.0.2.21
"""
PREFLIGHT_PLAY = """
- name: The wccp role's preflight, as validate.yml runs it
  hosts: carp_frontends
  gather_facts: false
  tasks:
    - name: Run it
      ansible.builtin.include_role:
        name: wccp
        tasks_from: preflight
"""


def _preflight(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    (tmp_path / "hosts.yml").write_text(PREFLIGHT_INVENTORY)
    (tmp_path / "play.yml").write_text(PREFLIGHT_PLAY)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(bin_dir / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
         "-e", f"ansible_python_interpreter={sys.executable}", *extra],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip


@pytest.mark.squid
def test_a_wccp_box_with_a_stock_squid_stops_with_the_release_both_defects_and_the_fix(tmp_path: Path) -> None:
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "squid"], capture_output=True, text=True, check=True
    ).stdout
    result = _preflight(tmp_path)
    out = " ".join(result.stdout.split())  # the message is folded over lines
    assert result.returncode != 0, out
    assert f"(Debian's {installed})" in out
    assert "Defect 1: CheckFieldDataLength()" in out and "Defect 2: the router view's address count" in out
    assert "Nothing was changed. Fix: install a Squid built with those corrections" in out
    assert "carpfarm_wccp_squid_fixed: true" in out


@pytest.mark.squid
def test_a_wccp_box_declared_fixed_passes_the_preflight(tmp_path: Path) -> None:
    result = _preflight(tmp_path, "-e", "carpfarm_wccp_squid_fixed=true")
    assert result.returncode == 0, result.stdout[-3000:]
