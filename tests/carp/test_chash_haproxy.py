"""carpfarm.carp.chash against a real HAProxy: every request must reach the server we predict.

Each case starts Debian's haproxy in HTTP mode on loopback, with ``balance uri ...`` and
``hash-type consistent ...`` in front of small HTTP servers that answer with their own name and the
request target they received, sends several hundred proxy-style requests (absolute-form targets:
``GET http://host:port/path?query HTTP/1.1``), and compares who answered, and the target it got,
with ``select_server`` and ``normalized_target``; where haproxy answers 400 itself, the model must
have raised ``TargetRejected``.
Every case runs on HAProxy 2.6 (Debian 12) and 3.0 (Debian 13): the host's own package (the
Makefile installs haproxy) and the other release's from the root ``lab/build-squid-root.sh SUITE``
builds (``make squid-roots``), run with ``chroot ROOT /usr/sbin/haproxy``. A release whose binary
is missing is skipped, and the skip's reason says so in capitals (``pytest -ra`` lists it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from carpfarm.carp.chash import (
    HaproxyRelease,
    HaproxyServer,
    TargetRejected,
    UriBalance,
    normalized_target,
    select_server,
)
from carpfarm.lab import haproxyrig
from carpfarm.lab.haproxyrig import BINARIES, HaproxyBinary, ask


def _present(binary: HaproxyBinary) -> HaproxyBinary:
    missing = binary.missing()
    if missing:
        pytest.skip(f"HAPROXY {binary.label} NOT TESTED: {missing}")
    return binary


# --- the rig: carpfarm.lab.haproxyrig's named servers, haproxy with balance uri in front ----------


def haproxy_cfg(
    port: int, servers: Sequence[HaproxyServer], ports: dict[str, int], balance: UriBalance, extra: Sequence[str]
) -> str:
    lines = [
        "global",
        "    nbthread 1",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 10s",
        "    timeout server 10s",
        *(f"    {line}" for line in extra),
        "frontend fe",
        f"    bind 127.0.0.1:{port}",
        "    default_backend be",
        "backend be",
        f"    balance {balance.balance_words()}",
        f"    hash-type {balance.hash_type_words()}",
    ]
    for s in servers:
        address = s.address or "127.0.0.1"
        words = [f"server {s.name} {'ipv6@' if ':' in address else ''}{address}:{ports[s.name]}"]
        words += [f"id {s.id}"] * (s.id is not None) + [f"weight {s.weight}"]
        words += ["disabled"] * s.down + ["backup"] * s.backup
        words += [f"hash-key {s.hash_key}"] * (s.hash_key != "id")
        lines.append("    " + " ".join(words))
    return "\n".join(lines) + "\n"


@contextmanager
def running_haproxy(
    binary: HaproxyBinary, servers: Sequence[HaproxyServer], balance: UriBalance, extra: Sequence[str] = ()
) -> Iterator[tuple[int, list[HaproxyServer]]]:
    """Start haproxy in front of answering servers, stop it by its pid afterwards. Yields its port
    and the servers with the ports they listen on (hash-key addr-port hashes them)."""

    def render(port: int, ports: dict[str, int], _: Path) -> str:
        return haproxy_cfg(port, servers, ports, balance, extra)

    named = [(s.name, s.address) for s in servers]
    with haproxyrig.running_haproxy(binary, named, render) as (port, ports):
        yield port, [replace(s, port=ports[s.name]) for s in servers]


# --- the requests ----------------------------------------------------------------------------

HOSTS = [
    "www.example.com",
    "Static.Example.NET",
    "cdn{i}.example.org",
    "img.example.com:8080",
    "192.0.2.{i}",
    "[2001:db8::{i}]:8443",
    "www.example.com:80",
    "secure.example.com:443",
    "user:secret@auth.example.com",
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
    "/p;param={i}?a=1&b=2&c=%23frag{i}",  # a raw "#" gets 400 unless accept-invalid-http-request
    "",
    "?only=query{i}",
    "/deep/{i}/" + "/".join(f"seg{j}" for j in range(12)),
    "/search?q=" + "word+" * 60 + "{i}",
    "/long/{i}/" + "x" * 3000,
    "/~user/{i}/index.html?a=%7E&b=~",
]
SCHEMES = ["http", "https", "HTTP", "Https"]


def targets(count: int) -> list[bytes]:
    """Absolute-form targets of many shapes, plus a few origin-form ones."""
    out = []
    for i in range(count):
        host = HOSTS[i % len(HOSTS)].format(i=i % 250)
        path = PATHS[(i * 7 + i // len(HOSTS)) % len(PATHS)].format(i=i, k=i % 5)
        scheme = SCHEMES[(i // 3) % len(SCHEMES)]
        out.append(f"{scheme}://{host}{path}".encode())
    out += [f"/origin/{i}?x={i}".encode() for i in range(count // 40)]
    return out


def _predict(
    target: bytes, servers: Sequence[HaproxyServer], balance: UriBalance, model: HaproxyRelease, **options: bool
) -> tuple[str | None, bytes]:
    """What the model expects ``ask`` to return: (server, target it receives) or (None, b"400")."""
    try:
        server = select_server(target, servers, balance, model, **options)
    except TargetRejected:
        return None, b"HTTP/1.1 400 Bad request"
    assert server is not None
    return server.name, normalized_target(target, model, options.get("accept_invalid", False))


def check_agreement(
    binary: HaproxyBinary,
    servers: Sequence[HaproxyServer],
    balance: UriBalance,
    requests: Sequence[bytes],
    extra: Sequence[str] = (),
    **options: bool,
) -> Counter[str | None]:
    """Send every request through a real haproxy; the model must name the answering server and
    the target that server received, or predict haproxy's 400. ``options``: ``select_server``'s
    allbackups and accept_invalid, which ``extra`` must configure. Returns how many requests each
    server answered (None: haproxy refused them)."""
    answered: Counter[str | None] = Counter()
    bad = []
    with running_haproxy(binary, servers, balance, extra) as (port, listening):
        for target in requests:
            got = ask(port, target, host=not options.get("accept_invalid"))
            want = _predict(target, listening, balance, binary.model, **options)
            answered[got[0]] += 1
            if got != want:
                bad.append((target[:100], got[0], want[0], got[1][:100], want[1][:100]))
    rejected = answered[None]
    print(f"haproxy {binary.label}: {len(requests) - len(bad)}/{len(requests)} requests agree ({rejected} refused)")
    assert not bad, f"{len(bad)}/{len(requests)} disagree (target, haproxy, model, seen, predicted): {bad[:3]}"
    return answered


# --- the cases -------------------------------------------------------------------------------

S = HaproxyServer
SIX = [
    S("alpha", weight=1, id=3),
    S("bravo", weight=3, id=17),
    S("charlie", weight=2, id=5),
    S("delta", weight=5, id=42),
    S("echo", weight=1, id=8),
    S("foxtrot", weight=4, id=100),
    S("golf", weight=2, id=9),
]
WHOLE = UriBalance(whole=True)  # balance uri whole + a bare hash-type consistent (sdbm, avalanche)
CASES: dict[str, tuple[list[HaproxyServer], UriBalance, int]] = {
    "unequal weights, explicit ids": (SIX, WHOLE, 440),
    "one server disabled": ([replace(s, down=s.name == "delta") for s in SIX], WHOLE, 300),
    "weights changed, one weight 0": (
        [replace(s, weight=w) for s, w in zip(SIX, [4, 1, 7, 2, 0, 1, 3], strict=True)],
        WHOLE,
        300,
    ),
    "ids partly automatic": ([replace(s, id=None) if s.id in (3, 5, 100) else s for s in SIX], WHOLE, 200),
    "sdbm without avalanche": (SIX, UriBalance.parse("uri whole", "consistent sdbm"), 200),
    "djb2 avalanche": (SIX, UriBalance.parse("uri whole", "consistent djb2 avalanche"), 120),
    "wt6": (SIX, UriBalance.parse("uri whole", "consistent wt6"), 120),
    "crc32": (SIX, UriBalance.parse("uri whole", "consistent crc32"), 120),
    "uri without whole": (SIX, UriBalance.parse("uri"), 160),
    "uri len and depth": (SIX, UriBalance.parse("uri whole len 40 depth 4"), 160),
    "uri path-only whole": (SIX, UriBalance.parse("uri path-only whole"), 160),
}


@pytest.mark.parametrize("case", list(CASES))
def test_select_server_agrees_with_haproxy_on_every_request(case: str, haproxy: HaproxyBinary) -> None:
    servers, balance, count = CASES[case]
    answered = check_agreement(haproxy, servers, balance, targets(count))
    usable: set[str | None] = {s.name for s in servers if s.usable}
    if count >= 200:  # traffic really spread over the usable servers, and only over them
        assert set(answered) - {None} == usable, answered
    assert set(answered) <= usable | {None}
    assert answered[None] < count / 5  # most shapes are accepted


def test_haproxy_reports_the_release_the_model_assumes(haproxy: HaproxyBinary) -> None:
    assert haproxy.reported_version().startswith(f"HAProxy version {haproxy.version}."), haproxy.reported_version()


def test_non_ascii_bytes_hash_unsigned(haproxy: HaproxyBinary) -> None:
    """With accept-invalid-http-request, bytes >= 0x80 (hashed unsigned), a fragment, and in 3.0 an
    authority that ends in a query are accepted (no Host header: 3.0 checks it regardless)."""
    requests = [f"http://bücher.example/straße/{i}?q=é{i}#frag{i}".encode() for i in range(60)]
    requests += [f"http://a{i}.example?q={i}".encode() for i in range(30)]
    requests += [f"http://[::1/{i}".encode() for i in range(10)]
    options = ["option accept-invalid-http-request"]
    answered = check_agreement(haproxy, SIX, WHOLE, requests, options, accept_invalid=True)
    assert None not in answered
    # Without the option, haproxy refuses the non-ASCII ones (and 3.0 all), as the model says.
    assert check_agreement(haproxy, SIX, WHOLE, requests[::9])[None] >= len(requests[:60:9])


BACKUPS = [
    S("main1", weight=2, id=1, down=True),
    S("main2", weight=1, id=2, down=True),
    S("spare1", weight=1, id=3, backup=True, down=True),
    S("spare2", weight=2, id=4, backup=True),
    S("spare3", weight=3, id=5, backup=True),
]


def test_first_usable_backup_takes_everything_without_active_servers(haproxy: HaproxyBinary) -> None:
    answered = check_agreement(haproxy, BACKUPS, WHOLE, targets(60))
    assert set(answered) - {None} == {"spare2"}


def test_allbackups_hashes_over_the_backup_servers(haproxy: HaproxyBinary) -> None:
    answered = check_agreement(haproxy, BACKUPS, WHOLE, targets(160), ["option allbackups"], allbackups=True)
    assert set(answered) - {None} == {"spare2", "spare3"}


def test_moving_a_server_moves_only_its_keys_on_haproxy(haproxy: HaproxyBinary) -> None:
    """Disabling one server moves exactly the requests it owned, on the real haproxy too."""
    requests = targets(300)

    def answers(servers: list[HaproxyServer]) -> dict[bytes, str]:
        with running_haproxy(haproxy, servers, WHOLE) as (port, _):
            return {t: name for t in requests if (name := ask(port, t)[0])}

    before = answers(SIX)
    after = answers([replace(s, down=s.name == "charlie") for s in SIX])
    assert before.keys() == after.keys()
    moved = {t for t in before if before[t] != after[t]}
    assert moved == {t for t in before if before[t] == "charlie"}
    assert moved


# --- hash-key (HAProxy 3.0 only) ----------------------------------------------------------------

HASH_KEY_BINARIES = [b for b in BINARIES if b.model.hash_key]


@pytest.fixture(params=HASH_KEY_BINARIES, ids=[b.label for b in HASH_KEY_BINARIES])
def haproxy_with_hash_key(request: pytest.FixtureRequest) -> HaproxyBinary:
    return _present(request.param)


HASH_KEY_CASES: dict[str, list[HaproxyServer]] = {
    "addr, one address each": [replace(s, hash_key="addr", address=f"127.0.0.{n + 2}") for n, s in enumerate(SIX)],
    "addr, all on one address: every point tied": [replace(s, hash_key="addr", address="127.0.0.1") for s in SIX],
    "addr-port, IPv4": [replace(s, hash_key="addr-port", address="127.0.0.1") for s in SIX],
    "addr-port, IPv6": [replace(s, hash_key="addr-port", address="::1") for s in SIX],
    "mixed id and addr": [replace(s, hash_key="addr", address="127.0.0.9") if s.id in (5, 42) else s for s in SIX],
}


@pytest.mark.parametrize("case", list(HASH_KEY_CASES))
def test_hash_key_agrees_with_haproxy(case: str, haproxy_with_hash_key: HaproxyBinary) -> None:
    servers = HASH_KEY_CASES[case]
    check_agreement(haproxy_with_hash_key, servers, WHOLE, targets(200))
