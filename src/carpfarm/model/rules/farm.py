"""The rules that span hosts: ports, instance and peer names, cache_dirs, and a farm that can serve
(each a small pure function that yields problems)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

from carpfarm.model import cachedirs, vip
from carpfarm.model.hosts import BackendHost, BackendInstance, FrontendHost
from carpfarm.problems import Problem
from carpfarm.variables import (
    BACKEND_GROUP,
    DEFAULT_CACHE_ROOT,
    FRONTEND_GROUP,
)

MAX_PORT = 65535


# ---------------------------------------------------------------- ports


def port_list(host: str, variable: str, items: Sequence[int | str]) -> Iterator[Problem]:
    """carpfarm_safe_ports / carpfarm_ssl_ports: each a port or a "lo-hi" range within 1-65535."""
    for n, item in enumerate(items):
        low, _, high = str(item).partition("-")
        lo, hi = int(low), int(high or low)
        if not (1 <= lo <= MAX_PORT and 1 <= hi <= MAX_PORT):
            yield Problem(
                host, f"{variable}[{n}]", f"is outside 1-{MAX_PORT}", "write a port or a range within 1-65535", item
            )
        elif hi < lo:
            yield Problem(
                host, f"{variable}[{n}]", "is a range that ends before it starts", "write it as 'lo-hi'", item
            )


def _claims(
    backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]
) -> dict[str, list[tuple[int, str, str]]]:
    """Every TCP/UDP port each host's roles open: (port, variable, what)."""
    claims: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for b in backends:
        for n, i in enumerate(b.instances):
            claims[b.name].append((i.port, f"squid_backend_instances[{n}].port", f"backend instance '{i.name}'"))
            if i.icp_port:
                claims[b.name].append((i.icp_port, "squid_backend_icp_port_base", f"ICP of '{i.name}'"))
            if i.snmp_port:
                claims[b.name].append((i.snmp_port, "squid_backend_snmp_port_base", f"SNMP of '{i.name}'"))
    for f in frontends:
        if f.mode == "smp":  # one Squid on the listen port itself: no balancer, instance ports or WCCP
            claims[f.name].append((f.listen_port, "carp_frontend_listen_port", "the SMP frontend's listen port"))
            continue
        claims[f.name].append((f.listen_port, "carp_frontend_listen_port", "the balancer's listen port"))
        for n, fi in enumerate(f.instances):
            claims[f.name].append((fi.port, "carp_frontend_port_base", f"frontend instance '{fi.name}' (#{n + 1})"))
        for n, port in enumerate(f.wccp.intercept_ports if f.wccp else ()):
            claims[f.name].append((port, "carpfarm_wccp_intercept_port_base", f"WCCP intercept port #{n + 1}"))
        if f.balancer_type == "haproxy":
            claims[f.name].append(
                (f.haproxy_stats_port, "frontend_balancer_haproxy_stats_port", "HAProxy's stats page")
            )
    return claims


def ports_in_range(backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]) -> Iterator[Problem]:
    """Derived ports (port_base + i) must stay within 1-65535."""
    for host, items in _claims(backends, frontends).items():
        for port, variable, what in items:
            if not 1 <= port <= MAX_PORT:
                yield Problem(
                    host,
                    variable,
                    f"gives {what} port {port}, outside 1-{MAX_PORT}",
                    "lower the port base so that base + instances - 1 stays at or below 65535",
                    port,
                )


def ports_distinct(backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]) -> Iterator[Problem]:
    """No two listeners of one host share a port."""
    for host, items in _claims(backends, frontends).items():
        seen: dict[int, tuple[str, str]] = {}
        for port, variable, what in items:
            if port in seen:
                other_var, other = seen[port]
                yield Problem(
                    host,
                    variable,
                    f"port {port} of {what} collides with {other} ({other_var})",
                    "give every instance and listener on a host its own port "
                    "(move a port_base, or set the instance's port)",
                    port,
                )
            else:
                seen[port] = (variable, what)


# ---------------------------------------------------------------- names and the farm


def instance_names(backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]) -> Iterator[Problem]:
    """Instance names unique per host (squid -n), CARP peer names and endpoints unique in the farm."""
    by_host: dict[str, set[str]] = defaultdict(set)
    for b in backends:
        yield from _names_taken_twice(b, by_host[b.name])
        by_host[b.name] |= {i.name for i in b.instances}
        yield from cache_dirs(b.name, b.instances)
    for f in frontends:
        yield from _names_shared_with_frontends(f, by_host.get(f.name, set()))
    yield from _peers_and_endpoints(backends)


def _names_taken_twice(backend: BackendHost, earlier: set[str]) -> Iterator[Problem]:
    """Each instance name of a host once (``earlier``: names its host already had)."""
    seen = set(earlier)
    for n, i in enumerate(backend.instances):
        if i.name in seen:
            yield Problem(
                backend.name,
                f"squid_backend_instances[{n}].name",
                f"instance name '{i.name}' is used twice on this host (squid -n must be unique)",
                "give every instance on a host its own name",
                i.name,
            )
        seen.add(i.name)


