"""Role templates rendered by Ansible's own templar, and checked by the real tools where they exist here.

Their inputs are what each role's tasks/preflight.yml computes (support.ansible.preflight), so a
broken preflight fails here too.

The molecule scenarios run the iptables, nftables and HAProxy balancers for real; here their
rules go to the real `iptables-restore --test` and `nft -c`, and the Squid configs to `squid -k parse`.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from carpfarm.inventory import load_hostvars, load_topology
from carpfarm.lab import squidrig
from carpfarm.lab.squidrig import SQUID, free_port
from carpfarm.plan import balancer_rules
from support.ansible import preflight, render, role_defaults
from support.paths import EXAMPLE, ROOT

ROLE = ROOT / "roles" / "frontend_balancer"


def balancer(**carp1: Any) -> dict[str, Any]:
    """carp1's ruleset (4 vCPUs) as frontend_balancer's preflight computes it; kernel.yml renders it."""
    groups, hostvars, _ = load_hostvars(EXAMPLE, vcpus=4)
    hostvars["carp1"].update(carp1)
    return dict(preflight("frontend_balancer", groups, hostvars, "carp1")["__frontend_balancer"])


@pytest.mark.iptables
@pytest.mark.nft
@pytest.mark.parametrize("mode", ["random", "roundrobin"])
def test_kernel_rules_pass_the_real_checkers(tmp_path: Path, mode: str) -> None:
    data = balancer(frontend_balancer_mode=mode)
    ipt = render(ROLE / "templates/etc/carpfarm/balancer.rules.j2", __frontend_balancer_ruleset=data)
    nft = render(ROLE / "templates/etc/carpfarm/balancer.nft.j2", __frontend_balancer_ruleset=data)
    if mode == "random":
        assert "-m statistic --mode random --probability 0.33333333349 -j REDIRECT --to-ports 3130" in ipt
        assert "numgen random mod 4 map { 0 : 3129, 1 : 3130, 2 : 3131, 3 : 3132 }" in nft
    else:
        assert "-m statistic --mode nth --every 3 --packet 0 -j REDIRECT --to-ports 3130" in ipt
        assert "numgen inc mod 4" in nft
    (tmp_path / "r").write_text(ipt)
    (tmp_path / "n").write_text(nft)
    subprocess.run(["iptables-restore", "--test", "--noflush", str(tmp_path / "r")], check=True, capture_output=True)
    subprocess.run(["nft", "-c", "-f", str(tmp_path / "n")], check=True, capture_output=True)


@pytest.mark.nft
def test_held_out_instance_leaves_an_exactly_fair_cascade_over_the_rest(tmp_path: Path) -> None:
    """While one frontend restarts, the kernel balancer spreads over the other three, 1/3 each."""
    topology = load_topology(EXAMPLE, vcpus=4)
    held = balancer_rules(topology, "carp1", exclude=[3130])
    assert [r["target"] for r in held["cascade"]] == [3129, 3131, 3132]
    assert [r["iptables_probability"] for r in held["cascade"]] == ["0.33333333349", "0.50000000000", "1.00000000000"]
    assert sorted({e["port"] for e in held["nft_map"]}) == [3129, 3131, 3132]
    rules = render(ROLE / "templates/etc/carpfarm/balancer.nft.j2", __frontend_balancer_ruleset={**balancer(), **held})
    assert ": 3130" not in rules
    (tmp_path / "held.nft").write_text(rules)
    subprocess.run(["nft", "-c", "-f", str(tmp_path / "held.nft")], check=True, capture_output=True)
    with pytest.raises(ValueError, match="leaves no frontend instance"):
        balancer_rules(topology, "carp1", exclude=[3129, 3130, 3131, 3132])


# ---------------------------------------------------------------- the Squids' port policy

FRONTEND_CONF = ROOT / "roles/carp_frontend/templates/etc/squid/frontend.conf.j2"
BACKEND_CONF = ROOT / "roles/squid_backend/templates/etc/squid/backend.conf.j2"
# Squid's stock Safe_ports and SSL_ports, as Debian's /etc/squid/squid.conf lists them.
STOCK_SAFE_PORTS = "80 21 443 70 210 1025-65535 280 488 591 777"
PORT_RULES = ["http_access deny !carpfarm_safe_ports", "http_access deny CONNECT !carpfarm_ssl_ports"]


def _example(**carp1: Any) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    groups, hostvars, _ = load_hostvars(EXAMPLE, vcpus=2)
    hostvars["carp1"].update(carp1)
    return groups, hostvars


def frontend_confs(carp1: dict[str, Any] | None = None, peers: Any = None, **variables: Any) -> dict[str, str]:
    """Each frontend instance's squid.conf on carp1, as the carp_frontend role renders it."""
    groups, hostvars = _example(**(carp1 or {}))
    play = preflight("carp_frontend", groups, hostvars, "carp1", **variables)
    if peers is not None:
        play["__carp_frontend_peers"] = peers
    return {item["name"]: render(FRONTEND_CONF, **play, item=item) for item in play["__carp_frontend_instances"]}


