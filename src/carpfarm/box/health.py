"""carpfarm.box.health: carpfarm-watch's state machine, pure (standard library only, no clock, no kernel).

``step`` takes one round of probes (port -> answered), the held ports and the time, and gives the
next ``State``: every instance's ``Health`` (``judge``: ``fall`` bad probes in a row take it out,
``rise`` good ones put it back), the ports the rules should spread over (``wanted_live``, never
none) and the ports they do spread over (``next_live``: put-backs wait ``min_interval`` after the
last change), with the transitions it made as ``Event`` lines for the log.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

# The address the log names an instance by (the watch asks the kernel, it never connects).
PROBE_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Probing:
    """How often and how hard to probe, and how many probes change an instance's health."""

    interval: float = 0.2  # seconds between probe rounds
    timeout: float = 0.2  # a sock_diag dump that takes longer is a bad probe of every port
    fall: int = 1  # bad probes in a row that take an instance out
    rise: int = 5  # good probes in a row that put it back
    min_interval: float = 2.0  # the rules are widened no sooner than this after their last change


DEFAULT_PROBING = Probing()  # for default arguments (a frozen dataclass, so one is enough)


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
    kind: str  # down, up, live, fallback, held, problem, start, stop
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


def ports_text(ports: Iterable[int]) -> str:
    """Ports as the log names them: sorted, space-separated, ``none`` for none."""
    return " ".join(str(p) for p in sorted(ports)) or "none"


def _health_events(port: int, before: Health, after: Health, probing: Probing, now: float) -> list[Event]:
    if before.healthy == after.healthy:
        return []
    if after.healthy:
        return [Event(now, "up", f"{PROBE_HOST}:{port} answers again ({probing.rise} good probes in a row)")]
    return [Event(now, "down", f"{PROBE_HOST}:{port} stopped answering ({probing.fall} bad probes in a row)")]


def _hold_events(before: frozenset[int], after: frozenset[int], now: float) -> list[Event]:
    if before == after:
        return []
    return [Event(now, "held", f"held {ports_text(after)} (was {ports_text(before)})")]


def _describe(before: Sequence[int], after: Sequence[int]) -> str:
    out = [p for p in before if p not in after]
    back = [p for p in after if p not in before]
    changes = ([f"out {ports_text(out)}"] if out else []) + ([f"in {ports_text(back)}"] if back else [])
    return f"{ports_text(after)} ({', '.join(changes)})"
