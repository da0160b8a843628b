"""carpfarm-carp.lua in a real HAProxy: every request must reach the peer Squid's CARP picks.

Each case starts Debian's haproxy in HTTP mode on loopback with
``roles/frontend_balancer/files/carpfarm-carp.lua`` and the peers file ``carpfarm.carp.haproxy_lua``
renders, in front of small HTTP servers that answer with their own name
(``carpfarm.lab.haproxyrig``), sends a few hundred proxy requests of many shapes (absolute-form
targets and CONNECT authorities), and compares who answered with ``select_parent``, the model that
``tests/carp/test_carp_squid.py`` holds to real Squid 5.7 and 6.13. The model is given the target
as HAProxy hands it on (``normalized_target``, proven by ``tests/carp/test_chash_haproxy.py``);
where CARP picks nobody, ``balance first`` must have taken the first usable server, as Squid falls
back to its first usable parent. Every case runs on HAProxy 2.6 (Debian 12, Lua 5.3) and 3.0
(Debian 13, Lua 5.4), the other release's from the root ``lab/build-squid-root.sh SUITE`` builds;
a release whose binary is missing is skipped, and the skip's reason says so in capitals.
"""

from __future__ import annotations

import math
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from carpfarm.carp import CarpArray, CarpPeer, UrlRejected, peer_hash, select_parent
from carpfarm.carp.chash import HaproxyRelease, TargetRejected, normalized_target
from carpfarm.carp.haproxy_lua import backend_lines, lua_float, lua_load_lines, lua_string, peers_lua
from carpfarm.lab import haproxyrig
from carpfarm.lab.haproxyrig import HaproxyBinary, ask
from carpfarm.lab.squidrig import free_port
from support.paths import ROOT

SCRIPT = ROOT / "roles" / "frontend_balancer" / "files" / "carpfarm-carp.lua"


# --- the rig ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A CARP peer and its HAProxy server."""

    name: str
    weight: int = 1
    carp_key: tuple[str, ...] | None = None
    disabled: bool = False  # "disabled" in haproxy.cfg: MAINT from the start
    dead: bool = False  # health-checked, and nothing listens: DOWN after the first check

    @property
    def usable(self) -> bool:
        return not (self.disabled or self.dead)

    def carp_peer(self) -> CarpPeer:
        return CarpPeer(self.name, "127.0.0.1", 1, self.weight, self.carp_key)


def carp_cfg(port: int, ports: dict[str, int], seen: Path, peers: Sequence[Peer], frontend: Sequence[str]) -> str:
    lua = lua_load_lines(str(seen / "carpfarm-carp.lua"), str(seen / "peers.lua"))
    lines = [
        "global",
        "    nbthread 2",
        *(f"    {line}" for line in lua),
        f"    stats socket {seen / 'admin.sock'} mode 600 level admin",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 10s",
        "    timeout server 10s",
        "frontend fe",
        f"    bind 127.0.0.1:{port}",
        *(f"    {line}" for line in frontend),
        "    default_backend carp",
        "backend carp",
        *(f"    {line}" for line in backend_lines()),
    ]
    for p in peers:
        words = [f"server {p.name} 127.0.0.1:{free_port() if p.dead else ports[p.name]} weight {min(p.weight, 256)}"]
        words += ["disabled"] * p.disabled + ["check inter 100ms fall 1 rise 1"] * p.dead
        lines.append("    " + " ".join(words))
    return "\n".join(lines) + "\n"


@dataclass
class Running:
    port: int
    admin: Path  # the admin socket, as this host sees it

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(self.admin))
            conn.sendall(line.encode() + b"\n")
            return b"".join(iter(lambda: conn.recv(4096), b"")).decode().strip()


