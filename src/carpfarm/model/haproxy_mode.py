"""HAProxy as the CARP frontend (``carp_frontend_mode: haproxy``): one HAProxy in HTTP mode on the
box's listen port picks the backend instance per request, with no frontend Squid and no balancer.

``carp_frontend_haproxy_selection`` says how it picks: ``carp``, Squid's CARP choice in a Lua fetch
(``roles/frontend_balancer/files/carpfarm-carp.lua``), or ``consistent``, HAProxy's own
consistent URI hash (``carpfarm.carp.consistent``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from carpfarm.model.hosts import BackendHost, FrontendHost
from carpfarm.problems import Problem
from carpfarm.variables import FrontendVars

# The box's own names for what the balancer role builds: HAProxy, whose configuration holds the
# frontend (carp_frontend_mode: haproxy) instead of the TCP balancer's.
BALANCER = "haproxy"

# The most CARP peers (backend instances of weight above 0) for carp_frontend_haproxy_selection: carp.
# The Lua fetch costs O(peers) per request; bench/carp_lua.py measured it at 21, 40 and 149 µs of CPU
# a request for 4, 16 and 64 peers on Debian 12's HAProxy 2.6 (Lua 5.3; 3.0 with Lua 5.4 is faster:
# 16, 32, 106 µs), on top of HAProxy's own 65-80 µs for the request, while a Squid frontend costs
# 141-163 µs (make bench, 1 KiB). Taking the dearer ends (80 µs, 2.6's slope of (149 - 40) / 48 =
# 2.27 µs a peer above 16) against the cheaper Squid (141 µs), HAProxy stops being cheaper at
# 16 + (141 - 80 - 40) / 2.27 = 25 peers: above that a Squid frontend does the same work for less.
MAX_CARP_PEERS = 25

GROUP = "carp_frontends"


def problems(host: str, parsed: FrontendVars) -> Iterator[Problem]:
    """What haproxy mode cannot do on one box, each with the reason and the fix."""
    if parsed.wccp:
        yield Problem(
            host,
            "carpfarm_wccp",
            "is not supported with carp_frontend_mode: haproxy: carpfarm's WCCP has one Squid instance speak "
            "WCCPv2 to the routers and spreads the redirected connections over the Squid instances' intercept "
            "ports with the kernel balancer's rules; HAProxy speaks no WCCP and takes no intercepted traffic here",
            "set carp_frontend_mode: instances on a WCCP box, or carpfarm_wccp: false",
            parsed.wccp,
        )
    if parsed.watch:
        yield Problem(
            host,
            "frontend_balancer_watch",
            "has nothing to watch with carp_frontend_mode: haproxy: there is no kernel balancer and no frontend "
            "Squid; HAProxy checks the backends' health itself",
            "set frontend_balancer_watch: false on this box, or carp_frontend_mode: instances",
            parsed.watch,
        )
    squid_only = [
        ("carp_frontend_extra_http_access", parsed.extra_http_access, []),
        ("carp_frontend_extra_config", parsed.extra_config.strip(), ""),
    ]
    for variable, value, empty in squid_only:
        if value != empty:
            yield Problem(
                host,
                variable,
                "holds squid.conf lines, and carp_frontend_mode: haproxy runs no frontend Squid to apply them: "
                "the rules would be dropped without a word",
                f"move the rules to squid_backend_extra_http_access / squid_backend_extra_config (the backends "
                f"serve only the CARP boxes), or set carp_frontend_mode: instances; then set {variable} empty",
                value,
            )
    if parsed.parent_selection != "carp":
        yield Problem(
            host,
            "carp_frontend_parent_selection",
            "applies to the Squid frontends only; carp_frontend_mode: haproxy picks by carp_frontend_haproxy_selection",
            "remove carp_frontend_parent_selection, or set carp_frontend_mode: instances",
            parsed.parent_selection,
        )
    if parsed.haproxy_selection == "consistent" and parsed.carp_key:
        yield Problem(
            host,
            "carp_frontend_carp_key",
            "is Squid's CARP key; carp_frontend_haproxy_selection: consistent hashes the whole request target",
            "set carp_frontend_carp_key: [], or carp_frontend_haproxy_selection: carp",
            parsed.carp_key,
        )


def farm_problems(backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]) -> Iterator[Problem]:
    """What haproxy mode asks of the whole farm: one choice of backend on every box, and no more CARP
    peers than the Lua fetch is cheaper for."""
    consistent = [f.name for f in frontends if f.mode == BALANCER and f.haproxy_selection == "consistent"]
    others = [f.name for f in frontends if f.name not in consistent]
    if consistent and others:
        yield Problem(
            GROUP,
            "carp_frontend_haproxy_selection",
            f"is consistent on {', '.join(consistent)} while {', '.join(others)} pick by Squid's CARP: "
            "the same URL would be cached on two backends",
            "set carp_frontend_mode: haproxy and carp_frontend_haproxy_selection: consistent on every CARP box "
            "(group_vars/carp_frontends), or on none",
            "consistent",
        )
    lua = [f.name for f in frontends if f.mode == BALANCER and f.haproxy_selection == "carp"]
    peers = sum(1 for b in backends for i in b.instances if i.weight > 0)
    if lua and peers > MAX_CARP_PEERS:
        yield Problem(
            GROUP,
            "carp_frontend_haproxy_selection",
            f"is carp on {', '.join(lua)} with {peers} CARP peers: above {MAX_CARP_PEERS} peers HAProxy's Lua "
            "CARP costs more CPU a request than a Squid frontend (docs/carp.md, measured)",
            f"set carp_frontend_haproxy_selection: consistent (a one-time remap: see carpfarm impact), or "
            f"carp_frontend_mode: instances, or keep at most {MAX_CARP_PEERS} backend instances",
            "carp",
        )
