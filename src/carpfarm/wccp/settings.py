"""WCCPv2 in front of a CARP box: the settings, Squid's ``wccp2_*`` stanza and the router's.

The settings are read from a CARP box's variables (``carpfarm_wccp*``) by
``WccpSettings.from_vars``, which returns the bad ones as problems for the model to
report with the rest of the inventory's. The stanzas are
plain text for the admin and for ``squid.conf``; they do no arithmetic of their own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from typing import Any, TypedDict, cast

from pydantic import BaseModel, ConfigDict, Field

from carpfarm.box import kernelrules
from carpfarm.problems import Problem
from carpfarm.variables import FrontendVars
from carpfarm.variables.wccp import (
    HTTPS_PORT,
    WCCP_GROUP,
    WEB_CACHE,
    Assignment,
    Method,
    WccpService,
    _default_services,
)

# Balancers that keep the kernel's NAT record, which Squid's intercept ports read: the kernel balancers.
INTERCEPT_BALANCERS: tuple[str, ...] = kernelrules.KINDS
TUNNEL_PREFIX = "carpfarm-wccp"  # GRE tunnel to router n: carpfarm-wccp<n> (at most 15 characters)
MASKED = "<set>"  # what carpfarm plan shows of a password


class WccpSettings(BaseModel):
    """A CARP box's WCCPv2 settings, validated (``routers`` are IP addresses)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    routers: tuple[str, ...]
    forwarding_method: Method = "gre"
    return_method: Method = "gre"
    assignment_method: Assignment = "hash"
    services: tuple[WccpService, ...] = Field(default_factory=lambda: tuple(_default_services()))
    weight: int = 10000
    intercept_ports: tuple[int, ...] = ()  # one per frontend instance
    router_interface: str = "GigabitEthernet0/0"
    squid_fixed: bool = False  # the box's Squid has the upstream WCCPv2 parser corrections

    @classmethod
    def from_vars(
        cls, host: str, box: FrontendVars, group_routers: Sequence[str], count: int
    ) -> tuple[WccpSettings | None, list[Problem]]:
        """(the settings, []) of CARP box ``host`` with ``count`` frontend instances, or (None, problems).

        ``group_routers`` are the addresses of the hosts in the ``wccp_routers`` group, which
        serve every box besides the ones its ``carpfarm_wccp_routers`` lists. Every router must
        be an IP address, and there must be one."""
        routers = [*box.wccp_routers, *group_routers]
        problems = [
            *_router_problems(host, routers, len(box.wccp_routers)),
            *_balancer_problems(host, box.balancer_type),
            *_service_problems(host, box.wccp_services),
        ]
        if not routers:
            return None, [*problems, _no_router(host)]
        if problems:
            return None, problems
        return cls(
            routers=tuple(routers),
            forwarding_method=box.wccp_forwarding_method,
            return_method=box.wccp_return_method or box.wccp_forwarding_method,
            assignment_method=box.wccp_assignment_method,
            services=_with_password(box.wccp_services, box.wccp_password),
            weight=box.wccp_weight,
            intercept_ports=tuple(box.wccp_intercept_port_base + n for n in range(count)),
            router_interface=box.wccp_router_interface,
            squid_fixed=box.wccp_squid_fixed,
        ), []

    @property
    def dports(self) -> tuple[int, ...]:
        """Every destination port some service redirects, once each, in order."""
        return tuple(sorted({port for service in self.services for port in service.dports}))

    @property
    def tunnels(self) -> tuple[str, ...]:
        """The GRE tunnel interface to each router (``gre`` forwarding only)."""
        if self.forwarding_method != "gre":
            return ()
        return tuple(f"{TUNNEL_PREFIX}{n}" for n in range(len(self.routers)))


def _router_problems(host: str, routers: Sequence[str], listed: int) -> Iterator[Problem]:
    """Each router an IP address; the first ``listed`` come from carpfarm_wccp_routers, the rest
    from the wccp_routers group."""
    for n, router in enumerate(routers):
        try:
            ipaddress.ip_address(router)
        except ValueError:
            from_var = n < listed
            yield Problem(
                host,
                f"carpfarm_wccp_routers[{n}]" if from_var else f"{WCCP_GROUP} host {router!r}",
                "is not an IP address: WCCPv2 talks to a router's address",
                "write the router's IP address"
                + ("" if from_var else " (set wccp_router_address or ansible_host on that host)"),
                router,
            )


