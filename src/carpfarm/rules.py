"""The rules an inventory must keep, each a small pure function that yields problems.

The model (``carpfarm.model``) parses each host's variables and builds the topology; the
rules here look at what it built (or at the raw variables, where a mistake would otherwise
go unseen) and say what is wrong, naming host, variable, value and fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import socket
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from carpfarm import addrspace, cachedirs, squidconf, vip
from carpfarm.fields import ANYWHERE, INTERNAL, declared
from carpfarm.problems import HIDDEN, Problem
from carpfarm.variables import (
    BACKEND_GROUP,
    DECLARED,
    DEFAULT_CACHE_ROOT,
    FRONTEND_GROUP,
    GROUPS,
    INTERNAL_NAMES,
    RETIRED_GROUP,
    in_namespace,
)

if TYPE_CHECKING:
    from carpfarm.model import BackendHost, BackendInstance, FrontendHost

MAX_PORT = 65535
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
VARS_DIRS = ("group_vars", "host_vars")
VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f"did you mean '{close[0]}'? " if close else ""


# ---------------------------------------------------------------- groups


def layers_present(groups: Mapping[str, Sequence[str]]) -> Iterator[Problem]:
    """A farm needs backends to cache and frontends to accept clients."""
    if not groups.get(BACKEND_GROUP):
        yield Problem(
            BACKEND_GROUP,
            "groups",
            "no backend hosts: nothing would cache",
            f"add at least one host to the '{BACKEND_GROUP}' group",
        )
    if not groups.get(FRONTEND_GROUP):
        yield Problem(
            FRONTEND_GROUP,
            "groups",
            "no frontend hosts: nothing would accept clients",
            f"add at least one host to the '{FRONTEND_GROUP}' group",
        )


def retired_apart(groups: Mapping[str, Sequence[str]]) -> Iterator[Problem]:
    """A retired backend host is no longer one of the backends."""
    backends = groups.get(BACKEND_GROUP, [])
    for host in groups.get(RETIRED_GROUP, []):
        if host in backends:
            yield Problem(
                host,
                "groups",
                f"is in both '{BACKEND_GROUP}' and '{RETIRED_GROUP}'",
                f"to retire it, remove it from '{BACKEND_GROUP}' (drain it there first: squid_backend_state: drained)",
            )


# ---------------------------------------------------------------- variable names


def _memberships(groups: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    member: dict[str, set[str]] = defaultdict(set)
    for group in GROUPS:
        for host in groups.get(group, []):
            member[host].add(group)
    return member


def _set_everywhere(hostvars: Mapping[str, Mapping[str, Any]], hosts: Sequence[str]) -> set[str]:
    """Names set to one value on every host: group_vars/all or ``-e``, so farm-wide by intent."""
    if not hosts:
        return set()
    first = hostvars.get(hosts[0], {})
    return {
        name
        for name, value in first.items()
        if all(name in hostvars.get(h, {}) and hostvars[h][name] == value for h in hosts[1:])
    }


def variable_names(groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Mapping[str, Any]]) -> Iterator[Problem]:
    """Every name in carpfarm's namespaces must be declared, and set only where it is read."""
    member = _memberships(groups)
    hosts = list(member)
    everywhere = _set_everywhere(hostvars, hosts)
    reported: set[str] = set()
    for host in hosts:
        for name in sorted(hostvars.get(host, {})):
            if not in_namespace(name) or name in reported:
                continue
            shared = name in everywhere
            where = "all hosts (group_vars/all or -e)" if shared else host
            problem = _name_problem(name, member[host], shared)
            if problem is not None:
                message, fix = problem
                yield Problem(where, name, message, fix, HIDDEN if _secret(name) else hostvars[host][name])
                if shared:
                    reported.add(name)


def _secret(name: str) -> bool:
    """A secret's name, or one close enough to be a misspelling of one: its value is never shown."""
    closest = difflib.get_close_matches(name, list(DECLARED), n=1, cutoff=0.75)
    return bool(closest) and DECLARED[closest[0]].secret


