"""carpfarm.box.watch: the state machine with a fake clock, the rules it prints, and the real kernel.

The state machine is driven by hand (probe answers and times are the test's). The rules for
every subset of live instances are compared with the role's own path, carpfarm_balancer with
``exclude`` printed by the role's template. The kernel tests run the watch with Debian's plain
python3 inside a fresh network namespace, against small TCP listeners standing in for the
frontend instances, and count where connections to the balancer's port really go.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import os
import pwd
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from carpfarm.box import copies, health, kernelrules, listening, watch, watchconfig
from carpfarm.box.health import Probing, State
from carpfarm.box.watchconfig import Config
from carpfarm.inventory import load_hostvars
from carpfarm.lab import watchlog
from carpfarm.plan.watch import config_data
from support.ansible import filters, render
from support.inventories import wccp_box
from support.paths import ROOT

SYSTEM_PYTHON = "/usr/bin/python3"  # what a Debian CARP box has: no pydantic, no carpfarm venv
TEMPLATES = ROOT / "roles" / "frontend_balancer" / "templates" / "etc" / "carpfarm"
TEMPLATE = {"iptables": "balancer.rules.j2", "nftables": "balancer.nft.j2"}
MANAGED = "#\n# Ansible managed\n#"
NOW = 1_700_000_000.0


# ---------------------------------------------------------------- farms


@functools.cache
def _example(vcpus: int) -> tuple[Any, Any]:
    groups, hostvars, _ = load_hostvars(ROOT / "inventory" / "example", vcpus=vcpus)
    return groups, hostvars


def farm(instances: int, kind: str, mode: str = "random", wccp: str | None = None) -> tuple[Any, Any]:
    """groups and hostvars of carp1 with this many instances (WCCP on with ``wccp`` as the method)."""
    settings = {"frontend_balancer_type": kind, "frontend_balancer_mode": mode}
    if wccp:
        if kind == "iptables":  # the IPv4-only iptables balancer refuses wccp_box's IPv6 clients
            settings["carpfarm_client_networks"] = ["198.51.100.0/24"]
        return wccp_box(carpfarm_wccp_forwarding_method=wccp, carp_frontend_instances=instances, **settings)
    groups, hostvars = _example(instances)
    return groups, {**hostvars, "carp1": {**hostvars["carp1"], **settings}}


def balancer(groups: Any, hostvars: Any, exclude: Sequence[int] = ()) -> dict[str, Any]:
    return dict(filters()["carpfarm_balancer"](hostvars, groups, "carp1", exclude=list(exclude)))


def config_for(ruleset: dict[str, Any], tmp: Path | None = None, **probing: Any) -> Config:
    files = {} if tmp is None else {k: str(tmp / k) for k in watchconfig.DEFAULT_FILES}
    data = config_data(ruleset, "carp1", MANAGED, probing=Probing(**probing), **files)
    return Config(
        host=data["host"],
        managed=data["managed"],
        names=kernelrules.Names(**data["names"]),
        ruleset=data["ruleset"],
        probing=Probing(**data["probe"]),
        held_file=data["held_file"],
        state_file=data["state_file"],
        rules_file=data["rules_file"],
    )


# ---------------------------------------------------------------- the state machine

PORTS = (3129, 3130, 3131)


def run_steps(
    answers: Sequence[dict[int, bool]], probing: Probing, held: Sequence[int] = (), dt: float = 0.2
) -> list[State]:
    state = health.initial(PORTS, NOW)
    states = []
    for n, probes in enumerate(answers, 1):
        state = health.step(state, {**dict.fromkeys(PORTS, True), **probes}, held, probing, NOW + n * dt)
        states.append(state)
    return states


@pytest.mark.parametrize(
    ("fall", "rise", "probes", "healthy"),
    [
        (1, 5, "1011111", "1000001"),  # the defaults: out at the first bad probe, back after five good
        (2, 2, "1010011001", "1111001100"),  # a single bad probe is forgiven; a good one resets the count
        (3, 1, "0001000", "1101110"),
        (1, 1, "010101", "010101"),
    ],
)
def test_fall_and_rise_count_probes_in_a_row(fall: int, rise: int, probes: str, healthy: str) -> None:
    probing = Probing(fall=fall, rise=rise, min_interval=0)
    states = run_steps([{3130: c == "1"} for c in probes], probing)
    assert "".join("1" if s.health[3130].healthy else "0" for s in states) == healthy
    assert [s.live for s in states] == [tuple(p for p in PORTS if p != 3130 or h == "1") for h in healthy]


def test_a_held_instance_leaves_at_once_and_comes_back_when_released() -> None:
    probing = Probing(min_interval=2)
    state = health.initial(PORTS, NOW)
    state = health.step(state, dict.fromkeys(PORTS, True), [3131], probing, NOW + 1)
    assert state.live == (3129, 3130) and state.held == {3131}
    assert [(e.kind, e.detail) for e in state.events] == [
        ("held", "held 3131 (was none)"),
        ("live", "3129 3130 (out 3131)"),
    ]
    state = health.step(state, dict.fromkeys(PORTS, True), [], probing, NOW + 1.2)
    assert state.live == (3129, 3130), "a release is a put-back: it waits for min_interval"
    state = health.step(state, dict.fromkeys(PORTS, True), [9999], probing, NOW + 3)  # 9999 is no instance
    assert state.live == PORTS and state.held == frozenset()


@pytest.mark.parametrize(
    ("answering", "held", "live", "why"),
    [
        ("", "", PORTS, "no instance answers: every one not held stays in"),
        ("", "3130", (3129, 3131), "no instance answers: every one not held stays in"),
        ("3130", "3130", (3130,), "every instance that answers is held"),
        ("", "3129 3130 3131", PORTS, "no instance answers and every one is held"),
        ("3131", "3130", (3131,), None),
    ],
)
def test_the_rules_never_point_nowhere(answering: str, held: str, live: tuple[int, ...], why: str | None) -> None:
    up = {int(p) for p in answering.split()}
    states = run_steps([{p: p in up for p in PORTS}], Probing(), [int(p) for p in held.split()])
    assert states[-1].live == live
    assert states[-1].fallback == why or (why and why in str(states[-1].fallback))
    assert ("fallback" in [e.kind for e in states[-1].events]) == (why is not None)


def test_put_backs_wait_for_min_interval_and_take_outs_never_wait() -> None:
    probing = Probing(rise=1, min_interval=2)
    state = health.initial(PORTS, NOW)
    timeline = [
        # (time after NOW, answering ports, wanted live)
        (0.0, {3129, 3131}, (3129, 3131)),  # 3130 out at once
        (0.4, set(PORTS), (3129, 3131)),  # 3130 answers: waits
        (1.8, set(PORTS), (3129, 3131)),
        (2.0, set(PORTS), PORTS),  # 2 s after the last change
        (2.2, {3129, 3130}, (3129, 3130)),  # 0.2 s after a put-back, a take-out does not wait
        (2.4, set(PORTS), (3129, 3130)),
        (4.2, set(PORTS), PORTS),
    ]
    for at, answering, live in timeline:
        state = health.step(state, {p: p in answering for p in PORTS}, [], probing, NOW + at)
        assert state.live == live, at
        assert all(e.time == NOW + at for e in state.events)


def test_a_put_back_does_not_wait_when_no_live_instance_answers() -> None:
    probing = Probing(rise=1, min_interval=10)
    state = health.initial(PORTS, NOW)
    state = health.step(state, {3129: False, 3130: True, 3131: False}, [], probing, NOW + 0.2)
    assert state.live == (3130,)
    state = health.step(state, {3129: True, 3130: False, 3131: False}, [], probing, NOW + 0.4)
    assert state.live == (3129,), "the rules pointed at a dead instance only: change them now"


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("rise", "min_interval"), [(1, 2.0), (2, 1.0), (5, 2.0)])
def test_flapping_instances_churn_the_rules_no_faster_than_min_interval(
    seed: int, rise: int, min_interval: float
) -> None:
    """Two of three instances flap at random for a minute of 0.2 s probes; one stays healthy."""
    chance = random.Random(seed)
    probing = Probing(rise=rise, min_interval=min_interval)
    state, changes, put_backs = health.initial(PORTS, NOW), 0, []
    for n in range(1, 301):
        probes = {3129: chance.random() < 0.5, 3130: True, 3131: chance.random() < 0.7}
        before = state.live
        state = health.step(state, probes, [], probing, NOW + 0.2 * n)
        changes += state.live != before
        if set(state.live) - set(before):
            put_backs.append(NOW + 0.2 * n)
    gaps = [b - a for a, b in itertools.pairwise(put_backs)]
    assert put_backs and all(gap >= min_interval - 1e-9 for gap in gaps)
    # Each put-back can be followed by one take-out before the next: two changes per min_interval.
    assert changes <= 2 * (60 / min_interval) + 2


def test_events_carry_their_time_and_log_as_one_line_each() -> None:
    states = run_steps([{3130: False}], Probing())
    events = states[-1].events
    assert [(e.kind, e.time) for e in events] == [("down", NOW + 0.2), ("live", NOW + 0.2)]
    assert (
        events[0].line()
        == "2023-11-14T22:13:20.200+00:00 down: 127.0.0.1:3130 stopped answering (1 bad probes in a row)"
    )
    assert events[1].line().endswith(" live: 3129 3131 (out 3130)")
    assert all("\n" not in e.line() for e in events)


# ---------------------------------------------------------------- the rules over the live instances


def _subsets(ports: Sequence[int]) -> Iterator[tuple[int, ...]]:
    for size in range(1, len(ports) + 1):
        yield from itertools.combinations(ports, size)


@pytest.mark.parametrize("kind", ["iptables", "nftables"])
@pytest.mark.parametrize(
    ("instances", "mode", "wccp"),
    [(n, "random", None) for n in range(1, 7)]
    + [(6, "roundrobin", None), (4, "random", "gre"), (3, "roundrobin", "l2")],
)
def test_the_rules_for_every_live_subset_are_the_roles_rules_with_the_rest_excluded(
    kind: str, instances: int, mode: str, wccp: str | None
) -> None:
    groups, hostvars = farm(instances, kind, mode, wccp)
    full = balancer(groups, hostvars)
    config = config_for(full)
    ports = config.ports
    assert len(ports) == instances
    for live in _subsets(ports):
        dead = [p for p in ports if p not in live]
        ruleset = balancer(groups, hostvars, exclude=dead)
        expected = render(TEMPLATES / TEMPLATE[kind], __frontend_balancer_ruleset=ruleset)
        assert watchconfig.rules_text(config, live) == expected, live


def test_the_full_rules_hash_is_the_hash_of_the_file_ansible_writes(tmp_path: Path) -> None:
    groups, hostvars = farm(3, "nftables")
    full = balancer(groups, hostvars)
    config = config_for(full, tmp_path)
    answers = {3129: True, 3130: False, 3131: True}
    state = health.step(health.initial(config.ports, NOW), answers, [], config.probing, NOW + 1)
    data = watch.state_data(config, state, watchconfig.rules_text(config, state.live), None, NOW + 1)
    file = render(TEMPLATES / TEMPLATE["nftables"], __frontend_balancer_ruleset=full)
    assert data["rules_sha256"] == watchconfig.sha256(file)
    assert data["applied_sha256"] == watchconfig.sha256(watchconfig.rules_text(config, [3129, 3131]))
    assert data["live"] == [3129, 3131] and data["held"] == []
    assert data["instances"][1] == {"port": 3130, "healthy": False, "since": NOW + 1, "live": False, "held": False}


# ---------------------------------------------------------------- configuration and held file


def _write_config(tmp_path: Path, instances: int = 3, kind: str = "nftables", **probing: Any) -> Path:
    groups, hostvars = farm(instances, kind, "roundrobin")
    files = {k: str(tmp_path / k) for k in watchconfig.DEFAULT_FILES}
    data = config_data(balancer(groups, hostvars), "carp1", MANAGED, probing=Probing(**probing), **files)
    path = tmp_path / "watch.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def test_the_configuration_round_trips_through_json(tmp_path: Path) -> None:
    config = watchconfig.load_config(_write_config(tmp_path, 4, fall=2))
    assert config.ports == (3129, 3130, 3131, 3132) and config.kind == "nftables"
    assert config.probing == Probing(fall=2) and config.held_file == str(tmp_path / "held_file")
    data = json.loads((tmp_path / "watch.json").read_text())
    assert sorted(data) == [
        "format",
        "held_file",
        "host",
        "managed",
        "names",
        "probe",
        "rules_file",
        "ruleset",
        "squid_user",
        "state_file",
    ]
    assert sorted(data["ruleset"]) == [
        "client_networks_v4",
        "client_networks_v6",
        "intercept",
        "listen_port",
        "mode",
        "ports",
        "type",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["ruleset"].update(type="haproxy"), "ruleset type 'haproxy' is not a kernel balancer"),
        (lambda d: d["ruleset"].update(ports=[3129, 3129]), r"ports \[3129, 3129\] must be one or more distinct"),
        (lambda d: d["probe"].update(rise=0), "fall and rise >= 1"),
        (lambda d: d["probe"].update(every=1), "unknown setting"),
        (lambda d: d.pop("host"), "missing or unknown setting: 'host'"),
        (lambda d: d.update(format=2), "not a carpfarm watch configuration of format 1"),
        (lambda d: d.update(squid_user="carpfarm-nobody-here"), "squid_user 'carpfarm-nobody-here' is no user on this"),
    ],
)
def test_a_bad_configuration_is_refused_with_the_reason(
    tmp_path: Path, change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    path = _write_config(tmp_path)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(watchconfig.ConfigError, match=message):
        watchconfig.load_config(path)
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", err)
        assert watch.main([str(path), "--once"]) == 2
    assert message.split(" ")[0].strip("\\") in err.getvalue()


def test_the_held_file_lists_ports_one_a_line(tmp_path: Path) -> None:
    held = tmp_path / "held"
    assert watchconfig.read_held(held) == (frozenset(), [])
    held.write_text("# held by Ansible while frontend2 restarts\n3130\n\n 3131  # and this\nthree\n")
    assert watchconfig.read_held(held) == (
        frozenset({3130, 3131}),
        [f"{held}:5: 'three' is not a port; write one port a line"],
    )


# ---------------------------------------------------------------- the loop, with fakes


class FakeKernel:
    """Records the commands the watch runs; fails those whose first word is in ``failing``."""

    def __init__(self, failing: Sequence[str] = ()) -> None:
        self.commands: list[list[str]] = []
        self.loaded: list[str] = []
        self.failing = set(failing)

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(argv)
        failed = " ".join(argv[:2]) in self.failing
        if not failed and "-c" not in argv and "--test" not in argv:
            self.loaded.append(Path(argv[-1]).read_text())
        return subprocess.CompletedProcess(argv, 1 if failed else 0, "", "syntax error" if failed else "")


def _watch(tmp_path: Path, answers: dict[int, bool], kernel: FakeKernel, **probing: Any) -> watch.Watch:
    clock = itertools.count(NOW, 0.2)
    return watch.Watch(
        str(_write_config(tmp_path, **probing)),
        probe=lambda ports, timeout, owners: {p: answers.get(p, True) for p in ports},
        clock=lambda: next(clock),
        run=kernel,
        out=io.StringIO(),
    )


def test_a_round_checks_then_loads_and_writes_the_state(tmp_path: Path) -> None:
    kernel = FakeKernel()
    w = _watch(tmp_path, {3130: False}, kernel)
    assert w.tick()
    rules = str(tmp_path / "rules_file")
    assert kernel.commands == [["nft", "-c", "-f", rules], ["nft", "-f", rules]]
    assert kernel.loaded == [watchconfig.rules_text(w.config, [3129, 3131])]
    state = json.loads((tmp_path / "state_file").read_text())
    assert state["live"] == [3129, 3131] and state["error"] is None
    assert state["applied_sha256"] == watchconfig.sha256(kernel.loaded[0])
    assert state["rules_sha256"] == watchconfig.sha256(watchconfig.rules_text(w.config, w.config.ports))
    assert w.tick() and len(kernel.commands) == 2, "nothing changed: nothing loaded"
    log = w.out.getvalue().splitlines()  # type: ignore[attr-defined]
    assert [line.split(" ", 2)[1] for line in log] == ["down:", "live:"]


def test_rules_that_fail_their_check_are_not_loaded_and_are_retried_later(tmp_path: Path) -> None:
    kernel = FakeKernel(failing=["nft -c"])
    w = _watch(tmp_path, {}, kernel, min_interval=0.5)
    assert not w.tick()
    assert kernel.loaded == [] and w.applied is None
    state = json.loads((tmp_path / "state_file").read_text())
    assert state["applied_sha256"] is None and "syntax error" in state["error"]
    w.tick()  # 0.2 s later: not yet
    assert len(kernel.commands) == 1
    kernel.failing.clear()
    w.tick()
    w.tick()
    assert len(kernel.loaded) == 1 and w.applied == (3129, 3130, 3131)


def test_sighup_reads_the_held_file_and_configuration_again_and_reloads(tmp_path: Path) -> None:
    kernel = FakeKernel()
    w = _watch(tmp_path, {}, kernel)
    w.tick()
    (tmp_path / "held_file").write_text("3131\n")
    w.reload()
    w.tick()
    assert w.state.live == (3129, 3130) and kernel.loaded[-1] == watchconfig.rules_text(w.config, [3129, 3130])
    (tmp_path / "watch.json").write_text("{")
    w.reload()
    assert w.config.ports == PORTS and "keeping the configuration loaded before" in w.out.getvalue()  # type: ignore[attr-defined]


def test_the_probe_tells_a_listener_from_a_closed_port_and_a_full_accept_queue() -> None:
    import socket

    # A dual-stack wildcard listener (as Squid's http_port PORT is where IPv6 is up) shows in the
    # IPv6 dump, a plain IPv4 one in the IPv4 dump: both families are asked.
    family = socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET
    wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
    with (
        socket.create_server(("127.0.0.1", 0), backlog=2) as server,
        socket.create_server((wildcard, 0), family=family, dualstack_ipv6=family == socket.AF_INET6) as other,
    ):
        open_port, other_port = server.getsockname()[1], other.getsockname()[1]
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            closed = spare.getsockname()[1]
        mine = {os.geteuid()}
        assert listening.probe_listening([open_port, other_port, closed], 0.5, mine) == {
            open_port: True,
            other_port: True,
            closed: False,
        }
        # Nobody accepts: once the accept queue is full, the listener counts as not answering.
        clients = [socket.create_connection(("127.0.0.1", open_port)) for _ in range(3)]
        try:
            assert listening.probe_listening([open_port], 0.5, mine) == {open_port: False}
        finally:
            for client in clients:
                client.close()


# ---------------------------------------------------------------- whose listener it is

ROOT_UID, PROXY_UID, OTHER_UID = 0, 13, 65534
SQUIDS = frozenset({ROOT_UID, PROXY_UID})


def _listening(*uids: int, queued: int = 0) -> list[listening.Listener]:
    return [listening.Listener(queued, 128, uid) for uid in uids]


@pytest.mark.parametrize(
    ("sockets", "answers"),
    [
        pytest.param([], False, id="nobody listens"),
        pytest.param(_listening(ROOT_UID), True, id="root: Squid opens its listeners as root"),
        pytest.param(_listening(PROXY_UID), True, id="proxy"),
        pytest.param(_listening(OTHER_UID), False, id="another user took the dead instance's port"),
        pytest.param(_listening(ROOT_UID, OTHER_UID), False, id="another user beside the instance"),
        pytest.param(_listening(ROOT_UID, queued=128), False, id="Squid stopped accepting"),
        pytest.param(_listening(ROOT_UID, PROXY_UID), True, id="root and proxy"),
    ],
)
def test_a_port_answers_only_when_the_squid_user_alone_listens_on_it(
    sockets: list[listening.Listener], answers: bool
) -> None:
    assert listening.answering({3130: sockets, 3131: _listening(ROOT_UID)}, [3130, 3131], SQUIDS) == {
        3130: answers,
        3131: True,
    }


def test_the_squid_users_listeners_are_roots_and_its_own() -> None:
    assert listening.listener_owners("proxy", uid_of={"proxy": 13}.__getitem__) == {0, 13}
    with pytest.raises(KeyError):
        listening.listener_owners("nobody-here", uid_of={"proxy": 13}.__getitem__)


def test_the_watch_hands_the_probe_the_squid_users_listeners(tmp_path: Path) -> None:
    """Whatever probe the watch runs, it names root and the configured Squid user, looked up by name."""
    seen: list[Any] = []

    def probe(ports: Sequence[int], timeout: float, owners: Any) -> dict[int, bool]:
        seen.append(owners)
        return dict.fromkeys(ports, True)

    proxy = pwd.getpwnam("proxy").pw_uid  # Debian's base-passwd has it, with or without squid
    w = watch.Watch(str(_write_config(tmp_path)), probe=probe, run=FakeKernel(), out=io.StringIO())
    w.tick()
    assert w.config.squid_user == "proxy" and seen == [frozenset({0, proxy})]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to listen as another user")
def test_a_listener_of_another_user_is_not_an_instance() -> None:
    """The real kernel's sock_diag: the same port, listened on by nobody, then by us."""
    import socket

    code = (
        "import socket, sys\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "print(server.getsockname()[1], flush=True)\n"
        "sys.stdin.read()\n"
    )
    other = subprocess.Popen(
        [SYSTEM_PYTHON, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        user=OTHER_UID,
        group=OTHER_UID,
    )
    try:
        assert other.stdout is not None
        port = int(other.stdout.readline())
        owners = listening.listener_owners("proxy")
        found = listening.listeners(0.5)
        assert [s.uid for s in found[port]] == [OTHER_UID]
        assert listening.probe_listening([port], 0.5, owners) == {port: False}
    finally:
        other.kill()
        other.wait()
    with socket.create_server(("127.0.0.1", port)):
        assert listening.probe_listening([port], 0.5, owners) == {port: True}


# ---------------------------------------------------------------- on the box: plain python3


@pytest.fixture
def box_package(tmp_path: Path) -> Path:
    """carpfarm's stdlib-only modules, alone, as the role will copy them to the box."""
    target = tmp_path / "box"
    for path, source in copies("watch").items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(source)
    return target


def test_the_watch_runs_on_plain_python3_without_the_rest_of_carpfarm(box_package: Path) -> None:
    code = (
        "import sys, carpfarm.box.watch; "
        "print(sorted(m for m in sys.modules if m.startswith(('carpfarm', 'pydantic'))))"
    )
    done = subprocess.run(
        [SYSTEM_PYTHON, "-E", "-s", "-c", code], cwd=box_package, capture_output=True, text=True, check=True
    )
    box = [
        "carpfarm",
        "carpfarm.box",
        "carpfarm.box.balancer",
        "carpfarm.box.health",
        "carpfarm.box.kernelrules",
        "carpfarm.box.listening",
        "carpfarm.box.watch",
        "carpfarm.box.watchconfig",
    ]
    assert done.stdout.strip() == str(box)
    usage = subprocess.run(
        [SYSTEM_PYTHON, "-E", "-s", "-m", "carpfarm.box.watch", "--help"],
        cwd=box_package,
        capture_output=True,
        text=True,
    )
    assert usage.returncode == 0 and "--once" in usage.stdout


# ---------------------------------------------------------------- the real kernel, in a namespace

LISTENER = """
import socket, sys
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(sys.argv[1].encode())
    conn.close()
"""


@contextmanager
def namespace() -> Iterator[str]:
    name = f"carpfarm-watch-{os.getpid()}-{time.monotonic_ns() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Box:
    """A network namespace with fake frontend instances and the watch running in it."""

    def __init__(self, ns: str, package: Path, config: Path) -> None:
        self.ns, self.package, self.config = ns, package, config
        self.listeners: dict[int, subprocess.Popen[bytes]] = {}
        self.watch: subprocess.Popen[str] | None = None

    def run(self, *argv: str, check: bool = True) -> str:
        command = ["ip", "netns", "exec", self.ns, *argv]
        return subprocess.run(command, capture_output=True, text=True, check=check).stdout

    def listen(self, port: int, uid: int | None = None) -> None:
        """A stand-in instance on ``port``: ours (root's, like Squid's), or user ``uid``'s."""
        if uid is None:
            argv = ["ip", "netns", "exec", self.ns, sys.executable, "-c", LISTENER, str(port)]
        else:
            as_user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", SYSTEM_PYTHON]
            argv = ["ip", "netns", "exec", self.ns, *as_user, "-c", LISTENER, str(port)]
        self.listeners[port] = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.listeners[port].stdout is not None
        assert self.listeners[port].stdout.readline() == "ready\n", f"listener on {port} did not start"

    def kill(self, port: int) -> None:
        self.listeners[port].kill()
        self.listeners.pop(port).wait()

    def start_all(self, kind: str, config: Config) -> None:
        """Every instance listening, then the watch, until it has loaded the rules over all of them."""
        for port in config.ports:
            self.listen(port)
        self.start_watch()
        wait_for(lambda: loaded_rules_are(self, kind, config, config.ports), "the rules over every instance")

    def start_watch(self) -> None:
        argv = ["ip", "netns", "exec", self.ns, SYSTEM_PYTHON, "-E", "-s", "-m", "carpfarm.box.watch", str(self.config)]
        self.watch = subprocess.Popen(
            argv, cwd=self.package, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def stop(self) -> tuple[int | None, str]:
        if self.watch is None:
            return None, ""
        self.watch.send_signal(signal.SIGTERM)
        out, _ = self.watch.communicate(timeout=5)
        return self.watch.returncode, out

    def close(self) -> None:
        if self.watch and self.watch.poll() is None:
            self.watch.kill()
            self.watch.wait()
        for port in list(self.listeners):
            self.kill(port)

    def served(self, listen_port: int, count: int) -> Counter[int]:
        """Which instance answers each of ``count`` connections to the balancer's port."""
        code = (
            "import socket, sys\n"
            "for _ in range(int(sys.argv[2])):\n"
            "    with socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2) as c:\n"
            "        print(c.recv(16).decode())\n"
        )
        return Counter(int(line) for line in self.run(sys.executable, "-c", code, str(listen_port), str(count)).split())


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 5.0) -> float:
    """Seconds until ``condition`` holds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout} s")


def live_ports(box: Box, kind: str, names: kernelrules.Names) -> list[int]:
    """The ports the loaded balancer rules redirect to, in order."""
    if kind == "nftables":
        text = box.run("nft", "list", "table", "inet", names.table, check=False)  # none before the first load
        maps = re.findall(r"redirect to :numgen inc mod (\d+) map \{ ([^}]*) \}", text)
        if not maps:
            return []
        assert len(set(maps)) == 1, text
        modulus, entries = maps[0]
        ports = [int(e.split(":")[1]) for e in entries.split(",")]
        assert int(modulus) == len(ports)
        return ports
    text = box.run("iptables-save", "-t", "nat")
    return [int(p) for p in re.findall(rf"-A {names.chain} .*--to-ports (\d+)", text)]


def loaded_rules_are(box: Box, kind: str, config: Config, live: Sequence[int]) -> bool:
    if live_ports(box, kind, config.names) != list(live):
        return False
    if kind == "iptables":  # the chain's lines are as iptables-save prints them
        wanted = [
            line
            for line in watchconfig.rules_text(config, live).splitlines()
            if line.startswith(f"-A {config.names.chain} ")
        ]
        saved = box.run("iptables-save", "-t", "nat").splitlines()
        return [line for line in saved if line.startswith(f"-A {config.names.chain} ")] == wanted
    return True


@pytest.mark.parametrize(
    "kind", [pytest.param("nftables", marks=pytest.mark.nft), pytest.param("iptables", marks=pytest.mark.iptables)]
)
def test_in_a_namespace_a_dead_instance_is_taken_out_and_put_back(tmp_path: Path, box_package: Path, kind: str) -> None:
    rise, interval = 3, 0.05
    config_path = _write_config(tmp_path, 3, kind, interval=interval, timeout=0.1, rise=rise, min_interval=0.5)
    config = watchconfig.load_config(config_path)
    listen = int(config.ruleset["listen_port"])
    with namespace() as ns:
        box = Box(ns, box_package, config_path)
        try:
            box.start_all(kind, config)
            if kind == "iptables":  # the loader script's jump, which the watch leaves alone
                box.run(*f"iptables -t nat -A OUTPUT -p tcp --dport {listen} -j {config.names.chain}".split())
            assert box.served(listen, 30) == {3129: 10, 3130: 10, 3131: 10}

            box.kill(3130)
            out_after = wait_for(lambda: loaded_rules_are(box, kind, config, (3129, 3131)), "3130 taken out")
            assert out_after < 2.0
            assert box.served(listen, 20) == {3129: 10, 3131: 10}, "exactly fair over the two left, none refused"

            box.listen(3130)
            back_after = wait_for(lambda: loaded_rules_are(box, kind, config, PORTS), "3130 put back")
            assert back_after >= (rise - 1) * interval
            assert box.served(listen, 30) == {3129: 10, 3130: 10, 3131: 10}
            state = json.loads(Path(config.state_file).read_text())
            assert state["live"] == list(PORTS) and state["applied_sha256"] == state["rules_sha256"]

            Path(config.held_file).write_text("3131\n")
            assert box.watch is not None
            box.watch.send_signal(signal.SIGHUP)
            wait_for(lambda: loaded_rules_are(box, kind, config, (3129, 3130)), "3131 held out on SIGHUP")
        finally:
            code, log = box.stop()
            box.close()
        assert code == 0, log
        kinds = [line.split(" ")[1] for line in log.splitlines()]
        assert kinds[:1] == ["start:"] and kinds[-1] == "stop:" and {"down:", "up:", "live:"} <= set(kinds), log
        assert f"127.0.0.1:3130 answers again ({rise} good probes in a row)" in log
        assert "held: held 3131 (was none)" in log


@pytest.mark.nft
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to listen as another user")
def test_in_a_namespace_another_users_listener_on_a_dead_instances_port_gets_no_clients(
    tmp_path: Path, box_package: Path
) -> None:
    """A process of another user that takes a dead instance's port stays out of the rules; the
    instance's own listener (root's, as Squid's) is put back."""
    rise, interval = 2, 0.05
    config_path = _write_config(tmp_path, 3, "nftables", interval=interval, timeout=0.1, rise=rise, min_interval=0.2)
    config = watchconfig.load_config(config_path)
    with namespace() as ns:
        box = Box(ns, box_package, config_path)
        try:
            box.start_all("nftables", config)
            box.kill(3130)
            wait_for(lambda: loaded_rules_are(box, "nftables", config, (3129, 3131)), "3130 taken out")

            box.listen(3130, uid=OTHER_UID)
            time.sleep(1.0)  # many times rise probes and min_interval
            assert loaded_rules_are(box, "nftables", config, (3129, 3131)), "nobody's listener was put back"
            assert box.served(int(config.ruleset["listen_port"]), 20) == {3129: 10, 3131: 10}

            box.kill(3130)
            box.listen(3130)
            wait_for(lambda: loaded_rules_are(box, "nftables", config, PORTS), "the instance's own listener put back")
        finally:
            code, log = box.stop()
            box.close()
        assert code == 0, log
        assert log.count("answers again") == 1, log


@pytest.mark.nft
@pytest.mark.parametrize(("table", "code"), [("carpfarm", 0), ("no such table", 1)])
def test_once_probes_loads_and_exits_with_the_outcome(tmp_path: Path, box_package: Path, table: str, code: int) -> None:
    config_path = _write_config(tmp_path, 3, "nftables")
    data = json.loads(config_path.read_text())
    data["names"]["table"] = table
    config_path.write_text(json.dumps(data))
    config = watchconfig.load_config(config_path)
    with namespace() as ns:
        box = Box(ns, box_package, config_path)
        try:
            box.listen(3129)
            box.listen(3131)
            argv = [SYSTEM_PYTHON, "-E", "-s", "-m", "carpfarm.box.watch", "--once", str(config_path)]
            done = subprocess.run(["ip", "netns", "exec", ns, *argv], cwd=box_package, capture_output=True, text=True)
            assert done.returncode == code, done.stdout + done.stderr
            state = json.loads(Path(config.state_file).read_text())
            if code == 0:
                assert live_ports(box, "nftables", config.names) == [3129, 3131]
                assert state["live"] == [3129, 3131] and state["error"] is None
            else:
                assert box.run("nft", "list", "ruleset").strip() == ""
                assert state["applied_sha256"] is None and state["error"].startswith("nft -c -f ")
        finally:
            box.close()


# ---------------------------------------------------------------- the role's configuration

ROLE_DEFAULTS = {
    "frontend_balancer_watch_interval_ms": 200,
    "frontend_balancer_watch_fall": 1,
    "frontend_balancer_watch_rise": 5,
    "frontend_balancer_watch_min_interval_ms": 2000,
    "__frontend_balancer_watch_files": {k: f"/run/x-{k}" for k in watchconfig.DEFAULT_FILES},
    "__frontend_balancer_squid_user": "proxy",
}


@pytest.mark.parametrize(
    ("kind", "wccp"), [("iptables", None), ("nftables", None), ("iptables", "gre"), ("nftables", "l2")]
)
def test_the_roles_configuration_makes_the_watch_print_the_roles_rules_file(
    tmp_path: Path, kind: str, wccp: str | None
) -> None:
    """The role waits until the watch's rules_sha256 is the rules file's: both must print the same text."""
    ruleset = balancer(*farm(3, kind, wccp=wccp))
    text = render(TEMPLATES / "watch.json.j2", __frontend_balancer=ruleset, **ROLE_DEFAULTS)
    (tmp_path / "watch.json").write_text(text)
    config = watchconfig.load_config(tmp_path / "watch.json")
    assert config.probing == Probing(interval=0.2, timeout=0.2, fall=1, rise=5, min_interval=2.0)
    assert config.held_file == "/run/x-held_file" and config.ports == tuple(t["port"] for t in ruleset["targets"])
    assert config.squid_user == "proxy"
    rules_file = render(TEMPLATES / TEMPLATE[kind], __frontend_balancer_ruleset=ruleset)
    assert watchconfig.sha256(watchconfig.rules_text(config, config.ports)) == watchconfig.sha256(rules_file)


def test_out_and_back_reads_the_watchs_own_log_lines() -> None:
    events = [
        health.Event(100.0, "live", "3129 3130 (in 3130)"),
        health.Event(200.05, "down", "127.0.0.1:3129 stopped answering (1 bad probes in a row)"),
        health.Event(200.05, "live", "3130 (out 3129)"),
        health.Event(207.4, "live", "3129 3130 (in 3129)"),
        health.Event(300.0, "live", "3130 (out 3129)"),
    ]
    lines = [e.line() for e in events]
    assert watchlog.rule_changes(lines, 3129) == [(200.05, "out"), (207.4, "in"), (300.0, "out")]
    assert watchlog.out_and_back(lines, 3129, 200.0) == {"out_s": 0.05, "in_s": 7.4}
    assert watchlog.out_and_back(lines, 3130, 200.0) == {"out_s": None, "in_s": None}
    assert watchlog.out_and_back(["junk", ""], 3129, 0.0) == {"out_s": None, "in_s": None}


LOADERS = ROOT / "roles" / "frontend_balancer" / "templates" / "usr" / "local" / "sbin"


@pytest.mark.iptables
def test_the_iptables_loader_fails_when_its_rules_do_not_load(tmp_path: Path) -> None:
    """carpfarm-balancer.service (and Ansible) must see a failed load: the loader exits non-zero and
    does not mark the rules as loaded."""
    ruleset = balancer(*farm(3, "iptables"))
    rules_file, applied = tmp_path / "balancer.rules", tmp_path / "balancer.applied"
    rules_file.write_text("*nat\n:CARPFARM_BALANCE - [0:0]\n-A CARPFARM_BALANCE -p tcp -j NO_SUCH_TARGET\nCOMMIT\n")
    loader = render(LOADERS / "carpfarm-balancer-iptables.j2", __frontend_balancer=ruleset)
    loader = loader.replace("/run/carpfarm-balancer.applied", str(applied)).replace(
        "/etc/carpfarm/balancer.rules", str(rules_file)
    )
    (tmp_path / "carpfarm-balancer").write_text(loader)
    with namespace() as ns:
        done = subprocess.run(
            ["ip", "netns", "exec", ns, "sh", str(tmp_path / "carpfarm-balancer"), "apply"],
            capture_output=True,
            text=True,
        )
    assert done.returncode != 0, done.stdout + done.stderr
    assert not applied.exists()


@pytest.mark.nft
def test_a_site_rerun_while_an_instance_is_down_keeps_it_out(tmp_path: Path, box_package: Path) -> None:
    """What site.yml does to the kernel rules on a rerun, with the role's own rules file and loader:
    unchanged, the loader's check passes and nothing is loaded (the watch's rules, without the dead
    instance, stay); changed, the loader loads the full file and the handler's SIGHUP has the watch
    take the dead instance out again."""
    config_path = _write_config(tmp_path, 3, "nftables", interval=0.05, timeout=0.1, rise=3, min_interval=0.5)
    config = watchconfig.load_config(config_path)
    rules_file, applied = tmp_path / "balancer.nft", tmp_path / "balancer.applied"
    ruleset = balancer(*farm(3, "nftables", "roundrobin"))  # what _write_config gave the watch
    rules_file.write_text(render(TEMPLATES / TEMPLATE["nftables"], __frontend_balancer_ruleset=ruleset))
    loader = render(
        LOADERS / "carpfarm-balancer-nftables.j2", ansible_managed="Ansible managed", __frontend_balancer=ruleset
    )
    assert "state=/run/carpfarm-balancer.applied\n" in loader and "rules=/etc/carpfarm/balancer.nft\n" in loader
    loader = loader.replace("/run/carpfarm-balancer.applied", str(applied)).replace(
        "/etc/carpfarm/balancer.nft", str(rules_file)
    )
    (tmp_path / "carpfarm-balancer").write_text(loader)
    balancer_cmd = ["sh", str(tmp_path / "carpfarm-balancer")]
    with namespace() as ns:
        box = Box(ns, box_package, config_path)
        try:
            box.run(*balancer_cmd, "apply")  # the first site.yml
            for port in (3129, 3131):
                box.listen(port)
            box.start_watch()
            wait_for(lambda: loaded_rules_are(box, "nftables", config, (3129, 3131)), "dead 3130 taken out")

            # A rerun: the same rules file is written again; the loader's check passes, so site.yml
            # loads nothing and the watch's rules stay.
            rules_file.write_text(rules_file.read_text())
            assert subprocess.run(["ip", "netns", "exec", ns, *balancer_cmd, "check"]).returncode == 0
            time.sleep(0.3)
            assert loaded_rules_are(box, "nftables", config, (3129, 3131))

            # A changed rules file: site.yml loads it in full, then its handler reloads the watch.
            rules_file.write_text(rules_file.read_text() + "# changed\n")
            assert subprocess.run(["ip", "netns", "exec", ns, *balancer_cmd, "check"]).returncode != 0
            box.run(*balancer_cmd, "apply")
            assert live_ports(box, "nftables", config.names) == list(PORTS)
            assert box.watch is not None
            box.watch.send_signal(signal.SIGHUP)
            wait_for(lambda: loaded_rules_are(box, "nftables", config, (3129, 3131)), "3130 out again after reload")
            assert box.served(int(config.ruleset["listen_port"]), 20) == {3129: 10, 3131: 10}
        finally:
            code, log = box.stop()
            box.close()
        assert code == 0, log
