"""The URL as Squid sees it: the key CARP hashes for a URL (``url_key``).

Squid (5.7 and 6.13 alike) hashes ``request->effectiveRequestUri()`` (src/HttpRequest.cc), which is
``url.absolute()`` built from the *parsed* URL (src/anyp/Uri.cc), not the text the client sent.
What follows is ``AnyP::Uri::parse()`` and ``absolute()``, step by step, under the defaults a
carpfarm frontend runs with (no ``append_domain``, ``check_hostnames off``, ``uri_whitespace strip``).
A CONNECT request's key is its authority, ``host:port`` (``parse_authority``, ``url_key(connect=True)``),
and a target of 8192 bytes or more is refused ("URL too large"), CONNECT's too.

Between the SQUID_5_7 and SQUID_6_13 tags, the two changes to ``Uri.cc`` that reach the key
(userinfo bytes >= 0x80 printed as ``%FFFFFFC3`` by upstream 5.7, fixed by #1367; gopher removed)
do not show on Debian 12's 5.7, whose answers match Debian 13's 6.13; ``tests/carp/test_carp_squid.py``
checks both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

_UINT32 = 0xFFFFFFFF  # C unsigned int: atoi()'s wrap to an int, the largest scope id
MAX_URL = 8192  # Squid refuses a request target of MAX_URL bytes or more ("URL too large")

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
    _check_length(url)
    scheme, rest = _scheme_and_rest(url)
    authority, path = _authority_and_path(rest)
    userinfo, host_port = _userinfo_and_host(authority)
    found_host, port_text = _host_and_port(host_port)
    host = _checked_host(url, found_host)
    port = SCHEME_PORTS.get(scheme, 0) if port_text is None else _atoi(port_text)
    if not 1 <= port <= 65535:
        raise UrlRejected(f"{url!r}: port {port} outside 1-65535")
    return SquidUrl(scheme, _host_form(host), port, path, userinfo)


def parse_authority(target: str) -> SquidUrl:
    """Parse CONNECT's authority-form ``target`` as ``AnyP::Uri::parse()`` (5.7, 6.13) does.

    ``sscanf(target, "[%[^]]]:%d")``, else ``sscanf(target, "%[^:]:%d")``: the host runs to the
    first ']' (bracketed) or ':', and the port is 443 unless digits follow the colon (as
    ``%d`` reads them: like ``atoi()``, but no digit leaves 443). Then the host as for a URL
    (lower case, trailing dots gone, no leading or doubled dot, an IP address re-printed); no
    scheme (``UriScheme::image()`` of PROTO_NONE is empty) and no path."""
    _check_length(target)
    if target[:1] == "[" and target[1:2] not in ("", "]"):
        close = target.find("]")
        found = target[1:close] if close >= 0 else target[1:]
        tail = target[close:] if close >= 0 else ""
        port_text = tail[2:] if tail[:2] == "]:" else None
    else:
        found = target.split(":", 1)[0]
        if not found:
            raise UrlRejected(f"{target!r}: CONNECT wants host[:port]")
        port_text = target[len(found) + 1 :] if target[len(found) : len(found) + 1] == ":" else None
    host = "".join(c for c in found if c not in _SPACE).translate(_ASCII_LOWER).rstrip(".")
    if ".." in host or host.startswith("."):
        raise UrlRejected(f"{target!r}: Squid refuses a host with a leading or doubled dot")
    port = _atoi(port_text) if port_text is not None and _has_digits(port_text) else 443
    if not 1 <= port <= 65535:
        raise UrlRejected(f"{target!r}: port {port} outside 1-65535")
    return SquidUrl("", _host_form(host), port, "")


def _has_digits(text: str) -> bool:
    """Whether ``sscanf("%d")`` converts ``text``: blanks, a sign, then at least one digit."""
    text = text.lstrip(_SPACE)
    text = text[1:] if text[:1] in ("+", "-") else text
    return bool(text) and "0" <= text[0] <= "9"


def _check_length(target: str) -> None:
    size = len(target.encode("utf-8", "surrogateescape"))
    if size >= MAX_URL:
        raise UrlRejected(f"{target[:80]!r}...: {size} bytes; Squid refuses URLs of {MAX_URL} bytes or more")


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
    value = max(value, -(2**63)) & _UINT32
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
    if percent and not (scope.isascii() and scope.isdigit() and int(scope) <= _UINT32):
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


def url_key(url: str, carp_key: Sequence[str] | None = None, connect: bool = False) -> str:
    """The key Squid hashes: the effective request URI, or the ``carp-key=`` parts (src/carp.cc).

    ``connect``: ``url`` is a CONNECT request's authority (``host:port``), whose effective URI is
    ``host:port``, the port always printed (``HttpRequest::effectiveRequestUri()``)."""
    parsed = parse_authority(url) if connect else parse_url(url)
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
    return f"{parsed.host}:{parsed.port}" if connect else parsed.absolute()
