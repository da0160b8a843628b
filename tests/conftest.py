"""Shared fixtures: paths, and the example inventory copied where a test may edit it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/squidrig.py


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
