"""Squid's CARP parent selection, exactly as Squid 5.7 and 6.13 compute it.

Everything here mirrors the arithmetic of Squid's ``src/carp.cc`` (peer hash,
load multipliers, URL key, selection) so that a prediction made on the
controller is the choice a real frontend makes:

* hash arithmetic is unsigned 32-bit; the bytes of names and keys are C
  ``char``, which is signed on x86, so bytes >= 0x80 are sign-extended;
* load factors are ``w / W`` and become 0 below one per mille;
* peers are ordered by weight, ascending, ties in configuration order;
* the multipliers are computed in IEEE doubles, where ``inf`` and ``nan``
  occur and are kept (Python would raise instead);
* the URL hash is *not* reset between peers: it keeps accumulating over each
  peer's key, which is why inserting or deleting a peer that is not last
  remaps far more than its own share of URLs.

Debian 12's squid 5.7 and Debian 13's 6.13 choose alike, so nothing here takes
a release: between the SQUID_5_7 and SQUID_6_13 tags ``carp.cc`` changed only
its logging, and the two changes to ``Uri.cc`` that reach the key (userinfo
bytes >= 0x80 printed as ``%FFFFFFC3`` by upstream 5.7, fixed by #1367; gopher
removed) do not show on Debian's 5.7, whose answers match 6.13's. Both are
checked by ``tests/test_carp_squid.py``.
"""

from __future__ import annotations

import ipaddress
import math
from array import array as array_module
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, get_args

from carpfarm.carp.cores import fork_map, usable_cores

MASK = 0xFFFFFFFF
HASH_MULTIPLIER = 0x62531965
KeyPart = Literal["scheme", "host", "port", "path", "params"]
KEY_PARTS: tuple[str, ...] = get_args(KeyPart)
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21, "gopher": 70, "wais": 210, "whois": 43}


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & MASK


def _char_values(text: str, signed_char: bool) -> tuple[int, ...]:
    """The values C adds for each byte: sign-extended when ``char`` is signed."""
    data = text.encode("utf-8", "surrogateescape")
    if not signed_char:
        return tuple(data)
    return tuple((b - 256) & MASK if b >= 0x80 else b for b in data)


def _accumulate(state: int, chars: Sequence[int]) -> int:
    """``h += rotl(h, 19) + c`` for each byte, in unsigned 32-bit arithmetic."""
    for c in chars:
        state = (state + ((state << 19 | state >> 13) & MASK) + c) & MASK
    return state


def _mix(value: int) -> int:
    value = (value + value * HASH_MULTIPLIER) & MASK
    return _rotl(value, 21)


def peer_hash(name: str, signed_char: bool = True) -> int:
    """The hash Squid gives a peer; it depends on ``name=`` only."""
    return _mix(_accumulate(0, _char_values(name, signed_char)))


def _ieee_div(num: float, den: float) -> float:
    if den != 0.0:
        return num / den
    if num == 0.0 or math.isnan(num):
        return math.nan
    return math.copysign(math.inf, num) * math.copysign(1.0, den)


