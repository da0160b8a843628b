"""How a problem reads: where it is written, whom it reaches, the value as YAML writes it, and words a
user knows (no Python type, no pydantic class, no regular expression), with a fix that is right."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from pydantic import ValidationError

from carpfarm.model import build_topology
from carpfarm.model.errors import CACHE_DIR_EXAMPLE, problems_of
from carpfarm.problems import NO_VALUE, Problem, TopologyError, merged, plain_words, shown
from carpfarm.variables import MODELS

CLIENTS = ["198.51.100.0/24"]
# What a message must never hold: Python's or pydantic's names, or a regular expression.
LEAKS = re.compile(
    r"<class|_Ansible|Tagged|InstanceSpec|WccpService|instance of [A-Z]|'dict'|'list'|\(\?:|\^\[|\]\*\$|\\[dsS]"
)


def _inventory() -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    groups = {"carp_frontends": ["carp1"], "squid_backends": ["cache1", "cache2"]}
    hostvars: dict[str, dict[str, Any]] = {
        "carp1": {"ansible_host": "192.0.2.10", "carpfarm_client_networks": CLIENTS, "carp_frontend_instances": 2},
        "cache1": {"ansible_host": "192.0.2.21", "squid_backend_instances": 2},
        "cache2": {"ansible_host": "192.0.2.22", "squid_backend_instances": 2},
    }
    return groups, hostvars


def _problems(host: str, **values: Any) -> list[Problem]:
    groups, hostvars = copy.deepcopy(_inventory())
    hostvars[host].update(values)
    with pytest.raises(TopologyError) as caught:
        build_topology(groups, hostvars)
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "found \"<class 'ansible.module_utils._internal._datatag._AnsibleTaggedList'>\" instead",
            "found a list instead",
        ),
        ("expected dicts but got a 'dict' and a '_AnsibleTaggedList'", "expected dicts but got a mapping and a list"),
        ("it is a <class 'ansible.module_utils._internal._datatag._AnsibleTaggedInt'>", "it is a number"),
        ("a <class 'str'> here", "a string here"),
    ],
)
def test_python_type_names_are_told_as_words(text: str, words: str) -> None:
    assert plain_words(text) == words


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (None, "null"),
        ("lvs", "'lvs'"),
        (0, "0"),
        ({"id": 70, "ports": [443], "on": False}, "{id: 70, ports: [443], on: false}"),
        (
            [f"line {n}" for n in range(10)],
            "['line 0', 'line 1', 'line 2', 'line 3', 'line 4', 'line 5', ... (10 items)]",
        ),
    ],
)
def test_values_are_shown_as_yaml_writes_them(value: Any, text: str) -> None:
    assert shown(value) == text


def test_a_problem_at_its_place_names_file_line_variable_value_reach_and_fix() -> None:
    problem = Problem(
        "cache1",
        "squid_backend_instancs",
        "is not a carpfarm variable",
        "correct the name",
        2,
        file="inventory/group_vars/squid_backends.yml",
        line=12,
        hosts=("cache1", "cache2"),
        group="squid_backends",
    )
    assert str(problem) == (
        "inventory/group_vars/squid_backends.yml:12: squid_backend_instancs = 2: is not a carpfarm variable "
        "[group squid_backends, 2 hosts: cache1 and cache2]. Fix: correct the name"
    )
    data = problem.as_dict()
    assert data["file"] == "inventory/group_vars/squid_backends.yml" and data["line"] == 12
    assert data["hosts"] == ["cache1", "cache2"] and data["group"] == "squid_backends" and data["value"] == 2


def test_a_problem_that_is_no_one_place_names_its_host_first() -> None:
    problem = Problem("cache2", "squid_backend_weight", "is 0", "set 1 or more", 0)
    assert str(problem) == "cache2: squid_backend_weight = 0: is 0. Fix: set 1 or more"
    assert problem.as_dict()["file"] is None and problem.as_dict()["hosts"] == ["cache2"]


def test_one_setting_wrong_on_many_hosts_is_one_problem_that_names_them_all() -> None:
    at = {"file": "g/squid_backends.yml", "line": 3, "group": "squid_backends"}
    found = [Problem(f"cache{n:02d}", "x", "is wrong", "fix it", 1, hosts=(f"cache{n:02d}",), **at) for n in range(40)]
    found.append(Problem("cache00", "x", "is wrong", "fix it", 1, file="h.yml", line=3, hosts=("cache00",)))
    told = merged(found)
    assert len(told) == 2
    assert told[0].hosts == tuple(f"cache{n:02d}" for n in range(40))
    assert "[group squid_backends, 40 hosts: cache00, cache01, cache02, cache03, cache04 and 35 more]" in str(told[0])


def test_problems_not_at_one_place_stay_one_per_host() -> None:
    told = merged([Problem("cache1", "x", "is wrong", "fix", 1), Problem("cache2", "x", "is wrong", "fix", 1)])
    assert [p.host for p in told] == ["cache1", "cache2"]


def test_two_inventories_are_told_apart() -> None:
    problem = Problem("cache1", "x", "is wrong", "fix", inventory="NEW inventory inv/new")
    error = TopologyError([problem], inventory="NEW inventory inv/new")
    assert str(error).splitlines() == [
        "the NEW inventory inv/new has 1 problem; nothing was changed",
        "  - NEW inventory inv/new: cache1: x: is wrong. Fix: fix",
    ]


def test_a_host_weight_of_zero_says_how_to_stop_sending_it_requests() -> None:
    (problem,) = _problems("cache2", squid_backend_weight=0)
    assert problem.variable == "squid_backend_weight" and "greater than or equal to 1" in problem.message
    assert "squid_backend_state: drained" in problem.fix and "squid_backends_retired" in problem.fix
    assert "instances" not in problem.fix


@pytest.mark.parametrize("weight", [0, -3])
def test_an_instance_weight_below_one_gets_the_weights_fix_not_the_counts(weight: int) -> None:
    (problem,) = _problems("cache1", squid_backend_instances=[{"name": "a", "weight": weight}])
    assert problem.variable == "squid_backend_instances[0].weight"
    assert "greater than or equal to 1" in problem.message
    assert problem.fix.startswith("set a whole number from 1 to 1000")
    assert "state: drained" in problem.fix and "remove it from the list" in problem.fix
    assert "number of instances" not in problem.fix


@pytest.mark.parametrize(
    ("cache_dir", "why"),
    [
        ("srv/cache1", "it is a relative path"),
        ("cache", "it is a relative path"),
        ("/srv/my cache", "it holds a space"),
        ("/srv/cache1/", "it ends in '/'"),
        ("/srv/../etc", "'.' or '..' part"),
        ("/srv/cache#1", "a character other than"),
    ],
)
def test_a_cache_dir_that_is_no_absolute_directory_says_why_in_words(cache_dir: str, why: str) -> None:
    (problem,) = _problems("cache1", squid_backend_instances=[{"cache_dir": cache_dir}])
    assert problem.variable == "squid_backend_instances[0].cache_dir" and problem.value == cache_dir
    assert "absolute directory" in problem.message and why in problem.message
    assert CACHE_DIR_EXAMPLE in problem.fix and "absolute path" in problem.fix
    assert not LEAKS.search(str(problem)), problem


def test_an_instance_that_is_no_mapping_is_told_so_with_its_fix() -> None:
    (problem,) = _problems("cache1", squid_backend_instances=[[1, 2]])
    assert problem.message == "input should be a valid dictionary (key: value), not a list"
    assert "mapping of its keys" in problem.fix and "{name: big, weight: 2}" in problem.fix


def test_an_unknown_instance_key_suggests_the_one_meant() -> None:
    (problem,) = _problems("cache1", squid_backend_instances=[{"prot": 4005}])
    assert problem.message == "is not a known key" and problem.fix.startswith("did you mean 'port'?")


def test_a_port_list_item_that_is_neither_port_nor_range_is_one_problem() -> None:
    problems = _problems("cache1", carpfarm_safe_ports=["80 443"])
    (problem,) = [p for p in problems if p.variable == "carpfarm_safe_ports[0]"]
    assert "a port (a whole number) or a 'lo-hi' range" in problem.message


def test_frontends_that_disagree_on_the_carp_key_are_named_with_their_keys() -> None:
    groups, hostvars = _inventory()
    groups["carp_frontends"].append("carp2")
    hostvars["carp2"] = {**hostvars["carp1"], "ansible_host": "192.0.2.11", "carp_frontend_carp_key": ["host"]}
    with pytest.raises(TopologyError) as caught:
        build_topology(groups, hostvars)
    (problem,) = [p for p in caught.value.problems if p.variable == "carp_frontend_carp_key"]
    assert "carp2: [host]" in problem.message and "(" not in problem.message.split("key (")[1].split(")")[0]


# Every value that could be wrong, against every declared variable: what pydantic says becomes words.
SAMPLES: list[Any] = [
    "word",
    "",
    1.5,
    -1,
    0,
    10**9,
    [],
    {},
    [1],
    ["x y"],
    [{}],
    [{"weight": 0}],
    [{"cache_dir": "rel"}],
    [{"name": "a b"}],
    [{"bogus": 1}],
    [[1]],
    True,
    None,
    "x" * 300,
    [{"id": 1}],
]


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_no_message_leaks_python_or_pydantic(model: Any) -> None:
    told = 0
    for field in model.model_fields.values():
        for value in SAMPLES:
            data = {field.alias: value}
            try:
                model.model_validate(data)
            except ValidationError as exc:
                for problem in problems_of(model, "cache1", data, exc):
                    told += 1
                    assert not LEAKS.search(problem.message), (field.alias, value, problem.message)
                    assert not LEAKS.search(problem.fix), (field.alias, value, problem.fix)
                    assert problem.fix and problem.message
                    assert problem.value is not NO_VALUE or problem.message == "is required but not set"
    assert told
