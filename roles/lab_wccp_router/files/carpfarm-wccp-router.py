#!/usr/bin/env python3
"""The lab's stand-in for a WCCPv2 router: it listens on UDP 2048, records what caches say and,
with --answer, speaks the router's side of the protocol (carpfarm.wccp.router).

carpfarm-wccp-router.py --log FILE [--password SERVICE=PASSWORD]... [--answer --address ROUTER
    [--misses N] [--redirect --client CIDR... [--destination CIDR...]]]

Each datagram is decoded with carpfarm.wccp.wire (installed beside this script) and appended to
FILE as one JSON line: sender, message type, version, components, service, the cache's identity
and capabilities, and whether its MD5 verifies with the password configured for its service.
With --answer, each HERE_I_AM gets an I_SEE_YOU (from ROUTER:2048, the address Squid's connected
socket expects), caches silent for 3 HERE_I_AM intervals are dropped, REDIRECT_ASSIGN is kept, and
every change is one more JSON line ({"at", "event"}). With --redirect, the kept assignment is
programmed: nftables marks the clients' connections to each group's ports by the cache its assignment
gives them, groups tried by priority (work of a cache no longer in the group is left unmarked:
forwarded normally), and policy routing sends each mark to its cache as next hop (layer 2: the
destination address is kept); /run/carpfarm-wccp-router.json then says where each client goes.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from carpfarm.wccp import bodies, wire  # copied beside this script by the lab_wccp_router role
from carpfarm.wccp import router as wccprouter

RULES = Path("/run/carpfarm-wccp-router.nft")
STATE = Path("/run/carpfarm-wccp-router.json")  # what the router does now (_write_state)


def record(packet: bytes, sender: str, passwords: dict[int, str]) -> dict[str, object]:
    row: dict[str, object] = {"at": round(time.time(), 3), "from": sender, "bytes": len(packet)}
    try:
        message = wire.decode(packet)
    except ValueError as exc:
        return {**row, "error": str(exc)}
    fields = asdict(message)
    fields["md5"] = message.md5.hex()
    fields["identity"] = message.identity.hex()
    if message.type == "REDIRECT_ASSIGN":  # rare, and worth keeping whole (a test fixture)
        fields["raw"] = packet.hex()
    service_id = message.service.id if message.service else None
    password = passwords.get(service_id) if service_id is not None else None
    fields["md5_ok"] = None if password is None else wire.md5_matches(packet, password)
    fields["md5_ok_with_wrong_password"] = None if password is None else wire.md5_matches(packet, password[::-1] + "x")
    return {**row, **fields}


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def program(router: wccprouter.Router, args: argparse.Namespace, kept: dict[str, int]) -> tuple[str, dict[str, int]]:
    """Load the redirect of every group's assignment (without caches that left); (what nft was given,
    each cache's mark). A cache keeps its mark while it has work (``kept``: the marks loaded before),
    and each mark's route and rule are in place before nft sets it: the connections of the caches that
    stay are never routed elsewhere, even for a moment, by another cache's coming or going."""
    groups = router.assignments()
    mark = wccprouter.marks(wccprouter.assigned_caches(groups), kept)
    rules = wccprouter.redirect_ruleset(groups, args.client, args.destination, mark)
    text = f"table ip {wccprouter.NFT_TABLE} {{}}\ndelete table ip {wccprouter.NFT_TABLE}\n{rules}"
    RULES.write_text(text)
    _run(["nft", "-c", "-f", str(RULES)])
    for number, table, cache in wccprouter.routing(mark):
        _run(["ip", "route", "replace", "default", "via", cache, "table", str(table)])
        if _rule_tables(number) != [str(table)]:
            _delete_rules(number)
            _run(["ip", "rule", "add", "fwmark", str(number), "lookup", str(table), "priority", str(900 + number)])
    _run(["nft", "-f", str(RULES)])
    for number in set(kept.values()) - set(mark.values()):  # no packet carries these marks any more
        _delete_rules(number)
    _write_state(router, groups, args)
    return text, mark


