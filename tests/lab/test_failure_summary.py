"""lab/failure-summary.py: what make test prints last when a molecule scenario fails."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support.paths import ROOT, load_script

summary = load_script(ROOT / "lab" / "failure-summary.py")

# As molecule 25 prints a playbook's output: colours, a frame before every line, wrapped at 80 columns.
FRAMED = """\
  \x1b[2m│\x1b[0m TASK [Wait for the router] ****
  \x1b[2m│\x1b[0m FAILED - RETRYING: [localhost -> router]: Wait for the router (3 retries left).
  \x1b[2m│\x1b[0m \x1b[0;31mfatal: [localhost]: FAILED! => \x1b[0m
  \x1b[2m│\x1b[0m     msg: not yet
  \x1b[2m│\x1b[0m \x1b[0;36m...ignoring\x1b[0m
  \x1b[2m│\x1b[0m
  \x1b[2m│\x1b[0m TASK [Check only the powered-off box's clients failed, and the survivor then
  \x1b[2m│\x1b[0m   served everyone] ***
  \x1b[2m│\x1b[0m Tuesday 01 December 2026  04:28:22 +0000 (0:00:00.355)       0:03:08.848
  \x1b[2m│\x1b[0m \x1b[0;31mfatal: [localhost]: FAILED! => \x1b[0m
  \x1b[2m│\x1b[0m     assertion: __after_bad | length == 0
  \x1b[2m│\x1b[0m     msg: 'failed after the reassignment: [{"t":
  \x1b[2m│\x1b[0m   1796099020.5}]'
  \x1b[2m│\x1b[0m
  \x1b[2m│\x1b[0m PLAY RECAP ****
\x1b[31mERROR   \x1b[0m Molecule executed 1 scenario (1 failed)
"""


def test_the_failed_task_is_printed_last_with_its_message_and_an_ignored_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "molecule-wccp.log"
    log.write_text(FRAMED)
    monkeypatch.setattr(sys, "argv", ["failure-summary.py", str(log), "--scenario", "wccp"])
    assert summary.main() == 0
    assert capsys.readouterr().out.splitlines() == [
        "== molecule scenario wccp: 1 failed task(s); the last 1:",
        "-- Check only the powered-off box's clients failed, and the survivor then served everyone: "
        "fatal: [localhost]: FAILED! => | assertion: __after_bad | length == 0 | "
        "msg: 'failed after the reassignment: [{\"t\": | 1796099020.5}]'",
    ]


def test_a_log_without_failures_has_none() -> None:
    lines = ["TASK [Wait] ***", "ok: [localhost]", ""]
    assert summary.failures(lines) == []
