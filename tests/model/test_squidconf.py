"""carpfarm.model.squidconf and .squidaccess: which operator lines open the proxy, and which name their clients."""

from __future__ import annotations

import ipaddress

import pytest

from carpfarm.model import squidaccess, squidconf
from support.paths import ROOT

TEMPLATES = (
    ROOT / "roles" / "carp_frontend" / "templates" / "etc" / "squid" / "frontend.conf.j2",
    ROOT / "roles" / "squid_backend" / "templates" / "etc" / "squid" / "backend.conf.j2",
)

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
    ("src all", ["acl x src all", "http_access allow x"], "could not be measured ('all'"),
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
    # ACL names are looked up without regard to case (Squid's strcasecmp)
    ("ALL in capitals", ["http_access allow ALL"], "'ALL' matches every client"),
    ("a negated ACL in capitals", ["http_access allow !LOCALHOST"], "'!LOCALHOST' matches every client"),
    ("an ACL named in another case", ["acl World src 0.0.0.0/0", "http_access allow world"], "'world' is src over"),
    ("a predefined request ACL in another case", ["http_access allow connect"], "'connect' is a method ACL"),
    ("carpfarm's port ACL in capitals", ["http_access allow CARPFARM_SAFE_PORTS"], "is a port ACL"),
    ("an any-of part in another case", ["acl m method GET", "acl a any-of M", "http_access allow a"], "any-of"),
    ("a client ACL in capitals", ["acl Office src 10.0.0.0/8", "http_access allow OFFICE"], None),
    # continuations are joined with no space, past comment and blank lines, as Squid joins them
    ("a continuation joined without a space", ["http_access allow al\\", "l"], "'all' matches every client"),
    ("a continued src value", ["acl x src 0.0.0.0\\", "/0", "http_access allow x"], "'x' is src over 100.00%"),
    (
        "a continuation across a comment and a blank line",
        ["acl x src 10.0.0.0/8 \\", "# a note", "", "   0.0.0.0/0", "http_access allow x"],
        "'x' is src over 100.00%",
    ),
    # src values that cannot be measured count as every client
    ("src ipv4", ["acl x src ipv4", "http_access allow x"], "could not be measured ('ipv4'"),
    ("src ipv6", ["acl x src ipv6", "http_access allow x"], "could not be measured ('ipv6'"),
    ("src 0/0", ["acl x src 0/0", "http_access allow x"], "could not be measured ('0/0'"),
    ("src a quoted file", ['acl x src "/etc/squid/f"', "http_access allow x"], "could not be measured"),
    ("src parameters()", ['acl x src parameters("/etc/squid/f")', "http_access allow x"], "could not be measured"),
    ("src a host name", ["acl x src proxy.example", "http_access allow x"], "could not be measured"),
    ("src a 32-bit number", ["acl x src 2147483648/1", "http_access allow x"], "could not be measured"),
    ("src a short IPv4 form", ["acl x src 10/8", "http_access allow x"], "could not be measured"),
    ("src an octal IPv4 form", ["acl x src 010.0.0.0/8", "http_access allow x"], "could not be measured"),
    ("src a masked range", ["acl x src 10.0.0.0-10.0.0.0/0", "http_access allow x"], "could not be measured"),
    ("src a hostmask", ["acl x src 10.0.0.0/0.255.255.255", "http_access allow x"], "could not be measured"),
    ("src a reversed range", ["acl x src 10.0.0.9-10.0.0.1", "http_access allow x"], "could not be measured"),
    ("src a scoped address", ["acl x src fe80::%eth0/64", "http_access allow x"], "could not be measured"),
    ("src a small net and a file", ['acl x src 10.0.0.0/8 "/etc/f"', "http_access allow x"], "could not be measured"),
    # IPv4 clients are ::ffff:a.b.c.d to Squid
    ("src IPv4-mapped", ["acl x src ::ffff:0:0/96", "http_access allow x"], "100.00% of the public IPv4 space"),
    ("src IPv4-mapped, dotted", ["acl x src ::ffff:0.0.0.0/96", "http_access allow x"], "100.00% of the public IPv4"),
    ("src ::/0 holds IPv4", ["acl x src ::/0", "http_access allow x"], "100.00% of the public IPv4 space"),
    ("src IPv4-mapped private", ["acl x src ::ffff:10.0.0.0/104", "http_access allow x"], None),
    # wildcard values of client ACLs match every client
    ("srcdomain .", ["acl d srcdomain .", "http_access allow d"], "'d' is srcdomain '.', which matches every client"),
    ("srcdomain none", ["acl d srcdomain NONE", "http_access allow d"], "'d' is srcdomain 'NONE'"),
    ("srcdom_regex .", ["acl d srcdom_regex .", "http_access allow d"], "'d' is srcdom_regex '.'"),
    ("srcdom_regex ^", ["acl d srcdom_regex -i ^", "http_access allow d"], "'d' is srcdom_regex '^'"),
    ("srcdom_regex .*", ["acl d srcdom_regex \\.example$ .*", "http_access allow d"], "'.*'"),
    ("srcdom_regex (", ["acl d srcdom_regex (", "http_access allow d"], "'d' is srcdom_regex '('"),
    ("ident REQUIRED", ["acl u ident REQUIRED", "http_access allow u"], "'u' is ident"),
    ("ident a user", ["acl u ident alice", "http_access allow u"], "'u' is ident"),
    ("ident_regex", ["acl u ident_regex ^alice$", "http_access allow u"], "'u' is ident_regex"),
    ("clientside_mark, mask 0", ["acl k clientside_mark 0x1/0x0", "http_access allow k"], "'0x1/0x0'"),
    ("client_connection_mark 0", ["acl k client_connection_mark 0", "http_access allow k"], "'k' is"),
    ("clientside_mark unread", ["acl k clientside_mark x", "http_access allow k"], "'k' is clientside_mark 'x'"),
    ("a wildcard inside any-of", ["acl d srcdomain .", "acl a any-of d", "http_access allow a"], "any-of"),
    ("srcdomain of a domain", ["acl d srcdomain .example.com", "http_access allow d"], None),
    ("srcdom_regex of a domain", ["acl d srcdom_regex -i ^[a-z]+\\.example\\.com$", "http_access allow d"], None),
    ("ext_user REQUIRED", ["acl u ext_user REQUIRED", "http_access allow u"], None),
    ("proxy_auth_regex", ["acl u proxy_auth_regex .", "http_access allow u"], None),
    ("arp", ["acl m arp 00:11:22:33:44:55", "http_access allow m"], None),
    ("eui64", ["acl m eui64 02:11:22:ff:fe:33:44:55", "http_access allow m"], None),
    ("clientside_mark, a mask", ["acl k clientside_mark 0x10/0xf0", "http_access allow k"], None),
    # what Squid reads otherwise than a line at a time
    (
        "two types, one hidden by an if-branch",
        [
            "acl x src 0.0.0.0/0",
            "if ${process_number} = 9",
            "acl x proxy_auth REQUIRED",
            "endif",
            "http_access allow x",
        ],
        "'x' is defined with more than one type (src, proxy_auth)",
    ),
    (
        "all-of lines are ORed",
        ["acl o src 10.0.0.0/8", "acl m method GET", "acl a all-of o m", "acl a all-of m", "http_access allow a"],
        "'a' is all-of m, and 'm' is a method ACL",
    ),
    (
        "all-of lines that each name the client",
        ["acl o src 10.0.0.0/8", "acl m method GET", "acl a all-of o m", "acl a all-of m o", "http_access allow a"],
        None,
    ),
    (
        "clientside_mark is client_connection_mark",
        ["acl k clientside_mark 0x10", "acl k client_connection_mark 0x20", "http_access allow k"],
        None,
    ),
]


