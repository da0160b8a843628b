"""The rules on groups and variable names: the layers an inventory needs, and carpfarm's names
written where they belong, spelt as declared (each a small pure function that yields problems)."""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from carpfarm.problems import HIDDEN, Problem
from carpfarm.variables import (
    BACKEND_GROUP,
    DECLARED,
    FRONTEND_GROUP,
    GROUPS,
    INTERNAL_NAMES,
    RETIRED_GROUP,
    in_namespace,
)
from carpfarm.variables.fields import ANYWHERE, INTERNAL

# Where a problem is told for a variable set to one value on every host (group_vars/all or -e).
EVERY_HOST = "all hosts (group_vars/all or -e)"


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f"did you mean '{close[0]}'? " if close else ""


# ---------------------------------------------------------------- groups


def layers_present(groups: Mapping[str, Sequence[str]]) -> Iterator[Problem]:
    """A farm needs backends to cache and frontends to accept clients."""
    if not groups.get(BACKEND_GROUP):
        yield Problem(
            BACKEND_GROUP,
            "groups",
            "no backend hosts: nothing would cache",
            f"add at least one host to the '{BACKEND_GROUP}' group",
        )
    if not groups.get(FRONTEND_GROUP):
        yield Problem(
            FRONTEND_GROUP,
            "groups",
            "no frontend hosts: nothing would accept clients",
            f"add at least one host to the '{FRONTEND_GROUP}' group",
        )


def retired_apart(groups: Mapping[str, Sequence[str]]) -> Iterator[Problem]:
    """A retired backend host is no longer one of the backends."""
    backends = groups.get(BACKEND_GROUP, [])
    for host in groups.get(RETIRED_GROUP, []):
        if host in backends:
            yield Problem(
                host,
                "groups",
                f"is in both '{BACKEND_GROUP}' and '{RETIRED_GROUP}'",
                f"to retire it, remove it from '{BACKEND_GROUP}' (drain it there first: squid_backend_state: drained)",
            )


# ---------------------------------------------------------------- variable names


def _memberships(groups: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    member: dict[str, set[str]] = defaultdict(set)
    for group in GROUPS:
        for host in groups.get(group, []):
            member[host].add(group)
    return member


def _set_everywhere(hostvars: Mapping[str, Mapping[str, Any]], hosts: Sequence[str]) -> set[str]:
    """Names set to one value on every host: group_vars/all or ``-e``, so farm-wide by intent."""
    if not hosts:
        return set()
    first = hostvars.get(hosts[0], {})
    return {
        name
        for name, value in first.items()
        if all(name in hostvars.get(h, {}) and hostvars[h][name] == value for h in hosts[1:])
    }


def variable_names(groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Mapping[str, Any]]) -> Iterator[Problem]:
    """Every name in carpfarm's namespaces must be declared, and set only where it is read."""
    member = _memberships(groups)
    hosts = list(member)
    everywhere = _set_everywhere(hostvars, hosts)
    reported: set[str] = set()
    for host in hosts:
        for name in sorted(hostvars.get(host, {})):
            if not in_namespace(name) or name in reported:
                continue
            shared = name in everywhere
            where = EVERY_HOST if shared else host
            problem = _name_problem(name, member[host], shared)
            if problem is not None:
                message, fix = problem
                yield Problem(where, name, message, fix, HIDDEN if _secret(name) else hostvars[host][name])
                if shared:
                    reported.add(name)


def _secret(name: str) -> bool:
    """A secret's name, or one close enough to be a misspelling of one: its value is never shown."""
    closest = difflib.get_close_matches(name, list(DECLARED), n=1, cutoff=0.75)
    return bool(closest) and DECLARED[closest[0]].secret


def _name_problem(name: str, member: set[str], shared: bool) -> tuple[str, str] | None:
    declaration = DECLARED.get(name)
    if name in INTERNAL_NAMES or (declaration is not None and INTERNAL in declaration.scope):
        role = INTERNAL_NAMES.get(name) or ", ".join(declaration.roles if declaration else ())
        return (
            f"is set by carpfarm's roles themselves (an argument of role {role}), not by an inventory",
            "remove it from the inventory",
        )
    if declaration is None:
        return (
            "is not a carpfarm variable: no role reads it, so it would be silently ignored",
            did_you_mean(name, DECLARED) + "correct the name, or remove it",
        )
    if ANYWHERE in declaration.scope or member & set(declaration.scope) or shared:
        return None
    wanted = " or ".join(f"'{g}'" for g in declaration.scope)
    return (
        f"is read only on hosts in {wanted}, and this host is not in it: the setting would be silently ignored",
        f"move it to group_vars/{declaration.scope[0]} or to a host of that group, or remove it",
    )
