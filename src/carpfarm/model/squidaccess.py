"""Whether an operator's squid.conf lines let every client through, or change where a frontend forwards.

The lines are read as ``squidconf`` reads them, as Squid does. An allow restricts who may use the
proxy only if one of its ACLs names the client: an ``src`` ACL over at most ``addrspace.THRESHOLD``
of the public space, or an ACL of a type that identifies the client (its domain, MAC, login,
certificate, an external helper's verdict). ``all``, a negated ACL (it matches everyone it does not
name), an ``src`` ACL over more or with a value that cannot be measured, a client ACL whose value
matches everyone (``srcdomain .``), an ident ACL (the client's own host answers it), and an ACL
about the request alone (method, port, URL, destination) admit every client on the Internet.

A CARP frontend's own lines must not decide where a request goes either (``FORWARDING``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence

from carpfarm.model import addrspace
from carpfarm.model.squidconf import (
    ACCESS_LISTS,
    TYPE_ALIASES,
    Acl,
    Finding,
    Line,
    acl_key,
    acls,
    definition,
    directives,
)

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
# Client ACL types the client answers for itself: its own ident server (RFC 1413) says who it is.
CLAIMED_TYPES = frozenset({"ident", "ident_regex"})
# src values that stand for every address of a family (acl/Ip.cc), and what each means.
SRC_WORDS = {
    "all": "Squid's word for every address",
    "ipv4": "Squid's word for every IPv4 address",
    "ipv6": "Squid's word for every IPv6 address",
    "0/0": "Squid reads it as 'all', every address",
}
# Directives that decide where a request goes. A CARP frontend sends every request to the CARP parent
# carpfarm route predicts (never_direct allow all), and the backends deny the proxies' own hosts: any of
# these in a frontend's own lines would let it fetch by itself, past those denials, or change its parents.
FORWARDING = frozenset(
    {
        "always_direct",
        "never_direct",
        "prefer_direct",
        "nonhierarchical_direct",
        "cache_peer",
        "cache_peer_access",
        "cache_peer_domain",
        "neighbor_type_domain",
    }
)

# What an ACL admits: why it admits every client (None: it names the client) and the addresses it
# lets in without asking who the client is (none for a login, everything for a method).
Verdict = tuple[str | None, addrspace.Spans]
NAMES_THE_CLIENT: Verdict = (None, {})


def src_networks(values: Sequence[str]) -> tuple[list[addrspace.Network], list[str]]:
    """The networks an ``src`` ACL's values name (address, address/prefix, IPv4 address/netmask,
    first-last), and the values that cannot be measured: Squid's words for every address, host
    names, files, the forms Squid reads otherwise than Python (10/8, 2147483648/1, 010.0.0.0, a
    netmask that is no prefix), a range with a mask (Squid masks the client's address first)."""
    found: list[addrspace.Network] = []
    unmeasured: list[str] = []
    for value in values:
        networks = _src_value(value)
        if networks is None:
            unmeasured.append(value)
        else:
            found += networks
    return found, unmeasured


def _src_value(value: str) -> list[addrspace.Network] | None:
    first, dash, last = value.partition("-")
    if value in SRC_WORDS or "%" in value or (dash and "/" in last):
        return None
    try:
        if dash:
            return list(ipaddress.summarize_address_range(ipaddress.ip_address(first), ipaddress.ip_address(last)))
        network = ipaddress.ip_network(value, strict=False)
        mask = value.partition("/")[2]
        if "." in mask and ipaddress.ip_address(mask) != network.netmask:  # Python read it as a host mask
            return None
        return [network]
    except (ValueError, TypeError):
        return None


def _unmeasured(name: str, values: Sequence[str]) -> str:
    shown = ", ".join(f"'{v}'" + (f": {SRC_WORDS[v]}" if v in SRC_WORDS else "") for v in values)
    some = "a value" if len(values) == 1 else "values"
    return f"'{name}' is src with {some} that could not be measured ({shown}), so it counts as every client"


def _wildcard(acl: Acl) -> tuple[str, str] | None:
    """(value, how) of the first value of a client ACL that matches every client, or None."""
    kind = TYPE_ALIASES.get(acl.type, acl.type)
    for value in acl.values:
        how = None
        if kind == "srcdomain" and value == ".":
            how = "every domain"
        elif kind == "srcdomain" and value.lower() == "none":
            how = "what Squid matches for a client without a reverse DNS name"
        elif kind == "srcdom_regex":
            how = _matches_no_name(value)
        elif kind == "client_connection_mark":
            how = _matches_every_mark(value)
        if how:
            return value, how
    return None


def _matches_no_name(pattern: str) -> str | None:
    """How a domain regex matches every client (the empty name, or 'none' for one without a
    reverse DNS name), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = re.compile(pattern, re.IGNORECASE)
    except re.error:
        return "it could not be read as a regular expression, so it counts as one that matches every name"
    if compiled.search("") or compiled.search("none"):
        return "it matches the empty name or 'none', what Squid matches for a client without a reverse DNS name"
    return None


def _matches_every_mark(value: str) -> str | None:
    """How a ``mark[/mask]`` matches every connection, or None."""
    mark, slash, mask = value.partition("/")
    try:
        wanted, bits = int(mark, 0), int(mask, 0) if slash else 0xFFFFFFFF
    except ValueError:
        return "it could not be read, so it counts as matching every connection"
    if bits == 0:
        return "a mask of 0 matches every connection"
    if wanted == 0:
        return "it matches every connection nothing marked"
    return None


def _verdict(name: str, defined: Mapping[str, Acl], seen: frozenset[str] = frozenset()) -> Verdict:
    """Why ACL ``name`` (perhaps negated) admits every client, and the addresses it lets in."""
    if name.startswith("!"):
        return f"'{name}' matches every client that '{name[1:]}' does not name", addrspace.EVERYTHING
    key = acl_key(name)
    acl = definition(name, defined)
    if acl is None or key in seen:  # defined nowhere squid -k parse would accept it
        return NAMES_THE_CLIENT
    if key == "all":
        return f"'{name}' matches every client", addrspace.EVERYTHING
    if len(acl.kinds) > 1:
        return (
            f"'{name}' is defined with more than one type ({', '.join(acl.types)}): Squid refuses that unless "
            "an if-branch hides one, so which one counts could not be told",
            addrspace.EVERYTHING,
        )
    kind = TYPE_ALIASES.get(acl.type, acl.type)
    if kind in ("any-of", "all-of"):
        return _combined(name, acl, defined, seen | {key})
    if kind not in CLIENT_TYPES:
        return f"'{name}' is a {acl.type} ACL: it says what is asked, not who asks", addrspace.EVERYTHING
    if kind in CLAIMED_TYPES:
        return (
            f"'{name}' is {acl.type}: the client's own ident server answers it, so any client can claim any user",
            addrspace.EVERYTHING,
        )
    if (wildcard := _wildcard(acl)) is not None:
        value, how = wildcard
        return f"'{name}' is {acl.type} '{value}', which matches every client ({how})", addrspace.EVERYTHING
    if kind == "src" and key in defined:  # Squid's localhost and carpfarm's own are the host's networks
        return _src(name, acl)
    return NAMES_THE_CLIENT


def _src(name: str, acl: Acl) -> Verdict:
    networks, unmeasured = src_networks(acl.values)
    if unmeasured:
        return _unmeasured(name, unmeasured), addrspace.EVERYTHING
    space = addrspace.spans(networks)
    shares = addrspace.over(addrspace.share(space))
    return (f"'{name}' is src over {addrspace.describe(shares)}" if shares else None), space


def _combined(name: str, acl: Acl, defined: Mapping[str, Acl], seen: frozenset[str]) -> Verdict:
    """any-of: any part matches. all-of: every part of one of its lines (Squid ORs the lines)."""
    verdicts = [[_verdict(part, defined, seen) for part in line] for line in acl.lines]
    if acl.type == "any-of":
        flat = [v for line in verdicts for v in line]
        opened = [why for why, _ in flat if why]
        why = f"'{name}' is any-of {' '.join(acl.values)}, and {opened[0]}" if opened else None
        return why, addrspace.union(*(space for _, space in flat))
    why = None
    for values, line in zip(acl.lines, verdicts, strict=True):
        if line and all(w for w, _ in line) and why is None:
            why = f"'{name}' is all-of {' '.join(values)}, and {line[0][0]}"
    spaces = [functools.reduce(addrspace.intersection, (space for _, space in line)) for line in verdicts if line]
    return why, addrspace.union(*spaces)


def _allows(sources: Sequence[Sequence[str]]) -> Iterator[tuple[Line, list[Verdict]]]:
    """Every allow in ``sources`` (an ACL defined in one counts in all), with its ACLs' verdicts."""
    lines = directives(sources)
    defined = acls(lines)
    for line in lines:
        words = line.words
        if len(words) >= 2 and words[0] in ACCESS_LISTS and words[1] == "allow":
            yield line, [_verdict(name, defined) for name in words[2:]]


def open_allows(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every allow in ``sources`` (each a list of lines) whose ACLs all admit every client: ``all``,
    negated ACLs, ``src`` ACLs over the threshold or not measured, wildcards, ACLs about the
    request alone, or none at all."""
    for line, verdicts in _allows(sources):
        reasons = [why for why, _ in verdicts] or ["it names no ACL, so it matches every request"]
        if all(reasons):
            does = ACCESS_LISTS[line.words[0]]
            yield Finding(line.source, line.index, line.text, does, "; ".join(filter(None, reasons)))


def admitted(sources: Sequence[Sequence[str]]) -> list[tuple[Line, addrspace.Spans]]:
    """Each allow in ``sources`` with the addresses it lets in without asking who the client is:
    what all its ACLs let in (an ``src`` ACL its networks, a login none, a method everything)."""
    return [
        (line, functools.reduce(addrspace.intersection, (space for _, space in verdicts), addrspace.EVERYTHING))
        for line, verdicts in _allows(sources)
    ]


def forwarding(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every line that would change where a CARP frontend sends a request (``FORWARDING``)."""
    for line in directives(sources):
        if line.words[0].lower() in FORWARDING:
            does = f"sets {line.words[0]}"
            why = (
                "a CARP frontend sends every request to the CARP parent carpfarm route predicts, whose backend "
                "refuses the proxies' own hosts; this would let it fetch by itself or change its parents"
            )
            yield Finding(line.source, line.index, line.text, does, why)
