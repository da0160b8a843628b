"""Each CARP peer's share of the URLs, the plan ``carpfarm plan`` prints, and its advice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from carpfarm.model import Topology
from carpfarm.plan.change import sampled_routes
from carpfarm.plan.frontends import frontend_plan
from carpfarm.plan.views import backend_port_map, cache_peers, sample_urls

# Sampling CARP in pure Python costs about 5 us per (URL, peer) pair; keep plan fast.
SAMPLE_BUDGET = 150_000


# ---------------------------------------------------------------- CARP shares


def carp_shares(
    topology: Topology, urls: Sequence[str] | None = None, progress: Callable[[int, int], None] | None = None
) -> dict[str, dict[str, float | None]]:
    """Each peer's share of URLs: the configured share and, when affordable, a sampled one.

    ``progress`` is called with (done, total) every few hundred URLs sampled."""
    active = [i for i in topology.backend_instances if i.active]
    total = sum(i.weight for i in active)
    if urls is None:
        count = min(10_000, SAMPLE_BUDGET // max(1, len(topology.backend_instances)))
        urls = sample_urls(count) if count >= 200 else []
    counts: Counter[str] = Counter(
        name for name in sampled_routes(topology, urls, topology.drained_peers, progress) if name is not None
    )
    return {
        i.peer_name: {
            "expected": (i.weight / total) if i.active else 0.0,
            "sampled": (counts[i.peer_name] / len(urls)) if urls else None,
        }
        for i in topology.backend_instances
    }


# ---------------------------------------------------------------- plan


def plan(
    topology: Topology,
    sample: Sequence[str] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Everything carpfarm would build, as plain data (what ``carpfarm plan --json`` prints); no
    secret: WCCP passwords show as ``<set>``.

    ``progress`` is called with (done, total) while the CARP shares are sampled."""
    shares = carp_shares(topology, sample, progress)
    frontends = [frontend_plan(topology, f) for f in topology.frontends]
    by_host: dict[str, list[dict[str, Any]]] = {}
    for entry in backend_port_map(topology):  # once: per host, it would walk every instance again
        by_host.setdefault(entry["host"], []).append({**entry, "share": shares[entry["peer_name"]]})
    backends = [{"host": b.name, "address": b.address, "instances": by_host.get(b.name, [])} for b in topology.backends]
    return {
        "frontends": frontends,
        "backends": backends,
        "cache_peers": cache_peers(topology),
        "advice": plan_advice(topology),
    }


def plan_advice(topology: Topology) -> list[str]:
    """What to change in a farm that works but will cost more than it needs to later."""
    tips = []
    weights = Counter(i.weight for i in topology.backend_instances)
    if len(weights) > 1:
        mix = ", ".join(f"{count} x weight {w}" for w, count in sorted(weights.items()))
        low = min(weights)
        tips.append(
            f"backend instances mix CARP weights ({mix}). Give a bigger host more instances of weight {low} "
            "instead of a higher weight: Squid walks peers sorted by weight, so a host appended later lands in "
            "the middle of the walk, not at its end, and every load multiplier depends on the total weight; "
            "growing a mixed-weight farm therefore moves URLs between backends that did not change (check with "
            "'carpfarm impact'), while appending equal-weight instances moves only the new instances' share"
        )
    return tips
