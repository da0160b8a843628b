"""A real HAProxy on loopback, in front of small HTTP servers that answer with their own name.

Used by the tests that hold ``carpfarm.carp.chash`` (HAProxy's consistent hash) and
``carpfarm-carp.lua`` (Squid's CARP in HAProxy's Lua) to what HAProxy really does. The binary is
Debian's package: the host's own (2.6 on Debian 12) or the other release's from the root
``lab/build-squid-root.sh SUITE`` builds (``make squid-roots``), run with ``chroot ROOT
/usr/sbin/haproxy`` (a chroot shares the host's network, so it listens on the same loopback).
HAProxy runs in the foreground and is stopped by its PID. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from carpfarm.carp.chash import DEBIAN_HAPROXY, HaproxyRelease
from carpfarm.lab.squidrig import HOST_SUITE, SQUID_ROOTS, free_port

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


@dataclass(frozen=True)
class HaproxyBinary:
    """A haproxy to run: the host's (``suite`` None) or the one in a Debian suite's root."""

    label: str
    version: str  # "2.6": what `haproxy -v` must report
    model: HaproxyRelease
    suite: str | None = None

    @property
    def root(self) -> Path | None:
        return None if self.suite is None else SQUID_ROOTS / self.suite

    def command(self, *args: str) -> list[str]:
        if self.root is None:
            return [HAPROXY, *args]
        return ["chroot", str(self.root), "/usr/sbin/haproxy", *args]

    def missing(self) -> str | None:
        """Why this binary is absent (the only reason to skip), with the fix; None when present."""
        if self.root is None:
            return None if os.access(HAPROXY, os.X_OK) else f"{HAPROXY} missing: apt-get install haproxy (make deps)"
        if not os.access(self.root / "usr/sbin/haproxy", os.X_OK):
            return f"no haproxy in {self.root}: run 'bash lab/build-squid-root.sh {self.suite}' as root"
        if os.geteuid() != 0:
            return f"haproxy in {self.root} runs with chroot, which needs root"
        return None

    def reported_version(self) -> str:
        out = subprocess.run(self.command("-v"), capture_output=True, text=True, check=True).stdout
        return out.splitlines()[0] if out else ""

    def host_path(self, seen: Path) -> Path:
        """A path haproxy sees (in its root) as this host sees it."""
        return seen if self.root is None else self.root / seen.relative_to("/")

    @contextmanager
    def workdir(self) -> Iterator[tuple[Path, Path]]:
        """A scratch directory as (path here, path as haproxy sees it)."""
        base = None if self.root is None else self.root / "tmp"
        with tempfile.TemporaryDirectory(prefix="haproxytest", dir=base) as tmp:
            here = Path(tmp)
            yield here, here if self.root is None else Path("/") / here.relative_to(self.root)


DEBIAN_VERSIONS = {"bookworm": "2.6", "trixie": "3.0"}
BINARIES = tuple(
    HaproxyBinary(
        f"{version} ({'host' if suite == HOST_SUITE else suite + ' root'})",
        version,
        DEBIAN_HAPROXY[suite],
        None if suite == HOST_SUITE else suite,
    )
    for suite, version in DEBIAN_VERSIONS.items()
)


# --- named HTTP servers ------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # haproxy resets idle server connections when it is done with them


class _V6Server(_Server):
    address_family = socket.AF_INET6


class _Answer(BaseHTTPRequestHandler):
    """Answers every request with its server's name and the request target it received: as the
    body of a GET, or, to a CONNECT, as the first bytes through the tunnel, which it then closes."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body leave at once on a kept-alive connection
    server_name_ = "?"

    def _body(self) -> bytes:
        # The request line arrives decoded as latin-1: encoding back gives its bytes.
        return self.server_name_.encode() + b"\n" + self.path.encode("latin-1")

    def do_GET(self) -> None:
        body = self._body()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.write(self._body())
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def answering_servers(servers: Sequence[tuple[str, str | None]]) -> Iterator[dict[str, int]]:
    """One HTTP server per (name, address) (127.0.0.1 when None), on a free port; yields the ports."""
    started = []
    try:
        for name, address in servers:
            address = address or "127.0.0.1"
            cls = _V6Server if ":" in address else _Server
            handler = type("Answer", (_Answer,), {"server_name_": name})
            http = cls((address, 0), handler)
            threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
            started.append((name, http))
        yield {name: int(http.server_address[1]) for name, http in started}
    finally:
        for _, http in started:
            http.shutdown()
            http.server_close()


# --- haproxy ---------------------------------------------------------------------------------

# render(haproxy's port, the servers' ports, the work directory as haproxy sees it) -> haproxy.cfg
Render = Callable[[int, dict[str, int], Path], str]


@contextmanager
def running_haproxy(
    binary: HaproxyBinary,
    servers: Sequence[tuple[str, str | None]],
    render: Render,
    files: Mapping[str, str] | None = None,
) -> Iterator[tuple[int, dict[str, int]]]:
    """Start answering servers and haproxy in front of them (its configuration from ``render``,
    beside ``files``, written into its work directory), and stop it by its pid afterwards.
    Yields haproxy's port and the servers' ports."""
    with ExitStack() as stack:
        ports = stack.enter_context(answering_servers(servers))
        here, seen_as = stack.enter_context(binary.workdir())
        for name, text in (files or {}).items():
            (here / name).write_text(text)
        port = free_port()
        (here / "haproxy.cfg").write_text(render(port, ports, seen_as))
        conf = str(seen_as / "haproxy.cfg")
        checked = subprocess.run(binary.command("-c", "-q", "-f", conf), capture_output=True, text=True)
        assert checked.returncode == 0, f"{binary.label}: haproxy -c failed: {checked.stderr[-2000:]}"
        proc = subprocess.Popen(binary.command("-db", "-f", conf), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_listening(port, proc)
            yield port, ports
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"haproxy exited with {proc.returncode}: {err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"haproxy did not listen on 127.0.0.1:{port} within 10 s")


# --- requests --------------------------------------------------------------------------------


def _host_header(target: bytes) -> bytes:
    """The authority as HAProxy compares it with Host (userinfo dropped); origin-form: any name."""
    if target.startswith(b"/"):
        return b"origin.example"
    if b"://" not in target:  # CONNECT's authority-form
        return target
    rest = target.split(b"://", 1)[1]
    return rest.split(b"/", 1)[0].rsplit(b"@", 1)[-1]


def ask(port: int, target: bytes, host: bool = True, method: bytes = b"GET") -> tuple[str | None, bytes]:
    """Send one proxy request with ``target`` on the request line, byte for byte, and a Host
    header that matches it (unless ``host`` is False). Returns the answering server's name and the
    target it received, or None and the status line when haproxy answered itself."""
    header = b"Host: " + _host_header(target) + b"\r\n" if host else b""
    request = method + b" " + target + b" HTTP/1.1\r\n" + header + b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.1 200"):
        return None, status
    name, _, seen = body.partition(b"\n")
    return name.decode(), seen
