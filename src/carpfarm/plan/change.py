"""What a change of inventory does to where URLs live (``carpfarm impact``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from carpfarm.carp import CarpArray, select_batch
from carpfarm.model import Topology
from carpfarm.plan.views import sample_urls

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


def sampled_routes(
    topology: Topology,
    urls: Sequence[str],
    down: Iterable[str],
    progress: Callable[[int, int], None] | None = None,
) -> list[str | None]:
    """``topology.route`` for many URLs at once: the peer names (None where no peer takes the URL)."""
    if topology.selection == "consistent":
        chosen = topology.consistent_farm.select_many(urls, down)
        if progress is not None:
            progress(len(urls), len(urls))
        return chosen
    return [None if p is None else p.name for p in select_batch([(topology.carp_array, down)], urls, progress)[0]]


def _both_routes(
    old: Topology,
    new: Topology,
    urls: Sequence[str],
    downs: tuple[set[str], set[str], set[str] | None],
    progress: Callable[[int, int], None] | None,
) -> list[list[str | None]]:
    """Each URL's peer in the old farm, the new one and (when ``downs[2]``) the old with more down."""
    if old.selection == new.selection == "carp":
        jobs: list[tuple[CarpArray, Iterable[str]]] = [(old.carp_array, downs[0]), (new.carp_array, downs[1])]
        if downs[2] is not None:
            jobs.append((old.carp_array, downs[2]))
        return [[None if p is None else p.name for p in r] for r in select_batch(jobs, urls, progress)]
    routes = [sampled_routes(old, urls, downs[0]), sampled_routes(new, urls, downs[1], progress)]
    if downs[2] is not None:
        routes.append(sampled_routes(old, urls, downs[2]))
    return routes


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
    # With deleted peers, also the same farm with them kept but drained: their hashes stay in the walk.
    routes = _both_routes(
        old, new, url_list, (old_down, new_down, old_down | set(deleted) if deleted else None), progress
    )
    per_peer: dict[str, dict[str, int]] = {n: {"before": 0, "after": 0, "lost": 0, "gained": 0} for n in before | after}
    moved = necessary = 0
    for a, b in zip(routes[0], routes[1], strict=True):
        a_name, b_name = a or "", b or ""
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
    if old.selection != new.selection:
        tips.append(
            f"the CARP boxes' choice changes from {old.selection} to {new.selection} "
            "(carp_frontend_mode: haproxy with carp_frontend_haproxy_selection: consistent places URLs by HAProxy's "
            "consistent hash, every other mode by Squid's CARP): each URL is placed anew, once; the caches refill"
        )
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
