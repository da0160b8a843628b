"""HAProxy's consistent URI hash, exactly as HAProxy 2.6 and 3.0 choose a server.

A backend with ``balance uri [whole] [len N] [depth N] [path-only]`` and ``hash-type consistent``
places every usable server on a 32-bit ring many times and sends a request to the point closest
to the hash of its URI. Everything here was read from HAProxy's source at the v2.6.0 and v3.0.0
tags, with the later changes Debian's packages carry named where they matter, and is checked
against Debian 12's haproxy 2.6.12-1+deb12u4 and Debian 13's 3.0.11-1+deb13u5 by
``tests/carp/test_chash_haproxy.py``.

Which targets reach a server at all (``check_target``; ``h1_headers_to_hdr_list()`` in src/h1.c):
bytes below 0x21 and 0x7F never; bytes from 0x80 and ``#`` (2eab6d354) only with ``option
accept-invalid-http-request``; in Debian 13's 3.0 an absolute-form authority must also be free
of ``, # / ? @ \\`` and stray brackets, under the same option (its security updates behave as
upstream's a46b0eec7 with b743b566b's comma; observed on the package). Anything else is
answered 400 (``TargetRejected``).

The request target (``normalized_target``), as ``h1_postparse_req_hdrs()`` in src/h1_htx.c stores it:

* the URI is kept as received, except that an absolute-form target goes through
  ``http_scheme_based_normalize()`` (src/http_htx.c): the port is dropped when it is empty or the
  scheme's default (``:80`` for ``http://``, ``:443`` for ``https://``, schemes compared without
  case, ports as text, so ``:080`` stays); the host keeps its case; userinfo is kept;
* HAProxy 3.0 (commit 8d2514e08, in v3.0.0 and not in 2.6.12) also turns a missing path into ``/``,
  appended after the authority, which ends at the first ``/`` only: ``http://h?q`` becomes
  ``http://h?q/`` there (when accepted), and stays as it is in 2.6. (Upstream's 778bba5d3, not
  in either package, ends the authority at ``?`` and ``#`` too.)

What is hashed (``UriBalance.hashed_part``; ``get_server_uh()`` in src/backend.c, alike in 2.6 and 3.0):

* that whole target: for an absolute-form request the scheme, the authority (userinfo included),
  the path and, with ``whole`` only, the query; without ``whole`` hashing stops at the first ``?``;
* ``path-only`` first keeps what ``http_parse_path()`` (src/http.c) returns: from the first ``/``
  after the authority to the end, or nothing; ``len N`` keeps the first N bytes; ``depth N``
  stops before the (N+1)-th ``/``, and the two of ``://`` count;
* with the hash function of ``hash-type consistent <function>`` (src/hash.c: sdbm, djb2, wt6,
  crc32; bytes unsigned), then ``full_hash()`` when ``avalanche`` applies: a bare
  ``hash-type consistent`` means sdbm *with* avalanche; naming a function drops avalanche unless
  written (``hash-type`` in src/cfgparse-listen.c);
* with a single usable server the hash is 0 (it does not matter: that server wins).

The ring (``ChashRing``; src/lb_chash.c: ``chash_init_server_tree()``, ``chash_queue_dequeue_srv()``):

* a server of ``weight`` W (0-256) gets W x 16 points (BE_WEIGHT_SCALE); weight 0, ``disabled``
  or down: none;
* point j of a server has key ``full_hash(base + j)`` (src/tools.c ``full_hash()``: one of Bob
  Jenkins' integer hashes, then times 3221225473), where ``base`` is ``id x 4096``
  (SRV_EWGHT_RANGE) in 2.6; 3.0 (commit faa8c3e02) added ``hash-key`` (id, the default; addr;
  addr-port) and, for ``id``, used ``full_hash(id)`` instead, a regression fixed upstream by
  03e9a5a1e (October 2025, for backport to 3.0) but still in Debian 13's 3.0.11-1+deb13u5;
* ``hash-key addr``: ``base = full_hash(ipv4)`` (the address as a little-endian host reads its
  network-order bytes), ``addr-port``: ``base = full_hash(full_hash(port) + ipv4)``; for IPv6
  ``XXH32(address, seed)``, seed 0 or ``full_hash(port)``; a server without an address keys on id;
* servers without ``id`` take the first free id from a counter that starts at 1 and steps past
  every server in configuration order, numbered or not (src/cfgparse.c);
* equal keys (a tie, e.g. ``hash-key addr`` with servers on one address) keep insertion order:
  configuration order, then point order, as the eb32 tree's duplicates do (a server that goes
  down and up at run time is inserted again, last; not modelled).

The choice (``chash_get_server_hash()`` in src/lb_chash.c, unchanged from 2.6 to 3.0): take the
first point at or after the hash (wrapping to the first point), and the point before it
(wrapping to the last); the distances are ``hash - prev`` and ``next - hash`` modulo 2**32, and
the previous point wins when it is *not farther*, ties included. Without usable active servers,
the first usable ``backup`` server takes everything, or, with ``option allbackups``, the backup
servers form the ring. ``hash-balance-factor`` (bounded loads) is not modelled.
"""