def _name_problem(name: str, member: set[str], shared: bool) -> tuple[str, str] | None:
    declaration = DECLARED.get(name)
    if name in INTERNAL_NAMES or (declaration is not None and INTERNAL in declaration.scope):
        role = INTERNAL_NAMES.get(name) or ", ".join(declaration.roles if declaration else ())
        return (
            f"is set by carpfarm's roles themselves (an argument of role {role}), not by an inventory",
            "remove it from the inventory",
        )
    if declaration is None:
        return (
            "is not a carpfarm variable: no role reads it, so it would be silently ignored",
            _did_you_mean(name, DECLARED) + "correct the name, or remove it",
        )
    if ANYWHERE in declaration.scope or member & set(declaration.scope) or shared:
        return None
    wanted = " or ".join(f"'{g}'" for g in declaration.scope)
    return (
        f"is read only on hosts in {wanted}, and this host is not in it: the setting would be silently ignored",
        f"move it to group_vars/{declaration.scope[0]} or to a host of that group, or remove it",
    )


def orphan_vars_files(inventory_dirs: Iterable[Path], groups: Iterable[str], hosts: Iterable[str]) -> Iterator[Problem]:
    """group_vars/ and host_vars/ entries that name no group or host reach no host at all."""
    known = {"group_vars": set(groups) | {"all", "ungrouped"}, "host_vars": set(hosts)}
    for directory in dict.fromkeys(inventory_dirs):
        for kind in VARS_DIRS:
            base = directory / kind
            if not base.is_dir():
                continue
            for entry in sorted(base.iterdir()):
                if entry.name.startswith(".") or (entry.is_file() and entry.suffix not in VARS_SUFFIXES):
                    continue
                name = entry.name if entry.is_dir() else entry.stem
                if name not in known[kind]:
                    what = "group" if kind == "group_vars" else "host"
                    yield Problem(
                        str(directory),
                        f"{kind}/{entry.name}",
                        f"matches no {what} of the inventory: its variables reach no host",
                        _did_you_mean(name, known[kind]) + f"rename it after a {what}, or delete it",
                    )


# ---------------------------------------------------------------- addresses


def resolve(address: str) -> str | None:
    """An IP literal as it is, a host name resolved once (IPv4 first), or None."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    if not looks_like_hostname(address):
        return None
    try:
        infos = socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    found = sorted({str(info[4][0]) for info in infos}, key=lambda a: (ipaddress.ip_address(a).version, a))
    return found[0] if found else None


def looks_like_hostname(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return bool(name) and all(
        0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-" and all(c.isalnum() or c == "-" for c in label)
        for label in labels
    )


def address_problem(host: str, variable: str, written: str) -> Problem | None:
    """Squid takes IP literals in ACLs and http_port; a name must resolve here, once."""
    if resolve(written) is not None:
        return None
    if looks_like_hostname(written):
        return Problem(
            host,
            variable,
            "is a name that does not resolve on the controller: Squid's ACLs and http_port need an address",
            f"set {variable} (or ansible_host) to the host's IP address, or make the name resolve here",
            written,
        )
    return Problem(
        host,
        variable,
        "is neither an IP address nor a host name",
        f"set ansible_host or {variable} to the host's IP address",
        written,
    )


def cidrs(host: str, variable: str, items: Any) -> Iterator[Problem]:
    """Each item of a list of networks is a CIDR without host bits (Squid would warn, and read
    10.50.1.7/16 as 10.50.0.0/16)."""
    if not isinstance(items, list):
        return
    for n, cidr in enumerate(items):
        if not isinstance(cidr, str):
            continue
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            yield Problem(
                host, f"{variable}[{n}]", "is not a valid CIDR", "write an address/prefix such as 192.0.2.0/24", cidr
            )
            continue
        if network.network_address != ipaddress.ip_interface(cidr).ip:
            yield Problem(
                host,
                f"{variable}[{n}]",
                f"has host bits set: it means the network {network}, and Squid would warn",
                f"write {network}",
                cidr,
            )


def _networks(items: Any) -> list[tuple[int, addrspace.Network]]:
    """(index, network) of each item that is a CIDR."""
    found = []
    for n, cidr in enumerate(items if isinstance(items, list | tuple) else []):
        try:
            found.append((n, ipaddress.ip_network(cidr, strict=False)))
        except (TypeError, ValueError):
            continue
    return found


def admitted_space(host: str, variable: str, items: Any, allow_open: bool, fix: str) -> Iterator[Problem]:
    """The networks a proxy admits cover, together, at most addrspace.THRESHOLD of the public
    space of each family: more is an open proxy, unless carpfarm_allow_open_proxy says so.
    Each item over it on its own is named, and the list as a whole when together they cover more
    than any one of them."""
    if allow_open:
        return
    networks = _networks(items)
    limit = _open_limit()
    largest: dict[int, Fraction] = {}
    for n, network in networks:
        for version, share in addrspace.public_share([network]).items():
            largest[version] = max(share, largest.get(version, Fraction(0)))
        shares = addrspace.over_threshold([network])
        if shares:
            yield Problem(
                host, f"{variable}[{n}]", f"admits {addrspace.describe(shares)} on its own: {limit}", fix, items[n]
            )
    together = addrspace.over_threshold(network for _, network in networks)
    if any(share > largest[version] for version, share in together.items()):
        yield Problem(
            host, variable, f"admits, all items together, {addrspace.describe(together)}: {limit}", fix, items
        )


def _open_limit() -> str:
    return f"more than {addrspace.threshold_text()} of it is an open proxy"


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
    request goes (squidconf.FORWARDING)."""
    sources = [squidconf.trimmed_lines(value) if isinstance(value, str) else list(value) for _, value in texts]
    found = [(f, EXTRA_OWN_FIX, "") for f in squidconf.redefinitions(sources)]
    found += [(f, EXTRA_LONG_FIX, "") for f in squidconf.long_lines(sources)]
    found += [(f, EXTRA_OPEN_END_FIX, "") for f in squidconf.open_ends(sources)]
    if frontend:
        found += [(f, EXTRA_FORWARDING_FIX, "") for f in squidconf.forwarding(sources)]
    if not allow_open:
        found += [(f, EXTRA_OPEN_FIX, ", an open proxy") for f in squidconf.open_allows(sources)]
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
    allows = squidconf.admitted(sources)
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


