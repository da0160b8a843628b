"""carpfarm status: the host-side reader's parsers and the tables, on recorded cache manager text."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from rich.console import Console

from carpfarm.cli import main, status
from support.paths import ROOT, load_script


def _reader() -> ModuleType:
    return load_script(ROOT / "playbooks" / "files" / "carpfarm-status.py")


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


# ---- hosts the playbook could not reach: marked, the rest still shown, exit 1

REFUSED = (
    "Task failed: Failed to connect to the host via ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused"
)
# What playbooks/status.yml wrote with one backend reached and the other backend and the CARP box unreachable.
PARTLY_REACHED = {
    "backends": {
        "cache1": {
            "squids": [
                {"name": "backend1", "requests": 10, "hits": 4, "hit_ratio": 0.4, "objects": 7, "connections": 1},
            ]
        },
        "cache2": {"squids": [], "unreachable": REFUSED},
    },
    "frontends": {"carp1": {"squids": [], "unreachable": REFUSED}},
}


def _text(data: dict) -> str:  # type: ignore[type-arg]
    console = Console(width=200, record=True)
    for table in status.tables(data):
        console.print(table)
    return console.export_text()


def test_unreachable_hosts_are_listed_with_their_reason() -> None:
    assert status.unreachable(PARTLY_REACHED) == {"cache2": REFUSED, "carp1": REFUSED}
    assert status.unreachable({"backends": {"cache1": PARTLY_REACHED["backends"]["cache1"]}}) == {}


def test_tables_mark_unreachable_hosts_and_keep_the_layers_reached() -> None:
    text = _text(PARTLY_REACHED)
    assert "cache1/backend1" in text and "40.0%" in text  # the host that answered
    rows = [line for line in text.splitlines() if "UNREACHABLE" in line]
    assert any("cache2" in row for row in rows) and any("carp1" in row for row in rows)
    assert "Unreachable hosts" in text
    assert sum("Connection refused" in row for row in rows) == 2  # the reason, on each host's line
    assert "Unreachable hosts" not in _text({"backends": {"cache1": PARTLY_REACHED["backends"]["cache1"]}})


def test_text_for_ansible_is_plain_ascii() -> None:
    text = status.render_text(PARTLY_REACHED)
    assert text.isascii() and "| cache2 " in text and "UNREACHABLE" in text and "\x1b" not in text


def test_module_renders_the_playbooks_json_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(PARTLY_REACHED)))
    assert status.main(["-"]) == 0
    assert "UNREACHABLE" in capsys.readouterr().out


@pytest.mark.parametrize(("data", "code"), [(PARTLY_REACHED, 1), ({"backends": {}, "frontends": {}}, 0)])
@pytest.mark.parametrize("as_json", [False, True])
def test_status_exits_1_when_a_host_was_unreachable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data: dict,
    code: int,
    as_json: bool,  # type: ignore[type-arg]
) -> None:
    monkeypatch.setattr(status, "collect", lambda inventory, extra, **kwargs: data)
    assert main(["status", str(ROOT / "inventory" / "example"), *(["--json"] if as_json else [])]) == code
    out, err = capsys.readouterr()
    if as_json:
        assert json.loads(out) == data
    if code:
        assert err.strip() == "error: 2 of 3 host(s) UNREACHABLE: cache2, carp1"
        assert as_json or "Connection refused" in out
    else:
        assert err == ""


def test_collect_keeps_the_data_when_ansible_playbook_exits_nonzero(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that failed (not unreachable) makes ansible-playbook exit 2; the data written still counts."""

    def playbook(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        out = Path(next(a for a in argv if a.startswith("carpfarm_status_file=")).split("=", 1)[1])
        out.write_text(json.dumps(PARTLY_REACHED))
        return subprocess.CompletedProcess(argv, 2, "fatal: [cache2]: FAILED!", "")

    monkeypatch.setattr(status.subprocess, "run", playbook)
    assert status.collect("inventory/example") == PARTLY_REACHED


def test_collect_fails_when_the_playbook_wrote_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def playbook(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, "ERROR! the playbook could not be parsed", "")

    monkeypatch.setattr(status.subprocess, "run", playbook)
    with pytest.raises(status.StatusError, match=r"exit 1\):\nERROR! the playbook could not be parsed"):
        status.collect("inventory/example")


def test_every_host_play_goes_on_past_an_unreachable_host() -> None:
    plays = yaml.safe_load((ROOT / "playbooks" / "status.yml").read_text())
    host_plays = [p for p in plays if p["hosts"] != "localhost"]
    assert [p["hosts"] for p in host_plays] == ["squid_backends", "carp_frontends"]
    assert all(p["ignore_unreachable"] is True for p in host_plays)


def _partly_reachable(directory: Path) -> Path:
    """An inventory whose cache1 is this machine (reached); cache2 and carp1 refuse ssh on port 1."""
    unreachable = {"ansible_host": "127.0.0.1", "ansible_port": 1}
    inventory = {
        "all": {
            "vars": {"carpfarm_client_networks": ["192.0.2.128/26"]},
            "children": {
                "carp_frontends": {"hosts": {"carp1": {**unreachable, "carp_frontend_address": "192.0.2.10"}}},
                "squid_backends": {
                    "hosts": {
                        "cache1": {
                            "ansible_connection": "local",
                            "ansible_become": False,
                            "ansible_python_interpreter": sys.executable,
                            "squid_backend_address": "192.0.2.21",
                        },
                        "cache2": {**unreachable, "squid_backend_address": "192.0.2.22"},
                    }
                },
            },
        }
    }
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return directory


def test_status_playbook_marks_unreachable_hosts_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real playbook: cache1 is this machine (reached), cache2 and carp1 refuse ssh on port 1."""
    assert main(["status", str(_partly_reachable(tmp_path)), "--json"]) == 1
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert [s["name"] for s in data["backends"]["cache1"]["squids"]] == ["backend1"]  # read, though Squid is absent
    assert set(status.unreachable(data)) == {"cache2", "carp1"}
    assert "Connection refused" in data["frontends"]["carp1"]["unreachable"]
    assert "UNREACHABLE: cache2, carp1" in err


def test_status_limit_reads_only_the_hosts_named_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real playbook with --limit cache1: the play on localhost still writes the data, which
    holds cache1 alone (the unreachable hosts left out are neither read nor reported)."""
    assert main(["status", str(_partly_reachable(tmp_path)), "--limit", "cache1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {"backends": {"cache1": data["backends"]["cache1"]}, "frontends": {}}
    assert [s["name"] for s in data["backends"]["cache1"]["squids"]] == ["backend1"]


def _argv_of(monkeypatch: pytest.MonkeyPatch, *args: str) -> list[str]:
    """The argv ``carpfarm status`` runs ansible-playbook with (the run faked; it writes no host)."""
    runs: list[list[str]] = []

    def playbook(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        runs.append(argv)
        out = Path(next(a for a in argv if a.startswith("carpfarm_status_file=")).split("=", 1)[1])
        out.write_text(json.dumps({"backends": {}, "frontends": {}}))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(status.subprocess, "run", playbook)
    assert main(["status", str(ROOT / "inventory" / "example"), "--json", *args]) == 0
    [argv] = runs
    return argv


def test_status_limit_is_passed_on_with_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = _argv_of(monkeypatch, "--limit", "squid_backends:!cache2", "--", "--forks", "3")
    playbook = str(ROOT / "playbooks" / "status.yml")
    assert argv[1:4] == ["-i", str(ROOT / "inventory" / "example"), playbook]
    assert argv[6:] == ["--limit", "squid_backends:!cache2,localhost", "--forks", "3"]
    assert "--limit" not in _argv_of(monkeypatch)


@pytest.mark.parametrize("passed", [["--limit", "cache1"], ["-l", "cache1"], ["--limit=cache1"], ["-lcache1"]])
def test_a_limit_after_the_double_dash_is_refused_with_the_option_to_use(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], passed: list[str]
) -> None:
    monkeypatch.setattr(status.subprocess, "run", lambda *a, **k: pytest.fail("ansible-playbook ran"))
    assert main(["status", str(ROOT / "inventory" / "example"), "--", *passed]) == 2
    assert "--limit PATTERN', not after '--'" in capsys.readouterr().err


def test_the_reader_and_the_tables_show_what_carpfarm_watch_sees(tmp_path: Path) -> None:
    state = {
        "instances": [
            {"port": 3129, "healthy": True, "since": 1.0, "live": True, "held": False},
            {"port": 3130, "healthy": False, "since": 2.0, "live": False, "held": False},
            {"port": 3131, "healthy": True, "since": 1.0, "live": False, "held": True},
        ],
        "fallback": None,
        "updated": 3.0,
        "error": None,
        "rules_sha256": "x",
    }
    (tmp_path / "watch.json").write_text(json.dumps(state))
    reader = _reader()
    seen = reader.watch_status(str(tmp_path / "watch.json"))
    assert seen["instances"] == state["instances"] and "rules_sha256" not in seen
    assert "has not run" in reader.watch_status(str(tmp_path / "missing.json"))["error"]
    data = {"frontends": {"carp1": {"squids": [], "balancer": {"type": "nftables", "rules": [], "watch": seen}}}}
    text = status.render_text(data)
    assert "Frontend health (carpfarm-watch)" in text
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines() if " 31" in line]
    assert rows == [
        ["carp1", "3129", "up", "yes"],
        ["carp1", "3130", "DOWN", "no"],
        ["carp1", "3131", "up", "held out"],
    ]
    assert "Frontend health" not in status.render_text({"frontends": {"carp1": {"squids": [], "balancer": {}}}})