from __future__ import annotations

import bisect
import ipaddress
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, cast, get_args

MASK = 0xFFFFFFFF
POINTS_PER_WEIGHT = 16  # BE_WEIGHT_SCALE (include/haproxy/backend-t.h)
ID_KEY_SPACE = 4096  # SRV_EWGHT_RANGE = SRV_UWGHT_RANGE 256 x BE_WEIGHT_SCALE (include/haproxy/server-t.h)
MAX_WEIGHT = 256  # SRV_UWGHT_MAX
MAX_ID = 0x7FFFFFFF  # puid is a C int and must be > 0 (srv_parse_id)

HashFunction = Literal["sdbm", "djb2", "wt6", "crc32"]
HashKey = Literal["id", "addr", "addr-port"]
HASH_FUNCTIONS: tuple[str, ...] = get_args(HashFunction)
HASH_KEYS: tuple[str, ...] = get_args(HashKey)


@dataclass(frozen=True)
class HaproxyRelease:
    """The behaviours that differ between the HAProxy releases carpfarm supports."""

    label: str
    id_base_hashed: bool  # hash-key id: base = full_hash(id) (3.0-dev7 .. before 03e9a5a1e) or id x 4096
    empty_path_slash: bool  # scheme-based normalization gives an absent path "/" (8d2514e08, 3.0)
    hash_key: bool  # the server keyword hash-key exists (faa8c3e02, 3.0)
    authority_checked: bool  # the request line's authority is checked for forbidden bytes (a46b0eec7)


HAPROXY_2_6 = HaproxyRelease(
    "2.6", id_base_hashed=False, empty_path_slash=False, hash_key=False, authority_checked=False
)
HAPROXY_3_0 = HaproxyRelease("3.0", id_base_hashed=True, empty_path_slash=True, hash_key=True, authority_checked=True)
# What each Debian release ships; checked: haproxy 2.6.12-1+deb12u4 and 3.0.11-1+deb13u5 (whose
# security updates brought the authority check, and not yet 03e9a5a1e).
DEBIAN_HAPROXY = {"bookworm": HAPROXY_2_6, "trixie": HAPROXY_3_0}


class TargetRejected(ValueError):
    """HAProxy answers 400 to this request target: it reaches no server."""


def full_hash(value: int) -> int:
    """HAProxy's ``full_hash()``: a 32-bit integer hash (src/tools.c, include/haproxy/intops.h)."""
    a = value & MASK
    a = (a + 0x7ED55D16 + (a << 12)) & MASK
    a = a ^ 0xC761C23C ^ (a >> 19)
    a = (a + 0x165667B1 + (a << 5)) & MASK
    a = ((a + 0xD3A2646C) ^ (a << 9)) & MASK
    a = (a + 0xFD7046C5 + (a << 3)) & MASK
    a = a ^ 0xB55A4F09 ^ (a >> 16)
    return (a * 3221225473) & MASK


def hash_sdbm(data: bytes) -> int:
    """``hash_sdbm()`` (src/hash.c): h = c + (h << 6) + (h << 16) - h, i.e. h * 65599 + c."""
    h = 0
    for c in data:
        h = (c + (h << 6) + (h << 16) - h) & MASK
    return h


def hash_djb2(data: bytes) -> int:
    """``hash_djb2()`` (src/hash.c): h * 33 + c from 5381."""
    h = 5381
    for c in data:
        h = (h * 33 + c) & MASK
    return h


def _rotl(value: int, bits: int) -> int:
    bits &= 31
    return ((value << bits) | (value >> (32 - bits))) & MASK if bits else value


