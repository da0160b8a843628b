"""Squid's CARP parent selection, exactly as Squid 5.7 and 6.13 compute it.

Everything here mirrors the arithmetic of Squid's ``src/carp.cc`` (peer hash,
load multipliers, selection) so that a prediction made on the controller is
the choice a real frontend makes; the URL key it hashes is built by
``carpfarm.carp.url``:

* hash arithmetic is unsigned 32-bit; the bytes of names and keys are C
  ``char``, which is signed on x86, so bytes >= 0x80 are sign-extended;
* load factors are ``w / W`` and become 0 below one per mille;
* peers are ordered by weight, ascending, ties in configuration order;
* the multipliers are computed in IEEE doubles, where ``inf`` and ``nan``
  occur and are kept (Python would raise instead);
* the URL hash is *not* reset between peers: it keeps accumulating over each
  peer's key, which is why inserting or deleting a peer that is not last
  remaps far more than its own share of URLs.

Debian 12's squid 5.7 and Debian 13's 6.13 choose alike, so nothing here takes
a release: between the SQUID_5_7 and SQUID_6_13 tags ``carp.cc`` changed only
its logging (for ``Uri.cc``, see ``carpfarm.carp.url``). Both are checked by
``tests/carp/test_carp_squid.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, get_args

from carpfarm.carp.url import url_key

MASK = 0xFFFFFFFF
HASH_MULTIPLIER = 0x62531965
KeyPart = Literal["scheme", "host", "port", "path", "params"]
KEY_PARTS: tuple[str, ...] = get_args(KeyPart)


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & MASK


def char_values(text: str, signed_char: bool) -> tuple[int, ...]:
    """The values C adds for each byte: sign-extended when ``char`` is signed."""
    data = text.encode("utf-8", "surrogateescape")
    if not signed_char:
        return tuple(data)
    return tuple((b - 256) & MASK if b >= 0x80 else b for b in data)


def _accumulate(state: int, chars: Sequence[int]) -> int:
    """``h += rotl(h, 19) + c`` for each byte, in unsigned 32-bit arithmetic."""
    for c in chars:
        state = (state + ((state << 19 | state >> 13) & MASK) + c) & MASK
    return state


def _mix(value: int) -> int:
    value = (value + value * HASH_MULTIPLIER) & MASK
    return _rotl(value, 21)


def peer_hash(name: str, signed_char: bool = True) -> int:
    """The hash Squid gives a peer; it depends on ``name=`` only."""
    return _mix(_accumulate(0, char_values(name, signed_char)))


def _ieee_div(num: float, den: float) -> float:
    if den != 0.0:
        return num / den
    if num == 0.0 or math.isnan(num):
        return math.nan
    return math.copysign(math.inf, num) * math.copysign(1.0, den)


def _ieee_pow(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except OverflowError:
        return math.inf
    except ValueError:  # negative base with a fractional exponent
        return math.nan


@dataclass(frozen=True)
class CarpPeer:
    """One ``cache_peer ... parent ... carp`` line, as far as CARP cares."""

    name: str
    host: str
    port: int
    weight: int = 1
    carp_key: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.carp_key is not None:
            key = tuple(self.carp_key)
            unknown = [part for part in key if part not in KEY_PARTS]
            if unknown:
                raise ValueError(f"carp-key part(s) {unknown} unknown; use any of {', '.join(KEY_PARTS)}")
            object.__setattr__(self, "carp_key", key)


@dataclass(frozen=True)
class _Ranked:
    peer: CarpPeer
    hash: int
    load_factor: float
    multiplier: float


@dataclass(frozen=True)
class CarpArray:
    """The CARP peers of one Squid, sorted and weighted as ``carpInit()`` does."""

    ranked: tuple[_Ranked, ...]
    signed_char: bool = True
    _by_name: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, peers: Iterable[CarpPeer], signed_char: bool = True) -> CarpArray:
        usable = [p for p in peers if p.weight != 0]
        total = sum(p.weight for p in usable)
        factors = []
        for p in usable:
            lf = p.weight / total
            factors.append(0.0 if math.floor(lf * 1000.0) == 0.0 else lf)
        # glibc's qsort is a merge sort for arrays this small: stable, so ties
        # keep configuration order.
        order = sorted(range(len(usable)), key=lambda i: usable[i].weight)
        k_total = len(usable)
        p_last, x_last, x_product = 0.0, 0.0, 1.0
        ranked = []
        for k, i in enumerate(order, start=1):
            kk1 = float(k_total - k + 1)
            lf = factors[i]
            mult = _ieee_div(kk1 * (lf - p_last), x_product)
            mult += _ieee_pow(x_last, kk1)
            mult = _ieee_pow(mult, 1.0 / kk1)
            x_product *= mult
            x_last, p_last = mult, lf
            peer = usable[i]
            ranked.append(_Ranked(peer, peer_hash(peer.name, signed_char), lf, mult))
        by_name = {r.peer.name: n for n, r in enumerate(ranked)}
        return cls(tuple(ranked), signed_char, by_name)

    @property
    def peers(self) -> tuple[CarpPeer, ...]:
        """Peers in the order Squid walks them."""
        return tuple(r.peer for r in self.ranked)

    def select(self, url: str, down: Iterable[str] = (), connect: bool = False) -> CarpPeer | None:
        """The parent Squid picks for ``url``; peers named in ``down`` cannot win. ``connect``:
        ``url`` is a CONNECT request's ``host:port``."""
        excluded = set(down)
        full_key: tuple[int, ...] | None = None
        user_hash = 0
        best: CarpPeer | None = None
        high = 0.0
        for r in self.ranked:
            if r.peer.carp_key:
                key = char_values(url_key(url, r.peer.carp_key, connect), self.signed_char)
            else:
                if full_key is None:
                    full_key = char_values(url_key(url, connect=connect), self.signed_char)
                key = full_key
            user_hash = _accumulate(user_hash, key)
            score = _mix(user_hash ^ r.hash) * r.multiplier
            if score > high and r.peer.name not in excluded:
                best, high = r.peer, score
        return best


@lru_cache(maxsize=64)
def _cached_array(peers: tuple[CarpPeer, ...], signed_char: bool) -> CarpArray:
    return CarpArray.build(peers, signed_char)


def select_parent(
    url: str,
    peers: Sequence[CarpPeer],
    down: Iterable[str | CarpPeer] = (),
    signed_char: bool = True,
    connect: bool = False,
) -> CarpPeer | None:
    """Which of ``peers`` (in ``squid.conf`` order) Squid forwards ``url`` to.

    ``down`` lists peers (or their names) that are dead or denied by
    ``cache_peer_access``: they still feed the hash but cannot win. ``None``
    means no peer is usable, and Squid falls back to other selection methods.
    ``connect``: ``url`` is a CONNECT request's authority, ``host:port``.
    """
    names = [d.name if isinstance(d, CarpPeer) else d for d in down]
    return _cached_array(tuple(peers), signed_char).select(url, names, connect)
