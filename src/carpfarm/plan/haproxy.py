"""What carpfarm reads from HAProxy's admin socket."""

from __future__ import annotations

from collections.abc import Iterable

# "show servers state" (format 1): be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...
_NAME, _ADMIN_STATE = 3, 6
# srv_admin_state bit 0x01: forced maintenance, what "set server BACKEND/SERVER state maint" sets.
_FORCED_MAINT = 0x01


def servers_in_maintenance(lines: Iterable[str]) -> list[str]:
    """The servers of a ``show servers state`` answer that an operator put in maintenance."""
    names = []
    for line in lines:
        fields = line.split()
        if line.startswith("#") or len(fields) <= _ADMIN_STATE or not fields[_ADMIN_STATE].isdigit():
            continue
        if int(fields[_ADMIN_STATE]) & _FORCED_MAINT:
            names.append(fields[_NAME])
    return names