def hash_wt6(data: bytes) -> int:
    """``hash_wt6()`` (src/hash.c): two words rotated by amounts the data itself picks."""
    h0, h1, step0, step1 = 0xA53C965A, 0x5CA6953A, 6, 18
    for c in data:
        h0 = ~(h0 ^ c) & MASK
        h1 = ~(h1 + c) & MASK
        h0, h1 = _rotl(h1, step0), _rotl(h0, step1)
        t = ((h0 >> 16) ^ h1) & 0xFFFF
        step0, step1 = t & 0x1F, t >> 11
    return h0 ^ h1


def hash_crc32(data: bytes) -> int:
    """HAProxy's ``hash_crc32()`` is the usual reflected CRC-32 (poly 0xEDB88320)."""
    return zlib.crc32(data) & MASK


HASHERS: dict[str, Callable[[bytes], int]] = {
    "sdbm": hash_sdbm,
    "djb2": hash_djb2,
    "wt6": hash_wt6,
    "crc32": hash_crc32,
}

_XXH_P1, _XXH_P2, _XXH_P3, _XXH_P4, _XXH_P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393


def _xxh_round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * _XXH_P2) & MASK, 13) * _XXH_P1) & MASK


def xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32 (the xxHash specification); HAProxy 3.0 hashes IPv6 server addresses with it."""
    n, i = len(data), 0
    if n >= 16:
        acc = [(seed + _XXH_P1 + _XXH_P2) & MASK, (seed + _XXH_P2) & MASK, seed & MASK, (seed - _XXH_P1) & MASK]
        while i + 16 <= n:
            acc = [_xxh_round(acc[k], int.from_bytes(data[i + 4 * k : i + 4 * k + 4], "little")) for k in range(4)]
            i += 16
        h = (_rotl(acc[0], 1) + _rotl(acc[1], 7) + _rotl(acc[2], 12) + _rotl(acc[3], 18)) & MASK
    else:
        h = (seed + _XXH_P5) & MASK
    h = (h + n) & MASK
    while i + 4 <= n:
        h = (_rotl((h + int.from_bytes(data[i : i + 4], "little") * _XXH_P3) & MASK, 17) * _XXH_P4) & MASK
        i += 4
    for c in data[i:]:
        h = (_rotl((h + c * _XXH_P5) & MASK, 11) * _XXH_P1) & MASK
    h = ((h ^ (h >> 15)) * _XXH_P2) & MASK
    h = ((h ^ (h >> 13)) * _XXH_P3) & MASK
    return h ^ (h >> 16)


def _as_bytes(target: str | bytes) -> bytes:
    return target if isinstance(target, bytes) else target.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class _Parts:
    """An absolute-form target cut as ``http_parse_scheme/authority/path()`` cut it."""

    scheme: bytes  # with its "://"
    authority_start: int  # after the userinfo's last '@'
    authority: bytes
    path: bytes  # from the first '/' after "://" to the end; empty when absent


def _scheme_end(target: bytes) -> int | None:
    """The index after ``scheme://``, or None when the target has no scheme."""
    if not target[:1].isalpha():
        return None
    i = 1
    while i < len(target) and (target[i : i + 1].isalnum() or target[i] in b"+-."):
        i += 1
    return i + 3 if target[i : i + 3] == b"://" else None


def _absolute_parts(target: bytes) -> _Parts | None:
    end = _scheme_end(target)
    if end is None:
        return None
    slash = target.find(b"/", end)
    stop = len(target) if slash < 0 else slash
    start = max(end, target.rfind(b"@", end, stop) + 1)
    return _Parts(target[:end], start, target[start:stop], target[stop:])


def _host_port(authority: bytes) -> bytes | None:
    """``http_get_host_port()``: the digits after the last ':' that only digits follow, or None."""
    digits = len(authority) - len(authority.rstrip(b"0123456789"))
    colon = len(authority) - digits - 1
    if colon < 0 or authority[colon : colon + 1] != b":":
        return None
    return authority[colon + 1 :]


def _is_default_port(scheme: bytes, port: bytes) -> bool:
    """``http_is_default_port()``: an empty port, or 80 for http and 443 for https."""
    scheme = scheme.lower()
    return not port or (port == b"80" and scheme == b"http://") or (port == b"443" and scheme == b"https://")


