"""``carp_frontend_mode: haproxy``: the HAProxy configuration the frontend_balancer role renders
(``haproxy-http.cfg.j2``, through the role's own preflight), run by real HAProxy 2.6 (the host's)
and 3.0 (Debian 13's, in its root) in front of named servers standing for the backend instances.

Every request of a corpus of URL shapes goes through it, and the server that answers is the one
``carpfarm route`` names (``Topology.route``): for ``carp``, Squid's CARP model, proven against
real Squid 5.7 and 6.13 in ``test_carp_squid.py``; for ``consistent``, carpfarm's model of
HAProxy's hash (``carpfarm.carp.consistent``), the same on both releases. Requests the policy
refuses (outside Safe_ports, CONNECT outside SSL_ports, schemes other than http, https and ftp)
get 403 from HAProxy; targets HAProxy's parser refuses get 400. A drained peer gets no request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from carpfarm.carp.chash import HAPROXY_3_0, TargetRejected, check_target, normalized_target
from carpfarm.carp.url import UrlRejected
from carpfarm.lab.haproxyrig import HaproxyBinary, ask, running_haproxy
from carpfarm.lab.squidrig import free_port
from carpfarm.model import Topology, build_topology
from support.ansible import preflight, render
from support.paths import ROLES

ROLE = ROLES / "frontend_balancer"
TEMPLATE = ROLE / "templates" / "etc" / "haproxy" / "haproxy-http.cfg.j2"
SCRIPT = ROLE / "files" / "carpfarm-carp.lua"
CLIENTS = ["127.0.0.0/8"]
SAFE = {80, 21, 443, 70, 210, 280, 488, 591, 777, *range(1025, 65536)}
SSL = {443}
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}


def farm(
    selection: str, ports: dict[str, int] | None = None, box: dict[str, Any] | None = None, **backend: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One CARP box in haproxy mode (with ``box``'s variables) and two backend hosts of two instances
    (127.0.0.1, 127.0.0.2; ``backend``: per host, more variables for its instances)."""
    ports = ports or {}
    groups = {"carp_frontends": ["carp1"], "squid_backends": ["cache1", "cache2"]}
    hostvars: dict[str, Any] = {
        "carp1": {
            "ansible_host": "127.0.0.9",
            "carpfarm_client_networks": CLIENTS,
            "carp_frontend_mode": "haproxy",
            "carp_frontend_haproxy_selection": selection,
            "carp_frontend_listen_port": ports.get("listen", 3128),
            "ansible_processor_vcpus": 2,
            "frontend_balancer_haproxy_maxconn": 1000,
            **(box or {}),
        }
    }
    for n, cache in enumerate(groups["squid_backends"]):
        extra = backend.get(cache, {})
        instances = [
            {"name": f"backend{k + 1}", "port": ports.get(f"{cache}-backend{k + 1}", 4001 + k), **extra}
            for k in range(2)
        ]
        hostvars[cache] = {"ansible_host": f"127.0.0.{n + 1}", "squid_backend_instances": instances}
    return groups, hostvars


def haproxy_cfg(groups: dict[str, Any], hostvars: dict[str, Any], release: str, workdir: Path) -> str:
    """The role's haproxy.cfg for carp1, its files in ``workdir`` (as HAProxy sees it)."""
    play = {**_role_vars(), **preflight("frontend_balancer", groups, hostvars, "carp1")}
    play.update(
        __frontend_balancer_haproxy_release=release,
        __frontend_balancer_lua_dir=str(workdir),
        __frontend_balancer_haproxy_socket=str(workdir / "admin.sock"),
        frontend_balancer_haproxy_stats_port=free_port(),
        ansible_managed="test",
        carpfarm_cache_status_headers=False,
    )
    return render(TEMPLATE, **play)


def _role_vars() -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load((ROLE / "vars" / "main.yml").read_text()))


@contextmanager
def running_frontend(
    binary: HaproxyBinary, selection: str, box: dict[str, Any] | None = None, dead: str = "", **backend: Any
) -> Iterator[tuple[int, Topology, dict[str, Any]]]:
    """HAProxy with the role's configuration for carp1; ``dead``: that peer's server points at a port
    nothing listens on, and the run starts once HAProxy's health checks have marked it down."""
    groups, hostvars = farm(selection, box=box, **backend)
    names = [i.peer_name for i in build_topology(groups, hostvars).backend_instances]
    servers = [(name, "127.0.0.1" if name.startswith("cache1") else "127.0.0.2") for name in names]
    built: dict[str, Any] = {}

    def render_cfg(port: int, ports: dict[str, int], seen: Path) -> str:
        if dead:
            ports = {**ports, dead: free_port()}
        g, hv = farm(selection, {"listen": port, **ports}, box=box, **backend)
        built["topology"] = build_topology(g, hv)
        built["hostvars"] = hv
        text = haproxy_cfg(g, hv, binary.version, seen)
        built["cfg"] = text
        return text

    files = {"carpfarm-carp.lua": SCRIPT.read_text(), **_peers_file(selection, groups, hostvars)}
    with running_haproxy(binary, servers, render_cfg, files=files) as (port, _):
        if dead:
            time.sleep(4)  # checks every second, down after 2 failures
        yield port, built["topology"], built


