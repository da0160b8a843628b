"""Floating client addresses (carpfarm.model.vip): what the model accepts and refuses, what keepalived
on each box is given, and how the role reads the boxes' VRRP states."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from carpfarm.model import build_topology
from carpfarm.plan import vrrp
from carpfarm.problems import TopologyError
from support.ansible import filters, peer_options, render, role_defaults
from support.inventories import carp_boxes
from support.paths import ROOT

FRONTEND_CONF = ROOT / "roles" / "carp_frontend" / "templates" / "etc" / "squid" / "frontend.conf.j2"

CLIENTS = ["198.51.100.0/24"]
SHARED = {"carpfarm_vip": "192.0.2.9/24", "carpfarm_vrrp_password": "s3cret"}


def _inventory(boxes: int = 2, **shared: Any) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    return carp_boxes(boxes, 2, 2, CLIENTS, **{**SHARED, **shared})


def _problems(groups: dict[str, list[str]], hostvars: dict[str, dict[str, Any]]) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        build_topology(groups, hostvars)
    return [str(p) for p in caught.value.problems]


def test_boxes_sharing_an_address_form_one_group_with_the_same_peers() -> None:
    groups, hostvars = _inventory(3)
    hostvars["carp1"]["carpfarm_vrrp_priority"] = 150
    topology = build_topology(groups, hostvars)
    views = {b.name: vrrp.keepalived_view(topology.frontends, b.name, {}) for b in topology.frontends}
    assert {v["cidr"] for v in views.values() if v} == {"192.0.2.9/24"}
    assert views["carp1"] is not None and views["carp2"] is not None
    assert views["carp1"]["unicast_src"] == "192.0.2.10"
    assert views["carp1"]["unicast_peers"] == ["192.0.2.11", "192.0.2.12"]
    assert views["carp2"]["unicast_peers"] == ["192.0.2.10", "192.0.2.12"]
    assert [views[b]["priority"] for b in ("carp1", "carp2", "carp3")] == [150, 100, 100]  # type: ignore[index]
    assert views["carp1"]["frontend_units"] == ["squid@frontend1.service", "squid@frontend2.service"]
    assert views["carp1"]["balancer_unit"] == "carpfarm-balancer.service"
    # The shared secret stays out of every dump of the model (plans, JSON, the filters' topology).
    assert "s3cret" not in json.dumps(topology.model_dump()) and "password" not in views["carp1"]


def test_a_box_without_the_address_gets_no_keepalived() -> None:
    groups, hostvars = _inventory(3)
    hostvars["carp3"]["carpfarm_vip"] = ""
    topology = build_topology(groups, hostvars)
    assert vrrp.keepalived_view(topology.frontends, "carp3", {}) is None
    assert vrrp.keepalived_view(topology.frontends, "carp1", {})["unicast_peers"] == ["192.0.2.11"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"carp2": {"carpfarm_vrrp_id": 7}}, "carp2: carpfarm_vrrp_id = 7: differs from carp1's (51)"),
        ({"carp2": {"carpfarm_vrrp_password": "other"}}, "carp2: carpfarm_vrrp_password = '(hidden)'"),
        ({"carp2": {"carpfarm_vip": "192.0.2.9/25"}}, "carp2: carpfarm_vip = '192.0.2.9/25': differs from carp1's"),
        ({"carp2": {"carp_frontend_listen_port": 8080}}, "carp2: carp_frontend_listen_port = 8080"),
        ({"carp1": {"carpfarm_vip": "192.0.2.10/24"}}, "is the address of host carp1"),
        ({"carp1": {"carpfarm_vip": "192.0.2.0/24"}}, "is the network address of 192.0.2.0/24"),
        ({"carp1": {"carpfarm_vip": "192.0.2.255/24"}}, "is the broadcast address"),
        ({h: {"carpfarm_vip": "192.0.2.9/31"} for h in ("carp1", "carp2")}, "192.0.2.10 is not in 192.0.2.8/31"),
        ({"carp1": {"carpfarm_vip": "vip.example/24"}}, "is not an address with a prefix length"),
        ({"carp1": {"carpfarm_vip": "192.0.2.9/33"}}, "is not an address with a prefix length"),
        ({"carp1": {"carpfarm_vrrp_interface": "eth0; reboot"}}, "carp1: carpfarm_vrrp_interface"),
        ({"carp1": {"carpfarm_vrrp_advert_interval": 0}}, "carp1: carpfarm_vrrp_advert_interval = 0"),
        ({"carp1": {"carpfarm_vrrp_preempt": "maybe"}}, "carp1: carpfarm_vrrp_preempt = 'maybe'"),
        ({"carp2": {"carpfarm_vrrp_advert_interval": 2}}, "carp2: carpfarm_vrrp_advert_interval = 2: differs"),
        ({"carp2": {"carp_frontend_address": "192.0.2.10"}}, "carp2: carp_frontend_address = '192.0.2.10': is also"),
        ({h: {"carpfarm_vip": "192.0.2.9/32"} for h in ("carp1", "carp2")}, "has prefix length 32"),
        ({"carp2": {"carp_frontend_address": "2001:db8::11"}}, "carp_frontend_address = '2001:db8::11': is IPv6"),
        ({"carp1": {"carpfarm_vrrp_password": "a b"}}, "carp1: carpfarm_vrrp_password = '(hidden)': string should"),
        ({"carp1": {"carpfarm_vrrp_password": "ab#cd"}}, "carp1: carpfarm_vrrp_password = '(hidden)'"),
        ({"carp1": {"carpfarm_vrrp_password": "pässwö"}}, "carp1: carpfarm_vrrp_password = '(hidden)'"),
    ],
)
def test_what_the_model_refuses(change: dict[str, dict[str, Any]], words: str) -> None:
    groups, hostvars = _inventory(2)
    for host, values in change.items():
        hostvars[host].update(values)
    problems = _problems(groups, hostvars)
    assert any(words in p for p in problems), problems
    assert all("Fix: " in p for p in problems)


def test_a_password_differs_without_showing_either() -> None:
    groups, hostvars = _inventory(2)
    hostvars["carp2"]["carpfarm_vrrp_password"] = "zq9x"
    problems = _problems(groups, hostvars)
    assert not any("s3cret" in p or "zq9x" in p for p in problems), problems


def test_a_password_never_shows_whatever_is_wrong_with_it() -> None:
    """Too long, not a string, a character keepalived.conf misreads, or a misspelt name: the value
    is hidden in every problem carpfarm prints."""
    for bad in ("much-too-long", 12345678, "ab cd"):
        groups, hostvars = _inventory(2)
        hostvars["carp1"]["carpfarm_vrrp_password"] = bad
        problems = _problems(groups, hostvars)
        assert problems and not any(str(bad) in p for p in problems), problems
    groups, hostvars = _inventory(2)
    hostvars["carp1"]["carpfarm_vrrp_pasword"] = "topsecr1"
    with pytest.raises(TopologyError) as caught:
        build_topology(groups, hostvars, check_names=True)
    text = str(caught.value) + json.dumps([p.as_dict() for p in caught.value.problems])
    assert "carpfarm_vrrp_pasword" in text and "topsecr1" not in text


def test_a_retired_backends_address_is_taken_too() -> None:
    groups, hostvars = _inventory(2)
    groups["squid_backends_retired"] = ["old1"]
    hostvars["old1"] = {"ansible_host": "192.0.2.9"}
    assert any("is the address of host old1" in p for p in _problems(groups, hostvars))


def test_one_box_alone_is_refused_unless_meant_and_a_router_address_is_taken() -> None:
    groups, hostvars = _inventory(1)
    assert any("on this CARP box alone" in p for p in _problems(groups, hostvars))
    hostvars["carp1"]["carpfarm_vip_single_box"] = True
    assert build_topology(groups, hostvars).frontends[0].vip is not None
    groups["wccp_routers"] = ["router"]
    hostvars["router"] = {"ansible_host": "192.0.2.9"}
    assert any("is the address of host wccp_routers 192.0.2.9" in p for p in _problems(groups, hostvars))


def test_two_addresses_on_one_subnet_need_two_vrrp_ids() -> None:
    groups, hostvars = _inventory(4, carpfarm_vip_single_box=False)
    hostvars["carp3"]["carpfarm_vip"] = hostvars["carp4"]["carpfarm_vip"] = "192.0.2.8/24"
    problems = _problems(groups, hostvars)
    assert any("carp3: carpfarm_vrrp_id = 51: is also the VRRP id of carpfarm_vip 192.0.2.9" in p for p in problems)
    hostvars["carp3"]["carpfarm_vrrp_id"] = hostvars["carp4"]["carpfarm_vrrp_id"] = 52
    assert len(build_topology(groups, hostvars).frontends) == 4
    # On another subnet the same id is another virtual router.
    hostvars["carp3"]["carpfarm_vrrp_id"] = hostvars["carp4"]["carpfarm_vrrp_id"] = 51
    for n, host in enumerate(("carp3", "carp4")):
        hostvars[host].update(ansible_host=f"203.0.113.{10 + n}", carpfarm_vip="203.0.113.9/24")
    assert len(build_topology(groups, hostvars).frontends) == 4


def test_a_box_that_failed_for_its_own_reasons_leaves_no_one_alone() -> None:
    """A problem on one box must not make its partner look alone: one problem, not two."""
    groups, hostvars = _inventory(2)
    hostvars["carp1"]["carpfarm_vrrp_priority"] = 255
    problems = _problems(groups, hostvars)
    assert len(problems) == 1 and "carpfarm_vrrp_priority" in problems[0], problems


FACTS = {
    "interfaces": ["lo", "eth0", "eth-1"],
    "lo": {"ipv4": {"address": "127.0.0.1"}},
    "eth0": {"ipv4": {"address": "10.0.0.5"}, "ipv4_secondaries": [{"address": "192.0.2.9"}]},
    "eth_1": {"ipv4": {"address": "198.51.100.7"}, "ipv4_secondaries": [{"address": "192.0.2.10"}]},
}


def test_the_interface_is_the_one_holding_the_boxs_address() -> None:
    assert vrrp.interface_of(FACTS, "192.0.2.10", "192.0.2.9") == "eth-1"
    assert vrrp.interface_of(FACTS, "10.0.0.5", "192.0.2.9") == "eth0"
    assert vrrp.interface_of(FACTS, "192.0.2.9", "192.0.2.9") == ""  # the floating address is no anchor
    assert vrrp.interface_of({}, "192.0.2.10") == ""
    groups, hostvars = _inventory(2)
    topology = build_topology(groups, hostvars)
    assert vrrp.keepalived_view(topology.frontends, "carp1", FACTS)["interface"] == "eth-1"  # type: ignore[index]
    hostvars["carp1"]["carpfarm_vrrp_interface"] = "bond0"
    topology = build_topology(groups, hostvars)
    assert vrrp.keepalived_view(topology.frontends, "carp1", FACTS)["interface"] == "bond0"  # type: ignore[index]


def _state(state: str, since: float, now: float | None = None, instance: str = "carpfarm_vip51") -> str:
    """What the role reads on a box: its clock, then the notify script's state file."""
    body = json.dumps({"instance": instance, "state": state, "priority": 100, "since": since})
    return f"{since + 100 if now is None else now}\n{body}"


