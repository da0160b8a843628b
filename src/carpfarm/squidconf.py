"""Just enough of squid.conf to tell whether an operator's lines let every client through.

The grammar read here (Squid's keywords are case-sensitive)::

    acl NAME TYPE [-flag ...] VALUE ...          several lines with one NAME add up
    http_access allow|deny [!]ACL ...            every ACL must match; none matches everything
    follow_x_forwarded_for allow|deny [!]ACL ... whose X-Forwarded-For names the client

A line may end in ``# comment`` and go on after a trailing backslash. Everything else is left to
``squid -k parse``.

An allow restricts who may use the proxy only if one of its ACLs names the client: an ``src``
ACL over at most ``addrspace.THRESHOLD`` of the public space, or an ACL of a type that identifies
the client (its domain, MAC, login, certificate, an external helper's verdict). ``all``, a negated
ACL (it matches everyone it does not name), an ``src`` ACL over more, and an ACL about the request
alone (method, port, URL, destination) admit every client on the Internet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from carpfarm import addrspace

ACCESS_LISTS = {
    "http_access": "lets every client use the proxy",
    "follow_x_forwarded_for": "trusts every client's X-Forwarded-For, so any client can claim an allowed address",
}
# ACL types that say who the client is (the rest say what is asked: method, port, URL, destination...).
CLIENT_TYPES = frozenset(
    {
        "src",
        "srcdomain",
        "srcdom_regex",
        "src_as",
        "arp",
        "eui64",
        "proxy_auth",
        "proxy_auth_regex",
        "ident",
        "ident_regex",
        "ext_user",
        "ext_user_regex",
        "external",
        "user_cert",
        "ca_cert",
        "client_connection_mark",
        "clientside_mark",
    }
)
# ACLs Squid predefines, and those carpfarm's squid.conf templates define before the operator's lines.
PREDEFINED: dict[str, str] = {
    "all": "src",
    "localhost": "src",
    "manager": "url_regex",
    "to_localhost": "dst",
    "to_linklocal": "dst",
    "CONNECT": "method",
}
KNOWN_ACLS: dict[str, str] = {
    **PREDEFINED,
    "carpfarm_clients": "src",
    "carp_frontends": "src",
    "carpfarm_boxes": "src",
    "carpfarm_safe_ports": "port",
    "carpfarm_ssl_ports": "port",
    "carpfarm_to_linklocal": "dst",
    "carpfarm_to_farm": "dst",
    "carpfarm_denied_destinations": "dst",
}
# Predefined src ACLs the measure below cannot see into: the box's own loopback.
LOCAL_ACLS = frozenset({"localhost"})


@dataclass(frozen=True)
class Line:
    """One logical squid.conf line: where it starts (source, line index) and its words."""

    source: int
    index: int
    text: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Acl:
    type: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    """A line that opens the proxy: where it starts, its text, what it does and why."""

    source: int
    index: int
    text: str
    does: str
    why: str


def logical_lines(source: int, lines: Sequence[str]) -> Iterator[Line]:
    """The directives of ``lines``: comments dropped, backslash continuations joined."""
    pending: list[str] = []
    start = 0
    for index, raw in enumerate([*lines, ""]):  # the blank line after the last ends a continuation left open
        start = index if not pending else start
        stripped = raw.strip()
        if stripped.endswith("\\") and index < len(lines):
            pending.append(stripped[:-1])
            continue
        text = " ".join([*pending, stripped]).strip()
        pending = []
        words = _uncommented(text.split())
        if words:
            yield Line(source, start, text, words)


def _uncommented(words: Sequence[str]) -> tuple[str, ...]:
    for n, word in enumerate(words):
        if word.startswith("#"):
            return tuple(words[:n])
    return tuple(words)


def acls(lines: Sequence[Line]) -> dict[str, Acl]:
    """Every ``acl NAME TYPE VALUES`` definition, the values of one NAME added up."""
    found: dict[str, Acl] = {}
    for line in lines:
        if len(line.words) >= 3 and line.words[0] == "acl":
            name, kind, values = line.words[1], line.words[2], line.words[3:]
            before = found.get(name)
            found[name] = Acl(kind, (before.values if before else ()) + tuple(v for v in values if v[:1] != "-"))
    return found


def src_networks(values: Sequence[str]) -> list[addrspace.Network]:
    """The networks an ``src`` ACL's values name: CIDRs, netmasks, ``lo-hi`` ranges, ``all``.
    Host names and quoted files cannot be measured here and count for nothing."""
    found: list[addrspace.Network] = []
    for value in values:
        if value == "all":
            found += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            continue
        first, dash, last = value.partition("-")
        try:
            if dash:
                low, high = ipaddress.ip_address(first), ipaddress.ip_address(last.split("/")[0])
                found += ipaddress.summarize_address_range(low, high)
            else:
                found.append(ipaddress.ip_network(value, strict=False))
        except (ValueError, TypeError):
            continue
    return found


def _why_open(name: str, defined: Mapping[str, Acl], seen: frozenset[str] = frozenset()) -> str | None:
    """Why ACL ``name`` (perhaps negated) admits every client, or None when it names the client."""
    if name.startswith("!"):
        return f"'{name}' matches every client that '{name[1:]}' does not name"
    if name in seen:
        return None
    acl = defined.get(name) or (Acl(KNOWN_ACLS[name], ()) if name in KNOWN_ACLS else None)
    if acl is None:  # defined nowhere squid -k parse would accept it, or by a template carpfarm does not know
        return None
    if name == "all":
        return "'all' matches every client"
    if acl.type in ("any-of", "all-of"):
        reasons = [_why_open(part, defined, seen | {name}) for part in acl.values]
        opened = [r for r in reasons if r]
        if (acl.type == "any-of" and opened) or (acl.type == "all-of" and reasons and len(opened) == len(reasons)):
            return f"'{name}' is {acl.type} {' '.join(acl.values)}, and {opened[0]}"
        return None
    if acl.type not in CLIENT_TYPES:
        return f"'{name}' is a {acl.type} ACL: it says what is asked, not who asks"
    if acl.type == "src" and name not in LOCAL_ACLS:
        shares = addrspace.over_threshold(src_networks(acl.values))
        if shares:
            return f"'{name}' is src over {addrspace.describe(shares)}"
    return None


def open_allows(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every allow in ``sources`` (each a list of lines; an ACL defined in one counts in all) whose
    ACLs all admit every client: ``all``, negated ACLs, ``src`` ACLs over the threshold, ACLs
    about the request alone, or none at all."""
    lines = [line for n, source in enumerate(sources) for line in logical_lines(n, source)]
    defined = acls(lines)
    for line in lines:
        words = line.words
        if len(words) < 2 or words[0] not in ACCESS_LISTS or words[1] != "allow":
            continue
        reasons = [_why_open(name, defined) for name in words[2:]] or ["it names no ACL, so it matches every request"]
        if all(reasons):
            yield Finding(line.source, line.index, line.text, ACCESS_LISTS[words[0]], "; ".join(filter(None, reasons)))


def redefinitions(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every ``acl`` line that adds to an ACL Squid or carpfarm's template defines: Squid appends its
    values, so ``acl carpfarm_clients src 0.0.0.0/0`` would open the template's own allow."""
    for n, source in enumerate(sources):
        for line in logical_lines(n, source):
            if len(line.words) >= 2 and line.words[0] == "acl" and line.words[1] in KNOWN_ACLS:
                name = line.words[1]
                does = f"adds to ACL '{name}', which {'Squid' if name in PREDEFINED else 'carpfarm'} defines"
                why = "its values join the ones every rule that names it already relies on"
                yield Finding(line.source, line.index, line.text, does, why)
