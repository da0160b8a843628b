"""Squid's own HERE_I_AM, caught on the wire: the real squid binary sends WCCPv2 to a fake
router on loopback (127.0.0.2:2048), and carpfarm's stanza decides what it says."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from carpfarm.lab.squidrig import SQUID, free_port
from carpfarm.model import build_topology
from carpfarm.wccp.settings import squid_stanza
from carpfarm.wccp.wire import VERSION_2, decode, md5_matches

pytestmark = pytest.mark.squid
ROUTER = "127.0.0.2"


def _stanza(**wccp: object) -> list[str]:
    carp1 = {
        "ansible_host": "127.0.0.1",
        "carpfarm_client_networks": ["198.51.100.0/24"],
        "carp_frontend_instances": 1,
        "carpfarm_wccp": True,
        "carpfarm_wccp_routers": [ROUTER],
        "carpfarm_wccp_forwarding_method": "l2",
        **wccp,
    }
    topology = build_topology(
        {"carp_frontends": ["carp1"], "squid_backends": ["cache1"]},
        {"carp1": carp1, "cache1": {"ansible_host": "192.0.2.21"}},
    )
    settings = topology.frontends[0].wccp
    assert settings is not None
    return squid_stanza(settings)


@contextmanager
def _router() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ROUTER, 2048))
    sock.settimeout(1.0)
    try:
        yield sock
    finally:
        sock.close()


@contextmanager
def _squid(stanza: list[str]) -> Iterator[Path]:
    """A real Squid with ``stanza`` on loopback; yields its working directory (cache.log is there)."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o777)
        port = free_port()
        conf = workdir / "squid.conf"
        lines = [
            f"http_port 127.0.0.1:{port}",
            f"http_port 127.0.0.1:{free_port()} intercept",
            f"pid_filename {workdir}/squid.pid",
            f"cache_log {workdir}/cache.log",
            "access_log none",
            "cache deny all",
            "pinger_enable off",
            "shutdown_lifetime 1 seconds",
            "http_access deny all",
            "wccp2_address 127.0.0.1",  # Squid binds its own UDP 2048 here; the router is 127.0.0.2
            *stanza,
        ]
        conf.write_text("\n".join(lines) + "\n")
        subprocess.run([SQUID, "-k", "parse", "-f", str(conf)], check=True, capture_output=True)
        proc = subprocess.Popen(
            [SQUID, "-N", "-n", f"wccptest{os.getpid()}{port}", "-f", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield workdir
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _catch(router: socket.socket, count: int, seconds: float = 25.0) -> list[bytes]:
    packets: list[bytes] = []
    deadline = time.monotonic() + seconds
    while len(packets) < count and time.monotonic() < deadline:
        try:
            data, (source, _) = router.recvfrom(65535)
        except TimeoutError:
            continue
        assert source == "127.0.0.1"
        packets.append(data)
    return packets


def test_squid_says_here_i_am_for_each_service_with_its_identity_and_md5() -> None:
    stanza = _stanza(
        carpfarm_wccp_services=[{"standard": 0}, {"id": 90, "ports": [80, 8080], "priority": 200}],
        carpfarm_wccp_password="s3cret",
        carpfarm_wccp_weight=500,
    )
    with _router() as router, _squid(stanza):
        packets = _catch(router, 2)
    assert len(packets) == 2, "Squid sent no HERE_I_AM to the router within 25 s"
    messages = [decode(p) for p in packets]
    for message, packet in zip(messages, packets, strict=True):
        assert message.type == "HERE_I_AM" and message.version == VERSION_2
        assert message.components[:3] == ["security_info", "service_info", "wc_id_info"]
        assert message.cache_address == "127.0.0.1"
        assert message.weight == 500
        assert message.security == "md5" and md5_matches(packet, "s3cret") and not md5_matches(packet, "wrong")
    services = {(m.service.kind, m.service.id): m.service for m in messages if m.service}
    assert set(services) == {("standard", 0), ("dynamic", 90)}
    dynamic = services[("dynamic", 90)]
    assert dynamic.ports == (80, 8080) and dynamic.priority == 200 and dynamic.protocol == 6


def test_without_a_password_there_is_no_md5() -> None:
    with _router() as router, _squid(_stanza()):
        packets = _catch(router, 1)
    assert packets, "Squid sent no HERE_I_AM to the router within 25 s"
    message = decode(packets[0])
    assert message.security == "none" and message.service is not None and message.service.kind == "standard"
    assert message.capabilities.get("forwarding_method") == 2  # WCCP2_FORWARDING_METHOD_L2


def test_a_stock_squid_drops_a_standard_i_see_you() -> None:
    """The router stand-in's I_SEE_YOU, sent back from the router's address and port, reaches the
    stock Squid, which misreads it (defect 1 of carpfarm.wccp.settings.HANDSHAKE_DEFECTS) and never joins."""
    from carpfarm.wccp.router import Router

    router = Router(ROUTER)
    with _router() as sock, _squid(_stanza()) as workdir:
        hello, (source, port) = _catch_with_source(sock)
        answer, _ = router.here_i_am(hello, source, time.monotonic())
        assert answer is not None
        sock.sendto(answer, (source, port))
        log = workdir / "cache.log"
        deadline = time.monotonic() + 10
        while "Ignoring WCCPv2 message" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = log.read_text()
    assert "Ignoring WCCPv2 message: check failed: duplicate security definition" in text, text[-2000:]


def _catch_with_source(sock: socket.socket, seconds: float = 25.0) -> tuple[bytes, tuple[str, int]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return sock.recvfrom(65535)
        except TimeoutError:
            continue
    raise AssertionError("Squid sent no HERE_I_AM to the router within 25 s")