@pytest.mark.parametrize(
    ("state", "age", "settled"),
    [
        ("MASTER", 0.1, False),  # a backup of higher priority may still preempt it
        ("MASTER", 5.5, True),
        ("BACKUP", 4.5, False),  # a master may not have been elected yet
        ("BACKUP", 5.5, True),
        ("FAULT", 100.0, False),
        ("STOP", 100.0, False),
    ],
)
def test_a_box_is_settled_once_master_or_backup_for_longer_than_a_preemption_takes(
    state: str, age: float, settled: bool
) -> None:
    assert vrrp.settled(_state(state, 1000.0, now=1000.0 + age), "carpfarm_vip51", 1) is settled
    # With adverts every 3 s, the wait is 3 x 3 + 2 s.
    assert vrrp.settled(_state(state, 1000.0, now=1000.0 + age + 6), "carpfarm_vip51", 3) is settled


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1000.0\n{not json",
        '1000.0\n{"state": "MASTER"}',
        "not a clock\n" + json.dumps({"instance": "carpfarm_vip51", "state": "MASTER", "since": 1.0}),
        _state("MASTER", 1.0, instance="carpfarm_vip52"),  # left by an earlier VRRP id
    ],
)
def test_an_unreadable_or_stale_state_is_never_settled(text: str) -> None:
    assert vrrp.settled(text, "carpfarm_vip51", 1) is False