def _ieee_pow(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except OverflowError:
        return math.inf
    except ValueError:  # negative base with a fractional exponent
        return math.nan


@dataclass(frozen=True)
class CarpPeer:
    """One ``cache_peer ... parent ... carp`` line, as far as CARP cares."""

    name: str
    host: str
    port: int
    weight: int = 1
    carp_key: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.carp_key is not None:
            key = tuple(self.carp_key)
            unknown = [part for part in key if part not in KEY_PARTS]
            if unknown:
                raise ValueError(f"carp-key part(s) {unknown} unknown; use any of {', '.join(KEY_PARTS)}")
            object.__setattr__(self, "carp_key", key)


@dataclass(frozen=True)
class _Ranked:
    peer: CarpPeer
    hash: int
    load_factor: float
    multiplier: float


@dataclass(frozen=True)
class CarpArray:
    """The CARP peers of one Squid, sorted and weighted as ``carpInit()`` does."""

    ranked: tuple[_Ranked, ...]
    signed_char: bool = True
    _by_name: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, peers: Iterable[CarpPeer], signed_char: bool = True) -> CarpArray:
        usable = [p for p in peers if p.weight != 0]
        total = sum(p.weight for p in usable)
        factors = []
        for p in usable:
            lf = p.weight / total
            factors.append(0.0 if math.floor(lf * 1000.0) == 0.0 else lf)
        # glibc's qsort is a merge sort for arrays this small: stable, so ties
        # keep configuration order.
        order = sorted(range(len(usable)), key=lambda i: usable[i].weight)
        k_total = len(usable)
        p_last, x_last, x_product = 0.0, 0.0, 1.0
        ranked = []
        for k, i in enumerate(order, start=1):
            kk1 = float(k_total - k + 1)
            lf = factors[i]
            mult = _ieee_div(kk1 * (lf - p_last), x_product)
            mult += _ieee_pow(x_last, kk1)
            mult = _ieee_pow(mult, 1.0 / kk1)
            x_product *= mult
            x_last, p_last = mult, lf
            peer = usable[i]
            ranked.append(_Ranked(peer, peer_hash(peer.name, signed_char), lf, mult))
        by_name = {r.peer.name: n for n, r in enumerate(ranked)}
        return cls(tuple(ranked), signed_char, by_name)

    @property
    def peers(self) -> tuple[CarpPeer, ...]:
        """Peers in the order Squid walks them."""
        return tuple(r.peer for r in self.ranked)

    def select(self, url: str, down: Iterable[str] = ()) -> CarpPeer | None:
        """The parent Squid picks for ``url``; peers named in ``down`` cannot win."""
        excluded = set(down)
        full_key: tuple[int, ...] | None = None
        user_hash = 0
        best: CarpPeer | None = None
        high = 0.0
        for r in self.ranked:
            if r.peer.carp_key:
                key = _char_values(url_key(url, r.peer.carp_key), self.signed_char)
            else:
                if full_key is None:
                    full_key = _char_values(url_key(url), self.signed_char)
                key = full_key
            user_hash = _accumulate(user_hash, key)
            score = _mix(user_hash ^ r.hash) * r.multiplier
            if score > high and r.peer.name not in excluded:
                best, high = r.peer, score
        return best


@lru_cache(maxsize=64)
def _cached_array(peers: tuple[CarpPeer, ...], signed_char: bool) -> CarpArray:
    return CarpArray.build(peers, signed_char)


def select_parent(
    url: str, peers: Sequence[CarpPeer], down: Iterable[str | CarpPeer] = (), signed_char: bool = True
) -> CarpPeer | None:
    """Which of ``peers`` (in ``squid.conf`` order) Squid forwards ``url`` to.

    ``down`` lists peers (or their names) that are dead or denied by
    ``cache_peer_access``: they still feed the hash but cannot win. ``None``
    means no peer is usable, and Squid falls back to other selection methods.
    """
    names = [d.name if isinstance(d, CarpPeer) else d for d in down]
    return _cached_array(tuple(peers), signed_char).select(url, names)


# ---------------------------------------------------------------- the URL as Squid sees it
#
# Squid (5.7 and 6.13 alike) hashes ``request->effectiveRequestUri()`` (src/HttpRequest.cc), which is
# ``url.absolute()`` built from the *parsed* URL (src/anyp/Uri.cc), not the text the client
# sent. What follows is ``AnyP::Uri::parse()`` and ``absolute()``, step by step, under the
# defaults a carpfarm frontend runs with (no ``append_domain``, ``check_hostnames off``,
# ``uri_whitespace strip``).

