"""carpfarm.box.watch: keep the kernel balancer's rules on the instances that answer.

Runs on the CARP box with plain ``python3 -m carpfarm.box.watch CONFIG`` (standard library only; of
carpfarm it uses kernelrules and balancer). Several times a second it asks the kernel
(sock_diag) which TCP ports are listened on, by whom, and whether their accept queues are full:
it never connects to an instance, so a Squid's access log does not fill with probes. A port
counts only while every socket listening on it belongs to the instances' Squid (``squid_user``,
or root, which opens Squid's listening sockets before Squid drops to that user): a process of
any other user that takes a dead instance's port is never given clients. An instance that
fails ``fall`` probes in a row is taken out of the rules at once; one that answers ``rise``
probes in a row is put back, but the rules are never widened sooner than ``min_interval`` after
their last change, so a flapping instance cannot churn them faster than that. The rules are
those ``plan.balancer_rules(exclude=...)`` gives for the instances left out, printed by the same
code as the role's templates, checked (``iptables-restore --test`` / ``nft -c``) and loaded
atomically.

The configuration (JSON, see ``config_data``) carries the ruleset without its fair parts, the
chain and table names, the header comment, the probe settings, the Squid user's name (looked up
on the box when the configuration is read) and three paths: the held file
(ports an operator or Ansible holds out, one a line, ``#`` comments), the state file (JSON the
watch rewrites: health, live ports, sha256 of the rules over every instance and of the rules
loaded) and the rules file it writes before checking and loading it.

Signals: SIGHUP re-reads the configuration and the held file and loads the rules again; SIGTERM
or SIGINT exit 0 and leave the last rules loaded. Exit status: 0 on a clean exit (or ``--once``
that loaded its rules), 1 when ``--once`` could not check or load them, 2 for a usage or
configuration error at start. In the loop, a failed load is logged and retried after
``min_interval``; a bad configuration on SIGHUP is logged and the old one kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from carpfarm.box import kernelrules
from carpfarm.box.kernelrules import Names

FORMAT = 1
PROBE_HOST = "127.0.0.1"
# The user Debian's squid package runs Squid as (cache_effective_user); its listeners are root's.
SQUID_USER = "proxy"
DEFAULT_FILES = {
    "held_file": "/etc/carpfarm/held",
    "state_file": "/run/carpfarm-watch.json",
    "rules_file": "/run/carpfarm-watch.rules",
}
# How the rules file is checked, then loaded atomically, by kind (frontend_balancer's vars/main.yml).
COMMANDS = {
    "iptables": (["iptables-restore", "--test", "--noflush"], ["iptables-restore", "--noflush"]),
    "nftables": (["nft", "-c", "-f"], ["nft", "-f"]),
}

# ports, timeout, the uids whose listeners count -> port: answers
Probe = Callable[[Sequence[int], float, Collection[int]], Mapping[int, bool]]
Runner = Callable[..., subprocess.CompletedProcess[str]]


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the value and the fix."""


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Probing:
    """How often and how hard to probe, and how many probes change an instance's health."""

    interval: float = 0.2  # seconds between probe rounds
    timeout: float = 0.2  # a connect that takes longer is a bad probe
    fall: int = 1  # bad probes in a row that take an instance out
    rise: int = 5  # good probes in a row that put it back
    min_interval: float = 2.0  # the rules are widened no sooner than this after their last change


@dataclass(frozen=True)
class Config:
    """What the watch needs to print the rules for any set of live instances."""

    host: str
    managed: str
    names: Names
    ruleset: Mapping[str, Any]  # kernelrules.base_ruleset: no fair parts, the instances' ports
    probing: Probing = Probing()
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


def config_data(
    ruleset: Mapping[str, Any],
    host: str,
    managed: str,
    names: Names = kernelrules.DEFAULT_NAMES,
    probing: Probing = Probing(),
    squid_user: str = SQUID_USER,
    **files: str,
) -> dict[str, Any]:
    """The configuration JSON for a full ruleset from ``plan.balancer_rules`` (every instance)."""
    unknown = set(files) - set(DEFAULT_FILES)
    if unknown:
        raise ConfigError(f"unknown file settings {sorted(unknown)}: use {', '.join(DEFAULT_FILES)}")
    return {
        "format": FORMAT,
        "host": host,
        "managed": managed,
        "names": vars(names),
        "ruleset": kernelrules.base_ruleset(ruleset),
        "probe": vars(probing),
        "squid_user": squid_user,
        **DEFAULT_FILES,
        **files,
    }


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


