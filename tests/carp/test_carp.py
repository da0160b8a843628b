"""Squid CARP arithmetic, unit by unit, plus the properties CARP promises."""

from __future__ import annotations

import math
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carpfarm.carp import (
    CarpArray,
    CarpPeer,
    UrlRejected,
    cores,
    inet_ntop6,
    parse_url,
    peer_hash,
    select_batch,
    select_parent,
    url_key,
)
from carpfarm.carp import select as carp_select  # its private hash steps, checked against Squid's log

URLS = [f"http://site{i % 17}.example.org/obj/{i}.bin?x={i * 31}" for i in range(400)]


# Combined hashes and scores Squid 5.7 printed for key http://x0.example/o0 (debug_options 39,3),
# 100 equal-weight peers named p0..p99: regression anchors taken from the real binary.
@pytest.mark.parametrize(
    ("index", "combined"),
    [(0, 3931042055), (1, 4116662985), (2, 807373534)],
)
def test_combined_hash_matches_squid_log(index: int, combined: int) -> None:
    peers = [CarpPeer(f"p{i}", "127.0.0.1", 1) for i in range(100)]
    array = CarpArray.build(peers)
    key = carp_select.char_values(url_key("http://x0.example/o0"), True)
    user_hash = 0
    for _ in range(index + 1):
        user_hash = carp_select._accumulate(user_hash, key)
    assert carp_select._mix(user_hash ^ array.ranked[index].hash) == combined


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://Example.COM/Path?Q=1", "http://example.com/Path?Q=1"),
        ("HTTP://example.com:80/a", "http://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com:443/", "https://example.com/"),
        ("http://example.com", "http://example.com/"),
        ("http://user:pw@example.com/x", "http://example.com/x"),
        ("http://[2001:DB8::1]:81/v6", "http://[2001:db8::1]:81/v6"),
    ],
)
def test_url_key_is_the_effective_request_uri(url: str, key: str) -> None:
    assert url_key(url) == key


@pytest.mark.parametrize(
    ("parts", "key"),
    [
        (("host",), "example.com"),
        (("scheme", "host"), "http://example.com"),
        (("host", "port"), "example.com:80"),
        (("path",), "/a/b"),
        (("params",), "?q=1"),
        (("path", "params"), "/a/b?q=1"),
        (("params", "scheme"), "http://?q=1"),  # fixed order, whatever order was written
    ],
)
def test_carp_key_parts_concatenate_in_fixed_order(parts: tuple[str, ...], key: str) -> None:
    assert url_key("http://Example.com/a/b?q=1", parts) == key


def test_carp_key_falls_back_to_full_uri_when_empty() -> None:
    assert url_key("http://example.com/a", ("params",)) == "http://example.com/a"


def test_peer_hash_sign_extends_high_bytes() -> None:
    assert peer_hash("caché", signed_char=True) != peer_hash("caché", signed_char=False)
    assert peer_hash("cache", signed_char=True) == peer_hash("cache", signed_char=False)


def test_equal_weights_give_unit_multipliers() -> None:
    array = CarpArray.build([CarpPeer(f"p{i}", "h", 1, 3) for i in range(7)])
    assert [r.multiplier for r in array.ranked] == [1.0] * 7


def test_peers_are_walked_by_weight_then_config_order() -> None:
    peers = [CarpPeer("a", "h", 1, 5), CarpPeer("b", "h", 1, 1), CarpPeer("c", "h", 1, 5), CarpPeer("d", "h", 1, 1)]
    assert [p.name for p in CarpArray.build(peers).peers] == ["b", "d", "a", "c"]


def test_tiny_load_factor_is_zeroed_and_nan_never_wins() -> None:
    # 1001 equal peers: every load factor is under 1/1000, so Squid zeroes them all.
    peers = [CarpPeer(f"p{i}", "h", 1) for i in range(1001)]
    array = CarpArray.build(peers)
    assert array.ranked[0].multiplier == 0.0
    assert all(math.isnan(r.multiplier) for r in array.ranked[1:])
    assert array.select("http://example.com/") is None


def test_zero_weight_peers_are_left_out() -> None:
    array = CarpArray.build([CarpPeer("a", "h", 1, 0), CarpPeer("b", "h", 1, 1)])
    assert array.peers == (CarpPeer("b", "h", 1, 1),)


