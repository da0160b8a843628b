"""What a WCCPv2 message says, component by component: each component's body, decoded.

What a cache says in HERE_I_AM (its service, identity, view and capabilities), what a router
answers in I_SEE_YOU (its identity, and its view: the member change number and the caches it
sees), and the assignment the designated cache sends in REDIRECT_ASSIGN (hash: 256 buckets over
the caches; mask: mask/value sets). ``wire`` frames the message and hands each body to
``read_component``. Standard library only: copied with ``wire`` and ``router`` onto the lab's
router stand-in (roles/lab_wccp_router).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SECURITY = {0: "none", 1: "md5"}
CAPABILITIES = {1: "forwarding_method", 2: "assignment_method", 3: "return_method"}
CAPABILITY_IDS = {name: number for number, name in CAPABILITIES.items()}
BUCKETS = 256
MASK_ASSIGNMENT = 1  # the Alternate Assignment's type for a mask/value set list
# A Web-Cache Identity Element's flags: the assignment data type is bits 1-2 (0 hash, 1 mask);
# bit 0 (U) says the element's hash data is historical, which it is for a mask-assigned cache.
FLAG_MASK_DATA = 0x0002
FLAG_HISTORICAL = 0x0001


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
    identity: bytes = b""  # the Web-Cache Identity Element as sent (a router reflects it in its view)
    router_id: str = ""  # I_SEE_YOU: the router's identity and the id it counts messages with
    receive_id: int = 0
    view: View | None = None  # HERE_I_AM: the cache's view; I_SEE_YOU: the router's view
    assignment: Assignment | None = None  # REDIRECT_ASSIGN


@dataclass
class View:
    """A Web-Cache View (HERE_I_AM) or a Router View (I_SEE_YOU): who the sender sees."""

    change_number: int
    routers: list[tuple[str, int]]  # (router, receive id); a router view lists routers alone (id 0)
    caches: list[str]
    key: tuple[str, int] | None = None  # a router view's assignment key (address, change number)
    weights: dict[str, int] = field(default_factory=dict)  # a router view's caches (hash identity elements)


@dataclass
class Assignment:
    """What the designated cache tells the routers in REDIRECT_ASSIGN."""

    method: str  # "hash" or "mask"
    key: tuple[str, int]  # (the designated cache's address, its assignment change number)
    routers: list[tuple[str, int, int]]  # (router, receive id, member change number)
    caches: list[str]  # hash: the caches the buckets index
    buckets: list[int] = field(default_factory=list)  # hash: cache index per bucket (0xFF: unassigned)
    masks: tuple[int, int, int, int] = (0, 0, 0, 0)  # mask: source IP, destination IP, source port, destination port
    values: list[tuple[tuple[int, int, int, int], str]] = field(default_factory=list)  # mask: (values, cache)

    def owner_of_bucket(self) -> list[str | None]:
        """Hash: the cache each bucket goes to, None when unassigned."""
        return [self.caches[b] if b < len(self.caches) else None for b in self.buckets]


def _ip(raw: bytes) -> str:
    return ".".join(str(b) for b in raw[:4])


def read_component(message: WccpMessage, name: str, body: bytes) -> None:
    """Fill in what component ``name`` tells; components carpfarm does not check are only listed."""
    if name == "security_info":
        message.security, message.md5 = _security(body)
    elif name == "service_info":
        message.service = _service(body)
    elif name == "wc_id_info":
        message.cache_address = _ip(body[:4])
        message.weight = _weight(body, message.weight)
        message.identity = body
    elif name == "capability_info":
        message.capabilities.update(_capabilities(body))
    elif name == "router_id_info":
        message.router_id, message.receive_id = _ip(body[:4]), struct.unpack("!I", body[4:8])[0]
    elif name == "wc_view_info":
        message.view = _cache_view(body)
    elif name == "router_view_info":
        message.view = _router_view(body)
    elif name == "redirect_assignment":
        message.assignment = _hash_assignment(body)
    elif name == "alt_assignment":
        message.assignment = _alt_assignment(body)


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


# ---------------------------------------------------------------- views and assignments


def _u32(body: bytes, at: int) -> int:
    return int(struct.unpack("!I", body[at : at + 4])[0])


def _need(body: bytes, end: int, what: str) -> None:
    if len(body) < end:
        raise ValueError(f"{what} runs past the end of its component ({end} > {len(body)} bytes)")


def _cache_view(body: bytes) -> View:
    """Web-Cache View Info: change number, (router, receive id) pairs, cache addresses."""
    _need(body, 8, "web-cache view")
    change, routers = _u32(body, 0), _u32(body, 4)
    at = 8 + 8 * routers
    _need(body, at + 4, "web-cache view's router list")
    pairs = [(_ip(body[8 + 8 * n : 12 + 8 * n]), _u32(body, 12 + 8 * n)) for n in range(routers)]
    caches = _u32(body, at)
    _need(body, at + 4 + 4 * caches, "web-cache view's cache list")
    return View(change, pairs, [_ip(body[at + 4 + 4 * n :]) for n in range(caches)])


def identity_element_size(body: bytes, at: int) -> int:
    """The size of the Web-Cache Identity Element at ``at``: 44 bytes for hash data, and for mask
    data 16 + its mask/value sets (each mask element 16 bytes plus 16 per value)."""
    _need(body, at + 8, "web-cache identity element")
    (flags,) = struct.unpack("!H", body[at + 6 : at + 8])
    if not flags & FLAG_MASK_DATA:
        return 44
    size, elements, pos = 12, _u32(body, at + 8), at + 12
    for _ in range(elements):
        _need(body, pos + 16, "mask element")
        values = _u32(body, pos + 12)
        size += 16 + 16 * values
        pos += 16 + 16 * values
    return size + 4  # weight and status


def _router_view(body: bytes) -> View:
    """Router View Info: member change number, assignment key, routers, and each cache's identity element."""
    _need(body, 16, "router view")
    change, key_ip, key_change, routers = _u32(body, 0), _ip(body[4:8]), _u32(body, 8), _u32(body, 12)
    at = 16 + 4 * routers
    _need(body, at + 4, "router view's router list")
    listed = [(_ip(body[16 + 4 * n :]), 0) for n in range(routers)]
    caches, weights = [], {}
    count, at = _u32(body, at), at + 4
    for _ in range(count):
        size = identity_element_size(body, at)
        _need(body, at + size, "web-cache identity element")
        address = _ip(body[at : at + 4])
        caches.append(address)
        weights[address] = int(struct.unpack("!H", body[at + size - 4 : at + size - 2])[0])
        at += size
    return View(change, listed, caches, (key_ip, key_change), weights)