def _uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def listener_owners(squid_user: str, uid_of: Callable[[str], int] = _uid_of) -> frozenset[int]:
    """The uids whose listening sockets count as a Squid instance's: root's and ``squid_user``'s.

    Squid creates its listening sockets while it is still root (they are root's in sock_diag, on
    Squid 5.7 and 6.13 alike) and then runs as ``squid_user``. Root can change the rules anyway;
    any other user's listener is not the instance's. KeyError when there is no such user."""
    return frozenset({0, uid_of(squid_user)})


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


# ---------------------------------------------------------------- rules


def rules_text(config: Config, live: Collection[int]) -> str:
    """The rules file that spreads exactly fairly over the ``live`` ports."""
    ruleset = kernelrules.ruleset_for(config.ruleset, live)
    return kernelrules.render(config.kind, ruleset, config.names, config.host, config.managed)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- the state machine


@dataclass(frozen=True)
class Health:
    """One instance's health as the probes see it."""

    healthy: bool
    since: float  # when it last changed
    streak: int = 0  # probes in a row that disagree with ``healthy``


@dataclass(frozen=True)
class Event:
    """A transition, as the watch logs it."""

    time: float
    kind: str  # down, up, live, fallback, held, problem, start
    detail: str

    def line(self) -> str:
        stamp = datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")
        return f"{stamp} {self.kind}: {self.detail}"


@dataclass(frozen=True)
class State:
    """Every instance's health, the held ports and the ports the rules spread over."""

    ports: tuple[int, ...]
    health: Mapping[int, Health]
    held: frozenset[int]
    live: tuple[int, ...]
    last_change: float | None = None  # when ``live`` last changed
    fallback: str | None = None  # why ``live`` is not the healthy, unheld instances
    events: tuple[Event, ...] = field(default=(), compare=False)


def initial(ports: Sequence[int], now: float) -> State:
    """Every instance healthy and live until a probe says otherwise."""
    return State(tuple(ports), {p: Health(True, now) for p in ports}, frozenset(), tuple(ports))


def step(state: State, probes: Mapping[int, bool], held: Collection[int], probing: Probing, now: float) -> State:
    """The next state after a round of probes (port -> answered) with these ports held.

    The new state's ``events`` are the transitions this step made."""
    held = frozenset(held) & set(state.ports)
    events = _hold_events(state.held, held, now)
    health = {}
    for port in state.ports:
        health[port] = judge(state.health[port], probes.get(port, False), probing, now)
        events += _health_events(port, state.health[port], health[port], probing, now)
    wanted, fallback = wanted_live(state.ports, health, held)
    live = next_live(state.live, wanted, health, state.last_change, probing, now)
    if live != state.live:
        events.append(Event(now, "live", _describe(state.live, live)))
    if fallback != state.fallback and fallback:
        events.append(Event(now, "fallback", fallback))
    last_change = now if live != state.live else state.last_change
    return State(state.ports, health, held, live, last_change, fallback, tuple(events))


def judge(health: Health, answered: bool, probing: Probing, now: float) -> Health:
    """One probe's effect: ``fall`` bad ones in a row take a healthy instance down, ``rise`` good ones bring it up."""
    if answered == health.healthy:
        return replace(health, streak=0) if health.streak else health
    streak = health.streak + 1
    if streak >= (probing.rise if answered else probing.fall):
        return Health(answered, now)
    return replace(health, streak=streak)


def wanted_live(
    ports: Sequence[int], health: Mapping[int, Health], held: Collection[int]
) -> tuple[tuple[int, ...], str | None]:
    """The healthy instances not held; never none (rules that point nowhere refuse every client)."""
    healthy = [p for p in ports if health[p].healthy]
    choices = (
        ([p for p in healthy if p not in held], None),
        (healthy, "every instance that answers is held: the hold is ignored until another answers"),
        ([p for p in ports if p not in held], "no instance answers: every one not held stays in"),
        (list(ports), "no instance answers and every one is held: all stay in"),
    )
    return next((tuple(live), why) for live, why in choices if live)


