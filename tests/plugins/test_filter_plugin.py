"""The filter plugin, loaded by a real ansible-playbook run and directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from carpfarm.inventory import load_hostvars, load_topology
from support.ansible import filters as carpfarm_filters
from support.paths import ROOT
from support.probe import failed_line, probe_line

EXAMPLE = ROOT / "inventory" / "example"
BIN = Path(sys.executable).parent


PLAY = """
- name: Exercise carpfarm filters
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Build the model once, as the roles do
      ansible.builtin.set_fact:
        farm: "{{ hostvars | carpfarm_topology(groups) }}"
      run_once: true

    - name: Write what the filters return
      ansible.builtin.copy:
        dest: "{{ out }}"
        mode: "0644"
        content: "{{ result | to_nice_json }}"
      vars:
        result:
          peers: "{{ hostvars | carpfarm_cache_peers(groups) }}"
          frontend_ports: "{{ hostvars | carpfarm_frontend_ports(groups, 'carp1') }}"
          frontend: "{{ hostvars | carpfarm_frontend(groups, 'carp1') }}"
          backend_ports: "{{ hostvars | carpfarm_backend_ports(groups, 'cache3') }}"
          balancer: "{{ hostvars | carpfarm_balancer(groups, 'carp1') }}"
          cascade: "{{ [3129, 3130, 3131, 3132] | carpfarm_cascade }}"
          route: "{{ 'http://www.example.com/logo.png' | carpfarm_route(hostvars, groups) }}"
          topology: "{{ hostvars | carpfarm_topology(groups) }}"
          probe_mismatches: >-
            {{ dict(probe.results | map(attribute='item.name') | zip(probe.results | map(attribute='stdout_lines')))
               | carpfarm_probe_mismatches(probe.predicted) }}
          intercept_mismatches: >-
            {{ probe.results[0].stdout_lines | carpfarm_intercept_mismatches(probe.predicted, 'carp1') }}
          served: "{{ probe.results[0].stdout_lines | carpfarm_probe_served }}"
          change: "{{ probe.urls | carpfarm_change_outcome(probe.served, probe.by_url, probe.by_url) }}"
          haproxy_maint: "{{ haproxy_state | carpfarm_haproxy_maint }}"
          passed_on:
            peers: "{{ farm | carpfarm_cache_peers }}"
            frontend_ports: "{{ farm | carpfarm_frontend_ports('carp1') }}"
            frontend: "{{ farm | carpfarm_frontend('carp1') }}"
            backend_ports: "{{ farm | carpfarm_backend_ports('cache3') }}"
            balancer: "{{ farm | carpfarm_balancer('carp1') }}"
            route: "{{ 'http://www.example.com/logo.png' | carpfarm_route(farm) }}"
            topology: "{{ hostvars | carpfarm_topology(groups) }}"