def test_the_boxs_own_clock_decides_not_the_controllers() -> None:
    """The box wrote ``since`` by its clock, so the age is taken by the same clock."""
    assert vrrp.settled(_state("BACKUP", 5_000_000_000.0, now=5_000_000_010.0), "carpfarm_vip51", 1)
    assert not vrrp.settled(_state("BACKUP", 1000.0, now=1001.0), "carpfarm_vip51", 1)


def test_holders_lists_the_masters_of_each_group_read_whole() -> None:
    view = {"cidr": "192.0.2.9/24", "instance": "carpfarm_vip51", "members": ["carp1", "carp2"]}
    boxes: list[dict[str, Any]] = [
        {"host": "carp1", "vrrp": view, "state": _state("MASTER", 1)},
        {"host": "carp2", "vrrp": view, "state": _state("BACKUP", 1)},
        {"host": "carp3", "vrrp": None, "state": ""},
    ]
    assert vrrp.holders(boxes) == {"192.0.2.9/24": ["carp1"]}
    boxes[1]["state"] = _state("MASTER", 2)
    assert vrrp.holders(boxes) == {"192.0.2.9/24": ["carp1", "carp2"]}
    boxes[0]["state"] = _state("MASTER", 2, instance="carpfarm_vip7")
    assert vrrp.holders(boxes) == {"192.0.2.9/24": ["carp2"]}
    # A play limited to carp2 cannot tell who holds the address: the group is not judged.
    assert vrrp.holders(boxes[1:]) == {}


