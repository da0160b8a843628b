"""HAProxy's consistent URI hash (carpfarm.carp.chash), piece by piece, plus the properties a
consistent hash promises. tests/carp/test_chash_haproxy.py holds the whole to a real HAProxy."""

from __future__ import annotations

import ctypes
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carpfarm.carp.chash import (
    HAPROXY_2_6,
    HAPROXY_3_0,
    MASK,
    ChashRing,
    HaproxyRelease,
    HaproxyServer,
    TargetRejected,
    UriBalance,
    assign_ids,
    full_hash,
    hash_crc32,
    hash_djb2,
    hash_sdbm,
    hash_wt6,
    normalized_target,
    select_server,
    server_points,
    xxh32,
)

S = HaproxyServer
A, B, C = S("A"), S("B"), S("C")


# --- hash functions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "sdbm", "djb2"),
    [
        (b"", 0, 5381),
        (b"a", 97, 5381 * 33 + 97),
        # sdbm: 98 + (97 << 6) + (97 << 16) - 97; djb2: (5381 * 33 + 97) * 33 + 98
        (b"ab", 98 + 6208 + 6356992 - 97, 177670 * 33 + 98),
        (b"\xff", 255, 5381 * 33 + 255),  # bytes are unsigned in both
    ],
)
def test_sdbm_and_djb2_by_hand(data: bytes, sdbm: int, djb2: int) -> None:
    assert hash_sdbm(data) == sdbm
    assert hash_djb2(data) == djb2


def test_sdbm_wraps_at_32_bits() -> None:
    data = b"x" * 50
    h = 0
    for c in data:
        h = (c + h * 65599) % 2**32  # (h << 6) + (h << 16) - h is h * 65599
    assert hash_sdbm(data) == h


def test_crc32_and_wt6_known_values() -> None:
    assert hash_crc32(b"123456789") == 0xCBF43926  # the CRC-32 check value
    assert hash_wt6(b"") == 0xA53C965A ^ 0x5CA6953A  # the two seeds, untouched


def _c_full_hash(value: int) -> int:
    """full_hash() again, in C's unsigned 32-bit arithmetic, to catch a missing mask."""
    u = ctypes.c_uint32
    a = u(value).value
    a = u(u(a + 0x7ED55D16).value + u(a << 12).value).value
    a = u((a ^ 0xC761C23C) ^ (a >> 19)).value
    a = u(u(a + 0x165667B1).value + u(a << 5).value).value
    a = u(u(a + 0xD3A2646C).value ^ u(a << 9).value).value
    a = u(u(a + 0xFD7046C5).value + u(a << 3).value).value
    a = u((a ^ 0xB55A4F09) ^ (a >> 16)).value
    return u(a * 3221225473).value


@given(st.integers(min_value=0, max_value=MASK))
@settings(max_examples=200)
def test_full_hash_is_c_arithmetic(value: int) -> None:
    assert full_hash(value) == _c_full_hash(value)


def test_full_hash_anchor() -> None:
    assert full_hash(0) == 0xAB4ED927


@pytest.mark.parametrize(
    ("data", "seed", "expected"),
    [
        (b"", 0, 0x02CC5D05),  # the xxHash specification's values
        (b"abc", 0, 0x32D153FF),
        (b"Nobody inspects the spammish repetition", 0, 0xE2293B2F),
    ],
)
def test_xxh32_known_values(data: bytes, seed: int, expected: int) -> None:
    assert xxh32(data, seed) == expected


# --- the ring: points and the closest-point lookup, by hand -----------------------------------


def test_points_per_server_are_weight_times_16() -> None:
    assert len(server_points(S("s", weight=3), 1)) == 48
    assert server_points(S("s", weight=0), 1) == ()
    assert server_points(S("s", weight=5, down=True), 1) == ()


def test_point_keys_2_6_and_3_0() -> None:
    """2.6: full_hash(id x 4096 + j). Debian 13's 3.0: full_hash(full_hash(id) + j)."""
    assert server_points(S("s"), 7, HAPROXY_2_6) == tuple(full_hash(7 * 4096 + j) for j in range(16))
    assert server_points(S("s"), 7, HAPROXY_3_0) == tuple(full_hash(full_hash(7) + j) for j in range(16))
    # ids so large that id x 4096 overflows wrap as C's int arithmetic does
    assert server_points(S("s"), 2**20 + 1, HAPROXY_2_6)[0] == full_hash(4096)


