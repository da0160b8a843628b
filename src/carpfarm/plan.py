"""What the topology turns into: port maps, balancer rules, CARP shares, impact of a change.

These are the numbers the roles' templates print and the CLI shows; templates
do no arithmetic of their own.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from carpfarm import wccp
from carpfarm.balancer import hold_method, naive_shares
from carpfarm.carp import CarpArray, CarpPeer, select_batch
from carpfarm.kernelrules import fair_rules
from carpfarm.model import BackendInstance, FrontendHost, Topology, wccp_boxes

LOOPBACK = "127.0.0.1"
# Sampling CARP in pure Python costs about 5 us per (URL, peer) pair; keep plan fast.
SAMPLE_BUDGET = 150_000


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


# ---------------------------------------------------------------- CARP shares


def carp_shares(
    topology: Topology, urls: Sequence[str] | None = None, progress: Callable[[int, int], None] | None = None
) -> dict[str, dict[str, float | None]]:
    """Each peer's share of URLs: the configured share and, when affordable, a sampled one.

    ``progress`` is called with (done, total) every few hundred URLs sampled."""
    active = [i for i in topology.backend_instances if i.active]
    total = sum(i.weight for i in active)
    if urls is None:
        count = min(10_000, SAMPLE_BUDGET // max(1, len(topology.backend_instances)))
        urls = sample_urls(count) if count >= 200 else []
    counts: Counter[str] = Counter(
        peer.name for peer in _routes(topology, urls, topology.drained_peers, progress) if peer is not None
    )
    return {
        i.peer_name: {
            "expected": (i.weight / total) if i.active else 0.0,
            "sampled": (counts[i.peer_name] / len(urls)) if urls else None,
        }
        for i in topology.backend_instances
    }


# ---------------------------------------------------------------- plan


def plan(
    topology: Topology,
    sample: Sequence[str] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Everything carpfarm would build, as plain data (what ``carpfarm plan --json`` prints); no
    secret: WCCP passwords show as ``<set>``.

    ``progress`` is called with (done, total) while the CARP shares are sampled."""
    shares = carp_shares(topology, sample, progress)
    frontends = []
    for f in topology.frontends:
        rules = balancer_rules(topology, f.name)
        n = len(f.instances)
        frontends.append(
            {
                "host": f.name,
                "address": f.address,
                "listen_port": f.listen_port,
                "mode": f.mode,
                "workers": f.workers,
                "cpu_affinity_map": f.cpu_affinity_map,
                "instances_setting": f.instances_setting,
                "vcpus": f.vcpus,
                "client_networks": list(f.client_networks),
                "instances": frontend_port_map(topology, f.name),
                "balancer": rules,
                "naive_wiki_shares": naive_shares(n, 0.25) if n > 1 and f.mode != "smp" else [1.0],
                "wccp": None
                if f.wccp is None
                else {
                    "settings": wccp.shown_settings(f.wccp),
                    "squid": wccp.squid_stanza(f.wccp, f.address, masked=True),
                    "router": wccp_router_stanza(topology, f.name),
                },
            }
        )
    by_host: dict[str, list[dict[str, Any]]] = {}
    for entry in backend_port_map(topology):  # once: per host, it would walk every instance again
        by_host.setdefault(entry["host"], []).append({**entry, "share": shares[entry["peer_name"]]})
    backends = [{"host": b.name, "address": b.address, "instances": by_host.get(b.name, [])} for b in topology.backends]
    return {
        "frontends": frontends,
        "backends": backends,
        "cache_peers": cache_peers(topology),
        "advice": plan_advice(topology),
    }


def plan_advice(topology: Topology) -> list[str]:
    """What to change in a farm that works but will cost more than it needs to later."""
    tips = []
    weights = Counter(i.weight for i in topology.backend_instances)
    if len(weights) > 1:
        mix = ", ".join(f"{count} x weight {w}" for w, count in sorted(weights.items()))
        low = min(weights)
        tips.append(
            f"backend instances mix CARP weights ({mix}). Give a bigger host more instances of weight {low} "
            "instead of a higher weight: Squid walks peers sorted by weight, so a host appended later lands in "
            "the middle of the walk, not at its end, and every load multiplier depends on the total weight; "
            "growing a mixed-weight farm therefore moves URLs between backends that did not change (check with "
            "'carpfarm impact'), while appending equal-weight instances moves only the new instances' share"
        )
    return tips


# ---------------------------------------------------------------- impact


