"""carpfarm.carp against a real Squid: every URL must go where we predict.

Each case starts Debian's squid as a CARP frontend on loopback in front of
recording parents, sends the URLs through it, and compares the parent that
answered with ``select_parent``. Every case runs on two releases: squid 5.7
(Debian 12) and squid 6.13 (Debian 13), one the host's own package (``make
setup`` installs it), the other from the root ``lab/build-squid-root.sh
SUITE`` builds for the release the host is not (``make squid-roots``).
Without either, these tests fail rather than skip.
``CARPFARM_SKIP_SQUID_ROOTS=trixie`` (or ``all``) explicitly skips the
releases that need a root, and the run's summary says so in capitals.
"""

from __future__ import annotations

import os
from collections import Counter
from functools import cache

import pytest

from carpfarm.carp import CarpPeer, UrlRejected, select_parent, url_key
from carpfarm.lab.squidrig import SQUID_RELEASES, PeerSpec, SquidRelease, running_squid

pytestmark = pytest.mark.squid
SKIP_ROOTS = "CARPFARM_SKIP_SQUID_ROOTS"


@cache
def _problem(release: SquidRelease) -> str | None:
    return release.problem()


@pytest.fixture(params=SQUID_RELEASES, ids=[r.label for r in SQUID_RELEASES])
def squid_release(request: pytest.FixtureRequest) -> SquidRelease:
    """Each Squid release the agreement is held to; one that cannot run fails the test."""
    release: SquidRelease = request.param
    problem = _problem(release)
    if problem:
        opted_out = os.environ.get(SKIP_ROOTS, "").replace(",", " ").split()
        if release.suite and (release.suite in opted_out or "all" in opted_out):
            # conftest.py repeats these skips in capitals at the end of the run.
            pytest.skip(f"NOT TESTED on squid {release.label}: {SKIP_ROOTS} is set ({problem})")
        pytest.fail(f"{release.label}: {problem} (or set {SKIP_ROOTS}={release.suite} to skip it, loudly)")
    return release


def _urls() -> list[str]:
    urls = []
    for i in range(320):
        host = ["www.example.com", "Static.Example.NET", f"cdn{i % 9}.example.org", "img.example.com:8080"][i % 4]
        path = ["/", f"/obj/{i}", f"/a/b/c{i}.png", f"/q?id={i}&v={i % 5}", f"/Mixed/Case/{i}.JS"][i % 5]
        port = ":80" if i % 11 == 0 and ":" not in host else ""
        urls.append(f"http://{host}{port}{path}")
    return urls


CASES = {
    "equal weights": [PeerSpec(f"cache{i}-backend{j}") for i in (1, 2, 3) for j in (1, 2)],
    "unequal weights": [
        PeerSpec("cache1-backend1", 1),
        PeerSpec("cache1-backend2", 3),
        PeerSpec("cache2-backend1", 2),
        PeerSpec("cache2-backend2", 5),
        PeerSpec("cache3-backend1", 1),
    ],
    "carp-key mixed": [
        PeerSpec("k1", 1, ("host", "path")),
        PeerSpec("k2", 1, ("scheme", "host", "port")),
        PeerSpec("k3", 2, ("path", "params")),
        PeerSpec("k4", 1, None),
    ],
    "one peer denied": [
        PeerSpec("cache1-backend1"),
        PeerSpec("cache1-backend2", denied=True),
        PeerSpec("cache2-backend1"),
        PeerSpec("cache2-backend2"),
    ],
    "non-ascii names": [PeerSpec("caché-1"), PeerSpec("naïve-2"), PeerSpec("plain-3")],
}


def test_squid_release_runs_and_reports_its_version(squid_release: SquidRelease) -> None:
    assert _problem(squid_release) is None


