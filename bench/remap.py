"""Section 4: remap on change: delete, drain or append one of 5 peers on a real Squid, beside carpfarm impact."""

from __future__ import annotations

from typing import Any

from carpfarm.model import Topology, build_topology
from carpfarm.plan import impact
from lab import log


def _farm(names: list[str], drained: str | None = None) -> Topology:
    hostvars: dict[str, Any] = {"carp1": {"ansible_host": "192.0.2.10", "carpfarm_client_networks": ["127.0.0.0/8"]}}
    for n, name in enumerate(names):
        hostvars[name] = {"ansible_host": f"192.0.2.{21 + n}", "squid_backend_instances": 1}
        if name == drained:
            hostvars[name]["squid_backend_state"] = "drained"
    return build_topology({"carp_frontends": ["carp1"], "squid_backends": names}, hostvars)


def section(count: int) -> list[dict[str, Any]]:
    from carpfarm.lab.squidrig import PeerSpec, running_squid

    hosts = [f"cache{i}" for i in range(1, 6)]
    middle = hosts[2]
    urls = [f"http://origin.example/obj/remap-{i}" for i in range(count)]

    def answers(peers: list[PeerSpec]) -> dict[str, str | None]:
        with running_squid(peers) as squid:
            return {url: squid.parent_for(url) for url in urls}

    before_peers = [PeerSpec(f"{h}-backend1") for h in hosts]
    before = answers(before_peers)
    gone = f"{middle}-backend1"
    changes = {
        f"delete {middle}": ([p for p in before_peers if p.name != gone], _farm([h for h in hosts if h != middle])),
        f"drain {middle}": ([PeerSpec(p.name, denied=p.name == gone) for p in before_peers], _farm(hosts, middle)),
        "append cache6": ([*before_peers, PeerSpec("cache6-backend1")], _farm([*hosts, "cache6"])),
    }
    old = _farm(hosts)
    rows = []
    for change, (peers, new) in changes.items():
        after = answers(peers)
        moved = {u for u in urls if after[u] != before[u]}
        predicted = impact(old, new, urls)
        predicted_urls = {u for u in urls if _owner(new, u) != _owner(old, u)}
        rows.append(
            {
                "change": change, "urls": count, "squid_moved": len(moved) / count,
                "impact_moved": predicted.moved_fraction, "same_urls": "yes" if moved == predicted_urls else
                f"no ({len(moved ^ predicted_urls)} differ)",
            }
        )  # fmt: skip
        log(
            f"  {change:16} Squid moved {100 * len(moved) / count:.2f} %, impact {100 * predicted.moved_fraction:.2f} %"
        )
    return rows


def _owner(topology: Topology, url: str) -> str | None:
    chosen = topology.route(url)
    return None if chosen is None else chosen.peer_name