@dataclass(frozen=True)
class Impact:
    """What a change of inventory does to where URLs live."""

    urls: int
    moved: int
    necessary: int  # moves to or from a changed peer: the price of the change itself
    collateral: int  # moves between two unchanged peers: avoidable remap
    changed_peers: tuple[str, ...]
    per_peer: dict[str, dict[str, int]]
    advice: tuple[str, ...]
    deleted_peers: tuple[str, ...] = ()
    moved_if_drained: int | None = None  # had the deleted peers been drained instead

    @property
    def moved_fraction(self) -> float:
        return self.moved / self.urls if self.urls else 0.0

    @property
    def necessary_fraction(self) -> float:
        return self.necessary / self.urls if self.urls else 0.0

    @property
    def collateral_fraction(self) -> float:
        return self.collateral / self.urls if self.urls else 0.0

    @property
    def moved_if_drained_fraction(self) -> float | None:
        if self.moved_if_drained is None:
            return None
        return self.moved_if_drained / self.urls if self.urls else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            moved_fraction=self.moved_fraction,
            necessary_fraction=self.necessary_fraction,
            collateral_fraction=self.collateral_fraction,
            moved_if_drained_fraction=self.moved_if_drained_fraction,
        )
        return data


def _peer_signature(topology: Topology) -> dict[str, tuple[str, int, int, str]]:
    return {i.peer_name: (i.address, i.port, i.weight, i.state) for i in topology.backend_instances}


def _routes(
    topology: Topology,
    urls: Sequence[str],
    down: Iterable[str],
    progress: Callable[[int, int], None] | None = None,
) -> list[CarpPeer | None]:
    """``topology.route`` for many URLs at once (peers, not instances)."""
    return select_batch([(topology.carp_array, down)], urls, progress)[0]


def impact(
    old: Topology,
    new: Topology,
    urls: Iterable[str] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Impact:
    """Route every URL through the old and the new farm; count what moves and why.

    ``progress`` is called with (done, total) every few hundred URLs.
    """
    url_list = list(urls) if urls is not None else sample_urls(5000)
    before, after = _peer_signature(old), _peer_signature(new)
    changed = {
        name
        for name in before.keys() | after.keys()
        if before.get(name, ("",) * 4)[2:] != after.get(name, ("",) * 4)[2:]
    }
    new_names = set(after)
    deleted = tuple(i.peer_name for i in old.backend_instances if i.peer_name not in new_names)
    old_down, new_down = set(old.drained_peers), set(new.drained_peers)
    jobs: list[tuple[CarpArray, Iterable[str]]] = [(old.carp_array, old_down), (new.carp_array, new_down)]
    if deleted:
        # The same farm with the deleted peers kept but drained: their hashes stay in the walk.
        jobs.append((old.carp_array, old_down | set(deleted)))
    routes = select_batch(jobs, url_list, progress)
    per_peer: dict[str, dict[str, int]] = {n: {"before": 0, "after": 0, "lost": 0, "gained": 0} for n in before | after}
    moved = necessary = 0
    for a, b in zip(routes[0], routes[1], strict=True):
        a_name, b_name = (a.name if a else ""), (b.name if b else "")
        if a_name:
            per_peer[a_name]["before"] += 1
        if b_name:
            per_peer[b_name]["after"] += 1
        if a_name != b_name:
            moved += 1
            if a_name:
                per_peer[a_name]["lost"] += 1
            if b_name:
                per_peer[b_name]["gained"] += 1
            if a_name in changed or b_name in changed:
                necessary += 1
    collateral = moved - necessary
    advice = _advice(old, new, changed) if collateral else ()
    if_drained = sum(a != d for a, d in zip(routes[0], routes[2], strict=True)) if deleted else None
    return Impact(
        len(url_list), moved, necessary, collateral, tuple(sorted(changed)), per_peer, advice, deleted, if_drained
    )


def _advice(old: Topology, new: Topology, changed: set[str]) -> tuple[str, ...]:
    old_order = [i.peer_name for i in old.backend_instances]
    new_order = [i.peer_name for i in new.backend_instances]
    tips = []
    removed = [n for n in old_order if n not in new_order]
    if removed:
        tips.append(
            f"peer(s) {', '.join(removed)} were deleted: every later peer's hash changes. "
            "Mark them 'state: drained' instead (squid_backend_state or the instance's state), "
            "and purge them later when you accept the remap"
        )
    kept_old = [n for n in old_order if n in new_order]
    kept_new = [n for n in new_order if n in old_order]
    added = [n for n in new_order if n not in old_order]
    if added and new_order[: len(kept_new)] != kept_new:
        tips.append(
            f"peer(s) {', '.join(added)} were inserted before existing ones: "
            "append new hosts at the end of the squid_backends group instead"
        )
    if kept_old != kept_new:
        tips.append("existing peers changed order: keep the squid_backends host order stable")
    reweighted = [n for n in changed if n in old_order and n in new_order]
    if reweighted:
        tips.append(
            f"weight change on {', '.join(sorted(reweighted))}: Squid sorts peers by weight, "
            "so a new weight can reorder the hash walk; change weights rarely"
        )
    if len({i.weight for i in (*old.backend_instances, *new.backend_instances)}) > 1:
        tips.append(
            "the farm mixes weights: Squid walks peers sorted by weight (a new peer lands among those of its "
            "weight, not last), and every load multiplier depends on the total weight, so any change of a "
            "mixed-weight farm moves some URLs between unchanged peers; equal weights avoid this"
        )
    return tuple(tips)