def _authority_forbidden(authority: bytes) -> bool:
    """``http_authority_has_forbidden_char()`` (include/haproxy/http.h): bytes outside 0x21-0x7e and
    ``,#/?@\\[]`` are refused, except an IP literal's ``[`` first and ``]`` last or before ``:``."""
    open_brackets = 0
    for i, c in enumerate(authority):
        if 0x21 <= c <= 0x7E and c not in b",#/?@[\\]":
            continue
        if (c == 0x5B and i == 0) or (c == 0x5D and (i == len(authority) - 1 or authority[i + 1 : i + 2] == b":")):
            open_brackets ^= 1
        else:
            return True
    return bool(open_brackets)


def check_target(target: bytes, release: HaproxyRelease = HAPROXY_2_6, accept_invalid: bool = False) -> None:
    """Raise ``TargetRejected`` when HAProxy's HTTP/1 parser refuses the request target (src/h1.c).

    Always: bytes below 0x21 and 0x7F (they cannot be part of a target). Unless the frontend sets
    ``option accept-invalid-http-request``: bytes from 0x80 and ``#`` (2eab6d354, in Debian 12's
    2.6.12-1+deb12u1), and in 3.0 an absolute-form authority with a forbidden byte (Debian 13's
    security updates; the authority ends at the first ``/`` only, so ``http://h?q`` is refused).
    The Host header, if any, is assumed to match the authority, as proxy clients send it."""
    bad = sorted({c for c in target if c < 0x21 or c == 0x7F})  # whitespace ends the target
    if bad:
        raise TargetRejected(f"{target[:80]!r}: bytes {bad} cannot be in a request target")
    if accept_invalid:
        return
    if b"#" in target or any(c >= 0x80 for c in target):
        raise TargetRejected(f"{target[:80]!r}: '#' or a byte >= 0x80; HAProxy answers 400")
    parts = _absolute_parts(target) if release.authority_checked else None
    if parts is not None and _authority_forbidden(parts.authority):
        raise TargetRejected(f"{target[:80]!r}: HAProxy {release.label} refuses the authority {parts.authority!r}")


def normalized_target(
    target: str | bytes, release: HaproxyRelease = HAPROXY_2_6, accept_invalid: bool = False
) -> bytes:
    """The request target as HAProxy stores it for an HTTP/1 request: the scheme-based
    normalization of an absolute-form target (the target starts with neither '/' nor '*').
    Raises ``TargetRejected`` for a target HAProxy answers 400 to (``check_target``)."""
    raw = _as_bytes(target)
    check_target(raw, release, accept_invalid)
    if not raw or raw[:1] in (b"/", b"*"):
        return raw
    parts = _absolute_parts(raw)
    if parts is None:
        raise TargetRejected(f"{raw[:80]!r}: neither a path nor scheme://; HAProxy answers 400 but to CONNECT")
    host, path = parts.authority, parts.path
    port = _host_port(parts.authority)
    if port is not None and _is_default_port(parts.scheme, port):
        host = parts.authority[: len(parts.authority) - len(port) - 1]
    if not path and release.empty_path_slash:
        path = b"/"
    return raw[: parts.authority_start] + host + path


def _path_only(uri: bytes) -> bytes:
    """What ``http_parse_path()`` gives ``balance uri path-only``."""
    if uri[:1] == b"/":
        return uri
    if not uri or uri[:1] == b"*":
        return b""
    parts = _absolute_parts(uri)
    return b"" if parts is None else parts.path


