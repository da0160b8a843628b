"""The variables every Squid host shares (``SquidVars``: role ``squid_common``'s, and the farm-wide Squid
settings both layers read), the farm-wide ones any host may carry (``FarmVars``), and a WCCP router's
(``RouterVars``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from carpfarm.variables.common import (
    EVERYWHERE,
    FORWARDED_FOR,
    SAFE_PORTS,
    SQUID_SCOPE,
    SSL_PORTS,
    ForwardedFor,
    PortOrRange,
    Seconds,
    _Vars,
    declarer,
)
from carpfarm.variables.fields import INTERNAL, AnsibleBool, WholeNumber, declare
from carpfarm.variables.wccp import WCCP_GROUP

_farm = declarer(EVERYWHERE)
_common = declarer(SQUID_SCOPE, "squid_common")


class SquidVars(_Vars):
    """Variables of every host that runs carpfarm's Squid instances (both layers)."""

    package: str = _common(
        "squid_common_package",
        "squid",
        "Debian package that provides /usr/sbin/squid.",
        "name a Debian package that provides /usr/sbin/squid",
    )
    nofile: Annotated[int, WholeNumber, Field(ge=64, le=1 << 24)] = _common(
        "squid_common_nofile",
        65535,
        "File descriptor limit (LimitNOFILE) of every Squid instance.",
        "set a whole number of descriptors, at least 64",
    )
    stop_timeout: Annotated[int, WholeNumber, Field(ge=1, le=3600)] = _common(
        "squid_common_stop_timeout",
        20,
        "Seconds systemd waits for an instance to stop before killing what is left (TimeoutStopSec).",
        "set a whole number of seconds from 1 to 3600",
    )
    apt_cache_valid_time: Seconds = _common(
        "squid_common_apt_cache_valid_time",
        3600,
        "How long apt's package lists count as fresh, in seconds.",
        "set a whole number of seconds, 0 or more",
    )
    log_rotate_days: Annotated[int, WholeNumber, Field(ge=1, le=3650)] = _common(
        "squid_common_log_rotate_days",
        7,
        "Days of rotated per-instance logs to keep.",
        "set a whole number of days, at least 1",
    )
    reload_names: list[str] = declare(
        "squid_common_reload_names",
        [],
        'Instances (squid -n names) the "Reload changed Squid instances" handler checks and reloads. '
        "Set by tasks_from configure just before it notifies the handler.",
        "remove it from the inventory: squid_common's configure sets it",
        scope=(INTERNAL,),
        roles=("squid_common",),
    )
    safe_ports: list[PortOrRange] = declare(
        "carpfarm_safe_ports",
        SAFE_PORTS,
        'Farm-wide: ports a request may go to (Squid\'s stock Safe_ports), each a port or a "lo-hi" range; '
        "the rest are denied before any allow.",
        "list ports (80) or ranges ('1025-65535') from 1 to 65535",
        scope=EVERYWHERE,
        roles=("squid_backend", "carp_frontend", "frontend_balancer"),
    )
    ssl_ports: list[PortOrRange] = declare(
        "carpfarm_ssl_ports",
        SSL_PORTS,
        'Farm-wide: ports a CONNECT tunnel may go to (Squid\'s stock SSL_ports), each a port or a "lo-hi" '
        "range; [] refuses every CONNECT.",
        "list ports (443) or ranges from 1 to 65535, or [] to refuse every CONNECT",
        scope=EVERYWHERE,
        roles=("squid_backend", "carp_frontend", "frontend_balancer"),
    )
    denied_destinations: list[str] = declare(
        "carpfarm_denied_destinations",
        [],
        "Farm-wide: destinations no request may reach, besides the proxies' own loopback, link-local and farm "
        "addresses (always denied); e.g. your RFC 1918 ranges.",
        "list CIDRs without host bits, e.g. ['10.0.0.0/8', '192.168.0.0/16'], or []",
        scope=EVERYWHERE,
        roles=("squid_backend", "carp_frontend"),
    )
    forwarded_for: ForwardedFor = declare(
        "carpfarm_forwarded_for",
        "delete",
        "Farm-wide: what the backends tell origins about the client (Squid's forwarded_for): delete drops "
        "X-Forwarded-For, on adds the client's address, off adds 'unknown', truncate sends the client's address "
        "alone, transparent passes on what arrived.",
        f"use one of: {', '.join(FORWARDED_FOR)} (quote 'on' and 'off': YAML reads them unquoted as booleans)",
        scope=EVERYWHERE,
        roles=("squid_backend",),
    )
    cache_status_headers: AnsibleBool = declare(
        "carpfarm_cache_status_headers",
        False,
        "Farm-wide: keep the farm's X-Cache, X-Cache-Lookup and Cache-Status headers toward clients (true, "
        "for debugging: they name the farm's hosts and instances); false strips them.",
        "set true or false",
        scope=EVERYWHERE,
        roles=("carp_frontend", "frontend_balancer"),
    )