def _peers_file(selection: str, groups: dict[str, Any], hostvars: dict[str, Any]) -> dict[str, str]:
    """The peers file the role writes (carp): server names and hashes do not depend on the ports."""
    play = preflight("frontend_balancer", groups, hostvars, "carp1")
    http = play["__frontend_balancer"]["http"]
    return {"carpfarm-carp-peers.lua": http["peers_lua"]} if selection == "carp" else {}


# --- what HAProxy should answer ------------------------------------------------------------------


def refused_by_policy(method: bytes, target: bytes) -> bool:
    """The template's Safe_ports / SSL_ports / scheme rules, written independently of it."""
    text = target.decode("latin-1")
    if method == b"CONNECT":
        port = text.rsplit(":", 1)[-1]
        return not (port.isdigit() and int(port) in SAFE and int(port) in SSL)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in DEFAULT_PORTS:
        return True
    authority = text.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
    hostport = authority.rsplit("]", 1)[-1] if authority.startswith("[") else authority
    digits = hostport.rsplit(":", 1)[-1] if ":" in hostport else ""
    port = int(digits) if digits.isdigit() else DEFAULT_PORTS[scheme]
    return port not in SAFE


def expected(
    method: bytes,
    target: bytes,
    topology: Topology,
    binary: HaproxyBinary,
    selection: str,
    first: str,
    down: Sequence[str] = (),
) -> str | None:
    """The server that should answer, or '400' / '403' for HAProxy's own refusals."""
    try:
        # consistent: 2.6 is given 3.0's refusals; carp: each release refuses as it does.
        check_target(target, binary.model if selection == "carp" else HAPROXY_3_0)
    except TargetRejected:
        return "400"
    if method == b"CONNECT" and b"://" in target:
        return "400"
    if refused_by_policy(method, target):
        return "403"
    url = target.decode("utf-8", "surrogateescape")
    if selection == "carp":
        # The Lua sees the target as HAProxy stored it: an empty port dropped (Squid refuses it).
        if method == b"GET":
            url = normalized_target(target, binary.model).decode("utf-8", "surrogateescape")
        try:
            peer = topology.carp_array.select(url, [*topology.drained_peers, *down], connect=method == b"CONNECT")
        except UrlRejected:  # Squid would refuse it; the Lua names no server: balance first
            return first
        return first if peer is None else peer.name
    chosen = topology.consistent_farm.select(url, [*topology.drained_peers, *down], connect=method == b"CONNECT")
    return chosen


def status_of(reply: bytes) -> str:
    parts = reply.split()
    return parts[1].decode() if len(parts) > 1 else reply.decode(errors="replace")


HOSTS = [
    "www.example.com",
    "Static.Example.NET",
    "cdn{i}.example.org",
    "WWW.EXAMPLE.COM.",
    "img.example.com:8080",
    "img.example.com:080",
    "www.example.com:80",
    "secure.example.com:443",
    "www.example.com:81",
    "192.0.2.{i}",
    "[2001:DB8::{i}]:8443",
    "[2001:db8::{i}]",
    "user:secret@auth.example.com",
    "api.example.com:",
    "h{i}.example.com?q",
    "h{i}.example.com,x",
    "xn--bcher-kva.example",
    "a{i}..example.com",  # Squid refuses these two: the Lua names no server, "first" takes the request
    ".example.com",
]
PATHS = ["/", "/obj/{i}", "/q?id={i}&v={k}", "/Mixed/Case/{i}.JS", "", "/a%2Fb/{i}?", "/long/{i}/" + "x" * 2000]
SCHEMES = ["http", "https", "HTTP", "ftp", "gopher"]
CONNECTS = ["host{i}.example.com:443", "Host{i}.Example.COM.:443", "host{i}.example.com:8443", "[2001:db8::{i}]:443"]


