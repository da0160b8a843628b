"""Small inventories (groups, hostvars) that more than one test module builds on."""

from __future__ import annotations

from typing import Any


def wccp_box(**wccp: Any) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """groups and hostvars of one CARP box with WCCP on (two routers) and one backend."""
    carp1 = {
        "ansible_host": "192.0.2.10",
        "carpfarm_client_networks": ["198.51.100.0/24", "2001:db8::/32"],
        "frontend_balancer_type": "nftables",  # the IPv4-only iptables balancer refuses IPv6 clients
        "carp_frontend_instances": 2,
        "carpfarm_wccp": True,
        "carpfarm_wccp_routers": ["192.0.2.1"],
        **wccp,
    }
    groups = {"carp_frontends": ["carp1"], "squid_backends": ["cache1"], "wccp_routers": ["r2"]}
    hostvars = {"carp1": carp1, "cache1": {"ansible_host": "192.0.2.21"}, "r2": {"ansible_host": "192.0.2.2"}}
    return groups, hostvars


def carp_boxes(
    boxes: int, instances: int, backends: int, clients: list[str], **carp: Any
) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """``boxes`` CARP boxes (carp1.., 192.0.2.10..) of ``instances`` frontend instances each, with
    ``carp``'s variables, and ``backends`` backend hosts (cache1.., 192.0.2.21..) of two instances."""
    names = [f"carp{n + 1}" for n in range(boxes)]
    caches = [f"cache{n + 1}" for n in range(backends)]
    hostvars: dict[str, dict[str, Any]] = {
        name: {
            "ansible_host": f"192.0.2.{10 + n}",
            "carpfarm_client_networks": clients,
            "carp_frontend_instances": instances,
            **carp,
        }
        for n, name in enumerate(names)
    }
    for n, cache in enumerate(caches):
        hostvars[cache] = {"ansible_host": f"192.0.2.{21 + n}", "squid_backend_instances": 2}
    return {"carp_frontends": names, "squid_backends": caches}, hostvars
