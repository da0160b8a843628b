"""The carpfarm model: one validated description of all three layers, built from an inventory.

``hosts`` holds the types (hosts, instances, the topology and its routing); ``build`` turns an
inventory's groups and host variables into them, through the rules in ``rules`` (pure functions
that yield problems) and ``addresses`` (the only module that asks DNS). The other modules are
the parts the rules read: address space, cache_dirs, squid.conf lines, SMP, the floating address.
"""

from __future__ import annotations

from carpfarm.model.build import build_topology, frontend_count, known_vcpus
from carpfarm.model.hosts import (
    BackendHost,
    BackendInstance,
    FrontendHost,
    FrontendInstance,
    Topology,
    endpoint,
    plain,
    wccp_boxes,
)

__all__ = [
    "BackendHost",
    "BackendInstance",
    "FrontendHost",
    "FrontendInstance",
    "Topology",
    "build_topology",
    "endpoint",
    "frontend_count",
    "known_vcpus",
    "plain",
    "wccp_boxes",
]
