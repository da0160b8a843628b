"""Decode WCCPv2 messages as they travel on the wire (UDP port 2048).

Enough of the protocol (draft-wilson-wccp-v2) to check what a cache tells its router
in HERE_I_AM: the message type and version, each component, the service it offers,
its identity (address, weight) and its security option. Used by the tests and by the
lab's fake router; it never answers for a real router.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

WCCP_PORT = 2048
VERSION_2 = 0x0200
MESSAGE_TYPES = {10: "HERE_I_AM", 11: "I_SEE_YOU", 12: "REDIRECT_ASSIGN", 13: "REMOVAL_QUERY"}
COMPONENTS = {
    0: "security_info",
    1: "service_info",
    2: "router_id_info",
    3: "wc_id_info",
    4: "router_view_info",
    5: "wc_view_info",
    6: "redirect_assignment",
    7: "query_info",
    8: "capability_info",
    13: "alt_assignment",
    14: "assign_map",
    15: "command_extension",
}
SECURITY = {0: "none", 1: "md5"}
CAPABILITIES = {1: "forwarding_method", 2: "assignment_method", 3: "return_method"}


@dataclass
class Service:
    kind: str  # "standard" or "dynamic"
    id: int
    priority: int
    protocol: int
    flags: int
    ports: tuple[int, ...]


@dataclass
class WccpMessage:
    """What one WCCPv2 message says, component by component."""

    type: str
    version: int
    length: int
    components: list[str] = field(default_factory=list)
    security: str = "none"
    md5: bytes = b""
    service: Service | None = None
    cache_address: str = ""
    weight: int | None = None
    capabilities: dict[str, int] = field(default_factory=dict)


def _ip(raw: bytes) -> str:
    return ".".join(str(b) for b in raw[:4])


def decode(packet: bytes) -> WccpMessage:
    """Decode a WCCPv2 message; raises ValueError when it is not one."""
    if len(packet) < 8:
        raise ValueError(f"{len(packet)} bytes: too short for a WCCPv2 header")
    kind, version, length = struct.unpack("!IHH", packet[:8])
    message = WccpMessage(MESSAGE_TYPES.get(kind, f"type {kind}"), version, length)
    if 8 + length != len(packet):
        raise ValueError(f"header says {length} bytes of components, the packet has {len(packet) - 8}")
    for name, body in _components(packet):
        message.components.append(name)
        _read_component(message, name, body)
    return message


def _components(packet: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, body) of each component after the 8-byte header; one that overruns is a ValueError."""
    offset = 8
    while offset + 4 <= len(packet):
        ctype, clen = struct.unpack("!HH", packet[offset : offset + 4])
        body = packet[offset + 4 : offset + 4 + clen]
        if len(body) != clen:
            raise ValueError(f"component {ctype} runs past the end of the packet")
        yield COMPONENTS.get(ctype, f"component {ctype}"), body
        offset += 4 + clen


def _read_component(message: WccpMessage, name: str, body: bytes) -> None:
    """Fill in what component ``name`` tells; components carpfarm does not check are only listed."""
    if name == "security_info":
        message.security, message.md5 = _security(body)
    elif name == "service_info":
        message.service = _service(body)
    elif name == "wc_id_info":
        message.cache_address = _ip(body[:4])
        message.weight = _weight(body, message.weight)
    elif name == "capability_info":
        message.capabilities.update(_capabilities(body))


def _security(body: bytes) -> tuple[str, bytes]:
    """(the security option's name, the MD5 digest sent, empty for none)."""
    (option,) = struct.unpack("!I", body[:4])
    return SECURITY.get(option, str(option)), body[4:20]


def _service(body: bytes) -> Service:
    stype, sid, priority, protocol, flags = struct.unpack("!BBBBI", body[:8])
    ports = tuple(p for p in struct.unpack("!8H", body[8:24]) if p)
    return Service("standard" if stype == 0 else "dynamic", sid, priority, protocol, flags, ports)


def _weight(body: bytes, known: int | None) -> int | None:
    """The web-cache identity element's weight, ``known`` when the element is too short to hold one.

    The element is address, hash revision, flags, then the assignment's part (hash: 32 bytes of
    buckets; mask: the mask/value set), then weight and status last."""
    if len(body) < 12:
        return known
    (weight,) = struct.unpack("!H", body[-4:-2])
    return int(weight)


def _capabilities(body: bytes) -> dict[str, int]:
    """Each capability element's name and value."""
    found: dict[str, int] = {}
    pos = 0
    while pos + 8 <= len(body):
        cap, cap_len, value = struct.unpack("!HHI", body[pos : pos + 8])
        found[CAPABILITIES.get(cap, str(cap))] = value
        pos += 4 + cap_len
    return found


def md5_matches(packet: bytes, password: str) -> bool:
    """Whether the MD5 security component was made with ``password``.

    WCCPv2: MD5 over the password NUL-padded to 8 bytes, then the whole message with
    the 16 MD5 bytes zeroed."""
    import hashlib

    offset = 8
    while offset + 4 <= len(packet):
        ctype, clen = struct.unpack("!HH", packet[offset : offset + 4])
        if ctype == 0 and clen >= 20 and struct.unpack("!I", packet[offset + 4 : offset + 8])[0] == 1:
            start = offset + 8
            sent = packet[start : start + 16]
            zeroed = packet[:start] + bytes(16) + packet[start + 16 :]
            key = password.encode()[:8].ljust(8, b"\0")
            return hashlib.md5(key + zeroed, usedforsecurity=False).digest() == sent
        offset += 4 + clen
    return False