def _balancer_problems(host: str, balancer_type: str) -> Iterator[Problem]:
    """Intercepted connections need a kernel balancer in front of Squid."""
    if balancer_type not in INTERCEPT_BALANCERS:
        yield Problem(
            host,
            "frontend_balancer_type",
            "carpfarm_wccp needs a kernel balancer: Squid reads an intercepted connection's original "
            "destination from the kernel's NAT, which a userspace balancer in between hides",
            f"set frontend_balancer_type to {' or '.join(INTERCEPT_BALANCERS)}, or carpfarm_wccp: false",
            balancer_type,
        )


def _service_problems(host: str, services: Sequence[WccpService]) -> Iterator[Problem]:
    """Every service redirects plain HTTP only: TCP, and not port 443."""
    for n, service in enumerate(services):
        if service.protocol != "tcp" or HTTPS_PORT in service.dports:
            yield Problem(
                host,
                f"carpfarm_wccp_services[{n}]",
                "redirects traffic that is not plain HTTP (UDP, or TCP port 443) to Squid's intercept port, "
                "which would break it: carpfarm intercepts HTTP only (no ssl-bump)",
                "list only TCP ports that carry plain HTTP, e.g. ports: [80, 8080]",
                service.model_dump(mode="json", exclude_none=True, exclude={"password"}),
            )


def _no_router(host: str) -> Problem:
    return Problem(
        host,
        "carpfarm_wccp_routers",
        "carpfarm_wccp is on but no router is listed",
        f"list the routers' addresses in carpfarm_wccp_routers, or add them to the '{WCCP_GROUP}' group",
        [],
    )


def _with_password(services: Sequence[WccpService], password: str) -> tuple[WccpService, ...]:
    """The services, each without a password of its own given the box's ``password`` (if any)."""
    return tuple(s if s.password or not password else s.model_copy(update={"password": password}) for s in services)


def squid_stanza(settings: WccpSettings, address: str | None = None, *, masked: bool = False) -> list[str]:
    """The ``wccp2_*`` lines for the one frontend instance that speaks WCCP on a box.

    ``address`` pins ``wccp2_address``: the source of HERE_I_AM and so the cache's identity.
    The ``wccp2_service`` lines carry each service's password (``password=...``) for squid.conf;
    ``masked`` shows ``password=<set>`` instead, for output a person reads (carpfarm plan).
    """
    lines = [f"wccp2_address {address}"] if address else []
    lines += [f"wccp2_router {router}" for router in settings.routers]
    lines += [
        f"wccp2_forwarding_method {settings.forwarding_method}",
        f"wccp2_return_method {settings.return_method}",
        f"wccp2_assignment_method {settings.assignment_method}",
    ]
    for service in settings.services:
        password = f" password={MASKED if masked else service.password}" if service.password else ""
        if service.standard is not None:
            lines.append(f"wccp2_service standard {WEB_CACHE}{password}")
        else:
            lines.append(f"wccp2_service dynamic {service.id}{password}")
            lines.append(
                f"wccp2_service_info {service.id} protocol={service.protocol} flags={','.join(service.flags)} "
                f"priority={service.priority} ports={','.join(str(p) for p in service.ports)}"
            )
    lines.append(f"wccp2_weight {settings.weight}")
    return lines


class SettingsView(TypedDict):
    """``WccpSettings`` as plain data, every password masked: what carpfarm plan and the roles see."""

    routers: list[str]
    forwarding_method: str
    return_method: str
    assignment_method: str
    services: list[dict[str, Any]]  # WccpService's fields; password "<set>" or None
    weight: int
    intercept_ports: list[int]
    router_interface: str
    squid_fixed: bool


class Rendered(TypedDict):
    """What a CARP box's WCCP prints: Squid's stanza (passwords masked), the routers', the services'
    destination ports and the GRE tunnels' names."""

    squid: list[str]
    router: str
    dports: list[int]
    tunnels: list[str]


def shown_settings(settings: WccpSettings) -> SettingsView:
    """The settings as plain data with every password masked (``<set>``), for carpfarm plan."""
    data = settings.model_dump(mode="json")
    for service in data["services"]:
        service["password"] = MASKED if service["password"] else None
    return cast(SettingsView, data)


def _password_placeholder(service: WccpService) -> str:
    return "<web-cache-password>" if service.standard is not None else f"<service-{service.id}-password>"


