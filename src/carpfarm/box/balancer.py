"""Frontend balancer maths: exactly fair cascades for iptables and nftables.

A cascade of ``statistic`` rules is evaluated top to bottom, and each rule only
sees the connections the rules above it let through. Rule ``i`` must therefore
match with ``p_i = w_i / sum(w_j for j >= i)``; the last rule matches whatever
is left. The Squid wiki's example uses 0.25 on every rule, which gives shares
of 25 / 18.75 / 14.06 / 42.19 %.

iptables keeps a probability as an integer, ``round(p * 2**31)``, and prints it
with 11 decimals. We compute that integer, print it the way iptables-save does
(so a re-run compares equal), and report the share that is realised after the
rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

IPTABLES_SCALE = 0x80000000  # xt_statistic: probability * 2**31, compared with random & 0x7FFFFFFF


@dataclass(frozen=True)
class Kind:
    """What a balancer type means for the roles: each decision they make by type, made here once.

    ``hold``: how it takes one frontend instance out of rotation while it restarts (the kernel balancers
    load the exactly fair rules over the others, HAProxy puts the server in maintenance), or None when it
    cannot: a changed instance is then reloaded in place. ``rules``: the kernel NAT rules it loads, a kind
    of ``carpfarm.box.kernelrules`` (a rules file, its loader, carpfarm-watch, WCCP's intercept), or None.
    ``proxy_header``: it connects to the instances from the box and sends the client's address in a
    PROXY v2 header. ``unit``: the systemd unit that runs it ('' for none)."""

    hold: str | None = None
    rules: str | None = None
    proxy_header: bool = False
    unit: str = ""


_KERNEL_UNIT = "carpfarm-balancer.service"
# By frontend_balancer_type; a box with no balancer (SMP workers, type "none") is the empty Kind.
KINDS: dict[str, Kind] = {
    "iptables": Kind(hold="kernel", rules="iptables", unit=_KERNEL_UNIT),
    "nftables": Kind(hold="kernel", rules="nftables", unit=_KERNEL_UNIT),
    "haproxy": Kind(hold="haproxy", proxy_header=True, unit="haproxy.service"),
}
# Every unit some balancer type runs: a box stops those of the types it does not run, and those of
# earlier releases (balance's, which carpfarm no longer builds).
UNITS: tuple[str, ...] = tuple(dict.fromkeys(k.unit for k in KINDS.values()))
FORMER_UNITS: tuple[str, ...] = ("carpfarm-balance.service",)


def kind(balancer_type: str) -> Kind:
    """What ``balancer_type`` is; a type that is no balancer (``none``) is the empty Kind."""
    return KINDS.get(balancer_type, Kind())


@dataclass(frozen=True)
class CascadeRule:
    """One rule of a cascade: the target it sends to and how it matches."""

    index: int
    target: int
    probability: float  # exact wanted probability of this rule, given it is reached
    iptables_value: int  # what the kernel stores: round(probability * 2**31)
    iptables_probability: str  # as iptables-save prints it, "%.11f"
    every: int  # nth mode: --every
    share: float  # wanted share of all connections
    realised_share: float  # share after iptables' rounding
    last: bool  # the last rule matches unconditionally


def hold_method(balancer_type: str) -> str | None:
    """``kernel``, ``haproxy``, or None when the balancer cannot hold an instance out."""
    return kind(balancer_type).hold


def _check_weights(weights: Sequence[int | float]) -> None:
    if not weights:
        raise ValueError("a cascade needs at least one target")
    bad = [w for w in weights if not w > 0]
    if bad:
        raise ValueError(f"weights must be > 0, got {bad}")


def cascade_probabilities(weights: Sequence[int | float]) -> list[Fraction]:
    """Exact conditional probabilities ``w_i / sum(w_j, j >= i)``; the last is 1."""
    _check_weights(weights)
    exact = [Fraction(w) for w in weights]
    remaining = sum(exact, Fraction(0))
    result = []
    for w in exact:
        result.append(w / remaining)
        remaining -= w
    return result


def iptables_value(probability: Fraction | float) -> int:
    """The integer iptables stores for ``--probability`` (lround of p * 2**31)."""
    scaled = Fraction(probability) * IPTABLES_SCALE
    return min(IPTABLES_SCALE, int(scaled + Fraction(1, 2)))


def format_iptables_probability(value: int) -> str:
    """Print a stored value the way ``iptables-save`` does."""
    return f"{value / IPTABLES_SCALE:.11f}"


def realised_shares(conditional: Sequence[float]) -> list[float]:
    """Multiply a cascade out: the share of all connections each rule gets."""
    shares = []
    left = 1.0
    for p in conditional:
        shares.append(left * p)
        left *= 1.0 - p
    return shares


def cascade(targets: Sequence[int], weights: Sequence[int | float] | None = None) -> list[CascadeRule]:
    """The iptables rules that spread connections over ``targets`` in proportion to ``weights``."""
    weights = list(weights) if weights is not None else [1] * len(targets)
    if len(weights) != len(targets):
        raise ValueError(f"{len(targets)} targets but {len(weights)} weights")
    exact = cascade_probabilities(weights)
    stored = [iptables_value(p) for p in exact]
    stored[-1] = IPTABLES_SCALE
    realised = realised_shares([v / IPTABLES_SCALE for v in stored])
    total = sum(Fraction(w) for w in weights)
    n = len(targets)
    return [
        CascadeRule(
            index=i,
            target=target,
            probability=float(exact[i]),
            iptables_value=stored[i],
            iptables_probability=format_iptables_probability(stored[i]),
            every=n - i,
            share=float(Fraction(weights[i]) / total),
            realised_share=realised[i],
            last=i == n - 1,
        )
        for i, target in enumerate(targets)
    ]


def naive_shares(n: int, probability: float) -> list[float]:
    """Shares of the wiki's cascade with the same probability on every rule (the last falls through)."""
    return realised_shares([probability] * (n - 1) + [1.0])


def nft_map(targets: Sequence[int], weights: Sequence[int] | None = None) -> tuple[int, list[tuple[str, int]]]:
    """``numgen ... mod M map { k : port }`` entries; integer weights become ranges of keys."""
    weights = list(weights) if weights is not None else [1] * len(targets)
    _check_weights(weights)
    if any(int(w) != w for w in weights):
        raise ValueError(f"nftables numgen needs whole-number weights, got {weights}")
    entries = []
    start = 0
    for target, w in zip(targets, weights, strict=True):
        end = start + int(w) - 1
        entries.append((str(start) if start == end else f"{start}-{end}", target))
        start = end + 1
    return start, entries