@pytest.mark.parametrize(("lines", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_allow_that_names_no_client_is_found_with_its_reason(lines: list[str], words: str | None) -> None:
    found = list(squidaccess.open_allows([lines]))
    if words is None:
        assert found == []
        return
    assert len(found) == 1, found
    assert words in found[0].why
    assert lines[found[0].index].strip().startswith(("http_access", "follow_x_forwarded_for"))


def test_acls_defined_in_one_source_count_in_the_others_and_lines_keep_their_place() -> None:
    extra_http_access = ["acl world src 0.0.0.0/0", "http_access deny to_localhost"]
    extra_config = "reply_header_add X a all\n\nhttp_access allow world\n".splitlines()
    (found,) = squidaccess.open_allows([extra_http_access, extra_config])
    assert (found.source, found.index, found.text) == (1, 2, "http_access allow world")
    assert found.does == "lets every client use the proxy"


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("acl carpfarm_clients src 0.0.0.0/0", "carpfarm_clients"),
        ("acl carp_frontends src ::/0", "carp_frontends"),
        ("acl carpfarm_safe_ports port 1-65535", "carpfarm_safe_ports"),
        ("acl localhost src 0.0.0.0/0", "localhost"),
        ("acl CARPFARM_CLIENTS src 0.0.0.0/0", "carpfarm_clients"),
        ("acl ALL src 0.0.0.0/0", "all"),
        ("acl Carp_Frontends src ::/0", "carp_frontends"),
        ("acl carpfarm_snmp_community snmp_community public", "carpfarm_snmp_community"),
        ("acl carpfarm_gateway_error http_status 200", "carpfarm_gateway_error"),
        ("acl carpfarm_boxes src 0.0.0.0/0", "carpfarm_boxes"),
        ("acl carpfarm_to_farm dst 192.0.2.0/24", "carpfarm_to_farm"),
        ("acl carpfarm_to_linklocal dst 192.0.2.0/24", "carpfarm_to_linklocal"),
        ("acl carpfarm_denied_destinations dst 192.0.2.0/24", "carpfarm_denied_destinations"),
        ("acl carpfarm_ssl_ports port 1-65535", "carpfarm_ssl_ports"),
        ("acl Carpfarm_Safe_Ports \\", "carpfarm_safe_ports"),
    ],
)
def test_an_acl_line_that_adds_to_squids_or_carpfarms_own_is_found(line: str, name: str) -> None:
    (found,) = squidconf.redefinitions([["acl mine src 10.0.0.0/8", line, "port 1-65535"]])
    assert found.index == 1 and f"'{name}'" in found.does


