"""The topology model: what a good inventory becomes, and every way a bad one is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from carpfarm.model import build_topology
from carpfarm.problems import TopologyError

CLIENTS = ["198.51.100.0/24"]


def _inventory() -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    groups = {"carp_frontends": ["carp1"], "squid_backends": ["cache1", "cache2"]}
    hostvars: dict[str, dict[str, Any]] = {
        "carp1": {"ansible_host": "192.0.2.10", "carpfarm_client_networks": CLIENTS, "carp_frontend_instances": 2},
        "cache1": {"ansible_host": "192.0.2.21", "squid_backend_instances": 2},
        "cache2": {"ansible_host": "192.0.2.22", "squid_backend_instances": 2},
    }
    return groups, hostvars


def test_good_inventory_builds_the_topology() -> None:
    topology = build_topology(*_inventory())
    assert [i.peer_name for i in topology.backend_instances] == [
        "cache1-backend1",
        "cache1-backend2",
        "cache2-backend1",
        "cache2-backend2",
    ]
    assert [(i.address, i.port) for i in topology.backend_instances][:2] == [("192.0.2.21", 4001), ("192.0.2.21", 4002)]
    assert [(i.name, i.port) for i in topology.frontend_instances] == [("frontend1", 3129), ("frontend2", 3130)]
    assert topology.frontends[0].balancer_type == "iptables"


def test_numbers_given_as_strings_by_extra_vars_are_taken() -> None:
    """``ansible-playbook -e squid_backend_cache_mem_mb=24`` passes '24'; words and fractions still fail."""
    groups, hostvars = _inventory()
    hostvars["cache1"].update(squid_backend_cache_mem_mb="24", squid_backend_instances="3", squid_backend_weight=" 2 ")
    hostvars["carp1"]["carp_frontend_instances"] = "4"
    topology = build_topology(groups, hostvars)
    cache1 = [i for i in topology.backend_instances if i.host == "cache1"]
    assert len(cache1) == 3 and {(i.cache_mem_mb, i.weight) for i in cache1} == {(24, 2)}
    assert len(topology.frontend_instances) == 4
    for bad in ("24.5", "two", True):
        hostvars["cache1"]["squid_backend_cache_mem_mb"] = bad
        with pytest.raises(TopologyError, match="cache1: squid_backend_cache_mem_mb"):
            build_topology(groups, hostvars)


def test_instance_list_overrides_host_defaults() -> None:
    groups, hostvars = _inventory()
    hostvars["cache1"]["squid_backend_instances"] = [
        {"name": "big", "port": 5000, "weight": 3, "cache_size_mb": 9000},
        {"name": "old", "state": "drained"},
    ]
    topology = build_topology(groups, hostvars)
    big, old = topology.backends[0].instances
    assert (big.peer_name, big.port, big.weight, big.cache_size_mb, big.cache_mem_mb) == (
        "cache1-big",
        5000,
        3,
        9000,
        256,
    )
    assert (old.port, old.state) == (4002, "drained")
    assert topology.drained_peers == ("cache1-old",)


def test_each_instance_may_own_a_cache_dir_and_defaults_to_one_under_var_spool_squid() -> None:
    groups, hostvars = _inventory()
    hostvars["cache1"]["squid_backend_instances"] = [
        {"name": "disk1", "cache_dir": "/srv/disk1/squid"},
        {"name": "disk2"},
    ]
    topology = build_topology(groups, hostvars)
    assert [i.cache_dir for i in topology.backends[0].instances] == ["/srv/disk1/squid", "/var/spool/squid/disk2"]
    assert [i.cache_dir for i in topology.backends[1].instances] == [
        "/var/spool/squid/backend1",
        "/var/spool/squid/backend2",
    ]


def test_auto_frontends_follow_vcpus() -> None:
    groups, hostvars = _inventory()
    hostvars["carp1"].update(carp_frontend_instances="auto", ansible_processor_vcpus=6)
    assert len(build_topology(groups, hostvars).frontend_instances) == 6


def test_address_falls_back_from_explicit_to_ansible_host_to_name_resolved_once() -> None:
    groups, hostvars = _inventory()
    hostvars["cache1"]["squid_backend_address"] = "192.0.2.99"
    hostvars["cache2"]["ansible_host"] = "localhost"
    topology = build_topology(groups, hostvars)
    assert [b.address for b in topology.backends] == ["192.0.2.99", "127.0.0.1"]
    assert [b.address_written for b in topology.backends] == ["", "localhost"]
    del hostvars["cache2"]["ansible_host"]  # the inventory name 'cache2' resolves nowhere
    with pytest.raises(TopologyError, match="cache2: squid_backend_address = 'cache2': is a name that does not"):
        build_topology(groups, hostvars)


def test_drained_route_never_picks_drained() -> None:
    groups, hostvars = _inventory()
    hostvars["cache1"]["squid_backend_state"] = "drained"
    topology = build_topology(groups, hostvars)
    for i in range(200):
        chosen = topology.route(f"http://example.com/{i}")
        assert chosen is not None and chosen.host == "cache2"


def test_routes_of_many_urls_are_each_urls_route() -> None:
    groups, hostvars = _inventory()
    hostvars["cache1"]["squid_backend_state"] = "drained"
    topology = build_topology(groups, hostvars)
    urls = [f"http://Example.com:{80 + i % 3}/{'x' * (i % 5)}/{i}?q" for i in range(300)]
    peers = [i.peer_name for i in topology.backend_instances]
    for down in ((), (peers[-1],)):
        assert topology.routes(urls, down) == [topology.route(u, down) for u in urls]


def _set(host: str, **values: Any) -> Any:
    def change(groups: dict[str, list[str]], hostvars: dict[str, dict[str, Any]]) -> None:
        hostvars.setdefault(host, {}).update(values)

    return change


# (id, change, host, variable, words the message must contain). The rules every inventory can
# break are in the catalogue tests/bad_inventories/ (run through the real inventory loader);
# these are the cases that need the model alone.
BAD = [
    (
        "bool count",
        _set("cache1", squid_backend_instances=True),
        "cache1",
        "squid_backend_instances",
        "whole number of instances or a list",
    ),
    (
        "empty instance list",
        _set("cache1", squid_backend_instances=[]),
        "cache1",
        "squid_backend_instances",
        "at least 1 item",
    ),
    (
        "bad state",
        _set("cache1", squid_backend_instances=[{"state": "off"}]),
        "cache1",
        "squid_backend_instances[0].state",
        "'active' or 'drained'",
    ),
    (
        "relative cache_dir",
        _set("cache1", squid_backend_instances=[{"cache_dir": "srv/squid"}]),
        "cache1",
        "squid_backend_instances[0].cache_dir",
        "should be an absolute directory Squid can take: it is a relative path",
    ),
    (
        "cache_dir with a space",
        _set("cache1", squid_backend_instances=[{"cache_dir": "/srv/my disk"}]),
        "cache1",
        "squid_backend_instances[0].cache_dir",
        "it holds a space",
    ),
    (
        "cache_dir climbing out",
        _set("cache1", squid_backend_instances=[{"cache_dir": "/srv/../etc"}]),
        "cache1",
        "squid_backend_instances[0].cache_dir",
        "it has a '.' or '..' part",
    ),
    (
        "cache_dir shared by two instances",
        _set(
            "cache1",
            squid_backend_instances=[{"name": "a", "cache_dir": "/var/spool/squid/b"}, {"name": "b"}],
        ),
        "cache1",
        "squid_backend_instances[1].cache_dir",
        "is also instance 'a''s",
    ),
    (
        "icp port collides with http",
        _set("cache1", squid_backend_icp_port_base=4002),
        "cache1",
        "squid_backend_instances[1].port",
        "collides with ICP of 'backend1' (squid_backend_icp_port_base)",
    ),
    (
        "frontend count float",
        _set("carp1", carp_frontend_instances=2.5),
        "carp1",
        "carp_frontend_instances",
        "must be 'auto' or a whole number",
    ),
    (
        "no client networks",
        _set("carp1", carpfarm_client_networks=[]),
        "carp1",
        "carpfarm_client_networks",
        "at least 1 item",
    ),
    (
        "client networks missing",
        lambda g, h: h["carp1"].pop("carpfarm_client_networks"),
        "carp1",
        "carpfarm_client_networks",
        "required",
    ),
    (
        "frontends disagree on carp key",
        lambda g, h: (
            g["carp_frontends"].append("carp2"),
            h.update(
                {
                    "carp2": {
                        "ansible_host": "192.0.2.11",
                        "carpfarm_client_networks": CLIENTS,
                        "carp_frontend_carp_key": ["host"],
                    }
                }
            ),
        ),
        "carp_frontends",
        "carp_frontend_carp_key",
        "cached on two backends",
    ),
]


@pytest.mark.parametrize(("change", "host", "variable", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_inventory_is_refused_with_host_variable_and_fix(change: Any, host: str, variable: str, words: str) -> None:
    groups, hostvars = copy.deepcopy(_inventory())
    change(groups, hostvars)
    with pytest.raises(TopologyError) as caught:
        build_topology(groups, hostvars)
    matching = [p for p in caught.value.problems if p.host == host and p.variable == variable]
    assert matching, f"no problem for {host}/{variable} in: {caught.value}"
    assert any(words in p.message for p in matching), caught.value
    assert all(p.fix for p in caught.value.problems)
    assert "nothing was changed" in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    groups, hostvars = _inventory()
    hostvars["cache1"]["squid_backend_weight"] = 0
    hostvars["cache2"]["squid_backend_instances"] = "two"
    hostvars["carp1"]["frontend_balancer_type"] = "lvs"
    hostvars["carp1"]["carpfarm_client_networks"] = ["0.0.0.0/0"]
    with pytest.raises(TopologyError) as caught:
        build_topology(groups, hostvars)
    assert {(p.host, p.variable) for p in caught.value.problems} >= {
        ("cache1", "squid_backend_weight"),
        ("cache2", "squid_backend_instances"),
        ("carp1", "frontend_balancer_type"),
        ("carp1", "carpfarm_client_networks[0]"),
    }


def test_open_proxy_only_when_asked_explicitly() -> None:
    groups, hostvars = _inventory()
    hostvars["carp1"].update(carpfarm_client_networks=["0.0.0.0/0"], carpfarm_allow_open_proxy=True)
    assert build_topology(groups, hostvars).frontends[0].allow_open_proxy


def test_problem_text_names_host_variable_value_and_fix() -> None:
    groups, hostvars = _inventory()
    hostvars["carp1"]["frontend_balancer_type"] = "lvs"
    with pytest.raises(TopologyError) as caught:
        build_topology(groups, hostvars)
    text = str(caught.value.problems[0])
    assert text.startswith("carp1: frontend_balancer_type = 'lvs': ")
    assert "Fix: use one of: iptables, nftables, haproxy, balance" in text


def test_booleans_written_as_text_mean_what_ansible_reads() -> None:
    """-e carpfarm_wccp=false and INI inventories give strings; the model reads them as Ansible's bool."""
    groups, hostvars = _inventory()
    hostvars["carp1"].update(carpfarm_wccp="false", carp_frontend_allow_localhost="no")
    topology = build_topology(groups, hostvars)
    assert topology.frontends[0].wccp is None


