"""Floating client addresses (carpfarm.vip): what the model accepts and refuses, what keepalived
on each box is given, and how the role reads the boxes' VRRP states."""

from __future__ import annotations

import json
from typing import Any

import pytest

from carpfarm import vip
from carpfarm.model import Topology
from carpfarm.problems import TopologyError

CLIENTS = ["198.51.100.0/24"]
SHARED = {"carpfarm_vip": "192.0.2.9/24", "carpfarm_vrrp_password": "s3cret"}


def _inventory(boxes: int = 2, **shared: Any) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    names = [f"carp{n + 1}" for n in range(boxes)]
    groups = {"carp_frontends": names, "squid_backends": ["cache1", "cache2"]}
    hostvars: dict[str, dict[str, Any]] = {
        name: {
            "ansible_host": f"192.0.2.{10 + n}",
            "carpfarm_client_networks": CLIENTS,
            "carp_frontend_instances": 2,
            **SHARED,
            **shared,
        }
        for n, name in enumerate(names)
    }
    hostvars["cache1"] = {"ansible_host": "192.0.2.21", "squid_backend_instances": 2}
    hostvars["cache2"] = {"ansible_host": "192.0.2.22", "squid_backend_instances": 2}
    return groups, hostvars


def _problems(groups: dict[str, list[str]], hostvars: dict[str, dict[str, Any]]) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        Topology.from_inventory(groups, hostvars)
    return [str(p) for p in caught.value.problems]


def test_boxes_sharing_an_address_form_one_group_with_the_same_peers() -> None:
    groups, hostvars = _inventory(3)
    hostvars["carp1"]["carpfarm_vrrp_priority"] = 150
    topology = Topology.from_inventory(groups, hostvars)
    views = {b.name: vip.keepalived_view(topology.frontends, b.name, {}) for b in topology.frontends}
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
    topology = Topology.from_inventory(groups, hostvars)
    assert vip.keepalived_view(topology.frontends, "carp3", {}) is None
    assert vip.keepalived_view(topology.frontends, "carp1", {})["unicast_peers"] == ["192.0.2.11"]  # type: ignore[index]


def test_every_box_carries_the_same_cache_peers_in_the_same_order() -> None:
    """Whichever box takes the floating address, a URL goes to the same backend."""
    topology = Topology.from_inventory(*_inventory(2))
    urls = [f"http://origin.example/obj/{n}" for n in range(500)]
    assert topology.frontends[0].carp_key == topology.frontends[1].carp_key
    routes = [r.peer_name if r else "" for r in topology.routes(urls)]
    assert len(set(routes)) == 4  # every backend instance owns some of them


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


def test_one_box_alone_is_refused_unless_meant_and_a_router_address_is_taken() -> None:
    groups, hostvars = _inventory(1)
    assert any("on this CARP box alone" in p for p in _problems(groups, hostvars))
    hostvars["carp1"]["carpfarm_vip_single_box"] = True
    assert Topology.from_inventory(groups, hostvars).frontends[0].vip is not None
    groups["wccp_routers"] = ["router"]
    hostvars["router"] = {"ansible_host": "192.0.2.9"}
    assert any("is the address of host wccp_routers 192.0.2.9" in p for p in _problems(groups, hostvars))


def test_two_addresses_on_one_subnet_need_two_vrrp_ids() -> None:
    groups, hostvars = _inventory(4, carpfarm_vip_single_box=False)
    hostvars["carp3"]["carpfarm_vip"] = hostvars["carp4"]["carpfarm_vip"] = "192.0.2.8/24"
    problems = _problems(groups, hostvars)
    assert any("carp3: carpfarm_vrrp_id = 51: is also the VRRP id of carpfarm_vip 192.0.2.9" in p for p in problems)
    hostvars["carp3"]["carpfarm_vrrp_id"] = hostvars["carp4"]["carpfarm_vrrp_id"] = 52
    assert len(Topology.from_inventory(groups, hostvars).frontends) == 4
    # On another subnet the same id is another virtual router.
    hostvars["carp3"]["carpfarm_vrrp_id"] = hostvars["carp4"]["carpfarm_vrrp_id"] = 51
    for n, host in enumerate(("carp3", "carp4")):
        hostvars[host].update(ansible_host=f"203.0.113.{10 + n}", carpfarm_vip="203.0.113.9/24")
    assert len(Topology.from_inventory(groups, hostvars).frontends) == 4


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
    assert vip.interface_of(FACTS, "192.0.2.10", "192.0.2.9") == "eth-1"
    assert vip.interface_of(FACTS, "10.0.0.5", "192.0.2.9") == "eth0"
    assert vip.interface_of(FACTS, "192.0.2.9", "192.0.2.9") == ""  # the floating address is no anchor
    assert vip.interface_of({}, "192.0.2.10") == ""
    groups, hostvars = _inventory(2)
    topology = Topology.from_inventory(groups, hostvars)
    assert vip.keepalived_view(topology.frontends, "carp1", FACTS)["interface"] == "eth-1"  # type: ignore[index]
    hostvars["carp1"]["carpfarm_vrrp_interface"] = "bond0"
    topology = Topology.from_inventory(groups, hostvars)
    assert vip.keepalived_view(topology.frontends, "carp1", FACTS)["interface"] == "bond0"  # type: ignore[index]


def _state(state: str, since: float) -> str:
    return json.dumps({"instance": "carpfarm_vip51", "state": state, "priority": 100, "since": since})


@pytest.mark.parametrize(
    ("text", "age", "settled"),
    [
        (_state("MASTER", 1000.0), 0.1, True),
        (_state("BACKUP", 1000.0), 3.5, False),  # a master may not have been elected yet
        (_state("BACKUP", 1000.0), 4.5, True),
        (_state("FAULT", 1000.0), 100.0, False),
        (_state("STOP", 1000.0), 100.0, False),
        ("", 1.0, False),
        ("{not json", 1.0, False),
        ('{"state": "MASTER"}', 1.0, False),
    ],
)
def test_a_box_is_settled_once_master_or_backup_past_the_masters_timeout(text: str, age: float, settled: bool) -> None:
    assert vip.settled(text, 1, now=1000.0 + age) is settled


def test_holders_lists_the_masters_of_each_address() -> None:
    view = {"cidr": "192.0.2.9/24"}
    boxes: list[dict[str, Any]] = [
        {"inventory_hostname": f"carp{n}", "__frontend_vip": view, "__frontend_vip_state": {"stdout": _state(s, 1)}}
        for n, s in ((1, "MASTER"), (2, "BACKUP"))
    ]
    boxes.append({"inventory_hostname": "carp3", "__frontend_vip": None})
    assert vip.holders(boxes) == {"192.0.2.9/24": ["carp1"]}
    boxes[1]["__frontend_vip_state"] = {"stdout": _state("MASTER", 2)}
    assert vip.holders(boxes) == {"192.0.2.9/24": ["carp1", "carp2"]}
