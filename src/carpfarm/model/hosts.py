"""The carpfarm topology: one validated description of all three layers.

A ``Topology`` is built by ``carpfarm.model.build.build_topology(groups, hostvars)``, which reads
the variables users write in their inventory (see docs/variables.md), checks every rule
that spans hosts, and either returns one or raises ``TopologyError`` listing *all* problems, each
naming host, variable, value and fix.

The same object feeds the CLI, the Ansible filter plugin and the roles' templates,
so that what ``carpfarm plan`` shows is what the hosts get.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict

from carpfarm.carp import CarpArray, CarpPeer, select_batch
from carpfarm.carp.consistent import ConsistentFarm
from carpfarm.model.vip import VipSettings
from carpfarm.variables import (
    State,
)
from carpfarm.wccp.settings import WccpBox, WccpSettings


def plain(value: Any) -> Any:
    """Strip Ansible's tagged/unsafe wrappers so strict validation sees plain types."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


# ---------------------------------------------------------------- the topology


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def endpoint(address: str, port: int) -> str:
    """``address:port`` the way Squid parses it: IPv6 literals in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class BackendInstance(_Frozen):
    """One Squid on a backend host, and one ``cache_peer`` line on every frontend."""

    host: str
    name: str
    peer_name: str
    address: str
    port: int
    weight: int
    cache_size_mb: int
    cache_mem_mb: int
    cache_type: str
    state: State
    cache_dir: str = ""  # the cache_dir path; empty only for deployed peers read back from a frontend
    icp_port: int = 0
    snmp_port: int = 0

    @property
    def active(self) -> bool:
        return self.state == "active"

    @property
    def endpoint(self) -> str:
        return endpoint(self.address, self.port)


class BackendHost(_Frozen):
    name: str
    address: str  # an IP literal (a name given in the inventory is resolved once, at validate time)
    address_written: str = ""  # what the inventory says, when it is a name
    instances: tuple[BackendInstance, ...]


class FrontendInstance(_Frozen):
    """One CARP Squid on a frontend box; the balancer sends connections to its port."""

    host: str
    name: str
    port: int


class FrontendHost(_Frozen):
    name: str
    mode: str = "instances"  # "smp": one Squid with ``workers`` workers on the listen port; "haproxy": HAProxy
    haproxy_selection: str = "carp"  # mode haproxy: "carp" (Squid's choice, in Lua) or "consistent"
    workers: int = 0  # smp: how many (0 in instances mode)
    cpu_affinity_map: str = ""  # smp: cpu_affinity_map's value, '' without facts
    address: str  # an IP literal, as for backends
    address_written: str = ""
    listen_port: int
    instances: tuple[FrontendInstance, ...]
    instances_setting: str  # "auto" or the count the user wrote
    vcpus: int | None  # from facts, when known
    client_networks: tuple[str, ...]
    allow_open_proxy: bool
    balancer_type: str
    balancer_mode: str
    haproxy_stats_port: int = 8404
    watch: bool = False  # frontend_balancer_watch: carpfarm-watch runs (kernel balancers only)
    carp_key: tuple[str, ...]
    wccp: WccpSettings | None = None
    vip: VipSettings | None = None


class Topology(_Frozen):
    """Every layer, host and instance of one carpfarm, validated."""

    backends: tuple[BackendHost, ...]
    frontends: tuple[FrontendHost, ...]
    carp_key: tuple[str, ...] = ()

    # ---- views

    @property
    def backend_instances(self) -> tuple[BackendInstance, ...]:
        """Every backend instance, in ``cache_peer`` order (inventory order; new hosts go last)."""
        return tuple(i for host in self.backends for i in host.instances)

    @property
    def frontend_instances(self) -> tuple[FrontendInstance, ...]:
        return tuple(i for host in self.frontends for i in host.instances)

    @cached_property
    def carp_peers(self) -> tuple[CarpPeer, ...]:
        key = self.carp_key or None
        return tuple(CarpPeer(i.peer_name, i.address, i.port, i.weight, key) for i in self.backend_instances)

    @cached_property
    def carp_array(self) -> CarpArray:
        return CarpArray.build(self.carp_peers)

    @property
    def selection(self) -> str:
        """How the farm's CARP boxes pick a backend: "consistent" (every box HAProxy's consistent URI
        hash; validate refuses a mix) or "carp" (Squid's CARP, in Squid or in HAProxy's Lua)."""
        consistent = [f for f in self.frontends if f.mode == "haproxy" and f.haproxy_selection == "consistent"]
        return "consistent" if consistent else "carp"

    @cached_property
    def consistent_farm(self) -> ConsistentFarm:
        return ConsistentFarm.build([(i.peer_name, i.weight) for i in self.backend_instances])

    @cached_property
    def drained_peers(self) -> tuple[str, ...]:
        return tuple(i.peer_name for i in self.backend_instances if not i.active)

    @cached_property
    def _by_peer(self) -> dict[str, BackendInstance]:
        return {i.peer_name: i for i in self.backend_instances}

    def instance_by_peer(self, peer_name: str) -> BackendInstance:
        return self._by_peer[peer_name]

    def route(self, url: str, down: Sequence[str] = ()) -> BackendInstance | None:
        """The backend instance the frontends forward ``url`` to (drained peers excluded)."""
        return self.routes([url], down)[0]

    def routes(
        self, urls: Sequence[str], down: Sequence[str] = (), progress: Callable[[int, int], None] | None = None
    ) -> list[BackendInstance | None]:
        """``[self.route(url, down) for url in urls]``, computed as one batch (fast for many URLs);
        ``progress`` is called with (URLs done, URLs in all) as the batch goes."""
        if self.selection == "consistent":
            chosen = self.consistent_farm.select_many(urls, [*self.drained_peers, *down])
            if progress is not None:
                progress(len(urls), len(urls))
            return [None if name is None else self.instance_by_peer(name) for name in chosen]
        peers = select_batch([(self.carp_array, {*self.drained_peers, *down})], urls, progress)[0]
        return [None if peer is None else self.instance_by_peer(peer.name) for peer in peers]


def wccp_boxes(frontends: Sequence[FrontendHost]) -> list[WccpBox]:
    """The CARP boxes with WCCP on, as carpfarm.wccp.settings's cross-box rules and router stanzas see them."""
    return [(f.name, f.address, tuple(f.client_networks), f.wccp) for f in frontends if f.wccp is not None]
