"""carpfarm.box.watch: keep the kernel balancer's rules on the instances that answer.

Runs on the CARP box with plain ``python3 -m carpfarm.box.watch CONFIG`` (standard library only; of
carpfarm it uses the box package: health, listening, watchconfig, kernelrules and balancer).
Several times a second it asks the kernel (sock_diag, ``listening``) which TCP ports are listened
on, by whom, and whether their accept queues are full: it never connects to an instance, so a
Squid's access log does not fill with probes. A port counts only while every socket listening on
it belongs to the instances' Squid (``squid_user``, or root, which opens Squid's listening sockets
before Squid drops to that user): a process of any other user that takes a dead instance's port is
never given clients. An instance that fails ``fall`` probes in a row is taken out of the rules at
once; one that answers ``rise`` probes in a row is put back, but the rules are never widened sooner
than ``min_interval`` after their last change, so a flapping instance cannot churn them faster than
that (``health``, the state machine). The rules are those ``plan.balancer_rules(exclude=...)`` gives
for the instances left out, printed by the same code as the role's templates, checked
(``iptables-restore --test`` / ``nft -c``) and loaded atomically.

The configuration (JSON, ``watchconfig``; the controller writes it with
``carpfarm.plan.watch.config_data``) carries the ruleset without its fair parts, the chain and
table names, the header comment, the probe settings, the Squid user's name (looked up on the box
when the configuration is read) and three paths: the held file (ports an operator or Ansible holds
out, one a line, ``#`` comments), the state file (JSON the watch rewrites: health, live ports,
sha256 of the rules over every instance and of the rules loaded) and the rules file it writes
before checking and loading it.

Signals: SIGHUP re-reads the configuration and the held file and loads the rules again; SIGTERM
or SIGINT exit 0 and leave the last rules loaded. Exit status: 0 on a clean exit (or ``--once``
that loaded its rules), 1 when ``--once`` could not check or load them, 2 for a usage or
configuration error at start. In the loop, a failed load is logged and retried after
``min_interval``; a bad configuration on SIGHUP is logged and the old one kept.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from types import FrameType
from typing import Any, TextIO

from carpfarm.box.health import Event, State, initial, ports_text, step
from carpfarm.box.listening import listener_owners, probe_listening
from carpfarm.box.watchconfig import (
    COMMANDS,
    FORMAT,
    Config,
    ConfigError,
    load_config,
    read_held,
    rules_text,
    sha256,
)

# ports, timeout, the uids whose listeners count -> port: answers
Probe = Callable[[Sequence[int], float, Collection[int]], Mapping[int, bool]]
Runner = Callable[..., subprocess.CompletedProcess[str]]


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
    watch.log([Event(watch.clock(), "start", f"watching {ports_text(watch.config.ports)} ({watch.config.kind})")])
    while not signals.stop:
        started = time.monotonic()
        if signals.reload:
            signals.reload = False
            watch.reload()
        watch.tick()
        sleep(max(0.0, watch.config.probing.interval - (time.monotonic() - started)))
    watch.log([Event(watch.clock(), "stop", f"stopping; the rules over {ports_text(watch.state.live)} stay loaded")])
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