@contextmanager
def running_carp(binary: HaproxyBinary, peers: Sequence[Peer], frontend: Sequence[str] = ()) -> Iterator[Running]:
    """haproxy with the script and these peers' file, in front of a server per peer."""
    seen_dir: list[Path] = []

    def render(port: int, ports: dict[str, int], seen: Path) -> str:
        seen_dir.append(seen)
        return carp_cfg(port, ports, seen, peers, frontend)

    files = {"carpfarm-carp.lua": SCRIPT.read_text(), "peers.lua": peers_lua([p.carp_peer() for p in peers], "carp")}
    with haproxyrig.running_haproxy(binary, [(p.name, None) for p in peers], render, files) as (port, _):
        if any(p.dead for p in peers):
            time.sleep(1.0)  # a few checks: the dead servers are DOWN
        yield Running(port, binary.host_path(seen_dir[0] / "admin.sock"))


# --- the prediction --------------------------------------------------------------------------


def predict(
    method: bytes,
    target: bytes,
    peers: Sequence[Peer],
    release: HaproxyRelease,
    accept_invalid: bool = False,
    down: Sequence[str] = (),
) -> str | None:
    """The server that answers ``ask``: CARP's choice, else the first usable server in
    configuration order (``balance first``); None where HAProxy answers 400 itself."""
    connect = method == b"CONNECT"
    try:
        seen = target if connect else normalized_target(target, release, accept_invalid)
    except TargetRejected:
        return None
    unusable = {p.name for p in peers if not p.usable} | set(down)
    try:
        winner = select_parent(
            seen.decode("utf-8", "surrogateescape"), [p.carp_peer() for p in peers], unusable, True, connect
        )
    except UrlRejected:
        winner = None
    if winner is not None:
        return winner.name
    return next(p.name for p in peers if p.name not in unusable)


def squid_view_changed(target: bytes, peers: Sequence[Peer], release: HaproxyRelease) -> bool:
    """Whether HAProxy's rewriting of an accepted target changes what Squid would choose for it."""

    def choice(url: bytes) -> str | None:
        try:
            winner = select_parent(url.decode("utf-8", "surrogateescape"), [p.carp_peer() for p in peers])
        except UrlRejected:
            return None
        return winner and winner.name

    try:
        seen = normalized_target(target, release)
    except TargetRejected:
        return False
    return choice(seen) != choice(target)


def check(
    binary: HaproxyBinary,
    running: Running,
    peers: Sequence[Peer],
    requests: Sequence[tuple[bytes, bytes]],
    accept_invalid: bool = False,
    down: Sequence[str] = (),
) -> Counter[str | None]:
    """Send every (method, target) through haproxy: its server must be the predicted one."""
    answered: Counter[str | None] = Counter()
    bad = []
    for method, target in requests:
        got, seen = ask(running.port, target, host=not accept_invalid, method=method)
        want = predict(method, target, peers, binary.model, accept_invalid, down)
        answered[got] += 1
        if got != want:
            bad.append((method, target[:100], got, want, seen[:60]))
    print(
        f"haproxy {binary.label}: {len(requests) - len(bad)}/{len(requests)} requests agree ({answered[None]} refused)"
    )
    assert not bad, f"{len(bad)}/{len(requests)} disagree (method, target, haproxy, model, seen): {bad[:3]}"
    return answered


# --- the requests ----------------------------------------------------------------------------

HOSTS = [
    "www.example.com",
    "Static.Example.NET",
    "cdn{i}.example.org",
    "WWW.EXAMPLE.COM.",
    "Host{i}.Example.Com..",
    "img.example.com:8080",
    "img.example.com:080",
    "www.example.com:80",
    "secure.example.com:443",
    "192.0.2.{i}",
    "127.1",
    "0x7f.0.0.{i}:81",
    "[2001:DB8::{i}]:8443",
    "[2001:db8:0:0::{i}]",
    "[::ffff:192.0.2.{i}]",
    "user:secret@auth.example.com",
    "us%65r:p%C3%A9@ftp{i}.example.com",  # userinfo: kept for ftp, decoded and encoded again
    "u%25s%40r:p%%w@ftp.example.com:2121",
    "api.example.com:",
    "xn--bcher-kva.example",
]
PATHS = [
    "/",
    "/obj/{i}",
    "/a/b/c{i}.png",
    "/q?id={i}&v={k}",
    "/Mixed/Case/{i}.JS",
    "/caf%C3%A9/{i}?q=%20x%2By",
    "/a%2Fb/{i}?",
    "/p;param={i}?a=1&b=2&c=%23frag{i}",
    "",
    "?only=query{i}",
    "/deep/{i}/" + "/".join(f"seg{j}" for j in range(12)),
    "/search?q=" + "word+" * 60 + "{i}",
    "/long/{i}/" + "x" * 3000,
    "/~user/{i}/index.html?a=%7E&b=~",
]
SCHEMES = ["http", "https", "HTTP", "Https", "ftp"]


