"""What carpfarm says when an inventory is wrong: where it is written, host, variable, value, fix.

A problem found on many hosts from one setting (a typo in ``group_vars/squid_backends.yml`` reaches
every backend) is told once, at the file and line of that setting, with the hosts it reaches
(``merged``). Values are shown as YAML writes them (``true``, ``'text'``, ``[a, b]``), never as
Python objects, and a secret's is hidden.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

NO_VALUE: Any = object()  # a problem about a whole group has no single value
# A variable whose value is a secret, or whose name is a misspelling of one: its value is never shown.
SECRET_NAME = re.compile(r"pa?s{1,2}w|pass|secret|pwd", re.IGNORECASE)
HIDDEN = "(hidden)"
HOSTS_LISTED = 5  # hosts named in a problem that reaches more; the others are counted
ITEMS_SHOWN = 6  # items of a long list shown in a value; the others are counted
TEXT_SHOWN = 200  # characters of a long value shown

# Python's names for the shapes of YAML data, as Ansible's messages leak them ("<class 'list'>",
# "a 'dict' and a '_AnsibleTaggedList'"), and the words a user knows them by.
_SHAPES = {
    "list": "a list",
    "tuple": "a list",
    "sequence": "a list",
    "dict": "a mapping",
    "mapping": "a mapping",
    "str": "a string",
    "bytes": "a string",
    "int": "a number",
    "float": "a number",
    "bool": "true or false",
    "nonetype": "nothing (an empty value)",
    "encryptedstring": "a vaulted string",
}
_PYTHON_TYPE = re.compile(
    r"""(?:\ban? )?(?:["']?<class\s+'(?:[\w.]*\.)?_?(?:Ansible)?(?:Tagged)?(?:Unsafe)?(\w+)'>["']?"""
    r"""|'_?(?:Ansible)?(?:Tagged)?(?:Unsafe)?(list|dict|str|int|float|bool|NoneType|tuple|Sequence|Mapping)')""",
    re.IGNORECASE,
)


def shape(value: Any) -> str:
    """What ``value`` is, in a user's words: 'a list', 'a mapping', 'a string'..."""
    if isinstance(value, bool):
        return _SHAPES["bool"]
    if isinstance(value, Mapping):
        return _SHAPES["dict"]
    if isinstance(value, list | tuple):
        return _SHAPES["list"]
    if value is None:
        return _SHAPES["nonetype"]
    return _SHAPES.get(type(value).__name__.lower().lstrip("_"), "a value")


def plain_words(text: str) -> str:
    """``text`` with Python's type names ("<class '...AnsibleTaggedList'>", "'dict'") told as words."""

    def word(match: re.Match[str]) -> str:
        name = (match.group(1) or match.group(2) or "").lower()
        return _SHAPES.get(name, _SHAPES.get(name.removesuffix("type"), "a value"))

    return _PYTHON_TYPE.sub(word, text)


def shown(value: Any) -> str:
    """``value`` as YAML's flow style writes it: true, null, 'text', [a, b], {key: value}; long
    lists and texts shortened."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {shown(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        items = [shown(item) for item in value[:ITEMS_SHOWN]]
        more = [f"... ({len(value)} items)"] if len(value) > ITEMS_SHOWN else []
        return "[" + ", ".join([*items, *more]) + "]"
    if isinstance(value, str):
        text = repr(str(value))
        return text if len(text) <= TEXT_SHOWN else f"{text[:TEXT_SHOWN]}... ({len(value)} characters)"
    return str(value)


def listed(names: Sequence[str]) -> str:
    """'a, b and c', or the first HOSTS_LISTED and how many more."""
    if len(names) > HOSTS_LISTED:
        return f"{', '.join(names[:HOSTS_LISTED])} and {len(names) - HOSTS_LISTED} more"
    if len(names) > 1:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    return "".join(names)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an inventory, with the change that fixes it.

    ``file`` and ``line`` are where the offending setting is written (empty and 0 when it is no
    one place: a default, a rule over the whole farm); ``hosts`` are every host it reaches when
    that is more than ``host``, and ``group`` the group whose variables set it; ``inventory`` says
    which inventory, when a command reads two (impact's OLD and NEW)."""

    host: str
    variable: str
    message: str
    fix: str
    value: Any = NO_VALUE
    file: str = ""
    line: int = 0
    hosts: tuple[str, ...] = ()
    group: str = ""
    inventory: str = ""

    @property
    def shown_value(self) -> Any:
        """The value as carpfarm tells it: a secret's is hidden, whatever is wrong with it."""
        return HIDDEN if SECRET_NAME.search(self.variable) and self.value is not NO_VALUE else self.value

    @property
    def where(self) -> str:
        """``file:line`` (or the file alone), '' when the setting is no one place."""
        return f"{self.file}:{self.line}" if self.file and self.line else self.file

    def reach(self) -> str:
        """The hosts the setting reaches, in words: 'host cache2', 'group squid_backends, 40 hosts: ...'."""
        hosts = self.hosts or (self.host,)
        count = f"{len(hosts)} hosts: " if len(hosts) > 1 else "host "
        if self.group:
            return f"group {self.group}, {count}{listed(hosts)}"
        return f"{count}{listed(hosts)}" if len(hosts) > 1 else f"host {hosts[0]}"

    def __str__(self) -> str:
        value = "" if self.value is NO_VALUE else f" = {shown(self.shown_value)}"
        which = f"{self.inventory}: " if self.inventory else ""
        if not self.where:
            who = listed(self.hosts) if len(self.hosts) > 1 else self.host
            return f"{which}{who}: {self.variable}{value}: {self.message}. Fix: {self.fix}"
        reach = f" [{self.reach()}]" if self.hosts else ""
        # A problem with a whole file (its name is the variable) or with the inventory is told by the file alone.
        whole = self.variable == "inventory" or self.file.endswith(self.variable)
        subject = "" if whole and value == "" else f"{self.variable}{value}: "
        return f"{which}{self.where}: {subject}{self.message}{reach}. Fix: {self.fix}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hosts"] = list(self.hosts or (self.host,))
        if self.value is NO_VALUE:
            data.pop("value")
        else:
            data["value"] = self.shown_value
        for empty in ("file", "line", "group", "inventory"):
            data[empty] = data[empty] or None
        return data