@pytest.mark.parametrize("case", list(CASES))
def test_select_parent_agrees_with_squid_on_every_url(case: str, squid_release: SquidRelease) -> None:
    specs = CASES[case]
    peers = [CarpPeer(s.name, "127.0.0.1", 1, s.weight, tuple(s.carp_key) if s.carp_key else None) for s in specs]
    denied = [s.name for s in specs if s.denied]
    urls = _urls()
    seen: Counter[str] = Counter()
    mismatches = []
    with running_squid(specs, release=squid_release) as squid:
        for url in urls:
            got = squid.parent_for(url)
            want = select_parent(url, peers, down=denied)
            assert want is not None
            seen[str(got)] += 1
            if got != want.name:
                mismatches.append((url, got, want.name))
    print(f"squid {squid_release.label}, {case}: {len(urls) - len(mismatches)}/{len(urls)} URLs agree")
    assert not mismatches, f"{len(mismatches)}/{len(urls)} disagree, e.g. {mismatches[:5]}"
    # The test means something only if traffic really spread over the usable peers.
    assert set(seen) == {s.name for s in specs if not s.denied}, seen


def test_more_than_1000_peers_defeat_carp_in_squid_too(squid_release: SquidRelease) -> None:
    """Over 1000 equal peers, every load factor is zeroed: Squid's CARP picks nobody and
    everything falls back to the first parent. carpfarm's model refuses such a farm."""
    specs = [PeerSpec(f"p{i}") for i in range(1001)]
    peers = [CarpPeer(s.name, "127.0.0.1", 1) for s in specs]
    urls = _urls()[:30]
    assert all(select_parent(u, peers) is None for u in urls)

    # All 1001 names share two recording parents: p0 alone on one, the rest on the other.
    def recorder(name: str) -> str:
        return "first" if name == "p0" else "rest"

    with running_squid(specs, recorder, release=squid_release) as squid:
        answered = Counter(squid.parent_for(u) for u in urls)
    assert answered == Counter({"first": len(urls)})


def _answers(specs: list[PeerSpec], urls: list[str], release: SquidRelease) -> dict[str, str | None]:
    with running_squid(specs, release=release) as squid:
        return {url: squid.parent_for(url) for url in urls}


def test_draining_a_middle_peer_moves_only_its_urls_deleting_it_moves_far_more(squid_release: SquidRelease) -> None:
    """Five equal peers, the middle one retired two ways, measured on real Squid.

    Drained (cache_peer kept, ``cache_peer_access ... deny all``): its hash still feeds
    the walk, so only its own URLs move. Deleted: every later peer's score changes."""
    names = [f"cache{i}-backend1" for i in range(1, 6)]
    middle = names[2]
    urls = [f"http://origin.example/obj/{i}" for i in range(500)]
    before = _answers([PeerSpec(n) for n in names], urls, squid_release)
    drained = _answers([PeerSpec(n, denied=n == middle) for n in names], urls, squid_release)
    deleted = _answers([PeerSpec(n) for n in names if n != middle], urls, squid_release)

    moved_drained = {u for u in urls if drained[u] != before[u]}
    moved_deleted = {u for u in urls if deleted[u] != before[u]}
    owned = {u for u in urls if before[u] == middle}
    assert moved_drained == owned  # exactly its share, nothing else
    assert 0.12 < len(owned) / len(urls) < 0.28
    assert len(moved_deleted) > 2 * len(moved_drained)

    # carpfarm's prediction is the same, URL by URL.
    peers = [CarpPeer(n, "127.0.0.1", 1) for n in names]
    kept = [p for p in peers if p.name != middle]
    assert moved_drained == {u for u in urls if select_parent(u, peers, down=[middle]) != select_parent(u, peers)}
    assert moved_deleted == {u for u in urls if select_parent(u, kept) != select_parent(u, peers)}
    share = {"drained": len(moved_drained) / len(urls), "deleted": len(moved_deleted) / len(urls)}
    moved = ", ".join(f"{how} moved {part:.1%}" for how, part in share.items())
    print(f"squid {squid_release.label}, middle of 5 peers, 500 URLs: {moved}")