def test_an_acl_of_the_operators_own_is_no_redefinition() -> None:
    lab = ["acl carpfarm_lab_blocked urlpath_regex ^/obj/blocked-at-frontend$", "http_access deny carpfarm_lab_blocked"]
    assert list(squidconf.redefinitions([lab])) == []


def _template_acls() -> dict[str, str]:
    """Every ``acl NAME TYPE`` line of carpfarm's two squid.conf templates."""
    found: dict[str, str] = {}
    for template in TEMPLATES:
        for line in template.read_text().splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "acl":
                assert found.setdefault(words[1], words[2]) == words[2], f"{words[1]} has two types"
    return found


def test_the_known_template_acls_are_exactly_those_the_templates_define() -> None:
    assert _template_acls() == squidconf.TEMPLATE_ACLS


# Debian 13's /etc/squid/squid.conf: "ACLs all, manager, localhost, to_localhost, to_linklocal, and CONNECT are
# predefined." (Squid 5.7 has no to_linklocal yet.)
SQUID_ACLS = ["all", "localhost", "manager", "to_localhost", "to_linklocal", "CONNECT"]


def test_a_line_adding_to_any_acl_squid_or_a_template_defines_is_found() -> None:
    names = [*SQUID_ACLS, *_template_acls()]
    found = squidconf.redefinitions([[f"acl {name} src 0.0.0.0/0" for name in names]])
    assert [f.does.split("'")[1] for f in found] == names


@pytest.mark.parametrize(
    "lines",
    [
        ["include /etc/squid/conf.d/*.conf"],
        ["INCLUDE /etc/squid/more.conf"],
        ["  Include /etc/squid/more.conf  # more"],
        ["incl\\", "ude /etc/squid/more.conf"],
    ],
)
def test_an_include_is_found_as_lines_that_cannot_be_checked(lines: list[str]) -> None:
    (found,) = squidconf.unchecked([["acl a src 10.0.0.0/8", *lines]])
    assert found.index == 1 and "could not be checked" in found.why
    assert list(squidconf.unchecked([["# include /etc/squid/more.conf", "acl include src 10.0.0.0/8"]])) == []


def test_logical_lines_drop_comments_and_join_continuations() -> None:
    lines = ["# a comment", "", "acl x src \\", "   10.0.0.0/8 # the office", "http_access deny x"]
    assert [(line.index, line.words) for line in squidconf.logical_lines(0, lines)] == [
        (2, ("acl", "x", "src", "10.0.0.0/8")),
        (4, ("http_access", "deny", "x")),
    ]


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (["acl x src 10.0.0.0/\\", "8"], [("acl", "x", "src", "10.0.0.0/8")]),  # no space between the two
        (["http_access allow al\\", "  l"], [("http_access", "allow", "all")]),  # the next line's indent goes
        (["acl x src a\\", "# a note", "", "b"], [("acl", "x", "src", "ab")]),  # comments and blanks go on
        (["acl x src a \\ ", "b"], [("acl", "x", "src", "a", "\\"), ("b",)]),  # a space after it: no continuation
        (["acl\tx\tsrc a\xa0b"], [("acl", "x", "src", "a\xa0b")]),  # words part at spaces and tabs only
        (["http_access allow \\"], [("http_access", "allow")]),  # the end of the text ends it
    ],
)
def test_continuations_are_joined_as_squid_joins_them(lines: list[str], words: list[tuple[str, ...]]) -> None:
    assert [line.words for line in squidconf.logical_lines(0, lines)] == words


