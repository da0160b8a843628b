"""Squid's CARP, reproduced exactly: the peers' hashes and load factors and the choice of a parent
for one URL (``select``), the URL as Squid canonicalises it before hashing, and many URLs at once
in forked workers (``cores``)."""

from __future__ import annotations

from carpfarm.carp.select import (
    KEY_PARTS,
    CarpArray,
    CarpPeer,
    KeyPart,
    UrlRejected,
    inet_ntop6,
    parse_url,
    peer_hash,
    select_batch,
    select_parent,
    url_key,
)

__all__ = [
    "KEY_PARTS",
    "CarpArray",
    "CarpPeer",
    "KeyPart",
    "UrlRejected",
    "inet_ntop6",
    "parse_url",
    "peer_hash",
    "select_batch",
    "select_parent",
    "url_key",
]
