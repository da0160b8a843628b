"""What the HAProxy tests of this folder share: each Debian release's haproxy as a fixture."""

from __future__ import annotations

import pytest

from carpfarm.lab.haproxyrig import BINARIES, HaproxyBinary


@pytest.fixture(params=BINARIES, ids=[b.label for b in BINARIES])
def haproxy(request: pytest.FixtureRequest) -> HaproxyBinary:
    """Each HAProxy release held to the model; one whose binary is absent is skipped, loudly."""
    binary: HaproxyBinary = request.param
    missing = binary.missing()
    if missing:
        pytest.skip(f"HAPROXY {binary.label} NOT TESTED: {missing}")
    return binary