# src/anyp/ProtocolType.h, lower-cased as UriScheme::Init() does; with their defaultPort().
SCHEME_PORTS: dict[str, int] = {
    "http": 80,
    "ftp": 21,
    "https": 443,
    "coap": 5683,
    "coaps": 5683,
    "gopher": 70,
    "wais": 210,
    "cache_object": 3128,
    "icp": 0,
    "htcp": 0,
    "urn": 0,
    "whois": 43,
    "icy": 0,
    "tls": 0,
    "ssl": 0,
    "authority_form": 0,
}
DEFAULT_PORTS = {s: p for s, p in SCHEME_PORTS.items() if p}
# The schemes a GET reaches peer selection with (checked on Debian's squid 5.7 and 6.13).
FORWARDED_SCHEMES = ("http", "https", "ftp", "wais", "whois")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-_")
_SPACE = " \t\n\v\f\r"  # C isspace() in the C locale
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_USERINFO_CHARS = frozenset(":-._~!$&'()*+,;=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


@dataclass(frozen=True)
class SquidUrl:
    """A URL after ``AnyP::Uri::parse()``: what ``carp.cc`` reads to build its key."""

    scheme: str  # UriScheme::image(): lower case for the schemes Squid knows, as written otherwise
    host: str  # lower case, trailing dots gone; an IP literal in inet_ntop form ([v6] in brackets)
    port: int  # the effective port: explicit, or the scheme's default
    path: str  # never empty; query and fragment included, percent-encoding untouched
    userinfo: str = ""  # percent-decoded; printed back only for ftp and unknown schemes

    @property
    def default_port(self) -> int:
        return SCHEME_PORTS.get(self.scheme, 0)

    @property
    def authority(self) -> str:
        """``Uri::authority()``: the port only when it is not the scheme's default."""
        return self.host if self.port == self.default_port else f"{self.host}:{self.port}"

    def absolute(self) -> str:
        """``Uri::absolute()``: the effective request URI that CARP hashes without ``carp-key``."""
        userinfo = ""
        if self.userinfo and (self.scheme == "ftp" or self.scheme not in SCHEME_PORTS):
            userinfo = _encode_userinfo(self.userinfo) + "@"
        return f"{self.scheme}://{userinfo}{self.authority}{self.path}"


class UrlRejected(ValueError):
    """Squid's parser refuses this URL (it answers 400 and no parent is selected)."""


def parse_url(url: str) -> SquidUrl:
    """Parse ``url`` the way Squid's ``AnyP::Uri::parse()`` (5.7, 6.13) does; raise ``UrlRejected`` where it fails."""
    scheme, rest = _scheme_and_rest(url)
    authority, path = _authority_and_path(rest)
    userinfo, host_port = _userinfo_and_host(authority)
    found_host, port_text = _host_and_port(host_port)
    host = _checked_host(url, found_host)
    port = SCHEME_PORTS.get(scheme, 0) if port_text is None else _atoi(port_text)
    if not 1 <= port <= 65535:
        raise UrlRejected(f"{url!r}: port {port} outside 1-65535")
    return SquidUrl(scheme, _host_form(host), port, path, userinfo)


def _scheme_and_rest(url: str) -> tuple[str, str]:
    """(the scheme as ``UriScheme::image()`` gives it, what follows its '://'); a scheme Squid
    does not take, or does not forward to a parent, is rejected."""
    colon = url.find(":")
    raw_scheme = url[:colon] if colon > 0 else ""
    if not raw_scheme or len(raw_scheme) > 16 or not raw_scheme[0].isascii() or not raw_scheme[0].isalpha():
        raise UrlRejected(f"{url!r}: no valid scheme (Squid takes 1-16 of [A-Za-z0-9+.-_] then ':')")
    if any(c not in _SCHEME_CHARS for c in raw_scheme):
        raise UrlRejected(f"{url!r}: invalid scheme {raw_scheme!r}")
    lowered = raw_scheme.translate(_ASCII_LOWER)
    scheme = lowered if lowered in SCHEME_PORTS else raw_scheme
    if scheme not in FORWARDED_SCHEMES:
        # urlCheckRequest() answers 501 for the rest (6.13 and Debian's 5.7 refuse gopher with 400);
        # urn: and cache_object: are answered by Squid itself. No parent is selected.
        raise UrlRejected(f"{url!r}: Squid forwards only {', '.join(FORWARDED_SCHEMES)} URLs to a parent")
    rest = url[colon + 1 :]
    if not rest.startswith("//"):
        raise UrlRejected(f"{url!r}: Squid wants '//' after the scheme")
    return scheme, rest[2:]


def _authority_and_path(rest: str) -> tuple[str, str]:
    """The authority runs to the first '/', '?', '#' or white space; the path is the rest, cut at
    the first CR, LF or NUL, made to start with '/', white space stripped (``uri_whitespace strip``)."""
    end = next((n for n, c in enumerate(rest) if c in "/?#\0" or c in _SPACE), len(rest))
    authority, path = rest[:end], rest[end:]
    for stop in "\r\n\0":
        path = path.split(stop, 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    return authority, "".join(c for c in path if c not in _SPACE)


def _userinfo_and_host(authority: str) -> tuple[str, str]:
    """(percent-decoded userinfo, host and port): the userinfo ends at the last '@'."""
    if "@" not in authority:
        return "", authority
    login, _, host_port = authority.rpartition("@")
    return _rfc1738_unescape(login), host_port


def _host_and_port(host_port: str) -> tuple[str, str | None]:
    """(host, port as written or None): '[v6]:port', 'host:port'; several colons without
    brackets are an IPv6 address with no port."""
    if host_port.startswith("["):
        close = host_port.find("]")
        inner, tail = (host_port[1:close], host_port[close:]) if close >= 0 else (host_port[1:], "")
        return inner, tail[tail.index(":") + 1 :] if ":" in tail else None
    if host_port.count(":") == 1:
        host, _, port_text = host_port.partition(":")
        return host, port_text
    return host_port, None


def _checked_host(url: str, found_host: str) -> str:
    """The host in lower case without trailing dots; none, a leading or a doubled dot is rejected."""
    if not found_host:
        raise UrlRejected(f"{url!r}: no host")
    host = found_host.translate(_ASCII_LOWER).rstrip(".")
    if ".." in host or host.startswith("."):
        raise UrlRejected(f"{url!r}: Squid refuses a host with a leading or doubled dot")
    return host


def _atoi(text: str) -> int:
    """C ``atoi()``: leading blanks and a sign, then digits up to the first non-digit; 0 if none.

    glibc's atoi is ``(int) strtol()``: clamped to a long, then wrapped to 32 bits."""
    text = text.lstrip(_SPACE)
    sign = -1 if text[:1] == "-" else 1
    digits = text[1:] if text[:1] in "+-" else text
    n = 0
    while n < len(digits) and "0" <= digits[n] <= "9":
        n += 1
    value = min(sign * int(digits[:n]) if n else 0, 2**63 - 1)
    value = max(value, -(2**63)) & MASK
    return value - 2**32 if value >= 2**31 else value


def _rfc1738_unescape(text: str) -> str:
    """lib/rfc1738.c: '%%' is '%', '%xy' a byte (not %00), anything else stays."""
    data = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    j = 0
    while j < len(data):
        b = data[j]
        if b == 0x25 and data[j + 1 : j + 2] == b"%":
            out.append(b)
            j += 2
            continue
        pair = data[j + 1 : j + 3]
        if b == 0x25 and len(pair) == 2 and all(chr(c) in "0123456789abcdefABCDEF" for c in pair) and int(pair, 16):
            out.append(int(pair, 16))
            j += 3
            continue
        out.append(b)
        j += 1
    return out.decode("utf-8", "surrogateescape")


def _encode_userinfo(text: str) -> str:
    """``Uri::Encode()``: '%XX' for every byte outside userinfo's characters ('%' included)."""
    out = []
    for b in text.encode("utf-8", "surrogateescape"):
        out.append(chr(b) if chr(b) in _USERINFO_CHARS else f"%{b:02X}")
    return "".join(out)


def _host_form(host: str) -> str:
    """``Uri::host()``: an IP address (``getaddrinfo(AI_NUMERICHOST)``) is re-printed by
    ``toHostStr()``; IPv4 (and IPv4-mapped IPv6) as a dotted quad, IPv6 as ``[inet_ntop]``.
    The "any" address and everything else stay as written."""
    packed = _inet_aton(host)
    if packed is None:
        packed = _inet6(host)
    if packed is None or not any(packed):
        return host
    if len(packed) == 4 or packed[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in packed[-4:])
    return f"[{inet_ntop6(packed)}]"


def _inet_aton(text: str) -> bytes | None:
    """glibc's ``inet_aton_exact()``: 1-4 parts, each decimal, 0-octal or 0x-hex; the last fills the rest."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            digits, base = part[2:], 16
        elif part.startswith("0"):
            digits, base = part[1:] or "0", 8
        else:
            digits, base = part, 10
        allowed = "0123456789abcdefABCDEF"[: 16 + 6 if base == 16 else base]
        if not digits or any(c not in allowed for c in digits):
            return None
        values.append(int(digits, base))
    last = values.pop()
    if any(v > 0xFF for v in values) or last >= 1 << (8 * (4 - len(values))):
        return None
    number = last
    for n, v in enumerate(values):
        number |= v << (24 - 8 * n)
    return number.to_bytes(4, "big")


def _inet6(text: str) -> bytes | None:
    """``inet_pton(AF_INET6)``, plus a numeric ``%scope`` that getaddrinfo accepts and inet_ntop drops."""
    address, percent, scope = text.partition("%")
    if percent and not (scope.isascii() and scope.isdigit() and int(scope) <= MASK):
        return None  # interface names depend on the host Squid runs on; not modelled
    if ":" not in address or not all(c in "0123456789abcdef:." for c in address):
        return None
    try:
        return ipaddress.IPv6Address(address).packed
    except ValueError:
        return None


def inet_ntop6(packed: bytes) -> str:
    """glibc's ``inet_ntop(AF_INET6)``: the longest run (>= 2) of zero words is '::', the first
    of equal runs; an IPv4-compatible or -mapped address ends in a dotted quad."""
    words = [int.from_bytes(packed[n : n + 2], "big") for n in range(0, 16, 2)]
    best, best_len, run, run_len = -1, 0, -1, 0
    for n, w in enumerate(words):
        if w == 0:
            run, run_len = (n, 1) if run < 0 else (run, run_len + 1)
            if run_len > best_len:
                best, best_len = run, run_len
        else:
            run, run_len = -1, 0
    if best_len < 2:
        best, best_len = -1, 0
    out = ""
    n = 0
    while n < 8:
        if n == best:
            out += "::"
            n += best_len
            continue
        if n > 0 and not out.endswith("::"):
            out += ":"
        if n == 6 and best == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            out += ".".join(str(b) for b in packed[12:])
            break
        out += f"{words[n]:x}"
        n += 1
    return out


def split_url(url: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port or None when it is the default, path) of ``url`` as Squid parses it."""
    parsed = parse_url(url)
    return parsed.scheme, parsed.host, None if parsed.port == parsed.default_port else parsed.port, parsed.path


def url_key(url: str, carp_key: Sequence[str] | None = None) -> str:
    """The key Squid hashes: the effective request URI, or the ``carp-key=`` parts (src/carp.cc)."""
    parsed = parse_url(url)
    if carp_key:
        parts = set(carp_key)
        key = ""
        if "scheme" in parts and parsed.scheme:
            key += parsed.scheme + "://"
        if "host" in parts:
            key += parsed.host
        if "port" in parts:
            key += f":{parsed.port}"
        path, question, params = parsed.path.partition("?")
        if "path" in parts:
            key += path
        if "params" in parts and question:
            key += "?" + params
        if key:
            return key
    return parsed.absolute()


# ---------------------------------------------------------------- many URLs at once
#
# ``CarpArray.select`` walks one URL through every peer: per peer, the URL key is hashed on
# top of the previous peer's state. For thousands of URLs and hundreds of peers that is
# hundreds of millions of byte steps, too slow one at a time in Python. ``select_batch``
# computes the same numbers for many URLs at once: each URL is a lane of one Python integer
# (a "SIMD within a register" vector), so one integer operation advances every lane. Per
# lane, the low 32 bits hold the hash state and the bits above are scratch room that keeps
# carries from reaching the next lane.
#
# The key bytes are walked in 40-bit lanes (the cost of an integer operation grows with its
# bits, and the walk is nearly all of the work):
#
# * ``rotl(h, 19)`` is ``((h & 0x1FFF) << 19) | ((h >> 13) & 0x7FFFF)``: masking before the
#   left shift keeps it inside the lane, masking after the right shift drops what comes down
#   from the next lane;
# * ``h + rotl(h, 19) + c`` adds less than 2**33 per byte; the bits above 32 never reach the
#   low 32 (carries only go up) and the rotation reads bits 0-31 only, so the lanes are masked
#   back to 32 bits only every ``_UNMASKED`` bytes, before they could spill.
#
# After each peer's walk the state is widened to 64-bit lanes (a copy of bytes), where
# ``mix`` is ``(x * 0x62531966) & MASK`` (below 2**63) then ``rotl(., 21)`` as
# ``((x << 21) | (x >> 11)) & MASK`` (the high half of every lane is zero, so neither shift
# brings in a neighbour's bits below bit 32), and the scores are compared.
#
# The state after peer k does not depend on which peers came before, only on k and the key,
# so one walk serves every array (old farm, new farm, new farm with peers down) in a batch.

_LANE = 64
_NARROW = 5  # bytes per lane of the walk: 32 bits of state, 8 of carry room
_UNMASKED = 64  # bytes walked between masks: a lane stays below 2**32 + 64 * 2**33 < 2**40
_MIX = 1 + HASH_MULTIPLIER
_CHUNK = 512  # URLs per vector: big enough to amortise, small enough to report progress
# Byte steps (lanes x key length x peers) from which forking workers pays: about 0.1 s of work.
PARALLEL_WORK = 10_000_000
Job = tuple["CarpArray", Iterable[str]]


def select_batch(
    jobs: Sequence[Job],
    urls: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    parallel_from: int = PARALLEL_WORK,
) -> list[list[CarpPeer | None]]:
    """``[[array.select(url, down) for url in urls] for array, down in jobs]``, computed fast.

    Arrays whose peers share one carp-key (as every carpfarm farm does) are computed on
    vectors of URLs; an array mixing carp-keys falls back to ``select``. ``progress`` is
    called with (URLs done, URLs in all) after every few hundred URLs. When the vectors add
    up to ``parallel_from`` byte steps or more, they are shared among the CPU cores.
    """
    results: list[list[CarpPeer | None]] = [[None] * len(urls) for _ in jobs]
    plans = _plans(jobs)
    total, done = len(urls) * len(plans), 0
    vectors: list[_Vector] = []
    for (spec, signed), members in plans.items():
        if spec == _MIXED:
            for n in members:
                results[n] = _select_each(jobs[n], urls)
            done += len(urls)
            if progress:
                progress(done, total)
            continue
        vectors += _vectors(members, [_char_values(url_key(u, spec), signed) for u in urls])
    workers = usable_cores() if _work(jobs, vectors) >= parallel_from else 1
    vectors.sort(key=lambda v: -len(v.lanes))  # the biggest first: the cores finish together

    def run(index: int) -> list[list[int]]:
        return _select_lanes([jobs[n] for n in vectors[index].members], vectors[index].keys)

    for index, winners in fork_map(run, len(vectors), workers):
        _record(results, jobs, vectors[index], winners)
        done += len(vectors[index].lanes)
        if progress:
            progress(done, total)
    return results


_MIXED = ("mixed",)  # the carp-key "spec" of an array whose peers do not share one
_Plan = tuple[tuple[str, ...] | None, bool]  # (carp-key spec, signed char): one walk of the keys serves a plan


def _plans(jobs: Sequence[Job]) -> dict[_Plan, list[int]]:
    """The jobs' indices grouped by what their URL keys are walked with."""
    plans: dict[_Plan, list[int]] = {}
    for n, (array, _) in enumerate(jobs):
        plans.setdefault((_key_spec(array), array.signed_char), []).append(n)
    return plans


def _key_spec(array: CarpArray) -> tuple[str, ...] | None:
    """The carp-key all of the array's peers share (None: the whole URL), or ``_MIXED``."""
    specs = {r.peer.carp_key or None for r in array.ranked}
    if len(specs) > 1:
        return _MIXED
    return specs.pop() if specs else None


def _select_each(job: Job, urls: Sequence[str]) -> list[CarpPeer | None]:
    """One URL at a time, with ``select`` (for an array mixing carp-keys)."""
    array, down = job
    excluded = set(down)
    return [array.select(u, excluded) for u in urls]


def _work(jobs: Sequence[Job], vectors: Sequence[_Vector]) -> int:
    """Byte steps the vectors take in all: lanes x key length x the longest walk through peers."""
    walk = max((len(jobs[n][0].ranked) for v in vectors for n in v.members), default=0)
    return sum(len(v.lanes) * len(v.keys[0]) for v in vectors) * walk


def _record(
    results: list[list[CarpPeer | None]], jobs: Sequence[Job], vector: _Vector, winners: Sequence[Sequence[int]]
) -> None:
    """Write a vector's winners (a rank per lane, -1 for none) into its jobs' results, as peers."""
    for n, column in zip(vector.members, winners, strict=True):
        ranked, chosen = jobs[n][0].ranked, results[n]
        for i, k in zip(vector.lanes, column, strict=True):
            chosen[i] = None if k < 0 else ranked[k].peer


@dataclass(frozen=True)
class _Vector:
    """URL keys of one length, one lane each, to walk through the arrays ``members``."""

    members: list[int]  # indices of jobs
    lanes: list[int]  # indices of URLs
    keys: list[tuple[int, ...]]


def _vectors(members: list[int], keys: Sequence[tuple[int, ...]]) -> list[_Vector]:
    """The URL keys in vectors of at most ``_CHUNK`` lanes, one key length per vector."""
    by_length: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(i)
    return [
        _Vector(members, lanes, [keys[i] for i in lanes])
        for length in sorted(by_length)
        for lanes in (by_length[length][start : start + _CHUNK] for start in range(0, len(by_length[length]), _CHUNK))
    ]


def _pack(values: Sequence[int]) -> int:
    """One 64-bit lane per value, the first value in the lowest lane."""
    return int.from_bytes(array_module("Q", values).tobytes(), "little")


def _unpack(vector: int, lanes: int) -> list[int]:
    return array_module("Q", vector.to_bytes(8 * lanes, "little")).tolist()


def _pack_narrow(values: Sequence[int]) -> int:
    """One ``_NARROW``-byte lane per value (below 2**32), the first value in the lowest lane."""
    return int.from_bytes(b"".join(v.to_bytes(_NARROW, "little") for v in values), "little")


def _widen(vector: int, lanes: int) -> int:
    """The same values (below 2**32) from ``_NARROW``-byte lanes into 64-bit lanes."""
    narrow = vector.to_bytes(_NARROW * lanes, "little")
    wide = bytearray(8 * lanes)
    for byte in range(4):
        wide[byte::8] = narrow[byte::_NARROW]
    return int.from_bytes(wide, "little")


def _select_lanes(jobs: Sequence[Job], keys: Sequence[Sequence[int]]) -> list[list[int]]:
    """The winners of every job for URL keys of one length, one lane per key: their index in
    the job's ``ranked`` peers, -1 for none."""
    lanes = len(keys)
    ones = _pack([1] * lanes)
    mask = ones * MASK
    narrow_ones = _pack_narrow([1] * lanes)
    narrow_mask, low13, low19 = narrow_ones * MASK, narrow_ones * 0x1FFF, narrow_ones * 0x7FFFF
    columns = [_pack_narrow([key[j] for key in keys]) for j in range(len(keys[0]))]
    blocks = [columns[start : start + _UNMASKED] for start in range(0, len(columns), _UNMASKED)]
    trackers = [_Tracker(array, set(down), lanes, ones) for array, down in jobs]
    peers = max(len(array.ranked) for array, _ in jobs)
    walked = 0
    mixed: dict[int, int] = {}
    for k in range(peers):
        for block in blocks:
            for c in block:
                walked = walked + (((walked & low13) << 19) | ((walked >> 13) & low19)) + c
            walked &= narrow_mask
        state = _widen(walked, lanes)
        mixed.clear()
        for tracker in trackers:
            if k >= len(tracker.ranked):
                continue
            peer_hash_k = tracker.ranked[k].hash
            combined = mixed.get(peer_hash_k)
            if combined is None:
                x = ((state ^ (ones * peer_hash_k)) * _MIX) & mask
                combined = mixed[peer_hash_k] = ((x << 21) | (x >> 11)) & mask
            tracker.offer(k, combined)
    return [t.winners() for t in trackers]


class _Tracker:
    """The running best score per lane of one array, as ``select``'s ``high``/``best``."""

    def __init__(self, array: CarpArray, excluded: set[str], lanes: int, ones: int) -> None:
        self.ranked = array.ranked
        self.excluded = excluded
        self.lanes, self.ones = lanes, ones
        multipliers = {r.multiplier for r in array.ranked}
        m = next(iter(multipliers)) if len(multipliers) == 1 else math.nan
        # One common, ordinary multiplier keeps the order of the combined hashes (a product
        # with m rounds monotonically and cannot merge two integers below 2**32), so the best
        # score is the largest combined hash, compared in the vector. Otherwise, in floats.
        self.integers = 1e-200 < m < 1e200
        self.best, self.index = 0, ones * MASK  # index MASK: nobody yet
        self.high = [0.0] * lanes
        self.chosen = [-1] * lanes

    def offer(self, k: int, combined: int) -> None:
        if self.ranked[k].peer.name in self.excluded:
            return
        if self.integers:
            # Bit 32 of (combined + 2**32 - 1 - best) is set where combined > best.
            wins = (((combined + self.ones * MASK - self.best) >> 32) & self.ones) * MASK
            self.best ^= (self.best ^ combined) & wins
            self.index ^= (self.index ^ (self.ones * k)) & wins
            return
        m = self.ranked[k].multiplier
        high, chosen = self.high, self.chosen
        for i, h in enumerate(_unpack(combined, self.lanes)):
            score = h * m
            if score > high[i]:
                high[i], chosen[i] = score, k
        # A multiplier of inf or nan compares like Squid's doubles: nan never wins.

    def winners(self) -> list[int]:
        chosen = _unpack(self.index, self.lanes) if self.integers else self.chosen
        return [-1 if k == MASK else k for k in chosen]
