"""WCCPv2 messages as they travel on the wire (UDP port 2048): framed, decoded, built and signed.

The protocol of draft-wilson-wccp-v2 (and its rev1 update), as far as a router and its web
caches need it: a message is an 8-byte header (type, version, length) and its components, each
a type, a length and a body (``bodies`` reads what each says). Every message may carry MD5
security: the digest over the password, NUL-padded to 8 bytes, followed by the whole message with
the digest zeroed. Used by the tests and by the lab's router stand-in (roles/lab_wccp_router),
whose side of the protocol is built here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from carpfarm.wccp.bodies import CAPABILITY_IDS, FLAG_HISTORICAL, FLAG_MASK_DATA, Service, WccpMessage, read_component

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
TYPE_IDS = {name: number for number, name in MESSAGE_TYPES.items()}
COMPONENT_IDS = {name: number for number, name in COMPONENTS.items()}
# Capability values: forwarding and return methods, assignment methods (bit masks).
GRE, L2 = 1, 2
HASH, MASK = 1, 2
MD5_LENGTH = 16


def decode(packet: bytes) -> WccpMessage:
    """Decode a WCCPv2 message; raises ValueError when it is not one."""
    if len(packet) < 8:
        raise ValueError(f"{len(packet)} bytes: too short for a WCCPv2 header")
    kind, version, length = struct.unpack("!IHH", packet[:8])
    message = WccpMessage(MESSAGE_TYPES.get(kind, f"type {kind}"), version, length)
    if 8 + length != len(packet):
        raise ValueError(f"header says {length} bytes of components, the packet has {len(packet) - 8}")
    for name, body in components(packet):
        message.components.append(name)
        read_component(message, name, body)
    return message


def components(packet: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, body) of each component after the 8-byte header; one that overruns is a ValueError."""
    offset = 8
    while offset + 4 <= len(packet):
        ctype, clen = struct.unpack("!HH", packet[offset : offset + 4])
        body = packet[offset + 4 : offset + 4 + clen]
        if len(body) != clen:
            raise ValueError(f"component {ctype} runs past the end of the packet")
        yield COMPONENTS.get(ctype, f"component {ctype}"), body
        offset += 4 + clen


def md5_matches(packet: bytes, password: str) -> bool:
    """Whether the MD5 security component was made with ``password``.

    WCCPv2: MD5 over the password NUL-padded to 8 bytes, then the whole message with
    the 16 MD5 bytes zeroed."""
    start = _md5_offset(packet)
    if start is None:
        return False
    zeroed = packet[:start] + bytes(MD5_LENGTH) + packet[start + MD5_LENGTH :]
    return _md5(password, zeroed) == packet[start : start + MD5_LENGTH]


# ---------------------------------------------------------------- building messages (a router's side)


def _addr(address: str) -> bytes:
    import socket

    return socket.inet_aton(address)


def component(name: str, body: bytes) -> bytes:
    """A component: its type, the length of its body, its body."""
    return struct.pack("!HH", COMPONENT_IDS[name], len(body)) + body


def message(kind: str, *components: bytes) -> bytes:
    """A whole message: type, version 2.0, the length of its components, the components."""
    body = b"".join(components)
    return struct.pack("!IHH", TYPE_IDS[kind], VERSION_2, len(body)) + body


def security(password: str | None) -> bytes:
    """Security Info: none, or MD5 with the digest zeroed (``sign`` fills it in)."""
    if not password:
        return component("security_info", struct.pack("!I", 0))
    return component("security_info", struct.pack("!I", 1) + bytes(MD5_LENGTH))


def _md5(password: str, zeroed: bytes) -> bytes:
    import hashlib

    key = password.encode()[:8].ljust(8, b"\0")
    return hashlib.md5(key + zeroed, usedforsecurity=False).digest()


def _md5_offset(packet: bytes) -> int | None:
    """Where the MD5 digest of ``packet`` starts, None without MD5 security."""
    offset = 8
    while offset + 4 <= len(packet):
        ctype, clen = struct.unpack("!HH", packet[offset : offset + 4])
        if ctype == 0 and clen >= 4 + MD5_LENGTH and struct.unpack("!I", packet[offset + 4 : offset + 8])[0] == 1:
            return offset + 8
        offset += 4 + clen
    return None


def sign(packet: bytes, password: str | None) -> bytes:
    """``packet`` with its MD5 digest filled in; unchanged without a password or MD5 component."""
    start = _md5_offset(packet)
    if not password or start is None:
        return packet
    zeroed = packet[:start] + bytes(MD5_LENGTH) + packet[start + MD5_LENGTH :]
    return packet[:start] + _md5(password, zeroed) + packet[start + MD5_LENGTH :]


def service_body(service: Service) -> bytes:
    """Service Info's body for ``service`` (as its caches announce it)."""
    ports = list(service.ports)[:8] + [0] * (8 - len(service.ports[:8]))
    kind = 0 if service.kind == "standard" else 1
    return struct.pack("!BBBBI8H", kind, service.id, service.priority, service.protocol, service.flags, *ports)


def router_identity(router: str, receive_id: int, sent_to: str, received_from: list[str]) -> bytes:
    """Router Identity Info: the router's address and receive id, where the message goes, and the
    caches the router has heard from."""
    addresses = b"".join(_addr(a) for a in received_from)
    body = _addr(router) + struct.pack("!I", receive_id) + _addr(sent_to) + struct.pack("!I", len(received_from))
    return component("router_id_info", body + addresses)


def view_identity(identity: bytes) -> bytes:
    """A cache's identity element as a router lists it in its view: as the cache sent it, with the
    U flag set on mask data (its hash data is historical; Squid reads the element whole only then)."""
    (flags,) = struct.unpack("!H", identity[6:8])
    if flags & FLAG_MASK_DATA:
        flags |= FLAG_HISTORICAL
    return identity[:6] + struct.pack("!H", flags) + identity[8:]


def router_view(change: int, key: tuple[str, int], routers: list[str], identities: list[bytes]) -> bytes:
    """Router View Info: the member change number, the assignment key, the routers of the service
    group and each cache's identity element."""
    body = struct.pack("!I", change) + _addr(key[0]) + struct.pack("!I", key[1])
    body += struct.pack("!I", len(routers)) + b"".join(_addr(r) for r in routers)
    body += struct.pack("!I", len(identities)) + b"".join(view_identity(i) for i in identities)
    return component("router_view_info", body)


def capability_info(forwarding: int, assignment: int, returning: int) -> bytes:
    """Capability Info: the forwarding, assignment and return methods the router supports (bit masks)."""
    elements = [("forwarding_method", forwarding), ("assignment_method", assignment), ("return_method", returning)]
    return component(
        "capability_info", b"".join(struct.pack("!HHI", CAPABILITY_IDS[name], 4, value) for name, value in elements)
    )