def _assignment_head(body: bytes) -> tuple[tuple[str, int], list[tuple[str, int, int]], int]:
    """The assignment key, the router assignment elements, and the offset after them."""
    _need(body, 12, "assignment")
    key, routers = (_ip(body[0:4]), _u32(body, 4)), _u32(body, 8)
    _need(body, 12 + 12 * routers, "assignment's router list")
    elements = [(_ip(body[12 + 12 * n :]), _u32(body, 16 + 12 * n), _u32(body, 20 + 12 * n)) for n in range(routers)]
    return key, elements, 12 + 12 * routers


def _hash_assignment(body: bytes) -> Assignment:
    """Assignment Info (hash): key, routers, the caches, and 256 bucket bytes indexing them."""
    key, routers, at = _assignment_head(body)
    _need(body, at + 4, "assignment's cache count")
    count = _u32(body, at)
    caches = [_ip(body[at + 4 + 4 * n :]) for n in range(count)]
    at += 4 + 4 * count
    _need(body, at + BUCKETS, "assignment's buckets")
    return Assignment("hash", key, routers, caches, list(body[at : at + BUCKETS]))


def _alt_assignment(body: bytes) -> Assignment:
    """Alternate Assignment holding a mask/value set list: the masks and each value's cache."""
    _need(body, 4, "alternate assignment")
    kind, length = struct.unpack("!HH", body[:4])
    if kind != MASK_ASSIGNMENT:
        raise ValueError(f"alternate assignment of type {kind}: only the mask/value set list (1) is known")
    inner = body[4 : 4 + length]
    key, routers, at = _assignment_head(inner)
    _need(inner, at + 4, "mask/value set count")
    sets, at = _u32(inner, at), at + 4
    masks: tuple[int, int, int, int] = (0, 0, 0, 0)
    values: list[tuple[tuple[int, int, int, int], str]] = []
    for _ in range(sets):
        _need(inner, at + 16, "mask element")
        src_ip, dst_ip, src_port, dst_port, count = struct.unpack("!IIHHI", inner[at : at + 16])
        masks, at = (src_ip, dst_ip, src_port, dst_port), at + 16
        _need(inner, at + 16 * count, "mask values")
        for _ in range(count):
            v_src_ip, v_dst_ip, v_src_port, v_dst_port = struct.unpack("!IIHH", inner[at : at + 12])
            values.append(((v_src_ip, v_dst_ip, v_src_port, v_dst_port), _ip(inner[at + 12 : at + 16])))
            at += 16
    caches = list(dict.fromkeys(cache for _, cache in values))
    return Assignment("mask", key, routers, caches, masks=masks, values=values)
