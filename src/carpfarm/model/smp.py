"""Squid SMP as the CARP frontend (``carp_frontend_mode: smp``): one Squid whose workers share the
box's listen port, as in the Squid wiki's SMP CARP example, instead of one Squid per vCPU behind a
frontend balancer.

Squid's coordinator process opens the listening socket and hands the same descriptor to every
worker, so the kernel queues all clients on one accept queue and whichever worker is free takes the
next: there is no balancer to build, hold or watch, and the master restarts a worker that dies.
"""

from __future__ import annotations

from collections.abc import Iterator

from carpfarm.problems import Problem
from carpfarm.variables import FrontendVars

# The one Squid of a box in smp mode: squid@frontend.service, squid -n frontend.
INSTANCE = "frontend"
# What the balancer role builds for a box in smp mode: nothing, and it removes any other type's leftovers.
NO_BALANCER = "none"


def affinity_map(workers: int, vcpus: int | None) -> str:
    """``cpu_affinity_map``'s value: worker k on core k (Squid counts cores from 1), wrapping around
    when there are more workers than vCPUs; '' when the vCPUs are unknown (no facts), where the
    kernel places the workers itself."""
    if not vcpus:
        return ""
    processes = ",".join(str(k) for k in range(1, workers + 1))
    cores = ",".join(str((k - 1) % vcpus + 1) for k in range(1, workers + 1))
    return f"process_numbers={processes} cores={cores}"


def problems(host: str, parsed: FrontendVars) -> Iterator[Problem]:
    """What smp mode cannot do, each with the reason and the fix."""
    if parsed.wccp:
        yield Problem(
            host,
            "carpfarm_wccp",
            "is not supported with carp_frontend_mode: smp: Squid speaks WCCPv2 from its coordinator process "
            "only, which serves no client, while carpfarm's WCCP names one speaking instance per box and "
            "spreads the intercept ports over the instances with the kernel balancer's rules",
            "set carp_frontend_mode: instances on a WCCP box, or carpfarm_wccp: false",
            parsed.wccp,
        )
    if parsed.watch:
        yield Problem(
            host,
            "frontend_balancer_watch",
            "has nothing to watch with carp_frontend_mode: smp: there is no balancer, the workers share one "
            "listening socket, and Squid's master restarts a worker that dies",
            "set frontend_balancer_watch: false on this box, or carp_frontend_mode: instances",
            parsed.watch,
        )