# ---------------------------------------------------------------- ports


def port_list(host: str, variable: str, items: Sequence[int | str]) -> Iterator[Problem]:
    """carpfarm_safe_ports / carpfarm_ssl_ports: each a port or a "lo-hi" range within 1-65535."""
    for n, item in enumerate(items):
        low, _, high = str(item).partition("-")
        lo, hi = int(low), int(high or low)
        if not (1 <= lo <= MAX_PORT and 1 <= hi <= MAX_PORT):
            yield Problem(
                host, f"{variable}[{n}]", f"is outside 1-{MAX_PORT}", "write a port or a range within 1-65535", item
            )
        elif hi < lo:
            yield Problem(
                host, f"{variable}[{n}]", "is a range that ends before it starts", "write it as 'lo-hi'", item
            )


def _claims(
    backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]
) -> dict[str, list[tuple[int, str, str]]]:
    """Every TCP/UDP port each host's roles open: (port, variable, what)."""
    claims: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for b in backends:
        for n, i in enumerate(b.instances):
            claims[b.name].append((i.port, f"squid_backend_instances[{n}].port", f"backend instance '{i.name}'"))
            if i.icp_port:
                claims[b.name].append((i.icp_port, "squid_backend_icp_port_base", f"ICP of '{i.name}'"))
            if i.snmp_port:
                claims[b.name].append((i.snmp_port, "squid_backend_snmp_port_base", f"SNMP of '{i.name}'"))
    for f in frontends:
        if f.mode == "smp":  # one Squid on the listen port itself: no balancer, instance ports or WCCP
            claims[f.name].append((f.listen_port, "carp_frontend_listen_port", "the SMP frontend's listen port"))
            continue
        claims[f.name].append((f.listen_port, "carp_frontend_listen_port", "the balancer's listen port"))
        for n, fi in enumerate(f.instances):
            claims[f.name].append((fi.port, "carp_frontend_port_base", f"frontend instance '{fi.name}' (#{n + 1})"))
        for n, port in enumerate(f.wccp.intercept_ports if f.wccp else ()):
            claims[f.name].append((port, "carpfarm_wccp_intercept_port_base", f"WCCP intercept port #{n + 1}"))
        if f.balancer_type == "haproxy":
            claims[f.name].append(
                (f.haproxy_stats_port, "frontend_balancer_haproxy_stats_port", "HAProxy's stats page")
            )
    return claims


