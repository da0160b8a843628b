"""carpfarm.carp against a real Squid: every URL must go where we predict.

Each case starts Debian's squid as a CARP frontend on loopback in front of
recording parents, sends the URLs through it, and compares the parent that
answered with ``select_parent``. Squid must be installed (``make setup`` does
it); without it these tests fail rather than skip.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from carpfarm.carp import CarpPeer, select_parent
from squidrig import SQUID, PeerSpec, running_squid

pytestmark = pytest.mark.squid


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


def test_squid_binary_is_there() -> None:
    assert os.access(SQUID, os.X_OK), f"{SQUID} missing: run 'make setup' (installs Debian's squid)"


@pytest.mark.parametrize("case", list(CASES))
def test_select_parent_agrees_with_squid_on_every_url(case: str) -> None:
    specs = CASES[case]
    peers = [CarpPeer(s.name, "127.0.0.1", 1, s.weight, tuple(s.carp_key) if s.carp_key else None) for s in specs]
    denied = [s.name for s in specs if s.denied]
    urls = _urls()
    seen: Counter[str] = Counter()
    mismatches = []
    with running_squid(specs) as squid:
        for url in urls:
            got = squid.parent_for(url)
            want = select_parent(url, peers, down=denied)
            assert want is not None
            seen[str(got)] += 1
            if got != want.name:
                mismatches.append((url, got, want.name))
    assert not mismatches, f"{len(mismatches)}/{len(urls)} disagree, e.g. {mismatches[:5]}"
    # The test means something only if traffic really spread over the usable peers.
    assert set(seen) == {s.name for s in specs if not s.denied}, seen


def test_more_than_1000_peers_defeat_carp_in_squid_too() -> None:
    """Over 1000 equal peers, every load factor is zeroed: Squid's CARP picks nobody and
    everything falls back to the first parent. carpfarm's model refuses such a farm."""
    specs = [PeerSpec(f"p{i}") for i in range(1001)]
    peers = [CarpPeer(s.name, "127.0.0.1", 1) for s in specs]
    urls = _urls()[:30]
    assert all(select_parent(u, peers) is None for u in urls)
    # All 1001 names share two recording parents: p0 alone on one, the rest on the other.
    with running_squid(specs, answered_by=lambda name: "first" if name == "p0" else "rest") as squid:
        answered = Counter(squid.parent_for(u) for u in urls)
    assert answered == Counter({"first": len(urls)})


def _answers(specs: list[PeerSpec], urls: list[str]) -> dict[str, str | None]:
    with running_squid(specs) as squid:
        return {url: squid.parent_for(url) for url in urls}


def test_draining_a_middle_peer_moves_only_its_urls_deleting_it_moves_far_more() -> None:
    """Five equal peers, the middle one retired two ways, measured on real Squid.

    Drained (cache_peer kept, ``cache_peer_access ... deny all``): its hash still feeds
    the walk, so only its own URLs move. Deleted: every later peer's score changes."""
    names = [f"cache{i}-backend1" for i in range(1, 6)]
    middle = names[2]
    urls = [f"http://origin.example/obj/{i}" for i in range(500)]
    before = _answers([PeerSpec(n) for n in names], urls)
    drained = _answers([PeerSpec(n, denied=n == middle) for n in names], urls)
    deleted = _answers([PeerSpec(n) for n in names if n != middle], urls)

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
    print(
        f"real Squid, middle of 5 peers, 500 URLs: drained moved {share['drained']:.1%}, deleted {share['deleted']:.1%}"
    )