def test_down_peer_cannot_win_but_others_keep_their_urls() -> None:
    peers = [CarpPeer(f"p{i}", "h", 1) for i in range(5)]
    for url in URLS:
        before = select_parent(url, peers)
        after = select_parent(url, peers, down=["p2"])
        assert after is not None and after.name != "p2"
        if before is not None and before.name != "p2":
            assert after == before


def test_deleting_a_middle_peer_remaps_far_more_than_its_share() -> None:
    peers = [CarpPeer(f"p{i}", "h", 1) for i in range(5)]
    fewer = [p for p in peers if p.name != "p1"]
    moved = sum(select_parent(u, peers) != select_parent(u, fewer) for u in URLS) / len(URLS)
    drained = sum(select_parent(u, peers) != select_parent(u, peers, down=["p1"]) for u in URLS) / len(URLS)
    assert drained < 0.3
    assert moved > 0.45


def test_unknown_carp_key_part_is_refused() -> None:
    with pytest.raises(ValueError, match="carp-key"):
        CarpPeer("a", "h", 1, carp_key=("hostname",))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=1, max_value=12), weight=st.integers(min_value=1, max_value=5))
def test_appending_an_equal_weight_peer_moves_urls_only_to_it(n: int, weight: int) -> None:
    peers = [CarpPeer(f"cache{i}-backend1", "h", 1, weight) for i in range(n)]
    grown = [*peers, CarpPeer("newhost-backend1", "h", 1, weight)]
    for url in URLS[:150]:
        before, after = select_parent(url, peers), select_parent(url, grown)
        assert after == before or (after is not None and after.name == "newhost-backend1")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(min_value=2, max_value=10), victim=st.integers(min_value=0, max_value=9))
def test_marking_a_peer_down_moves_only_its_urls(n: int, victim: int) -> None:
    peers = [CarpPeer(f"h{i}", "h", 1) for i in range(n)]
    dead = peers[victim % n].name
    for url in URLS[:150]:
        before, after = select_parent(url, peers), select_parent(url, peers, down=[dead])
        assert before is not None and after is not None
        assert after == before or before.name == dead


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://Example.com./x", "http://example.com/x"),
        ("http://[::ffff:192.0.2.1]:80/", "http://192.0.2.1/"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://h#frag", "http://h/#frag"),
        ("ftp://a%20b:c@h/", "ftp://a%20b:c@h/"),
        ("http://h:4294967376/", "http://h/"),
    ],
)
def test_url_key_canonicalises_like_squid(url: str, key: str) -> None:
    assert url_key(url) == key


@pytest.mark.parametrize("url", ["http://h:/", "http://h:0/", "http://.h/", "http://a..b/", "coap://h/", "x"])
def test_urls_squid_refuses_are_refused(url: str) -> None:
    with pytest.raises(UrlRejected):
        parse_url(url)


def test_carp_key_uses_the_parsed_host_and_port() -> None:
    assert url_key("http://[2001:DB8::1]/a?b", ("host", "port")) == "[2001:db8::1]:80"
    assert url_key("HTTPS://u@Example.com.:443/a?b", ("scheme", "host", "port", "params")) == (
        "https://example.com:443?b"
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16))
def test_inet_ntop6_is_glibcs(packed: bytes) -> None:
    assert inet_ntop6(packed) == socket.inet_ntop(socket.AF_INET6, packed)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2, 0xFFFF]), min_size=8, max_size=8))
def test_inet_ntop6_zero_runs_are_glibcs(words: list[int]) -> None:
    packed = b"".join(w.to_bytes(2, "big") for w in words)
    assert inet_ntop6(packed) == socket.inet_ntop(socket.AF_INET6, packed)


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(
        r"\A(0x[0-9a-fA-F]{1,9}|0[0-7]{0,11}|[1-9][0-9]{0,10})(\.(0x[0-9a-f]{1,3}|0[0-7]{0,4}|[1-9][0-9]{0,3})){0,3}\Z"
    )
)
def test_ipv4_literals_parse_like_inet_aton(host: str) -> None:
    try:
        expected = socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        expected = host.lower()
    if expected == "0.0.0.0":
        expected = host.lower()  # the any-address stays text in Squid
    assert parse_url(f"http://{host}/").host == expected