def ports_in_range(backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]) -> Iterator[Problem]:
    """Derived ports (port_base + i) must stay within 1-65535."""
    for host, items in _claims(backends, frontends).items():
        for port, variable, what in items:
            if not 1 <= port <= MAX_PORT:
                yield Problem(
                    host,
                    variable,
                    f"gives {what} port {port}, outside 1-{MAX_PORT}",
                    "lower the port base so that base + instances - 1 stays at or below 65535",
                    port,
                )


def ports_distinct(backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]) -> Iterator[Problem]:
    """No two listeners of one host share a port."""
    for host, items in _claims(backends, frontends).items():
        seen: dict[int, tuple[str, str]] = {}
        for port, variable, what in items:
            if port in seen:
                other_var, other = seen[port]
                yield Problem(
                    host,
                    variable,
                    f"port {port} of {what} collides with {other} ({other_var})",
                    "give every instance and listener on a host its own port "
                    "(move a port_base, or set the instance's port)",
                    port,
                )
            else:
                seen[port] = (variable, what)


# ---------------------------------------------------------------- names and the farm


def instance_names(backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]) -> Iterator[Problem]:
    """Instance names unique per host (squid -n), CARP peer names and endpoints unique in the farm."""
    by_host: dict[str, set[str]] = defaultdict(set)
    for b in backends:
        yield from _names_taken_twice(b, by_host[b.name])
        by_host[b.name] |= {i.name for i in b.instances}
        yield from cache_dirs(b.name, b.instances)
    for f in frontends:
        yield from _names_shared_with_frontends(f, by_host.get(f.name, set()))
    yield from _peers_and_endpoints(backends)


def _names_taken_twice(backend: BackendHost, earlier: set[str]) -> Iterator[Problem]:
    """Each instance name of a host once (``earlier``: names its host already had)."""
    seen = set(earlier)
    for n, i in enumerate(backend.instances):
        if i.name in seen:
            yield Problem(
                backend.name,
                f"squid_backend_instances[{n}].name",
                f"instance name '{i.name}' is used twice on this host (squid -n must be unique)",
                "give every instance on a host its own name",
                i.name,
            )
        seen.add(i.name)


def cache_dirs(host: str, instances: Sequence[BackendInstance]) -> Iterator[Problem]:
    """A cache_dir is a directory of its own: no system directory (carpfarm.cachedirs), and not the
    same as, inside or around another instance's of the host (defaults included)."""
    fix = (
        "give every instance a directory of its own: the default /var/spool/squid/<name>, or one on its own "
        "disk such as /srv/cache1 or /mnt/disk1/squid"
    )
    for n, i in enumerate(instances):
        why = cachedirs.refusal(i.cache_dir)
        if why:
            yield Problem(
                host, f"squid_backend_instances[{n}].cache_dir", f"cache_dir {i.cache_dir} {why}", fix, i.cache_dir
            )
    for n, m, how in cachedirs.collisions([i.cache_dir for i in instances]):
        mine, other = instances[n], instances[m]
        if how == "is" and mine.name == other.name:  # one name twice: _names_taken_twice says so
            continue
        theirs = f"instance '{other.name}''s" + (" (its default)" if _defaulted(other) else "")
        relation = f"is also {theirs}" if how == "is" else f"{how} {theirs} cache_dir {other.cache_dir}"
        yield Problem(
            host,
            f"squid_backend_instances[{n}].cache_dir",
            f"cache_dir {mine.cache_dir} {relation}: one cache_dir belongs to one Squid, and the purge of one "
            "instance would delete the other's cache",
            fix,
            mine.cache_dir,
        )


def _defaulted(instance: BackendInstance) -> bool:
    return instance.cache_dir == f"{DEFAULT_CACHE_ROOT}/{instance.name}"


def _names_shared_with_frontends(frontend: FrontendHost, backend_names: set[str]) -> Iterator[Problem]:
    """A host that is both a CARP box and a backend: its backend instances need names of their own."""
    for fi in frontend.instances:
        if fi.name in backend_names:
            yield Problem(
                frontend.name,
                "squid_backend_instances",
                f"backend instance name '{fi.name}' is also a frontend instance name on this host",
                "rename the backend instance",
                fi.name,
            )