@dataclass(frozen=True)
class UriBalance:
    """``balance uri [whole] [len N] [depth N] [path-only]`` with ``hash-type consistent [function [avalanche]]``.

    The defaults are HAProxy's: ``UriBalance()`` is ``balance uri`` with a bare ``hash-type
    consistent`` (sdbm, avalanche applied)."""

    whole: bool = False
    length: int = 0  # len N; 0: the whole target
    depth: int = 0  # depth N; 0: no limit
    path_only: bool = False
    function: HashFunction = "sdbm"
    avalanche: bool = True

    def __post_init__(self) -> None:
        if self.function not in HASH_FUNCTIONS:
            raise ValueError(f"hash function {self.function!r} unknown; use one of {', '.join(HASH_FUNCTIONS)}")
        if self.length < 0 or self.depth < 0:
            raise ValueError(f"len {self.length} and depth {self.depth} must be positive (0: not set)")

    @classmethod
    def parse(cls, balance: str, hash_type: str = "consistent") -> UriBalance:
        """From the words after ``balance`` and ``hash-type``, e.g. ``"uri whole"``, ``"consistent sdbm"``."""
        words, kinds = balance.split(), hash_type.split()
        if words[:1] != ["uri"] or kinds[:1] != ["consistent"]:
            raise ValueError(f"'balance {balance}' / 'hash-type {hash_type}': only 'balance uri' and consistent")
        options: dict[str, int] = {}
        rest = iter(words[1:])
        for word in rest:
            if word in ("len", "depth"):
                value = next(rest, "")
                if not value.isdigit() or int(value) == 0:
                    raise ValueError(f"balance uri {word} {value!r}: expects a positive integer")
                options[word] = int(value)
            elif word in ("whole", "path-only"):
                options[word] = 1
            else:
                raise ValueError(f"balance uri option {word!r} unknown; use whole, len N, depth N, path-only")
        function = kinds[1] if len(kinds) > 1 else "sdbm"
        avalanche = len(kinds) == 1 or kinds[2:] == ["avalanche"]
        if function not in HASH_FUNCTIONS or kinds[2:] not in ([], ["avalanche"]):
            raise ValueError(f"'hash-type {hash_type}': use consistent [{'|'.join(HASH_FUNCTIONS)} [avalanche]]")
        return cls(
            whole=bool(options.get("whole")),
            length=options.get("len", 0),
            depth=options.get("depth", 0),
            path_only=bool(options.get("path-only")),
            function=cast(HashFunction, function),
            avalanche=avalanche,
        )

    def balance_words(self) -> str:
        words = ["uri"] + ["whole"] * self.whole + ["path-only"] * self.path_only
        words += [f"len {self.length}"] * bool(self.length) + [f"depth {self.depth}"] * bool(self.depth)
        return " ".join(words)

    def hash_type_words(self) -> str:
        return f"consistent {self.function}" + " avalanche" * self.avalanche

    def hashed_part(self, uri: bytes) -> bytes:
        """The bytes of the (normalized) target that ``get_server_uh()`` hashes."""
        if self.path_only:
            uri = _path_only(uri)
        if self.length:
            uri = uri[: self.length]
        slashes = 0
        for i, c in enumerate(uri):
            if c == 0x2F:  # '/'
                slashes += 1
                if slashes == self.depth + 1 and self.depth:
                    return uri[:i]
            elif c == 0x3F and not self.whole:  # '?'
                return uri[:i]
        return uri

    def hash(self, uri: bytes) -> int:
        h = HASHERS[self.function](self.hashed_part(uri))
        return full_hash(h) if self.avalanche else h


@dataclass(frozen=True)
class HaproxyServer:
    """One ``server`` line of the backend, as far as the consistent hash cares."""

    name: str
    weight: int = 1
    id: int | None = None  # None: numbered automatically
    down: bool = False  # disabled, in maintenance or failing its checks: no points
    backup: bool = False
    hash_key: HashKey = "id"  # 3.0 only
    address: str | None = None  # an IP literal: needed by hash-key addr and addr-port
    port: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= MAX_WEIGHT:
            raise ValueError(f"server {self.name}: weight {self.weight} out of 0-{MAX_WEIGHT}")
        if self.id is not None and not 1 <= self.id <= MAX_ID:
            raise ValueError(f"server {self.name}: id {self.id} out of 1-{MAX_ID}")
        if self.hash_key not in HASH_KEYS:
            raise ValueError(f"server {self.name}: hash-key {self.hash_key!r} unknown; use one of {HASH_KEYS}")
        if self.address is not None:
            ipaddress.ip_address(self.address)  # ValueError names the bad address
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"server {self.name}: port {self.port} out of 0-65535")

    @property
    def usable(self) -> bool:
        return self.weight > 0 and not self.down


def assign_ids(servers: Sequence[HaproxyServer]) -> tuple[int, ...]:
    """Each server's id: its own, or the first free one from a counter that starts at 1 and steps
    past every server, numbered or not (src/cfgparse.c, "assign automatic UIDs")."""
    explicit = [s.id for s in servers if s.id is not None]
    if len(set(explicit)) != len(explicit):
        raise ValueError(f"server ids {sorted(explicit)} repeat; HAProxy refuses a backend with duplicate ids")
    taken, ids, next_id = set(explicit), [], 1
    for s in servers:
        if s.id is None:
            while next_id in taken:
                next_id += 1
            taken.add(next_id)
        ids.append(next_id if s.id is None else s.id)
        next_id += 1
    return tuple(ids)