def merged(problems: Sequence[Problem]) -> list[Problem]:
    """The problems with one told once: the same setting (file and line) found wrong on several hosts
    becomes one problem that names them all; a problem found twice (a host in two groups) is told once."""
    found: dict[tuple[Any, ...], Problem] = {}
    for problem in problems:
        key = (
            problem.inventory,
            problem.where or problem.host,
            problem.variable,
            problem.message,
            problem.fix,
            shown(problem.shown_value) if problem.value is not NO_VALUE else None,
            problem.group,
        )
        first = found.get(key)
        if first is None:
            found[key] = problem
            continue
        hosts = tuple(dict.fromkeys([*(first.hosts or (first.host,)), *(problem.hosts or (problem.host,))]))
        found[key] = replace(first, hosts=hosts if first.where else first.hosts)
    return list(found.values())


class TopologyError(ValueError):
    """An inventory that carpfarm refuses; carries every problem found, not only the first.

    ``inventory`` names it in the first line when a command reads more than one (impact: "OLD
    inventory PATH", or two of them joined by "and the")."""

    def __init__(self, problems: Sequence[Problem], inventory: str = "") -> None:
        self.problems = list(problems)
        self.inventory = inventory
        count = len(self.problems)
        verb = "have" if " and " in inventory else "has"
        head = f"the {inventory or 'inventory'} {verb} {count} problem{'s' if count != 1 else ''}; nothing was changed"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))
