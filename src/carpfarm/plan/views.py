"""What each host is given: port maps, cache_peer lines, balancer rules, the WCCP router's stanza.

These are the numbers the roles' templates print; templates do no arithmetic of their own, and decide
nothing by a balancer's name: the views say what the role needs to know (``BalancerView``,
``FrontendView``), each a TypedDict the template tests hold the templates to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypedDict, cast

from carpfarm.box import balancer, kernelrules
from carpfarm.box.kernelrules import Intercept, KernelLeftovers, NameSet, Ruleset, fair_rules
from carpfarm.model import BackendInstance, FrontendHost, Topology, wccp_boxes
from carpfarm.plan.haproxy_http import HttpFrontend, http_frontend
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


class Target(TypedDict):
    """A frontend instance a userspace balancer (haproxy) sends to."""

    name: str
    address: str
    port: int
    endpoint: str


def balancer_targets(topology: Topology, host: str) -> list[Target]:
    """The frontend instances a userspace balancer (haproxy) sends to."""
    return [
        Target(name=i.name, address=LOOPBACK, port=i.port, endpoint=f"{LOOPBACK}:{i.port}")
        for i in _frontend(topology, host).instances
    ]


def balancer_rules(topology: Topology, host: str, exclude: Sequence[int] = ()) -> Ruleset:
    """Rules for the kernel balancers: the iptables cascade and the nftables map.

    ``exclude`` leaves those frontend ports out (an instance held out of rotation while
    it restarts); the rest still get exactly equal shares.
    """
    frontend = _frontend(topology, host)
    networks = [ipaddress.ip_network(n, strict=False) for n in frontend.client_networks]
    if frontend.mode != "instances":  # smp: the Squid's workers share the listen port; haproxy: HAProxy serves it
        return Ruleset(
            type=frontend.balancer_type,
            mode=frontend.balancer_mode,
            listen_port=frontend.listen_port,
            hold=None,
            cascade=[],
            nft_modulus=0,
            nft_map=[],
            client_networks_v4=[str(n) for n in networks if n.version == 4],
            client_networks_v6=[str(n) for n in networks if n.version == 6],
            intercept=None,
        )
    kept = [n for n, i in enumerate(frontend.instances) if i.port not in exclude]
    if not kept:
        raise ValueError(f"{host}: excluding {list(exclude)} leaves no frontend instance to balance to")
    fair = fair_rules([frontend.instances[n].port for n in kept])
    return Ruleset(
        type=frontend.balancer_type,
        mode=frontend.balancer_mode,
        listen_port=frontend.listen_port,
        client_networks_v4=[str(n) for n in networks if n.version == 4],
        client_networks_v6=[str(n) for n in networks if n.version == 6],
        hold=balancer.hold_method(frontend.balancer_type),  # how an instance is held out of rotation, or None
        cascade=fair["cascade"],
        nft_modulus=fair["nft_modulus"],
        nft_map=fair["nft_map"],
        intercept=None if frontend.wccp is None else _intercept(frontend.wccp, kept),
    )


def _intercept(settings: wccp.WccpSettings, kept: Sequence[int]) -> Intercept:
    """WCCP-redirected connections: which to take, and the same fair rules over the intercept ports.

    Instance ``n``'s intercept port is ``intercept_ports[n]``, so holding an instance out of
    rotation holds it out of both.
    """
    return Intercept(
        method=settings.forwarding_method,
        dports=list(settings.dports),
        interfaces=list(settings.tunnels),  # empty for l2: the redirect is on the LAN side
        routers=list(settings.routers),
        ports=list(settings.intercept_ports),
        **fair_rules([settings.intercept_ports[n] for n in kept]),
    )


class Leftovers(KernelLeftovers):
    """What other balancer types (and earlier releases) leave on a box that this one removes: their
    iptables chains and nftables tables, and their systemd units."""

    units: list[str]


class BalancerView(Ruleset):
    """One CARP box's balancer as frontend_balancer sees it (the filter carpfarm_balancer): the rules,
    the chains' and table's names, the instances HAProxy sends to, and the role's decisions.

    ``kernel_rules``: the rules are the kernel's (a rules file, its loader, carpfarm-watch).
    ``iptables_legacy``: they go through the iptables tools, which may be iptables-legacy (a raw
    socket: CAP_NET_RAW, AF_INET, AF_INET6; and the ip_tables module, which it loads itself)."""

    names: NameSet
    targets: list[Target]
    http: HttpFrontend | None  # carp_frontend_mode: haproxy: HAProxy is the CARP frontend (plan.haproxy_http)
    kernel_rules: bool
    iptables_legacy: bool
    leftovers: Leftovers


def _http_frontend(topology: Topology, host: str) -> HttpFrontend | None:
    """The box's HTTP frontend (haproxy mode), with its ``remap_lines`` under the Lua CARP: the peers
    as the Squid frontends' squid.conf lists them, which the remap guard reads back."""
    http = http_frontend(topology, _frontend(topology, host))
    if http is not None and http["selection"] == "carp":
        peers = cache_peers(topology, PeerOptions())
        http["remap_lines"] = [str(p["line"]) for p in peers] + [
            f"cache_peer_access {p['name']} deny all" for p in peers if p["state"] == "drained"
        ]
    return http