def _address_base(server: HaproxyServer) -> int | None:
    """``chash_compute_server_key()`` for hash-key addr / addr-port; None without an address."""
    if server.address is None:
        return None
    seed = full_hash(server.port) if server.hash_key == "addr-port" else 0
    ip = ipaddress.ip_address(server.address)
    if ip.version == 4:
        return full_hash(seed + int.from_bytes(ip.packed, "little"))
    return xxh32(ip.packed, seed)


def point_base(server: HaproxyServer, puid: int, release: HaproxyRelease) -> int:
    """The value a server's point keys count from: ``full_hash(base + j)`` is its point j."""
    if release.hash_key and server.hash_key != "id":
        base = _address_base(server)
        if base is not None:
            return base
    if release.id_base_hashed:
        return full_hash(puid)
    return (puid * ID_KEY_SPACE) & MASK


def server_points(server: HaproxyServer, puid: int, release: HaproxyRelease = HAPROXY_2_6) -> tuple[int, ...]:
    """The keys of a server's points on the ring, in insertion order; none when not usable."""
    if not server.usable:
        return ()
    base = point_base(server, puid, release)
    return tuple(full_hash(base + j) for j in range(server.weight * POINTS_PER_WEIGHT))


@dataclass(frozen=True)
class ChashRing:
    """The points one backend's usable servers hold, sorted as the eb32 tree walks them."""

    keys: tuple[int, ...]
    owners: tuple[HaproxyServer, ...]
    fallback: HaproxyServer | None = None  # the first backup, when no active server is usable
    used: int = 0  # servers that share the traffic (tot_used)

    @classmethod
    def from_points(cls, points: Iterable[tuple[int, HaproxyServer]]) -> ChashRing:
        """A ring from explicit (key, server) points in insertion order; equal keys keep that order."""
        ordered = sorted(enumerate(points), key=lambda p: (p[1][0], p[0]))
        owners = tuple(server for _, (_, server) in ordered)
        return cls(tuple(key for _, (key, _) in ordered), owners, None, len(set(owners)))

    @classmethod
    def build(
        cls, servers: Sequence[HaproxyServer], release: HaproxyRelease = HAPROXY_2_6, allbackups: bool = False
    ) -> ChashRing:
        """The ring ``chash_init_server_tree()`` builds for ``servers`` in configuration order."""
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"server names {names} repeat; give each server of the backend its own name")
        keyed = [s.name for s in servers if s.hash_key != "id"]
        if keyed and not release.hash_key:
            raise ValueError(f"servers {keyed} set hash-key, which HAProxy {release.label} lacks; leave it 'id'")
        ids = assign_ids(servers)
        active = [(s, i) for s, i in zip(servers, ids, strict=True) if s.usable and not s.backup]
        backups = [(s, i) for s, i in zip(servers, ids, strict=True) if s.usable and s.backup]
        if not active and backups and not allbackups:
            return cls((), (), backups[0][0], 1)
        chosen = active or backups
        ring = cls.from_points((key, s) for s, puid in chosen for key in server_points(s, puid, release))
        return cls(ring.keys, ring.owners, None, len(chosen))

    def lookup(self, hash_value: int) -> HaproxyServer | None:
        """The server ``chash_get_server_hash()`` returns for a hash: the closer of the points
        around it, the previous one on a tie; None when no server is usable."""
        if self.fallback is not None:
            return self.fallback
        if not self.keys:
            return None
        h = hash_value & MASK
        i = bisect.bisect_left(self.keys, h)
        nxt = i % len(self.keys)  # first point >= h, or the first point
        prev = nxt - 1  # the point before it, or the last one (index -1)
        if (h - self.keys[prev]) & MASK <= (self.keys[nxt] - h) & MASK:
            return self.owners[prev]
        return self.owners[nxt]

    def hash_for(
        self,
        target: str | bytes,
        balance: UriBalance,
        release: HaproxyRelease = HAPROXY_2_6,
        accept_invalid: bool = False,
    ) -> int:
        """The hash ``get_server_uh()`` looks up for a request target (0 for a single server)."""
        uri = normalized_target(target, release, accept_invalid)
        return 0 if self.used <= 1 else balance.hash(uri)

    def server_for(
        self,
        target: str | bytes,
        balance: UriBalance,
        release: HaproxyRelease = HAPROXY_2_6,
        accept_invalid: bool = False,
    ) -> HaproxyServer | None:
        return self.lookup(self.hash_for(target, balance, release, accept_invalid))


