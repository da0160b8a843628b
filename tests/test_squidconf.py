"""carpfarm.squidconf: which operator lines let every client through, and which name their clients."""

from __future__ import annotations

import ipaddress

import pytest

from carpfarm import squidconf

# (id, lines, the reason's words; None: the lines open nothing)
CASES = [
    ("allow all", ["http_access allow all"], "'all' matches every client"),
    ("allow all, a trailing comment", ["http_access allow all # everyone"], "'all'"),
    ("allow, no ACL", ["http_access allow"], "names no ACL"),
    ("allow, only a comment", ["http_access allow   #all"], "names no ACL"),
    ("allow, a continuation left open", ["http_access allow \\"], "names no ACL"),
    ("allow a negated ACL", ["http_access allow !localhost"], "'!localhost' matches every client"),
    ("allow a negated client ACL", ["acl office src 10.0.0.0/8", "http_access allow !office"], "'!office'"),
    ("all and a negation", ["acl blocked dstdomain .bad.example", "http_access allow all !blocked"], "'all'"),
    ("src over the threshold", ["acl x src 0.0.0.0/0", "http_access allow x"], "'x' is src over 100.00%"),
    ("src halves", ["acl x src 0.0.0.0/1 128.0.0.0/1", "http_access allow x"], "100.00% of the public IPv4"),
    ("src added up over two lines", ["acl x src 0.0.0.0/1", "acl x src 128.0.0.0/1", "http_access allow x"], "100"),
    ("src as a netmask", ["acl x src 0.0.0.0/0.0.0.0", "http_access allow x"], "'x' is src over"),
    ("src as a range", ["acl x src 1.0.0.0-126.255.255.255", "http_access allow x"], "'x' is src over"),
    ("src all", ["acl x src all", "http_access allow x"], "IPv6"),
    ("src IPv6", ["acl x src ::/0", "http_access allow x"], "of the public IPv6 space"),
    ("src over a continued line", ["acl x src 10.0.0.0/8 \\", "  0.0.0.0/0", "http_access allow x"], "'x'"),
    ("a request ACL alone", ["acl m method GET", "http_access allow m"], "'m' is a method ACL"),
    ("a destination alone", ["acl d dstdomain .example.com", "http_access allow d"], "'d' is a dstdomain ACL"),
    ("Squid's CONNECT alone", ["http_access allow CONNECT"], "'CONNECT' is a method ACL"),
    ("carpfarm's port ACL alone", ["http_access allow carpfarm_safe_ports"], "is a port ACL"),
    ("any-of with an open part", ["acl o src 10.0.0.0/8", "acl a any-of o all", "http_access allow a"], "any-of"),
    ("all-of open parts", ["acl m method GET", "acl a all-of m all", "http_access allow a"], "all-of"),
    ("trusting every X-Forwarded-For", ["follow_x_forwarded_for allow all"], "'all'"),
    ("a deny", ["http_access deny all"], None),
    ("allow the clients", ["http_access allow carpfarm_clients"], None),
    ("allow localhost", ["http_access allow localhost"], None),
    ("allow a small src", ["acl office src 10.0.0.0/8 192.168.0.0/16", "http_access allow office"], None),
    ("allow a public /9", ["acl isp src 11.0.0.0/9", "http_access allow isp"], None),
    ("the lab's clients", ["acl lab src 198.18.0.128/26", "http_access allow lab"], None),
    ("a client ACL beside a request ACL", ["acl m method GET", "acl o src 10.0.0.0/8", "http_access allow m o"], None),
    ("a login", ["acl users proxy_auth REQUIRED", "http_access allow users"], None),
    ("all-of with a client part", ["acl o src 10.0.0.0/8", "acl a all-of o all", "http_access allow a"], None),
    ("an ACL this text does not define", ["http_access allow defined_elsewhere"], None),
    ("keywords are case-sensitive", ["HTTP_ACCESS allow all", "http_access Allow all"], None),
    ("a blocklist", ["acl blocked urlpath_regex ^/obj/blocked$", "http_access deny blocked"], None),
    ("a whole comment", ["# http_access allow all"], None),
    (
        "a src name or file is not measured",
        ['acl x src "/etc/squid/clients.txt" proxy.example', "http_access allow x"],
        None,
    ),
]


@pytest.mark.parametrize(("lines", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_allow_that_names_no_client_is_found_with_its_reason(lines: list[str], words: str | None) -> None:
    found = list(squidconf.open_allows([lines]))
    if words is None:
        assert found == []
        return
    assert len(found) == 1, found
    assert words in found[0].why
    assert lines[found[0].index].strip().startswith(("http_access", "follow_x_forwarded_for"))


def test_acls_defined_in_one_source_count_in_the_others_and_lines_keep_their_place() -> None:
    extra_http_access = ["acl world src 0.0.0.0/0", "http_access deny to_localhost"]
    extra_config = "reply_header_add X a all\n\nhttp_access allow world\n".splitlines()
    (found,) = squidconf.open_allows([extra_http_access, extra_config])
    assert (found.source, found.index, found.text) == (1, 2, "http_access allow world")
    assert found.does == "lets every client use the proxy"


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("acl carpfarm_clients src 0.0.0.0/0", "carpfarm_clients"),
        ("acl carp_frontends src ::/0", "carp_frontends"),
        ("acl carpfarm_safe_ports port 1-65535", "carpfarm_safe_ports"),
        ("acl localhost src 0.0.0.0/0", "localhost"),
    ],
)
def test_an_acl_line_that_adds_to_squids_or_carpfarms_own_is_found(line: str, name: str) -> None:
    (found,) = squidconf.redefinitions([["acl mine src 10.0.0.0/8", line]])
    assert found.index == 1 and f"'{name}'" in found.does


def test_logical_lines_drop_comments_and_join_continuations() -> None:
    lines = ["# a comment", "", "acl x src \\", "   10.0.0.0/8 # the office", "http_access deny x"]
    assert [(line.index, line.words) for line in squidconf.logical_lines(0, lines)] == [
        (2, ("acl", "x", "src", "10.0.0.0/8")),
        (4, ("http_access", "deny", "x")),
    ]


@pytest.mark.parametrize(
    ("values", "networks"),
    [
        (["10.0.0.0/8"], ["10.0.0.0/8"]),
        (["10.0.0.0/255.0.0.0"], ["10.0.0.0/8"]),
        (["10.0.0.0-10.0.0.255"], ["10.0.0.0/24"]),
        (["10.0.0.1"], ["10.0.0.1/32"]),
        (["all"], ["0.0.0.0/0", "::/0"]),
        (["2001:db8::/32"], ["2001:db8::/32"]),
        (["proxy.example", '"/etc/file"', "10.0.0.9-10.0.0.1", "::1-10.0.0.1"], []),
    ],
)
def test_src_values_become_networks(values: list[str], networks: list[str]) -> None:
    assert squidconf.src_networks(values) == [ipaddress.ip_network(n) for n in networks]