def corpus(count: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(count):
        host = HOSTS[i % len(HOSTS)].format(i=i % 200)
        path = PATHS[(i * 7 + i // len(HOSTS)) % len(PATHS)].format(i=i, k=i % 5)
        scheme = SCHEMES[(i // 3) % len(SCHEMES)]
        out.append((b"GET", f"{scheme}://{host}{path}".encode()))
    out += [(b"CONNECT", CONNECTS[i % len(CONNECTS)].format(i=i).encode()) for i in range(count // 10)]
    return out


def agreement(
    binary: HaproxyBinary,
    selection: str,
    requests: Sequence[tuple[bytes, bytes]],
    box: dict[str, Any] | None = None,
    dead: str = "",
    **backend: Any,
) -> tuple[int, list[str]]:
    with running_frontend(binary, selection, box, dead, **backend) as (port, topology, _):
        down = [dead] if dead else []
        first = next(i.peer_name for i in topology.backend_instances if i.active and i.peer_name not in down)
        wrong = []
        for method, target in requests:
            want = expected(method, target, topology, binary, selection, first, down)
            name, seen = ask(port, target, method=method)
            got = name if name is not None else status_of(seen)
            if got != want:
                wrong.append(f"{method.decode()} {target[:100]!r}: HAProxy {got}, predicted {want}")
        return len(requests), wrong


@pytest.mark.parametrize("selection", ["carp", "consistent"])
def test_every_request_lands_where_route_says(haproxy: HaproxyBinary, selection: str) -> None:
    count, wrong = agreement(haproxy, selection, corpus(1000))
    print(f"{haproxy.label} {selection}: {count - len(wrong)}/{count} agreed")
    assert not wrong, f"{len(wrong)}/{count} disagree:\n" + "\n".join(wrong[:20])


@pytest.mark.parametrize("selection", ["carp", "consistent"])
def test_unequal_weights_and_a_drained_peer(haproxy: HaproxyBinary, selection: str) -> None:
    backend = {"cache1": {"weight": 3}, "cache2": {"weight": 1}}
    count, wrong = agreement(haproxy, selection, corpus(150), **backend)
    assert not wrong, f"{len(wrong)}/{count} disagree:\n" + "\n".join(wrong[:20])
    drained = {"cache1": {"state": "drained"}}
    count, wrong = agreement(haproxy, selection, corpus(150), **drained)
    assert not wrong, f"{len(wrong)}/{count} disagree:\n" + "\n".join(wrong[:20])


def test_both_releases_place_consistent_alike() -> None:
    """The ids the template writes put each server's points at the same keys on 2.6 and 3.0."""
    from carpfarm.carp.chash import HAPROXY_2_6, HAPROXY_3_0, ChashRing, HaproxyServer

    groups, hostvars = farm("consistent")
    topology = build_topology(groups, hostvars)
    farm_ = topology.consistent_farm
    rings = [
        ChashRing.build([HaproxyServer(s.name, s.weight, s.ids.for_release(release)) for s in farm_.servers], release)
        for release in (HAPROXY_2_6, HAPROXY_3_0)
    ]
    assert rings[0].keys == rings[1].keys and [o.name for o in rings[0].owners] == [o.name for o in rings[1].owners]


@pytest.mark.parametrize("selection", ["carp", "consistent"])
def test_a_peer_down_by_its_health_checks(haproxy: HaproxyBinary, selection: str) -> None:
    count, wrong = agreement(haproxy, selection, corpus(200), dead="cache2-backend1")
    assert not wrong, f"{len(wrong)}/{count} disagree:\n" + "\n".join(wrong[:20])


def test_a_carp_key_through_the_lua(haproxy: HaproxyBinary) -> None:
    box = {"carp_frontend_carp_key": ["host", "path"]}
    count, wrong = agreement(haproxy, "carp", corpus(300), box=box)
    assert not wrong, f"{len(wrong)}/{count} disagree:\n" + "\n".join(wrong[:20])


def test_the_remap_guard_reads_an_haproxy_carp_box_back(tmp_path: Path) -> None:
    """validate.yml's own command, run on the role's haproxy.cfg in a scratch root: the peers it
    reads back are the farm's, in order, the drained one marked (plan.remap parses them)."""
    import subprocess

    import yaml

    from carpfarm.plan.remap import deployed_peers

    groups, hostvars = farm("carp", **{"cache2": {"state": "drained"}})
    topology = build_topology(groups, hostvars)
    text = haproxy_cfg(groups, hostvars, "3.0", tmp_path)
    plays = yaml.safe_load((ROLES.parent / "playbooks" / "validate.yml").read_text())
    tasks = [t for play in plays for t in play.get("tasks", [])]
    command = next(t for t in tasks if t["name"] == "Read the CARP peers this box runs now")["ansible.builtin.shell"][
        "cmd"
    ]
    root = tmp_path / "root"
    (root / "etc" / "haproxy").mkdir(parents=True)
    (root / "etc" / "haproxy" / "haproxy.cfg").write_text(text)
    script = command.replace("/etc/", f"{root}/etc/")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    peers = deployed_peers(out.stdout.splitlines())
    assert [(p.name, p.weight, p.drained) for p in peers] == [
        (i.peer_name, i.weight, not i.active) for i in topology.backend_instances
    ]
    consistent = haproxy_cfg(*farm("consistent"), "3.0", tmp_path)
    (root / "etc" / "haproxy" / "haproxy.cfg").write_text(consistent)
    assert subprocess.run(["sh", "-c", script], check=False).returncode == 3  # not read: see docs/carp.md
