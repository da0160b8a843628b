"""How much of the Internet a set of networks admits, counted on integers, never address by address.

The open-proxy guard measures the union of the networks a proxy admits against its family's
public unicast space: every address that can be an Internet client's. Networks are closed
intervals of integers (first, last); overlapping ones are merged before they are counted.

Squid keeps every address as IPv6 and an IPv4 client as ``::ffff:a.b.c.d``, so an IPv6 network
admits the IPv4 clients it holds there: ``::ffff:0:0/96`` (and ``::/0``) all of them. The part of
an IPv6 network inside an IPv4-in-IPv6 prefix is therefore counted as the IPv4 addresses it
embeds, besides its IPv6 addresses (none of which are public). Two more prefixes are counted the
same way, to be safe: the deprecated IPv4-compatible ``::/96`` (``::a.b.c.d``; no Squid stores a
client so, but no real IPv6 client sends from it either, so nothing legitimate is lost) and
NAT64's well-known ``64:ff9b::/96``, where a translator (SIIT) shows IPv4 clients to an IPv6 box.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction

Interval = tuple[int, int]  # the first and the last address, both included
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Spans = dict[int, list[Interval]]  # by family (4, 6): sorted, disjoint intervals

# IPv4: everything outside IANA's special-purpose address registry (RFC 6890 and its updates),
# none of which is an Internet client's source: "this network", private use, shared (CGN) space,
# loopback, link-local, IETF protocol assignments, documentation, 6to4 relay anycast, benchmarking,
# multicast and the reserved 240/4 (with the limited broadcast address).
SPECIAL_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
# IPv6: the global unicast space IANA allocates from, 2000::/3 (everything else, ::/0 included,
# is unassigned or special: loopback, ULA fc00::/7, link-local fe80::/10, multicast ff00::/8).
# Inside it, the registry's prefixes that no client can send from: benchmarking, ORCHID and
# ORCHIDv2, drone remote ID, and both documentation prefixes. Teredo (2001::/32) and 6to4
# (2002::/16) stay: real clients reach the Internet from them.
GLOBAL_V6 = "2000::/3"
SPECIAL_V6 = (
    "2001:2::/48",
    "2001:10::/28",
    "2001:20::/28",
    "2001:30::/28",
    "2001:db8::/32",
    "3fff::/20",
)
FAMILY = {4: "IPv4", 6: "IPv6"}
# IPv6 prefixes whose last 32 bits are an IPv4 client's address (see the module's docstring).
IPV4_IN_IPV6 = ("::ffff:0:0/96", "::/96", "64:ff9b::/96")
# More than this share of a family's public space is an open proxy, unless carpfarm_allow_open_proxy.
# IPv4: the public space is 3,702,258,432 addresses, so 1/256 of it is 14,461,947 addresses, 0.86 of
# a /8: a /9 (8,388,608) passes, a whole public /8 (16,777,216, as IANA once gave a registry) does not.
# No organisation's clients need more, and the private ranges (10/8, 172.16/12, 192.168/16) count
# for nothing. IPv6: 1/256 of 2000::/3 is a /11's worth (2**117 addresses), more than the /12 IANA
# gives a whole regional registry and 256 times the largest ISP allocations (/19): any real client
# list stays far below, while ::/0, 2000::/3 and their halves are refused.
THRESHOLD = Fraction(1, 256)


def interval(network: Network) -> Interval:
    return int(network.network_address), int(network.broadcast_address)


def merged(intervals: Iterable[Interval]) -> list[Interval]:
    """The same addresses as sorted, disjoint intervals; touching ones are joined."""
    out: list[Interval] = []
    for first, last in sorted(intervals):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def without(intervals: Sequence[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """``intervals`` less every address in ``holes``."""
    out: list[Interval] = []
    cuts = merged(holes)
    for first, last in merged(intervals):
        start = first
        for cut_first, cut_last in cuts:
            if cut_last < start or cut_first > last:
                continue
            if cut_first > start:
                out.append((start, cut_first - 1))
            start = cut_last + 1
        if start <= last:
            out.append((start, last))
    return out


def overlap(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """The addresses in both (each a list of sorted, disjoint intervals)."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        first, last = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if first <= last:
            out.append((first, last))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def size(intervals: Iterable[Interval]) -> int:
    return sum(last - first + 1 for first, last in intervals)


def _networks(cidrs: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(c) for c in cidrs]


PUBLIC: dict[int, list[Interval]] = {
    4: without([interval(ipaddress.ip_network("0.0.0.0/0"))], map(interval, _networks(SPECIAL_V4))),
    6: without([interval(ipaddress.ip_network(GLOBAL_V6))], map(interval, _networks(SPECIAL_V6))),
}


def _embedded_v4(span: Interval) -> Iterator[Interval]:
    """The IPv4 addresses an IPv6 interval holds in the IPv4-in-IPv6 prefixes."""
    for first, last in map(interval, _networks(IPV4_IN_IPV6)):
        for low, high in overlap([span], [(first, last)]):
            yield low - first, high - first


def spans(networks: Iterable[Network]) -> Spans:
    """The addresses of ``networks`` by family, IPv4 clients inside IPv6 networks counted as IPv4."""
    by_family: dict[int, list[Interval]] = {}
    for network in networks:
        span = interval(network)
        by_family.setdefault(network.version, []).append(span)
        if network.version == 6 and (embedded := list(_embedded_v4(span))):
            by_family.setdefault(4, []).extend(embedded)
    return {version: merged(found) for version, found in sorted(by_family.items())}


def union(*many: Spans) -> Spans:
    together: dict[int, list[Interval]] = {}
    for one in many:
        for version, found in one.items():
            together.setdefault(version, []).extend(found)
    return {version: merged(found) for version, found in sorted(together.items())}


def intersection(a: Spans, b: Spans) -> Spans:
    """The addresses in both, in the families both have."""
    return {version: overlap(a[version], b[version]) for version in sorted(a.keys() & b.keys())}


EVERYTHING: Spans = spans([ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")])


def share(found: Mapping[int, Sequence[Interval]]) -> dict[int, Fraction]:
    """For each family in ``found``: the share of its public space those addresses cover."""
    return {
        version: Fraction(size(overlap(merged(found[version]), PUBLIC[version])), size(PUBLIC[version]))
        for version in sorted(found)
    }


def public_share(networks: Iterable[Network]) -> dict[int, Fraction]:
    """For each family present: the share of its public space the union of ``networks`` covers
    (an IPv6 network holding IPv4 clients counts for IPv4 too)."""
    return share(spans(networks))


def over(shares: Mapping[int, Fraction]) -> dict[int, Fraction]:
    """The shares above THRESHOLD."""
    return {version: part for version, part in shares.items() if part > THRESHOLD}


def over_threshold(networks: Iterable[Network]) -> dict[int, Fraction]:
    """The families whose public space ``networks`` cover more than THRESHOLD of, with the share."""
    return over(public_share(networks))


def describe(shares: dict[int, Fraction]) -> str:
    """'50.00% of the public IPv4 space' (and the other family's, when both are over)."""
    return " and ".join(
        f"{float(share):.2%} of the public {FAMILY[version]} space" for version, share in shares.items()
    )


def threshold_text() -> str:
    return f"1/{THRESHOLD.denominator} ({float(THRESHOLD):.2%})"
