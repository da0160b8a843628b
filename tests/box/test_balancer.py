"""Balancer maths: exact cascades, iptables' stored values, nftables maps."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carpfarm.box import kernelrules
from carpfarm.box.balancer import (
    FORMER_UNITS,
    IPTABLES_SCALE,
    KINDS,
    UNITS,
    Kind,
    cascade,
    cascade_probabilities,
    format_iptables_probability,
    hold_method,
    iptables_value,
    kind,
    naive_shares,
    nft_map,
    realised_shares,
)


def _product(probabilities: list[Fraction]) -> list[Fraction]:
    left, shares = Fraction(1), []
    for p in probabilities:
        shares.append(left * p)
        left *= 1 - p
    return shares


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, ["1"]),
        (2, ["1/2", "1"]),
        (4, ["1/4", "1/3", "1/2", "1"]),
        (5, ["1/5", "1/4", "1/3", "1/2", "1"]),
    ],
)
def test_equal_weights_give_the_textbook_cascade(n: int, expected: list[str]) -> None:
    assert cascade_probabilities([1] * n) == [Fraction(e) for e in expected]


def test_the_wiki_example_is_unfair_and_ours_is_not() -> None:
    wiki = naive_shares(4, 0.25)
    assert [round(s * 100, 2) for s in wiki] == [25.0, 18.75, 14.06, 42.19]
    ours = [rule.realised_share for rule in cascade([3129, 3130, 3131, 3132])]
    assert max(abs(s - 0.25) for s in ours) < 1e-9


@pytest.mark.parametrize(
    ("p", "stored", "printed"),
    [
        (Fraction(1, 2), 1 << 30, "0.50000000000"),
        (Fraction(1, 4), 1 << 29, "0.25000000000"),
        (Fraction(1, 3), 715827883, "0.33333333349"),
        (Fraction(1), IPTABLES_SCALE, "1.00000000000"),
    ],
)
def test_iptables_stores_probability_times_2_to_31(p: Fraction, stored: int, printed: str) -> None:
    assert iptables_value(p) == stored
    assert format_iptables_probability(stored) == printed


def test_printed_probability_round_trips_to_the_same_stored_value() -> None:
    for n in range(2, 65):
        for rule in cascade(list(range(n))):
            reparsed = round(float(rule.iptables_probability) * IPTABLES_SCALE)
            assert reparsed == rule.iptables_value


@settings(max_examples=64, deadline=None)
@given(n=st.integers(min_value=1, max_value=64))
def test_equal_cascade_shares_are_equal_to_1e_9(n: int) -> None:
    rules = cascade(list(range(3129, 3129 + n)))
    assert _product(cascade_probabilities([1] * n)) == [Fraction(1, n)] * n
    assert all(abs(r.realised_share - 1 / n) < 1e-9 for r in rules)
    assert abs(sum(r.realised_share for r in rules) - 1) < 1e-12
    assert rules[-1].last and all(not r.last for r in rules[:-1])


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=64))
def test_weighted_cascade_shares_are_exact(weights: list[int]) -> None:
    total = sum(weights)
    exact = _product(cascade_probabilities(weights))
    assert exact == [Fraction(w, total) for w in weights]
    rules = cascade(list(range(len(weights))), weights)
    assert all(abs(r.realised_share - w / total) < 1e-9 for r, w in zip(rules, weights, strict=True))


def test_roundrobin_uses_every_n_down_to_1() -> None:
    assert [r.every for r in cascade([1, 2, 3, 4])] == [4, 3, 2, 1]


def test_realised_shares_multiply_out() -> None:
    assert realised_shares([0.5, 1.0]) == [0.5, 0.5]


@pytest.mark.parametrize(
    ("weights", "modulus", "entries"),
    [
        (None, 3, [("0", 3129), ("1", 3130), ("2", 3131)]),
        ([2, 1, 3], 6, [("0-1", 3129), ("2", 3130), ("3-5", 3131)]),
    ],
)
def test_nft_map(weights: list[int] | None, modulus: int, entries: list[tuple[str, int]]) -> None:
    assert nft_map([3129, 3130, 3131], weights) == (modulus, entries)


@pytest.mark.parametrize("weights", [[], [0, 1], [-1, 2], [1, float("nan")]])
def test_bad_weights_are_refused(weights: list[float]) -> None:
    with pytest.raises(ValueError):
        cascade(list(range(len(weights))) or [], weights)


@pytest.mark.parametrize(
    ("balancer_type", "expected"),
    [
        ("iptables", Kind(hold="kernel", rules="iptables", unit="carpfarm-balancer.service")),
        ("nftables", Kind(hold="kernel", rules="nftables", unit="carpfarm-balancer.service")),
        ("haproxy", Kind(hold="haproxy", proxy_header=True, unit="haproxy.service")),
        ("none", Kind()),  # carp_frontend_mode: smp
    ],
)
def test_what_a_balancer_type_means_for_the_roles_is_said_once(balancer_type: str, expected: Kind) -> None:
    assert kind(balancer_type) == expected
    assert hold_method(balancer_type) == expected.hold


def test_the_kernel_balancers_are_kernelrules_kinds_and_every_unit_is_listed_once() -> None:
    assert tuple(k.rules for k in KINDS.values() if k.rules) == kernelrules.KINDS
    assert UNITS == ("carpfarm-balancer.service", "haproxy.service")
    assert not set(UNITS) & set(FORMER_UNITS)