# ---------------------------------------------------------------- what the role renders

ROLE = ROOT / "roles" / "frontend_vip"
ROLE_VARS = {
    "frontend_vip_check_interval": 1,
    "frontend_vip_check_fall": 2,
    "frontend_vip_check_rise": 2,
    "__frontend_vip_script_dir": "/usr/libexec/carpfarm",
    "__frontend_vip_state_file": "/run/carpfarm-vrrp.json",
}


def _conntrack_stub(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``conntrack`` only records its arguments in tmp_path/calls."""
    stub = tmp_path / "bin" / "conntrack"
    stub.parent.mkdir()
    stub.write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\necho "conntrack: 3 flow entries have been deleted." >&2\n'
    )
    stub.chmod(0o755)
    return {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}"}


def _rendered(boxes: int, host: str = "carp1", **shared: Any) -> dict[str, str]:
    groups, hostvars = _inventory(boxes, **shared)
    view = filters()["carpfarm_vrrp"](hostvars, groups, host, facts=FACTS)
    password = hostvars[host]["carpfarm_vrrp_password"]
    variables = {**ROLE_VARS, "__frontend_vip": view, "carpfarm_vrrp_password": password}
    return {
        path.name.removesuffix(".j2"): render(path, inventory_hostname=host, **variables)
        for path in (ROLE / "templates").rglob("*.j2")
    }


def test_keepalived_adverts_by_unicast_to_the_other_boxes_and_hears_only_them() -> None:
    conf = _rendered(3, "carp2", carpfarm_vrrp_interface="eth0")["keepalived.conf"]
    assert "    unicast_src_ip 192.0.2.11\n    unicast_peer {\n        192.0.2.10\n        192.0.2.12\n    }\n" in conf
    assert "    check_unicast_src\n" in conf and "auth_pass s3cret\n" in conf
    assert "virtual_ipaddress {\n        192.0.2.9/24 dev eth0\n    }" in conf
    assert "    state BACKUP\n" in conf and "nopreempt" not in conf and "init_fail" in conf
    assert 'script "/usr/libexec/carpfarm/carpfarm-vrrp-check"' in conf


def test_one_box_alone_gets_no_unicast_lines_and_nopreempt_is_written_when_asked() -> None:
    """keepalived -t refuses unicast keywords without a peer (seen with 2.2.7)."""
    conf = _rendered(1, carpfarm_vip_single_box=True, carpfarm_vrrp_preempt=False)["keepalived.conf"]
    assert "unicast_src_ip" not in conf and "unicast_peer" not in conf and "check_unicast_src" not in conf
    assert "    nopreempt\n" in conf


def test_the_scripts_are_valid_shell_and_the_notify_script_keeps_the_state(tmp_path: Path) -> None:
    scripts = _rendered(2)
    for name in ("carpfarm-vrrp-check", "carpfarm-vrrp-notify"):
        (tmp_path / name).write_text(scripts[name])
        subprocess.run(["sh", "-n", str(tmp_path / name)], check=True)
    assert "systemctl is-active --quiet carpfarm-balancer.service || exit 1" in scripts["carpfarm-vrrp-check"]
    assert "squid@frontend1.service squid@frontend2.service" in scripts["carpfarm-vrrp-check"]
    state = tmp_path / "vrrp.json"
    notify = scripts["carpfarm-vrrp-notify"].replace("/run/carpfarm-vrrp.json", str(state))
    (tmp_path / "notify").write_text(notify)
    env = _conntrack_stub(tmp_path)  # this host's own tracked connections are not the test's
    subprocess.run(["sh", str(tmp_path / "notify"), "INSTANCE", "carpfarm_vip51", "MASTER", "150"], check=True, env=env)
    written = json.loads(state.read_text())
    assert written["instance"] == "carpfarm_vip51" and written["state"] == "MASTER" and written["priority"] == 150
    clock = subprocess.run(["date", "+%s.%N"], capture_output=True, text=True, check=True).stdout
    assert vrrp.read_state(f"{clock}\n{state.read_text()}", "carpfarm_vip51") is not None


def test_taking_the_address_forgets_only_the_untranslated_connections_tracked_to_it(tmp_path: Path) -> None:
    """Behind a redirecting balancer, the notify script deletes, on MASTER only, the conntrack
    entries to the address whose reply comes from the listen port itself (never redirected)."""
    env = _conntrack_stub(tmp_path)
    notify = _rendered(2)["carpfarm-vrrp-notify"].replace("/run/carpfarm-vrrp.json", str(tmp_path / "vrrp.json"))
    (tmp_path / "notify").write_text(notify)
    for state in ("BACKUP", "FAULT", "MASTER"):
        subprocess.run(
            ["sh", str(tmp_path / "notify"), "INSTANCE", "carpfarm_vip51", state, "150"], check=True, env=env
        )
    assert (tmp_path / "calls").read_text().split("\n") == [
        "-D -p tcp --orig-dst 192.0.2.9 --orig-port-dst 3128 --reply-port-src 3128",
        "",
    ]
    assert "conntrack" not in _rendered(2, frontend_balancer_type="haproxy")["carpfarm-vrrp-notify"]


def test_every_box_writes_the_same_cache_peer_lines_in_the_same_order() -> None:
    """Whichever box takes the floating address, a URL goes to the same backend."""
    groups, hostvars = _inventory(2)
    f = filters()
    settings = role_defaults("carp_frontend")
    peers = f["carpfarm_cache_peers"](hostvars, groups, options=peer_options(settings))
    lines = {}
    for box in ("carp1", "carp2"):
        facts = {
            "__carp_frontend_self": f["carpfarm_frontend"](hostvars, groups, box),
            "__carp_frontend_own": f["carpfarm_own_destinations"](hostvars, groups),
            "__carp_frontend_peers": peers,
        }
        item = f["carpfarm_frontend_ports"](hostvars, groups, box)[0]
        conf = render(FRONTEND_CONF, **{**settings, **facts}, item=item, inventory_hostname=box)
        lines[box] = [line for line in conf.splitlines() if line.startswith("cache_peer")]
    assert len(lines["carp1"]) == 4 and lines["carp1"] == lines["carp2"]


def test_a_vaulted_password_is_read_with_the_vault_password_ansible_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README keeps carpfarm_vrrp_password in Ansible Vault: carpfarm validate reads it the way
    ansible-playbook does, and without the vault password says how to give it."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    from carpfarm.cli import EXIT_INVALID, main

    secret = tmp_path / "vault-pass"
    secret.write_text("for-this-test-only\n")
    sealed = VaultLib([("default", VaultSecret(b"for-this-test-only"))]).encrypt("s3cret").decode()
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    _groups, hostvars = _inventory(2)
    hosts = {name: {"ansible_host": hostvars[name]["ansible_host"]} for name in ("carp1", "carp2", "cache1", "cache2")}
    for name in ("cache1", "cache2"):
        hosts[name]["squid_backend_instances"] = 2
    (inventory / "hosts.yml").write_text(
        json.dumps(
            {
                "all": {
                    "vars": {"carpfarm_client_networks": CLIENTS},
                    "children": {
                        "carp_frontends": {"hosts": {h: hosts[h] for h in ("carp1", "carp2")}},
                        "squid_backends": {"hosts": {h: hosts[h] for h in ("cache1", "cache2")}},
                    },
                }
            }
        )
    )
    indented = "\n".join("  " + line for line in sealed.splitlines())
    (inventory / "group_vars" / "carp_frontends.yml").write_text(
        f"carpfarm_vip: 192.0.2.9/24\ncarpfarm_vrrp_password: !vault |\n{indented}\n"
    )
    from ansible.parsing.vault import VaultSecretsContext

    if VaultSecretsContext.current(optional=True) is None:  # Ansible sets its secrets once per process
        monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
        assert main(["validate", str(inventory), "--json"]) == EXIT_INVALID
        problems = json.loads(capsys.readouterr().out)["problems"]
        assert any("ANSIBLE_VAULT_PASSWORD_FILE" in p["fix"] for p in problems), problems
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(secret))
    assert main(["validate", str(inventory), "--json"]) == 0
    assert "s3cret" not in capsys.readouterr().out


def test_an_haproxy_frontend_box_holds_the_address_while_haproxy_runs(tmp_path: Path) -> None:
    """carp_frontend_mode: haproxy: no frontend Squid to track; the track script passes while
    haproxy.service is active and fails when it is not (systemctl stubbed, the script run by sh)."""
    check = _rendered(2, carp_frontend_mode="haproxy", frontend_balancer_watch=False)["carpfarm-vrrp-check"]
    assert "systemctl is-active --quiet haproxy.service || exit 1" in check and "squid@" not in check
    (tmp_path / "check").write_text(check)
    stub = tmp_path / "bin" / "systemctl"
    stub.parent.mkdir()
    for active, code in ((True, 0), (False, 1)):
        stub.write_text(f"#!/bin/sh\nexit {0 if active else 3}\n")
        stub.chmod(0o755)
        env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}"}
        assert subprocess.run(["sh", str(tmp_path / "check")], env=env, check=False).returncode == code
