"""A WCCPv2 router's side of the protocol, as pure logic.

The lab's router stand-in (roles/lab_wccp_router) feeds ``Router`` the datagrams it receives and
the time, and sends what it returns. Per service group the router keeps the caches that have said
HERE_I_AM, answers each with I_SEE_YOU (its identity and its view: a member change number bumped on
every change of membership, and every member's identity element), drops a cache after a number of
missed HERE_I_AM intervals, and keeps the assignment the designated cache sends in REDIRECT_ASSIGN.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from carpfarm.wccp import wire
from carpfarm.wccp.bodies import Assignment, Service

HERE_I_AM_INTERVAL = 10.0  # seconds between a cache's HERE_I_AM (the draft's HERE_I_AM_T)
MISSES = 3  # a cache is gone after this many intervals without HERE_I_AM


@dataclass
class Member:
    address: str
    identity: bytes
    last_seen: float


@dataclass
class Group:
    """One service group: its members, its member change number, its last assignment."""

    service: Service
    service_body: bytes
    members: dict[str, Member] = field(default_factory=dict)
    change: int = 0
    assignment: Assignment | None = None
    assigned_by: str = ""


@dataclass
class Router:
    """A router at ``address``; ``passwords``: service id -> MD5 password (a service without one
    runs without security); a cache is dropped after ``misses`` x ``interval`` seconds of silence;
    ``capabilities``: the forwarding, assignment and return methods it offers (bit masks)."""

    address: str
    passwords: dict[int, str] = field(default_factory=dict)
    interval: float = HERE_I_AM_INTERVAL
    misses: int = MISSES
    capabilities: tuple[int, int, int] = (
        wire.GRE | wire.L2,
        wire.HASH | wire.MASK,
        wire.GRE | wire.L2,
    )
    receive_id: int = 0
    groups: dict[int, Group] = field(default_factory=dict)

    # ---- membership

    def expire(self, now: float) -> list[str]:
        """Drop the caches silent for longer than ``misses`` intervals; what happened, as log lines."""
        events = []
        for service_id, group in self.groups.items():
            gone = [a for a, m in group.members.items() if now - m.last_seen > self.misses * self.interval]
            for address in gone:
                del group.members[address]
                group.change += 1
                events.append(f"service {service_id}: {address} dropped after {self.misses} missed HERE_I_AM; "
                              f"member change number {group.change}")  # fmt: skip
        return events

    def _verified(self, packet: bytes, service_id: int) -> bool:
        password = self.passwords.get(service_id)
        return not password or wire.md5_matches(packet, password)

    # ---- messages

    def here_i_am(self, packet: bytes, source: str, now: float) -> tuple[bytes | None, list[str]]:
        """Answer a cache's HERE_I_AM: (the I_SEE_YOU to send back to ``source``, or None when the
        message is refused; what happened, as log lines)."""
        events = self.expire(now)
        found = wire.decode(packet)
        if found.type != "HERE_I_AM" or found.service is None or not found.identity:
            return None, [*events, f"{source}: not a HERE_I_AM with a service and an identity; ignored"]
        service = found.service
        if not self._verified(packet, service.id):
            return None, [*events, f"{source}: HERE_I_AM for service {service.id} fails MD5; ignored"]
        body = next(b for n, b in wire.components(packet) if n == "service_info")
        group = self.groups.setdefault(service.id, Group(service, body))
        address = found.cache_address or source
        if address not in group.members:
            group.change += 1
            events.append(f"service {service.id}: {address} joined; member change number {group.change}")
        group.members[address] = Member(address, found.identity, now)
        self.receive_id += 1
        return self._i_see_you(group, address), events

    def _i_see_you(self, group: Group, cache: str) -> bytes:
        members = sorted(group.members.values(), key=lambda m: ipaddress.ip_address(m.address))
        key = group.assignment.key if group.assignment else ("0.0.0.0", 0)
        packet = wire.message(
            "I_SEE_YOU",
            wire.security(self.passwords.get(group.service.id)),
            wire.component("service_info", group.service_body),
            wire.router_identity(self.address, self.receive_id, cache, [m.address for m in members]),
            wire.router_view(group.change, key, [self.address], [m.identity for m in members]),
            wire.capability_info(*self.capabilities),
        )
        return wire.sign(packet, self.passwords.get(group.service.id))

    def redirect_assign(self, packet: bytes, source: str, now: float) -> list[str]:
        """Take the assignment a member cache sends; what happened, as log lines."""
        events = self.expire(now)
        found = wire.decode(packet)
        if found.type != "REDIRECT_ASSIGN" or found.service is None or found.assignment is None:
            return [*events, f"{source}: not a REDIRECT_ASSIGN with a service and an assignment; ignored"]
        group = self.groups.get(found.service.id)
        if group is None or source not in group.members:
            return [*events, f"{source}: REDIRECT_ASSIGN from no member of service {found.service.id}; ignored"]
        if not self._verified(packet, found.service.id):
            return [*events, f"{source}: REDIRECT_ASSIGN for service {found.service.id} fails MD5; ignored"]
        group.assignment, group.assigned_by = found.assignment, source
        return [*events, f"service {found.service.id}: {describe(found.assignment)} from {source}"]

    # ---- what to program

    def assignments(self) -> list[tuple[Service, Assignment]]:
        """Each group's kept assignment without the work of caches that have left it since: what the
        router redirects now (a group no cache has assigned yet redirects nothing)."""
        return [
            (group.service, members_only(group.assignment, set(group.members)))
            for group in self.groups.values()
            if group.assignment is not None
        ]


def members_only(assignment: Assignment, members: set[str]) -> Assignment:
    """``assignment`` with the work of caches not in ``members`` unassigned (forwarded normally), as a
    router does between a cache's expiry and the designated cache's next assignment."""
    if assignment.method == "hash":
        gone = {n for n, cache in enumerate(assignment.caches) if cache not in members}
        return replace(assignment, buckets=[UNASSIGNED if b in gone else b for b in assignment.buckets])
    return replace(assignment, values=[(v, cache) for v, cache in assignment.values if cache in members])


def lowest_cache(caches: Iterable[str]) -> str | None:
    """The cache Squid designates among ``caches``: the lowest address as Squid compares them, the
    network-order bytes read as a native (little-endian, on the lab's machines) 32-bit number."""
    return min(caches, key=lambda c: int.from_bytes(ipaddress.IPv4Address(c).packed, "little"), default=None)


def describe(assignment: Assignment) -> str:
    """One line on an assignment: how many buckets or mask values each cache got."""
    if assignment.method == "hash":
        owners = assignment.owner_of_bucket()
        counts = {cache: owners.count(cache) for cache in assignment.caches}
        unassigned = owners.count(None)
        shares = ", ".join(f"{cache} {count}" for cache, count in counts.items())
        return f"hash assignment {assignment.key[1]}: buckets {shares}" + (
            f", unassigned {unassigned}" if unassigned else ""
        )
    per_cache: dict[str, int] = {}
    for _, cache in assignment.values:
        per_cache[cache] = per_cache.get(cache, 0) + 1
    masks = "/".join(f"{m:#x}" for m in assignment.masks)
    shares = ", ".join(f"{cache} {count}" for cache, count in per_cache.items())
    return f"mask assignment {assignment.key[1]} over masks {masks}: values {shares}"


# ---------------------------------------------------------------- the redirect an assignment asks for

NFT_TABLE = "carpfarm_wccp_router"
MARK_BASE = 0x80  # a cache's firewall mark is MARK_BASE + n (see marks), its routing table TABLE_BASE + n
TABLE_BASE = 80


def _dotted(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def mask_selector(masks: tuple[int, int, int, int]) -> tuple[str, list[int]]:
    """The nft expression a mask assignment selects on (each masked field, concatenated) and the
    indexes of the fields it uses (0 source IP, 1 destination IP, 2 source port, 3 destination port)."""
    fields = ["ip saddr & {}", "ip daddr & {}", "tcp sport & {}", "tcp dport & {}"]
    used = [n for n, mask in enumerate(masks) if mask]
    parts = [fields[n].format(_dotted(masks[n]) if n < 2 else masks[n]) for n in used]
    return " . ".join(parts), used


def _key(values: tuple[int, int, int, int], used: list[int]) -> str:
    return " . ".join(_dotted(values[n]) if n < 2 else str(values[n]) for n in used)


# Service flags that choose the hashed fields (draft-wilson-wccp-v2, Service Info).
SRC_IP_HASH, DST_IP_HASH, SRC_PORT_HASH, DST_PORT_HASH = 0x1, 0x2, 0x4, 0x8
UNASSIGNED = 0xFF
ENUMERABLE = 1 << 16  # addresses a hash map may list (the stand-in enumerates what it hashes)


def hash_flags(service: Service) -> int:
    """The primary hash fields of ``service``: a dynamic service says them; the standard web-cache
    service (which sends no flags) hashes the destination address."""
    if service.kind == "standard":
        return DST_IP_HASH
    return service.flags & (SRC_IP_HASH | DST_IP_HASH | SRC_PORT_HASH | DST_PORT_HASH)


def bucket(address: str) -> int:
    """The bucket of a packet hashed on one address: the draft's XOR of the key folded to 8 bits,
    which is the XOR of the address's octets."""
    value = 0
    for octet in ipaddress.IPv4Address(address).packed:
        value ^= octet
    return value


def addresses(networks: Iterable[str]) -> list[str]:
    """Every address of ``networks`` (at most ENUMERABLE: the stand-in lists what it hashes)."""
    networks = list(networks)
    count = sum(ipaddress.ip_network(n, strict=False).num_addresses for n in networks)
    if count > ENUMERABLE:
        raise ValueError(f"{count} addresses to hash: the stand-in lists at most {ENUMERABLE}")
    return [str(a) for n in networks for a in ipaddress.ip_network(n, strict=False)]


def _hashes_source(service: Service) -> bool:
    """Whether ``service`` hashes the source address (else the destination): the stand-in hashes one."""
    flags = hash_flags(service)
    if flags not in (SRC_IP_HASH, DST_IP_HASH):
        raise ValueError(f"service flags {flags:#x}: the stand-in hashes the source or the destination address only")
    return flags == SRC_IP_HASH


def service_ports(service: Service) -> tuple[int, ...]:
    """The destination ports a service group redirects: the standard web-cache service is port 80."""
    return (80,) if service.kind == "standard" else service.ports


def marks(caches: Iterable[str], kept: Mapping[str, int] | None = None) -> dict[str, int]:
    """Each cache's firewall mark, the same in every group the router programs. A cache keeps its mark
    in ``kept`` (the marks programmed before), so a change of membership leaves the routes of the
    caches that stay alone; every other cache takes the lowest free mark, in address order."""
    kept = kept or {}
    ordered = sorted(set(caches), key=ipaddress.ip_address)
    mark = {cache: kept[cache] for cache in ordered if cache in kept}
    free = (m for m in range(MARK_BASE, MARK_BASE + 256) if m not in mark.values())
    mark.update((cache, next(free)) for cache in ordered if cache not in mark)
    return mark


def assigned_caches(groups: Sequence[tuple[Service, Assignment]]) -> list[str]:
    """The caches the groups' assignments give work to."""
    return [cache for _, assignment in groups for cache in _caches(assignment)]


def _by_priority(groups: Sequence[tuple[Service, Assignment]]) -> list[tuple[Service, Assignment]]:
    """Groups in the order a router tries them: the highest priority first (then the lowest id)."""
    return sorted(groups, key=lambda g: (-g[0].priority, g[0].id))


def _hash_map(assignment: Assignment, service: Service, clients: list[str], destinations: list[str],
              mark: Mapping[str, int]) -> tuple[str, str]:  # fmt: skip
    """(the nft selector, its map entries) of a hash assignment: each client address (source hash) or
    destination address (destination hash) with the mark of the cache its bucket goes to; an address
    whose bucket is unassigned is left out, so its packets are forwarded normally."""
    if _hashes_source(service):
        selector, hashed = "ip saddr", addresses(clients)
    else:
        selector, hashed = "ip daddr", addresses(destinations)
    owners = assignment.owner_of_bucket()
    entries = [(a, owners[bucket(a)]) for a in hashed]
    return selector, ", ".join(f"{a} : {mark[cache]:#x}" for a, cache in entries if cache is not None)


def redirect_ruleset(
    groups: Sequence[tuple[Service, Assignment]],
    clients: list[str],
    destinations: Sequence[str] = (),
    mark: Mapping[str, int] | None = None,
) -> str:
    """The router's nftables ruleset for the assignments of its service groups: the clients' TCP
    connections to a group's ports get the firewall mark of the cache its assignment gives them (hash:
    by bucket; mask: by masked value), the groups tried highest priority first; work no cache holds
    keeps no mark and is forwarded normally, as WCCPv2 says of unassigned work. ``mark``: each cache's
    mark (default: ``marks`` of the assigned caches)."""
    mark = mark if mark is not None else marks(assigned_caches(groups))
    rules = []
    for service, assignment in _by_priority(groups):
        if assignment.method == "hash":
            selector, entries = _hash_map(assignment, service, clients, list(destinations), mark)
        else:
            selector, used = mask_selector(assignment.masks)
            entries = ", ".join(f"{_key(values, used)} : {mark[cache]:#x}" for values, cache in assignment.values)
        if entries:
            ports = ", ".join(map(str, service_ports(service)))
            rules.append(
                f"        ip saddr {{ {', '.join(clients)} }} tcp dport {{ {ports} }} "
                f"meta mark 0 meta mark set {selector} map {{ {entries} }}\n"
            )
    return (
        f"table ip {NFT_TABLE} {{\n"
        f"    chain wccp_redirect {{\n"
        f"        type filter hook prerouting priority mangle; policy accept;\n"
        f"{''.join(rules)}"
        f"    }}\n"
        f"}}\n"
    )


def _caches(assignment: Assignment) -> list[str]:
    if assignment.method == "hash":
        return [cache for cache in assignment.owner_of_bucket() if cache is not None]
    return [cache for _, cache in assignment.values]


def routing(mark: Mapping[str, int]) -> list[tuple[int, int, str]]:
    """(firewall mark, routing table, next hop) per cache of ``marks``: a marked packet is routed to
    its cache at layer 2, its destination address unchanged."""
    return [(m, TABLE_BASE + m - MARK_BASE, cache) for cache, m in sorted(mark.items(), key=lambda i: i[1])]


def cache_for(
    assignment: Assignment, service: Service, source: str, destination: str, sport: int, dport: int
) -> str | None:
    """The cache ``assignment`` sends a TCP packet to (None: forwarded normally). Hash: the bucket of
    the hashed address; mask: the first value equal to the packet's masked fields."""
    if assignment.method == "hash":
        return assignment.owner_of_bucket()[bucket(source if _hashes_source(service) else destination)]
    fields = (int(ipaddress.IPv4Address(source)), int(ipaddress.IPv4Address(destination)), sport, dport)
    masked = tuple(f & m for f, m in zip(fields, assignment.masks, strict=True))
    return next((cache for values, cache in assignment.values if values == masked), None)


def redirected_to(
    groups: Sequence[tuple[Service, Assignment]], source: str, destination: str, dport: int, sport: int = 0
) -> str | None:
    """Where the router sends a TCP packet: the first group, by priority, that covers ``dport`` and
    has a cache for it (None: no group takes it; it is forwarded normally)."""
    for service, assignment in _by_priority(groups):
        if dport in service_ports(service):
            cache = cache_for(assignment, service, source, destination, sport, dport)
            if cache is not None:
                return cache
    return None