def _wildcard(network: ipaddress.IPv4Network) -> str:
    return f"{network.network_address} {network.hostmask}"


def _service_name(service: WccpService) -> str:
    return "web-cache" if service.standard is not None else str(service.id)


def router_stanza(
    box: str, box_address: str, client_networks: Sequence[str], settings: WccpSettings,
    group: Sequence[tuple[str, str]] = (),
) -> str:  # fmt: skip
    """Cisco IOS configuration for the router(s): ACLs, the WCCP service(s), the interface.

    ``group`` is every CARP box (name, address) in the box's service groups, itself included
    (``service_group``; alone when empty): ``group-list`` admits exactly those boxes as caches, and
    each service's ``redirect-list`` redirects only ``client_networks`` (IPv4: WCCPv2 on IOS) to its
    ports, never a box's own traffic. The boxes of one group get the same text (named after the first).
    It carries no password: a service with one gets a placeholder the operator replaces.
    """
    members = list(group) or [(box, box_address)]
    tag = members[0][0].upper().replace("-", "_").replace(".", "_")
    group_acl = f"CARPFARM-{tag}-CACHES"
    clients = [ipaddress.ip_network(n, strict=False) for n in client_networks]
    v4 = [n for n in clients if isinstance(n, ipaddress.IPv4Network)]
    names = ", ".join(f"{name} ({address})" for name, address in members)
    out = [
        f"! carpfarm: WCCPv2 redirection to the CARP box{'es' if len(members) > 1 else ''} {names}.",
        f"! Paste into each router: {', '.join(settings.routers)}. Forwarding {settings.forwarding_method}, "
        f"return {settings.return_method}, assignment {settings.assignment_method}.",
        "!",
        f"ip access-list standard {group_acl}",
        *(f" permit host {address}" for _, address in members),
    ]
    for service in settings.services:
        ports = service.dports
        out += ["!", f"ip access-list extended CARPFARM-{tag}-REDIRECT-{service.ident}"]
        out += [f" deny   ip host {address} any" for _, address in members]
        for network in v4:
            source = "any" if network.prefixlen == 0 else _wildcard(network)
            out += [f" permit {service.protocol} {source} any eq {port}" for port in ports]
    out.append("!")
    if any(service.password for service in settings.services):
        out.append(
            "! carpfarm writes no password here: replace each <...-password> below with that service's WCCP "
            "password (carpfarm_wccp_password, or the service's own) from your vault before pasting."
        )
    for service in settings.services:
        password = f" password 0 {_password_placeholder(service)}" if service.password else ""
        out.append(
            f"ip wccp {_service_name(service)} redirect-list CARPFARM-{tag}-REDIRECT-{service.ident} "
            f"group-list {group_acl}{password}"
        )
    out += ["!", f"interface {settings.router_interface}"]
    out += [f" ip wccp {_service_name(service)} redirect in" for service in settings.services]
    out.append("!")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- boxes that share a router

# One CARP box with WCCP on, as the cross-box rules see it: name, address, client networks, settings.
WccpBox = tuple[str, str, Sequence[str], WccpSettings]


def service_group(box: str, boxes: Sequence[WccpBox]) -> list[tuple[str, str]]:
    """(name, address) of every box in ``box``'s service groups: the WCCP boxes with the same routers
    (a router's service group is its service id: every cache that registers it with that router is
    in it), in inventory order, ``box`` included."""
    routers = next(settings.routers for name, _, _, settings in boxes if name == box)
    return [(name, address) for name, address, _, settings in boxes if set(settings.routers) == set(routers)]