"""

# HAProxy 2.6's answer to "show servers state carp_frontends": frontend2 forced into maintenance
# (admin state 1), frontend3 in maintenance by its health check only (admin state 0, op state 0),
# frontend4 forced and drained (1 | 8 = 9).
HAPROXY_STATE = [
    "1",
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight",
    "3 carp_frontends 1 frontend1 127.0.0.1 2 0 1 1 55 6 3 4 6 0 0 0 - 3129 - 0 0 - - 0",
    "3 carp_frontends 2 frontend2 127.0.0.1 0 1 1 1 12 1 0 0 1 0 0 0 - 3130 - 0 0 - - 0",
    "3 carp_frontends 3 frontend3 127.0.0.1 0 0 1 1 12 8 2 0 6 0 0 0 - 3131 - 0 0 - - 0",
    "3 carp_frontends 4 frontend4 127.0.0.1 0 9 1 1 12 1 0 0 1 0 0 0 - 3132 - 0 0 - - 0",
]

# What a verify play registers after running carpfarm-probe.py --repeat 2 through two boxes.
URLS = ["http://origin.test/a", "http://origin.test/b"]
PROBE = {
    "urls": URLS,
    "predicted": ["cache1-backend1", "cache2-backend1"],
    "by_url": {URLS[0]: "cache1-backend1", URLS[1]: "cache2-backend1"},
    "served": {URLS[0]: ["HIT", "cache1-backend1"], URLS[1]: ["failed", "status -1"]},
    "results": [
        {
            "item": {"name": "carp1"},
            "stdout_lines": [
                probe_line(URLS[0], "MISS from cache1-backend1", "MISS from carp1-frontend1"),
                failed_line(URLS[1]),
                probe_line(URLS[0], "HIT from cache1-backend1", "MISS from carp1-frontend1"),
                probe_line(URLS[1], "HIT from cache2-backend1", "MISS from carp1-frontend1"),
            ],
        },
        {"item": {"name": "carp2"}, "stdout_lines": [probe_line(URLS[0], "MISS from cache1-backend1")]},
    ],
}


def _playbook(tmp_path: Path, inventory: Path) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    (tmp_path / "probe.json").write_text(json.dumps({"probe": PROBE, "haproxy_state": HAPROXY_STATE}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "-i",
            "localhost,",
            "-c",
            "local",
            str(play),
            "-e",
            f"out={tmp_path / 'out.json'}",
            "-e",
            f"@{tmp_path / 'probe.json'}",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_filters_in_a_real_play(tmp_path: Path) -> None:
    result = _playbook(tmp_path, EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert [p["name"] for p in data["peers"]] == [f"cache{h}-backend{i}" for h in (1, 2) for i in (1, 2)] + [
        f"cache3-backend{i}" for i in (1, 2, 3, 4)
    ]
    assert data["peers"][4] == {
        "address": "192.0.2.23",
        "port": 4001,
        "name": "cache3-backend1",
        "weight": 1,
        "state": "active",
        "carp_key": "",
    }
    assert data["frontend_ports"] == [{"name": "frontend1", "port": 3129, "intercept_port": None, "speaks_wccp": False}]
    assert data["frontend"]["name"] == "carp1" and data["frontend"]["listen_port"] == 3128
    assert [i["port"] for i in data["frontend"]["instances"]] == [3129]
    assert [b["peer_name"] for b in data["backend_ports"]] == [f"cache3-backend{i}" for i in (1, 2, 3, 4)]
    assert data["balancer"]["targets"][0]["endpoint"] == "127.0.0.1:3129"
    assert [r["iptables_probability"] for r in data["cascade"]] == [
        "0.25000000000",
        "0.33333333349",
        "0.50000000000",
        "1.00000000000",
    ]
    expected = load_topology(EXAMPLE).route("http://www.example.com/logo.png")
    assert expected is not None and data["route"]["peer_name"] == expected.peer_name
    assert len(data["topology"]["backends"]) == 3
    assert data["probe_mismatches"] == [
        f"carp1 {URLS[1]}: status -1, verdicts , want MISS from cache2-backend1",
        f"carp2 {URLS[0]}: status 200, verdicts MISS from cache1-backend1, want HIT from cache1-backend1",
    ]
    assert data["intercept_mismatches"] == [f"{URLS[1]}: -1  via , want MISS from cache2-backend1"]
    assert data["served"] == {URLS[0]: ["HIT", "cache1-backend1"], URLS[1]: ["HIT", "cache2-backend1"]}
    assert data["change"] == {
        "mismatch": [f"{URLS[1]}: failed from status -1, predicted cache2-backend1"],
        "moved": 1,
        "moved_hit": 0,
        "kept": 1,
        "kept_hit": 1,
    }
    assert data["haproxy_maint"] == ["frontend2", "frontend4"]
    # The model built once and passed on gives every filter the same answers as hostvars and groups.
    passed = data["passed_on"]
    assert passed["topology"]["carpfarm_topology_format"] == 1
    for name in ("peers", "frontend_ports", "frontend", "backend_ports", "balancer", "route"):
        assert passed[name] == data[name], name
    assert data["frontend"]["balancer_hold"] == "kernel" and data["balancer"]["hold"] == "kernel"


def test_bad_inventory_fails_the_play_with_the_models_message(tmp_path: Path, example_inventory: Path) -> None:
    (example_inventory / "host_vars" / "cache2.yml").write_text("squid_backend_port_base: 99999\n")
    result = _playbook(tmp_path, example_inventory)
    assert result.returncode != 0
    assert "cache2: squid_backend_port_base = 99999" in result.stdout + result.stderr


def _example_play() -> tuple[dict[str, Any], dict[str, list[str]]]:
    groups, hostvars, _ = load_hostvars(EXAMPLE)
    return hostvars, groups


def test_filter_errors_are_ansible_filter_errors() -> None:
    filters = carpfarm_filters()
    with pytest.raises(AnsibleFilterError, match=r"probe_served: not a carpfarm-probe\.py row"):
        filters["carpfarm_probe_served"](["Traceback (most recent call last):"])
    with pytest.raises(AnsibleFilterError, match=r"change_outcome: .*is not in predicted"):
        filters["carpfarm_change_outcome"](["http://a/"], {"http://a/": ["HIT", "x"]}, {}, {})
    with pytest.raises(AnsibleFilterError, match="weights must be > 0"):
        filters["carpfarm_cascade"]([1, 2], [1, 0])
    with pytest.raises(AnsibleFilterError, match="no backend hosts"):
        filters["carpfarm_cache_peers"](
            {"carp1": {"carpfarm_client_networks": ["192.0.2.0/24"]}}, {"carp_frontends": ["carp1"]}
        )
    with pytest.raises(AnsibleFilterError, match="not in carp_frontends"):
        filters["carpfarm_frontend_ports"](
            {
                "carp1": {"carpfarm_client_networks": ["192.0.2.0/24"], "ansible_host": "192.0.2.10"},
                "c": {"ansible_host": "192.0.2.21"},
            },
            {"carp_frontends": ["carp1"], "squid_backends": ["c"]},
            "c",
        )
    farm = filters["carpfarm_topology"](*_example_play())
    with pytest.raises(AnsibleFilterError, match="made by another carpfarm version"):
        filters["carpfarm_frontend"]({**farm, "carpfarm_topology_format": 0}, "carp1")
    with pytest.raises(AnsibleFilterError, match=r"carpfarm_balancer: give it the play's hostvars and groups"):
        filters["carpfarm_balancer"]({"carp1": {}}, "carp1")
    with pytest.raises(AnsibleFilterError, match="carpfarm_frontend: name one inventory host after the farm"):
        filters["carpfarm_frontend"](farm)
    with pytest.raises(AnsibleFilterError, match=r"unknown cache_peer options \['selection_'\]"):
        filters["carpfarm_cache_peers"](farm, options={"selection_": "carp"})
    with pytest.raises(AnsibleFilterError, match="c is not in the carp_frontends group"):
        filters["carpfarm_frontend"](
            {
                "carp1": {"carpfarm_client_networks": ["192.0.2.0/24"], "ansible_host": "192.0.2.10"},
                "c": {"ansible_host": "192.0.2.21"},
            },
            {"carp_frontends": ["carp1"], "squid_backends": ["c"]},
            "c",
        )


def test_every_filter_is_documented_for_ansible_doc() -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    for name in carpfarm_filters():
        result = subprocess.run(
            [str(BIN / "ansible-doc"), "-t", "filter", name],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
        )
        assert result.returncode == 0 and "EXAMPLES" in result.stdout and "RETURN" in result.stdout, (
            name,
            result.stderr,
        )