def _backend(cache1: dict[str, Any] | None = None, **variables: Any) -> dict[str, Any]:
    """What squid_backend's templates see on cache1 (its preflight's facts among them)."""
    groups, hostvars = _example()
    hostvars["cache1"].update(cache1 or {})
    return preflight("squid_backend", groups, hostvars, "cache1", **variables)


def backend_confs(**variables: Any) -> dict[str, str]:
    """Each backend instance's squid.conf on cache1, as the squid_backend role renders it."""
    play = _backend(**variables)
    return {item["name"]: render(BACKEND_CONF, **play, item=item) for item in play["__squid_backend_instances"]}


def _squid_parses(tmp_path: Path, name: str, conf: str) -> None:
    path = tmp_path / f"{name}.conf"
    path.write_text(conf)
    parsed = subprocess.run([SQUID, "-k", "parse", "-f", str(path)], capture_output=True, text=True, check=False)
    assert parsed.returncode == 0, parsed.stderr[-2000:]
    assert "empty ACL" not in parsed.stderr, parsed.stderr[-2000:]


ROLE_CASES = {
    "frontend behind iptables": lambda **v: frontend_confs(**v),
    "frontend behind HAProxy": lambda **v: frontend_confs({"frontend_balancer_type": "haproxy"}, **v),
    "frontend without localhost": lambda **v: frontend_confs(carp_frontend_allow_localhost=False, **v),
    "frontend in SMP mode": lambda **v: frontend_confs({"carp_frontend_mode": "smp"}, **v),
    "backend": lambda **v: backend_confs(**v),
    "backend with extra sources": lambda **v: backend_confs(squid_backend_extra_allowed_networks=["10.9.0.0/16"], **v),
}


@pytest.mark.squid
@pytest.mark.parametrize("case", ROLE_CASES)
def test_port_rules_come_before_every_allow_and_pass_squid_parse(tmp_path: Path, case: str) -> None:
    for name, conf in ROLE_CASES[case]().items():
        lines = conf.splitlines()
        access = [line for line in lines if line.startswith("http_access ")]
        assert access[:2] == PORT_RULES, access
        assert access[-1] == "http_access deny all"
        assert not any(" allow " in line for line in access[:2])
        assert f"acl carpfarm_safe_ports port {STOCK_SAFE_PORTS}" in lines
        assert "acl carpfarm_ssl_ports port 443" in lines
        assert lines.index("acl carpfarm_safe_ports port " + STOCK_SAFE_PORTS) < lines.index(PORT_RULES[0])
        _squid_parses(tmp_path, name, conf)


@pytest.mark.squid
def test_an_smp_frontend_is_one_squid_whose_workers_share_the_listen_port(tmp_path: Path) -> None:
    confs = frontend_confs({"carp_frontend_mode": "smp", "carp_frontend_listen_port": 8080})
    assert list(confs) == ["frontend"]
    lines = confs["frontend"].splitlines()
    assert "workers 2" in lines
    assert "cpu_affinity_map process_numbers=1,2 cores=1,2" in lines
    assert [line for line in lines if line.startswith("http_port ")] == ["http_port 8080"]
    assert "access_log stdio:/var/log/squid/frontend/access-kid${process_number}.log squid" in lines
    assert not any("require-proxy-header" in line or "intercept" in line for line in lines)
    _squid_parses(tmp_path, "frontend", confs["frontend"])