@pytest.mark.parametrize(
    ("values", "networks"),
    [
        (["10.0.0.0/8"], ["10.0.0.0/8"]),
        (["10.0.0.0/255.0.0.0"], ["10.0.0.0/8"]),
        (["10.0.0.0/08"], ["10.0.0.0/8"]),
        (["10.0.0.0-10.0.0.255"], ["10.0.0.0/24"]),
        (["10.0.0.1"], ["10.0.0.1/32"]),
        (["10.1.2.3/8"], ["10.0.0.0/8"]),  # Squid masks the host bits too
        (["2001:db8::/32"], ["2001:db8::/32"]),
        (["::ffff:10.0.0.0/104"], ["::ffff:10.0.0.0/104"]),
    ],
)
def test_src_values_become_networks(values: list[str], networks: list[str]) -> None:
    assert squidaccess.src_networks(values) == ([ipaddress.ip_network(n) for n in networks], [])


@pytest.mark.parametrize(
    "value",
    [
        "all",
        "ipv4",
        "ipv6",
        "0/0",
        "proxy.example",
        '"/etc/file"',
        'parameters("/etc/file")',
        "10.0.0.9-10.0.0.1",
        "::1-10.0.0.1",
        "10.0.0.0-10.0.0.255/24",
        "2147483648/1",
        "10/8",
        "10.1/16",
        "010.0.0.0/8",
        "0x0a.0.0.0/8",
        "10.0.0.0/0.255.255.255",
        "10.0.0.0/255.0.255.0",
        "10.0.0.0/+8",
        "10.0.0.0/33",
        "2001:db8::/ffff::",
        "fe80::%eth0/64",
        "",
    ],
)
def test_src_values_that_cannot_be_measured_are_told(value: str) -> None:
    assert squidaccess.src_networks(["192.0.2.0/24", value]) == ([ipaddress.ip_network("192.0.2.0/24")], [value])


def test_a_text_is_read_as_jinjas_trim_prints_it_and_keeps_its_line_numbers() -> None:
    text = "\n\n  acl a src 10.0.0.0/8\nhttp_access allow a \\\n \xa0"
    lines = squidconf.trimmed_lines(text)
    assert lines == ["", "", "acl a src 10.0.0.0/8", "http_access allow a \\", ""]
    (found,) = squidconf.open_ends([lines])  # trim takes the no-break space: the backslash ends the text
    assert (found.index, found.does) == (3, "ends in a backslash")


@pytest.mark.parametrize(
    ("lines", "index"),
    [
        (["acl a src 10.0.0.0/8", "http_access allow a ${service_name}"], 1),
        (["acl ${process_name}x src 10.0.0.0/8"], 0),
        (["follow_x_forwarded_for allow ${service_name}"], 0),
        (["configuration_includes_quoted_values on"], 0),
        (["access_log stdio:/var/log/squid/${service_name}/a.log", "acl a src 10.0.0.0/8"], None),
    ],
)
def test_macros_and_quoted_values_cannot_be_checked(lines: list[str], index: int | None) -> None:
    assert [f.index for f in squidconf.unchecked([lines])] == ([] if index is None else [index])


def test_a_line_longer_than_squid_reads_at_once_is_found() -> None:
    lines = ["a" * squidconf.LONGEST_LINE, "b" * (squidconf.LONGEST_LINE + 1), "\u00e9" * 4096]
    assert [(f.index, f.does) for f in squidconf.long_lines([lines])] == [
        (1, "is 8192 bytes long"),
        (2, "is 8192 bytes long"),
    ]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("always_direct allow all", True),
        ("Never_Direct deny all", True),
        ("cache_peer 192.0.2.99 parent 3128 0 no-query", True),
        ("cache_peer_access cache1-backend1 deny all", True),
        ("prefer_direct on", True),
        ("reply_header_add X-Carpfarm-Layer frontend all", False),
        ("http_access deny blocked", False),
        ("# always_direct allow all", False),
    ],
)
def test_a_frontend_line_that_decides_where_requests_go_is_found(text: str, found: bool) -> None:
    assert bool(list(squidaccess.forwarding([[text]]))) is found