# Every form of a URL that Squid 5.7 and 6.13 canonicalise before CARP hashes it (AnyP::Uri::parse()
# and absolute() in src/anyp/Uri.cc), with the key carpfarm predicts, or None where Squid
# refuses the URL. ``{i}`` varies the path so that a wrong key shows on some of the URLs.
CANONICAL_FORMS: dict[str, str | None] = {
    "http://Example.COM./x{i}": "http://example.com/x{i}",  # case of the host, trailing dot
    "http://example.com../x{i}": "http://example.com/x{i}",  # every trailing dot
    "HTTP://example.com/x{i}": "http://example.com/x{i}",  # case of the scheme
    "Https://Ex.COM.:443/x{i}": "https://ex.com/x{i}",
    "http://example.com:80/x{i}": "http://example.com/x{i}",  # explicit default port
    "http://example.com:0080/x{i}": "http://example.com/x{i}",
    "http://example.com:+80/x{i}": "http://example.com/x{i}",  # atoi()
    "http://example.com:80abc/x{i}": "http://example.com/x{i}",
    "http://example.com:4294967376/x{i}": "http://example.com/x{i}",  # (int) 2**32 + 80
    "http://example.com:443/x{i}": "http://example.com:443/x{i}",
    "https://example.com:443/x{i}": "https://example.com/x{i}",
    "https://example.com:80/x{i}": "https://example.com:80/x{i}",
    "http://user:pw@example.com/x{i}": "http://example.com/x{i}",  # userinfo dropped for http(s)
    "https://a@b:c@example.com/x{i}": "https://example.com/x{i}",  # the last '@' ends it
    "ftp://us%65r:p%C3%A9@example.com/x{i}": "ftp://user:p%C3%A9@example.com/x{i}",  # kept, re-encoded
    "ftp://u%25s%40r:p%%w@example.com:2121/x{i}": "ftp://u%25s%40r:p%25w@example.com:2121/x{i}",
    "http://[2001:DB8:0:0::1]:8080/x{i}": "http://[2001:db8::1]:8080/x{i}",  # inet_ntop form
    "http://[2001:db8:0:0:1:0:0:1]/x{i}": "http://[2001:db8::1:0:0:1]/x{i}",
    "http://2001:db8::1/x{i}": "http://[2001:db8::1]/x{i}",  # unbracketed: no port
    "http://[2001:db8::1]junk:82/x{i}": "http://[2001:db8::1]:82/x{i}",
    "http://[::1/x{i}": "http://[::1]/x{i}",
    "http://[::ffff:192.0.2.1]/x{i}": "http://192.0.2.1/x{i}",  # IPv4-mapped prints as IPv4
    "http://[::192.0.2.1]/x{i}": "http://[::192.0.2.1]/x{i}",
    "http://[::]/x{i}": "http://::/x{i}",  # the any-address stays text, brackets gone
    "http://127.1/x{i}": "http://127.0.0.1/x{i}",  # inet_aton forms
    "http://0x7f.1:81/x{i}": "http://127.0.0.1:81/x{i}",
    "http://017.0.0.1/x{i}": "http://15.0.0.1/x{i}",
    "http://2130706433/x{i}": "http://127.0.0.1/x{i}",
    "http://example.com?q={i}": "http://example.com/?q={i}",  # empty path becomes '/'
    "http://example.com#f{i}": "http://example.com/#f{i}",  # the fragment is hashed too
    "http://example.com/a%7E{i}": "http://example.com/a%7E{i}",  # percent-encoding untouched
    "http://example.com/a~{i}": "http://example.com/a~{i}",
    "http://example.com/A b{i}": "http://example.com/Ab{i}",  # uri_whitespace strip
    "http://Ünïcode.Example/ä{i}": "http://Ünïcode.example/ä{i}",  # only ASCII is lowered
    "whois://example.com/x{i}": "whois://example.com/x{i}",
    "http://example.com:/x{i}": None,  # port 0
    "http://example.com:65536/x{i}": None,
    "http://.example.com/x{i}": None,
    "http://a..example.com/x{i}": None,
    "coap://example.com/x{i}": None,  # 501: not forwarded
    "gopher://example.com/x{i}": None,  # gone from Squid 6, and from Debian's 5.7 since 5.7-2+deb12u5
    "FOO://example.com:81/x{i}": None,
}