def test_hash_key_addr_and_addr_port_3_0() -> None:
    v4 = S("s", hash_key="addr", address="127.0.0.1", port=8080)
    little_endian_loopback = 0x0100007F
    assert server_points(v4, 1, HAPROXY_3_0)[2] == full_hash(full_hash(little_endian_loopback) + 2)
    both = replace(v4, hash_key="addr-port")
    assert server_points(both, 1, HAPROXY_3_0)[0] == full_hash(full_hash(full_hash(8080) + little_endian_loopback))
    v6 = S("s", hash_key="addr-port", address="::1", port=80)
    assert server_points(v6, 1, HAPROXY_3_0)[0] == full_hash(xxh32(bytes(15) + b"\x01", full_hash(80)))
    assert server_points(S("s", hash_key="addr"), 9, HAPROXY_3_0) == server_points(S("s"), 9, HAPROXY_3_0)
    with pytest.raises(ValueError, match="hash-key"):
        ChashRing.build([v4], HAPROXY_2_6)


HAND = ChashRing.from_points([(100, A), (200, B), (300, C)])


@pytest.mark.parametrize(
    ("hash_value", "owner"),
    [
        (149, A),
        (150, A),  # halfway between 100 and 200: the previous point wins the tie
        (151, B),
        (200, B),  # on a point
        (201, B),
        (250, B),  # tie again: previous
        (299, C),
        (50, A),  # before the first point: its previous point is the last one, far behind
        (0xFFFFFFF0, A),  # after the last point: the next one is the first, 116 ahead
        (300 + 2**31 - 100, C),  # exactly halfway round from 300 to 100: previous
        (300 + 2**31 - 99, A),
    ],
)
def test_lookup_takes_the_closer_neighbour_previous_on_a_tie(hash_value: int, owner: HaproxyServer) -> None:
    assert HAND.lookup(hash_value) == owner


def test_equal_keys_keep_insertion_order() -> None:
    """eb32 duplicates: lookup_ge finds the first inserted, prev() from the next key the last."""
    ring = ChashRing.from_points([(100, A), (100, B), (200, C)])
    assert ring.lookup(100) == A
    assert ring.lookup(99) == A
    assert ring.lookup(150) == B  # tie between the last 100 (B) and 200: previous
    assert ring.lookup(151) == C


def test_one_server_takes_everything_and_none_means_503() -> None:
    ring = ChashRing.build([S("only", weight=3), S("off", down=True)])
    assert {ring.lookup(h) for h in (0, 1, 2**31, MASK)} == {S("only", weight=3)}
    assert ring.hash_for("http://x/", UriBalance()) == 0  # get_server_uh() skips the hash
    assert ChashRing.build([S("off", down=True), S("light", weight=0)]).lookup(5) is None


def test_backups() -> None:
    servers = [
        S("main", down=True),
        S("spare1", backup=True, down=True),
        S("spare2", backup=True),
        S("spare3", backup=True),
    ]
    assert select_server("http://x/1", servers) == S("spare2", backup=True)  # the first usable backup
    chosen = {select_server(f"http://x/{i}", servers, allbackups=True) for i in range(100)}
    assert chosen == {S("spare2", backup=True), S("spare3", backup=True)}
    assert select_server("http://x/1", [*servers, S("up")]) == S("up")  # any active server wins


def test_automatic_ids() -> None:
    # the counter steps past every server; each automatic one takes the first free id from there
    assert assign_ids([S("a"), S("b", id=2), S("c"), S("d", id=1), S("e")]) == (3, 2, 5, 1, 7)
    assert assign_ids([S("a"), S("b"), S("c")]) == (1, 2, 3)
    with pytest.raises(ValueError, match="repeat"):
        assign_ids([S("a", id=4), S("b", id=4)])


