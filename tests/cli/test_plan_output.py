"""What ``carpfarm plan`` (text and --json) tells an operator of each CARP box and backend: the balancer's
rules in the balancer's own terms (held to the files the frontend_balancer role renders), carpfarm-watch,
the floating address and its boxes' VRRP priorities, and each backend instance's cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from carpfarm.cli import main
from support.ansible import preflight, render
from support.inventories import carp_boxes
from support.paths import EXAMPLE, ROLES

TEMPLATES = ROLES / "frontend_balancer" / "templates" / "etc"
ROLE_VARS = ROLES / "frontend_balancer" / "vars" / "main.yml"
CLIENTS = ["198.51.100.0/24"]
VIP = {"carpfarm_vip": "192.0.2.9/24", "carpfarm_vrrp_password": "s3cret"}

Groups = dict[str, list[str]]
Hostvars = dict[str, dict[str, Any]]


def _farm(boxes: int = 1, **carp: Any) -> tuple[Groups, Hostvars]:
    """``boxes`` CARP boxes of three instances with ``carp``'s variables, and one backend of two."""
    return carp_boxes(boxes, 3, 1, CLIENTS, **carp)


def _write(directory: Path, groups: Groups, hostvars: Hostvars) -> Path:
    """An inventory directory whose hosts.yml holds ``groups`` and ``hostvars``."""
    directory.mkdir(parents=True, exist_ok=True)
    children = {group: {"hosts": {h: hostvars[h] for h in hosts}} for group, hosts in groups.items()}
    (directory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": children}}, sort_keys=False))
    return directory


def _plan(capsys: pytest.CaptureFixture[str], inventory: Path, *args: str) -> str:
    code = main(["plan", str(inventory), "--sample", "200", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _plan_json(capsys: pytest.CaptureFixture[str], inventory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_plan(capsys, inventory, "--json"))
    return data


def _box(text: str, host: str) -> str:
    """The part of the plan's text about CARP box ``host``: its title to the next table's."""
    start = text.index(f"Frontend {host} ")
    rest = text[start + 1 :]
    ends = [rest.index(m) for m in ("Frontend carp", "Backends (cache_peer order)") if m in rest]
    return text[start : start + 1 + min(ends)]


def _role_file(template: str, groups: Groups, hostvars: Hostvars, host: str = "carp1") -> str:
    """A frontend_balancer template as the role renders it on ``host`` (its preflight's facts)."""
    play = preflight("frontend_balancer", groups, hostvars, host, **yaml.safe_load(ROLE_VARS.read_text()))
    return render(
        TEMPLATES / template,
        **{**play, "__frontend_balancer_ruleset": play["__frontend_balancer"], "inventory_hostname": host},
    )


# ---------------------------------------------------------------- each balancer's own form


def test_an_iptables_box_keeps_its_probability_column_and_the_wiki_comparison(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _plan(capsys, EXAMPLE, "--vcpus", "4")
    box = _box(text, "carp1")
    assert "iptables" in box.splitlines()[2]  # the column's header
    assert "0.33333333349" in box and "the wiki's 0.25-per-rule cascade would give" in box
    assert "numgen" not in box and "server frontend" not in box


@pytest.mark.parametrize("mode", ["random", "roundrobin"])
def test_the_iptables_rules_in_the_plan_are_the_rules_file_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mode: str
) -> None:
    groups, hostvars = _farm(frontend_balancer_type="iptables", frontend_balancer_mode=mode)
    config = _plan_json(capsys, _write(tmp_path, groups, hostvars))["frontends"][0]["balancer_config"]
    assert config["type"] == "iptables" and config["column"] == "iptables"
    assert config["per_instance"] == ["0.33333333349", "0.50000000000", "-"]
    rules_file = _role_file("carpfarm/balancer.rules.j2", groups, hostvars).splitlines()
    assert config["lines"] == [line for line in rules_file if line.startswith("-A CARPFARM_BALANCE ")]
    assert ("--mode nth --every 3" in config["lines"][0]) == (mode == "roundrobin")


@pytest.mark.parametrize(("mode", "generator"), [("random", "random"), ("roundrobin", "inc")])
def test_an_nftables_box_shows_its_numgen_map_and_no_iptables_cascade(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mode: str, generator: str
) -> None:
    groups, hostvars = _farm(frontend_balancer_type="nftables", frontend_balancer_mode=mode)
    inventory = _write(tmp_path, groups, hostvars)
    spread = f"numgen {generator} mod 3 map {{ 0 : 3129, 1 : 3130, 2 : 3131 }}"
    box = _box(_plan(capsys, inventory), "carp1")
    assert "iptables" not in box and "wiki" not in box and "probability" not in box
    assert "numgen key" in box and f"tcp dport 3128 redirect to :{spread}" in box
    assert [line.split("│")[3].strip() for line in box.splitlines() if "│ frontend" in line] == ["0", "1", "2"]
    config = _plan_json(capsys, inventory)["frontends"][0]["balancer_config"]
    assert config == {"type": "nftables", "column": "numgen key", "per_instance": ["0", "1", "2"], "lines": [spread]}
    assert f"tcp dport 3128 counter redirect to :{spread}" in _role_file("carpfarm/balancer.nft.j2", groups, hostvars)


@pytest.mark.parametrize("mode", ["random", "roundrobin"])
def test_a_haproxy_box_shows_its_balance_and_server_lines_and_no_iptables_cascade(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mode: str
) -> None:
    groups, hostvars = _farm(frontend_balancer_type="haproxy", frontend_balancer_mode=mode)
    inventory = _write(tmp_path, groups, hostvars)
    box = _box(_plan(capsys, inventory), "carp1")
    assert "iptables" not in box and "wiki" not in box and "numgen" not in box and "carpfarm-watch" not in box
    assert "server frontend2 127.0.0.1:3130" in box and f"balance {mode}" in box
    config = _plan_json(capsys, inventory)["frontends"][0]["balancer_config"]
    servers = [f"server frontend{n} 127.0.0.1:{3128 + n}" for n in (1, 2, 3)]
    assert config == {
        "type": "haproxy",
        "column": "server",
        "per_instance": servers,
        "lines": [f"balance {mode}", *servers],
    }
    haproxy_cfg = [line.strip() for line in _role_file("haproxy/haproxy.cfg.j2", groups, hostvars).splitlines()]
    backend = haproxy_cfg[haproxy_cfg.index("backend carp_frontends") :]
    assert all(line in backend for line in config["lines"])


# ---------------------------------------------------------------- carpfarm-watch


@pytest.mark.parametrize(
    ("balancer", "watch", "shown"),
    [
        ("iptables", True, True),
        ("iptables", False, False),
        ("nftables", True, True),
        ("nftables", False, False),
        ("haproxy", True, None),  # HAProxy checks its servers itself: no carpfarm-watch runs
    ],
)
def test_the_plan_says_whether_carpfarm_watch_keeps_a_kernel_balancers_rules(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, balancer: str, watch: bool, shown: bool | None
) -> None:
    inventory = _write(tmp_path, *_farm(frontend_balancer_type=balancer, frontend_balancer_watch=watch))
    assert _plan_json(capsys, inventory)["frontends"][0]["watch"] is shown
    box = _box(_plan(capsys, inventory), "carp1")
    expected = {True: "carpfarm-watch: on (frontend_balancer_watch)", False: "carpfarm-watch: off"}
    assert (shown is not None and expected[shown] in box) or (shown is None and "carpfarm-watch" not in box)


def test_the_lab_runs_carpfarm_watch(capsys: pytest.CaptureFixture[str]) -> None:
    lab = EXAMPLE.parent / "lab"  # group_vars/carp_frontends.yml: frontend_balancer_watch: true
    assert "carpfarm-watch: on" in _plan(capsys, lab, "--vcpus", "2")


# ---------------------------------------------------------------- the floating address


def test_a_vip_pair_shows_the_address_and_each_boxs_priority(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    groups, hostvars = _farm(2, **VIP)
    hostvars["carp1"]["carpfarm_vrrp_priority"] = 150
    inventory = _write(tmp_path, groups, hostvars)
    text = _plan(capsys, inventory)
    members = "carp1 priority 150{}, carp2 priority 100{}"
    assert "192.0.2.9/24, VRRP id 51, preempt: " + members.format(" (this box)", "") in _box(text, "carp1")
    assert "192.0.2.9/24, VRRP id 51, preempt: " + members.format("", " (this box)") in _box(text, "carp2")
    data = _plan_json(capsys, inventory)
    vips = [f["vip"] for f in data["frontends"]]
    assert [v["priority"] for v in vips] == [150, 100]
    assert (
        vips[0]["members"]
        == vips[1]["members"]
        == [
            {"host": "carp1", "address": "192.0.2.10", "priority": 150},
            {"host": "carp2", "address": "192.0.2.11", "priority": 100},
        ]
    )
    assert vips[0]["cidr"] == "192.0.2.9/24" and vips[0]["vrrp_id"] == 51
    assert "s3cret" not in text and "s3cret" not in json.dumps(data) and "password" not in vips[0]


def test_a_box_without_a_floating_address_says_nothing_of_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert "floating address" not in _plan(capsys, EXAMPLE, "--vcpus", "4")
    assert _plan_json(capsys, EXAMPLE)["frontends"][0]["vip"] is None


# ---------------------------------------------------------------- SMP


def test_an_smp_box_has_no_balancer_rules_nor_watch_but_its_floating_address(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    inventory = _write(tmp_path, *_farm(2, carp_frontend_mode="smp", **VIP))
    box = _box(_plan(capsys, inventory), "carp1")
    assert "mode: smp: one Squid (frontend) with 3 workers" in box
    assert "iptables" not in box and "wiki" not in box and "carpfarm-watch" not in box
    assert "floating address (carpfarm_vip): 192.0.2.9/24" in box
    front = _plan_json(capsys, inventory)["frontends"][0]
    assert front["balancer_config"] == {"type": "none", "column": "", "per_instance": [], "lines": []}
    assert front["watch"] is None and front["vip"]["members"][1]["host"] == "carp2"


# ---------------------------------------------------------------- the backends' caches


def test_each_backend_instances_cache_is_in_a_table_of_its_own(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    groups, hostvars = _farm()
    hostvars["cache1"]["squid_backend_instances"] = [
        {"name": "big", "cache_size_mb": 4096, "cache_mem_mb": 512, "cache_dir": "/srv/cache/big"},
        {"name": "small"},
    ]
    inventory = _write(tmp_path, groups, hostvars)
    text = _plan(capsys, inventory)
    caches = text[text.index("Backend caches") :].splitlines()
    assert all(len(line) <= 120 for line in caches)
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in caches if line.startswith("│")]
    assert rows == [
        ["cache1", "big", "aufs", "/srv/cache/big", "4096", "512"],
        ["cache1", "small", "aufs", "/var/spool/squid/small", "1024", "256"],
    ]
    instances = _plan_json(capsys, inventory)["backends"][0]["instances"]
    assert [(i["cache_dir"], i["cache_size_mb"], i["cache_mem_mb"]) for i in instances] == [
        ("/srv/cache/big", 4096, 512),
        ("/var/spool/squid/small", 1024, 256),
    ]


def test_the_example_backends_caches(capsys: pytest.CaptureFixture[str]) -> None:
    text = _plan(capsys, EXAMPLE, "--vcpus", "4")
    caches = text[text.index("Backend caches") :]
    assert caches.count("/var/spool/squid/backend") == 8 and "/var/spool/squid/backend4" in caches
    assert caches.count("20480") == 8 and caches.count("1024") == 8  # group_vars/squid_backends.yml


# ---------------------------------------------------------------- --json, every box


def test_the_json_plan_has_the_new_keys_for_every_kind_of_box(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    groups, hostvars = _farm(3, **VIP)
    kinds = {"carp1": "iptables", "carp2": "nftables", "carp3": "haproxy"}
    for host, kind in kinds.items():
        hostvars[host]["frontend_balancer_type"] = kind
    data = _plan_json(capsys, _write(tmp_path, groups, hostvars))
    fronts = {f["host"]: f for f in data["frontends"]}
    assert {h: f["balancer_config"]["type"] for h, f in fronts.items()} == kinds
    assert {h: f["balancer_config"]["column"] for h, f in fronts.items()} == {
        "carp1": "iptables",
        "carp2": "numgen key",
        "carp3": "server",
    }
    assert {h: f["watch"] for h, f in fronts.items()} == {"carp1": False, "carp2": False, "carp3": None}
    assert all(len(f["vip"]["members"]) == 3 for f in fronts.values())
    assert all(len(f["balancer_config"]["per_instance"]) == len(f["instances"]) for f in fronts.values())
