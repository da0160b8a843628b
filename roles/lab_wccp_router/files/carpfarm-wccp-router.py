#!/usr/bin/env python3
"""The lab's stand-in for a WCCPv2 router: it listens on UDP 2048 and records what caches say.

carpfarm-wccp-router.py --log FILE [--password SERVICE=PASSWORD]...

Each datagram is decoded with carpfarm.wccpwire (installed beside this script) and appended to
FILE as one JSON line: sender, message type, version, components, service, the cache's identity
and capabilities, and whether its MD5 verifies with the password configured for its service.
It never answers: a real router's I_SEE_YOU and assignment are out of its scope.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wccpwire  # copied beside this script by the lab_wccp_router role


def record(packet: bytes, sender: str, passwords: dict[int, str]) -> dict[str, object]:
    row: dict[str, object] = {"at": round(time.time(), 3), "from": sender, "bytes": len(packet)}
    try:
        message = wccpwire.decode(packet)
    except ValueError as exc:
        return {**row, "error": str(exc)}
    fields = asdict(message)
    fields["md5"] = message.md5.hex()
    fields["identity"] = message.identity.hex()
    service_id = message.service.id if message.service else None
    password = passwords.get(service_id) if service_id is not None else None
    fields["md5_ok"] = None if password is None else wccpwire.md5_matches(packet, password)
    fields["md5_ok_with_wrong_password"] = (
        None if password is None else wccpwire.md5_matches(packet, password[::-1] + "x")
    )
    return {**row, **fields}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--password", action="append", default=[], help="SERVICE_ID=PASSWORD")
    parser.add_argument("--address", default="0.0.0.0")
    args = parser.parse_args()
    passwords = {int(k): v for k, _, v in (p.partition("=") for p in args.password)}
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((args.address, wccpwire.WCCP_PORT))
        while True:
            packet, (sender, _) = sock.recvfrom(65535)
            with args.log.open("a") as log:
                log.write(json.dumps(record(packet, sender, passwords)) + "\n")


if __name__ == "__main__":
    sys.exit(main())
