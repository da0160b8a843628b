"""site.yml's tags: one per layer, and the validate plays run whatever tags are asked for.

``--list-tags`` and ``--list-tasks`` read the playbook and the inventory only; no host is contacted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import EXAMPLE, ROOT

LAYER_TAGS = ("validate", "backends", "frontends", "balancer", "vip", "wccp")
VALIDATE_TASKS = (
    "Check the topology with the carpfarm model",
    "Read the distribution and release (the minimal facts only)",
    "Stop when the new cache_peer list would move URLs between backends that stay",
)


def _list(*options: str) -> str:
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    run = subprocess.run(
        [str(ansible_playbook), "-i", str(EXAMPLE), "site.yml", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def _play_tags(listing: str) -> dict[str, set[str]]:
    """Play name -> its play-level tags, as --list-tags and --list-tasks print them."""
    plays = re.findall(r"^\s*play #\d+ \([^)]*\): (.+?)\tTAGS: \[([^]]*)\]$", listing, re.MULTILINE)
    return {name: {t.strip() for t in tags.split(",") if t.strip()} for name, tags in plays}


def test_every_layer_has_its_tag_and_the_validate_plays_always_run() -> None:
    plays = _play_tags(_list("--list-tags"))
    assert set(LAYER_TAGS) <= set().union(*plays.values())
    validating = {name: tags for name, tags in plays.items() if "validate" in tags}
    assert len(validating) == 3 and all("always" in tags for tags in validating.values()), validating
    assert plays["Build the frontend balancer"] == {"balancer"}


@pytest.mark.parametrize("tag", ["balancer", "frontends"])
def test_a_tagged_run_still_validates_first(tag: str) -> None:
    listing = _list("--list-tasks", "--tags", tag)
    for task in VALIDATE_TASKS:
        assert f"{task}\tTAGS:" in listing, f"--tags {tag} would skip the validate play's {task!r}"
    first_layer_task = listing.index("Build the caching backends")
    assert all(listing.index(task) < first_layer_task for task in VALIDATE_TASKS)
    # The tag still selects: the frontends' own tasks are listed for --tags frontends alone.
    assert ("carp_frontend : Build the carpfarm model once" in listing) == (tag == "frontends")
