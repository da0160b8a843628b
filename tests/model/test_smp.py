"""carp_frontend_mode: smp: one Squid whose workers share the listen port, and no balancer."""

from __future__ import annotations

from typing import Any

import pytest

from carpfarm import plan
from carpfarm.model import Topology, build_topology, smp
from carpfarm.plan import vrrp

CLIENTS = ["198.51.100.0/24", "2001:db8::/64"]


def _smp_farm(**box: Any) -> Topology:
    groups = {"carp_frontends": ["carp1"], "squid_backends": ["cache1"]}
    hostvars: dict[str, dict[str, Any]] = {
        "carp1": {
            "ansible_host": "192.0.2.10",
            "carpfarm_client_networks": CLIENTS,
            "carp_frontend_mode": "smp",
            **box,
        },
        "cache1": {"ansible_host": "192.0.2.21", "squid_backend_instances": 2},
    }
    return build_topology(groups, hostvars)


@pytest.mark.parametrize(
    ("workers", "vcpus", "expected"),
    [
        (1, 1, "process_numbers=1 cores=1"),
        (2, 2, "process_numbers=1,2 cores=1,2"),
        (3, 2, "process_numbers=1,2,3 cores=1,2,1"),
        (2, 8, "process_numbers=1,2 cores=1,2"),
        (4, None, ""),
    ],
)
def test_each_worker_gets_its_own_core_counted_from_1_wrapping_round(
    workers: int, vcpus: int | None, expected: str
) -> None:
    assert smp.affinity_map(workers, vcpus) == expected


def test_an_smp_box_is_one_squid_on_the_listen_port_with_one_worker_per_vcpu() -> None:
    box = _smp_farm(ansible_processor_vcpus=4, carp_frontend_listen_port=8080).frontends[0]
    assert (box.mode, box.workers, box.balancer_type) == ("smp", 4, "none")
    assert [(i.name, i.port) for i in box.instances] == [("frontend", 8080)]
    assert box.cpu_affinity_map == "process_numbers=1,2,3,4 cores=1,2,3,4"


def test_an_smp_box_takes_a_worker_count_and_ipv6_clients_whatever_the_balancer_says() -> None:
    # No balancer carries the clients, so an IPv4-only balancer type written for the farm does not
    # limit an SMP box (Squid listens on both families).
    box = _smp_farm(carp_frontend_instances=3, frontend_balancer_type="iptables").frontends[0]
    assert (box.workers, box.balancer_type, box.cpu_affinity_map) == (3, "none", "")


def test_plan_shows_the_mode_and_no_balancer_rules() -> None:
    topology = _smp_farm(ansible_processor_vcpus=2)
    shown = plan.plan(topology, sample=[])["frontends"][0]
    assert (shown["mode"], shown["workers"], shown["cpu_affinity_map"]) == ("smp", 2, "process_numbers=1,2 cores=1,2")
    assert shown["balancer"]["type"] == "none" and shown["balancer"]["cascade"] == []
    assert plan.balancer_targets(topology, "carp1") == [
        {"name": "frontend", "address": "127.0.0.1", "port": 3128, "endpoint": "127.0.0.1:3128"}
    ]


def test_an_smp_box_with_a_floating_address_tracks_its_squid_alone() -> None:
    topology = _smp_farm(carpfarm_vip="192.0.2.9/24", carpfarm_vip_single_box=True, carpfarm_vrrp_password="s3cret")
    settings = vrrp.keepalived_view(topology.frontends, "carp1", {})
    assert settings is not None
    assert (settings["balancer_unit"], settings["frontend_units"]) == ("", ["squid@frontend.service"])
