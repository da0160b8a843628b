"""The carpfarm CLI on the example inventory: validate, plan, route, impact."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from carpfarm.cli import EXIT_INVALID, EXIT_WARNING, main
from carpfarm.inventory import load_topology
from support.paths import ROOT

EXAMPLE = ROOT / "inventory" / "example"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(EXAMPLE), "--json")
    assert code == 0
    assert json.loads(out) == {
        "valid": True,
        "frontend_hosts": 1,
        "frontend_instances": 1,
        "backend_hosts": 3,
        "backend_instances": 8,
        "drained_instances": 0,
    }


def test_group_and_host_vars_resolve_like_a_play() -> None:
    topology = load_topology(EXAMPLE, vcpus=4)
    assert [i.port for i in topology.backend_instances][4:] == [4001, 4002, 4003, 4004]  # host_vars/cache3.yml
    assert [i.address for i in topology.backend_instances][-1] == "192.0.2.23"
    assert len(topology.frontend_instances) == 4


def test_plan_json_has_every_layer(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", str(EXAMPLE), "--json", "--vcpus", "4")
    data = json.loads(out)
    assert code == 0
    front = data["frontends"][0]
    assert [i["port"] for i in front["instances"]] == [3129, 3130, 3131, 3132]
    assert [r["iptables_probability"] for r in front["balancer"]["cascade"][:3]] == [
        "0.25000000000",
        "0.33333333349",
        "0.50000000000",
    ]
    assert [round(s, 4) for s in front["naive_wiki_shares"]] == [0.25, 0.1875, 0.1406, 0.4219]
    shares = [i["share"] for b in data["backends"] for i in b["instances"]]
    assert [s["expected"] for s in shares] == [0.125] * 8
    assert all(abs(s["sampled"] - s["expected"]) < 0.03 for s in shares)
    assert data["cache_peers"][0]["name"] == "cache1-backend1"


def test_plan_table_prints(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", str(EXAMPLE), "--vcpus", "4")
    assert code == 0 and "cache3-backend2" in out and "25.00% / 18.75% / 14.06% / 42.19%" in out


# The parent real Squid 5.7 chose for http://www.example.com/0.png ... /19.png behind the example
# inventory's eight cache_peer lines (carpfarm.lab.squidrig.running_squid), with every peer usable and
# with cache2-backend1 denied (cache_peer_access cache2-backend1 deny all); "3-4" is cache3-backend4.
SQUID_ROUTES = {
    "": "3-4 3-4 2-1 3-4 2-1 1-2 2-1 2-2 2-1 1-2 3-4 3-1 2-2 2-2 1-2 2-2 3-3 3-4 1-1 2-2",
    "cache2-backend1": "3-4 3-4 3-4 3-4 2-2 1-2 1-1 2-2 1-1 1-2 3-4 3-1 2-2 2-2 1-2 2-2 3-3 3-4 1-1 2-2",
}


@pytest.mark.parametrize("down", SQUID_ROUTES, ids=["all up", "cache2-backend1 down"])
def test_route_picks_the_parent_squid_picks(capsys: pytest.CaptureFixture[str], down: str) -> None:
    urls = [f"http://www.example.com/{i}.png" for i in range(20)]
    code, out, _ = run(capsys, "route", str(EXAMPLE), *urls, "--json", *(["--down", down] if down else []))
    rows = json.loads(out)
    assert code == 0
    expected = [f"cache{peer[0]}-backend{peer[2]}" for peer in SQUID_ROUTES[down].split()]
    assert [r["peer_name"] for r in rows] == expected
    assert rows[0] == {
        "url": "http://www.example.com/0.png",
        "peer_name": "cache3-backend4",
        "host": "cache3",
        "instance": "backend4",
        "address": "192.0.2.23",  # hosts.yml
        "port": 4004,  # squid_backend_port_base 4001, its fourth instance (host_vars/cache3.yml)
    }


def test_route_down_moves_only_that_peers_urls(capsys: pytest.CaptureFixture[str]) -> None:
    urls = [f"http://www.example.com/{i}.png" for i in range(60)]
    _, out, _ = run(capsys, "route", str(EXAMPLE), *urls, "--json")
    _, out_down, _ = run(capsys, "route", str(EXAMPLE), *urls, "--json", "--down", "cache2-backend1")
    for a, b in zip(json.loads(out), json.loads(out_down), strict=True):
        assert b["peer_name"] != "cache2-backend1"
        assert a["peer_name"] == b["peer_name"] or a["peer_name"] == "cache2-backend1"


def _edit(inventory: Path, change) -> Path:  # type: ignore[no-untyped-def]
    hosts = inventory / "hosts.yml"
    data = yaml.safe_load(hosts.read_text())
    change(data["all"]["children"]["squid_backends"]["hosts"])
    hosts.write_text(yaml.safe_dump(data, sort_keys=False))
    return inventory


def _impact(capsys: pytest.CaptureFixture[str], new: Path) -> tuple[int, dict]:  # type: ignore[type-arg]
    code, out, _ = run(capsys, "impact", str(EXAMPLE), str(new), "--json", "--strict", "--sample", "3000")
    return code, json.loads(out)


def test_impact_of_appending_to_an_equal_weight_farm_is_only_its_share(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import shutil

    old = shutil.copytree(EXAMPLE, tmp_path / "old")
    (old / "host_vars" / "cache3.yml").unlink()  # every instance weight 1
    new = shutil.copytree(old, tmp_path / "new")
    _edit(new, lambda h: h.update({"cache4": {"ansible_host": "192.0.2.24"}}))
    code, out, _ = run(capsys, "impact", str(old), str(new), "--json", "--strict", "--sample", "3000")
    data = json.loads(out)
    assert code == 0 and data["collateral"] == 0
    assert set(data["changed_peers"]) == {"cache4-backend1", "cache4-backend2"}
    assert 0.2 < data["moved_fraction"] < 0.3  # 2 of 8 equal instances
    gained = {name: row["gained"] for name, row in data["per_peer"].items() if row["gained"]}
    assert set(gained) == {"cache4-backend1", "cache4-backend2"}


def test_impact_of_appending_to_a_mixed_weight_farm_is_explained(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import shutil

    old = _edit(shutil.copytree(EXAMPLE, tmp_path / "old"), lambda h: h["cache3"].update(squid_backend_weight=2))
    new = _edit(
        shutil.copytree(old, tmp_path / "new"),
        lambda h: h.update({"cache4": {"ansible_host": "192.0.2.24", "squid_backend_weight": 2}}),
    )
    code, out, _ = run(capsys, "impact", str(old), str(new), "--json", "--strict", "--sample", "3000")
    data = json.loads(out)
    assert code == EXIT_WARNING and data["collateral"] > 0
    assert any("mixes weights" in tip for tip in data["advice"])


def test_impact_of_deleting_versus_draining(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import shutil

    deleted = shutil.copytree(EXAMPLE, tmp_path / "deleted")
    drained = shutil.copytree(EXAMPLE, tmp_path / "drained")
    _edit(deleted, lambda h: h.pop("cache1"))
    _edit(drained, lambda h: h["cache1"].update(squid_backend_state="drained"))
    code_del, deleted_data = _impact(capsys, deleted)
    code_drain, drained_data = _impact(capsys, drained)
    assert code_drain == 0 and drained_data["collateral"] == 0
    assert 0.2 < drained_data["moved_fraction"] < 0.3  # cache1 held 2/8 of the weight
    assert code_del == EXIT_WARNING and deleted_data["collateral"] > 0
    assert deleted_data["moved_fraction"] > drained_data["moved_fraction"] + 0.2
    assert any("drained" in tip for tip in deleted_data["advice"])
    # Deleting reports what draining would have cost: exactly the drain's own figure.
    assert deleted_data["deleted_peers"] == ["cache1-backend1", "cache1-backend2"]
    assert deleted_data["moved_if_drained"] == drained_data["moved"]
    assert drained_data["moved_if_drained"] is None


def test_impact_warns_in_plain_text(capsys: pytest.CaptureFixture[str], example_inventory: Path) -> None:
    new = _edit(example_inventory, lambda h: h.pop("cache2"))
    code, out, _ = run(capsys, "impact", str(EXAMPLE), str(new), "--sample", "2000")
    assert code == 0 and "warning" in out and "avoidable" in out
    assert "draining instead (state: drained) would move" in out


def test_invalid_inventory_exits_2_and_lists_every_problem(
    capsys: pytest.CaptureFixture[str], example_inventory: Path
) -> None:
    (example_inventory / "host_vars" / "cache1.yml").write_text("squid_backend_instances: 0\n")
    (example_inventory / "group_vars" / "carp_frontends.yml").write_text("frontend_balancer_type: lvs\n")
    code, _, err = run(capsys, "validate", str(example_inventory))
    assert code == EXIT_INVALID
    assert "host_vars/cache1.yml:1: squid_backend_instances = 0: " in err
    assert "group_vars/carp_frontends.yml:1: frontend_balancer_type = 'lvs': " in err
    assert "[host cache1]" in err and "[group carp_frontends, host carp1]" in err


@pytest.mark.parametrize("as_json", [False, True])
def test_plan_shows_no_wccp_password(
    capsys: pytest.CaptureFixture[str], example_inventory: Path, as_json: bool
) -> None:
    """carpfarm plan (text and --json): password=<set> in the squid lines, a placeholder in the IOS stanza."""
    with (example_inventory / "group_vars" / "carp_frontends.yml").open("a") as group_vars:
        group_vars.write("carpfarm_wccp: true\ncarpfarm_wccp_routers: [192.0.2.1]\ncarpfarm_wccp_password: s3cret\n")
    code, out, _ = run(capsys, "plan", str(example_inventory), "--vcpus", "2", *(["--json"] if as_json else []))
    assert code == 0
    assert "s3cret" not in out
    assert "wccp2_service standard 0 password=<set>" in out
    assert "password 0 <web-cache-password>" in out


def test_yaml_error_is_a_problem_not_a_traceback(capsys: pytest.CaptureFixture[str], example_inventory: Path) -> None:
    (example_inventory / "group_vars" / "squid_backends.yml").write_text("squid_backend_instances: [1,\n")
    code, out, _ = run(capsys, "validate", str(example_inventory), "--json")
    data = json.loads(out)
    assert code == EXIT_INVALID and data["valid"] is False
    assert data["problems"][0]["variable"] == "inventory"


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "carpfarm"
    result = subprocess.run([str(exe), "validate", str(EXAMPLE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_plan_refuses_4000_equal_carp_peers_with_the_reason(tmp_path: Path) -> None:
    """500 backend hosts x 8 instances: more equal peers than Squid's CARP can balance.

    How long plan takes on large farms is a benchmark figure (bench/impact_speed.py), not a test."""
    hosts = {f"cache{i:03d}": {"ansible_host": f"10.{i // 250}.{i % 250}.1"} for i in range(500)}
    inventory = {
        "all": {
            "vars": {"carpfarm_client_networks": ["192.0.2.0/24"], "squid_backend_instances": 8},
            "children": {
                "carp_frontends": {"hosts": {"carp1": {"ansible_host": "192.0.2.1"}}},
                "squid_backends": {"hosts": hosts},
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    exe = Path(sys.executable).parent / "carpfarm"
    result = subprocess.run([str(exe), "plan", str(tmp_path), "--json"], capture_output=True, text=True, check=False)
    # 4000 equal CARP peers is more than Squid can balance (each under 0.1%): refused, with the reason.
    assert result.returncode == EXIT_INVALID
    assert "at most 1000 equal-weight CARP peers" in result.stdout


# ---- command-line mistakes: exit 2, one line on stderr, never a traceback


def _one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == EXIT_INVALID, (code, err)
    assert "Traceback" not in err and out == ""
    assert len(err.splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("www.example.com/foo", "has no scheme; write it as 'http://www.example.com/foo'"),
        ("localhost:3128/foo", "has no scheme"),
        ("http:/www.example.com/", "needs '://'"),
        ("mailto:squid@example.com", "scheme 'mailto'"),
        ("gopher://example.com/", "scheme 'gopher'"),
        ("http:///foo", "has no host"),
        ("http://user@/foo", "has no host"),
        ("http://h:abc/", "port 'abc'"),
        ("http://h:0/", "port '0'"),
        ("http://h:65536/", "port '65536'"),
        ("http://h:-1/", "port '-1'"),
        ("http://[::1/foo", "closing ']'"),
        ("http://[::1]x/", "after the IPv6 host"),
        ("http://h/a b", "whitespace"),
        ("", "empty"),
    ],
)
def test_route_refuses_a_url_squid_could_not_parse(capsys: pytest.CaptureFixture[str], url: str, named: str) -> None:
    err = _one_line_error(capsys, "route", str(EXAMPLE), "http://www.example.com/ok", url)
    assert err.startswith("carpfarm route: error: URL ") and repr(url) in err and named in err


@pytest.mark.parametrize(
    "url",
    [
        "http://www.example.com/",
        "HTTPS://WWW.example.com:443/x?y=1",
        "ftp://u:p@h:21/f",
        "http://[::1]:8080/",
        "http://h?q",
    ],
)
def test_route_accepts_absolute_urls(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, err = run(capsys, "route", str(EXAMPLE), url, "--json")
    assert code == 0, err
    assert json.loads(out)[0]["peer_name"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["impact", str(EXAMPLE), str(EXAMPLE), "--sample", "0"], "argument --sample: expected a whole number"),
        (["impact", str(EXAMPLE), str(EXAMPLE), "--sample", "-5"], "got -5"),
        (["impact", str(EXAMPLE), str(EXAMPLE), "--sample", "many"], "got 'many'"),
        (["plan", str(EXAMPLE), "--sample", "0"], "argument --sample"),
        (["plan", str(EXAMPLE), "--vcpus", "0"], "argument --vcpus"),
        (["validate", "inventory/does-not-exist"], "inventory 'inventory/does-not-exist' does not exist"),
        (["impact", str(EXAMPLE), "no/such/inventory"], "inventory 'no/such/inventory' does not exist"),
        (["route", str(EXAMPLE)], "the following arguments are required: URL"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_mistakes_exit_2_on_one_line(capsys: pytest.CaptureFixture[str], args: list[str], named: str) -> None:
    assert named in _one_line_error(capsys, *args)


def test_urls_file_that_is_missing_a_directory_or_empty(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    impact = ["impact", str(EXAMPLE), str(EXAMPLE), "--urls-file"]
    missing = tmp_path / "missing.txt"
    assert f"--urls-file '{missing}' does not exist" in _one_line_error(capsys, *impact, str(missing))
    assert "is a directory" in _one_line_error(capsys, *impact, str(tmp_path))
    (tmp_path / "empty.txt").write_text("\n  \n")
    assert "holds no URL" in _one_line_error(capsys, *impact, str(tmp_path / "empty.txt"))
    (tmp_path / "latin1.txt").write_bytes(b"http://h/caf\xe9\n")
    assert "is not UTF-8" in _one_line_error(capsys, *impact, str(tmp_path / "latin1.txt"))
    (tmp_path / "bad.txt").write_text("http://a/\n\nwww.example.com/foo\n")
    err = _one_line_error(capsys, *impact, str(tmp_path / "bad.txt"))
    assert "line 3: URL 'www.example.com/foo' has no scheme" in err


def test_urls_file_is_routed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"http://www.example.com/{i}\n\n" for i in range(50)))
    code, out, _ = run(capsys, "impact", str(EXAMPLE), str(EXAMPLE), "--urls-file", str(urls), "--json")
    assert code == 0 and json.loads(out)["urls"] == 50


@pytest.mark.parametrize(
    ("down", "hint"),
    [
        ("cache2-backendl", "did you mean 'cache2-backend1' or 'cache2-backend2'?"),
        ("cache9-backend1", "did you mean"),
        ("zzz", "its peers are cache1-backend1, cache1-backend2, cache2-backend1"),
    ],
)
def test_route_down_must_name_a_peer(capsys: pytest.CaptureFixture[str], down: str, hint: str) -> None:
    err = _one_line_error(capsys, "route", str(EXAMPLE), "http://a/", "--down", "cache1-backend1", "--down", down)
    assert f"--down '{down}' is not a CARP peer of {EXAMPLE}" in err and hint in err


def test_inventory_problems_keep_their_full_report(capsys: pytest.CaptureFixture[str], example_inventory: Path) -> None:
    (example_inventory / "host_vars" / "cache1.yml").write_text("squid_backend_instances: 0\n")
    code, _, err = run(capsys, "route", str(example_inventory), "http://a/")
    assert code == EXIT_INVALID and len(err.splitlines()) > 1 and "Traceback" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"carpfarm {tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['version']}"


@pytest.mark.parametrize("command", [[], ["validate"], ["plan"], ["route"], ["impact"], ["status"]])
def test_help_explains_arguments_and_exit_codes(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert "exit codes:" in out and "  0  " in out and "  2  invalid input" in out
    positionals = {"impact": ("OLD", "NEW")}.get(command[0] if command else "", ("INVENTORY",))
    assert all(p in out for p in positionals)
    if not command:
        assert "  1  status" in out and "  3  impact --strict" in out and "URL " in out
    if command == ["route"]:
        assert "URL" in out and "ftp://" in out
    if command == ["status"]:
        assert "  1  status" in out


def test_plan_prints_advice_as_warnings(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from carpfarm import plan
    from carpfarm.cli import plan as cli

    def with_advice(*args: object, **kwargs: object) -> dict:  # type: ignore[type-arg]
        return {**plan.plan(*args, **kwargs), "advice": ["backends mix CARP weights [1, 2]"]}  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "plan", with_advice)
    code, out, _ = run(capsys, "plan", str(EXAMPLE), "--vcpus", "4")
    assert code == 0 and out.rstrip().endswith("warning: backends mix CARP weights [1, 2]")


def test_impact_drives_a_progress_callback_when_stderr_is_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from carpfarm import plan
    from carpfarm.cli import impact as cli

    calls: list[tuple[int, int]] = []
    real_impact = plan.impact

    def fake_impact(old: object, new: object, urls: list[str], progress=None):  # type: ignore[no-untyped-def]
        for done in range(0, len(urls) + 1, 50):
            progress(done, len(urls))
            calls.append((done, len(urls)))
        return real_impact(old, new, urls)  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "_IMPACT_TAKES_PROGRESS", True)
    monkeypatch.setattr(cli, "impact", fake_impact)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, _ = run(capsys, "impact", str(EXAMPLE), str(EXAMPLE), "--sample", "200")
    assert code == 0 and "Impact over 200 URLs" in out
    assert calls[-1] == (200, 200)


def test_route_of_many_urls_shows_its_progress_when_stderr_is_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from carpfarm.cli import route as cli
    from carpfarm.model import Topology

    calls: list[tuple[int, int]] = []
    real_routes = Topology.routes

    def recording_routes(self: Topology, urls: list[str], down: object = (), progress=None):  # type: ignore[no-untyped-def]
        assert progress is not None, "route of many URLs on a terminal passes a progress callback"

        def record(done: int, total: int) -> None:
            calls.append((done, total))
            progress(done, total)

        return real_routes(self, urls, down, record)  # type: ignore[arg-type]

    monkeypatch.setattr(Topology, "routes", recording_routes)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    urls = [f"http://www.example.com/{i}" for i in range(cli.ROUTE_PROGRESS_FROM)]
    code, out, _ = run(capsys, "route", str(EXAMPLE), *urls)
    assert code == 0 and "http://www.example.com/0" in out
    assert calls and calls[-1] == (len(urls), len(urls))


@pytest.mark.parametrize("width", [160, 48, 20])  # fits; wraps the first column; wraps every column
@pytest.mark.parametrize("color", [False, True])
def test_big_tables_print_as_rich_prints_them_row_by_row(width: int, color: bool) -> None:
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from carpfarm.cli.common import print_table

    rows = [(f"cache{n}-backend{n % 3} [x]" + " *" * (n % 2), f"{n / 7:.2%}", "[b]-[/b]") for n in range(300)]
    columns = {"CARP peer": "left", "share": "right", "note": "center"}

    def console(out: io.StringIO) -> Console:
        return Console(file=out, width=width, force_terminal=color, color_system="standard" if color else None)

    expected, got = io.StringIO(), io.StringIO()
    table = Table(title="a title")
    for name, justify in columns.items():
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for peer, share, note in rows:
        table.add_row(Text(peer), share, note)
    console(expected).print(table)
    print_table(console(got), "a title", columns, [(Text(peer), share, note) for peer, share, note in rows])  # type: ignore[arg-type]
    assert got.getvalue() == expected.getvalue()