def cache_dirs(host: str, instances: Sequence[BackendInstance]) -> Iterator[Problem]:
    """A cache_dir is a directory of its own: no system directory (carpfarm.model.cachedirs), and not the
    same as, inside or around another instance's of the host (defaults included)."""
    fix = (
        "give every instance a directory of its own: the default /var/spool/squid/<name>, or one on its own "
        "disk such as /srv/cache1 or /mnt/disk1/squid"
    )
    for n, i in enumerate(instances):
        why = cachedirs.refusal(i.cache_dir)
        if why:
            yield Problem(
                host, f"squid_backend_instances[{n}].cache_dir", f"cache_dir {i.cache_dir} {why}", fix, i.cache_dir
            )
    for n, m, how in cachedirs.collisions([i.cache_dir for i in instances]):
        mine, other = instances[n], instances[m]
        if how == "is" and mine.name == other.name:  # one name twice: _names_taken_twice says so
            continue
        theirs = f"instance '{other.name}''s" + (" (its default)" if _defaulted(other) else "")
        relation = f"is also {theirs}" if how == "is" else f"{how} {theirs} cache_dir {other.cache_dir}"
        yield Problem(
            host,
            f"squid_backend_instances[{n}].cache_dir",
            f"cache_dir {mine.cache_dir} {relation}: one cache_dir belongs to one Squid, and the purge of one "
            "instance would delete the other's cache",
            fix,
            mine.cache_dir,
        )


def _defaulted(instance: BackendInstance) -> bool:
    return instance.cache_dir == f"{DEFAULT_CACHE_ROOT}/{instance.name}"


def _names_shared_with_frontends(frontend: FrontendHost, backend_names: set[str]) -> Iterator[Problem]:
    """A host that is both a CARP box and a backend: its backend instances need names of their own."""
    for fi in frontend.instances:
        if fi.name in backend_names:
            yield Problem(
                frontend.name,
                "squid_backend_instances",
                f"backend instance name '{fi.name}' is also a frontend instance name on this host",
                "rename the backend instance",
                fi.name,
            )


def _peers_and_endpoints(backends: Sequence[BackendHost]) -> Iterator[Problem]:
    """CARP peer names (host-instance) and address:port unique across the backend hosts."""
    peers: dict[str, str] = {}
    endpoints: dict[tuple[str, int], BackendInstance] = {}
    for b in backends:
        for n, i in enumerate(b.instances):
            if i.peer_name in peers and peers[i.peer_name] != b.name:
                yield Problem(
                    b.name,
                    f"squid_backend_instances[{n}].name",
                    f"CARP peer name '{i.peer_name}' is also produced by host '{peers[i.peer_name]}'",
                    "rename the instance or the host: CARP peer names (host-instance) must be unique",
                    i.name,
                )
            peers.setdefault(i.peer_name, b.name)
            first = endpoints.setdefault((i.address, i.port), i)
            if first.host != b.name:
                yield Problem(
                    b.name,
                    f"squid_backend_instances[{n}].port",
                    f"{i.address}:{i.port} is also where peer '{first.peer_name}' listens",
                    "give each backend host its own address (ansible_host or squid_backend_address)",
                    f"{i.address}:{i.port}",
                )


def farm_can_serve(backends: Sequence[BackendHost]) -> Iterator[Problem]:
    """At least one active instance, and weights Squid's CARP does not zero."""
    instances = [i for b in backends for i in b.instances]
    if instances and not any(i.active for i in instances):
        yield Problem(
            BACKEND_GROUP,
            "squid_backend_state",
            "every backend instance is drained: no request could be served",
            "leave at least one backend instance 'active'",
        )
    total = sum(i.weight for i in instances)
    starved = [i for i in instances if i.weight * 1000 < total]
    if starved and len(starved) == len(instances):
        yield Problem(
            BACKEND_GROUP,
            "squid_backend_weight",
            f"all {len(instances)} backend instances have under 0.1% of the total weight: Squid's CARP "
            "zeroes every load factor, picks no parent, and every request falls back to the first parent",
            "one Squid balances at most 1000 equal-weight CARP peers: use fewer, larger instances, "
            "or split the farm behind separate CARP boxes",
        )
    elif len(starved) > 5:
        yield Problem(
            BACKEND_GROUP,
            "squid_backend_weight",
            f"{len(starved)} backend instances ({', '.join(i.peer_name for i in starved[:3])}, ...) have "
            "under 0.1% of the total weight: Squid's CARP zeroes their load factors and sends them nothing",
            "raise their weights, or lower the others",
        )
    else:
        for i in starved:
            yield Problem(
                i.host,
                "squid_backend_weight",
                f"instance '{i.name}' has {i.weight}/{total} of the total weight, under 0.1%: "
                "Squid's CARP zeroes its load factor and sends it nothing",
                "raise its weight, or lower the others",
                i.weight,
            )


def frontends_agree(frontends: Sequence[FrontendHost]) -> Iterator[Problem]:
    keys = {f.carp_key for f in frontends}
    if len(keys) > 1:
        yield Problem(
            FRONTEND_GROUP,
            "carp_frontend_carp_key",
            "frontends disagree on the CARP key ("
            + "; ".join(f"{f.name}: [{', '.join(f.carp_key)}]" for f in frontends)
            + "): the same URL would be cached on two backends",
            "set carp_frontend_carp_key once, in group_vars/carp_frontends",
        )


def floating_addresses(
    backends: Sequence[BackendHost],
    frontends: Sequence[FrontendHost],
    others: Mapping[str, str],
    boxes_in_group: int,
) -> Iterator[Problem]:
    """carpfarm_vip across the farm (carpfarm.model.vip.group_problems). Taken addresses: every backend's
    and CARP box's, and ``others`` (host -> address: retired backends, WCCP routers).
    ``boxes_in_group``: the CARP boxes the inventory lists (some may not have been built, for
    problems of their own)."""
    boxes = {f.name: (f.address, f.listen_port, f.vip) for f in frontends if f.vip is not None}
    taken = {**others, **{b.name: b.address for b in backends}, **{f.name: f.address for f in frontends}}
    return vip.group_problems(boxes, taken, complete=len(frontends) == boxes_in_group)