def _write_state(router: wccprouter.Router, groups: list[tuple[bodies.Service, bodies.Assignment]],
                 args: argparse.Namespace) -> None:  # fmt: skip
    """What the router does now, for a test to compare traffic with: each group's members, the one
    Squid designates (lowest), who sent the assignment and what it says, and where a connection
    from each client address to the first destination's port 80 (and 8080) goes."""
    destination = args.destination[0].split("/")[0] if args.destination else "0.0.0.0"
    clients = wccprouter.addresses(args.client)
    state = {
        "at": round(time.time(), 3),
        "groups": {
            str(service_id): {
                "members": sorted(group.members),
                "change": group.change,
                "assigned_by": group.assigned_by,
                "lowest": wccprouter.lowest_cache(group.members),
                "assignment": wccprouter.describe(group.assignment) if group.assignment else None,
            }
            for service_id, group in router.groups.items()
        },
        "destination": destination,
        "redirect": {
            str(port): {c: wccprouter.redirected_to(groups, c, destination, port) for c in clients}
            for port in (80, 8080)
        },
    }
    tmp = STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(STATE)


def _rule_tables(mark: int) -> list[str]:
    """The routing tables of the policy rules for ``mark`` (normally one, or none)."""
    shown = subprocess.run(["ip", "rule", "show", "fwmark", str(mark)], capture_output=True, text=True).stdout
    return [line.split("lookup", 1)[1].split()[0] for line in shown.splitlines() if "lookup" in line]


def _delete_rules(mark: int) -> None:
    for _ in _rule_tables(mark):
        _run(["ip", "rule", "del", "fwmark", str(mark)])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--password", action="append", default=[], help="SERVICE_ID=PASSWORD")
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--answer", action="store_true", help="speak the router's side of WCCPv2")
    parser.add_argument("--interval", type=float, default=wccprouter.HERE_I_AM_INTERVAL)
    parser.add_argument("--misses", type=int, default=wccprouter.MISSES)
    parser.add_argument("--redirect", action="store_true", help="program the redirect from the assignment")
    parser.add_argument("--client", action="append", default=[])
    parser.add_argument("--destination", action="append", default=[])
    args = parser.parse_args()
    passwords = {int(k): v for k, _, v in (p.partition("=") for p in args.password)}
    router = wccprouter.Router(args.address, passwords, args.interval, args.misses)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((args.address, wire.WCCP_PORT))
        sock.settimeout(1.0)
        state: object = None
        loaded_marks: dict[str, int] = {}
        while True:
            rows: list[dict[str, object]] = []
            try:
                packet, (sender, port) = sock.recvfrom(65535)
            except TimeoutError:
                events = router.expire(time.monotonic()) if args.answer else []
            else:
                row = record(packet, sender, passwords)
                rows.append(row)
                events = _answer(router, sock, packet, sender, port, row) if args.answer else []
            rows += [{"at": round(time.time(), 3), "event": event} for event in events]
            # Every membership change and every assignment received (a restarted cache may repeat a key).
            now_state = [(g.change, id(g.assignment)) for g in router.groups.values()]
            if args.redirect and now_state != state:
                state = now_state
                try:
                    loaded, loaded_marks = program(router, args, loaded_marks)
                except (ValueError, subprocess.CalledProcessError) as exc:
                    event = f"redirect not loaded: {exc} {getattr(exc, 'stderr', '') or ''}".strip()
                else:
                    event = f"redirect loaded ({loaded.count(' : ')} entries)"
                rows.append({"at": round(time.time(), 3), "event": event})
            if rows:
                with args.log.open("a") as log:
                    log.writelines(json.dumps(r) + "\n" for r in rows)


def _answer(router: wccprouter.Router, sock: socket.socket, packet: bytes, sender: str, port: int,
            row: dict[str, object]) -> list[str]:  # fmt: skip
    now = time.monotonic()
    if row.get("type") == "HERE_I_AM":
        answer, events = router.here_i_am(packet, sender, now)
        if answer is not None:
            sock.sendto(answer, (sender, port))
        return events
    if row.get("type") == "REDIRECT_ASSIGN":
        return router.redirect_assign(packet, sender, now)
    return []


if __name__ == "__main__":
    sys.exit(main())