@pytest.mark.parametrize(
    "bad",
    [
        {"weight": 257},
        {"weight": -1},
        {"id": 0},
        {"id": 2**31},
        {"hash_key": "name"},
        {"address": "not-an-ip"},
        {"port": 65536},
    ],
)
def test_server_refuses_what_haproxy_refuses(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        S("s", **bad)  # type: ignore[arg-type]


# --- what is hashed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "v2_6", "v3_0"),
    [
        ("http://h/x", "http://h/x", "http://h/x"),
        ("http://h:80/x", "http://h/x", "http://h/x"),  # the scheme's default port goes
        ("HTTP://H:80/x", "HTTP://H/x", "HTTP://H/x"),  # case is kept, the scheme compared without it
        ("https://h:443/x", "https://h/x", "https://h/x"),
        ("https://h:80/x", "https://h:80/x", "https://h:80/x"),
        ("http://h:080/x", "http://h:080/x", "http://h:080/x"),  # ports compare as text
        ("http://h:/x", "http://h/x", "http://h/x"),  # an empty port is a default one
        ("http://u:p@h:80/x", "http://u:p@h/x", "http://u:p@h/x"),  # userinfo stays
        ("http://[::1]:80/x", "http://[::1]/x", "http://[::1]/x"),
        ("http://h", "http://h", "http://h/"),  # 3.0 gives an absent path "/"
        ("http://h:80", "http://h", "http://h/"),
        ("http://h/x?q=1", "http://h/x?q=1", "http://h/x?q=1"),
        ("/origin?x", "/origin?x", "/origin?x"),  # origin-form: untouched
    ],
)
def test_normalized_target(target: str, v2_6: str, v3_0: str) -> None:
    assert normalized_target(target, HAPROXY_2_6) == v2_6.encode()
    assert normalized_target(target, HAPROXY_3_0) == v3_0.encode()


def test_an_authority_ending_in_a_query() -> None:
    """The authority ends at the first '/' only: 2.6 keeps ``http://h:80?q`` whole (no port
    found), 3.0 refuses it, and with accept-invalid-http-request appends '/' after the query."""
    assert normalized_target("http://h:80?q", HAPROXY_2_6) == b"http://h:80?q"
    with pytest.raises(TargetRejected, match="authority"):
        normalized_target("http://h:80?q", HAPROXY_3_0)
    assert normalized_target("http://h:80?q", HAPROXY_3_0, accept_invalid=True) == b"http://h:80?q/"


@pytest.mark.parametrize(
    ("target", "v2_6", "v3_0"),
    [
        ("http://h/a#frag", True, True),
        ("http://h/caf\u00e9", True, True),
        ("http://a,b/x", False, True),
        ("http://a\\b/x", False, True),
        ("http://[::1/x", False, True),
        ("http://u@h?q", False, True),
        ("http://[::1]:8080/x", False, False),
        ("http://u:p@h/x", False, False),
    ],
)
def test_rejected_targets(target: str, v2_6: bool, v3_0: bool) -> None:
    for release, rejected in ((HAPROXY_2_6, v2_6), (HAPROXY_3_0, v3_0)):
        if rejected:
            with pytest.raises(TargetRejected):
                normalized_target(target, release)
        else:
            normalized_target(target, release)
        normalized_target(target, release, accept_invalid=True)  # option accept-invalid-http-request
    with pytest.raises(TargetRejected, match="cannot be"):
        normalized_target("http://h/a b", HAPROXY_2_6, accept_invalid=True)


URI = b"http://h.example:8080/a/b/c?x=1&y=2"


@pytest.mark.parametrize(
    ("balance", "hashed"),
    [
        ("uri whole", URI),
        ("uri", b"http://h.example:8080/a/b/c"),  # stops at '?'
        ("uri whole len 10", b"http://h.e"),
        ("uri depth 1", b"http:/"),  # stops before the 2nd '/': those of "//" count
        ("uri depth 3", b"http://h.example:8080/a"),
        ("uri whole depth 4", b"http://h.example:8080/a/b"),
        ("uri whole depth 5", URI),
        ("uri path-only", b"/a/b/c"),
        ("uri path-only whole", b"/a/b/c?x=1&y=2"),
        ("uri path-only depth 2", b"/a/b"),
        ("uri path-only len 3 whole", b"/a/"),
    ],
)
def test_hashed_part(balance: str, hashed: bytes) -> None:
    assert UriBalance.parse(balance).hashed_part(URI) == hashed


def test_path_only_without_a_path_hashes_nothing() -> None:
    assert UriBalance.parse("uri path-only").hashed_part(b"http://h") == b""
    assert UriBalance.parse("uri path-only").hashed_part(b"/p?q") == b"/p"


@pytest.mark.parametrize(
    ("hash_type", "function", "avalanche"),
    [
        ("consistent", "sdbm", True),  # bare: sdbm WITH avalanche
        ("consistent sdbm", "sdbm", False),  # a function named: no avalanche unless written
        ("consistent sdbm avalanche", "sdbm", True),
        ("consistent djb2", "djb2", False),
        ("consistent wt6 avalanche", "wt6", True),
        ("consistent crc32", "crc32", False),
    ],
)
def test_hash_type_defaults(hash_type: str, function: str, avalanche: bool) -> None:
    balance = UriBalance.parse("uri whole", hash_type)
    assert (balance.function, balance.avalanche) == (function, avalanche)
    assert UriBalance.parse(balance.balance_words(), balance.hash_type_words()) == balance