def next_live(
    live: Sequence[int],
    wanted: Sequence[int],
    health: Mapping[int, Health],
    last_change: float | None,
    probing: Probing,
    now: float,
) -> tuple[int, ...]:
    """``wanted``, except that instances put back wait until ``min_interval`` after the last change.

    Taking an instance out never waits, nor does a change while no live instance answers."""
    if not set(wanted) - set(live):
        return tuple(wanted)
    stuck = not any(health[p].healthy for p in live)
    if stuck or last_change is None or not 0 <= now - last_change < probing.min_interval:
        return tuple(wanted)
    kept = tuple(p for p in live if p in wanted)
    return kept or tuple(live)


def _health_events(port: int, before: Health, after: Health, probing: Probing, now: float) -> list[Event]:
    if before.healthy == after.healthy:
        return []
    if after.healthy:
        return [Event(now, "up", f"{PROBE_HOST}:{port} answers again ({probing.rise} good probes in a row)")]
    return [Event(now, "down", f"{PROBE_HOST}:{port} stopped answering ({probing.fall} bad probes in a row)")]


def _hold_events(before: frozenset[int], after: frozenset[int], now: float) -> list[Event]:
    if before == after:
        return []
    return [Event(now, "held", f"held {_ports(after)} (was {_ports(before)})")]


def _describe(before: Sequence[int], after: Sequence[int]) -> str:
    out = [p for p in before if p not in after]
    back = [p for p in after if p not in before]
    changes = ([f"out {_ports(out)}"] if out else []) + ([f"in {_ports(back)}"] if back else [])
    return f"{_ports(after)} ({', '.join(changes)})"


def _ports(ports: Iterable[int]) -> str:
    return " ".join(str(p) for p in sorted(ports)) or "none"


def rule_changes(lines: Iterable[str], port: int) -> list[tuple[float, str]]:
    """When the rules took ``port`` out and put it back, read from the watch's log lines (as
    Event.line writes them, e.g. ``journalctl -o cat``): (epoch seconds, "out" or "in")."""
    changes = []
    for line in lines:
        stamp, _, rest = line.strip().partition(" ")
        kind, _, detail = rest.partition(": ")
        if kind != "live" or "(" not in detail:
            continue
        for change in detail.rpartition("(")[2].rstrip(")").split(", "):
            direction, _, ports = change.partition(" ")
            if direction in ("out", "in") and str(port) in ports.split():
                changes.append((datetime.fromisoformat(stamp).timestamp(), direction))
    return changes


def out_and_back(lines: Iterable[str], port: int, since: float) -> dict[str, float | None]:
    """Seconds from ``since`` (a fault) until the rules first took ``port`` out, and until they
    next put it back (None for what did not happen)."""
    out = back = None
    for at, direction in rule_changes(lines, port):
        if at < since:
            continue
        if direction == "out" and out is None:
            out = round(at - since, 3)
        elif direction == "in" and out is not None and back is None:
            back = round(at - since, 3)
    return {"out_s": out, "in_s": back}


# ---------------------------------------------------------------- probing


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


# ---------------------------------------------------------------- applying


class ApplyError(RuntimeError):
    """The rules did not pass their check, or did not load."""