def _peers_and_endpoints(backends: Sequence[BackendHost]) -> Iterator[Problem]:
    """CARP peer names (host-instance) and address:port unique across the backend hosts."""
    peers: dict[str, str] = {}
    endpoints: dict[tuple[str, int], BackendInstance] = {}
    for b in backends:
        for n, i in enumerate(b.instances):
            if i.peer_name in peers and peers[i.peer_name] != b.name:
                yield Problem(
                    b.name,
                    f"squid_backend_instances[{n}].name",
                    f"CARP peer name '{i.peer_name}' is also produced by host '{peers[i.peer_name]}'",
                    "rename the instance or the host: CARP peer names (host-instance) must be unique",
                    i.name,
                )
            peers.setdefault(i.peer_name, b.name)
            first = endpoints.setdefault((i.address, i.port), i)
            if first.host != b.name:
                yield Problem(
                    b.name,
                    f"squid_backend_instances[{n}].port",
                    f"{i.address}:{i.port} is also where peer '{first.peer_name}' listens",
                    "give each backend host its own address (ansible_host or squid_backend_address)",
                    f"{i.address}:{i.port}",
                )


def farm_can_serve(backends: Sequence[BackendHost]) -> Iterator[Problem]:
    """At least one active instance, and weights Squid's CARP does not zero."""
    instances = [i for b in backends for i in b.instances]
    if instances and not any(i.active for i in instances):
        yield Problem(
            BACKEND_GROUP,
            "squid_backend_state",
            "every backend instance is drained: no request could be served",
            "leave at least one backend instance 'active'",
        )
    total = sum(i.weight for i in instances)
    starved = [i for i in instances if i.weight * 1000 < total]
    if starved and len(starved) == len(instances):
        yield Problem(
            BACKEND_GROUP,
            "squid_backend_weight",
            f"all {len(instances)} backend instances have under 0.1% of the total weight: Squid's CARP "
            "zeroes every load factor, picks no parent, and every request falls back to the first parent",
            "one Squid balances at most 1000 equal-weight CARP peers: use fewer, larger instances, "
            "or split the farm behind separate CARP boxes",
        )
    elif len(starved) > 5:
        yield Problem(
            BACKEND_GROUP,
            "squid_backend_weight",
            f"{len(starved)} backend instances ({', '.join(i.peer_name for i in starved[:3])}, ...) have "
            "under 0.1% of the total weight: Squid's CARP zeroes their load factors and sends them nothing",
            "raise their weights, or lower the others",
        )
    else:
        for i in starved:
            yield Problem(
                i.host,
                "squid_backend_weight",
                f"instance '{i.name}' has {i.weight}/{total} of the total weight, under 0.1%: "
                "Squid's CARP zeroes its load factor and sends it nothing",
                "raise its weight, or lower the others",
                i.weight,
            )


def frontends_agree(frontends: Sequence[FrontendHost]) -> Iterator[Problem]:
    keys = {f.carp_key for f in frontends}
    if len(keys) > 1:
        yield Problem(
            FRONTEND_GROUP,
            "carp_frontend_carp_key",
            f"frontends disagree on the CARP key ({sorted(keys)}): the same URL would be cached on two backends",
            "set carp_frontend_carp_key once, in group_vars/carp_frontends",
        )


def floating_addresses(
    backends: Sequence[BackendHost],
    frontends: Sequence[FrontendHost],
    others: Mapping[str, str],
    boxes_in_group: int,
) -> Iterator[Problem]:
    """carpfarm_vip across the farm (carpfarm.vip.group_problems). Taken addresses: every backend's
    and CARP box's, and ``others`` (host -> address: retired backends, WCCP routers).
    ``boxes_in_group``: the CARP boxes the inventory lists (some may not have been built, for
    problems of their own)."""
    boxes = {f.name: (f.address, f.listen_port, f.vip) for f in frontends if f.vip is not None}
    taken = {**others, **{b.name: b.address for b in backends}, **{f.name: f.address for f in frontends}}
    return vip.group_problems(boxes, taken, complete=len(frontends) == boxes_in_group)