def test_squid_canonicalises_urls_as_predicted(squid_release: SquidRelease) -> None:
    specs = [PeerSpec(f"cache{i}-backend1") for i in range(1, 8)]
    peers = [CarpPeer(s.name, "127.0.0.1", 1) for s in specs]
    keyed = [CarpPeer(s.name, "127.0.0.1", 1, 1, ("scheme", "host", "port", "path")) for s in specs]
    bad = []
    with running_squid(specs, release=squid_release) as squid:
        for form, canonical in CANONICAL_FORMS.items():
            for i in range(16):
                url = form.replace("{i}", str(i))
                got = squid.parent_for_raw(url)
                if canonical is None:
                    with pytest.raises(UrlRejected):
                        url_key(url)
                    if got is not None:
                        bad.append((url, got, "rejected"))
                    continue
                assert url_key(url) == canonical.replace("{i}", str(i))
                want = select_parent(url, peers)
                if want is None or got != want.name:
                    bad.append((url, got, want and want.name))
    assert not bad, f"{len(bad)} disagree, e.g. {bad[:5]}"
    print(f"squid {squid_release.label}: {len(CANONICAL_FORMS)} URL forms x 16 agree")
    # The same forms with a carp-key: host and port as Squid parsed them.
    with running_squid([PeerSpec(p.name, 1, p.carp_key) for p in keyed], release=squid_release) as squid:
        for form, canonical in CANONICAL_FORMS.items():
            if canonical is None:
                continue
            for i in range(8):
                url = form.replace("{i}", str(i))
                want = select_parent(url, keyed)
                got = squid.parent_for_raw(url)
                if want is None or got != want.name:
                    bad.append((url, got, want and want.name))
    assert not bad, f"carp-key: {len(bad)} disagree, e.g. {bad[:5]}"


# CONNECT's authority-form targets, as Squid 5.7 and 6.13 parse them (sscanf, not the URL parser),
# with the key carpfarm predicts ("host:port", the port always printed), or None where Squid
# refuses the target. ``{i}`` varies the host so that a wrong key shows on some of them.
CONNECT_FORMS: dict[str, str | None] = {
    "host{i}.example.com:443": "host{i}.example.com:443",
    "Host{i}.Example.COM.:443": "host{i}.example.com:443",  # case, trailing dot
    "host{i}.example.com": "host{i}.example.com:443",  # no port: 443
    "host{i}.example.com:8443": "host{i}.example.com:8443",
    "host{i}.example.com:0443": "host{i}.example.com:443",
    "host{i}.example.com:+443": "host{i}.example.com:443",
    "host{i}.example.com:443abc": "host{i}.example.com:443",
    "host{i}.example.com:8443/x": "host{i}.example.com:8443",
    "host{i}.example.com:abc": "host{i}.example.com:443",  # no digit: the port stays 443
    "host{i}.example.com:": "host{i}.example.com:443",
    "host{i}.example.com:4294967739": "host{i}.example.com:443",  # (int) 2**32 + 443
    "[2001:DB8::{i}]:443": "[2001:db8::{i}]:443",
    "[2001:db8:0:0::{i}]": "[2001:db8::{i}]:443",
    "[::ffff:192.0.2.{i}]:8443": "192.0.2.{i}:8443",
    "192.0.2.{i}:443": "192.0.2.{i}:443",
    "0x7f.{i}:443": "127.0.0.{i}:443",
    "host{i}.example.com:0": None,
    "host{i}.example.com:65536": None,
    "host{i}..example.com:443": None,
    ".host{i}.example.com:443": None,
    ":443": None,
}


