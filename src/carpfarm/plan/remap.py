"""No silent remap: compare the CARP peers a box runs now with the ones about to be deployed.

Squid's CARP hash walks the ``cache_peer`` lines in order, so the order is part of where
every URL lives. Appending peers moves only the URLs the new peers take; reordering the
existing ones, inserting a peer before them, or deleting one that still serves URLs moves
far more. site.yml's validate play reads each CARP box's ``cache_peer`` lines and stops
before any change when the new list would do that, unless ``carpfarm_accept_remap`` is set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from carpfarm.model import BackendHost, BackendInstance, Topology
from carpfarm.plan.change import impact
from carpfarm.problems import Problem

_PEER = re.compile(r"^cache_peer\s+(\S+)\s+parent\s+(\d+)\s+\d+\s+.*\bname=(\S+)")
_WEIGHT = re.compile(r"\bweight=(\d+)")
_DENIED = re.compile(r"^cache_peer_access\s+(\S+)\s+deny\s+all\s*$")


@dataclass(frozen=True)
class DeployedPeer:
    name: str
    address: str
    port: int
    weight: int
    drained: bool


def deployed_peers(lines: Iterable[str]) -> list[DeployedPeer]:
    """The parents of a frontend's squid.conf, in order (a drained one is denied all)."""
    found: list[tuple[str, str, int, int]] = []
    denied: set[str] = set()
    for line in lines:
        line = line.strip()
        peer = _PEER.match(line)
        if peer:
            weight = _WEIGHT.search(line)
            found.append((peer.group(3), peer.group(1), int(peer.group(2)), int(weight.group(1)) if weight else 1))
        elif deny := _DENIED.match(line):
            denied.add(deny.group(1))
    return [DeployedPeer(n, a, p, w, n in denied) for n, a, p, w in found]


def _as_topology(peers: Sequence[DeployedPeer], planned: Topology) -> Topology:
    """The farm the box runs now, as a topology (enough for ``impact``)."""
    instances = tuple(
        BackendInstance(
            host="deployed",
            name=p.name,
            peer_name=p.name,
            address=p.address,
            port=p.port,
            weight=p.weight,
            cache_size_mb=1,
            cache_mem_mb=1,
            cache_type="aufs",
            state="drained" if p.drained else "active",
        )
        for p in peers
    )
    host = BackendHost(name="deployed", address="", instances=instances)
    return planned.model_copy(update={"backends": (host,)})


def remap_problems(box: str, deployed: Sequence[DeployedPeer], planned: Topology) -> list[Problem]:
    """Why deploying ``planned`` on ``box`` would move URLs between peers that stay, if it would."""
    if not deployed:
        return []  # nothing deployed yet: the first run places every URL
    new = [i.peer_name for i in planned.backend_instances]
    new_set = set(new)
    removed_active = [p.name for p in deployed if p.name not in new_set and not p.drained]
    kept = [p.name for p in deployed if p.name in new_set]
    reordered = new[: len(kept)] != kept
    if not removed_active and not reordered:
        return []
    result = impact(_as_topology(deployed, planned), planned)
    reasons = []
    if removed_active:
        reasons.append(f"removes {', '.join(removed_active)} while still active (not drained)")
    if reordered:
        moved_first = next(n for n, (a, b) in enumerate(zip(new, kept, strict=False)) if a != b)
        reasons.append(
            f"changes the order of the peers it keeps (from position {moved_first + 1}: "
            f"{new[moved_first]} where {kept[moved_first]} was)"
        )
    return [
        Problem(
            box,
            "squid_backends",
            f"the new cache_peer list {' and '.join(reasons)}: {result.moved_fraction:.1%} of URLs would move "
            f"to another backend ({result.collateral_fraction:.1%} between backends that stay), "
            "losing their cached copies",
            "keep the backends in the order they were deployed and append new ones at the end; drain a backend "
            "(squid_backend_state: drained) before removing it; or, to accept the remap for this run, "
            "add -e carpfarm_accept_remap=true",
        )
    ]