@pytest.mark.squid
@pytest.mark.parametrize("case", ROLE_CASES)
def test_the_farm_wide_port_lists_reach_both_roles(tmp_path: Path, case: str) -> None:
    confs = ROLE_CASES[case](carpfarm_safe_ports=[80, 443, "8000-8099"], carpfarm_ssl_ports=[443, "8443-8444"])
    for name, conf in confs.items():
        lines = conf.splitlines()
        assert "acl carpfarm_safe_ports port 80 443 8000-8099" in lines
        assert "acl carpfarm_ssl_ports port 443 8443-8444" in lines
        assert [line for line in lines if line.startswith("http_access ")][:2] == PORT_RULES
        _squid_parses(tmp_path, name, conf)


@pytest.mark.squid
@pytest.mark.parametrize("case", ROLE_CASES)
def test_no_ssl_ports_refuses_every_connect(tmp_path: Path, case: str) -> None:
    for name, conf in ROLE_CASES[case](carpfarm_ssl_ports=[]).items():
        lines = conf.splitlines()
        assert [line for line in lines if line.startswith("http_access ")][:2] == [
            "http_access deny !carpfarm_safe_ports",
            "http_access deny CONNECT",
        ]
        assert not any(line.startswith("acl carpfarm_ssl_ports") for line in lines)
        _squid_parses(tmp_path, name, conf)


class _Parent(BaseHTTPRequestHandler):
    """A parent that records each request line and says yes to it (200, or a tunnel for CONNECT)."""

    protocol_version = "HTTP/1.1"
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        # What a backend tells about itself (Squid 5: X-Cache*, Squid 6: Cache-Status).
        self.send_header("X-Cache", "HIT from cache1-backend1")
        self.send_header("X-Cache-Lookup", "HIT from cache1-backend1:4001")
        self.send_header("Cache-Status", "cache1-backend1;hit")
        self.end_headers()

    def do_CONNECT(self) -> None:
        self.seen.append(f"CONNECT {self.path}")
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _recording_parent() -> Iterator[tuple[int, list[str]]]:
    seen: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Parent", (_Parent,), {"seen": seen}))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1]), seen
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _running_frontend(parent_port: int, workdir: Path) -> Iterator[int]:
    """carp1's frontend1 as the role renders it (behind iptables, moved to 127.0.0.1), with one parent.

    Its pid file and logs go to workdir, which must outlive it (Squid writes the logs as it stops).
    """
    port = free_port()
    groups, hostvars = _example()
    hostvars[groups["squid_backends"][0]].update(squid_backend_address="127.0.0.1", squid_backend_port_base=parent_port)
    peer = preflight("carp_frontend", groups, hostvars, "carp1")["__carp_frontend_peers"][0]
    carp1 = {"carp_frontend_instances": 1, "carp_frontend_port_base": port}
    conf = frontend_confs(carp1, peers=[peer], carp_frontend_shutdown_lifetime=1)["frontend1"]
    conf = conf.replace("/run/squid-frontend1.pid", f"{workdir}/squid.pid")
    conf = conf.replace("/var/log/squid/frontend1/", f"{workdir}/")
    assert f"http_port {port}" in conf.splitlines()
    conf = conf.replace(f"http_port {port}\n", f"http_port 127.0.0.1:{port}\n")
    with _running_squid(conf + f"coredump_dir {workdir}\n", port, workdir) as running:
        yield running


