"""A real Squid on loopback, in front of small recording parents.

Used by the tests that hold ``carpfarm.carp`` to what Squid really does, and by the benchmarks; run
from the checkout (the Squid roots are under its ``.cache``). The
squid binary is Debian's package: the host's own, or another Debian release's
from a root that ``lab/build-squid-root.sh`` builds, run with ``chroot`` (a
chroot shares the host's network, so its Squid listens on the same loopback).
The rig starts it in the foreground on free loopback ports and stops it by
PID. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SQUID = shutil.which("squid") or "/usr/sbin/squid"
REPO = Path(__file__).resolve().parents[3]  # the checkout: src/carpfarm/lab/squidrig.py
# Where lab/build-squid-root.sh puts its roots (the same variable and default).
SQUID_ROOTS = Path(os.environ.get("CARPFARM_SQUID_ROOTS") or REPO / ".cache" / "squid-roots")
ROOT_STAMP = ".carpfarm-squid-root"  # the build script writes it last: squid -v's first line


@dataclass(frozen=True)
class SquidRelease:
    """A squid binary to run: the host's (``suite`` None) or the one in a Debian suite's root."""

    label: str
    version: str  # what ``squid -v`` must report, e.g. "6.13"
    suite: str | None = None

    @property
    def root(self) -> Path | None:
        return None if self.suite is None else SQUID_ROOTS / self.suite

    def command(self, *args: str) -> list[str]:
        if self.root is None:
            return [SQUID, *args]
        return ["chroot", str(self.root), "/usr/sbin/squid", *args]

    def problem(self) -> str | None:
        """Why this release cannot run here, with the fix; None when it can."""
        build = f"run 'bash lab/build-squid-root.sh {self.suite}' as root (about 1-2 min, then cached)"
        if self.root is None:
            if not os.access(SQUID, os.X_OK):
                return f"{SQUID} missing: run 'make setup' (installs Debian's squid)"
        elif not (self.root / ROOT_STAMP).is_file():
            return f"no {self.suite} squid root at {self.root}: {build}"
        elif os.geteuid() != 0:
            return f"squid in {self.root} runs with chroot, which needs root; run the tests as root"
        try:
            reported = subprocess.run(self.command("-v"), capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            return f"{' '.join(self.command('-v'))} failed: {e}"
        first = reported.splitlines()[0] if reported else ""
        if first.split("Version ")[-1].strip() != self.version:
            fix = build if self.suite else "install this Debian release's squid package (make setup)"
            return f"{self.label}: expected squid {self.version}, the binary says {first!r}; {fix}"
        return None

    @contextmanager
    def workdir(self) -> Iterator[tuple[Path, Path]]:
        """A scratch directory as (path here, path as squid sees it), writable by 'proxy'."""
        base = None if self.root is None else self.root / "tmp"
        with tempfile.TemporaryDirectory(prefix="carptest", dir=base) as tmp:
            here = Path(tmp)
            here.chmod(0o777)  # squid drops to the 'proxy' user for its logs
            yield here, here if self.root is None else Path("/") / here.relative_to(self.root)


# The Squid each supported Debian release ships. The host's own squid is one of them; the other
# runs from its root (Makefile: `make squid-roots` builds the release the host is not).
DEBIAN_SQUID = {"bookworm": "5.7", "trixie": "6.13"}


def host_suite(os_release: Path = Path("/etc/os-release")) -> str:
    """This machine's Debian codename (VERSION_CODENAME), as the Makefile reads it."""
    for line in os_release.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME":
            return value.strip().strip('"')
    return "unknown"


