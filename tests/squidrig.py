"""A real Squid on loopback, in front of small recording parents.

Used by the tests that hold ``carpfarm.carp`` to what Squid really does. The
squid binary is Debian's package; the rig starts it in the foreground on free
loopback ports and stops it by PID. Nothing leaves 127.0.0.1.
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
def running_squid(peers: Sequence[PeerSpec], answered_by: Callable[[str], str] | None = None) -> Iterator[SquidClient]:
    """Start Squid as a CARP frontend in front of recording parents, then stop it.

    Each peer gets a recording parent of its own, unless ``answered_by`` maps
    peer names onto fewer parents (so a thousand peers need not mean a
    thousand servers).
    """
    answered_by = answered_by or (lambda name: name)
    recorder_of = {p.name: answered_by(p.name) for p in peers}
    with recording_parents(sorted(set(recorder_of.values()))) as recorder_ports, tempfile.TemporaryDirectory() as tmp:
        ports = {name: recorder_ports[recorder] for name, recorder in recorder_of.items()}
        workdir = Path(tmp)
        workdir.chmod(0o777)  # squid drops to the 'proxy' user for its logs
        port = free_port()
        conf = workdir / "squid.conf"
        conf.write_text(squid_conf(workdir, port, peers, ports))
        name = f"carptest{os.getpid()}{port}"
        subprocess.run([SQUID, "-k", "parse", "-f", str(conf)], check=True, capture_output=True)
        proc = subprocess.Popen(
            [SQUID, "-N", "-n", name, "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
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

    def parent_for_raw(self, target: str) -> str | None:
        """Like ``parent_for``, but ``target`` goes on the request line byte for byte (UTF-8),
        as a client that does not normalise would send it; one connection per request."""
        request = b"GET " + target.encode("utf-8", "surrogateescape") + b" HTTP/1.1\r\nHost: carptest\r\n"
        request += b"Connection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.sendall(request)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        if not head[0].startswith("HTTP/1.1 200"):
            return None
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "x-parent":
                return value.strip()
        return None