def test_hash_is_function_then_avalanche() -> None:
    uri = b"http://h/x"
    assert UriBalance(whole=True).hash(uri) == full_hash(hash_sdbm(uri))
    assert UriBalance(whole=True, function="djb2", avalanche=False).hash(uri) == hash_djb2(uri)


@pytest.mark.parametrize(
    ("balance", "hash_type"),
    [
        ("roundrobin", "consistent"),
        ("uri", "map-based"),
        ("uri whole", "consistent md5"),
        ("uri whole", "consistent sdbm fast"),
        ("uri deep", "consistent"),
        ("uri len 0", "consistent"),
        ("uri depth", "consistent"),
    ],
)
def test_parse_refuses_other_settings(balance: str, hash_type: str) -> None:
    with pytest.raises(ValueError):
        UriBalance.parse(balance, hash_type)


# --- properties ------------------------------------------------------------------------------------

servers_st = st.lists(
    st.tuples(st.integers(min_value=1, max_value=5000), st.integers(min_value=1, max_value=12)),
    min_size=1,
    max_size=7,
    unique_by=lambda t: t[0],
).map(lambda rows: [S(f"s{sid}", weight=w, id=sid) for sid, w in rows])
hashes_st = st.lists(st.integers(min_value=0, max_value=MASK), min_size=50, max_size=50)


@given(servers_st, st.integers(min_value=1, max_value=12), hashes_st)
@settings(max_examples=40, deadline=None)
def test_adding_a_server_moves_keys_only_to_it(servers: list[HaproxyServer], weight: int, hashes: list[int]) -> None:
    new = S("new", weight=weight, id=9999)
    before, after = ChashRing.build(servers), ChashRing.build([*servers, new])
    assert all(after.lookup(h) in (before.lookup(h), new) for h in hashes)


@given(servers_st, hashes_st, st.data())
@settings(max_examples=40, deadline=None)
def test_a_down_server_moves_only_its_own_keys(
    servers: list[HaproxyServer], hashes: list[int], data: st.DataObject
) -> None:
    down = data.draw(st.sampled_from(servers))
    after = ChashRing.build([replace(s, down=s == down) for s in servers])
    before = ChashRing.build(servers)
    for h in hashes:
        if before.lookup(h) != down:
            assert after.lookup(h) == before.lookup(h)
        else:
            assert after.lookup(h) != down


@pytest.mark.parametrize("release", [HAPROXY_2_6, HAPROXY_3_0], ids=["2.6", "3.0"])
@pytest.mark.parametrize(("weight", "low", "high"), [(1, 0.5, 1.7), (8, 0.7, 1.3)])
def test_adding_one_server_to_eight_moves_about_a_ninth(
    release: HaproxyRelease, weight: int, low: float, high: float
) -> None:
    """Only the newcomer's share moves (16 points a weight unit leave it rough at weight 1)."""
    servers = [S(f"s{i}", weight=weight, id=i * 7 + 1) for i in range(8)]
    urls = [f"http://site{i % 23}.example/obj/{i}?v={i % 7}" for i in range(3000)]
    grown = [*servers, S("new", weight=weight, id=77)]
    moved = sum(select_server(u, servers, release=release) != select_server(u, grown, release=release) for u in urls)
    assert low / 9 < moved / len(urls) < high / 9


def test_shares_follow_weights() -> None:
    """The arcs each server owns (half the gap on each side of its points) add up to about its
    share of the weights, once there are enough points."""
    servers = [S("w1", weight=64, id=1), S("w2", weight=128, id=2), S("w3", weight=192, id=3)]
    ring = ChashRing.build(servers)
    arcs = {s.name: 0.0 for s in servers}
    n = len(ring.keys)
    for i, key in enumerate(ring.keys):
        gap_before = (key - ring.keys[i - 1]) & MASK
        gap_after = (ring.keys[(i + 1) % n] - key) & MASK
        arcs[ring.owners[i].name] += (gap_before + gap_after) / 2 / 2**32
    for s in servers:
        assert abs(arcs[s.name] - s.weight / 384) < 0.1 * s.weight / 384
