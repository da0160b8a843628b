"""Judging carpfarm-probe.py's rows against carpfarm's predictions (src/carpfarm/lab/judge.py).

The verify plays fetch each URL twice through each CARP box; the first pass through the first
box must be a MISS from the predicted backend, every other request a HIT from it."""

from __future__ import annotations

import json
import re

import pytest

from carpfarm.lab import judge
from support.probe import failed_line, probe_line, two_passes

URLS = [f"http://origin.test/route-1-{i}" for i in range(3)]
PREDICTED = ["cache1-backend1", "cache2-backend1", "cache1-backend2"]


def rows(lines: list[str]) -> list[judge.ProbeRow]:
    return judge.parse_rows(lines)


def test_a_row_reads_every_field_and_a_failure_has_none() -> None:
    row = judge.ProbeRow.parse(probe_line(URLS[0], "HIT from cache1-backend1", "MISS from carp1-frontend1"))
    assert row == judge.ProbeRow(
        URLS[0], 200, ("HIT from cache1-backend1", "MISS from carp1-frontend1"), "1.1 carp1 (squid/5.7)"
    )
    assert row.served == "HIT from cache1-backend1"
    failed = judge.ProbeRow.parse(failed_line(URLS[1]))
    assert (failed.status, failed.x_cache, failed.via, failed.served) == (-1, (), "", "")
    assert failed.error == "TimeoutError: timed out"
    assert judge.ProbeRow.parse(json.loads(failed_line(URLS[1]))) == failed


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "JSONDecodeError"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"status": 200}', "KeyError: 'url'"),
        ('{"url": "http://a/", "status": "two hundred"}', "ValueError"),
    ],
)
def test_a_line_that_is_no_probe_row_is_named_with_the_fix(line: str, problem: str) -> None:
    with pytest.raises(ValueError, match=r"not a carpfarm-probe\.py row") as caught:
        judge.ProbeRow.parse(line)
    assert problem in str(caught.value) and repr(line) in str(caught.value)
    assert "stdout_lines of playbooks/files/carpfarm-probe.py" in str(caught.value)


@pytest.mark.parametrize(
    ("index", "first_pass_misses", "want"),
    [
        (0, True, "MISS from cache1-backend1"),
        (2, True, "MISS from cache1-backend2"),
        (3, True, "HIT from cache1-backend1"),
        (5, True, "HIT from cache1-backend2"),
        (0, False, "HIT from cache1-backend1"),
        (7, True, "HIT from cache2-backend1"),  # a third pass
    ],
)
def test_the_wanted_verdict_follows_the_pass_and_the_url(index: int, first_pass_misses: bool, want: str) -> None:
    assert judge.wanted_verdict(index, PREDICTED, first_pass_misses) == want


def test_no_predictions_is_an_error_with_the_fix() -> None:
    with pytest.raises(ValueError, match="give one peer name per URL"):
        judge.wanted_verdict(0, [], True)
    assert judge.route_mismatches([], []) == []


def test_a_good_run_has_no_mismatch() -> None:
    assert judge.route_mismatches(rows(two_passes(URLS, PREDICTED)), PREDICTED) == []
    assert judge.farm_mismatches({"carp1": rows(two_passes(URLS, PREDICTED))}, PREDICTED) == []


def test_only_the_verdict_nearest_the_origin_counts() -> None:
    # The frontend's own verdict (HIT or MISS) comes after the backend's and does not matter.
    line = probe_line(URLS[0], "MISS from cache1-backend1", "HIT from carp1-frontend1")
    assert judge.route_mismatches(rows([line]), PREDICTED) == []
    # A box that only names itself did not get the URL from the predicted backend.
    line = probe_line(URLS[0], "MISS from carp1-frontend1")
    assert len(judge.route_mismatches(rows([line]), PREDICTED)) == 1


def test_the_farm_check_names_each_wrong_request_as_verify_yml_did() -> None:
    first = two_passes(URLS, PREDICTED)
    first[1] = failed_line(URLS[1])
    first[2] = probe_line(URLS[2], "MISS from cache1-backend2", status=503)
    first[4] = probe_line(URLS[1], "HIT from cache2-backend2", "HIT from carp1-frontend1")  # another backend
    # The second box sees the URLs after the first one: all HITs, so a MISS is wrong there.
    second = [probe_line(u, f"HIT from {b}") for u, b in zip(URLS * 2, PREDICTED * 2, strict=True)]
    second[0] = probe_line(URLS[0], "MISS from cache1-backend1")
    second[5] = probe_line(URLS[2], status=200)  # no verdict at all
    assert judge.farm_mismatches({"carp1": rows(first), "carp2": rows(second)}, PREDICTED) == [
        f"carp1 {URLS[1]}: status -1, verdicts , want MISS from cache2-backend1",
        f"carp1 {URLS[2]}: status 503, verdicts MISS from cache1-backend2, want MISS from cache1-backend2",
        f"carp1 {URLS[1]}: status 200, verdicts HIT from cache2-backend2; HIT from carp1-frontend1,"
        " want HIT from cache2-backend1",
        f"carp2 {URLS[0]}: status 200, verdicts MISS from cache1-backend1, want HIT from cache1-backend1",
        f"carp2 {URLS[2]}: status 200, verdicts , want HIT from cache1-backend2",
    ]


