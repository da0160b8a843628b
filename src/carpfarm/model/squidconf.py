"""Just enough of squid.conf to tell whether an operator's lines let every client through.

The lines are read as Squid reads them (``cache_cf.cc``, ``ConfigParser.cc``, ``acl/``):

* A line ends at a line feed; Squid reads nothing of it past a carriage return. White space at its
  start goes, and a line then empty or starting with ``#`` is skipped, even inside a continuation.
* A line ending in a backslash goes on in the next one, joined with no space: ``allow al\\`` and
  ``l`` are ``allow all``.
* Words part at spaces and tabs; a word starting with ``#`` starts a comment.
* Directives and ACL types are case-sensitive; ACL names are not: ``ALL`` is ``all``.

The grammar read here::

    acl NAME TYPE [-flag ...] VALUE ...          several lines with one NAME add up
    http_access allow|deny [!]ACL ...            every ACL must match; none matches everything
    follow_x_forwarded_for allow|deny [!]ACL ... whose X-Forwarded-For names the client

Everything else is left to ``squid -k parse``, but for what this reading cannot follow: an
``include``, an ACL named through a macro, quoted values (``unchecked``), and lines Squid would
read otherwise than written (``long_lines``, ``open_ends``).

An allow restricts who may use the proxy only if one of its ACLs names the client: an ``src``
ACL over at most ``addrspace.THRESHOLD`` of the public space, or an ACL of a type that identifies
the client (its domain, MAC, login, certificate, an external helper's verdict). ``all``, a negated
ACL (it matches everyone it does not name), an ``src`` ACL over more or with a value that cannot be
measured, a client ACL whose value matches everyone (``srcdomain .``), an ident ACL (the client's
own host answers it), and an ACL about the request alone (method, port, URL, destination) admit
every client on the Internet.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from carpfarm.model import addrspace

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
# Client ACL types the client answers for itself: its own ident server (RFC 1413) says who it is.
CLAIMED_TYPES = frozenset({"ident", "ident_regex"})
# Old type names Squid still takes, as the type it reads them as (acl/Acl.cc).
TYPE_ALIASES = {"clientside_mark": "client_connection_mark", "myip": "localip", "myport": "localport"}
# ACLs Squid predefines.
PREDEFINED: dict[str, str] = {
    "all": "src",
    "localhost": "src",
    "manager": "url_regex",
    "to_localhost": "dst",
    "to_linklocal": "dst",
    "CONNECT": "method",
}
# ACLs carpfarm's squid.conf templates define (frontend.conf.j2, backend.conf.j2); a test keeps them in step.
TEMPLATE_ACLS: dict[str, str] = {
    "carpfarm_clients": "src",
    "carp_frontends": "src",
    "carpfarm_boxes": "src",
    "carpfarm_safe_ports": "port",
    "carpfarm_ssl_ports": "port",
    "carpfarm_to_linklocal": "dst",
    "carpfarm_to_farm": "dst",
    "carpfarm_denied_destinations": "dst",
    "carpfarm_snmp_community": "snmp_community",
    "carpfarm_gateway_error": "http_status",
}
KNOWN_ACLS: dict[str, str] = {**PREDEFINED, **TEMPLATE_ACLS}
# What Squid reads of a line at once (fgets into glibc's BUFSIZ of 8192): a longer line goes on as another.
LONGEST_LINE = 8191
# src values that stand for every address of a family (acl/Ip.cc), and what each means.
SRC_WORDS = {
    "all": "Squid's word for every address",
    "ipv4": "Squid's word for every IPv4 address",
    "ipv6": "Squid's word for every IPv6 address",
    "0/0": "Squid reads it as 'all', every address",
}
MACRO = "${"  # Squid replaces ${service_name}, ${process_name} and ${process_number} as it reads a line
_SPACE = " \t\n\v\f\r"  # C's isspace(): what Squid strips off a line's ends
_WORD = re.compile(r"[^ \t]+")  # Squid's words part at spaces and tabs (w_space)
_SHOWN = 80  # characters of an over-long line shown


def _key(name: str) -> str:
    """An ACL name as Squid compares it: ASCII letters in either case are the same."""
    return "".join(c.lower() if c.isascii() else c for c in name)


_KNOWN = {_key(name): name for name in KNOWN_ACLS}


@dataclass(frozen=True)
class Line:
    """One logical squid.conf line: where it starts (source, line index) and its words; ``open``
    when it ends in a backslash at the end of the text, so that Squid would join what follows."""

    source: int
    index: int
    text: str
    words: tuple[str, ...]
    open: bool = False


@dataclass(frozen=True)
class Acl:
    """An ACL as its lines define it: each type it is given (as written) and each line's values."""

    types: tuple[str, ...]
    lines: tuple[tuple[str, ...], ...]

    @property
    def type(self) -> str:
        return self.types[0]

    @property
    def kinds(self) -> frozenset[str]:
        """The types as Squid reads them: more than one is refused, unless an if-branch hides one."""
        return frozenset(TYPE_ALIASES.get(t, t) for t in self.types)

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(value for line in self.lines for value in line)


@dataclass(frozen=True)
class Finding:
    """A line that opens the proxy: where it starts, its text, what it does and why."""

    source: int
    index: int
    text: str
    does: str
    why: str


# What an ACL admits: why it admits every client (None: it names the client) and the addresses it
# lets in without asking who the client is (none for a login, everything for a method).
Verdict = tuple[str | None, addrspace.Spans]
NAMES_THE_CLIENT: Verdict = (None, {})


