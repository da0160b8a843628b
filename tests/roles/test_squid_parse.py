"""carpfarm-squid-parse: squid -k parse that keeps Squid's verdict and hides the configuration's secrets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.paths import ROOT

PARSE = ROOT / "roles/squid_common/files/carpfarm-squid-parse"
SECRET = "s3cretword"


def _run(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "squid.conf"
    conf.write_text(text)
    return subprocess.run([str(PARSE), str(conf)], capture_output=True, text=True, check=False)


@pytest.mark.squid
def test_it_accepts_a_good_configuration_without_echoing_its_secret(tmp_path: Path) -> None:
    """Squid itself prints 'Processing: acl ... snmp_community s3cretword' while it parses."""
    text = f"http_port 127.0.0.1:39998\nacl carpfarm_snmp_community snmp_community {SECRET}\nhttp_access deny all\n"
    done = _run(tmp_path, text)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert (
        SECRET
        in subprocess.run(
            ["/usr/sbin/squid", "-k", "parse", "-f", str(tmp_path / "squid.conf")], capture_output=True, text=True
        ).stderr
    )


@pytest.mark.squid
def test_it_refuses_a_bad_configuration_and_says_why(tmp_path: Path) -> None:
    done = _run(tmp_path, "http_port 127.0.0.1:39998\nnosuchdirective x\n")
    assert done.returncode != 0
    assert "nosuchdirective" in done.stderr


def test_it_is_valid_sh() -> None:
    subprocess.run(["sh", "-n", str(PARSE)], check=True)
