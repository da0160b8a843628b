"""carp_frontend_mode: haproxy: what validate refuses (each problem with its reason and fix), where
URLs go with each carp_frontend_haproxy_selection, and what switching costs (carpfarm impact)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from carpfarm.carp.chash import full_hash, full_hash_inverse, stable_ids
from carpfarm.carp.consistent import ConsistentFarm, haproxy_weights
from carpfarm.model import Topology, build_topology
from carpfarm.model.haproxy_mode import MAX_CARP_PEERS
from carpfarm.plan import change
from carpfarm.plan.views import sample_urls
from carpfarm.problems import TopologyError

CLIENTS = ["198.51.100.0/24"]


def _farm(boxes: int = 1, backends: int = 2, instances: int = 2, **box: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    names = [f"carp{n + 1}" for n in range(boxes)]
    caches = [f"cache{n + 1}" for n in range(backends)]
    hostvars: dict[str, dict[str, Any]] = {
        name: {"ansible_host": f"192.0.2.{10 + n}", "carpfarm_client_networks": CLIENTS, **box}
        for n, name in enumerate(names)
    }
    for n, cache in enumerate(caches):
        hostvars[cache] = {"ansible_host": f"192.0.2.{100 + n}", "squid_backend_instances": instances}
    return {"carp_frontends": names, "squid_backends": caches}, hostvars


def _topology(**box: Any) -> Topology:
    return build_topology(*_farm(**box))


def _problems(groups: dict[str, Any], hostvars: dict[str, Any]) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        build_topology(groups, hostvars)
    return [str(p) for p in caught.value.problems]


def test_an_haproxy_box_runs_no_frontend_squid_and_no_balancer_rules() -> None:
    topology = _topology(carp_frontend_mode="haproxy", ansible_processor_vcpus=4)
    box = topology.frontends[0]
    assert box.mode == "haproxy" and box.instances == () and box.balancer_type == "haproxy"
    assert box.haproxy_selection == "carp" and topology.selection == "carp"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("frontend_balancer_watch", True, "has nothing to watch with carp_frontend_mode: haproxy"),
        ("carp_frontend_extra_http_access", ["http_access deny all"], "would be dropped without a word"),
        ("carp_frontend_extra_config", "via off", "would be dropped without a word"),
        ("carp_frontend_parent_selection", "round-robin", "applies to the Squid frontends only"),
    ],
)
def test_validate_refuses_what_an_haproxy_box_cannot_apply(variable: str, value: Any, words: str) -> None:
    problems = _problems(*_farm(carp_frontend_mode="haproxy", **{variable: value}))
    assert any(variable in p and words in p and "Fix:" in p for p in problems), problems


def test_validate_refuses_wccp_on_an_haproxy_box() -> None:
    groups, hostvars = _farm(carp_frontend_mode="haproxy", carpfarm_wccp=True, carpfarm_wccp_routers=["192.0.2.1"])
    problems = _problems(groups, hostvars)
    assert any("carpfarm_wccp" in p and "not supported with carp_frontend_mode: haproxy" in p for p in problems)


def test_validate_refuses_a_carp_key_with_the_consistent_hash() -> None:
    problems = _problems(
        *_farm(
            carp_frontend_mode="haproxy", carp_frontend_haproxy_selection="consistent", carp_frontend_carp_key=["host"]
        )
    )
    assert any("carp_frontend_carp_key" in p and "consistent hashes the whole request target" in p for p in problems)


def test_validate_refuses_a_farm_whose_boxes_pick_backends_two_ways() -> None:
    groups, hostvars = _farm(boxes=2, carp_frontend_mode="haproxy", carp_frontend_haproxy_selection="consistent")
    hostvars["carp2"]["carp_frontend_haproxy_selection"] = "carp"
    problems = _problems(groups, hostvars)
    assert any("is consistent on carp1 while carp2 pick by Squid's CARP" in p for p in problems), problems
    groups, hostvars = _farm(boxes=2, carp_frontend_mode="haproxy", carp_frontend_haproxy_selection="carp")
    hostvars["carp2"]["carp_frontend_mode"] = "instances"
    assert build_topology(groups, hostvars).selection == "carp"  # Squid and HAProxy CARP boxes mix


def test_validate_refuses_the_lua_carp_above_the_peer_count_it_pays_for() -> None:
    backends = MAX_CARP_PEERS // 2 + 1  # two instances each: one peer over the limit, or more
    problems = _problems(*_farm(backends=backends, carp_frontend_mode="haproxy"))
    assert any(f"above {MAX_CARP_PEERS} peers" in p and "consistent" in p for p in problems), problems
    ok = _farm(backends=backends, carp_frontend_mode="haproxy", carp_frontend_haproxy_selection="consistent")
    assert build_topology(*ok).selection == "consistent"
    at_limit = _farm(backends=1, instances=MAX_CARP_PEERS, carp_frontend_mode="haproxy")
    assert len(build_topology(*at_limit).backend_instances) == MAX_CARP_PEERS


def test_switching_to_the_lua_carp_moves_nothing_and_to_consistent_remaps_once() -> None:
    squid = _topology()
    lua = _topology(carp_frontend_mode="haproxy")
    consistent = _topology(carp_frontend_mode="haproxy", carp_frontend_haproxy_selection="consistent")
    urls = sample_urls(4000)
    assert change.impact(squid, lua, urls).moved == 0
    remap = change.impact(squid, consistent, urls)
    assert 0.5 < remap.moved_fraction < 0.95 and any("placed anew" in tip for tip in remap.advice)
    assert change.impact(consistent, consistent, urls).moved == 0


def test_the_consistent_hash_shares_the_urls_about_evenly() -> None:
    consistent = _topology(carp_frontend_mode="haproxy", carp_frontend_haproxy_selection="consistent", backends=4)
    routes = consistent.routes(sample_urls(8000))
    counts = {i.peer_name: 0 for i in consistent.backend_instances}
    for instance in routes:
        assert instance is not None
        counts[instance.peer_name] += 1
    assert max(counts.values()) / min(counts.values()) < 1.5, counts


def test_a_new_backend_takes_urls_only_from_the_others_under_consistent() -> None:
    """Stable ids: the servers already there keep their points, so a URL moves only to the new one."""
    before = ConsistentFarm.build([(f"c{n}", 1) for n in range(6)])
    after = ConsistentFarm.build([(f"c{n}", 1) for n in (0, 1, 2, 6, 3, 4, 5)])
    urls = sample_urls(4000)
    moved = [(a, b) for a, b in zip(before.select_many(urls), after.select_many(urls), strict=True) if a != b]
    assert moved and all(b == "c6" for _, b in moved)
    assert 0.08 < len(moved) / len(urls) < 0.22  # about 1/7


def test_a_down_or_drained_server_hands_its_urls_to_the_others_only() -> None:
    farm = ConsistentFarm.build([(f"c{n}", 1) for n in range(5)])
    urls = sample_urls(3000)
    up, down = farm.select_many(urls), farm.select_many(urls, down=["c2"])
    assert all(a == b for a, b in zip(up, down, strict=True) if a != "c2")
    assert "c2" not in down and "c2" in up


def test_full_hash_inverse_and_stable_ids() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        x = rng.getrandbits(32)
        assert full_hash_inverse(full_hash(x)) == x
    names = [f"cache{n}-backend{k}" for n in range(300) for k in range(4)]
    ids = stable_ids(names)
    assert len({i.slot for i in ids.values()}) == len(names)
    assert all(full_hash(i.hashed) == i.slot * 4096 and 1 <= i.hashed < 2**31 for i in ids.values())
    assert stable_ids(names[:10]) == {n: ids[n] for n in names[:10]}  # from the name alone


def test_haproxy_weights_keep_carpfarms_proportions() -> None:
    assert haproxy_weights([1, 1, 1]) == [256, 256, 256]
    assert haproxy_weights([1000, 500, 1]) == [256, 128, 1]
    assert haproxy_weights([3, 0]) == [256, 0]