def apply(config: Config, live: Collection[int], run: Runner = subprocess.run) -> str:
    """Write the rules for ``live``, check them, load them atomically; the text loaded."""
    text = rules_text(config, live)
    _write(config.rules_file, text, 0o600)
    for command in COMMANDS[config.kind]:
        argv = [*command, config.rules_file]
        try:
            done = run(argv, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise ApplyError(f"{' '.join(argv)}: {exc}") from exc
        if done.returncode != 0:
            raise ApplyError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return text


def state_data(config: Config, state: State, applied: str | None, error: str | None, now: float) -> dict[str, Any]:
    """What the state file holds: for ``carpfarm status`` and the loader's ``check``."""
    return {
        "format": FORMAT,
        "pid": os.getpid(),
        "kind": config.kind,
        "updated": now,
        "live": list(state.live),
        "held": sorted(state.held),
        "fallback": state.fallback,
        "last_change": state.last_change,
        "instances": [
            {"port": p, "healthy": h.healthy, "since": h.since, "live": p in state.live, "held": p in state.held}
            for p, h in state.health.items()
        ],
        "rules_sha256": sha256(rules_text(config, config.ports)),
        "applied_sha256": None if applied is None else sha256(applied),
        "error": error,
    }


def _write(path: str, text: str, mode: int) -> None:
    """Replace ``path`` atomically: readers see the old file or the new one."""
    temporary = f"{path}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


# ---------------------------------------------------------------- the loop


class Watch:
    """The running watch: configuration, state, what is loaded, and the log."""

    def __init__(
        self,
        config_path: str,
        probe: Probe = probe_listening,
        clock: Callable[[], float] = time.time,
        run: Runner = subprocess.run,
        out: TextIO = sys.stdout,
    ) -> None:
        self.config_path = config_path
        self.probe, self.clock, self.run, self.out = probe, clock, run, out
        self.config = load_config(config_path)
        self.owners = listener_owners(self.config.squid_user)
        self.state = initial(self.config.ports, clock())
        self.held: frozenset[int] = frozenset()
        self.applied: tuple[int, ...] | None = None  # the live ports whose rules are loaded
        self.applied_text: str | None = None
        self.error: str | None = None
        self.retry_at = 0.0
        self.read_held()

    def log(self, events: Iterable[Event]) -> None:
        for event in events:
            print(event.line(), file=self.out, flush=True)

    def read_held(self) -> None:
        held, problems = read_held(self.config.held_file)
        self.held = held
        self.log(Event(self.clock(), "problem", p) for p in problems)

    def reload(self) -> None:
        """SIGHUP: the configuration and the held file again, then the rules loaded again."""
        now = self.clock()
        try:
            config = load_config(self.config_path)
            owners = listener_owners(config.squid_user)
        except (ConfigError, KeyError) as exc:
            self.log([Event(now, "problem", f"{exc}; keeping the configuration loaded before")])
        else:
            if config.ports != self.config.ports:
                self.state = initial(config.ports, now)
            self.config, self.owners = config, owners
            self.log([Event(now, "start", f"configuration {self.config_path} read again")])
        self.read_held()
        self.applied, self.retry_at = None, 0.0

    def tick(self) -> bool:
        """One round: probe, decide, load the rules if they changed; False when the rules could not be loaded."""
        answers = self.probe(self.config.ports, self.config.probing.timeout, self.owners)
        now = self.clock()
        self.state = step(self.state, answers, self.held, self.config.probing, now)
        self.log(self.state.events)
        loaded = self._load(now)
        if self.state.events or loaded is not None:
            _write(self.config.state_file, json.dumps(self._state_data(now), indent=1) + "\n", 0o644)
        return loaded is not False

    def _load(self, now: float) -> bool | None:
        """Load the rules when the live ports changed: True, False on failure, None when nothing was due."""
        if self.state.live == self.applied or now < self.retry_at:
            return None
        try:
            self.applied_text = apply(self.config, self.state.live, self.run)
        except ApplyError as exc:
            self.error, self.retry_at = str(exc), now + self.config.probing.min_interval
            self.log([Event(now, "problem", f"{exc}; the rules loaded before stay")])
            return False
        self.applied, self.error = self.state.live, None
        return True

    def _state_data(self, now: float) -> dict[str, Any]:
        return state_data(self.config, self.state, self.applied_text, self.error, now)


class _Signals:
    """What the signal handlers asked for, checked between rounds."""

    def __init__(self) -> None:
        self.stop = False
        self.reload = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._reload)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True

    def _reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload = True


def run_loop(watch: Watch, sleep: Callable[[float], None] = time.sleep) -> int:
    """Probe every ``interval`` until SIGTERM; the rules stay loaded when it ends."""
    signals = _Signals()
    watch.log([Event(watch.clock(), "start", f"watching {_ports(watch.config.ports)} ({watch.config.kind})")])
    while not signals.stop:
        started = time.monotonic()
        if signals.reload:
            signals.reload = False
            watch.reload()
        watch.tick()
        sleep(max(0.0, watch.config.probing.interval - (time.monotonic() - started)))
    watch.log([Event(watch.clock(), "stop", f"stopping; the rules over {_ports(watch.state.live)} stay loaded")])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m carpfarm.box.watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="the watch's JSON configuration")
    parser.add_argument("--once", action="store_true", help="probe once, load the rules, write the state, exit")
    args = parser.parse_args(argv)
    try:
        watch = Watch(args.config)
    except ConfigError as exc:
        print(f"carpfarm.box.watch: {exc}", file=sys.stderr)
        return 2
    if args.once:
        return 0 if watch.tick() else 1
    return run_loop(watch)


if __name__ == "__main__":
    sys.exit(main())