_NAMES = st.text(alphabet="abcé-0123456789", min_size=1, max_size=8)
_URLS = st.lists(
    st.builds(
        lambda host, path, port: f"http://{host}{port}/{path}",
        st.text(alphabet="abcXYZ.-", min_size=1, max_size=10).filter(
            lambda h: ".." not in h and not h.startswith(".") and h.strip(".")
        ),
        st.text(alphabet="ab/?=&%é~", max_size=40),
        st.sampled_from(["", ":80", ":8080"]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=120, deadline=None)
@given(
    names=st.lists(_NAMES, min_size=1, max_size=12, unique=True),
    weights=st.lists(st.integers(min_value=0, max_value=4), min_size=12, max_size=12),
    urls=_URLS,
    down=st.integers(min_value=0, max_value=15),
    key=st.sampled_from([None, ("host",), ("path", "params")]),
    signed=st.booleans(),
)
def test_batch_selection_is_the_reference_one(
    names: list[str],
    weights: list[int],
    urls: list[str],
    down: int,
    key: tuple[str, ...] | None,
    signed: bool,
) -> None:
    peers = [CarpPeer(n, "h", 1, w, key) for n, w in zip(names, weights, strict=False)]
    grown = CarpArray.build([*peers, CarpPeer("zz-new", "h", 1, 1, key)], signed)
    array = CarpArray.build(peers, signed)
    dead = {names[down % len(names)]}
    got = select_batch([(array, ()), (array, dead), (grown, dead)], urls)
    assert got[0] == [array.select(u) for u in urls]
    assert got[1] == [array.select(u, dead) for u in urls]
    assert got[2] == [grown.select(u, dead) for u in urls]


def test_batch_selection_with_mixed_carp_keys_and_progress() -> None:
    peers = [CarpPeer("a", "h", 1, 1, ("host",)), CarpPeer("b", "h", 1, 2), CarpPeer("c", "h", 1, 1)]
    array = CarpArray.build(peers)
    calls: list[tuple[int, int]] = []
    got = select_batch([(array, ["c"])], URLS, lambda done, total: calls.append((done, total)))
    assert got[0] == [array.select(u, ["c"]) for u in URLS]
    assert calls[-1] == (len(URLS), len(URLS))


def test_batch_selection_of_1001_equal_peers_picks_nobody() -> None:
    array = CarpArray.build([CarpPeer(f"p{i}", "h", 1) for i in range(1001)])
    assert select_batch([(array, ())], URLS[:5])[0] == [None] * 5


@pytest.mark.parametrize("weights", [(1, 1, 1), (1, 2, 3)])  # one multiplier (integer compare), mixed (floats)
def test_batch_selection_shared_among_cores_is_the_same(
    weights: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cores, "_forking_allowed", True)  # as the CLI allows it
    peers = [CarpPeer(f"p{i}", "h", 1, weights[i % len(weights)]) for i in range(30)]
    array = CarpArray.build(peers)
    grown = CarpArray.build([*peers, CarpPeer("zz-new", "h", 1)])
    urls = [*URLS, *(f"https://Big.Example.net:8443/{'x' * (i % 7)}/{i}" for i in range(1500))]
    jobs = [(array, ()), (grown, {"p3"})]
    calls: list[tuple[int, int]] = []
    forked = select_batch(jobs, urls, lambda done, total: calls.append((done, total)), parallel_from=0)
    assert forked == select_batch(jobs, urls, parallel_from=10**18)
    assert forked[1][:50] == [grown.select(u, {"p3"}) for u in urls[:50]]
    assert calls[-1] == (len(urls), len(urls))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_batch_selection_of_long_keys_with_high_bytes() -> None:
    # Keys of 10 to 700 bytes: the vector lanes are masked only every few dozen bytes.
    array = CarpArray.build([CarpPeer(f"p{i}", "h", 1) for i in range(40)])
    urls = [f"http://h{i}.example/" + "é" * (i % 90) + "x" * (i % 300) for i in range(0, 700, 7)]
    assert select_batch([(array, ())], urls)[0] == [array.select(u) for u in urls]