def test_the_first_box_is_the_first_one_asked() -> None:
    hits = [probe_line(u, f"HIT from {b}") for u, b in zip(URLS * 2, PREDICTED * 2, strict=True)]
    good = two_passes(URLS, PREDICTED)
    assert judge.farm_mismatches({"carp2": rows(good), "carp1": rows(hits)}, PREDICTED) == []
    assert len(judge.farm_mismatches({"carp1": rows(hits), "carp2": rows(good)}, PREDICTED)) == 6


def test_the_intercept_check_wants_the_box_in_via() -> None:
    good = two_passes(URLS, PREDICTED)
    assert judge.intercept_mismatches(rows(good), PREDICTED, "carp1") == []
    lines = list(good)
    lines[0] = probe_line(URLS[0], "MISS from cache1-backend1", via="1.1 carp2 (squid/5.7)")  # another box
    lines[1] = failed_line(URLS[1])
    lines[5] = probe_line(URLS[2], "MISS from cache1-backend2")  # a MISS on the repeat
    assert judge.intercept_mismatches(rows(lines), PREDICTED, "carp1") == [
        f"{URLS[0]}: 200 MISS from cache1-backend1 via 1.1 carp2 (squid/5.7), want MISS from cache1-backend1",
        f"{URLS[1]}: -1  via , want MISS from cache2-backend1",
        f"{URLS[2]}: 200 MISS from cache1-backend2 via 1.1 carp1 (squid/5.7), want HIT from cache1-backend2",
    ]


def test_served_by_splits_the_backend_verdict_and_names_failures() -> None:
    lines = [
        probe_line(URLS[0], "HIT from cache1-backend1", "MISS from carp1-frontend1"),
        failed_line(URLS[1]),
        probe_line(URLS[2], status=502),
    ]
    assert judge.served_by(rows(lines)) == {
        URLS[0]: ["HIT", "cache1-backend1"],
        URLS[1]: ["failed", "status -1"],
        URLS[2]: ["failed", "status 502"],
    }
    # A URL fetched twice: the last row counts.
    again = [*lines, probe_line(URLS[1], "MISS from cache2-backend1")]
    assert judge.served_by(rows(again))[URLS[1]] == ["MISS", "cache2-backend1"]


def test_change_outcome_counts_moved_and_kept_urls_and_their_hits() -> None:
    served = {
        URLS[0]: ["HIT", "cache1-backend1"],  # kept, HIT
        URLS[1]: ["MISS", "cache3-backend1"],  # moved as predicted
        URLS[2]: ["failed", "status -1"],  # moved nowhere: a mismatch
    }
    predicted = {URLS[0]: "cache1-backend1", URLS[1]: "cache3-backend1", URLS[2]: "cache1-backend2"}
    before = {URLS[0]: "cache1-backend1", URLS[1]: "cache2-backend1", URLS[2]: "cache1-backend2"}
    assert judge.change_outcome(URLS, served, predicted, before) == {
        "mismatch": [f"{URLS[2]}: failed from status -1, predicted cache1-backend2"],
        "moved": 2,
        "moved_hit": 0,
        "kept": 1,
        "kept_hit": 1,
    }
    served[URLS[1]] = ["HIT", "cache2-backend1"]  # kept where it was, though predicted to move
    outcome = judge.change_outcome(URLS, served, predicted, before)
    assert outcome["mismatch"][0] == f"{URLS[1]}: HIT from cache2-backend1, predicted cache3-backend1"
    assert (outcome["moved"], outcome["kept"], outcome["kept_hit"]) == (1, 2, 2)


def test_change_outcome_names_a_url_missing_from_a_table() -> None:
    with pytest.raises(KeyError, match=re.escape(f"{URLS[0]} is not in served_before")):
        judge.change_outcome(URLS[:1], {URLS[0]: ["HIT", "a"]}, {URLS[0]: "a"}, {})