def test_connect_is_placed_by_its_authority(squid_release: SquidRelease) -> None:
    """CONNECT hashes ``host:port`` (``effectiveRequestUri()``); with a carp-key, the parts it
    has: a host and a port, no scheme and no path (an empty key falls back to ``host:port``)."""
    plain = [PeerSpec(f"cache{i}-backend1", w) for i, w in enumerate([1, 3, 2, 5, 1], 1)]
    keyed = [
        PeerSpec("k1", 1, ("host", "path")),
        PeerSpec("k2", 2, ("path", "params")),
        PeerSpec("k3", 1, ("scheme", "port")),
        PeerSpec("k4", 3, None),
    ]
    bad = []
    for specs in (plain, keyed):
        peers = [CarpPeer(s.name, "127.0.0.1", 1, s.weight, tuple(s.carp_key) if s.carp_key else None) for s in specs]
        with running_squid(specs, release=squid_release) as squid:
            for form, canonical in CONNECT_FORMS.items():
                for i in range(1, 9 if canonical else 2):
                    authority = form.replace("{i}", str(i))
                    got = squid.parent_for_connect(authority)
                    if canonical is None:
                        with pytest.raises(UrlRejected):
                            url_key(authority, connect=True)
                        if got is not None:
                            bad.append((authority, got, "refused"))
                        continue
                    assert url_key(authority, connect=True) == canonical.replace("{i}", str(i))
                    want = select_parent(authority, peers, connect=True)
                    if want is None or got != want.name:
                        bad.append((authority, got, want and want.name))
    assert not bad, f"{len(bad)} disagree (authority, squid, model): {bad[:5]}"
    print(f"squid {squid_release.label}: {len(CONNECT_FORMS)} CONNECT forms agree, plain and with carp-keys")


def test_squid_refuses_urls_of_8192_bytes_or_more(squid_release: SquidRelease) -> None:
    """``AnyP::Uri::parse()`` refuses a target of MAX_URL (8192) bytes or more: no parent."""
    specs = [PeerSpec(f"cache{i}-backend1") for i in range(1, 6)]
    peers = [CarpPeer(s.name, "127.0.0.1", 1) for s in specs]
    bad = []
    with running_squid(specs, release=squid_release) as squid:
        for size in (8180, 8190, 8191, 8192, 8193, 9000):
            for i in range(6):
                head = f"http://example.com/{i}/"
                url = head + "x" * (size - len(head))
                got = squid.parent_for_raw(url)
                want = None if size >= 8192 else select_parent(url, peers)
                if size >= 8192:
                    with pytest.raises(UrlRejected):
                        url_key(url)
                if got != (want and want.name):
                    bad.append((size, i, got, want and want.name))
    assert not bad, f"{len(bad)} disagree (bytes, i, squid, model): {bad[:5]}"


def test_a_peer_under_the_floor_hands_everything_to_the_next_lightest(squid_release: SquidRelease) -> None:
    """Weights 1 of 1001: the lightest peer's load factor is floored to 0, so its multiplier is 0,
    the next one's ``inf`` (a division by that 0) and every later one's ``nan``: the next lightest
    peer takes every URL. With it denied too, CARP picks nobody and Squid falls back to its first
    usable parent in configuration order (as HAProxy's ``balance first`` does, carpfarm-carp.lua)."""
    specs = [PeerSpec("p-light", 1), PeerSpec("p-300", 300), PeerSpec("p-250a", 250), PeerSpec("p-250b", 250)]
    specs.append(PeerSpec("p-200", 200))
    peers = [CarpPeer(s.name, "127.0.0.1", 1, s.weight) for s in specs]
    urls = _urls()[:60]
    assert {select_parent(u, peers).name for u in urls} == {"p-200"}  # type: ignore[union-attr]
    assert all(select_parent(u, peers, down=["p-200"]) is None for u in urls)
    with running_squid(specs, release=squid_release) as squid:
        assert Counter(squid.parent_for(u) for u in urls) == Counter({"p-200": len(urls)})
    denied = [PeerSpec(s.name, s.weight, denied=s.name in ("p-200", "p-light")) for s in specs]
    with running_squid(denied, release=squid_release) as squid:
        assert Counter(squid.parent_for(u) for u in urls) == Counter({"p-300": len(urls)})
