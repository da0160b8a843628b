"""The variables of a backend host (``squid_backends``, and ``squid_backends_retired`` for its retirement):
its caching Squid instances, role ``squid_backend``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from carpfarm.variables.common import (
    BACKEND_SCOPE,
    CACHE_TYPES,
    MAX_WEIGHT,
    SECRET_WORD,
    SECRET_WORD_CHARACTERS,
    CacheType,
    InstancesField,
    Megabytes,
    Seconds,
    SquidLine,
    State,
    Weight,
    _Vars,
    declarer,
)
from carpfarm.variables.fields import AnsibleBool, OptionalPort, Port, WholeNumber

_backend = declarer(BACKEND_SCOPE, "squid_backend")


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
        "squid_backend_cache_type",
        "aufs",
        "cache_dir type: aufs (threaded disk I/O), rock (one database file) or ufs (blocking disk I/O).",
        f"use one of: {', '.join(CACHE_TYPES)}",
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
        "Sources besides the CARP boxes' addresses that may use the backends: CIDRs without host bits that, "
        "alone and with the allow lines of squid_backend_extra_http_access and squid_backend_extra_config, "
        "cover at most 1/256 of the public IPv4 or IPv6 space, unless carpfarm_allow_open_proxy.",
        "list CIDRs such as 192.0.2.0/24, or []",
    )
    extra_http_access: list[SquidLine] = _backend(
        "squid_backend_extra_http_access",
        [],
        "squid.conf lines (acl and http_access), one per item, placed before the allow of the frontends, "
        "e.g. a blocklist. Unless carpfarm_allow_open_proxy, each allow line names its clients, and with those of "
        "squid_backend_extra_config and squid_backend_extra_allowed_networks they admit at most 1/256 of the "
        "public IPv4 or IPv6 space.",
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