@lru_cache(maxsize=64)
def _cached_ring(servers: tuple[HaproxyServer, ...], release: HaproxyRelease, allbackups: bool) -> ChashRing:
    return ChashRing.build(servers, release, allbackups)


def select_server(
    target: str | bytes,
    servers: Sequence[HaproxyServer],
    balance: UriBalance | None = None,
    release: HaproxyRelease = HAPROXY_2_6,
    allbackups: bool = False,
    accept_invalid: bool = False,
) -> HaproxyServer | None:
    """Which of ``servers`` (in configuration order) HAProxy sends a request for ``target`` to.

    ``target`` is the request target as the client sent it: ``http://host:port/path?query`` for a
    proxy client. ``balance`` defaults to ``balance uri whole`` with a bare ``hash-type
    consistent``; ``allbackups`` and ``accept_invalid`` stand for the ``option``s of those names.
    None means no server is usable (HAProxy answers 503); ``TargetRejected`` that HAProxy answers
    400 without choosing one."""
    chosen = UriBalance(whole=True) if balance is None else balance
    return _cached_ring(tuple(servers), release, allbackups).server_for(target, chosen, release, accept_invalid)


# ---- one ring on 2.6 and on Debian 13's 3.0: server ids chosen so both releases place alike


def _inverse_odd(multiplier: int) -> int:
    return pow(multiplier, -1, 1 << 32)


def _unxorshift_right(value: int, shift: int) -> int:
    """The x with ``x ^ (x >> shift) == value`` (32 bits)."""
    x = value
    for _ in range(32 // shift + 1):
        x = value ^ (x >> shift)
    return x & MASK


def full_hash_inverse(value: int) -> int:
    """The x with ``full_hash(x) == value``: every step of ``full_hash`` is a bijection of 32-bit words."""
    a = (value * _inverse_odd(3221225473)) & MASK
    a = _unxorshift_right(a ^ 0xB55A4F09, 16)
    a = ((a - 0xFD7046C5) * _inverse_odd(9)) & MASK
    x = 0  # a4 = (a3 + C) ^ (a3 << 9): each round fixes 9 more low bits of a3
    for _ in range(4):
        x = ((a ^ (x << 9)) - 0xD3A2646C) & MASK
    a = x
    a = ((a - 0x165667B1) * _inverse_odd(33)) & MASK
    a = _unxorshift_right(a ^ 0xC761C23C, 19)
    return ((a - 0x7ED55D16) * _inverse_odd(4097)) & MASK


@dataclass(frozen=True)
class StableId:
    """A server's ids in ``haproxy.cfg`` that put its points at ``full_hash(slot x 4096 + j)`` on
    every release: ``slot`` itself where the base is ``id x 4096`` (2.6, and 3.0 with upstream's
    03e9a5a1e), and ``hashed``, whose ``full_hash`` is ``slot x 4096``, where the base is
    ``full_hash(id)`` (Debian 13's 3.0.11)."""

    slot: int
    hashed: int

    def for_release(self, release: HaproxyRelease) -> int:
        return self.hashed if release.id_base_hashed else self.slot


SLOTS = (1 << 20) - 1  # slot x 4096 stays below 2**32: slots never share a point key


def stable_ids(names: Sequence[str]) -> dict[str, StableId]:
    """Each server's ``StableId``, from its name alone: adding or removing a server moves no other
    server's points (automatic ids count by position, so one inserted server would renumber the
    rest). Names are taken in sorted order, each the first slot of its sequence that is free and
    whose 3.0 id is a valid server id (1 to 2**31 - 1)."""
    taken: set[int] = set()
    ids: dict[str, StableId] = {}
    for name in sorted(set(names)):
        seed = zlib.crc32(name.encode("utf-8", "surrogateescape"))
        for attempt in range(SLOTS):
            slot = (seed + attempt * 0x9E3779B1) % SLOTS + 1
            hashed = full_hash_inverse(slot * ID_KEY_SPACE)
            if slot not in taken and 1 <= hashed <= MAX_ID:
                taken.add(slot)
                ids[name] = StableId(slot, hashed)
                break
    return ids