HOST_SUITE = host_suite()
HOST_SQUID = SquidRelease(f"{DEBIAN_SQUID.get(HOST_SUITE, '5.7')} (host)", DEBIAN_SQUID.get(HOST_SUITE, "5.7"))
OTHER_SQUIDS = tuple(
    SquidRelease(f"{version} ({suite} root)", version, suite)
    for suite, version in DEBIAN_SQUID.items()
    if suite != HOST_SUITE
)
SQUID_RELEASES = (HOST_SQUID, *OTHER_SQUIDS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # squid may open many connections at once


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    parent_name = "?"

    def do_GET(self) -> None:
        body = self.parent_name.encode()
        self.send_response(200)
        self.send_header("X-Parent", self.parent_name)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:
        """Open the tunnel, send the parent's name through it, and close it."""
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.write(self.parent_name.encode())
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class PeerSpec:
    name: str
    weight: int = 1
    carp_key: Sequence[str] | None = None
    denied: bool = False


@contextmanager
def recording_parents(names: Sequence[str]) -> Iterator[dict[str, int]]:
    """One HTTP server per name on 127.0.0.1; each answers with ``X-Parent: name``."""
    servers = []
    try:
        for name in names:
            handler = type("Recorder", (_Recorder,), {"parent_name": name})
            server = _Server(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append((name, server))
        yield {name: int(server.server_address[1]) for name, server in servers}
    finally:
        for _, server in servers:
            server.shutdown()
            server.server_close()


def squid_conf(workdir: Path, port: int, peers: Sequence[PeerSpec], ports: dict[str, int]) -> str:
    lines = [
        f"http_port 127.0.0.1:{port}",
        f"pid_filename {workdir}/squid.pid",
        f"cache_log {workdir}/cache.log",
        "access_log none",
        "cache deny all",
        "never_direct allow all",
        "nonhierarchical_direct off",
        "pinger_enable off",
        "shutdown_lifetime 1 seconds",
        "http_access allow localhost",
        "http_access deny all",
        f"coredump_dir {workdir}",
    ]
    for p in peers:
        options = f"carp no-query no-digest name={p.name} weight={p.weight}"
        if p.carp_key:
            options += " carp-key=" + ",".join(p.carp_key)
        lines.append(f"cache_peer 127.0.0.1 parent {ports[p.name]} 0 {options}")
        if p.denied:
            lines.append(f"cache_peer_access {p.name} deny all")
    return "\n".join(lines) + "\n"


@contextmanager
def running_squid(
    peers: Sequence[PeerSpec],
    answered_by: Callable[[str], str] | None = None,
    release: SquidRelease = HOST_SQUID,
) -> Iterator[SquidClient]:
    """Start Squid as a CARP frontend in front of recording parents, then stop it.

    Each peer gets a recording parent of its own, unless ``answered_by`` maps
    peer names onto fewer parents (so a thousand peers need not mean a
    thousand servers). ``release`` picks the squid binary.
    """
    answered_by = answered_by or (lambda name: name)
    recorder_of = {p.name: answered_by(p.name) for p in peers}
    with recording_parents(sorted(set(recorder_of.values()))) as recorder_ports, release.workdir() as dirs:
        ports = {name: recorder_ports[recorder] for name, recorder in recorder_of.items()}
        workdir, seen_as = dirs
        port = free_port()
        (workdir / "squid.conf").write_text(squid_conf(seen_as, port, peers, ports))
        conf = str(seen_as / "squid.conf")
        name = f"carptest{os.getpid()}{port}"
        parsed = subprocess.run(release.command("-k", "parse", "-f", conf), capture_output=True, text=True)
        if parsed.returncode:
            raise RuntimeError(f"{release.label}: squid -k parse failed: {parsed.stderr[-2000:]}")
        proc = subprocess.Popen(
            release.command("-N", "-n", name, "-f", conf), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _wait_listening(port, proc, workdir)
            yield SquidClient(port)
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a Squid run with -N, and SIGKILL it if it has not gone after 15 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], workdir: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (workdir / "cache.log").read_text(errors="replace") if (workdir / "cache.log").exists() else ""
            raise RuntimeError(f"squid exited with {proc.returncode}: {log[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"squid did not listen on 127.0.0.1:{port} within 30 s")


class SquidClient:
    """Sends proxy requests to the rig's Squid over one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def parent_for(self, url: str) -> str | None:
        self._conn.request("GET", url, headers={"Host": url.split("/")[2]})
        response = self._conn.getresponse()
        response.read()
        if response.status != 200:
            return None
        return response.getheader("X-Parent")

    def _exchange(self, request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.sendall(request)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        return data

    def parent_for_connect(self, authority: str) -> str | None:
        """The parent a ``CONNECT authority`` reached: it sends its name through the tunnel."""
        target = authority.encode("utf-8", "surrogateescape")
        data = self._exchange(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
        head, _, tunnel = data.partition(b"\r\n\r\n")
        return tunnel.decode() if head.startswith(b"HTTP/1.1 200") and tunnel else None

    def parent_for_raw(self, target: str) -> str | None:
        """Like ``parent_for``, but ``target`` goes on the request line byte for byte (UTF-8),
        as a client that does not normalise would send it; one connection per request."""
        request = b"GET " + target.encode("utf-8", "surrogateescape") + b" HTTP/1.1\r\nHost: carptest\r\n"
        data = self._exchange(request + b"Connection: close\r\n\r\n")
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        if not head[0].startswith("HTTP/1.1 200"):
            return None
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "x-parent":
                return value.strip()
        return None
