"""Where no request through the farm may go: the proxies' own hosts.

Squid predefines ``to_localhost`` (127.0.0.0/8, 0.0.0.0/32, ::1/128, ::/128) but, before Squid 6,
no link-local ACL. Both layers' squid.conf deny, before any allow: ``to_localhost``, ``LINK_LOCAL``,
the farm's own addresses (``farm_addresses``) and ``carpfarm_denied_destinations``. The backends, which
fetch, deny every method; the CARP frontends, which only forward, deny CONNECT (so that a refused
tunnel is answered by the frontend itself, not relayed from a backend).
"""

from __future__ import annotations

import ipaddress

from carpfarm.model import Topology

# Link-local: the cloud metadata service (169.254.169.254) and every on-link IPv6 neighbour.
LINK_LOCAL = ("169.254.0.0/16", "fe80::/10")


def farm_addresses(topology: Topology) -> list[str]:
    """Every address a farm host answers on, as the model knows them: each CARP box, each floating
    address and each backend host; unique, IPv4 before IPv6, each family in address order."""
    found = {box.address for box in topology.frontends}
    found |= {box.vip.address for box in topology.frontends if box.vip}
    found |= {host.address for host in topology.backends}
    return [str(a) for a in sorted((ipaddress.ip_address(a) for a in found), key=lambda a: (a.version, int(a)))]


def own_destinations(topology: Topology) -> dict[str, list[str]]:
    """What the templates deny: ``link_local`` networks and the ``farm`` addresses."""
    return {"link_local": list(LINK_LOCAL), "farm": farm_addresses(topology)}
