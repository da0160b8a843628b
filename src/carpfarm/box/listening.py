"""carpfarm.box.listening: carpfarm-watch's probe, which asks the kernel instead of connecting
(standard library only).

``listeners`` dumps the local TCP sockets in LISTEN state through Linux sock_diag, with each one's
accept queue and owner; ``answering`` says which instance ports count as answering (listened on by
the Squid's users alone, ``listener_owners``, with room in every accept queue); ``probe_listening``
is both, the probe ``carpfarm.box.watch.Watch`` runs every round.
"""

from __future__ import annotations

import pwd
import socket
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

# Linux sock_diag (linux/sock_diag.h, linux/inet_diag.h): dump the TCP sockets in LISTEN state.
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_DIAG_REQ = struct.Struct("=BBBxI48x")  # family, protocol, ext, pad, states, inet_diag_sockid (zero)
_DIAG_MSG = struct.Struct("=BBBBHH")  # family, state, timer, retrans, sport, dport (network order)
# idiag_rqueue, idiag_wqueue (for a listener: its accept queue and the queue's limit), idiag_uid
_QUEUES_AND_UID = struct.Struct("=III")
_QUEUES_AT = 4 + 48 + 4  # after family..retrans, the socket id and expires


@dataclass(frozen=True)
class Listener:
    """One listening socket, as sock_diag reports it."""

    queued: int  # connections waiting in the accept queue
    limit: int  # the accept queue's length (the listen backlog)
    uid: int  # the socket's owner: the user that created it

    @property
    def full(self) -> bool:
        return self.limit > 0 and self.queued >= self.limit


def _uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def listener_owners(squid_user: str, uid_of: Callable[[str], int] = _uid_of) -> frozenset[int]:
    """The uids whose listening sockets count as a Squid instance's: root's and ``squid_user``'s.

    Squid creates its listening sockets while it is still root (they are root's in sock_diag, on
    Squid 5.7 and 6.13 alike) and then runs as ``squid_user``. Root can change the rules anyway;
    any other user's listener is not the instance's. KeyError when there is no such user."""
    return frozenset({0, uid_of(squid_user)})


def listeners(timeout: float) -> dict[int, list[Listener]]:
    """Every local TCP port in LISTEN state (IPv4 and IPv6), with the sockets listening on it."""
    found: dict[int, list[Listener]] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as link:
        link.settimeout(timeout)
        for family in (socket.AF_INET, socket.AF_INET6):
            body = _DIAG_REQ.pack(family, socket.IPPROTO_TCP, 0, 1 << TCP_LISTEN)
            link.send(
                _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body
            )
            _read_dump(link, found)
    return found


def _read_dump(link: socket.socket, found: dict[int, list[Listener]]) -> None:
    while True:
        data = link.recv(65536)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind = _NLMSGHDR.unpack_from(data, offset)[:2]
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                raise OSError("sock_diag refused the dump of listening sockets")
            message = offset + _NLMSGHDR.size
            sport = socket.ntohs(_DIAG_MSG.unpack_from(data, message)[4])
            found.setdefault(sport, []).append(Listener(*_QUEUES_AND_UID.unpack_from(data, message + _QUEUES_AT)))
            offset += (length + 3) & ~3


def probe_listening(ports: Sequence[int], timeout: float, owners: Collection[int]) -> dict[int, bool]:
    """True for each port that the ``owners`` alone listen on and accept from (``answering``).

    Nothing connects to the instance, so its access log stays clean; a killed Squid's listener
    is gone at once, and a Squid that stopped accepting fills its queue."""
    try:
        found = listeners(timeout)
    except OSError:
        return dict.fromkeys(ports, False)
    return answering(found, ports, owners)


def answering(
    found: Mapping[int, Sequence[Listener]], ports: Sequence[int], owners: Collection[int]
) -> dict[int, bool]:
    """True for each port with at least one listener, every one of them the ``owners``' and none
    with a full accept queue.

    A port that any other user listens on (too) does not answer: a process that took over a dead
    instance's port, on any address, must not get the instance's clients."""
    return {port: bool(found.get(port)) and all(s.uid in owners and not s.full for s in found[port]) for port in ports}
