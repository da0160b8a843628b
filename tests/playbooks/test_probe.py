"""The clients' reading of each hop's cache verdict (playbooks/files/carpfarm-probe.py).

Squid 5 writes "X-Cache: HIT from NAME"; Squid 6 writes "Cache-Status: NAME;hit" (RFC 9211,
src/client_side_reply.cc: the cache's unique_hostname, then ";hit" or ";fwd=..." and ";detail=").
A farm may mix releases, so the verdicts follow the fields' order on the wire, whatever each hop wrote.
"""

from __future__ import annotations

import email

import pytest

from support.paths import ROOT, load_script

PROBE = ROOT / "playbooks" / "files" / "carpfarm-probe.py"


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        # Squid 5 on both layers.
        (
            ["X-Cache: MISS from cache1-4001", "X-Cache: MISS from carp1-frontend1"],
            ["MISS from cache1-4001", "MISS from carp1-frontend1"],
        ),
        # Squid 6 on both layers, a HIT on the backend, as 6.13 writes them.
        (
            ["Cache-Status: cache1-4001;hit;detail=match", "Cache-Status: carp1-frontend1;fwd=miss;detail=no-cache"],
            ["HIT from cache1-4001", "MISS from carp1-frontend1"],
        ),
        # A Squid 6 miss, then a denial that logs no source (the name alone).
        (
            ["Cache-Status: cache2-4002;fwd=miss", "Cache-Status: carp1-frontend2"],
            ["MISS from cache2-4002", "MISS from carp1-frontend2"],
        ),
        # Mixed releases: a Squid 5 backend behind a Squid 6 frontend, and the other way round.
        (
            ["X-Cache: HIT from cache1-4001", "Cache-Status: carp1-frontend1;fwd=miss"],
            ["HIT from cache1-4001", "MISS from carp1-frontend1"],
        ),
        (
            ["Cache-Status: cache1-4001;hit", "X-Cache: MISS from carp1-frontend1"],
            ["HIT from cache1-4001", "MISS from carp1-frontend1"],
        ),
        # One field holding the list, a quoted name (sf-string), other parameters.
        (
            ['Cache-Status: "cache1-4001";hit;ttl=30, carp1-frontend1;fwd=uri-miss'],
            ["HIT from cache1-4001", "MISS from carp1-frontend1"],
        ),
        ([], []),
    ],
)
def test_verdicts_follow_the_hops_whatever_header_each_wrote(fields: list[str], want: list[str]) -> None:
    headers = email.message_from_string("".join(f"{field}\r\n" for field in fields) + "Via: 1.1 x\r\n\r\n")
    assert load_script(PROBE).cache_verdicts(headers) == want
