"""Shared fixtures (the example inventory copied where a test may edit it), and the real tools.

A test marked ``squid``, ``nft`` or ``iptables`` runs that real binary; without it the test
fails at once, naming the binary and the fix, rather than being skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# marker -> (binary, the package `make deps` installs it from)
REAL_TOOLS = {
    "squid": ("/usr/sbin/squid", "squid"),
    "nft": ("nft", "nftables"),
    "iptables": ("iptables-restore", "iptables"),
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers():
        if marker.name in REAL_TOOLS:
            binary, package = REAL_TOOLS[marker.name]
            found = os.access(binary, os.X_OK) if binary.startswith("/") else shutil.which(binary)
            if not found:
                pytest.fail(f"this test runs the real {binary}, which is missing: install {package} (make deps)")


@pytest.fixture
def example_inventory(tmp_path: Path) -> Path:
    """A private copy of inventory/example/ that the test may change."""
    target = tmp_path / "example"
    shutil.copytree(ROOT / "inventory" / "example", target)
    return target


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say in capitals when real-Squid releases were skipped on request (CARPFARM_SKIP_SQUID_ROOTS)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "NOT TESTED on squid" in str(r.longrepr)]
    if skipped:
        reasons = sorted({str(r.longrepr[2]) if isinstance(r.longrepr, tuple) else str(r.longrepr) for r in skipped})
        terminalreporter.write_sep("!", f"{len(skipped)} REAL-SQUID TESTS NOT RUN: CARPFARM_SKIP_SQUID_ROOTS", red=True)
        for reason in reasons:
            terminalreporter.write_line(reason, red=True, bold=True)