def service_group_problems(boxes: Sequence[WccpBox]) -> Iterator[Problem]:
    """Boxes that share a router share its service groups, and so must agree on them: the same
    routers, the methods, the client networks (one redirect-list per service on the router) and,
    service id by service id, the same definition (ports, protocol, priority, flags, password)."""
    for n, (name, _, clients, settings) in enumerate(boxes):
        for other, _, other_clients, other_settings in boxes[:n]:
            shared = set(settings.routers) & set(other_settings.routers)
            if not shared:
                continue
            where = f"shares router {sorted(shared)[0]} with {other}, so both are in its service groups"
            if set(settings.routers) != set(other_settings.routers):
                why = "a service group spans the same routers for every cache in it"
                yield _disagree(
                    name, other, where, "carpfarm_wccp_routers", settings.routers, other_settings.routers, why
                )
                break
            for variable, mine, theirs in (
                ("carpfarm_wccp_forwarding_method", settings.forwarding_method, other_settings.forwarding_method),
                ("carpfarm_wccp_return_method", settings.return_method, other_settings.return_method),
                ("carpfarm_wccp_assignment_method", settings.assignment_method, other_settings.assignment_method),
                ("carpfarm_client_networks", sorted(clients), sorted(other_clients)),
            ):
                if mine != theirs:
                    yield _disagree(name, other, where, variable, mine, theirs, "a group has one of each")
            theirs_by_id = {s.ident: s for s in other_settings.services}
            for service in settings.services:
                match = theirs_by_id.get(service.ident)
                if match is not None and service.model_dump() != match.model_dump():
                    variable = (
                        "carpfarm_wccp_password"
                        if service.model_dump(exclude={"password"}) == match.model_dump(exclude={"password"})
                        else "carpfarm_wccp_services"
                    )
                    shown = {"password": "(differs)"} if variable == "carpfarm_wccp_password" else None
                    yield _disagree(name, other, where, variable,
                                    shown or service.model_dump(mode="json", exclude_none=True, exclude={"password"}),
                                    shown or match.model_dump(mode="json", exclude_none=True, exclude={"password"}),
                                    f"service {service.ident} has one definition on a router")  # fmt: skip
            break


def _disagree(host: str, other: str, where: str, variable: str, mine: object, theirs: object, why: str) -> Problem:
    return Problem(
        host,
        variable,
        f"{where}, but {other} has {theirs!r}: {why}",
        f"set {variable} once for both (group_vars/carp_frontends), or give the boxes different routers",
        mine,
    )


# ---------------------------------------------------------------- Squid releases that cannot finish the handshake

# Squid's WCCPv2 parser, as rewritten by "WCCP: Validate packets better" (the CVE-2021-28116 fix, in
# 4.17, 5.2 and 6.0.1), has two defects that make it drop every I_SEE_YOU a router sends, so it never
# joins a service group and never sends REDIRECT_ASSIGN. Each: (first releases of each series that
# have it, the first release without it or None while none is out, what it does, the upstream fix).
HANDSHAKE_DEFECTS: tuple[tuple[tuple[tuple[int, ...], ...], tuple[int, ...] | None, str, str], ...] = (
    (
        ((4, 17), (5, 2), (6, 0, 1)),
        None,
        "CheckFieldDataLength() steps over each message component by the size of a pointer instead of the "
        "4-byte component header, so on 64-bit builds every component after the first is misread and "
        "Squid logs 'Ignoring WCCPv2 message: check failed: duplicate security definition' (Squid bug 5179)",
        "Squid pull request 2484 (WCCP: Fix offset calculation when parsing incoming packets)",
    ),
    (
        ((4, 17), (5, 2), (6, 0, 1)),
        (7, 0, 1),
        "the router view's address count check is inverted, so every router view is refused with 'check "
        "failed: huge IP address count' and no web cache is ever designated",
        "Squid commit 478eba2a33 (WCCP: fix inverted range check, pull request 1323, in 7.0.1)",
    ),
)


def squid_version(text: str) -> tuple[int, ...] | None:
    """The release in ``squid -v``'s first line or a Debian package version (``5.7-2+deb12u6``,
    ``1:7.7-1``); None when there is none."""
    import re

    found = re.search(r"(?:Version |^(?:\d+:)?)(\d+(?:\.\d+)+)", text.strip())
    return tuple(int(part) for part in found.group(1).split(".")) if found else None


def _affected(version: tuple[int, ...], firsts: tuple[tuple[int, ...], ...], fixed: tuple[int, ...] | None) -> bool:
    """Whether ``version`` is at or after the defect's first release in its own series (or a later
    series than all of them), and before the fix."""
    same_series = [first for first in firsts if first[0] == version[0]]
    later_series = version[0] > max(first[0] for first in firsts)
    before_fix = fixed is None or version < fixed
    return before_fix and (later_series or any(version >= first for first in same_series))


def handshake_defects(version: tuple[int, ...]) -> list[tuple[str, str]]:
    """(what it does, its upstream fix) for each defect a stock Squid of ``version`` has."""
    return [(what, fix) for firsts, fixed, what, fix in HANDSHAKE_DEFECTS if _affected(version, firsts, fixed)]