def balancer_view(topology: Topology, host: str, exclude: Sequence[int] = ()) -> BalancerView:
    """``balancer_rules`` (less the ``exclude`` ports) with what the frontend_balancer role needs besides."""
    rules = balancer_rules(topology, host, exclude)
    kind = balancer.kind(rules["type"])
    names = kernelrules.DEFAULT_NAMES
    others = [unit for unit in (*balancer.UNITS, *balancer.FORMER_UNITS) if unit != kind.unit]
    view = {
        **rules,
        "names": names.view(),
        "targets": balancer_targets(topology, host),
        "http": _http_frontend(topology, host),
        "kernel_rules": kind.rules is not None,
        "iptables_legacy": kind.rules == "iptables",
        "leftovers": Leftovers(**kernelrules.leftovers(kind.rules, names), units=others),
    }
    return cast(BalancerView, view)


class FrontendView(TypedDict):
    """One CARP box as the model sees it (``FrontendHost``'s fields, WCCP passwords masked), with what
    its balancer means for the Squids (``balancer_*``) and what its WCCP prints (``wccp_rendered``).

    ``balancer_hold``: how the balancer holds an instance out of rotation (None: it cannot, so a changed
    instance is reloaded in place). ``balancer_kernel_rules``: the balancer is the kernel's NAT rules.
    ``balancer_proxy_header``: the balancer connects from the box and sends the client's address in a
    PROXY v2 header, which the instances require."""

    name: str
    mode: str
    haproxy_selection: str
    workers: int
    cpu_affinity_map: str
    address: str
    address_written: str
    listen_port: int
    instances: list[dict[str, Any]]  # FrontendInstance's fields: host, name, port
    instances_setting: str
    vcpus: int | None
    client_networks: list[str]
    allow_open_proxy: bool
    balancer_type: str
    balancer_mode: str
    haproxy_stats_port: int
    watch: bool
    carp_key: list[str]
    wccp: wccp.SettingsView | None
    vip: dict[str, Any] | None
    balancer_hold: str | None
    balancer_kernel_rules: bool
    balancer_proxy_header: bool
    wccp_rendered: wccp.Rendered | None


def frontend_view(topology: Topology, host: str) -> FrontendView:
    """CARP box ``host`` as the carp_frontend and wccp roles see it (the filter carpfarm_frontend)."""
    box = _frontend(topology, host)
    kind = balancer.kind(box.balancer_type)
    rendered = None
    if box.wccp:
        rendered = wccp.Rendered(
            # Passwords masked: squid.conf takes its lines from carpfarm_wccp_squid instead.
            squid=wccp.squid_stanza(box.wccp, box.address, masked=True),
            router=wccp_router_stanza(topology, box.name),
            dports=list(box.wccp.dports),
            tunnels=list(box.wccp.tunnels),
        )
    view = {
        **box.model_dump(mode="json"),
        "wccp": None if box.wccp is None else wccp.shown_settings(box.wccp),
        "balancer_hold": kind.hold,
        "balancer_kernel_rules": kind.rules is not None,
        "balancer_proxy_header": kind.proxy_header,
        "wccp_rendered": rendered,
    }
    return cast(FrontendView, view)


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
