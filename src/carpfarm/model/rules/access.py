"""The rules on who may use the proxies: client networks, the balancer's address families, and the
operators' own squid.conf lines (no allow that opens the proxy, no forwarding on a frontend)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any

from pydantic import BaseModel

from carpfarm.model import addrspace, squidaccess, squidconf
from carpfarm.model.addresses import _networks, _open_limit, admitted_space, cidrs
from carpfarm.problems import HIDDEN, Problem
from carpfarm.variables.fields import declared

# Balancers whose listener and rules are IPv4 only: iptables (no ip6tables rules) and
# HAProxy (binds 0.0.0.0). nftables (an inet table) takes both families.
IPV4_ONLY_BALANCERS = {
    "iptables": "its REDIRECT rules are iptables (IPv4) rules; there are no ip6tables rules",
    "haproxy": "HAProxy is bound to the IPv4 wildcard address only",
}
OPEN_PROXY_FIX = "list only your client networks, or set carpfarm_allow_open_proxy: true if you really mean it"
# A line break in a one-line value would start a configuration line of its own (squid.conf and the rest).
LINE_BREAKS = ("\n", "\r")
# The communities every SNMP scanner tries first.
WELL_KNOWN_COMMUNITIES = frozenset({"public", "private"})


# ---------------------------------------------------------------- client networks


def client_networks(host: str, networks: Any, allow_open: bool, balancer: str) -> Iterator[Problem]:
    """Each client network is a CIDR of a family the balancer serves; together not the Internet."""
    variable = "carpfarm_client_networks"
    yield from cidrs(host, variable, networks)
    yield from admitted_space(host, variable, networks, allow_open, OPEN_PROXY_FIX)
    for n, network in _networks(networks):
        if network.version == 6 and balancer in IPV4_ONLY_BALANCERS:
            yield Problem(
                host,
                f"{variable}[{n}]",
                f"is an IPv6 network, but the {balancer} balancer serves IPv4 clients only: "
                + IPV4_ONLY_BALANCERS[balancer],
                "use frontend_balancer_type: nftables for IPv6 clients, or list IPv4 networks only",
                networks[n],
            )


def extra_allowed_networks(host: str, networks: Sequence[str], allow_open: bool) -> Iterator[Problem]:
    """squid_backend_extra_allowed_networks: CIDRs, together not the Internet."""
    variable = "squid_backend_extra_allowed_networks"
    fix = "list only the networks that must reach the backends directly, or set carpfarm_allow_open_proxy: true"
    yield from cidrs(host, variable, list(networks))
    yield from admitted_space(host, variable, list(networks), allow_open, fix)


def balancer_type(host: str, balancer: str) -> Iterator[Problem]:
    """balance is refused: Squid would see every client as the box itself."""
    if balancer == "balance":
        yield Problem(
            host,
            "frontend_balancer_type",
            "is refused: balance hides every client's address from Squid (it has no PROXY protocol), so Squid's "
            "client ACLs, the cache manager's localhost-only rule and both layers' logs would see 127.0.0.1 "
            "for everyone",
            "use haproxy (L4, PROXY v2 keeps the client) or iptables/nftables",
            balancer,
        )


# ---------------------------------------------------------------- operator text


def one_line(host: str, model: type[BaseModel], data: Mapping[str, Any]) -> Iterator[Problem]:
    """Every declared string but free-form squid.conf text, and every string inside a declared list
    or mapping, is one line: a line break would start a configuration line of its own."""
    for field in model.model_fields.values():
        declaration = declared(field)
        if declaration.multiline or declaration.name not in data:
            continue
        for variable, text in _broken_strings(declaration.name, data[declaration.name]):
            yield Problem(
                host,
                variable,
                "holds a line break: what follows it would become a configuration line of its own "
                "(e.g. http_access allow all)",
                f"write it on one line: {declaration.fix}",
                HIDDEN if declaration.secret else text,
            )


def _broken_strings(path: str, value: Any) -> Iterator[tuple[str, str]]:
    """(variable, text) of every string in ``value`` with a line break, named as errors.py names them."""
    if isinstance(value, str):
        if any(c in value for c in LINE_BREAKS):
            yield path, value
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            yield from _broken_strings(f"{path}[{n}]", item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _broken_strings(f"{path}.{key}", item)


EXTRA_OPEN_FIX = (
    "name your clients on the line (an ACL of theirs, e.g. an src ACL of your networks), make it a deny, "
    "or set carpfarm_allow_open_proxy: true if you really mean it"
)
EXTRA_OWN_FIX = (
    "give your ACL a name of its own; change carpfarm's through carpfarm_client_networks, "
    "carpfarm_safe_ports, carpfarm_ssl_ports or carpfarm_denied_destinations"
)
EXTRA_UNCHECKED_FIX = (
    "write the lines themselves here, without include, macros in ACL names or quoted values, "
    "or set carpfarm_allow_open_proxy: true if you really mean it"
)
EXTRA_LONG_FIX = (
    "split the line: end it in a backslash to go on in the next, or repeat the acl line (its values add up)"
)
EXTRA_OPEN_END_FIX = "remove the backslash at the end of the last line"
EXTRA_FORWARDING_FIX = (
    "remove the line: carpfarm writes the frontends' forwarding (carp_frontend_parent_selection, and the "
    "backends' weights and states)"
)


def extra_access(
    host: str,
    texts: Sequence[tuple[str, str | Sequence[str]]],
    allow_open: bool,
    admitted: Sequence[tuple[str, Any]] = (),
    frontend: bool = False,
) -> Iterator[Problem]:
    """The operator's squid.conf lines (``texts``: variable and value, free-form text or a list of
    lines) open no proxy: no allow that names no client, nothing this check cannot read (include,
    macros), and, together with the host's own admitted networks (``admitted``: variable and
    CIDRs), no more than addrspace.THRESHOLD of the public space, unless carpfarm_allow_open_proxy;
    and never an acl line that adds to one of Squid's or carpfarm's own ACLs, nor a line Squid
    would read otherwise than written; on a CARP box (``frontend``), no line that decides where a
    request goes (squidaccess.FORWARDING)."""
    sources = [squidconf.trimmed_lines(value) if isinstance(value, str) else list(value) for _, value in texts]
    found = [(f, EXTRA_OWN_FIX, "") for f in squidconf.redefinitions(sources)]
    found += [(f, EXTRA_LONG_FIX, "") for f in squidconf.long_lines(sources)]
    found += [(f, EXTRA_OPEN_END_FIX, "") for f in squidconf.open_ends(sources)]
    if frontend:
        found += [(f, EXTRA_FORWARDING_FIX, "") for f in squidaccess.forwarding(sources)]
    if not allow_open:
        found += [(f, EXTRA_OPEN_FIX, ", an open proxy") for f in squidaccess.open_allows(sources)]
        found += [(f, EXTRA_UNCHECKED_FIX, "") for f in squidconf.unchecked(sources)]
    for finding, fix, open_ in found:
        variable, value = texts[finding.source]
        where, line = (
            (variable, f"line {finding.index + 1} ") if isinstance(value, str) else (f"{variable}[{finding.index}]", "")
        )
        yield Problem(host, where, f"{line}{finding.does}{open_}: {finding.why}", fix, finding.text)
    if not allow_open:
        yield from _admitted_together(host, texts, sources, admitted)


def _admitted_together(
    host: str,
    texts: Sequence[tuple[str, Any]],
    sources: Sequence[Sequence[str]],
    admitted: Sequence[tuple[str, Any]],
) -> Iterator[Problem]:
    """The addresses every allow line lets in, with the host's own networks, cover at most
    addrspace.THRESHOLD of the public space: told once, when together they cover more than the
    largest of them alone (which is told for itself)."""
    allows = squidaccess.admitted(sources)
    own = addrspace.spans(network for _, items in admitted for _, network in _networks(items))
    pieces = [own, *(space for _, space in allows)]
    together = addrspace.over(addrspace.share(addrspace.union(*pieces)))
    largest: dict[int, Fraction] = {}
    for piece in pieces:
        for version, share in addrspace.share(piece).items():
            largest[version] = max(share, largest.get(version, Fraction(0)))
    if not any(share > largest[version] for version, share in together.items()):
        return
    variables = [texts[n][0] for n in sorted({line.source for line, _ in allows})]
    own_variables = " and ".join(variable for variable, _ in admitted)
    yield Problem(
        host,
        variables[0],
        f"the allow lines of {' and '.join(variables)}{f', with {own_variables},' if admitted else ''} admit "
        f"together {addrspace.describe(together)}: {_open_limit()}",
        f"admit fewer networks across these allow lines{f' and {own_variables}' if admitted else ''}, or set "
        "carpfarm_allow_open_proxy: true if you really mean it",
        [line.text for line, _ in allows],
    )


def snmp_community(host: str, port_base: int, community: str) -> Iterator[Problem]:
    """With SNMP on, the instances answer a community of the operator's, never a well-known one."""
    if not port_base:
        return
    if not community:
        message = "is required with squid_backend_snmp_port_base set (SNMP on)"
    elif community.lower() in WELL_KNOWN_COMMUNITIES:
        message = "is a well-known default community, the first one any scanner tries"
    else:
        return
    yield Problem(
        host,
        "squid_backend_snmp_community",
        message,
        "set squid_backend_snmp_community from your vault (a word of your own), or squid_backend_snmp_port_base: 0",
        HIDDEN,
    )
