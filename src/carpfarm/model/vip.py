"""Several CARP boxes behind one floating client address, kept by keepalived's VRRP.

CARP boxes that set the same ``carpfarm_vip`` form one VRRP group: keepalived on each
box advertises to the others by unicast (no multicast needed), and the live box with the
highest priority holds the address. Every box carries the same ``cache_peer`` list in the
same order (the model builds it once for the farm), so a URL goes to the same backend
whichever box takes the client: moving the address moves no cached object.

``VipSettings.from_vars`` reads one box's variables (the problems it finds are returned,
not raised); ``group_problems`` checks what only the farm as a whole can show: boxes that
share an address agree on it, no two groups clash on a VRRP id, the address is no host's,
and one box alone is a mistake unless the inventory says it is meant.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from carpfarm.problems import HIDDEN, Problem
from carpfarm.variables import FrontendVars

VIP = "carpfarm_vip"
VRRP_ID = "carpfarm_vrrp_id"
PASSWORD = "carpfarm_vrrp_password"
ADVERT = "carpfarm_vrrp_advert_interval"
SINGLE_BOX = "carpfarm_vip_single_box"
INTERCEPT = "carpfarm_wccp"
PASSWORD_MAX = 8  # VRRPv2 simple-text authentication: keepalived uses at most 8 characters


class VipSettings(BaseModel):
    """A CARP box's share in a floating address (``address`` is an IPv4 literal)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str
    prefix: int
    vrrp_id: int
    priority: int
    preempt: bool
    advert_interval: int
    interface: str = ""  # empty: the interface that holds the box's own address
    single_box: bool = False
    # The shared secret never shows in plans or JSON; the model compares it between boxes.
    password: str = Field(default="", exclude=True, repr=False)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.address}/{self.prefix}", strict=False)

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefix}"

    @classmethod
    def from_vars(cls, host: str, box: FrontendVars) -> tuple[VipSettings | None, list[Problem]]:
        """(the settings, []) of CARP box ``host`` when it sets carpfarm_vip, else (None, problems)."""
        parsed = parse_vip(host, box.vip)
        problems = [*parsed[1], *_password_problems(host, box.vrrp_password), *_wccp_problems(host, box.wccp)]
        if parsed[0] is None or problems:
            return None, problems
        address, prefix = parsed[0]
        return cls(
            address=address,
            prefix=prefix,
            vrrp_id=box.vrrp_id,
            priority=box.vrrp_priority,
            preempt=box.vrrp_preempt,
            advert_interval=box.vrrp_advert_interval,
            interface=box.vrrp_interface,
            single_box=box.vip_single_box,
            password=box.vrrp_password,
        ), []


def parse_vip(host: str, written: str) -> tuple[tuple[str, int] | None, list[Problem]]:
    """``carpfarm_vip`` as (address, prefix length): an IPv4 host address with its subnet's prefix."""
    fix = f"write the floating address with the boxes' prefix length, e.g. {VIP}: 192.0.2.9/24"
    try:
        interface = ipaddress.ip_interface(written)
    except ValueError:
        return None, [Problem(host, VIP, "is not an address with a prefix length", fix, written)]
    if "/" not in written:
        message = "has no prefix length: keepalived must know the subnet it joins"
        return None, [Problem(host, VIP, message, fix, written)]
    if not isinstance(interface, ipaddress.IPv4Interface):
        message = "is IPv6: carpfarm's VRRP group (VRRPv2, simple-text authentication) carries IPv4 only"
        return None, [Problem(host, VIP, message, "use an IPv4 address for the floating address", written)]
    network = interface.network
    if network.prefixlen == 32:
        message = "has prefix length 32: give the subnet's (keepalived adds the address to that subnet)"
        return None, [Problem(host, VIP, message, fix, written)]
    if network.prefixlen < 31 and interface.ip in (network.network_address, network.broadcast_address):
        message = f"is the {'network' if interface.ip == network.network_address else 'broadcast'} address of {network}"
        return None, [Problem(host, VIP, message, "pick a free host address inside the subnet", written)]
    return (str(interface.ip), network.prefixlen), []


def _password_problems(host: str, password: str) -> Iterator[Problem]:
    if not password:
        yield Problem(
            host,
            PASSWORD,
            f"is required with {VIP}: the boxes authenticate each other's VRRP adverts",
            f"set {PASSWORD} to 1-{PASSWORD_MAX} characters (letters, digits, ._~%+=:@^,/-), the same on every box "
            "(keep it in Ansible Vault)",
            password,
        )


def _wccp_problems(host: str, wccp: bool) -> Iterator[Problem]:
    if wccp:
        yield Problem(
            host,
            INTERCEPT,
            f"cannot go with {VIP}: WCCP routers redirect to each box's own address and move traffic off a "
            "failed box themselves, so a floating address adds nothing and its failover is untested",
            f"use either {VIP} (clients configured with a proxy) or {INTERCEPT} (routers redirect), not both",
            wccp,
        )


# ---------------------------------------------------------------- the farm


