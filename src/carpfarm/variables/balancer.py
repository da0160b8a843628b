"""The variables of a CARP box's balancer, which spreads the clients' listen port over the box's
frontend instances (role ``frontend_balancer``); part of ``FrontendVars``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from carpfarm.variables.common import (
    BALANCER_MODES,
    BALANCER_TYPES,
    FRONTEND_SCOPE,
    BalancerMode,
    BalancerType,
    _Vars,
    declarer,
)
from carpfarm.variables.fields import AnsibleBool, Port, WholeNumber

_balancer = declarer(FRONTEND_SCOPE, "frontend_balancer")


class BalancerVars(_Vars):
    """The balancer's variables (role ``frontend_balancer``)."""

    balancer_type: BalancerType = _balancer(
        "frontend_balancer_type",
        "iptables",
        "Which balancer to run: iptables (statistic REDIRECT rules, IPv4 clients only), nftables (numgen rules, "
        "IPv4 and IPv6) or haproxy (health checks, PROXY v2 keeps the client's address, IPv4 only); balance is "
        "refused: it hides every client's address from Squid.",
        f"use one of: {', '.join(BALANCER_TYPES)}",
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
