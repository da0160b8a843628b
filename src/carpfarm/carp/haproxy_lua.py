"""Squid's CARP choice inside HAProxy: the peers file that ``carpfarm-carp.lua`` reads, and the
backend lines that act on its choice.

``roles/frontend_balancer/files/carpfarm-carp.lua`` repeats, per request, what Squid 5.7 and 6.13
do per request: the URL's canonical form (``carpfarm.carp.url``) and the hash walk over the peers
(``CarpArray.select``). What Squid computes once, when it reads its configuration, comes from here,
computed by ``CarpArray.build`` (the model proven against real Squid):

* the peers in the order Squid walks them (weight ascending, ties in configuration order;
  weight 0 left out);
* each peer's hash, as an integer;
* each peer's load multiplier, as an exact hexadecimal float (``float.hex()``), so that HAProxy's
  Lua multiplies by the very double Squid does; ``inf`` and ``nan`` (a peer under the 1/1000
  load-factor floor makes the next ones so, in Squid too) are written as ``math.huge`` and
  ``(0/0)``.

``peers_lua`` renders that file; ``backend_lines`` the lines of the backend whose servers are the
peers. Both files are loaded into every thread (``lua_load_lines``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from carpfarm.carp.select import CarpArray, CarpPeer

DEFAULT_FETCH = "carpfarm_carp"
_HAPROXY_NAME = re.compile(r"[A-Za-z0-9_.:-]+")  # invalid_char() in HAProxy's src/tools.c refuses the rest
_FETCH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def lua_float(value: float) -> str:
    """``value`` as a Lua 5.3/5.4 expression of exactly that double."""
    if math.isnan(value):
        return "(0/0)"
    if math.isinf(value):
        return "math.huge" if value > 0 else "-math.huge"
    return value.hex()


def lua_string(text: str) -> str:
    """A Lua string literal holding ``text``'s UTF-8 bytes; what is not printable ASCII is escaped."""
    out = []
    for b in text.encode("utf-8", "surrogateescape"):
        c = chr(b)
        out.append(c if 0x20 <= b < 0x7F and c not in '"\\' else f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def _checked(peers: Sequence[CarpPeer], servers: Mapping[str, str], backend: str, fetch: str) -> None:
    names = [p.name for p in peers]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ValueError(f"peer name(s) {doubled} appear more than once; Squid needs each name= once")
    unknown = sorted(set(servers) - set(names))
    if unknown:
        raise ValueError(f"servers given for unknown peer(s) {unknown}; name only peers of {names}")
    for name in names:
        server = servers.get(name, name)
        if not _HAPROXY_NAME.fullmatch(server):
            raise ValueError(
                f"{server!r} cannot name an HAProxy server (letters, digits, '.', '-', '_', ':'): "
                f"give peer {name!r} a server name in servers="
            )
    if not _HAPROXY_NAME.fullmatch(backend):
        raise ValueError(f"{backend!r} cannot name an HAProxy backend (letters, digits, '.', '-', '_', ':')")
    if not _FETCH_NAME.fullmatch(fetch):
        raise ValueError(f"fetch {fetch!r}: use letters, digits and '_' (HAProxy calls it lua.{fetch})")


def peers_lua(
    peers: Sequence[CarpPeer],
    backend: str,
    fetch: str = DEFAULT_FETCH,
    servers: Mapping[str, str] | None = None,
    signed_char: bool = True,
) -> str:
    """The Lua chunk that registers ``lua.<fetch>`` for ``peers`` (in ``squid.conf`` order).

    ``backend`` is the HAProxy backend whose servers are the peers; a peer's server is named as the
    peer (``name=``, which its hash comes from) unless ``servers`` maps the peer's name to another.
    ``signed_char``: bytes from 0x80 count negative, as on x86 (``CarpArray.build``)."""
    servers = dict(servers or {})
    _checked(peers, servers, backend, fetch)
    array = CarpArray.build(peers, signed_char)
    if not array.ranked:
        raise ValueError("no peer has a weight above 0: Squid's CARP would choose none; give one a weight")
    lines = [
        "-- Squid's CARP peers, as Squid 5.7 and 6.13 order, hash and weigh them (carpfarm.carp.haproxy_lua).",
        "-- Load after carpfarm-carp.lua. The order is Squid's walk: weight ascending, ties in configuration order.",
        "carpfarm_carp.register {",
        f"    fetch = {lua_string(fetch)},",
        f"    backend = {lua_string(backend)},",
        f"    signed_char = {'true' if signed_char else 'false'},",
        "    peers = {",
    ]
    for r in array.ranked:
        fields = [
            f"name = {lua_string(r.peer.name)}",
            f"server = {lua_string(servers.get(r.peer.name, r.peer.name))}",
            f"hash = 0x{r.hash:08x}",
            f"multiplier = {lua_float(r.multiplier)}",
        ]
        if r.peer.carp_key:
            fields.append(f"key = {lua_string(','.join(r.peer.carp_key))}")
        lines.append(f"        {{ {', '.join(fields)} }},  -- weight {r.peer.weight}, load factor {r.load_factor!r}")
    lines += ["    },", "}", ""]
    return "\n".join(lines)


def lua_load_lines(script: str, peers_file: str) -> list[str]:
    """The ``global`` lines that load the script, then the peers, into every thread."""
    return [f"lua-load-per-thread {script}", f"lua-load-per-thread {peers_file}"]


def backend_lines(fetch: str = DEFAULT_FETCH, variable: str = "txn.carpfarm_carp") -> list[str]:
    """The backend's lines that send each request to the server CARP chose.

    The fetch runs once per request, into ``variable`` (which the access log can print); one
    ``use-server`` with a dynamic name (HAProxy 2.6 and later) acts on it. When CARP chooses
    none (Squid refuses the URL, or no peer may take it), or the chosen server went down in
    between, the request falls to ``balance first``: the first usable server in configuration
    order, as Squid falls back to its first usable parent."""
    if not _FETCH_NAME.fullmatch(fetch):
        raise ValueError(f"fetch {fetch!r}: use letters, digits and '_' (HAProxy calls it lua.{fetch})")
    return [
        "balance first",
        f"http-request set-var({variable}) lua.{fetch}",
        f"use-server %[var({variable})] if {{ var({variable}) -m found }}",
    ]
