"""The variables of a CARP box (``carp_frontends``): ``CarpFrontendVars``, those of its own Squid instances
(role ``carp_frontend``), and ``FrontendVars``, every variable of the box: that part with the balancer's
(``balancer``), the floating address's (``vip``) and WCCP's (``wccp_box``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from carpfarm.carp import KEY_PARTS, KeyPart
from carpfarm.variables.balancer import BalancerVars
from carpfarm.variables.common import (
    FRONTEND_MODES,
    FRONTEND_SCOPE,
    HAPROXY_SELECTIONS,
    FrontendCountField,
    FrontendMode,
    HaproxySelection,
    ParentSelection,
    Seconds,
    SquidLine,
    _Vars,
    declarer,
)
from carpfarm.variables.fields import AnsibleBool, Port, WholeNumber
from carpfarm.variables.vip import VipVars
from carpfarm.variables.wccp_box import WccpVars

_frontend = declarer(FRONTEND_SCOPE, "carp_frontend")


class CarpFrontendVars(_Vars):
    """The variables of the CARP box's own Squid instances (role ``carp_frontend``)."""

    mode: FrontendMode = _frontend(
        "carp_frontend_mode",
        "instances",
        "instances: one CARP Squid per vCPU behind the frontend balancer; smp: one Squid whose workers "
        "(carp_frontend_instances of them) share the listen port, with no balancer; haproxy: one HAProxy in "
        "HTTP mode, a thread per vCPU, picks the backend per request (carp_frontend_haproxy_selection), with "
        "no frontend Squid and no balancer.",
        f"use one of: {', '.join(FRONTEND_MODES)}",
    )
    haproxy_selection: HaproxySelection = _frontend(
        "carp_frontend_haproxy_selection",
        "carp",
        "carp_frontend_mode: haproxy, how HAProxy picks the backend instance: carp, exactly as the Squid "
        "frontends' CARP (no remap when a farm moves between them; costs O(peers) per request); consistent, "
        "HAProxy's own consistent URI hash (the fast path; every farm's cache remaps once when it switches, "
        "and every CARP box must then use it).",
        f"use one of: {', '.join(HAPROXY_SELECTIONS)}",
    )
    instances: FrontendCountField = _frontend(
        "carp_frontend_instances",
        "auto",
        "'auto' (one CARP Squid per vCPU) or a count (1-64); in smp mode, the count of workers.",
        "set 'auto' (one per vCPU) or a whole number from 1 to 64",
    )
    port_base: Port = _frontend(
        "carp_frontend_port_base",
        3129,
        "Frontend instance i listens on port_base + i.",
        "set a port from 1 to 65535; frontend instance i listens on port_base + i",
    )
    listen_port: Port = _frontend(
        "carp_frontend_listen_port",
        3128,
        "The port clients connect to; the frontend balancer spreads it over the instances.",
        "set the port clients connect to (usually 3128)",
    )
    address: str = _frontend(
        "carp_frontend_address",
        "",
        "The box's client-facing address; empty means ansible_host.",
        "set the IP address clients reach this CARP box on",
    )
    carp_key: list[KeyPart] = _frontend(
        "carp_frontend_carp_key",
        [],
        "Squid's carp-key parts (scheme, host, port, path, params); [] hashes the whole URL.",
        f"list any of: {', '.join(KEY_PARTS)}; or [] for the whole URL",
    )
    cache_mem_mb: Annotated[int, WholeNumber, Field(ge=0, le=1024 * 1024)] = _frontend(
        "carp_frontend_cache_mem_mb",
        0,
        "Memory cache per frontend instance in MB; 0 keeps the frontends cache-free (cache deny all).",
        "set a whole number of MB, 0 or more",
    )
    peer_connect_timeout: Annotated[int, WholeNumber, Field(ge=1, le=3600)] = _frontend(
        "carp_frontend_peer_connect_timeout",
        2,
        "Seconds to wait for a backend's TCP connect before trying the next CARP choice.",
        "set a whole number of seconds from 1 to 3600 (no unit: 2, not '2s')",
    )
    connect_fail_limit: Annotated[int, WholeNumber, Field(ge=1, le=1000)] = _frontend(
        "carp_frontend_connect_fail_limit",
        2,
        "Failed connects after which a backend is marked dead and skipped by CARP.",
        "set a whole number from 1 to 1000",
    )
    forward_max_tries: Annotated[int, WholeNumber, Field(ge=1, le=100)] = _frontend(
        "carp_frontend_forward_max_tries",
        5,
        "How many destinations Squid may try for one request (the next CARP choices).",
        "set a whole number from 1 to 100",
    )
    allow_localhost: AnsibleBool = _frontend(
        "carp_frontend_allow_localhost",
        True,
        "Let processes on the CARP box itself use the proxy.",
        "set true or false",
    )
    shutdown_lifetime: Seconds = _frontend(
        "carp_frontend_shutdown_lifetime",
        3,
        "Seconds Squid waits for open requests when it stops.",
        "set a whole number of seconds, 0 or more (no unit)",
    )
    rolling_restart: AnsibleBool = _frontend(
        "carp_frontend_rolling_restart",
        True,
        "Apply a changed configuration by restarting each instance while the balancer holds it out of rotation "
        "(Squid 5's reconfigure fails some requests); false reloads in place with squid -k reconfigure.",
        "set true or false",
    )
    drain_timeout: Seconds = _frontend(
        "carp_frontend_drain_timeout",
        10,
        "Seconds to let a held-out instance finish its open client connections before the restart.",
        "set a whole number of seconds, 0 or more (no unit)",
    )
    log_format: str = _frontend(
        "carp_frontend_log_format", "squid", "access_log format.", "name a Squid logformat, e.g. squid"
    )
    extra_http_access: list[SquidLine] = _frontend(
        "carp_frontend_extra_http_access",
        [],
        "squid.conf lines (acl and http_access), one per item, placed before the allow of the clients, "
        "e.g. a blocklist. Unless carpfarm_allow_open_proxy, each allow line names its clients, and with those of "
        "carp_frontend_extra_config and carpfarm_client_networks they admit at most 1/256 of the public IPv4 or "
        "IPv6 space.",
        "list squid.conf lines, one per item (e.g. 'http_access deny blocked'), or []",
    )
    extra_config: str = _frontend(
        "carp_frontend_extra_config",
        "",
        "Free-form squid.conf lines for every frontend instance, placed before the final http_access deny all "
        "(checked by squid -k parse).",
        "write squid.conf lines as one string (a YAML block: |), or ''",
        multiline=True,
    )
    parent_selection: ParentSelection = _frontend(
        "carp_frontend_parent_selection",
        "carp",
        "carp, so each URL lives on exactly one backend; round-robin only to measure what CARP buys "
        "(make bench), since it makes every backend cache every URL.",
        "use 'carp' (or 'round-robin' only for make bench)",
    )


class FrontendVars(WccpVars, VipVars, BalancerVars, CarpFrontendVars):
    """The variables a host in ``carp_frontends`` may set: its CARP Squid's, its balancer's, its floating
    address's and its WCCP's.

    The parts are listed last first: pydantic takes the fields of the last base first, so ``model_fields``
    (hence the order of validation errors and of the generated role files) runs carp_frontend, balancer,
    floating address, WCCP."""
