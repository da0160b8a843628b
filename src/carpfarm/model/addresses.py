"""Addresses as an inventory writes them: the only place carpfarm asks DNS (``resolve``), and the
rules on addresses and networks (host bits, the share of the public address space they open)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from carpfarm.model import addrspace
from carpfarm.problems import Problem

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
