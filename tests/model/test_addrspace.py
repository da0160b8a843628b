"""carpfarm.model.addrspace: the share of the public space a set of networks covers, on integers."""

from __future__ import annotations

import ipaddress
import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carpfarm.model import addrspace


def _nets(*cidrs: str) -> list[addrspace.Network]:
    return [ipaddress.ip_network(c) for c in cidrs]


def test_the_public_spaces_have_the_sizes_the_threshold_comment_gives() -> None:
    v4 = addrspace.size(addrspace.PUBLIC[4])
    assert v4 == 3_702_258_432
    assert v4 // 256 == 14_461_947 and 2**23 < v4 / 256 < 2**24  # between a /9 and a /8
    v6 = addrspace.size(addrspace.PUBLIC[6])
    assert 2**124 < v6 < 2**125  # 2000::/3 less the documentation, benchmarking and ORCHID prefixes


@pytest.mark.parametrize(
    ("cidrs", "over"),
    [
        (["0.0.0.0/0"], {4: Fraction(1)}),
        (["0.0.0.0/1", "128.0.0.0/1"], {4: Fraction(1)}),
        (["::/0"], {4: Fraction(1), 6: Fraction(1)}),  # IPv4 clients are ::ffff:a.b.c.d to Squid
        (["2000::/3"], {6: Fraction(1)}),
        (["0.0.0.0/0", "::/0"], {4: Fraction(1), 6: Fraction(1)}),
        (["11.0.0.0/8"], {4: Fraction(2**24, 3_702_258_432)}),
        (["11.0.0.0/9", "11.128.0.0/9"], {4: Fraction(2**24, 3_702_258_432)}),
        (["11.0.0.0/9"], {}),
        (["10.0.0.0/8", "192.168.0.0/16"], {}),
        (["198.18.0.128/26"], {}),
        (["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "224.0.0.0/3", "0.0.0.0/8"], {}),
        (["fc00::/7", "fe80::/10", "2001:db8::/32", "8000::/1"], {}),  # ULA, link-local, documentation, unassigned
        (["2a00::/12"], {}),  # a registry's block: 1/512
        (["2400::/12", "2600::/12", "2a00::/12"], {6: Fraction(3 * 2**116, addrspace.size(addrspace.PUBLIC[6]))}),
        (["2001:db8::/32", "10.0.0.0/8"], {}),
        (["::ffff:0:0/96"], {4: Fraction(1)}),
        (["::ffff:0.0.0.0/96"], {4: Fraction(1)}),
        (["::ffff:0.0.0.0/97", "::ffff:128.0.0.0/97"], {4: Fraction(1)}),
        (["::fffe:0:0/95"], {4: Fraction(1)}),
        (["::/96"], {4: Fraction(1)}),  # IPv4-compatible ::a.b.c.d, counted the same
        (["64:ff9b::/96"], {4: Fraction(1)}),  # NAT64's well-known prefix
        (["::/64"], {4: Fraction(1)}),
        (["::ffff:10.0.0.0/104"], {}),
        (["::ffff:11.0.0.0/105", "11.128.0.0/9"], {4: Fraction(2**24, 3_702_258_432)}),
        (["::ffff:11.0.0.0/104", "11.0.0.0/8"], {4: Fraction(2**24, 3_702_258_432)}),  # the same clients, once
        (["::ffff:11.0.0.0/105"], {}),
    ],
)
def test_networks_over_the_threshold_are_told_with_their_share(cidrs: list[str], over: dict[int, Fraction]) -> None:
    assert addrspace.over_threshold(_nets(*cidrs)) == over


@pytest.mark.parametrize(
    ("cidrs", "shares"),
    [
        (["::ffff:10.0.0.0/104"], {4: Fraction(0), 6: Fraction(0)}),
        (["::ffff:0:0/96"], {4: Fraction(1), 6: Fraction(0)}),
        (["2001:db8::/32"], {6: Fraction(0)}),
        (["10.0.0.0/8"], {4: Fraction(0)}),
    ],
)
def test_ipv4_inside_ipv6_is_measured_as_ipv4(cidrs: list[str], shares: dict[int, Fraction]) -> None:
    assert addrspace.public_share(_nets(*cidrs)) == shares


def test_spans_add_up_and_intersect_across_the_families() -> None:
    mapped = addrspace.spans(_nets("::ffff:0:0/96"))
    ten = addrspace.spans(_nets("10.0.0.0/8"))
    assert addrspace.intersection(mapped, ten) == ten
    assert addrspace.intersection(ten, addrspace.spans(_nets("2001:db8::/32"))) == {}
    assert addrspace.share(addrspace.union(ten, addrspace.spans(_nets("11.0.0.0/8")))) == {
        4: Fraction(2**24, 3_702_258_432)
    }
    assert addrspace.share(addrspace.EVERYTHING) == {4: Fraction(1), 6: Fraction(1)}


def test_the_description_says_the_share_and_the_family() -> None:
    shares = addrspace.public_share(_nets("0.0.0.0/1", "2000::/3"))
    assert addrspace.describe(shares) == "56.53% of the public IPv4 space and 100.00% of the public IPv6 space"
    assert addrspace.threshold_text() == "1/256 (0.39%)"


intervals = st.lists(
    st.tuples(st.integers(0, 2000), st.integers(0, 200)).map(lambda t: (t[0], t[0] + t[1])), max_size=12
)


def _addresses(spans: list[addrspace.Interval]) -> set[int]:
    return {a for first, last in spans for a in range(first, last + 1)}


@settings(max_examples=300)
@given(intervals, intervals)
def test_interval_arithmetic_agrees_with_sets_of_addresses(
    a: list[addrspace.Interval], b: list[addrspace.Interval]
) -> None:
    merged_a, merged_b = addrspace.merged(a), addrspace.merged(b)
    assert _addresses(merged_a) == _addresses(a)
    assert all(x[1] + 1 < y[0] for x, y in itertools.pairwise(merged_a))  # disjoint, not touching
    assert addrspace.size(merged_a) == len(_addresses(a))
    assert _addresses(addrspace.without(a, b)) == _addresses(a) - _addresses(b)
    assert _addresses(addrspace.overlap(merged_a, merged_b)) == _addresses(a) & _addresses(b)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 32)), min_size=1, max_size=6))
def test_a_share_never_shrinks_when_a_network_is_added(items: list[tuple[int, int]]) -> None:
    nets = [ipaddress.ip_network((address, prefix), strict=False) for address, prefix in items]
    shares = [addrspace.public_share(nets[: n + 1]).get(4, Fraction(0)) for n in range(len(nets))]
    assert shares == sorted(shares) and all(0 <= s <= 1 for s in shares)
