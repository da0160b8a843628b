"""carpfarm status: the host-side reader's parsers and the tables, on recorded cache manager text."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from rich.console import Console

from carpfarm import status

ROOT = Path(__file__).resolve().parents[1]


def _reader() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "carpfarm_status", ROOT / "playbooks" / "files" / "carpfarm-status.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Shapes as Squid 5.7's cache manager prints them (mgr:counters, mgr:server_list).
COUNTERS = "sample_time = 1795775018.2 (Fri, 27 Nov 2026)\nclient_http.requests = 1048\nclient_http.hits = 922\n"
SERVER_LIST = """
Parent     : cache1-backend1
Host       : 198.18.0.21/4001/0
Flags      : no-query no-digest carp
Status     : Up

Parent     : cache2-backend1
Host       : 198.18.0.22/4001/0
Status     : Down
"""


def test_reader_parses_counters_and_peers() -> None:
    reader = _reader()
    assert reader._counters(COUNTERS)["client_http.hits"] == "922"
    assert reader._peers(SERVER_LIST) == [
        {"name": "cache1-backend1", "status": "Up"},
        {"name": "cache2-backend1", "status": "Down"},
    ]


def test_reader_reports_an_unreachable_instance_instead_of_failing() -> None:
    row = _reader().squid_status({"name": "gone", "role": "backend", "address": "127.0.0.1", "port": 1})
    assert row["name"] == "gone" and row["error"].startswith("ConnectionRefusedError")


def test_tables_show_each_layer_with_down_peers_and_errors() -> None:
    data = {
        "backends": {
            "cache1": {
                "squids": [
                    {"name": "backend1", "requests": 10, "hits": 4, "hit_ratio": 0.4, "objects": 7, "connections": 1},
                    {"name": "backend2", "error": "ConnectionRefusedError: refused"},
                ]
            }
        },
        "frontends": {
            "carp1": {
                "squids": [
                    {
                        "name": "frontend1",
                        "requests": 12,
                        "connections": 2,
                        "peers": [{"name": "a", "status": "Up"}, {"name": "b", "status": "Down"}],
                    }
                ],
                "balancer": {"type": "iptables", "rules": [{"target": 3129, "packets": 5}]},
            }
        },
    }
    console = Console(width=200, record=True)
    for table in status.tables(data):
        console.print(table)
    text = console.export_text()
    assert "40.0%" in text and "ConnectionRefusedError" in text
    assert "frontend1" in text and " b " in text  # the down peer is named
    assert "5 packets" in text


def test_status_playbook_is_found_from_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CARPFARM_HOME", raising=False)
    assert status.find_playbook() == ROOT / "playbooks" / "status.yml"
    monkeypatch.setenv("CARPFARM_HOME", str(tmp_path))
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "status.yml").write_text("---\n")
    assert status.find_playbook() == tmp_path / "playbooks" / "status.yml"
