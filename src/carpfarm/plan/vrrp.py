"""What keepalived runs on a CARP box that shares a floating address (``carpfarm.model.vip``): the
view its templates render, and the reading of the state its notify script keeps, by which the role
waits for a group to settle and checks that exactly one box holds each address."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from carpfarm.box.balancer import kind
from carpfarm.model import FrontendHost


def interface_of(facts: Mapping[str, Any], address: str, vip: str = "") -> str:
    """The interface that holds ``address`` in Ansible's facts (its primary or a secondary IPv4),
    or '' when none does."""
    for name in facts.get("interfaces", []):
        info = facts.get(name.replace("-", "_"), {})
        held = [info.get("ipv4", {}), *info.get("ipv4_secondaries", [])]
        if any(entry.get("address") == address and address != vip for entry in held if entry):
            return str(name)
    return ""


def keepalived_view(boxes: Sequence[FrontendHost], host: str, facts: Mapping[str, Any]) -> dict[str, Any] | None:
    """What keepalived on CARP box ``host`` needs (None when it shares no floating address):
    the address, its VRRP settings, the unicast peers (the other boxes sharing it, in inventory
    order), the interface, and the units its track script checks."""
    box = next((b for b in boxes if b.name == host), None)
    if box is None or box.vip is None:
        return None
    vip = box.vip
    group = [b for b in boxes if b.vip is not None and b.vip.address == vip.address]
    peers = [b.address for b in group if b.name != host]
    return {
        **vip.model_dump(),
        "cidr": vip.cidr,
        "network": str(vip.network),
        "interface": vip.interface or interface_of(facts, box.address, vip.address),
        "interface_written": vip.interface,
        "instance": f"carpfarm_vip{vip.vrrp_id}",
        "unicast_src": box.address,
        "unicast_peers": peers,
        "members": [b.name for b in group],
        "listen_port": box.listen_port,
        "balancer_unit": kind(box.balancer_type).unit,
        "frontend_units": [f"squid@{i.name}.service" for i in box.instances],
        # A box without the address forwards its clients' packets for it and conntrack keeps them,
        # untranslated, for minutes (SYN_SENT: 120 s). A client that reuses such a source port once
        # this box holds the address again matches that entry, skips the REDIRECT, and is refused.
        # The notify script deletes those entries (reply from the listen port itself: never
        # redirected) when the box becomes MASTER.
        "stale_conntrack_port": box.listen_port if kind(box.balancer_type).rules else None,
    }


def read_state(text: str, instance: str) -> tuple[float, dict[str, Any]] | None:
    """(the box's clock, the state) from ``date +%s.%N`` followed by the state file the notify script
    writes ({instance, state, priority, since}); None when unreadable or of another VRRP instance (a
    file left by an earlier configuration)."""
    clock, _, body = text.strip().partition("\n")
    try:
        now, state = float(clock), json.loads(body)
    except ValueError:
        return None
    if not isinstance(state, dict) or not isinstance(state.get("since"), int | float):
        return None
    return (now, state) if state.get("instance") == instance else None


def settled(text: str, instance: str, advert_interval: int) -> bool:
    """A box is settled in its group once it has been MASTER or BACKUP, by its own clock, for
    longer than a backup waits for a master's adverts (3 intervals and a skew under 1 s) and a
    second more: a backup of higher priority preempts within that wait, so when every box of a
    group is settled, a new reading of them all shows the group as it stays."""
    read = read_state(text, instance)
    if read is None:
        return False
    now, state = read
    return state.get("state") in ("MASTER", "BACKUP") and now - float(state["since"]) > 3 * advert_interval + 2


def holders(boxes: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Floating address -> the boxes that are MASTER for it, for each group whose every member was
    read (a play limited to some boxes cannot tell). ``boxes``: {host, vrrp (carpfarm_vrrp's answer),
    state (``date +%s.%N`` and the state file, as read on the box)}."""
    read = {str(b["host"]): b for b in boxes if b.get("vrrp")}
    held: dict[str, list[str]] = {}
    for host, box in read.items():
        vrrp = box["vrrp"]
        if not set(vrrp["members"]) <= set(read):
            continue
        masters = held.setdefault(str(vrrp["cidr"]), [])
        state = read_state(str(box.get("state", "")), str(vrrp["instance"]))
        if state is not None and state[1].get("state") == "MASTER":
            masters.append(host)
    return held


def vip_group(boxes: Sequence[FrontendHost], host: str) -> dict[str, Any] | None:
    """The floating address CARP box ``host`` shares, as ``carpfarm plan`` shows it (None when it shares
    none): the address and its VRRP settings (no password), and every box of its group, in inventory
    order, with its address and VRRP priority."""
    box = next((b for b in boxes if b.name == host), None)
    if box is None or box.vip is None:
        return None
    vip = box.vip
    members = [
        {"host": b.name, "address": b.address, "priority": b.vip.priority}
        for b in boxes
        if b.vip is not None and b.vip.address == vip.address
    ]
    return {**vip.model_dump(), "cidr": vip.cidr, "members": members}
