"""`carpfarm validate` and `impact` on real inventories: each problem names the file and line where its
variable is written, one setting wrong on many hosts is one problem, and impact says which inventory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from carpfarm.cli import EXIT_INVALID, main
from support.paths import EXAMPLE

CLIENTS = ["198.51.100.0/24"]


def _inventory(root: Path, backends: int = 2, **files: str) -> Path:
    """One CARP box and ``backends`` backend hosts in hosts.yml, and ``files`` (path: text) beside it."""
    hosts = {f"cache{n:02d}": {"ansible_host": f"10.0.{n // 200}.{n % 200 + 1}"} for n in range(1, backends + 1)}
    inventory = {
        "all": {
            "vars": {"carpfarm_client_networks": CLIENTS},
            "children": {
                "carp_frontends": {"hosts": {"carp1": {"ansible_host": "192.0.2.10", "carp_frontend_instances": 2}}},
                "squid_backends": {"hosts": hosts},
            },
        }
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _validate(capsys: pytest.CaptureFixture[str], inventory: Path) -> tuple[list[dict[str, Any]], str]:
    """The problems of ``carpfarm validate --json``, and the text report of ``carpfarm validate``."""
    assert main(["validate", str(inventory), "--json"]) == EXIT_INVALID
    report = json.loads(capsys.readouterr().out)
    assert main(["validate", str(inventory)]) == EXIT_INVALID
    return report["problems"], capsys.readouterr().err


def test_one_typo_in_group_vars_on_40_hosts_is_one_problem_at_its_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    group_vars = "---\n# the backends\nsquid_backend_instances: 2\n\nsquid_backend_instancs: 3\n"
    inventory = _inventory(tmp_path / "inv", backends=40, **{"group_vars/squid_backends.yml": group_vars})
    problems, text = _validate(capsys, inventory)
    (problem,) = problems
    assert problem["variable"] == "squid_backend_instancs" and problem["value"] == 3
    assert problem["file"].endswith("inv/group_vars/squid_backends.yml") and problem["line"] == 5
    assert problem["group"] == "squid_backends"
    assert problem["hosts"] == [f"cache{n:02d}" for n in range(1, 41)]
    assert "did you mean 'squid_backend_instances'" in problem["fix"]
    lines = [line for line in text.splitlines() if line.startswith("  - ")]
    assert len(lines) == 1 and text.startswith("error: the inventory has 1 problem")
    assert "group_vars/squid_backends.yml:5: squid_backend_instancs = 3: is not a carpfarm variable" in lines[0]
    assert "[group squid_backends, 40 hosts: cache01, cache02, cache03, cache04, cache05 and 35 more]" in lines[0]


def test_the_same_typo_on_each_host_in_hosts_yml_is_one_problem_per_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    inventory = _inventory(tmp_path / "inv", backends=3)
    data = yaml.safe_load((inventory / "hosts.yml").read_text())
    for host in data["all"]["children"]["squid_backends"]["hosts"].values():
        host["squid_backend_wieght"] = 2
    (inventory / "hosts.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    problems, _ = _validate(capsys, inventory)
    assert [(p["host"], p["hosts"]) for p in problems] == [(f"cache0{n}", [f"cache0{n}"]) for n in (1, 2, 3)]
    assert len({p["line"] for p in problems}) == 3 and all(p["file"].endswith("hosts.yml") for p in problems)


def test_a_value_overridden_in_host_vars_is_told_where_the_host_gets_it(
    capsys: pytest.CaptureFixture[str], example_inventory: Path
) -> None:
    """group_vars/squid_backends.yml sets 2 instances; host_vars/cache1.yml sets 0: the 0 is the problem."""
    (example_inventory / "host_vars" / "cache1.yml").write_text("---\n# one too few\nsquid_backend_instances: 0\n")
    with (example_inventory / "group_vars" / "carp_frontends.yml").open("a") as group_vars:
        group_vars.write("carp_frontend_mode: smp\nfrontend_balancer_watch: false\n")
    (example_inventory / "host_vars" / "carp1.yml").write_text("frontend_balancer_watch: true\n")
    problems, text = _validate(capsys, example_inventory)
    instances = next(p for p in problems if p["variable"] == "squid_backend_instances")
    assert instances["file"].endswith("host_vars/cache1.yml") and instances["line"] == 3
    assert instances["hosts"] == ["cache1"] and instances["group"] is None
    watch = next(p for p in problems if p["variable"] == "frontend_balancer_watch")  # true carries no tag
    assert watch["file"].endswith("host_vars/carp1.yml") and watch["line"] == 1
    assert "host_vars/cache1.yml:3: squid_backend_instances = 0: " in text and "[host cache1]" in text


def test_a_list_shaped_group_vars_file_is_told_in_words(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = "---\n- squid_backend_weight: 2\n- squid_backend_instances: 2\n"
    inventory = _inventory(tmp_path / "inv", **{"group_vars/squid_backends.yml": text})
    problems, report = _validate(capsys, inventory)
    (problem,) = problems
    assert problem["variable"] == "group_vars/squid_backends.yml"
    assert problem["message"] == "holds a list; a group_vars file must be a mapping of variable: value"
    assert problem["file"].endswith("inv/group_vars/squid_backends.yml") and problem["line"] == 1
    assert "without a leading '-'" in problem["fix"]
    for leak in ("dict", "Tagged", "<class", "combine"):
        assert leak not in report
    assert "group_vars/squid_backends.yml:1: holds a list; a group_vars file must be a mapping" in report


@pytest.mark.parametrize(
    ("text", "shape"),
    [("just some words\n", "a string"), ("42\n", "a number"), ("- a\n", "a list")],
)
def test_a_host_vars_file_of_another_shape_is_told_in_words(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, shape: str
) -> None:
    inventory = _inventory(tmp_path / "inv", **{"host_vars/cache01/main.yml": text})
    (problem,) = _validate(capsys, inventory)[0]
    assert problem["variable"] == "host_vars/cache01/main.yml"
    assert problem["message"] == f"holds {shape}; a host_vars file must be a mapping of variable: value"


def test_an_instance_weight_of_zero_says_to_drain_or_remove_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    instances = "squid_backend_instances:\n  - name: big\n  - name: small\n    weight: 0\n"
    inventory = _inventory(tmp_path / "inv", **{"host_vars/cache02.yml": instances})
    (problem,) = _validate(capsys, inventory)[0]
    assert problem["variable"] == "squid_backend_instances[1].weight" and problem["value"] == 0
    assert problem["file"].endswith("host_vars/cache02.yml") and problem["line"] == 4
    assert "state: drained" in problem["fix"] and "remove it from the list" in problem["fix"]
    assert "whole number of instances" not in problem["fix"]


def test_a_relative_cache_dir_is_told_without_a_regular_expression(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    instances = "squid_backend_instances:\n  - name: big\n    cache_dir: srv/big\n"
    inventory = _inventory(tmp_path / "inv", **{"group_vars/squid_backends.yml": instances})
    (problem,) = _validate(capsys, inventory)[0]
    assert problem["variable"] == "squid_backend_instances[0].cache_dir" and problem["line"] == 3
    assert problem["hosts"] == ["cache01", "cache02"]
    assert "absolute directory" in problem["message"] and "relative path" in problem["message"]
    assert "/srv/cache1 or /mnt/disk1/squid" in problem["fix"]
    assert not any(c in problem["message"] + problem["fix"] for c in "^$?\\[")


def test_impact_says_which_inventory_is_invalid(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = shutil.copytree(EXAMPLE, tmp_path / "bad")
    (bad / "host_vars" / "cache1.yml").write_text("squid_backend_weight: 0\n")
    assert main(["impact", str(EXAMPLE), str(bad), "--sample", "100"]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert err.startswith(f"error: the NEW inventory {bad} has 1 problem")
    assert f"  - NEW inventory {bad}: " in err and "OLD inventory" not in err

    assert main(["impact", str(bad), str(EXAMPLE), "--sample", "100", "--json"]) == EXIT_INVALID
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["inventory"] == f"OLD inventory {bad}" and problem["variable"] == "squid_backend_weight"


def test_impact_lists_the_problems_of_both_inventories(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old = shutil.copytree(EXAMPLE, tmp_path / "old")
    new = shutil.copytree(EXAMPLE, tmp_path / "new")
    (old / "host_vars" / "cache1.yml").write_text("squid_backend_weight: 0\n")
    (new / "host_vars" / "cache1.yml").write_text("squid_backend_wieght: 2\n")
    assert main(["impact", str(old), str(new), "--sample", "100"]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert err.startswith(f"error: the OLD inventory {old} and the NEW inventory {new} have 2 problems")
    assert f"  - OLD inventory {old}: " in err and f"  - NEW inventory {new}: " in err
