"""No silent remap: the deployed cache_peer list against the planned one."""

from __future__ import annotations

from typing import Any

import pytest

from carpfarm.model import Topology, build_topology
from carpfarm.plan.remap import deployed_peers, remap_problems


def _farm(*hosts: str, drained: tuple[str, ...] = ()) -> Topology:
    groups = {"carp_frontends": ["carp1"], "squid_backends": list(hosts)}
    hostvars: dict[str, dict[str, Any]] = {
        "carp1": {"ansible_host": "192.0.2.10", "carpfarm_client_networks": ["198.51.100.0/24"]},
    }
    for n, host in enumerate(hosts):
        hostvars[host] = {"ansible_host": f"192.0.2.{21 + n}", "squid_backend_instances": 2}
        if host in drained:
            hostvars[host]["squid_backend_state"] = "drained"
    return build_topology(groups, hostvars)


def _conf(topology: Topology) -> list[str]:
    """The cache_peer lines carp_frontend renders (address, port, name, weight; drained denied)."""
    lines = [
        f"cache_peer {i.address} parent {i.port} 0 carp no-query no-digest name={i.peer_name} weight={i.weight}"
        for i in topology.backend_instances
    ]
    return lines + [f"cache_peer_access {name} deny all" for name in topology.drained_peers]


def test_the_deployed_list_is_read_back_in_order_with_drained_peers() -> None:
    peers = deployed_peers(_conf(_farm("cache1", "cache2", drained=("cache2",))))
    assert [(p.name, p.port, p.weight, p.drained) for p in peers] == [
        ("cache1-backend1", 4001, 1, False),
        ("cache1-backend2", 4002, 1, False),
        ("cache2-backend1", 4001, 1, True),
        ("cache2-backend2", 4002, 1, True),
    ]


@pytest.mark.parametrize(
    ("before", "after", "refused"),
    [
        (("cache1", "cache2"), ("cache1", "cache2", "cache3"), ""),  # appended: only the new host's share moves
        (("cache1", "cache2"), ("cache2", "cache1"), "changes the order"),
        (("cache1", "cache2"), ("cache1", "cache3", "cache2"), "changes the order"),  # inserted mid-list
        (("cache1", "cache2", "cache3"), ("cache1", "cache3"), "removes cache2-backend1, cache2-backend2 while"),
        (("cache1", "cache2"), ("cache1", "cache2"), ""),
    ],
)
def test_reorders_and_undrained_removals_are_refused_with_what_would_move(
    before: tuple[str, ...], after: tuple[str, ...], refused: str
) -> None:
    problems = remap_problems("carp1", deployed_peers(_conf(_farm(*before))), _farm(*after))
    if not refused:
        assert problems == []
        return
    (problem,) = problems
    assert refused in problem.message and "of URLs would move" in problem.message
    assert "carpfarm_accept_remap=true" in problem.fix


def test_removing_a_drained_backend_at_the_end_and_a_first_deploy_are_not_refused() -> None:
    deployed = deployed_peers(_conf(_farm("cache1", "cache2", drained=("cache2",))))
    assert remap_problems("carp1", deployed, _farm("cache1")) == []
    assert remap_problems("carp1", [], _farm("cache2", "cache1")) == []
