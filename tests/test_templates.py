"""Role templates rendered by Ansible's own templar, and checked by the real tools where they exist here.

The molecule scenarios run the iptables, nftables and HAProxy balancers for real. `balance`
has no Debian 12 package, so its unit file and command line are checked here, and its client
filter is handed to the real `nft -c`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

from carpfarm.inventory import load_topology
from carpfarm.plan import balancer_rules, balancer_targets
from conftest import ROOT

EXAMPLE = ROOT / "inventory" / "example"
ROLE = ROOT / "roles" / "frontend_balancer"


def render(template: Path, **variables: Any) -> str:
    init_plugin_loader()
    base = {
        "ansible_managed": "Ansible managed",
        "inventory_hostname": "carp1",
        "__frontend_balancer_chain": "CARPFARM_BALANCE",
        "__frontend_balancer_nft_table": "carpfarm",
        "__frontend_balancer_clients_table": "carpfarm_clients",
    }
    templar = Templar(loader=DataLoader(), variables={**base, **variables})
    return str(templar.template(trust_as_template(template.read_text())))


def balancer(vcpus: int = 4, **overrides: Any) -> dict[str, Any]:
    topology = load_topology(EXAMPLE, vcpus=vcpus)
    data = {**balancer_rules(topology, "carp1"), "targets": balancer_targets(topology, "carp1")}
    data.update(overrides)
    return data


def test_balance_unit_runs_balance_in_the_foreground_over_every_frontend() -> None:
    unit = render(
        ROLE / "templates/etc/systemd/system/carpfarm-balance.service.j2",
        __frontend_balancer=balancer(type="balance"),
        frontend_balancer_balance_binary="",
    )
    lines = unit.splitlines()
    assert "ExecStart=/usr/sbin/balance -f 3128 127.0.0.1:3129 127.0.0.1:3130 127.0.0.1:3131 127.0.0.1:3132" in lines
    assert "ExecStartPre=/usr/sbin/nft -f /etc/carpfarm/balance-clients.nft" in lines
    assert "Restart=on-failure" in lines


def test_balance_unit_uses_the_binary_the_user_names() -> None:
    unit = render(
        ROLE / "templates/etc/systemd/system/carpfarm-balance.service.j2",
        __frontend_balancer=balancer(vcpus=2, type="balance"),
        frontend_balancer_balance_binary="/opt/balance/bin/balance",
    )
    assert "ExecStart=/opt/balance/bin/balance -f 3128 127.0.0.1:3129 127.0.0.1:3130" in unit.splitlines()


def test_balance_client_filter_passes_nft_check(tmp_path: Path) -> None:
    rules = render(
        ROLE / "templates/etc/carpfarm/balance-clients.nft.j2",
        __frontend_balancer=balancer(client_networks_v6=["2001:db8::/32"]),
    )
    assert "ip saddr { 198.51.100.0/24, 203.0.113.0/24 } tcp dport 3128 accept" in rules
    assert "ip6 saddr { 2001:db8::/32 } tcp dport 3128 accept" in rules
    assert rules.rstrip().splitlines()[-3].strip() == "tcp dport 3128 drop"
    (tmp_path / "f.nft").write_text(rules)
    subprocess.run(["nft", "-c", "-f", str(tmp_path / "f.nft")], check=True, capture_output=True)


@pytest.mark.parametrize("mode", ["random", "roundrobin"])
def test_kernel_rules_pass_the_real_checkers(tmp_path: Path, mode: str) -> None:
    data = balancer(mode=mode)
    ipt = render(ROLE / "templates/etc/carpfarm/balancer.rules.j2", __frontend_balancer=data)
    nft = render(ROLE / "templates/etc/carpfarm/balancer.nft.j2", __frontend_balancer=data)
    if mode == "random":
        assert "-m statistic --mode random --probability 0.33333333349 -j REDIRECT --to-ports 3130" in ipt
        assert "numgen random mod 4 map { 0 : 3129, 1 : 3130, 2 : 3131, 3 : 3132 }" in nft
    else:
        assert "-m statistic --mode nth --every 3 --packet 0 -j REDIRECT --to-ports 3130" in ipt
        assert "numgen inc mod 4" in nft
    (tmp_path / "r").write_text(ipt)
    (tmp_path / "n").write_text(nft)
    subprocess.run(["iptables-restore", "--test", "--noflush", str(tmp_path / "r")], check=True, capture_output=True)
    subprocess.run(["nft", "-c", "-f", str(tmp_path / "n")], check=True, capture_output=True)


def test_held_out_instance_leaves_an_exactly_fair_cascade_over_the_rest(tmp_path: Path) -> None:
    """While one frontend restarts, the kernel balancer spreads over the other three, 1/3 each."""
    topology = load_topology(EXAMPLE, vcpus=4)
    held = balancer_rules(topology, "carp1", exclude=[3130])
    assert [r["target"] for r in held["cascade"]] == [3129, 3131, 3132]
    assert [r["iptables_probability"] for r in held["cascade"]] == ["0.33333333349", "0.50000000000", "1.00000000000"]
    assert sorted({e["port"] for e in held["nft_map"]}) == [3129, 3131, 3132]
    rules = render(ROLE / "templates/etc/carpfarm/balancer.nft.j2", __frontend_balancer={**balancer(), **held})
    assert ": 3130" not in rules
    (tmp_path / "held.nft").write_text(rules)
    subprocess.run(["nft", "-c", "-f", str(tmp_path / "held.nft")], check=True, capture_output=True)
    with pytest.raises(ValueError, match="leaves no frontend instance"):
        balancer_rules(topology, "carp1", exclude=[3129, 3130, 3131, 3132])