def test_a_misspelt_extra_var_is_refused_once_for_every_host() -> None:
    """-e '{"squid_backend_instance": 2}' reaches every host: one problem, with the right name."""
    groups, hostvars = _inventory()
    for host in hostvars.values():
        host["squid_backend_instance"] = 2
    with pytest.raises(TopologyError) as caught:
        build_topology(groups, hostvars, check_names=True)
    (problem,) = caught.value.problems
    assert problem.host.startswith("all hosts") and problem.variable == "squid_backend_instance"
    assert "did you mean 'squid_backend_instances'" in problem.fix
    build_topology(groups, hostvars)  # later plays (check_names off) see roles' own names


def test_a_role_variable_set_on_every_host_is_farm_wide() -> None:
    """group_vars/all or -e squid_backend_cache_mem_mb=24 reaches the CARP box too: that is not a mistake."""
    groups, hostvars = _inventory()
    for host in hostvars.values():
        host["squid_backend_cache_mem_mb"] = "24"
    build_topology(groups, hostvars, check_names=True)
    hostvars["carp1"].pop("squid_backend_cache_mem_mb")
    hostvars["carp1"]["squid_backend_weight"] = 2
    with pytest.raises(TopologyError, match="carp1: squid_backend_weight = 2: is read only on hosts in"):
        build_topology(groups, hostvars, check_names=True)