def group_problems(
    boxes: Mapping[str, tuple[str, int, VipSettings]], host_addresses: Mapping[str, str], complete: bool = True
) -> Iterator[Problem]:
    """Rules that span boxes. ``boxes``: CARP box -> (its address, its listen port, its settings);
    ``host_addresses``: every inventory host's address (to find the floating address taken);
    ``complete``: every CARP box was read (else a box alone may only seem alone)."""
    groups: dict[str, list[str]] = {}
    for box, (_, _, settings) in boxes.items():
        groups.setdefault(settings.address, []).append(box)
    for members in groups.values():
        yield from _taken(boxes[members[0]][2], members[0], host_addresses)
        yield from _members_agree([(box, *boxes[box]) for box in members], complete)
    yield from _vrrp_id_clashes({vip: boxes[members[0]][2] for vip, members in groups.items()}, groups)


def _taken(settings: VipSettings, box: str, host_addresses: Mapping[str, str]) -> Iterator[Problem]:
    for host, address in host_addresses.items():
        if address == settings.address:
            yield Problem(
                box,
                VIP,
                f"is the address of host {host}: a floating address must be one no machine has of its own",
                "pick a free address in the boxes' subnet",
                settings.cidr,
            )


def _members_agree(members: Sequence[tuple[str, str, int, VipSettings]], complete: bool) -> Iterator[Problem]:
    """Boxes sharing a floating address: each in its subnet, all with one VRRP id, prefix, port and
    password; more than one, unless one is meant."""
    first_box, _, first_port, first = members[0]
    if len(members) == 1 and complete and not first.single_box:
        yield Problem(
            first_box,
            VIP,
            "is set on this CARP box alone: with no second box to take it over, it protects from nothing",
            f"give the same {VIP} to a second CARP box, or set {SINGLE_BOX}: true if one box is meant "
            "(to add the second later)",
            first.cidr,
        )
    seen: dict[str, str] = {}
    for box, address, port, settings in members:
        yield from _in_subnet(box, address, settings)
        yield from _agree(box, first_box, port, first_port, settings, first)
        if address in seen:
            yield Problem(
                box,
                "carp_frontend_address",
                f"is also {seen[address]}'s, which shares {VIP} {settings.address}: each box adverts from its own "
                "address to the others'",
                "give each CARP box its own address (carp_frontend_address or ansible_host)",
                address,
            )
        seen.setdefault(address, box)


def _in_subnet(box: str, address: str, settings: VipSettings) -> Iterator[Problem]:
    if ipaddress.ip_address(address).version != 4:
        yield Problem(
            box,
            "carp_frontend_address",
            f"is IPv6, and the box shares {VIP} {settings.cidr}: VRRPv2 adverts go between the boxes' IPv4 addresses",
            "set carp_frontend_address (or ansible_host) to the box's IPv4 address in the floating address's subnet",
            address,
        )
    elif ipaddress.ip_address(address) not in settings.network:
        yield Problem(
            box,
            VIP,
            f"is outside the box's subnet: {address} is not in {settings.network}, so VRRP cannot move the "
            "address to this box",
            "pick a floating address in the subnet of the boxes' own addresses (or correct the prefix length)",
            settings.cidr,
        )


def _agree(
    box: str, first_box: str, port: int, first_port: int, settings: VipSettings, first: VipSettings
) -> Iterator[Problem]:
    hidden = HIDDEN
    pairs: list[tuple[str, bool, Any, Any, str]] = [
        (VRRP_ID, settings.vrrp_id != first.vrrp_id, settings.vrrp_id, first.vrrp_id, "one VRRP group has one id"),
        (VIP, settings.prefix != first.prefix, settings.cidr, first.cidr, "one subnet has one prefix length"),
        ("carp_frontend_listen_port", port != first_port, port, first_port, "clients keep their port when it moves"),
        (
            ADVERT,
            settings.advert_interval != first.advert_interval,
            settings.advert_interval,
            first.advert_interval,
            "VRRPv2 drops adverts of another interval, and both boxes would take the address",
        ),
        (PASSWORD, settings.password != first.password, hidden, hidden, "each box must accept the others' adverts"),
    ]
    for variable, differs, mine, theirs, why in pairs:
        if differs:
            yield Problem(
                box,
                variable,
                f"differs from {first_box}'s ({theirs}), which shares {VIP} {settings.address}: {why}",
                f"set {variable} once for the boxes sharing the address (group_vars)",
                mine,
            )


def _vrrp_id_clashes(settings: Mapping[str, VipSettings], groups: Mapping[str, Sequence[str]]) -> Iterator[Problem]:
    """Two floating addresses on one subnet need two VRRP ids: the same id would make one group."""
    seen: dict[tuple[int, ipaddress.IPv4Network], str] = {}
    for vip, group in settings.items():
        key = (group.vrrp_id, group.network)
        if key in seen:
            yield Problem(
                groups[vip][0],
                VRRP_ID,
                f"is also the VRRP id of {VIP} {seen[key]} on {group.network}: both groups would fight over "
                "one virtual router",
                "give each floating address on a subnet its own carpfarm_vrrp_id (1-255)",
                group.vrrp_id,
            )
        seen.setdefault(key, vip)