@contextmanager
def _running_backend(workdir: Path, loopback_origin: bool = False) -> Iterator[int]:
    """cache1's backend1 as the role renders it, on 127.0.0.1, which it serves as if a CARP box, memory only.

    ``loopback_origin``: let it fetch from an origin on 127.0.0.1 (a test's), which the role's
    ``http_access deny to_localhost`` refuses; test_a_real_backend_refuses_the_proxies_own_hosts keeps it."""
    port = free_port()
    conf = backend_confs(squid_backend_extra_config="", squid_backend_extra_allowed_networks=["127.0.0.1/32"])[
        "backend1"
    ]
    if loopback_origin:
        assert "\nhttp_access deny to_localhost\n" in conf
        conf = conf.replace("\nhttp_access deny to_localhost\n", "\n")
    conf = re.sub(r"(?m)^http_port .*$", f"http_port 127.0.0.1:{port}", conf)
    conf = re.sub(r"(?m)^(cache_dir|coredump_dir) .*$", "", conf)
    conf += f"coredump_dir {workdir}\nshutdown_lifetime 1 seconds\n"
    conf = re.sub(r"/run/squid-\w+\.pid", f"{workdir}/squid.pid", conf)
    conf = re.sub(r"/var/log/squid/\w+/", f"{workdir}/", conf)
    with _running_squid(conf, port, workdir) as running:
        yield running


