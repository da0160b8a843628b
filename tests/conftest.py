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
