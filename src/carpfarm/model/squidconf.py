"""squid.conf as Squid reads it: just enough to follow an operator's lines and the ACLs they define.

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
read otherwise than written (``long_lines``, ``open_ends``). An ``acl`` line that adds to an ACL
Squid or carpfarm's template defines is told too (``redefinitions``). Which allows admit every
client, and which lines change where a frontend forwards, is ``squidaccess``'s to judge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

# The access lists read, and what an allow in each that admits every client does.
ACCESS_LISTS = {
    "http_access": "lets every client use the proxy",
    "follow_x_forwarded_for": "trusts every client's X-Forwarded-For, so any client can claim an allowed address",
}
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
MACRO = "${"  # Squid replaces ${service_name}, ${process_name} and ${process_number} as it reads a line
_SPACE = " \t\n\v\f\r"  # C's isspace(): what Squid strips off a line's ends
_WORD = re.compile(r"[^ \t]+")  # Squid's words part at spaces and tabs (w_space)
_SHOWN = 80  # characters of an over-long line shown


def acl_key(name: str) -> str:
    """An ACL name as Squid compares it: ASCII letters in either case are the same."""
    return "".join(c.lower() if c.isascii() else c for c in name)


_KNOWN = {acl_key(name): name for name in KNOWN_ACLS}


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
    """A line carpfarm refuses (it opens the proxy, or cannot be read as written): where it starts,
    its text, what it does and why."""

    source: int
    index: int
    text: str
    does: str
    why: str


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


def directives(sources: Sequence[Sequence[str]]) -> list[Line]:
    """The logical lines of every source in ``sources`` (each a list of lines), each saying its source."""
    return [line for n, source in enumerate(sources) for line in logical_lines(n, source)]


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
            key, kind = acl_key(line.words[1]), line.words[2]
            values = tuple(v for v in line.words[3:] if v[:1] != "-")
            types, before = (found[key].types, found[key].lines) if key in found else ((), ())
            found[key] = Acl(types if kind in types else (*types, kind), (*before, values))
    return found


def definition(name: str, defined: Mapping[str, Acl]) -> Acl | None:
    """ACL ``name`` as the lines define it (``defined``, from ``acls``), else as Squid or carpfarm's
    template defines it (its type alone), else None: defined nowhere ``squid -k parse`` would accept."""
    key = acl_key(name)
    if key in defined:
        return defined[key]
    return Acl((KNOWN_ACLS[_KNOWN[key]],), ()) if key in _KNOWN else None


def redefinitions(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every ``acl`` line that adds to an ACL Squid or carpfarm's template defines: Squid appends its
    values, so ``acl carpfarm_clients src 0.0.0.0/0`` (or ``CARPFARM_CLIENTS``) would open the
    template's own allow."""
    for line in directives(sources):
        if len(line.words) >= 2 and line.words[0] == "acl" and acl_key(line.words[1]) in _KNOWN:
            name, written = _KNOWN[acl_key(line.words[1])], line.words[1]
            case = "" if written == name else f" (written '{written}': Squid's ACL names ignore case)"
            does = f"adds to ACL '{name}'{case}, which {'Squid' if name in PREDEFINED else 'carpfarm'} defines"
            why = "its values join the ones every rule that names it already relies on"
            yield Finding(line.source, line.index, line.text, does, why)


def unchecked(sources: Sequence[Sequence[str]]) -> Iterator[Finding]:
    """Every line whose effect this reading cannot follow: an ``include`` (in any case), a change
    of how Squid reads quoted words, an ACL named through a macro."""
    for line in directives(sources):
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
