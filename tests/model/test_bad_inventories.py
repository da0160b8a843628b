"""The bad-inventory catalogue: every directory under tests/bad_inventories/ is an inventory
that `carpfarm validate` must refuse with the problem its expect.yml names (host, variable,
words of the message), a fix, and exit code 2.

A problem one setting causes on several hosts is told once, naming them all (``hosts``); expect.yml
names one of them. Each catalogue directory holds expect.yml beside the inventory, which Ansible reads
as an inventory file too and skips with a warning: that warning is a problem of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from carpfarm.cli import EXIT_INVALID, main
from support.paths import ROOT

CATALOGUE = ROOT / "tests" / "bad_inventories"
CASES = sorted(p.name for p in CATALOGUE.iterdir() if (p / "expect.yml").exists())


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES)
def test_validate_refuses_with_host_variable_message_and_fix(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    expect = yaml.safe_load((CATALOGUE / case / "expect.yml").read_text())
    code = main(["validate", str(CATALOGUE / case), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == EXIT_INVALID and report["valid"] is False
    found = [
        p
        for p in report["problems"]
        if (p["host"] == expect["host"] or Path(p["host"]).name == expect["host"] or expect["host"] in p["hosts"])
        and p["variable"] == expect["variable"]
    ]
    assert found, f"{case}: no problem for {expect['host']}/{expect['variable']} in {report['problems']}"
    assert any(expect["message"] in p["message"] for p in found), found
    assert all(p["fix"] for p in report["problems"])