class FarmVars(_Vars):
    """Farm-wide variables, usually in ``group_vars/all``: any host may carry them."""

    client_networks: list[str] = _farm(
        "carpfarm_client_networks",
        [],
        "The client CIDRs allowed to use the proxy.",
        "list the client CIDRs allowed to use the proxy, e.g. ['192.0.2.0/24']",
    )
    allow_open_proxy: AnsibleBool = _farm(
        "carpfarm_allow_open_proxy",
        False,
        "Allow an open proxy: carpfarm_client_networks or squid_backend_extra_allowed_networks that together "
        "cover more than 1/256 of the public IPv4 or IPv6 space (about a /8 of IPv4, a /11 of IPv6), and "
        "extra_config or extra_http_access allow lines that name no client (allow all, !acl, a method or "
        "destination alone).",
        "set true or false",
    )
    accept_remap: AnsibleBool = _farm(
        "carpfarm_accept_remap",
        False,
        "For one run: go on although the CARP peers deployed now are reordered or removed undrained.",
        "set true or false, for one run only (-e carpfarm_accept_remap=true)",
    )
    backend_serial: Annotated[int | str, Field(union_mode="left_to_right")] = _farm(
        "carpfarm_backend_serial",
        "100%",
        "How many backend hosts site.yml changes at a time (Ansible serial).",
        "give a count of hosts (1) or a percentage ('25%')",
    )
    status_file: str = _farm(
        "carpfarm_status_file",
        "",
        "playbooks/status.yml: a controller path the collected data is written to, as JSON.",
        "give a path on the controller",
    )
    verify_url: str = _farm(
        "carpfarm_verify_url",
        "",
        "playbooks/verify.yml: base URL of cacheable test objects.",
        "give a base URL such as http://origin.example/obj",
    )
    verify_source: str = _farm(
        "carpfarm_verify_source",
        "",
        "playbooks/verify.yml: a client source address inside carpfarm_client_networks.",
        "give an IP address inside carpfarm_client_networks",
    )
    verify_outsider_source: str = _farm(
        "carpfarm_verify_outsider_source",
        "",
        "playbooks/verify.yml: a client source address outside carpfarm_client_networks (must get 403).",
        "give an IP address outside carpfarm_client_networks",
    )
    verify_url_count: Annotated[int, WholeNumber, Field(ge=1, le=100_000)] = _farm(
        "carpfarm_verify_url_count",
        20,
        "playbooks/verify.yml: how many distinct URLs to route through the farm.",
        "set a whole number, at least 1",
    )
    verify_outsider_status: list[Annotated[int, WholeNumber, Field(ge=-1, le=999)]] = _farm(
        "carpfarm_verify_outsider_status",
        [403],
        "playbooks/verify.yml: what the farm may answer an outsider (-1: connection refused).",
        "list HTTP status codes, e.g. [403]",
    )


class RouterVars(_Vars):
    """The variables of a host in ``wccp_routers``."""

    address: str = declare(
        "wccp_router_address",
        "",
        "The router's address the CARP boxes talk WCCPv2 to; empty means ansible_host.",
        "write the router's IP address",
        scope=(WCCP_GROUP,),
    )
