"""carpfarm prints no warning of its own making: cryptography's DSA deprecation, which ansible-core's
ssh-agent support sets off on import, is silenced there and nowhere else.

Run in a new process: pytest undoes the warning filters a module sets while it is collected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import EXAMPLE, ROOT


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "carpfarm.cli.app"],
        [str(Path(sys.executable).with_name("carpfarm"))],  # the console script
    ],
    ids=["python -m carpfarm.cli.app", "carpfarm"],
)
def test_validate_prints_no_warning(command: list[str]) -> None:
    run = _run(*command, "validate", str(EXAMPLE))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("valid: ")
    assert "Warning" not in run.stderr and run.stderr == ""


def test_the_same_warning_from_elsewhere_still_shows() -> None:
    code = (
        "import warnings, carpfarm.cli\n"
        "from cryptography.utils import CryptographyDeprecationWarning\n"
        "warnings.warn('not from ansible', CryptographyDeprecationWarning)\n"
    )
    assert "CryptographyDeprecationWarning: not from ansible" in _run(sys.executable, "-c", code).stderr
