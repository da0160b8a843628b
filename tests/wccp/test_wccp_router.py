"""The WCCPv2 router's side (carpfarm.wccp.router) and the messages it builds and reads
(carpfarm.wccp.wire), against HERE_I_AMs captured from Squid 5.7 (tests/data/wccp/) and Squid's
own layouts of REDIRECT_ASSIGN."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from carpfarm.wccp import bodies, wire
from carpfarm.wccp.router import Router, describe
from support.paths import ROOT

DATA = ROOT / "tests" / "data" / "wccp"
SQUID_CACHE = "127.0.0.1"  # the address Squid announced in the captures
ROUTER = "127.0.0.2"


def captured(name: str) -> bytes:
    return (DATA / f"{name}.bin").read_bytes()


def as_cache(packet: bytes, address: str, password: str | None = None) -> bytes:
    """A captured HERE_I_AM as another cache would send it: its address in the identity, signed again."""
    at = packet.index(struct.pack("!HH", 3, 44 if len(packet) > 140 else 32)) + 4
    moved = packet[:at] + wire._addr(address) + packet[at + 4 :]
    return wire.sign(moved, password)


def test_squids_here_i_am_decodes_with_its_identity_view_and_capabilities() -> None:
    hashed, masked = wire.decode(captured("here_i_am-hash-md5")), wire.decode(captured("here_i_am-mask"))
    assert hashed.type == masked.type == "HERE_I_AM"
    assert hashed.components == ["security_info", "service_info", "wc_id_info", "wc_view_info", "capability_info"]
    assert (len(hashed.identity), len(masked.identity)) == (44, 32)
    assert bodies.identity_element_size(hashed.identity, 0) == 44
    assert bodies.identity_element_size(masked.identity, 0) == 32
    assert hashed.view == bodies.View(1, [(ROUTER, 0)], [])
    assert masked.capabilities == {"forwarding_method": 2, "assignment_method": 2, "return_method": 2}
    assert wire.md5_matches(captured("here_i_am-hash-md5"), "s3cret")


def test_the_router_answers_with_its_identity_and_a_view_of_every_member() -> None:
    router = Router(ROUTER, passwords={0: "s3cret"})
    answer, events = router.here_i_am(captured("here_i_am-hash-md5"), SQUID_CACHE, now=0.0)
    assert answer is not None and events == ["service 0: 127.0.0.1 joined; member change number 1"]
    seen = wire.decode(answer)
    assert seen.type == "I_SEE_YOU" and seen.version == wire.VERSION_2
    assert seen.components == ["security_info", "service_info", "router_id_info", "router_view_info", "capability_info"]
    assert wire.md5_matches(answer, "s3cret") and not wire.md5_matches(answer, "other")
    assert (seen.router_id, seen.receive_id) == (ROUTER, 1)
    assert seen.view is not None
    assert (seen.view.change_number, seen.view.caches, seen.view.weights) == (1, [SQUID_CACHE], {SQUID_CACHE: 10000})
    assert seen.view.routers == [(ROUTER, 0)] and seen.view.key == ("0.0.0.0", 0)
    assert seen.service is not None and (seen.service.kind, seen.service.id) == ("standard", 0)
    assert seen.capabilities == {"forwarding_method": 3, "assignment_method": 3, "return_method": 3}


def test_membership_changes_move_the_change_number_and_silence_drops_a_cache() -> None:
    router = Router(ROUTER, passwords={0: "s3cret"})
    hello = captured("here_i_am-hash-md5")
    router.here_i_am(hello, SQUID_CACHE, now=0.0)
    answer, events = router.here_i_am(as_cache(hello, "127.0.0.3", "s3cret"), "127.0.0.3", now=1.0)
    assert events == ["service 0: 127.0.0.3 joined; member change number 2"]
    view = wire.decode(answer or b"").view
    assert view is not None and (view.change_number, view.caches) == (2, [SQUID_CACHE, "127.0.0.3"])
    _, events = router.here_i_am(hello, SQUID_CACHE, now=10.0)  # a member again: no change
    assert events == [] and router.groups[0].change == 2
    _, events = router.here_i_am(hello, SQUID_CACHE, now=31.5)  # 127.0.0.3 silent for 30.5 s > 3 x 10 s
    assert events == ["service 0: 127.0.0.3 dropped after 3 missed HERE_I_AM; member change number 3"]
    assert list(router.groups[0].members) == [SQUID_CACHE]


def test_a_here_i_am_with_the_wrong_password_is_refused() -> None:
    router = Router(ROUTER, passwords={0: "other"})
    answer, events = router.here_i_am(captured("here_i_am-hash-md5"), SQUID_CACHE, now=0.0)
    assert answer is None and events == ["127.0.0.1: HERE_I_AM for service 0 fails MD5; ignored"]


def test_the_view_marks_a_mask_caches_hash_data_historical_and_keeps_the_element_whole() -> None:
    router = Router(ROUTER)
    answer, _ = router.here_i_am(captured("here_i_am-mask"), SQUID_CACHE, now=0.0)
    view = wire.decode(answer or b"").view
    assert view is not None and view.caches == [SQUID_CACHE]
    body = dict(wire.components(answer or b""))["router_view_info"]
    element = body[16 + 4 + 4 :]  # change, key, 1 router, its address, the cache count
    assert len(element) == 32 and struct.unpack("!H", element[6:8])[0] == 0x0003


def _squid_hash_assign(caches: list[str], key_change: int) -> bytes:
    """REDIRECT_ASSIGN as Squid 5.7 builds it for hash assignment (wccp2AssignBuckets): equal weights
    deal the 256 buckets round-robin over the caches in address order."""
    head = wire._addr(caches[0]) + struct.pack("!I", key_change) + struct.pack("!I", 1)
    head += wire._addr(ROUTER) + struct.pack("!II", 7, 2)  # router, its receive id, member change number
    body = head + struct.pack("!I", len(caches)) + b"".join(wire._addr(c) for c in caches)
    body += bytes(n % len(caches) for n in range(bodies.BUCKETS))
    service = dict(wire.components(captured("here_i_am-mask")))["service_info"]
    return wire.message(
        "REDIRECT_ASSIGN", wire.security(None), wire.component("service_info", service),
        wire.component("redirect_assignment", body),
    )  # fmt: skip


def _squid_mask_assign(caches: list[str]) -> bytes:
    """REDIRECT_ASSIGN as Squid 5.7 builds it for mask assignment: one mask (source IP & 0x1741)
    and its 64 values dealt round-robin over the caches."""
    values = [v for v in range(0x1742) if v & 0x1741 == v]
    inner = wire._addr(caches[0]) + struct.pack("!II", 1, 1) + wire._addr(ROUTER) + struct.pack("!II", 7, 2)
    inner += struct.pack("!I", 1) + struct.pack("!IIHHI", 0x1741, 0, 0, 0, len(values))
    inner += b"".join(struct.pack("!IIHH", v, 0, 0, 0) + wire._addr(caches[k % len(caches)])
                      for k, v in enumerate(values))  # fmt: skip
    alt = struct.pack("!HH", bodies.MASK_ASSIGNMENT, len(inner)) + inner
    service = dict(wire.components(captured("here_i_am-mask")))["service_info"]
    return wire.message(
        "REDIRECT_ASSIGN", wire.security(None), wire.component("service_info", service),
        wire.component("alt_assignment", alt),
    )  # fmt: skip


def test_a_hash_assignment_from_a_member_is_kept_and_told() -> None:
    router = Router(ROUTER)
    router.here_i_am(captured("here_i_am-mask"), SQUID_CACHE, now=0.0)
    events = router.redirect_assign(_squid_hash_assign([SQUID_CACHE, "127.0.0.3"], 4), SQUID_CACHE, now=16.0)
    assert events == ["service 0: hash assignment 4: buckets 127.0.0.1 128, 127.0.0.3 128 from 127.0.0.1"]
    kept = router.groups[0].assignment
    assert kept is not None and kept.key == (SQUID_CACHE, 4) and kept.routers == [(ROUTER, 7, 2)]
    assert kept.owner_of_bucket()[:3] == [SQUID_CACHE, "127.0.0.3", SQUID_CACHE]


def test_a_mask_assignment_is_read_value_by_value() -> None:
    assignment = wire.decode(_squid_mask_assign([SQUID_CACHE, "127.0.0.3"])).assignment
    assert assignment is not None and assignment.method == "mask"
    assert assignment.masks == (0x1741, 0, 0, 0) and len(assignment.values) == 64
    assert assignment.values[1] == ((0x0001, 0, 0, 0), "127.0.0.3")
    assert describe(assignment) == "mask assignment 1 over masks 0x1741/0x0/0x0/0x0: values 127.0.0.1 32, 127.0.0.3 32"


def test_the_work_of_a_cache_that_left_is_unassigned_until_the_next_assignment() -> None:
    from carpfarm.wccp.router import UNASSIGNED, members_only

    router = Router(ROUTER)
    router.here_i_am(captured("here_i_am-mask"), SQUID_CACHE, now=0.0)
    router.here_i_am(as_cache(captured("here_i_am-mask"), "127.0.0.3", None), "127.0.0.3", now=0.0)
    router.redirect_assign(_squid_hash_assign([SQUID_CACHE, "127.0.0.3"], 4), SQUID_CACHE, now=16.0)
    assert router.assignments()[0][1].owner_of_bucket()[:2] == [SQUID_CACHE, "127.0.0.3"]
    router.here_i_am(captured("here_i_am-mask"), SQUID_CACHE, now=31.0)  # 127.0.0.3 silent 31 s: dropped
    ((service, hashed),) = router.assignments()
    assert service.id == 0 and hashed.owner_of_bucket()[:2] == [SQUID_CACHE, None]
    assert hashed.buckets.count(UNASSIGNED) == 128 and hashed.caches == [SQUID_CACHE, "127.0.0.3"]
    masked = wire.decode(_squid_mask_assign([SQUID_CACHE, "127.0.0.3"])).assignment
    assert masked is not None
    assert {cache for _, cache in members_only(masked, {"127.0.0.3"}).values} == {"127.0.0.3"}
    assert len(members_only(masked, {"127.0.0.3"}).values) == 32


def test_a_cache_keeps_its_mark_while_others_come_and_go() -> None:
    """The caches that stay are never re-routed by another's change: a cache keeps the mark it had,
    and a new one takes the lowest free mark."""
    from carpfarm.wccp.router import marks, routing

    first = marks(["198.18.0.11", "198.18.0.10"])
    assert first == {"198.18.0.10": 0x80, "198.18.0.11": 0x81}
    survivor = marks(["198.18.0.11"], kept=first)
    assert survivor == {"198.18.0.11": 0x81} and routing(survivor) == [(0x81, 81, "198.18.0.11")]
    back = marks(["198.18.0.12", "198.18.0.11", "198.18.0.10"], kept=survivor)
    assert back == {"198.18.0.11": 0x81, "198.18.0.10": 0x80, "198.18.0.12": 0x82}


def test_an_assignment_from_no_member_is_ignored() -> None:
    router = Router(ROUTER)
    events = router.redirect_assign(_squid_hash_assign(["127.0.0.9"], 1), "127.0.0.9", now=0.0)
    assert events == ["127.0.0.9: REDIRECT_ASSIGN from no member of service 0; ignored"]
    assert router.groups == {}


def test_the_redirect_assign_a_corrected_squid_sent_this_router_decodes_and_is_kept() -> None:
    """Captured from Squid 5.7 built by lab/build-wccp-squid.sh (both parser corrections), which
    completed the handshake with this router on loopback and assigned 15 s after its I_SEE_YOU."""
    hashed, masked = captured("redirect_assign-hash-md5"), captured("redirect_assign-mask-md5")
    assert wire.md5_matches(hashed, "s3cret") and wire.md5_matches(masked, "s3cret")
    by_hash, by_mask = wire.decode(hashed).assignment, wire.decode(masked).assignment
    assert by_hash is not None and by_mask is not None
    assert (by_hash.method, by_hash.key, by_hash.caches) == ("hash", (SQUID_CACHE, 1), [SQUID_CACHE])
    assert by_hash.routers[0][0] == ROUTER and by_hash.owner_of_bucket() == [SQUID_CACHE] * 256
    # The standard web-cache service: Squid masks the destination address with 0x1741, 64 values.
    assert by_mask.masks == (0, 0x1741, 0, 0) and len(by_mask.values) == 64
    assert all(values[1] & 0x1741 == values[1] and cache == SQUID_CACHE for values, cache in by_mask.values)
    router = Router(ROUTER, passwords={0: "s3cret"})
    router.here_i_am(captured("here_i_am-hash-md5"), SQUID_CACHE, now=0.0)
    assert router.redirect_assign(hashed, SQUID_CACHE, now=16.0) == [
        "service 0: hash assignment 1: buckets 127.0.0.1 256 from 127.0.0.1"
    ]


def test_the_lab_routers_listener_records_every_captured_message_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """roles/lab_wccp_router's listener, with wccpwire beside it as the role installs them: one JSON
    line per datagram (its bytes fields written as hex), whatever the message."""
    import importlib.util
    import json

    monkeypatch.syspath_prepend(str(ROOT / "src" / "carpfarm"))  # wccpwire, where the role puts it: beside it
    path = ROOT / "roles" / "lab_wccp_router" / "files" / "carpfarm-wccp-router.py"
    spec = importlib.util.spec_from_file_location("carpfarm_wccp_router", path)
    assert spec is not None and spec.loader is not None
    listener = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(listener)
    for name in ("here_i_am-hash-md5", "here_i_am-mask", "redirect_assign-hash-md5", "redirect_assign-mask-md5"):
        row = json.loads(json.dumps(listener.record(captured(name), SQUID_CACHE, {0: "s3cret"})))
        assert row["type"] == name.split("-")[0].upper() and "error" not in row, row
    row = listener.record(captured("here_i_am-hash-md5"), SQUID_CACHE, {0: "s3cret"})
    assert row["md5_ok"] is True and row["md5_ok_with_wrong_password"] is False


def test_a_mask_assignment_becomes_marks_by_masked_source_that_nft_accepts(tmp_path: Path) -> None:
    from carpfarm.wccp.router import assigned_caches, marks, redirect_ruleset, routing

    assignment = wire.decode(_squid_mask_assign([SQUID_CACHE, "127.0.0.3"])).assignment
    assert assignment is not None
    service = wire.decode(_squid_mask_assign([SQUID_CACHE])).service
    assert service is not None
    rules = redirect_ruleset([(service, assignment)], ["198.18.0.128/26"])
    assert "meta mark 0 meta mark set ip saddr & 0.0.23.65 map { 0.0.0.0 : 0x80, 0.0.0.1 : 0x81," in rules
    assert rules.count(" : 0x80") == rules.count(" : 0x81") == 32
    (tmp_path / "router.nft").write_text(rules)
    subprocess.run(["nft", "-c", "-f", str(tmp_path / "router.nft")], check=True, capture_output=True)
    mark = marks(assigned_caches([(service, assignment)]))
    assert routing(mark) == [(0x80, 80, SQUID_CACHE), (0x81, 81, "127.0.0.3")]


def test_a_bucket_is_the_xor_of_the_hashed_addresss_octets() -> None:
    from carpfarm.wccp.router import bucket

    assert bucket("192.168.1.10") == 0xC0 ^ 0xA8 ^ 0x01 ^ 0x0A == 0x63
    assert {bucket(f"10.0.0.{n}") for n in range(256)} == set(range(256))  # every bucket reachable


def test_a_hash_assignment_becomes_marks_by_client_address_that_nft_accepts(tmp_path: Path) -> None:
    from carpfarm.wccp.router import bucket, redirect_ruleset

    assignment = wire.decode(_squid_hash_assign([SQUID_CACHE, "127.0.0.3"], 1)).assignment
    assert assignment is not None
    by_source = bodies.Service("dynamic", 90, 240, 6, 0x1, (80,))
    rules = redirect_ruleset([(by_source, assignment)], ["198.18.0.128/26"])
    # 198.18.0.130: bucket 0xC6 ^ 0x12 ^ 0x00 ^ 0x82 = 0x56, even: the first cache's (round-robin buckets)
    assert bucket("198.18.0.130") == 0x56 and "198.18.0.130 : 0x80" in rules
    assert rules.count(" : 0x80") == rules.count(" : 0x81") == 32
    (tmp_path / "router.nft").write_text(rules)
    subprocess.run(["nft", "-c", "-f", str(tmp_path / "router.nft")], check=True, capture_output=True)
    web_cache = bodies.Service("standard", 0, 0, 0, 0, ())
    by_destination = redirect_ruleset([(web_cache, assignment)], ["198.18.0.128/26"], ["198.18.0.50/31"])
    # 198.18.0.50: bucket 0xE6, even; 198.18.0.51: 0xE7, odd
    assert "meta mark set ip daddr map { 198.18.0.50 : 0x80, 198.18.0.51 : 0x81 }" in by_destination


def test_groups_are_tried_by_priority_and_the_rules_send_each_packet_where_the_assignment_says(tmp_path: Path) -> None:
    """Two groups over port 80: the higher priority one decides; what nft is given agrees, address by
    address, with cache_for (the draft's rule), and a cache has one mark in every group."""
    from carpfarm.wccp.router import cache_for, marks, redirect_ruleset, redirected_to

    caches = [SQUID_CACHE, "127.0.0.3"]
    hashed = wire.decode(_squid_hash_assign(caches, 1)).assignment
    masked = wire.decode(_squid_mask_assign(caches)).assignment
    assert hashed is not None and masked is not None
    web_cache = bodies.Service("standard", 0, 0, 0, 0, ())
    by_source = bodies.Service("dynamic", 90, 200, 6, 0x1, (80, 8080))
    groups = [(web_cache, masked), (by_source, hashed)]
    rules = redirect_ruleset(groups, ["198.18.0.128/26"], ["198.18.0.50/32"])
    assert rules.index("tcp dport { 80, 8080 }") < rules.index("tcp dport { 80 }")  # priority 200 first
    (tmp_path / "router.nft").write_text(rules)
    subprocess.run(["nft", "-c", "-f", str(tmp_path / "router.nft")], check=True, capture_output=True)
    mark = marks(caches)
    clients = [f"198.18.0.{n}" for n in range(128, 192)]
    for client in clients:
        cache = redirected_to(groups, client, "198.18.0.50", 80)
        assert cache == cache_for(hashed, by_source, client, "198.18.0.50", 0, 80)
        assert cache is not None and f"{client} : {mark[cache]:#x}" in rules
    assert {redirected_to(groups, c, "198.18.0.50", 8080) for c in clients} == set(caches)
    # Port 443 is in no group: forwarded normally. The standard service alone masks the destination.
    assert redirected_to(groups, clients[0], "198.18.0.50", 443) is None
    alone = [(web_cache, masked)]
    assert redirected_to(alone, clients[0], "198.18.0.50", 80) == cache_for(
        masked, web_cache, clients[0], "198.18.0.50", 0, 80
    )
    assert redirected_to(alone, clients[0], "198.18.0.50", 8080) is None


def test_squid_designates_the_lowest_address_as_it_compares_them() -> None:
    from carpfarm.wccp.router import lowest_cache

    assert lowest_cache(["198.18.0.11", "198.18.0.10"]) == "198.18.0.10"
    # The network-order bytes read little-endian: the last octet weighs most.
    assert lowest_cache(["10.0.0.2", "192.168.0.1"]) == "192.168.0.1"
    assert lowest_cache([]) is None


def test_two_caches_assignments_captured_in_the_lab_split_the_clients_as_the_traffic_did() -> None:
    """REDIRECT_ASSIGNs the corrected Squid 5.7 on carp1 (198.18.0.10) sent the router stand-in in the
    wccp scenario, with carp2 (198.18.0.11) in the group, for dynamic service 90 (src_ip_hash, ports
    80/8080): mask, then hash. Decoded, the router sends client .130 to carp1 and .131 to carp2 by
    either, as the scenario's traffic through the real boxes showed."""
    from carpfarm.wccp.router import cache_for, describe

    carp1, carp2 = "198.18.0.10", "198.18.0.11"
    service = bodies.Service("dynamic", 90, 200, 6, 0x11, (80, 8080))
    masked = wire.decode(captured("redirect_assign-mask-two-caches"))
    hashed = wire.decode(captured("redirect_assign-hash-two-caches"))
    assert wire.md5_matches(captured("redirect_assign-mask-two-caches"), "carpfarm")
    assert wire.md5_matches(captured("redirect_assign-hash-two-caches"), "carpfarm")
    assert masked.service is not None and masked.service.id == 90 and masked.assignment is not None
    assert hashed.service is not None and hashed.service.id == 90 and hashed.assignment is not None
    by_mask, by_hash = masked.assignment, hashed.assignment
    assert by_mask.key[0] == carp1 and by_hash.key[0] == carp1  # the designated cache assigns
    assert describe(by_mask).endswith(f"values {carp1} 32, {carp2} 32")
    assert by_mask.masks == (0x1741, 0, 0, 0)  # Squid masks the source address for src_ip_hash
    assert describe(by_hash) == f"hash assignment {by_hash.key[1]}: buckets {carp1} 128, {carp2} 128"
    for assignment in (by_mask, by_hash):
        assert cache_for(assignment, service, "198.18.0.130", "198.18.0.50", 40000, 80) == carp1
        assert cache_for(assignment, service, "198.18.0.131", "198.18.0.50", 40000, 80) == carp2
