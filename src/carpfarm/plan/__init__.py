"""What the model turns into, for the hosts and for the operator: the views each role's templates
print (``views``: port maps, cache_peer lines, balancer rules, the WCCP router's stanza; ``vrrp``:
keepalived's; ``watch``: carpfarm-watch's configuration; ``destinations``: where no request may
go), each peer's CARP share and the plan (``shares``; each CARP box's part of it: ``frontends``),
and what a change does (``change``: impact; ``remap``: no silent remap)."""

from __future__ import annotations

from carpfarm.plan.change import Impact, impact
from carpfarm.plan.shares import carp_shares, plan, plan_advice
from carpfarm.plan.views import (
    PeerOptions,
    backend_port_map,
    balancer_rules,
    balancer_targets,
    cache_peer_line,
    cache_peers,
    frontend_port_map,
    sample_urls,
    wccp_router_stanza,
)

__all__ = [
    "Impact",
    "PeerOptions",
    "backend_port_map",
    "balancer_rules",
    "balancer_targets",
    "cache_peer_line",
    "cache_peers",
    "carp_shares",
    "frontend_port_map",
    "impact",
    "plan",
    "plan_advice",
    "sample_urls",
    "wccp_router_stanza",
]