def targets(count: int) -> list[tuple[bytes, bytes]]:
    """GETs of absolute-form targets of many shapes."""
    out = []
    for i in range(count):
        host = HOSTS[i % len(HOSTS)].format(i=i % 250)
        path = PATHS[(i * 7 + i // len(HOSTS)) % len(PATHS)].format(i=i, k=i % 5)
        scheme = SCHEMES[(i // 3) % len(SCHEMES)]
        out.append((b"GET", f"{scheme}://{host}{path}".encode()))
    return out


# CONNECT authorities HAProxy takes (its request parser wants a host and ":digits", and none of
# ", # / ? @ \ [ ]" but an IP literal's brackets), with those Squid refuses (then balance first).
CONNECTS = [
    "host{i}.example.com:443",
    "Host{i}.Example.COM.:443",
    "host{i}.example.com:8443",
    "host{i}.example.com:0443",
    "host{i}.example.com:4294967739",  # (int) 2**32 + 443
    "[2001:DB8::{i}]:443",
    "[::ffff:192.0.2.{i}]:8443",
    "192.0.2.{i}:443",
    "0x7f.{i}:443",
    "host{i}.example.com:0",  # Squid refuses these three
    "host{i}..example.com:443",
    ":443",
]
# What HAProxy answers 400 to though Squid would take it: no port, a port that is not only digits,
# userinfo, a path.
CONNECTS_HAPROXY_REFUSES = [
    "host{i}.example.com",
    "host{i}.example.com:",
    "host{i}.example.com:+443",
    "host{i}.example.com:443abc",
    "[2001:db8::{i}]",
    "user@host{i}.example.com:443",
    "host{i}.example.com:443/x",
]


def connects(count: int, forms: Sequence[str] = CONNECTS) -> list[tuple[bytes, bytes]]:
    return [(b"CONNECT", forms[i % len(forms)].format(i=1 + i // len(forms)).encode()) for i in range(count)]


# URLs Squid refuses (no parent: balance first takes them), and the longest it takes.
REFUSED = [
    "http://a{i}..example.com/x",
    "http://.example.com/x{i}",
    "http://example.com:65536/x{i}",
    "http://example.com:0/x{i}",
    "coap://example.com/x{i}",
    "gopher://example.com/x{i}",
    "FOO://example.com:81/x{i}",
    "/origin/{i}?x=1",
]


def refused_and_long(count: int) -> list[tuple[bytes, bytes]]:
    out = [(b"GET", REFUSED[i % len(REFUSED)].format(i=i).encode()) for i in range(count)]
    for size in (8190, 8191, 8192, 8193, 9000):
        for i in range(4):
            head = f"http://example.com/{i}/"
            out.append((b"GET", (head + "x" * (size - len(head))).encode()))
    return out


# --- the peers file --------------------------------------------------------------------------


def test_peers_file_holds_squids_order_hashes_and_exact_multipliers() -> None:
    peers = [CarpPeer("b", "h", 1, 3), CarpPeer("a", "h", 1, 1), CarpPeer("c", "h", 1, 0), CarpPeer("d", "h", 1, 1)]
    text = peers_lua(peers, "carp", servers={"a": "srv-a"})
    rows = [line for line in text.splitlines() if line.lstrip().startswith("{ name")]
    assert [row.split('"')[1] for row in rows] == ["a", "d", "b"]  # weight ascending, ties in order, weight 0 out
    array = CarpArray.build(peers)
    for row, ranked in zip(rows, array.ranked, strict=True):
        assert f"hash = 0x{ranked.hash:08x}," in row
        assert f"multiplier = {ranked.multiplier.hex()}" in row
        assert float.fromhex(ranked.multiplier.hex()) == ranked.multiplier
    assert 'server = "srv-a"' in rows[0]
    assert [line for line in backend_lines() if "use-server" in line] == [
        "use-server %[var(txn.carpfarm_carp)] if { var(txn.carpfarm_carp) -m found }"
    ]


@pytest.mark.parametrize(
    ("value", "lua"),
    [(math.inf, "math.huge"), (math.nan, "(0/0)"), (0.0, "0x0.0p+0"), (0.5, "0x1.0000000000000p-1")],
)
def test_lua_float_is_exact(value: float, lua: str) -> None:
    assert lua_float(value) == lua


def test_lua_string_escapes_what_is_not_printable_ascii() -> None:
    assert lua_string('caché "1"\\') == '"cach\\195\\169 \\0341\\034\\092"'


@pytest.mark.parametrize(
    ("peers", "kwargs", "message"),
    [
        ([CarpPeer("a", "h", 1), CarpPeer("a", "h", 2)], {}, "more than once"),
        ([CarpPeer("caché", "h", 1)], {}, "give peer 'caché' a server name"),
        ([CarpPeer("a", "h", 1, 0)], {}, "no peer has a weight"),
        ([CarpPeer("a", "h", 1)], {"servers": {"b": "x"}}, "unknown peer"),
        ([CarpPeer("a", "h", 1)], {"fetch": "lua.x"}, "fetch 'lua.x'"),
    ],
)
def test_peers_lua_refuses_what_haproxy_cannot_take(
    peers: list[CarpPeer], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        peers_lua(peers, "carp", **kwargs)


def test_a_peer_named_outside_haproxys_characters_keeps_its_hash() -> None:
    """The hash comes from Squid's name=; the HAProxy server may be named otherwise."""
    peers = [CarpPeer("caché-1", "h", 1), CarpPeer("naïve-2", "h", 1)]
    text = peers_lua(peers, "carp", servers={"caché-1": "cache-1", "naïve-2": "naive-2"})
    assert f"hash = 0x{peer_hash('caché-1'):08x}" in text
    assert 'name = "cach\\195\\169-1", server = "cache-1"' in text


# --- the cases -------------------------------------------------------------------------------

SEVEN = [
    Peer("cache1-backend1", 1),
    Peer("cache1-backend2", 3),
    Peer("cache2-backend1", 2),
    Peer("cache2-backend2", 5),
    Peer("cache3-backend1", 1),
    Peer("cache3-backend2", 4),
    Peer("cache4-backend1", 2),
]
CASES: dict[str, list[Peer]] = {
    "unequal weights": SEVEN,
    "one disabled, one down by its health check": [
        replace(p, disabled=p.name == "cache2-backend2", dead=p.name == "cache3-backend2") for p in SEVEN
    ],
    "one carp-key": [replace(p, carp_key=("scheme", "host", "port", "path")) for p in SEVEN],
    "mixed carp-keys": [
        replace(p, carp_key=key)
        for p, key in zip(
            SEVEN, [("host", "path"), ("scheme", "host", "port"), ("path", "params"), None] * 2, strict=False
        )
    ],
    "weights over 256": [Peer("big1", 700), Peer("big2", 300), Peer("big3", 30), Peer("big4", 90), Peer("big5", 90)],
}


@pytest.mark.parametrize("case", list(CASES))
def test_lua_agrees_with_squids_carp_on_every_request(case: str, haproxy: HaproxyBinary) -> None:
    peers = CASES[case]
    requests = targets(360) + connects(60)
    with running_carp(haproxy, peers) as running:
        answered = check(haproxy, running, peers, requests)
    usable: set[str | None] = {p.name for p in peers if p.usable}
    assert set(answered) - {None} == usable, answered  # traffic spread over the usable servers
    assert answered[None] < len(requests) / 4  # most shapes are accepted
    changed = [t for m, t in requests if m == b"GET" and squid_view_changed(t, peers, haproxy.model)]
    # HAProxy hands on what its client sent but for the default port; only an empty port (dropped,
    # where Squid refuses the URL) changes Squid's choice.
    assert all(b"://api.example.com:" in t for t in changed), changed[:3]


def test_urls_squid_refuses_fall_to_the_first_usable_server(haproxy: HaproxyBinary) -> None:
    peers = [replace(p, disabled=p.name == "cache1-backend1") for p in SEVEN]
    with running_carp(haproxy, peers) as running:
        answered = check(haproxy, running, peers, refused_and_long(64))
    assert answered["cache1-backend2"] >= 64  # the first usable server, in configuration order


def test_connect_targets_haproxy_refuses(haproxy: HaproxyBinary) -> None:
    with running_carp(haproxy, SEVEN) as running:
        for method, target in connects(14, CONNECTS_HAPROXY_REFUSES):
            assert ask(running.port, target, method=method) == (None, b"HTTP/1.1 400 Bad request"), target


def test_non_ascii_bytes_are_signed_chars(haproxy: HaproxyBinary) -> None:
    """With accept-invalid-http-request, bytes from 0x80 reach the script; Squid adds them as
    negative (signed char), and so must the script."""
    requests = [(b"GET", f"http://bücher.example/straße/{i}?q=é{i}".encode()) for i in range(80)]
    requests += [(b"GET", f"http://Ünïcode{i}.Example/ä{i}".encode()) for i in range(40)]
    with running_carp(haproxy, SEVEN, ["option accept-invalid-http-request"]) as running:
        answered = check(haproxy, running, SEVEN, requests, accept_invalid=True)
    assert None not in answered
    assert len(answered) >= 5


# Weights 1 of 1001: Squid floors the lightest peer's load factor to 0, which makes the next
# lightest peer's multiplier inf and every later one's nan (test_carp_squid.py shows it on Squid).
FLOOR = [Peer("p-light", 1), Peer("p-300", 300), Peer("p-250a", 250), Peer("p-250b", 250), Peer("p-200", 200)]


def test_a_peer_under_the_floor(haproxy: HaproxyBinary) -> None:
    requests = targets(120)
    with running_carp(haproxy, FLOOR) as running:
        answered = check(haproxy, running, FLOOR, requests)
    assert set(answered) - {None} == {"p-200"}
    # p-200 down as well: CARP picks nobody; balance first takes the first usable server.
    peers = [replace(p, disabled=p.name in ("p-200", "p-light")) for p in FLOOR]
    with running_carp(haproxy, peers) as running:
        answered = check(haproxy, running, peers, requests)
    assert set(answered) - {None} == {"p-300"}


def test_state_changes_at_run_time(haproxy: HaproxyBinary) -> None:
    """Drained, weight 0 and maintenance servers, set on the admin socket, cannot win; they
    still feed the hash, so only their own requests move."""
    requests = targets(120) + connects(20)
    steps = [
        ([], []),
        (["set server carp/cache2-backend2 state drain"], ["cache2-backend2"]),
        (["set server carp/cache2-backend2 state ready", "set weight carp/cache1-backend2 0"], ["cache1-backend2"]),
        (["set weight carp/cache1-backend2 3", "set server carp/cache4-backend1 state maint"], ["cache4-backend1"]),
        (["set server carp/cache4-backend1 state ready"], []),
    ]
    with running_carp(haproxy, SEVEN) as running:
        before = None
        for commands, down in steps:
            for command in commands:
                assert running.command(command) == "", command
            answered = check(haproxy, running, SEVEN, requests, down=down)
            assert not set(down) & set(answered)
            before = before or answered
        assert answered == before  # back where it started