def logical_lines(source: int, lines: Sequence[str]) -> Iterator[Line]:
    """The directives of ``lines`` as Squid reads them: comments and blank lines dropped, a line cut
    at a carriage return, continuations joined with no space (past comment and blank lines)."""
    start, pending = 0, None
    for index, line in enumerate(lines):
        for piece in line.split("\n"):
            text = piece.partition("\r")[0].lstrip(_SPACE)
            if not text or text.startswith("#"):
                continue
            start, joined = (index, text) if pending is None else (start, pending + text)
            if joined.endswith("\\"):
                pending = joined[:-1]
                continue
            pending = None
            if words := _words(joined):
                yield Line(source, start, joined.rstrip(_SPACE), words)
    if pending is not None and (words := _words(pending)):
        yield Line(source, start, pending.rstrip(_SPACE), words, open=True)


def _words(text: str) -> tuple[str, ...]:
    words = _WORD.findall(text)
    for n, word in enumerate(words):
        if word.startswith("#"):
            return tuple(words[:n])
    return tuple(words)


def trimmed_lines(text: str) -> list[str]:
    """``text`` as a template prints it through Jinja's ``trim`` (Python's white space off both
    ends), split where Squid splits, at line feeds; every line keeps its number."""
    start, end = len(text) - len(text.lstrip()), len(text.rstrip())
    breaks = "\n" * text[:start].count("\n"), "\n" * text[end:].count("\n")
    return (breaks[0] + text[start:end] + breaks[1]).split("\n")


def acls(lines: Sequence[Line]) -> dict[str, Acl]:
    """Every ``acl NAME TYPE VALUES`` definition by name (as Squid compares names), the lines of
    one NAME added up."""
    found: dict[str, Acl] = {}
    for line in lines:
        if len(line.words) >= 3 and line.words[0] == "acl":
            key, kind = _key(line.words[1]), line.words[2]
            values = tuple(v for v in line.words[3:] if v[:1] != "-")
            types, before = (found[key].types, found[key].lines) if key in found else ((), ())
            found[key] = Acl(types if kind in types else (*types, kind), (*before, values))
    return found


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
    key = _key(name)
    acl = defined.get(key) or (Acl((KNOWN_ACLS[_KNOWN[key]],), ()) if key in _KNOWN else None)
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


def _lines(sources: Sequence[Sequence[str]]) -> list[Line]:
    return [line for n, source in enumerate(sources) for line in logical_lines(n, source)]


def _allows(sources: Sequence[Sequence[str]]) -> Iterator[tuple[Line, list[Verdict]]]:
    """Every allow in ``sources`` (an ACL defined in one counts in all), with its ACLs' verdicts."""
    lines = _lines(sources)
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


def redefinitions(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every ``acl`` line that adds to an ACL Squid or carpfarm's template defines: Squid appends its
    values, so ``acl carpfarm_clients src 0.0.0.0/0`` (or ``CARPFARM_CLIENTS``) would open the
    template's own allow."""
    for line in _lines(sources):
        if len(line.words) >= 2 and line.words[0] == "acl" and _key(line.words[1]) in _KNOWN:
            name, written = _KNOWN[_key(line.words[1])], line.words[1]
            case = "" if written == name else f" (written '{written}': Squid's ACL names ignore case)"
            does = f"adds to ACL '{name}'{case}, which {'Squid' if name in PREDEFINED else 'carpfarm'} defines"
            why = "its values join the ones every rule that names it already relies on"
            yield Finding(line.source, line.index, line.text, does, why)


def unchecked(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every line whose effect this reading cannot follow: an ``include`` (in any case), a change
    of how Squid reads quoted words, an ACL named through a macro."""
    for line in _lines(sources):
        first, text = line.words[0], line.text
        if text[:7].lower() == "include" and text[7:8] and text[7:8] in _SPACE:
            does, why = "includes other files", "their lines could not be checked, and any of them could open the proxy"
        elif first.lower() == "configuration_includes_quoted_values":
            does, why = (
                "changes how Squid reads quoted words",
                "the lines after it could not be checked as Squid reads them",
            )
        elif any(MACRO in name for name in _acl_names(line.words)):
            does = "names an ACL through a macro"
            why = f"Squid replaces {MACRO}...}} as it reads the line, so which ACL it names could not be checked"
        else:
            continue
        yield Finding(line.source, line.index, line.text, does, why)


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


def forwarding(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every line that would change where a CARP frontend sends a request (``FORWARDING``)."""
    for line in _lines(sources):
        if line.words[0].lower() in FORWARDING:
            does = f"sets {line.words[0]}"
            why = (
                "a CARP frontend sends every request to the CARP parent carpfarm route predicts, whose backend "
                "refuses the proxies' own hosts; this would let it fetch by itself or change its parents"
            )
            yield Finding(line.source, line.index, line.text, does, why)


def _acl_names(words: Sequence[str]) -> Sequence[str]:
    if words[0] == "acl":
        return words[1:2]
    return words[2:] if words[0] in ACCESS_LISTS else ()


def long_lines(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every line longer than Squid reads at once: the rest would be read as a line of its own."""
    for n, source in enumerate(sources):
        for index, line in enumerate(source):
            longest = max(len(piece.encode()) for piece in line.split("\n"))
            if longest > LONGEST_LINE:
                does = f"is {longest} bytes long"
                why = f"Squid reads {LONGEST_LINE} bytes of a line at once, and the rest as a line of its own"
                yield Finding(n, index, line[:_SHOWN] + "...", does, why)


def open_ends(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every text that ends in a backslash: Squid would join the line of carpfarm's template that
    follows (such as its final ``http_access deny all``) to the operator's last line."""
    for n, source in enumerate(sources):
        for line in logical_lines(n, source):
            if line.open:
                why = "Squid would join carpfarm's next line to it (such as its final http_access deny all)"
                yield Finding(n, line.index, line.text + "\\", "ends in a backslash", why)
