"""The backend a CARP box in ``carp_frontend_mode: haproxy`` with ``carp_frontend_haproxy_selection:
consistent`` picks: HAProxy's own consistent URI hash (``carpfarm.carp.chash``), as carpfarm
configures it, identical on Debian 12's HAProxy 2.6 and Debian 13's 3.0.

How carpfarm makes the two releases agree (``roles/frontend_balancer``'s HAProxy template):

* the backend is ``balance uri whole`` with a bare ``hash-type consistent`` (sdbm, avalanche): the
  whole request target, query included, so that no two URLs of one site share a backend by rule;
* each backend instance is a server with an explicit id from its peer name (``stable_ids``): the
  points stay where they are when other servers come or go, and the id written for each release
  puts them at the same keys (``full_hash(slot x 4096 + j)``) on both;
* 2.6 is given, as rules, what Debian 13's 3.0 does by itself: a 400 for an absolute-form target
  whose authority holds a forbidden byte, and a ``/`` appended to an absolute-form target without
  one after ``scheme://``. So the targets are hashed as 3.0 stores them (``chash.HAPROXY_3_0``);
* weights: HAProxy takes 1-256 where carpfarm takes 1-1000; each server gets
  ``round(weight x 256 / the largest weight)`` (at least 1), so equal weights give every server
  4,096 points on the ring, and unequal ones keep their proportions to 1/256 of the largest;
* a drained peer is a ``disabled`` server and a down one has failed its health checks: neither has
  points, and their URLs go to the servers whose points are nearest, as ``down`` here does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

from carpfarm.carp.chash import (
    HAPROXY_2_6,
    HAPROXY_3_0,
    MAX_WEIGHT,
    ChashRing,
    HaproxyServer,
    StableId,
    TargetRejected,
    UriBalance,
    check_target,
    normalized_target,
    stable_ids,
)

BALANCE = UriBalance(whole=True)
# The release whose request-target handling every box gets (2.6 by the template's rules).
TARGETS = HAPROXY_3_0


def haproxy_weights(weights: Sequence[int]) -> list[int]:
    """HAProxy's server weights (0-256) for carpfarm's (0-1000), in proportion to the largest."""
    top = max(weights, default=0)
    return [0 if w <= 0 else max(1, round(w * MAX_WEIGHT / top)) for w in weights]


@dataclass(frozen=True)
class ConsistentServer:
    """One backend instance as a server of the consistent-hash backend."""

    name: str  # the peer name, which is also the server's name
    weight: int  # HAProxy's, 0-256
    ids: StableId


@dataclass(frozen=True)
class ConsistentFarm:
    """The consistent-hash backend of a farm: its servers in ``cache_peer`` order."""

    servers: tuple[ConsistentServer, ...]

    @classmethod
    def build(cls, peers: Sequence[tuple[str, int]]) -> ConsistentFarm:
        """From (peer name, carpfarm weight) pairs in ``cache_peer`` order."""
        names = [name for name, _ in peers]
        ids = stable_ids(names)
        weights = haproxy_weights([weight for _, weight in peers])
        return cls(tuple(ConsistentServer(n, w, ids[n]) for n, w in zip(names, weights, strict=True)))

    @cached_property
    def _slot_servers(self) -> tuple[HaproxyServer, ...]:
        # Modelled on 2.6's id x 4096 with the slot as id: the very keys both releases place.
        return tuple(HaproxyServer(name=s.name, weight=s.weight, id=s.ids.slot) for s in self.servers)

    def ring(self, down: Iterable[str] = ()) -> ChashRing:
        return self._ring(frozenset(down))

    @lru_cache(maxsize=16)  # noqa: B019 - a frozen farm; its few rings are worth keeping
    def _ring(self, gone: frozenset[str]) -> ChashRing:
        servers = [
            HaproxyServer(name=s.name, weight=s.weight, id=s.id, down=s.name in gone) for s in self._slot_servers
        ]
        return ChashRing.build(servers, HAPROXY_2_6)

    def select(self, target: str, down: Iterable[str] = (), connect: bool = False) -> str | None:
        """The server (peer name) HAProxy sends ``target`` to, or None: no server is usable, or
        HAProxy answers 400 to the target (``TargetRejected``). ``connect``: ``target`` is a
        CONNECT's authority (``host:port``), hashed as it arrived."""
        return self.select_many([target], down, connect)[0]

    def select_many(self, targets: Sequence[str], down: Iterable[str] = (), connect: bool = False) -> list[str | None]:
        ring = self.ring(down)
        chosen: list[str | None] = []
        for target in targets:
            try:
                if connect:
                    check_target(target.encode("utf-8", "surrogateescape"), TARGETS)
                    uri = target.encode("utf-8", "surrogateescape")
                else:
                    uri = normalized_target(target, TARGETS)
            except TargetRejected:
                chosen.append(None)
                continue
            server = ring.lookup(0 if ring.used <= 1 else BALANCE.hash(uri))
            chosen.append(None if server is None else server.name)
        return chosen