@contextmanager
def _running_squid(conf: str, port: int, workdir: Path) -> Iterator[int]:
    """Squid running conf (checked with squid -k parse first) until the block ends; yields its port."""
    path = workdir / "squid.conf"
    path.write_text(conf)
    subprocess.run([SQUID, "-k", "parse", "-f", str(path)], check=True, capture_output=True)
    proc = subprocess.Popen([SQUID, "-N", "-n", f"carppolicy{os.getpid()}{port}", "-f", str(path)])
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (workdir / "cache.log").read_text(errors="replace")[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"squid did not listen on 127.0.0.1:{port}"
                time.sleep(0.1)
        yield port
    finally:
        squidrig.stop(proc)


def _status(port: int, method: str, target: str) -> int:
    """The status line's code for one request sent to the proxy on a new connection."""
    authority = target.split("/")[2] if "://" in target else target
    request = f"{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode())
        response = conn.makefile("rb")
        status = int(response.readline().decode().split()[1])
        if status != 200:  # read the error page to its end, so Squid is not the one left waiting
            response.read()
    return status


@pytest.mark.squid
def test_a_real_frontend_refuses_unsafe_ports_and_forwards_the_rest() -> None:
    """The rendered frontend allows localhost (carp_frontend_allow_localhost), so only the port rules and
    the tunnel denials (no CONNECT to the proxies' own hosts) can say 403. 192.0.2.1 is a documentation
    address: the recording parent answers for it, nothing leaves the machine."""
    refused = [
        ("CONNECT", "192.0.2.1:22"),
        ("CONNECT", "192.0.2.1:80"),
        ("GET", "http://192.0.2.1:25/smtp"),
        # The proxies' loopback in three spellings, the cloud metadata service, a farm host (cache1).
        ("CONNECT", "127.0.0.1:443"),
        ("CONNECT", "localhost:443"),
        ("CONNECT", "[::1]:443"),
        ("CONNECT", "169.254.169.254:443"),
        ("CONNECT", "192.0.2.21:443"),
    ]
    with tempfile.TemporaryDirectory() as tmp, _recording_parent() as (parent_port, seen):
        workdir = Path(tmp)
        workdir.chmod(0o777)  # squid drops to the 'proxy' user for its logs
        with _running_frontend(parent_port, workdir) as port:
            assert {target: _status(port, method, target) for method, target in refused} == {
                target: 403 for _, target in refused
            }
            # A URL without a port is port 80 to Squid's port ACL; 8080 is in 1025-65535; 443 may be tunnelled.
            assert _status(port, "GET", "http://192.0.2.1/no-port") == 200
            assert _status(port, "GET", "http://192.0.2.1:8080/high-port") == 200
            assert _status(port, "CONNECT", "192.0.2.1:443") == 200
        log = (workdir / "access.log").read_text().splitlines()
    assert sorted(seen) == [
        "CONNECT 192.0.2.1:443",
        "GET http://192.0.2.1/no-port",
        "GET http://192.0.2.1:8080/high-port",
    ]
    # Squid 6 tags a denial whose client hung up first TCP_DENIED_ABORTED; a denial is a denial.
    denied = [line.split()[6] for line in log if re.search(r" TCP_DENIED(_ABORTED)?/403 ", line)]
    assert sorted(denied) == sorted(t for _, t in refused)


class _FailingOrigin(BaseHTTPRequestHandler):
    """An origin that fails: /reset closes the connection without a word, /gateway answers 502."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.endswith("/reset"):
            self.close_connection = True
            return
        status = 502 if self.path.endswith("/gateway") else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.squid
def test_a_real_backend_answers_an_origins_failure_with_503_which_frontends_do_not_reforward() -> None:
    """Squid re-forwards a parent's 502 and 504 to the next parent whatever retry_on_error says; a
    backend that answers 503 instead has the failing origin asked once, not once per backend."""
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _FailingOrigin)
    origin.daemon_threads = True
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    at = f"http://127.0.0.1:{origin.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            workdir.chmod(0o777)  # squid drops to the 'proxy' user for its logs
            with _running_backend(workdir, loopback_origin=True) as port:
                answers = {path: _status(port, "GET", f"{at}/{path}") for path in ("reset", "gateway", "fine")}
    finally:
        origin.shutdown()
        origin.server_close()
    assert answers == {"reset": 503, "gateway": 503, "fine": 200}


@pytest.mark.squid
@pytest.mark.parametrize("selection", ["carp", "round-robin"])
def test_the_cache_peer_lines_carry_the_roles_settings_and_pass_squid_parse(tmp_path: Path, selection: str) -> None:
    carp1 = {"carp_frontend_carp_key": ["host", "path"]}
    conf = frontend_confs(
        carp1,
        carp_frontend_parent_selection=selection,
        carp_frontend_connect_fail_limit=7,
        carp_frontend_peer_connect_timeout=3,
    )["frontend1"]
    peers = [line for line in conf.splitlines() if line.startswith("cache_peer ")]
    assert len(peers) == 8
    key = " carp-key=host,path" if selection == "carp" else ""
    assert peers[4] == (
        f"cache_peer 192.0.2.23 parent 4001 0 {selection} no-query no-digest name=cache3-backend1 weight=1 "
        f"connect-fail-limit=7 connect-timeout=3{key}"
    )
    (tmp_path / "f.conf").write_text(conf)
    parsed = subprocess.run([SQUID, "-k", "parse", "-f", str(tmp_path / "f.conf")], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr


@pytest.mark.parametrize(("written", "allowed"), [(True, True), ("false", False), ("no", False), ("True", True)])
def test_booleans_mean_the_same_in_templates_whatever_the_inventory_format(written: Any, allowed: bool) -> None:
    """-e and INI inventories give the string 'false': the template reads it as Ansible's bool does."""
    conf = frontend_confs(carp_frontend_allow_localhost=written)["frontend1"]
    assert ("http_access allow localhost\n" in conf) == allowed


@pytest.mark.squid
def test_an_ipv6_backend_listens_in_brackets(tmp_path: Path) -> None:
    play = _backend({"squid_backend_address": "2001:db8::21"})
    conf = render(BACKEND_CONF, **play, item=play["__squid_backend_instances"][0])
    assert "http_port [2001:db8::21]:4001\n" in conf
    _squid_parses(tmp_path, "v6", conf)


# ---------------------------------------------------------------- extra lines and per-instance cache_dir

EXTRA = "acl office src 192.0.2.64/26\nhttp_access allow office\n"


@pytest.mark.squid
@pytest.mark.parametrize(
    ("confs", "marker"),
    [
        (lambda: frontend_confs(carp_frontend_extra_config=EXTRA), "# --- carp_frontend_extra_config"),
        (lambda: backend_confs(squid_backend_extra_config=EXTRA), "# --- squid_backend_extra_config"),
    ],
    ids=["frontend", "backend"],
)
def test_extra_config_lands_just_before_the_final_deny_and_passes_squid_parse(
    tmp_path: Path, confs: Any, marker: str
) -> None:
    for name, conf in confs().items():
        lines = conf.splitlines()
        at = lines.index(marker)
        assert lines[at + 1 : at + 3] == EXTRA.splitlines()
        final_deny = lines.index("http_access deny all")
        assert at < final_deny and [line for line in lines[at:] if line.startswith("http_access ")] == [
            "http_access allow office",
            "http_access deny all",
        ]
        _squid_parses(tmp_path, name, conf)


@pytest.mark.parametrize("role", ["frontend", "backend"])
def test_no_extra_config_leaves_no_trace(role: str) -> None:
    confs = frontend_confs() if role == "frontend" else backend_confs()
    assert not any("extra_config" in conf for conf in confs.values())


@pytest.mark.parametrize(
    ("variable", "confs"),
    [
        ("carp_frontend_extra_config", lambda: frontend_confs(carp_frontend_extra_config="cache_peer_nonsense on\n")),
        (
            "squid_backend_extra_config",
            lambda: backend_confs(squid_backend_extra_config="http_access allow nosuchacl\n"),
        ),
    ],
)
@pytest.mark.squid
def test_a_bad_extra_line_fails_squid_parse_so_the_role_keeps_the_live_file(
    tmp_path: Path, variable: str, confs: Any
) -> None:
    """The role's template task validates with squid -k parse: a broken extra line never goes live."""
    name, conf = next(iter(confs().items()))
    path = tmp_path / f"{name}.conf"
    path.write_text(conf)
    parsed = subprocess.run([SQUID, "-k", "parse", "-f", str(path)], capture_output=True, text=True, check=False)
    assert parsed.returncode != 0, f"{variable}: squid -k parse accepted {conf[-300:]}"


@pytest.mark.squid
@pytest.mark.parametrize("cache_type", ["aufs", "rock", "ufs"])
def test_an_instance_cache_dir_is_its_cache_dir_and_coredump_dir(tmp_path: Path, cache_type: str) -> None:
    disks = [{"name": "disk1", "cache_dir": "/srv/disk1/squid"}, {}]
    play = _backend({"squid_backend_instances": disks, "squid_backend_cache_type": cache_type})
    items = play["__squid_backend_instances"]
    assert [i["cache_dir"] for i in items] == ["/srv/disk1/squid", "/var/spool/squid/backend2"]
    for item in items:
        conf = render(BACKEND_CONF, **play, item=item)
        lines = conf.splitlines()
        size = item["cache_size_mb"]
        geometry = "" if cache_type == "rock" else " 16 256"
        assert f"cache_dir {cache_type} {item['cache_dir']} {size}{geometry}" in lines
        assert f"coredump_dir {item['cache_dir']}" in lines
        _squid_parses(tmp_path, item["name"], conf)


# ---------------------------------------------------------------- the squid@ unit

UNIT = ROOT / "roles/squid_common/templates/etc/systemd/system/squid@.service.j2"


def _unit_validate() -> list[str]:

    command = yaml.safe_load((ROOT / "roles/squid_common/vars/main.yml").read_text())["__squid_common_unit_validate"]
    return shlex.split(command)


def _unit(**variables: Any) -> str:
    return render(UNIT, **{**role_defaults("squid_common"), **variables})


def _checkable_unit() -> str:
    """The unit, its ExecStartPre pointed at the repository's carpfarm-squid-parse: systemd-analyze verify
    wants every command to exist, and on a host the role installs it before the unit."""
    installed = "/usr/local/sbin/carpfarm-squid-parse"
    assert installed in _unit()
    return _unit().replace(installed, (ROOT / "roles/squid_common/files/carpfarm-squid-parse").as_posix())


def test_the_unit_waits_for_the_network_and_is_sandboxed() -> None:
    lines = _unit().splitlines()
    for line in ("Wants=network-online.target", "NoNewPrivileges=yes", "ProtectSystem=full", "ProtectHome=yes"):
        assert line in lines
    assert "PrivateTmp=yes" in lines
    assert any(line.startswith("After=network-online.target") for line in lines)


def test_the_roles_unit_check_passes_the_unit_and_refuses_a_broken_one(tmp_path: Path) -> None:
    """squid_common validates squid@.service with systemd-analyze verify before it goes live."""
    good = tmp_path / "candidate"
    good.write_text(_checkable_unit())
    argv = [good.as_posix() if a == "%s" else a for a in _unit_validate()]
    checked = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    for broken in (
        _checkable_unit().replace("ProtectSystem=full", "ProtectSystem=fully"),
        _checkable_unit().replace("/usr/sbin/squid --foreground", "/usr/sbin/nosquid --foreground"),
    ):
        good.write_text(broken)
        refused = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert refused.returncode != 0, broken


def _headers(port: int, target: str, extra: str = "") -> tuple[int, dict[str, str]]:
    """Status and headers (names lower-cased) of one GET through the proxy."""
    request = f"GET {target} HTTP/1.1\r\nHost: {target.split('/')[2]}\r\n{extra}Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode())
        head = conn.makefile("rb").read().split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    fields = dict(line.split(":", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.strip().lower(): v.strip() for k, v in fields.items()}


@pytest.mark.squid
def test_a_real_frontend_strips_the_farms_cache_headers_and_its_version_by_default() -> None:
    """carpfarm_cache_status_headers: false (the default): clients learn neither which host or instance
    answered nor the Squid version; the backend gets X-Forwarded-For with the client alone."""
    with tempfile.TemporaryDirectory() as tmp, _recording_parent() as (parent_port, _seen):
        workdir = Path(tmp)
        workdir.chmod(0o777)  # squid drops to the 'proxy' user for its logs
        with _running_frontend(parent_port, workdir) as port:
            status, headers = _headers(port, "http://192.0.2.1/headers", "X-Forwarded-For: 203.0.113.66\r\n")
    assert status == 200
    assert {"x-cache", "x-cache-lookup", "cache-status"} & set(headers) == set()
    assert "via" in headers and not re.search(r"squid/\d", headers["via"]), headers["via"]


class _XffOrigin(BaseHTTPRequestHandler):
    """An origin that answers with the X-Forwarded-For it was sent (or 'none')."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = (self.headers.get("X-Forwarded-For") or "none").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.squid
def test_a_real_backend_refuses_the_proxies_own_hosts_and_tells_the_origin_nothing() -> None:
    """SSRF: loopback in every spelling, link-local (cloud metadata) and the farm's own addresses are
    refused before any allow, by GET and CONNECT, and the origin listening on 127.0.0.1 never hears of
    them; with the loopback denial lifted for a test origin, X-Forwarded-For is deleted (the default
    carpfarm_forwarded_for) and the answer carries no Squid version."""
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _XffOrigin)
    origin.daemon_threads = True
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    o = origin.server_address[1]
    refused = [
        ("GET", f"http://127.0.0.1:{o}/a"),
        ("GET", f"http://localhost:{o}/b"),
        ("GET", f"http://[::1]:{o}/c"),
        ("GET", f"http://2130706433:{o}/d"),
        ("GET", f"http://0x7f000001:{o}/e"),
        ("GET", f"http://127.0.0.2:{o}/f"),
        ("GET", f"http://0.0.0.0:{o}/g"),
        ("GET", f"http://[::ffff:127.0.0.1]:{o}/h"),
        ("GET", "http://[::ffff:169.254.169.254]/"),
        ("GET", "http://169.254.169.254/latest/meta-data/"),
        ("GET", "http://[fe80::1]/"),
        ("GET", "http://192.0.2.10:3129/"),  # the example farm's carp1
        ("GET", "http://192.0.2.22:4001/"),  # and cache2
        ("CONNECT", "127.0.0.1:443"),
        ("CONNECT", "169.254.169.254:443"),
    ]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            workdir.chmod(0o777)  # squid drops to the 'proxy' user for its logs
            with _running_backend(workdir) as port:
                answers = {target: _status(port, method, target) for method, target in refused}
            with _running_backend(workdir, loopback_origin=True) as port:
                status, headers = _headers(port, f"http://127.0.0.1:{o}/xff", "X-Forwarded-For: 198.51.100.7\r\n")
                with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                    conn.sendall(
                        f"GET http://127.0.0.1:{o}/xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
                    )
                    body = conn.makefile("rb").read().split(b"\r\n\r\n", 1)[1]
            log = (workdir / "access.log").read_text().splitlines()
    finally:
        origin.shutdown()
        origin.server_close()
    assert answers == {target: 403 for _, target in refused}
    direct = [line for line in log if " HIER_DIRECT/" in line and "/xff" not in line]
    assert direct == []
    assert status == 200 and body == b"none"
    assert "via" in headers and not re.search(r"squid/\d", headers["via"]), headers["via"]
