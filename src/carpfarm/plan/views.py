"""What each host is given: port maps, cache_peer lines, balancer rules, the WCCP router's stanza.

These are the numbers the roles' templates print; templates do no arithmetic of their own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from carpfarm.box.balancer import hold_method
from carpfarm.box.kernelrules import fair_rules
from carpfarm.model import BackendInstance, FrontendHost, Topology, wccp_boxes
from carpfarm.wccp import settings as wccp

LOOPBACK = "127.0.0.1"


def sample_urls(count: int) -> list[str]:
    """A fixed, varied set of URLs: many hosts, paths, query strings."""
    return [
        f"http://site{i % 211}.example.net/p/{(i * 7919) % 100003}/obj{i}.html" + (f"?v={i % 13}" if i % 3 == 0 else "")
        for i in range(count)
    ]


# ---------------------------------------------------------------- port maps


def frontend_port_map(topology: Topology, host: str) -> list[dict[str, Any]]:
    """Frontend instance name -> port, for one CARP box.

    With WCCP on, each instance also has its ``intercept_port``, and the first instance alone
    ``speaks_wccp``: Squid runs WCCP in one process per address, so one instance per box joins.
    """
    box = _frontend(topology, host)
    intercept = box.wccp.intercept_ports if box.wccp else ()
    return [
        {
            "name": i.name,
            "port": i.port,
            "intercept_port": intercept[n] if intercept else None,
            "speaks_wccp": bool(intercept) and n == 0,
        }
        for n, i in enumerate(box.instances)
    ]


def backend_port_map(topology: Topology, host: str | None = None) -> list[dict[str, Any]]:
    """Backend instances (all, or one host's) with address, port and peer name."""
    return [
        {
            "host": i.host,
            "name": i.name,
            "peer_name": i.peer_name,
            "address": i.address,
            "port": i.port,
            "endpoint": i.endpoint,  # address:port as http_port takes it ([v6]:port)
            "weight": i.weight,
            "state": i.state,
            "cache_size_mb": i.cache_size_mb,
            "cache_mem_mb": i.cache_mem_mb,
            "cache_type": i.cache_type,
            "cache_dir": i.cache_dir,
            "icp_port": i.icp_port,
            "snmp_port": i.snmp_port,
        }
        for i in topology.backend_instances
        if host is None or i.host == host
    ]


@dataclass(frozen=True)
class PeerOptions:
    """What carp_frontend sets on every ``cache_peer`` line besides the peer itself."""

    selection: str = "carp"  # carp_frontend_parent_selection: carp or round-robin
    connect_fail_limit: int = 2
    connect_timeout: int = 2

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PeerOptions:
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(
                f"unknown cache_peer options {unknown}: give selection, connect_fail_limit, connect_timeout"
            )
        return cls(**values)


def cache_peer_line(peer: BackendInstance, carp_key: str, options: PeerOptions) -> str:
    """One ``cache_peer`` directive: a parent, no ICP or digest, CARP's weight and key, fail limits."""
    words = [
        "cache_peer",
        peer.address,
        "parent",
        str(peer.port),
        "0",
        options.selection,
        "no-query",
        "no-digest",
        f"name={peer.peer_name}",
        f"weight={peer.weight}",
        f"connect-fail-limit={options.connect_fail_limit}",
        f"connect-timeout={options.connect_timeout}",
    ]
    if carp_key and options.selection == "carp":
        words.append(f"carp-key={carp_key}")
    return " ".join(words)


def cache_peers(topology: Topology, options: PeerOptions | None = None) -> list[dict[str, Any]]:
    """The ``cache_peer`` entries every frontend gets, in the same order everywhere.

    With ``options``, each entry also has its ``line``, the whole directive as squid.conf takes it."""
    key = ",".join(topology.carp_key)
    return [
        {
            "address": i.address,
            "port": i.port,
            "name": i.peer_name,
            "weight": i.weight,
            "state": i.state,
            "carp_key": key,
            **({} if options is None else {"line": cache_peer_line(i, key, options)}),
        }
        for i in topology.backend_instances
    ]


def balancer_targets(topology: Topology, host: str) -> list[dict[str, Any]]:
    """The frontend instances a userspace balancer (haproxy) sends to."""
    return [
        {"name": i.name, "address": LOOPBACK, "port": i.port, "endpoint": f"{LOOPBACK}:{i.port}"}
        for i in _frontend(topology, host).instances
    ]


def balancer_rules(topology: Topology, host: str, exclude: Sequence[int] = ()) -> dict[str, Any]:
    """Rules for the kernel balancers: the iptables cascade and the nftables map.

    ``exclude`` leaves those frontend ports out (an instance held out of rotation while
    it restarts); the rest still get exactly equal shares.
    """
    frontend = _frontend(topology, host)
    if frontend.mode == "smp":  # no balancer: the SMP Squid's workers share the listen port
        return {
            "type": frontend.balancer_type,
            "mode": frontend.balancer_mode,
            "listen_port": frontend.listen_port,
            "hold": None,
            "cascade": [],
            "nft_modulus": 0,
            "nft_map": [],
            "intercept": None,
        }
    kept = [n for n, i in enumerate(frontend.instances) if i.port not in exclude]
    if not kept:
        raise ValueError(f"{host}: excluding {list(exclude)} leaves no frontend instance to balance to")
    networks = [ipaddress.ip_network(n, strict=False) for n in frontend.client_networks]
    return {
        "type": frontend.balancer_type,
        "mode": frontend.balancer_mode,
        "listen_port": frontend.listen_port,
        "client_networks_v4": [str(n) for n in networks if n.version == 4],
        "client_networks_v6": [str(n) for n in networks if n.version == 6],
        "hold": hold_method(frontend.balancer_type),  # how an instance is held out of rotation, or None
        **fair_rules([frontend.instances[n].port for n in kept]),
        "intercept": None if frontend.wccp is None else _intercept(frontend.wccp, kept),
    }


def _intercept(settings: wccp.WccpSettings, kept: Sequence[int]) -> dict[str, Any]:
    """WCCP-redirected connections: which to take, and the same fair rules over the intercept ports.

    Instance ``n``'s intercept port is ``intercept_ports[n]``, so holding an instance out of
    rotation holds it out of both.
    """
    return {
        "method": settings.forwarding_method,
        "dports": list(settings.dports),
        "interfaces": list(settings.tunnels),  # empty for l2: the redirect is on the LAN side
        "routers": list(settings.routers),
        "ports": list(settings.intercept_ports),
        **fair_rules([settings.intercept_ports[n] for n in kept]),
    }


def wccp_router_stanza(topology: Topology, host: str) -> str:
    """The IOS stanza for the routers of CARP box ``host`` (WCCP on): every box of its service groups
    admitted, so the boxes that share routers get the same text."""
    box = _frontend(topology, host)
    if box.wccp is None:
        raise ValueError(f"{host} has carpfarm_wccp off: it has no router stanza")
    group = wccp.service_group(host, wccp_boxes(topology.frontends))
    return wccp.router_stanza(box.name, box.address, box.client_networks, box.wccp, group)


def _frontend(topology: Topology, host: str) -> FrontendHost:
    for f in topology.frontends:
        if f.name == host:
            return f
    raise KeyError(f"{host} is not in carp_frontends")
