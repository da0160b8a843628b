"""Every variable a carpfarm role or playbook reads, declared once.

Each group of hosts has a model whose fields are its variables (``carpfarm.variables.fields.declare``):
type, default, range, one-line meaning, fix and where it may be set. The roles'
``defaults/main.yml``, ``meta/argument_specs.yml`` and README tables are checked against
these declarations by ``tests/test_roles.py``, so ``carpfarm validate`` refuses everything
argument_specs would refuse later, before any host is touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from carpfarm.carp import KEY_PARTS, KeyPart
from carpfarm.variables.fields import (
    ANYWHERE,
    INTERNAL,
    AnsibleBool,
    Declared,
    OptionalPort,
    Port,
    WholeNumber,
    declare,
    declared,
    digits_as_int,
)
from carpfarm.variables.wccp import WCCP_GROUP as WCCP_GROUP  # the group names below; defined where WCCP is
from carpfarm.variables.wccp import Assignment, Method, WccpService

BACKEND_GROUP = "squid_backends"
FRONTEND_GROUP = "carp_frontends"
RETIRED_GROUP = "squid_backends_retired"  # hosts whose backend instances site.yml stops (and purges)
GROUPS = (BACKEND_GROUP, FRONTEND_GROUP, WCCP_GROUP, RETIRED_GROUP)
# Names in these namespaces are carpfarm's: one that is not declared here is a typo.
NAMESPACES = (
    "squid_backend_",
    "carp_frontend_",
    "frontend_balancer_",
    "frontend_vip_",
    "carpfarm_",
    "wccp_",
    "squid_common_",
)

MAX_INSTANCES = 64
MAX_WEIGHT = 1000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
# balance stays a choice so that validate can tell why it is refused (rules.balancer_type).
BalancerType = Literal["iptables", "nftables", "haproxy", "balance"]
BalancerMode = Literal["random", "roundrobin"]
FrontendMode = Literal["instances", "smp"]
CacheType = Literal["aufs", "rock", "ufs"]
ParentSelection = Literal["carp", "round-robin"]
State = Literal["active", "drained"]
ForwardedFor = Literal["delete", "on", "off", "transparent", "truncate"]  # Squid's forwarded_for
BALANCER_TYPES: tuple[str, ...] = get_args(BalancerType)
BALANCER_MODES: tuple[str, ...] = get_args(BalancerMode)
FRONTEND_MODES: tuple[str, ...] = get_args(FrontendMode)
CACHE_TYPES: tuple[str, ...] = get_args(CacheType)
FORWARDED_FOR: tuple[str, ...] = get_args(ForwardedFor)
# Squid's stock Safe_ports and SSL_ports (Debian's /etc/squid/squid.conf).
SAFE_PORTS: list[int | str] = [80, 21, 443, 70, 210, "1025-65535", 280, 488, 591, 777]
SSL_PORTS: list[int | str] = [443]

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Weight = Annotated[int, WholeNumber, Field(ge=1, le=MAX_WEIGHT)]
Megabytes = Annotated[int, WholeNumber, Field(ge=1, le=16 * 1024 * 1024)]
Count = Annotated[int, WholeNumber, Field(ge=1, le=MAX_INSTANCES)]
Seconds = Annotated[int, WholeNumber, Field(ge=0, le=86400)]
# An absolute directory for a cache_dir: no spaces (squid.conf splits on them), no trailing slash, and no
# component that starts with a dot (so no "." or ".."). "/" passes here so that rules.cache_dirs can say
# why it may not be one (carpfarm.model.cachedirs).
CACHE_DIR_PATTERN = r"^(?:/|(?:/[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*)+)$"
CacheDir = Annotated[str, Field(pattern=CACHE_DIR_PATTERN, max_length=255)]
DEFAULT_CACHE_ROOT = "/var/spool/squid"
# A shared secret written into a config file as one word: nothing the file's syntax would cut or misread.
SECRET_WORD = r"^[A-Za-z0-9._~%+=:@^,/-]*$"
SECRET_WORD_CHARACTERS = "letters, digits, ._~%+=:@^,/-"
# One operator line of squid.conf: not empty, not blank (one line: every string is, see fields.declare).
SquidLine = Annotated[str, Field(min_length=1, pattern=r"\S")]
# One item of carpfarm_safe_ports / carpfarm_ssl_ports: a port, or a "lo-hi" range.
PortOrRange = Annotated[
    int | Annotated[str, Field(pattern=r"^\s*\d{1,5}\s*-\s*\d{1,5}\s*$")], Field(union_mode="smart")
]

BACKEND_SCOPE = (BACKEND_GROUP, RETIRED_GROUP)
FRONTEND_SCOPE = (FRONTEND_GROUP,)
SQUID_SCOPE = (BACKEND_GROUP, RETIRED_GROUP, FRONTEND_GROUP)
EVERYWHERE = (ANYWHERE,)


class InstanceSpec(BaseModel):
    """One item of ``squid_backend_instances`` when it is a list."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: Name | None = None
    port: Port | None = None
    weight: Weight | None = None
    cache_size_mb: Megabytes | None = None
    cache_mem_mb: Megabytes | None = None
    # The instance's cache_dir (one disk per instance); default /var/spool/squid/<name>.
    cache_dir: CacheDir | None = None
    state: State = "active"


