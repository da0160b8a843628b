"""What HAProxy is given on a CARP box in ``carp_frontend_mode: haproxy`` (the frontend_balancer
role's ``haproxy-http.cfg.j2``): the backend instances as servers, and how one is picked.

``carp``: the servers in ``cache_peer`` order, each named as its peer, and the Lua peers file
(``carpfarm.carp.haproxy_lua``) that makes Squid's CARP choice among them. ``consistent``: the same
servers with their weights and stable ids (``carpfarm.carp.consistent``), for ``balance uri whole``.
"""

from __future__ import annotations

import ipaddress
from typing import TypedDict

from carpfarm.carp.haproxy_lua import DEFAULT_FETCH, peers_lua
from carpfarm.model import FrontendHost, Topology
from carpfarm.model.haproxy_mode import BALANCER

BACKEND = "carpfarm_backends"  # the HAProxy backend whose servers are the backend instances
LUA_VARIABLE = "txn.carpfarm_carp"  # where the Lua fetch leaves its choice
MAX_THREADS = 64  # HAProxy 2.6 refuses nbthread above 64; 3.0 needs thread-groups beyond one group of 64


class HttpServer(TypedDict):
    """One backend instance as a server line."""

    name: str  # the peer name
    address: str
    port: int
    endpoint: str
    weight: int  # HAProxy's, 0-256
    disabled: bool  # drained: no request, and (carp) its hash stays in the walk
    id_26: int  # the id that places its points on HAProxy 2.6 (consistent)
    id_30: int  # ... on Debian 13's 3.0


class HttpFrontend(TypedDict):
    """The HTTP frontend of one CARP box."""

    selection: str  # carp or consistent
    backend: str
    threads: int | None  # one per vCPU, at most MAX_THREADS; None without facts (HAProxy takes every CPU it may use)
    client_networks_v4: list[str]
    client_networks_v6: list[str]
    servers: list[HttpServer]
    lua_fetch: str
    lua_variable: str
    peers_lua: str  # the peers file (carp); '' for consistent
    # carp: the cache_peer lines a Squid frontend of this farm would have (views.balancer_view writes
    # them), kept in haproxy.cfg as comments for site.yml's remap guard (playbooks/validate.yml)
    remap_lines: list[str]


def http_frontend(topology: Topology, box: FrontendHost) -> HttpFrontend | None:
    """The box's HTTP frontend, or None when it is not in haproxy mode."""
    if box.mode != BALANCER:
        return None
    farm = topology.consistent_farm
    servers = [
        HttpServer(
            name=i.peer_name,
            address=i.address,
            port=i.port,
            endpoint=i.endpoint,
            weight=s.weight,
            disabled=not i.active,
            id_26=s.ids.slot,
            id_30=s.ids.hashed,
        )
        for i, s in zip(topology.backend_instances, farm.servers, strict=True)
    ]
    networks = [ipaddress.ip_network(n, strict=False) for n in box.client_networks]
    carp = box.haproxy_selection == "carp"
    return HttpFrontend(
        selection=box.haproxy_selection,
        backend=BACKEND,
        threads=None if box.vcpus is None else min(box.vcpus, MAX_THREADS),
        client_networks_v4=[str(n) for n in networks if n.version == 4],
        client_networks_v6=[str(n) for n in networks if n.version == 6],
        servers=servers,
        lua_fetch=DEFAULT_FETCH,
        lua_variable=LUA_VARIABLE,
        peers_lua=peers_lua(topology.carp_peers, BACKEND) if carp else "",
        remap_lines=[],
    )
