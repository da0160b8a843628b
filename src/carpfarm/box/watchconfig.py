"""carpfarm.box.watchconfig: carpfarm-watch's configuration as the box reads it (standard library only).

The controller writes it (``carpfarm.plan.watch.config_data``, through the filter
carpfarm_watch_config); ``load_config`` reads and checks it on the box, and ``rules_text`` prints
the rules it describes for any set of live instances. ``read_held`` reads the held file (ports an
operator or Ansible holds out). The JSON's keys: ``format`` (``FORMAT``), ``host``, ``managed`` (the
rules file's header comment), ``names`` (chains and table), ``ruleset`` (without its fair parts),
``probe``, ``squid_user`` and the three paths of ``DEFAULT_FILES``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carpfarm.box import kernelrules
from carpfarm.box.health import DEFAULT_PROBING, Probing
from carpfarm.box.kernelrules import Names
from carpfarm.box.listening import listener_owners

FORMAT = 1
# The user Debian's squid package runs Squid as (cache_effective_user); its listeners are root's.
SQUID_USER = "proxy"
DEFAULT_FILES = {
    "held_file": "/run/carpfarm-watch.held",  # what frontend_balancer's hold writes (vars/main.yml)
    "state_file": "/run/carpfarm-watch.json",
    "rules_file": "/run/carpfarm-watch.rules",
}
# How the rules file is checked, then loaded atomically, by kind (frontend_balancer's vars/main.yml).
COMMANDS = {
    "iptables": (["iptables-restore", "--test", "--noflush"], ["iptables-restore", "--noflush"]),
    "nftables": (["nft", "-c", "-f"], ["nft", "-f"]),
}


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the value and the fix."""


@dataclass(frozen=True)
class Config:
    """What the watch needs to print the rules for any set of live instances."""

    host: str
    managed: str
    names: Names
    ruleset: Mapping[str, Any]  # kernelrules.base_ruleset: no fair parts, the instances' ports
    probing: Probing = DEFAULT_PROBING
    squid_user: str = SQUID_USER  # the instances' Squid runs as this user (listener_owners)
    held_file: str = DEFAULT_FILES["held_file"]
    state_file: str = DEFAULT_FILES["state_file"]
    rules_file: str = DEFAULT_FILES["rules_file"]

    @property
    def kind(self) -> str:
        return str(self.ruleset["type"])

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.ruleset["ports"])


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check a configuration file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a carpfarm watch configuration of format {FORMAT}")
    try:
        config = Config(
            host=str(data["host"]),
            managed=str(data["managed"]),
            names=Names(**data.get("names", {})),
            ruleset=data["ruleset"],
            probing=Probing(**data.get("probe", {})),
            squid_user=str(data.get("squid_user", SQUID_USER)),
            **{k: str(data.get(k, v)) for k, v in DEFAULT_FILES.items()},
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: missing or unknown setting: {exc}") from exc
    _check(config, path)
    return config


def _check(config: Config, path: str | os.PathLike[str]) -> None:
    if config.kind not in COMMANDS:
        raise ConfigError(f"{path}: ruleset type {config.kind!r} is not a kernel balancer: use iptables or nftables")
    ports = config.ports
    if not ports or len(set(ports)) != len(ports):
        raise ConfigError(f"{path}: ruleset ports {list(ports)} must be one or more distinct ports")
    p = config.probing
    if min(p.interval, p.timeout) <= 0 or p.min_interval < 0 or min(p.fall, p.rise) < 1:
        raise ConfigError(
            f"{path}: probe settings {vars(p)}: interval and timeout > 0, min_interval >= 0, fall and rise >= 1"
        )
    rules_text(config, ports)  # a ruleset the rules cannot be printed from fails here, not later
    try:
        listener_owners(config.squid_user)
    except KeyError:
        raise ConfigError(
            f"{path}: squid_user {config.squid_user!r} is no user on this host: name the user the"
            " frontend Squids run as (cache_effective_user; Debian's squid package runs them as 'proxy')"
        ) from None


def read_held(path: str | os.PathLike[str]) -> tuple[frozenset[int], list[str]]:
    """The held ports, and a complaint per line that is no port. A missing file holds nothing."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return frozenset(), []
    except OSError as exc:
        return frozenset(), [f"{path}: {exc}"]
    held, problems = set(), []
    for number, line in enumerate(text.splitlines(), 1):
        word = line.split("#", 1)[0].strip()
        if word.isdigit():
            held.add(int(word))
        elif word:
            problems.append(f"{path}:{number}: {word!r} is not a port; write one port a line")
    return frozenset(held), problems


def rules_text(config: Config, live: Collection[int]) -> str:
    """The rules file that spreads exactly fairly over the ``live`` ports."""
    ruleset = kernelrules.ruleset_for(config.ruleset, live)
    return kernelrules.render(config.kind, ruleset, config.names, config.host, config.managed)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