def _count_or_list(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(digits_as_int(value), int):
        return "count"
    if isinstance(value, list):
        return "list"
    return None


InstancesField = Annotated[
    Annotated[Count, Tag("count")]
    | Annotated[Annotated[list[InstanceSpec], Field(min_length=1, max_length=MAX_INSTANCES)], Tag("list")],
    Discriminator(
        _count_or_list,
        custom_error_type="count_or_list",
        custom_error_message="must be a whole number of instances or a list of instances",
    ),
]


def _auto_or_count(value: Any) -> str | None:
    if isinstance(value, str) and not isinstance(digits_as_int(value), int):
        return "auto"
    return _count_or_list(value)


FrontendCountField = Annotated[
    Annotated[Literal["auto"], Tag("auto")] | Annotated[Count, Tag("count")],
    Discriminator(
        _auto_or_count,
        custom_error_type="auto_or_count",
        custom_error_message="must be 'auto' or a whole number of instances",
    ),
]


class _Vars(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=False, frozen=True)


def _backend(name: str, default: Any, meaning: str, fix: str, **constraints: Any) -> Any:
    return declare(name, default, meaning, fix, scope=BACKEND_SCOPE, roles=("squid_backend",), **constraints)


def _frontend(name: str, default: Any, meaning: str, fix: str, **constraints: Any) -> Any:
    return declare(name, default, meaning, fix, scope=FRONTEND_SCOPE, roles=("carp_frontend",), **constraints)


def _balancer(name: str, default: Any, meaning: str, fix: str, **constraints: Any) -> Any:
    return declare(name, default, meaning, fix, scope=FRONTEND_SCOPE, roles=("frontend_balancer",), **constraints)


def _vip(name: str, default: Any, meaning: str, fix: str, **constraints: Any) -> Any:
    return declare(name, default, meaning, fix, scope=FRONTEND_SCOPE, **constraints)


def _vip_role(name: str, default: Any, meaning: str, fix: str, **constraints: Any) -> Any:
    return declare(name, default, meaning, fix, scope=FRONTEND_SCOPE, roles=("frontend_vip",), **constraints)


def _wccp(name: str, default: Any, meaning: str, fix: str, **constraints: Any) -> Any:
    return declare(name, default, meaning, fix, scope=FRONTEND_SCOPE, **constraints)


def _farm(name: str, default: Any, meaning: str, fix: str, **constraints: Any) -> Any:
    return declare(name, default, meaning, fix, scope=EVERYWHERE, **constraints)


class BackendVars(_Vars):
    """The variables a host in ``squid_backends`` may set."""

    instances: InstancesField = _backend(
        "squid_backend_instances",
        1,
        "A count of instances (1-64), or a list of {name, port, weight, cache_size_mb, cache_mem_mb, cache_dir, "
        "state}; cache_dir defaults to /var/spool/squid/<name>.",
        "set a whole number of instances from 1 to 64 (e.g. 2), or a list of "
        "{name, port, weight, cache_size_mb, cache_mem_mb, cache_dir, state}; cache_dir is an absolute "
        "directory without spaces",
    )
    port_base: Port = _backend(
        "squid_backend_port_base",
        4001,
        "Instance i listens on port_base + i, unless its own port is set.",
        "set a port from 1 to 65535; instance i listens on port_base + i",
    )
    weight: Weight = _backend(
        "squid_backend_weight",
        1,
        "CARP weight of each instance (1-1000); only the ratio between peers matters.",
        f"set a whole number from 1 to {MAX_WEIGHT}; only the ratio between peers matters",
    )
    cache_size_mb: Megabytes = _backend(
        "squid_backend_cache_size_mb",
        1024,
        "cache_dir size of each instance, in MB.",
        "set the cache_dir size in MB, a whole number >= 1",
    )
    cache_mem_mb: Megabytes = _backend(
        "squid_backend_cache_mem_mb",
        256,
        "cache_mem of each instance, in MB.",
        "set cache_mem in MB, a whole number >= 1",
    )
    cache_type: CacheType = _backend(
        "squid_backend_cache_type", "aufs", "cache_dir type.", f"use one of: {', '.join(CACHE_TYPES)}"
    )
    state: State = _backend(
        "squid_backend_state",
        "active",
        "C(drained) retires every instance of the host; frontends keep its cache_peer line but deny it.",
        "use 'active' or 'drained'",
    )
    address: str = _backend(
        "squid_backend_address",
        "",
        "Address the frontends reach this host on; empty means ansible_host.",
        "set the IP address the frontends reach this host on",
    )
    icp_port_base: OptionalPort = _backend(
        "squid_backend_icp_port_base",
        0,
        "ICP port base (0 = ICP off); instance i uses port_base + i.",
        "set 0 (ICP off) or a port; instance i uses port_base + i",
    )
    snmp_port_base: OptionalPort = _backend(
        "squid_backend_snmp_port_base",
        0,
        "SNMP port base (0 = SNMP off); instance i uses port_base + i.",
        "set 0 (SNMP off) or a port; instance i uses port_base + i",
    )
    snmp_community: str = _backend(
        "squid_backend_snmp_community",
        "",
        "The SNMP community the instances answer (from localhost only); required, and not 'public', when "
        "squid_backend_snmp_port_base is not 0. Keep it in Ansible Vault.",
        f"set squid_backend_snmp_community from your vault: one word of {SECRET_WORD_CHARACTERS}",
        pattern=SECRET_WORD,
        secret=True,
    )
    purge_removed: AnsibleBool = _backend(
        "squid_backend_purge_removed",
        False,
        "Delete the cache dirs and logs of instances that are removed or scaled away.",
        "set true or false",
    )
    maximum_object_size_mb: Annotated[int, WholeNumber, Field(ge=1, le=1024 * 1024)] = _backend(
        "squid_backend_maximum_object_size_mb",
        64,
        "Largest object cached on disk, in MB.",
        "set a whole number of MB, at least 1",
    )
    maximum_object_size_in_memory_kb: Annotated[int, WholeNumber, Field(ge=0, le=1024 * 1024)] = _backend(
        "squid_backend_maximum_object_size_in_memory_kb",
        512,
        "Largest object kept in cache_mem, in KB.",
        "set a whole number of KB, 0 or more",
    )
    shutdown_lifetime: Seconds = _backend(
        "squid_backend_shutdown_lifetime",
        3,
        "Seconds Squid waits for open requests when it stops.",
        "set a whole number of seconds, 0 or more (no unit)",
    )
    extra_allowed_networks: list[str] = _backend(
        "squid_backend_extra_allowed_networks",
        [],
        "Sources besides the CARP boxes' addresses that may use the backends.",
        "list CIDRs such as 192.0.2.0/24, or []",
    )
    extra_http_access: list[SquidLine] = _backend(
        "squid_backend_extra_http_access",
        [],
        "squid.conf lines (acl and http_access), one per item, placed before the allow of the frontends, "
        "e.g. a blocklist.",
        "list squid.conf lines, one per item (e.g. 'http_access deny blocked'), or []",
    )
    collapsed_forwarding: AnsibleBool = _backend(
        "squid_backend_collapsed_forwarding",
        True,
        "Send concurrent misses for one URL to the origin once; the others wait for that answer.",
        "set true or false",
    )
    log_format: str = _backend(
        "squid_backend_log_format", "squid", "access_log format.", "name a Squid logformat, e.g. squid"
    )
    extra_config: str = _backend(
        "squid_backend_extra_config",
        "",
        "Free-form squid.conf lines for every backend instance, placed before the final http_access deny all "
        "(checked by squid -k parse).",
        "write squid.conf lines as one string (a YAML block: |), or ''",
        multiline=True,
    )


class FrontendVars(_Vars):
    """The variables a host in ``carp_frontends`` may set."""

    mode: FrontendMode = _frontend(
        "carp_frontend_mode",
        "instances",
        "instances: one CARP Squid per vCPU behind the frontend balancer; smp: one Squid whose workers "
        "(carp_frontend_instances of them) share the listen port, with no balancer.",
        f"use one of: {', '.join(FRONTEND_MODES)}",
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
        "e.g. a blocklist.",
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
    # ---- the box's balancer (role frontend_balancer)
    balancer_type: BalancerType = _balancer(
        "frontend_balancer_type", "iptables", "Which balancer to run.", f"use one of: {', '.join(BALANCER_TYPES)}"
    )
    balancer_mode: BalancerMode = _balancer(
        "frontend_balancer_mode",
        "random",
        "random, or roundrobin (iptables nth, nftables numgen inc, haproxy roundrobin).",
        f"use one of: {', '.join(BALANCER_MODES)}",
    )
    haproxy_check_interval: Annotated[int, WholeNumber, Field(ge=1, le=3600)] = _balancer(
        "frontend_balancer_haproxy_check_interval",
        1,
        "HAProxy, seconds between health checks of each frontend instance.",
        "set a whole number of seconds from 1 to 3600",
    )
    haproxy_maxconn: Annotated[int, WholeNumber, Field(ge=1, le=10_000_000)] = _balancer(
        "frontend_balancer_haproxy_maxconn",
        20000,
        "HAProxy, most concurrent client connections.",
        "set a whole number of connections, at least 1",
    )
    haproxy_stats_port: Port = _balancer(
        "frontend_balancer_haproxy_stats_port",
        8404,
        "HAProxy, port of the stats page on localhost.",
        "set a free port from 1 to 65535",
    )
    haproxy_sandbox: AnsibleBool = _balancer(
        "frontend_balancer_haproxy_sandbox",
        True,
        "HAProxy, keep Debian's unit sandbox (a private /dev/log bind mount); containers without mount "
        "namespaces need false.",
        "set true or false",
    )
    watch: AnsibleBool = _balancer(
        "frontend_balancer_watch",
        False,
        "iptables and nftables, run carpfarm-watch: probe every frontend instance and keep the kernel rules on "
        "those that answer (HAProxy checks health itself; balance cannot be told).",
        "set true or false",
    )
    watch_interval_ms: Annotated[int, WholeNumber, Field(ge=50, le=10_000)] = _balancer(
        "frontend_balancer_watch_interval_ms",
        200,
        "carpfarm-watch, milliseconds between two probes of the instances.",
        "set a whole number of milliseconds from 50 to 10000",
    )
    watch_fall: Annotated[int, WholeNumber, Field(ge=1, le=100)] = _balancer(
        "frontend_balancer_watch_fall",
        1,
        "carpfarm-watch, failed probes in a row that take an instance out (a port no longer listened on is final).",
        "set a whole number from 1 to 100",
    )
    watch_rise: Annotated[int, WholeNumber, Field(ge=1, le=100)] = _balancer(
        "frontend_balancer_watch_rise",
        5,
        "carpfarm-watch, good probes in a row that put an instance back.",
        "set a whole number from 1 to 100",
    )
    watch_min_interval_ms: Annotated[int, WholeNumber, Field(ge=0, le=600_000)] = _balancer(
        "frontend_balancer_watch_min_interval_ms",
        2000,
        "carpfarm-watch, least milliseconds between two put-backs, so a flapping instance cannot churn the "
        "rules faster (taking an instance out is never delayed).",
        "set a whole number of milliseconds from 0 to 600000",
    )
    # ---- optional floating client address (carpfarm.model.vip; role frontend_vip, keepalived's VRRP)
    vip: str = _vip(
        "carpfarm_vip",
        "",
        "A floating client address with its prefix length (192.0.2.9/24), held by one of the CARP boxes that "
        "set the same one; '' = none.",
        "write an IPv4 address in the boxes' subnet with its prefix length, e.g. 192.0.2.9/24, or ''",
    )
    vip_single_box: AnsibleBool = _vip(
        "carpfarm_vip_single_box",
        False,
        "Allow carpfarm_vip on a single CARP box (refused otherwise: no box could take it over).",
        "set true or false",
    )
    vrrp_id: Annotated[int, WholeNumber, Field(ge=1, le=255)] = _vip(
        "carpfarm_vrrp_id",
        51,
        "VRRP virtual router id of the boxes sharing carpfarm_vip; unique per floating address on a subnet.",
        "set a whole number from 1 to 255",
    )
    vrrp_priority: Annotated[int, WholeNumber, Field(ge=1, le=254)] = _vip(
        "carpfarm_vrrp_priority",
        100,
        "This box's VRRP priority: the live box with the highest holds the address (equal: the highest address wins).",
        "set a whole number from 1 to 254",
    )
    vrrp_preempt: AnsibleBool = _vip(
        "carpfarm_vrrp_preempt",
        True,
        "A box of higher priority takes the address back when it returns; false leaves it where it is.",
        "set true or false",
    )
    vrrp_advert_interval: Annotated[int, WholeNumber, Field(ge=1, le=255)] = _vip(
        "carpfarm_vrrp_advert_interval",
        1,
        "Seconds between VRRP adverts; a backup takes over after about 3 missed ones.",
        "set a whole number of seconds from 1 to 255",
    )
    vrrp_password: str = _vip(
        "carpfarm_vrrp_password",
        "",
        "VRRP authentication shared by the boxes (at most 8 characters); required with carpfarm_vip. "
        "Keep it in Ansible Vault.",
        "set 1-8 characters (letters, digits, ._~%+=:@^,/-; keepalived.conf would cut or misread others), the "
        "same on every box sharing the address",
        max_length=8,
        pattern=SECRET_WORD,
        secret=True,
    )
    vrrp_interface: str = _vip(
        "carpfarm_vrrp_interface",
        "",
        "Interface keepalived puts the floating address on; '' = the one holding the box's own address.",
        "name a network interface of the box, e.g. eth0, or ''",
        pattern=r"^[A-Za-z0-9_.:@-]{0,15}$",
    )
    vip_check_interval: Annotated[int, WholeNumber, Field(ge=1, le=60)] = _vip_role(
        "frontend_vip_check_interval",
        1,
        "Seconds between two runs of keepalived's track script (balancer and frontend instances running).",
        "set a whole number of seconds from 1 to 60",
    )
    vip_check_fall: Annotated[int, WholeNumber, Field(ge=1, le=100)] = _vip_role(
        "frontend_vip_check_fall",
        2,
        "Failed checks in a row that make the box give up the floating address.",
        "set a whole number from 1 to 100",
    )
    vip_check_rise: Annotated[int, WholeNumber, Field(ge=1, le=100)] = _vip_role(
        "frontend_vip_check_rise",
        2,
        "Good checks in a row before the box may hold the floating address again (it starts failed).",
        "set a whole number from 1 to 100",
    )
    # ---- optional WCCPv2 (carpfarm.wccp.settings): routers redirect clients' web traffic to this box
    wccp: AnsibleBool = _wccp("carpfarm_wccp", False, "Turn WCCPv2 on for this CARP box.", "set true or false")
    wccp_routers: list[str] = _wccp(
        "carpfarm_wccp_routers", [], "The routers' IP addresses.", "list the routers' IP addresses"
    )
    wccp_forwarding_method: Method = _wccp(
        "carpfarm_wccp_forwarding_method", "gre", "How routers forward to the box: gre or l2.", "use 'gre' or 'l2'"
    )
    wccp_return_method: Method | None = _wccp(
        "carpfarm_wccp_return_method",
        None,
        "How the box returns traffic to routers; unset means the forwarding method.",
        "use 'gre' or 'l2' (or leave it out: the forwarding method)",
    )
    wccp_assignment_method: Assignment = _wccp(
        "carpfarm_wccp_assignment_method", "hash", "How routers assign buckets: hash or mask.", "use 'hash' or 'mask'"
    )
    wccp_services: list[WccpService] = _wccp(
        "carpfarm_wccp_services",
        [WccpService(standard=0)],
        "The WCCPv2 services: {standard: 0} (web-cache) or dynamic ones.",
        "list services as {standard: 0} (web-cache) or {id: 51-255, ports: [1 to 8 ports], protocol, priority, "
        "flags, password}",
    )
    wccp_password: str = _wccp(
        "carpfarm_wccp_password",
        "",
        "Default MD5 password of the services, at most 8 characters.",
        "set at most 8 characters (WCCPv2 MD5 security)",
        max_length=8,
        secret=True,
    )
    wccp_weight: Annotated[int, WholeNumber, Field(ge=0, le=65535)] = _wccp(
        "carpfarm_wccp_weight", 10000, "The box's WCCPv2 weight.", "set a whole number from 0 to 65535"
    )
    wccp_intercept_port_base: Port = _wccp(
        "carpfarm_wccp_intercept_port_base",
        3229,
        "Frontend instance i intercepts on port_base + i.",
        "set a free port; frontend instance i intercepts on port_base + i",
    )
    wccp_squid_fixed: AnsibleBool = _wccp(
        "carpfarm_wccp_squid_fixed",
        False,
        "The box's Squid carries the upstream corrections of its WCCPv2 parser (every release from 4.17 and 5.2 "
        "drops a router's I_SEE_YOU without them); false: validate stops a WCCP box whose Squid lacks them.",
        "set true only for a Squid built with Squid pull request 2484 and commit 478eba2a33 (7.0.1+ has the "
        "second), else false",
    )
    wccp_router_interface: str = _wccp(
        "carpfarm_wccp_router_interface",
        "GigabitEthernet0/0",
        "The router's client-facing interface, for its stanza.",
        "name the router's client-facing interface, e.g. GigabitEthernet0/1",
    )
    wccp_router_stanza_dir: str = declare(
        "wccp_router_stanza_dir",
        "{{ playbook_dir | dirname }}/build/wccp",
        "Directory on the controller for <box>-router.ios.",
        "give a directory on the controller",
        scope=FRONTEND_SCOPE,
        roles=("wccp",),
    )


class SquidVars(_Vars):
    """Variables of every host that runs carpfarm's Squid instances (both layers)."""

    package: str = declare(
        "squid_common_package",
        "squid",
        "Debian package that provides /usr/sbin/squid.",
        "name a Debian package that provides /usr/sbin/squid",
        scope=SQUID_SCOPE,
        roles=("squid_common",),
    )
    nofile: Annotated[int, WholeNumber, Field(ge=64, le=1 << 24)] = declare(
        "squid_common_nofile",
        65535,
        "File descriptor limit (LimitNOFILE) of every Squid instance.",
        "set a whole number of descriptors, at least 64",
        scope=SQUID_SCOPE,
        roles=("squid_common",),
    )
    stop_timeout: Annotated[int, WholeNumber, Field(ge=1, le=3600)] = declare(
        "squid_common_stop_timeout",
        20,
        "Seconds systemd waits for an instance to stop before killing what is left (TimeoutStopSec).",
        "set a whole number of seconds from 1 to 3600",
        scope=SQUID_SCOPE,
        roles=("squid_common",),
    )
    apt_cache_valid_time: Seconds = declare(
        "squid_common_apt_cache_valid_time",
        3600,
        "How long apt's package lists count as fresh, in seconds.",
        "set a whole number of seconds, 0 or more",
        scope=SQUID_SCOPE,
        roles=("squid_common",),
    )
    log_rotate_days: Annotated[int, WholeNumber, Field(ge=1, le=3650)] = declare(
        "squid_common_log_rotate_days",
        7,
        "Days of rotated per-instance logs to keep.",
        "set a whole number of days, at least 1",
        scope=SQUID_SCOPE,
        roles=("squid_common",),
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
        roles=("squid_backend", "carp_frontend"),
    )
    ssl_ports: list[PortOrRange] = declare(
        "carpfarm_ssl_ports",
        SSL_PORTS,
        'Farm-wide: ports a CONNECT tunnel may go to (Squid\'s stock SSL_ports), each a port or a "lo-hi" '
        "range; [] refuses every CONNECT.",
        "list ports (443) or ranges from 1 to 65535, or [] to refuse every CONNECT",
        scope=EVERYWHERE,
        roles=("squid_backend", "carp_frontend"),
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
        roles=("carp_frontend",),
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


# Arguments one role passes to another's tasks_from entry point; never set in an inventory.
INTERNAL_NAMES: dict[str, str] = {
    "squid_common_instances": "squid_common",
    "squid_common_keep": "squid_common",
    "squid_common_purge": "squid_common",
    "squid_common_role_marker": "squid_common",
    "squid_common_started": "squid_common",
    "squid_common_changed": "squid_common",
    "squid_common_template": "squid_common",
    "squid_common_reload": "squid_common",
    "squid_common_diff": "squid_common",
    "frontend_balancer_hold_port": "frontend_balancer",
}

MODELS: tuple[type[_Vars], ...] = (BackendVars, FrontendVars, SquidVars, FarmVars, RouterVars)


def declarations() -> Iterator[tuple[type[_Vars], str, Declared]]:
    """(model, field name, declaration) for every declared variable."""
    for model in MODELS:
        for field_name, field in model.model_fields.items():
            yield model, field_name, declared(field)


DECLARED: dict[str, Declared] = {d.name: d for _, _, d in declarations()}


def model_scope(model: type[_Vars]) -> tuple[str, ...]:
    """The groups whose hosts are validated against ``model``."""
    return {
        BackendVars: BACKEND_SCOPE,
        FrontendVars: FRONTEND_SCOPE,
        SquidVars: SQUID_SCOPE,
        FarmVars: EVERYWHERE,
        RouterVars: (WCCP_GROUP,),
    }[model]


def in_namespace(name: str) -> bool:
    return name.startswith(NAMESPACES)
