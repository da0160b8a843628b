"""Squid's CARP, reproduced exactly: the peers' hashes and load factors and the choice of a parent
for one URL (``select``), the URL (or a CONNECT's authority) as Squid canonicalises it into the key
CARP hashes (``url``), the choice for many URLs at once on vectors of URLs (``batch``), spread over
forked workers (``cores``)."""

from __future__ import annotations

from carpfarm.carp.batch import select_batch
from carpfarm.carp.select import KEY_PARTS, CarpArray, CarpPeer, KeyPart, peer_hash, select_parent
from carpfarm.carp.url import UrlRejected, inet_ntop6, parse_authority, parse_url, url_key

__all__ = [
    "KEY_PARTS",
    "CarpArray",
    "CarpPeer",
    "KeyPart",
    "UrlRejected",
    "inet_ntop6",
    "parse_authority",
    "parse_url",
    "peer_hash",
    "select_batch",
    "select_parent",
    "url_key",
]
