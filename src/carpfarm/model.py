"""The carpfarm topology: one validated description of all three layers.

``Topology.from_inventory(groups, hostvars)`` reads the variables users write in
their inventory (see the README's variable table), checks every rule that spans
hosts, and either returns a ``Topology`` or raises ``TopologyError`` listing
*all* problems, each naming host, variable, value and fix.

The same object feeds the CLI, the Ansible filter plugin and the roles' templates,
so that what ``carpfarm plan`` shows is what the hosts get.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationError

from carpfarm.carp import KEY_PARTS, CarpArray, CarpPeer, KeyPart
from carpfarm.problems import NO_VALUE, Problem, TopologyError
from carpfarm.wccp import Assignment, Method, WccpService, WccpSettings

BACKEND_GROUP = "squid_backends"
FRONTEND_GROUP = "carp_frontends"
WCCP_GROUP = "wccp_routers"
# Balancers that keep the kernel's NAT record, which Squid's intercept ports read.
INTERCEPT_BALANCERS: tuple[str, ...] = ("iptables", "nftables")
HTTPS_PORT = 443
RETIRED_GROUP = "squid_backends_retired"  # hosts whose backend instances site.yml stops (and purges)

MAX_INSTANCES = 64
MAX_WEIGHT = 1000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
BalancerType = Literal["iptables", "nftables", "haproxy", "balance"]
BalancerMode = Literal["random", "roundrobin"]
CacheType = Literal["aufs", "rock", "ufs"]
BALANCER_TYPES: tuple[str, ...] = get_args(BalancerType)
BALANCER_MODES: tuple[str, ...] = get_args(BalancerMode)
CACHE_TYPES: tuple[str, ...] = get_args(CacheType)


def _digits_to_int(value: Any) -> Any:
    """``-e var=24`` gives Ansible the string '24': take a string of digits as the number.

    Anything else (``'two'``, ``'2.5'``, booleans) still meets strict validation."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return value


Number = BeforeValidator(_digits_to_int)
Port = Annotated[int, Number, Field(ge=1, le=65535)]
OptionalPort = Annotated[int, Number, Field(ge=0, le=65535)]  # 0 = off
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Weight = Annotated[int, Number, Field(ge=1, le=MAX_WEIGHT)]
Megabytes = Annotated[int, Number, Field(ge=1, le=16 * 1024 * 1024)]
Count = Annotated[int, Number, Field(ge=1, le=MAX_INSTANCES)]
State = Literal["active", "drained"]

# What to tell the user for each variable, whatever the exact error was.
FIXES: dict[str, str] = {
    "squid_backend_instances": (
        "set a whole number of instances from 1 to 64 (e.g. 2), or a list of "
        "{name, port, weight, cache_size_mb, cache_mem_mb, state}"
    ),
    "squid_backend_port_base": "set a port from 1 to 65535; instance i listens on port_base + i",
    "squid_backend_weight": f"set a whole number from 1 to {MAX_WEIGHT}; only the ratio between peers matters",
    "squid_backend_cache_size_mb": "set the cache_dir size in MB, a whole number >= 1",
    "squid_backend_cache_mem_mb": "set cache_mem in MB, a whole number >= 1",
    "squid_backend_cache_type": f"use one of: {', '.join(CACHE_TYPES)}",
    "squid_backend_state": "use 'active' or 'drained'",
    "squid_backend_address": "set the IP address the frontends reach this host on",
    "squid_backend_icp_port_base": "set 0 (ICP off) or a port; instance i uses port_base + i",
    "squid_backend_snmp_port_base": "set 0 (SNMP off) or a port; instance i uses port_base + i",
    "carp_frontend_instances": "set 'auto' (one per vCPU) or a whole number from 1 to 64",
    "carp_frontend_port_base": "set a port from 1 to 65535; frontend instance i listens on port_base + i",
    "carp_frontend_listen_port": "set the port clients connect to (usually 3128)",
    "carp_frontend_address": "set the IP address clients reach this CARP box on",
    "carp_frontend_carp_key": f"list any of: {', '.join(KEY_PARTS)}; or [] for the whole URL",
    "carpfarm_client_networks": "list the client CIDRs allowed to use the proxy, e.g. ['192.0.2.0/24']",
    "carpfarm_allow_open_proxy": "set true or false",
    "frontend_balancer_type": f"use one of: {', '.join(BALANCER_TYPES)}",
    "frontend_balancer_mode": f"use one of: {', '.join(BALANCER_MODES)}",
    "carpfarm_wccp": "set true or false",
    "carpfarm_wccp_routers": "list the routers' IP addresses",
    "carpfarm_wccp_forwarding_method": "use 'gre' or 'l2'",
    "carpfarm_wccp_return_method": "use 'gre' or 'l2' (or leave it out: the forwarding method)",
    "carpfarm_wccp_assignment_method": "use 'hash' or 'mask'",
    "carpfarm_wccp_services": (
        "list services as {standard: 0} (web-cache) or {id: 51-255, ports: [1 to 8 ports], protocol, priority, "
        "flags, password}"
    ),
    "carpfarm_wccp_password": "set at most 8 characters (WCCPv2 MD5 security)",
    "carpfarm_wccp_weight": "set a whole number from 0 to 65535",
    "carpfarm_wccp_intercept_port_base": "set a free port; frontend instance i intercepts on port_base + i",
    "carpfarm_wccp_router_interface": "name the router's client-facing interface, e.g. GigabitEthernet0/1",
}


def _plain(value: Any) -> Any:
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
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _Vars(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=False, frozen=True)


class InstanceSpec(BaseModel):
    """One item of ``squid_backend_instances`` when it is a list."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: Name | None = None
    port: Port | None = None
    weight: Weight | None = None
    cache_size_mb: Megabytes | None = None
    cache_mem_mb: Megabytes | None = None
    state: State = "active"


def _count_or_list(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(_digits_to_int(value), int):
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
    if isinstance(value, str) and not isinstance(_digits_to_int(value), int):
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


class BackendVars(_Vars):
    """The variables a host in ``squid_backends`` may set."""

    instances: InstancesField = Field(1, alias="squid_backend_instances")
    port_base: Port = Field(4001, alias="squid_backend_port_base")
    weight: Weight = Field(1, alias="squid_backend_weight")
    cache_size_mb: Megabytes = Field(1024, alias="squid_backend_cache_size_mb")
    cache_mem_mb: Megabytes = Field(256, alias="squid_backend_cache_mem_mb")
    cache_type: CacheType = Field("aufs", alias="squid_backend_cache_type")
    state: State = Field("active", alias="squid_backend_state")
    address: str | None = Field(None, alias="squid_backend_address")
    icp_port_base: OptionalPort = Field(0, alias="squid_backend_icp_port_base")
    snmp_port_base: OptionalPort = Field(0, alias="squid_backend_snmp_port_base")


class FrontendVars(_Vars):
    """The variables a host in ``carp_frontends`` may set."""

    instances: FrontendCountField = Field("auto", alias="carp_frontend_instances")
    port_base: Port = Field(3129, alias="carp_frontend_port_base")
    listen_port: Port = Field(3128, alias="carp_frontend_listen_port")
    address: str | None = Field(None, alias="carp_frontend_address")
    carp_key: list[KeyPart] = Field(default_factory=list, alias="carp_frontend_carp_key")
    client_networks: list[str] = Field(alias="carpfarm_client_networks", min_length=1)
    allow_open_proxy: bool = Field(False, alias="carpfarm_allow_open_proxy")
    balancer_type: BalancerType = Field("iptables", alias="frontend_balancer_type")
    balancer_mode: BalancerMode = Field("random", alias="frontend_balancer_mode")
    # Optional WCCPv2 (carpfarm.wccp): routers redirect clients' web traffic to this box.
    wccp: bool = Field(False, alias="carpfarm_wccp")
    wccp_routers: list[str] = Field(default_factory=list, alias="carpfarm_wccp_routers")
    wccp_forwarding_method: Method = Field("gre", alias="carpfarm_wccp_forwarding_method")
    wccp_return_method: Method | None = Field(None, alias="carpfarm_wccp_return_method")
    wccp_assignment_method: Assignment = Field("hash", alias="carpfarm_wccp_assignment_method")
    wccp_services: list[WccpService] = Field(
        default_factory=lambda: [WccpService(standard=0)], alias="carpfarm_wccp_services"
    )
    wccp_password: str = Field("", alias="carpfarm_wccp_password", max_length=8)
    wccp_weight: Annotated[int, Number, Field(ge=0, le=65535)] = Field(10000, alias="carpfarm_wccp_weight")
    wccp_intercept_port_base: Port = Field(3229, alias="carpfarm_wccp_intercept_port_base")
    wccp_router_interface: str = Field("GigabitEthernet0/0", alias="carpfarm_wccp_router_interface")


# ---------------------------------------------------------------- the topology


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
    icp_port: int = 0
    snmp_port: int = 0

    @property
    def active(self) -> bool:
        return self.state == "active"


class BackendHost(_Frozen):
    name: str
    address: str
    instances: tuple[BackendInstance, ...]


class FrontendInstance(_Frozen):
    """One CARP Squid on a frontend box; the balancer sends connections to its port."""

    host: str
    name: str
    port: int


class FrontendHost(_Frozen):
    name: str
    address: str
    listen_port: int
    instances: tuple[FrontendInstance, ...]
    instances_setting: str  # "auto" or the count the user wrote
    vcpus: int | None  # from facts, when known
    client_networks: tuple[str, ...]
    allow_open_proxy: bool
    balancer_type: str
    balancer_mode: str
    carp_key: tuple[str, ...]
    wccp: WccpSettings | None = None


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
    def drained_peers(self) -> tuple[str, ...]:
        return tuple(i.peer_name for i in self.backend_instances if not i.active)

    def instance_by_peer(self, peer_name: str) -> BackendInstance:
        for i in self.backend_instances:
            if i.peer_name == peer_name:
                return i
        raise KeyError(peer_name)

    def route(self, url: str, down: Sequence[str] = ()) -> BackendInstance | None:
        """The backend instance the frontends forward ``url`` to (drained peers excluded)."""
        peer = self.carp_array.select(url, [*self.drained_peers, *down])
        return None if peer is None else self.instance_by_peer(peer.name)

    # ---- construction

    @classmethod
    def from_inventory(cls, groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Mapping[str, Any]]) -> Topology:
        """Validate an inventory's groups and host variables; raise ``TopologyError`` with all problems."""
        return _Builder(groups, hostvars).build()


_UNION_TAGS = ("count", "list", "auto")


def _loc_to_variable(alias: str, loc: Sequence[str | int]) -> str:
    text = alias
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part not in _UNION_TAGS:
            text += f".{part}"
    return text


def _value_at(data: Mapping[str, Any], alias: str, loc: Sequence[str | int]) -> Any:
    value: Any = data.get(alias)
    for part in loc:
        in_list = isinstance(value, list) and isinstance(part, int) and part < len(value)
        if in_list or (isinstance(value, Mapping) and part in value):
            value = value[part]
    return value


def _address_of(vars_: Mapping[str, Any], explicit: str | None, host: str) -> str:
    return str(explicit or vars_.get("ansible_host") or host)


class _Builder:
    """Builds a Topology and collects every problem on the way."""

    def __init__(self, groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Mapping[str, Any]]) -> None:
        self.groups = {name: [str(h) for h in hosts] for name, hosts in groups.items()}
        self.hostvars = hostvars
        self.problems: list[Problem] = []

    def problem(self, host: str, variable: str, message: str, fix: str, value: Any = NO_VALUE) -> None:
        self.problems.append(Problem(host, variable, message, fix, value))

    def _parse(self, model: type[_Vars], host: str) -> tuple[_Vars | None, dict[str, Any]]:
        data = _plain(dict(self.hostvars.get(host, {})))
        try:
            return model.model_validate(data), data
        except ValidationError as exc:
            fields = model.model_fields
            aliases = {name: f.alias or name for name, f in fields.items()}
            for err in exc.errors():
                loc = list(err["loc"])
                head = str(loc.pop(0)) if loc else ""
                alias = aliases.get(head, head)
                variable = _loc_to_variable(alias, loc)
                message = err["msg"]
                if err["type"] == "missing":
                    message = "is required but not set"
                elif err["type"] == "extra_forbidden":
                    message = "is not a known key"
                    fix = "remove it; instance keys are name, port, weight, cache_size_mb, cache_mem_mb, state"
                    self.problem(host, variable, message, fix, err.get("input"))
                    continue
                value = _value_at(data, alias, loc) if err["type"] != "missing" else None
                self.problem(host, variable, message[0].lower() + message[1:], FIXES.get(alias, "correct it"), value)
            return None, data

    # ---- backends

    def _backend_host(self, host: str) -> BackendHost | None:
        parsed, data = self._parse(BackendVars, host)
        if not isinstance(parsed, BackendVars):
            return None
        address = _address_of(data, parsed.address, host)
        specs = (
            [InstanceSpec() for _ in range(parsed.instances)]
            if isinstance(parsed.instances, int)
            else list(parsed.instances)
        )
        instances = []
        for n, spec in enumerate(specs):
            name = spec.name or f"backend{n + 1}"
            drained = parsed.state == "drained" or spec.state == "drained"
            instances.append(
                BackendInstance(
                    host=host,
                    name=name,
                    peer_name=f"{host}-{name}",
                    address=address,
                    port=spec.port if spec.port is not None else parsed.port_base + n,
                    weight=spec.weight or parsed.weight,
                    cache_size_mb=spec.cache_size_mb or parsed.cache_size_mb,
                    cache_mem_mb=spec.cache_mem_mb or parsed.cache_mem_mb,
                    cache_type=parsed.cache_type,
                    state="drained" if drained else "active",
                    icp_port=parsed.icp_port_base + n if parsed.icp_port_base else 0,
                    snmp_port=parsed.snmp_port_base + n if parsed.snmp_port_base else 0,
                )
            )
        self._check_address(host, "squid_backend_address", address)
        return BackendHost(name=host, address=address, instances=tuple(instances))

    # ---- frontends

    def _frontend_host(self, host: str) -> FrontendHost | None:
        parsed, data = self._parse(FrontendVars, host)
        self._check_networks(host, data)
        if not isinstance(parsed, FrontendVars):
            return None
        vcpus = data.get("ansible_processor_vcpus")
        if vcpus is None and isinstance(data.get("ansible_facts"), Mapping):
            vcpus = data["ansible_facts"].get("processor_vcpus")
        vcpus = vcpus if isinstance(vcpus, int) and not isinstance(vcpus, bool) and vcpus > 0 else None
        count = parsed.instances if isinstance(parsed.instances, int) else min(vcpus or 1, MAX_INSTANCES)
        instances = tuple(
            FrontendInstance(host=host, name=f"frontend{n + 1}", port=parsed.port_base + n) for n in range(count)
        )
        address = _address_of(data, parsed.address, host)
        self._check_address(host, "carp_frontend_address", address)
        wccp = self._wccp(host, parsed, count) if parsed.wccp else None
        return FrontendHost(
            name=host,
            address=address,
            listen_port=parsed.listen_port,
            instances=instances,
            instances_setting=str(parsed.instances),
            vcpus=vcpus,
            client_networks=tuple(parsed.client_networks),
            allow_open_proxy=parsed.allow_open_proxy,
            balancer_type=parsed.balancer_type,
            balancer_mode=parsed.balancer_mode,
            carp_key=tuple(parsed.carp_key),
            wccp=wccp,
        )

    def _wccp(self, host: str, parsed: FrontendVars, count: int) -> WccpSettings | None:
        """The box's WCCPv2 settings; every router must be an IP address, and there must be one."""
        routers = list(parsed.wccp_routers)
        for router in self.groups.get(WCCP_GROUP, []):
            data = _plain(dict(self.hostvars.get(router, {})))
            routers.append(str(data.get("wccp_router_address") or data.get("ansible_host") or router))
        bad = False
        for n, router in enumerate(routers):
            try:
                ipaddress.ip_address(router)
            except ValueError:
                bad = True
                from_var = n < len(parsed.wccp_routers)
                self.problem(
                    host,
                    f"carpfarm_wccp_routers[{n}]" if from_var else f"{WCCP_GROUP} host {router!r}",
                    "is not an IP address: WCCPv2 talks to a router's address",
                    "write the router's IP address"
                    + ("" if from_var else " (set wccp_router_address or ansible_host on that host)"),
                    router,
                )
        if parsed.balancer_type not in INTERCEPT_BALANCERS:
            bad = True
            self.problem(
                host,
                "frontend_balancer_type",
                "carpfarm_wccp needs a kernel balancer: Squid reads an intercepted connection's original "
                "destination from the kernel's NAT, which a userspace balancer in between hides",
                f"set frontend_balancer_type to {' or '.join(INTERCEPT_BALANCERS)}, or carpfarm_wccp: false",
                parsed.balancer_type,
            )
        for n, service in enumerate(parsed.wccp_services):
            if service.protocol != "tcp" or HTTPS_PORT in service.dports:
                bad = True
                self.problem(
                    host,
                    f"carpfarm_wccp_services[{n}]",
                    "redirects traffic that is not plain HTTP (UDP, or TCP port 443) to Squid's intercept port, "
                    "which would break it: carpfarm intercepts HTTP only (no ssl-bump)",
                    "list only TCP ports that carry plain HTTP, e.g. ports: [80, 8080]",
                    service.model_dump(mode="json", exclude_none=True, exclude={"password"}),
                )
        if not routers:
            self.problem(
                host,
                "carpfarm_wccp_routers",
                "carpfarm_wccp is on but no router is listed",
                f"list the routers' addresses in carpfarm_wccp_routers, or add them to the '{WCCP_GROUP}' group",
                [],
            )
            return None
        if bad:
            return None
        services = tuple(
            s if s.password or not parsed.wccp_password else s.model_copy(update={"password": parsed.wccp_password})
            for s in parsed.wccp_services
        )
        return WccpSettings(
            routers=tuple(routers),
            forwarding_method=parsed.wccp_forwarding_method,
            return_method=parsed.wccp_return_method or parsed.wccp_forwarding_method,
            assignment_method=parsed.wccp_assignment_method,
            services=services,
            weight=parsed.wccp_weight,
            intercept_ports=tuple(parsed.wccp_intercept_port_base + n for n in range(count)),
            router_interface=parsed.wccp_router_interface,
        )

    def _check_networks(self, host: str, data: Mapping[str, Any]) -> None:
        """CIDR checks on the raw list, so they report even when other variables are wrong."""
        networks = data.get("carpfarm_client_networks")
        allow_open = data.get("carpfarm_allow_open_proxy") is True
        if not isinstance(networks, list):
            return
        for n, cidr in enumerate(networks):
            if not isinstance(cidr, str):
                continue
            variable = f"carpfarm_client_networks[{n}]"
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                self.problem(
                    host, variable, "is not a valid CIDR", "write an address/prefix such as 192.0.2.0/24", cidr
                )
                continue
            if network.prefixlen == 0 and not allow_open:
                self.problem(
                    host,
                    variable,
                    "allows every address on the Internet: this would build an open proxy",
                    "list only your client networks, or set carpfarm_allow_open_proxy: true if you really mean it",
                    cidr,
                )

    def _check_address(self, host: str, variable: str, address: str) -> None:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            if not _looks_like_hostname(address):
                self.problem(
                    host,
                    variable,
                    "is neither an IP address nor a host name",
                    "set ansible_host or " + variable + " to the host's IP address",
                    address,
                )

    # ---- rules that span hosts

    def _check_ports(self, backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]) -> None:
        claims: dict[str, list[tuple[int, str, str]]] = defaultdict(list)  # host -> (port, variable, what)
        for b in backends:
            for n, i in enumerate(b.instances):
                var = f"squid_backend_instances[{n}].port"
                claims[b.name].append((i.port, var, f"backend instance '{i.name}'"))
                if i.icp_port:
                    claims[b.name].append((i.icp_port, "squid_backend_icp_port_base", f"ICP of '{i.name}'"))
                if i.snmp_port:
                    claims[b.name].append((i.snmp_port, "squid_backend_snmp_port_base", f"SNMP of '{i.name}'"))
        for f in frontends:
            claims[f.name].append((f.listen_port, "carp_frontend_listen_port", "the balancer's listen port"))
            for n, fi in enumerate(f.instances):
                claims[f.name].append((fi.port, "carp_frontend_port_base", f"frontend instance '{fi.name}' (#{n + 1})"))
            for n, port in enumerate(f.wccp.intercept_ports if f.wccp else ()):
                claims[f.name].append((port, "carpfarm_wccp_intercept_port_base", f"WCCP intercept port #{n + 1}"))
        for host, items in claims.items():
            seen: dict[int, tuple[str, str]] = {}
            for port, var, what in items:
                if port in seen:
                    other_var, other = seen[port]
                    self.problem(
                        host,
                        var,
                        f"port {port} of {what} collides with {other} ({other_var})",
                        "give every instance and listener on a host its own port "
                        "(move a port_base, or set the instance's port)",
                        port,
                    )
                else:
                    seen[port] = (var, what)

    def _check_names(self, backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]) -> None:
        by_host: dict[str, dict[str, str]] = defaultdict(dict)
        for b in backends:
            for n, i in enumerate(b.instances):
                if i.name in by_host[b.name]:
                    self.problem(
                        b.name,
                        f"squid_backend_instances[{n}].name",
                        f"instance name '{i.name}' is used twice on this host (squid -n must be unique)",
                        "give every instance on a host its own name",
                        i.name,
                    )
                by_host[b.name][i.name] = "backend"
        for f in frontends:
            for fi in f.instances:
                if by_host[f.name].get(fi.name) == "backend":
                    self.problem(
                        f.name,
                        "squid_backend_instances",
                        f"backend instance name '{fi.name}' is also a frontend instance name on this host",
                        "rename the backend instance",
                        fi.name,
                    )
        peers: dict[str, str] = {}
        for b in backends:
            for n, i in enumerate(b.instances):
                if i.peer_name in peers and peers[i.peer_name] != b.name:
                    self.problem(
                        b.name,
                        f"squid_backend_instances[{n}].name",
                        f"CARP peer name '{i.peer_name}' is also produced by host '{peers[i.peer_name]}'",
                        "rename the instance or the host: CARP peer names (host-instance) must be unique",
                        i.name,
                    )
                peers.setdefault(i.peer_name, b.name)
        endpoints: dict[tuple[str, int], BackendInstance] = {}
        for b in backends:
            for n, i in enumerate(b.instances):
                first = endpoints.setdefault((i.address, i.port), i)
                if first.host != b.name:
                    self.problem(
                        b.name,
                        f"squid_backend_instances[{n}].port",
                        f"{i.address}:{i.port} is also where peer '{first.peer_name}' listens",
                        "give each backend host its own address (ansible_host or squid_backend_address)",
                        f"{i.address}:{i.port}",
                    )

    def _check_farm(self, backends: Sequence[BackendHost], frontends: Sequence[FrontendHost]) -> None:
        instances = [i for b in backends for i in b.instances]
        if instances and not any(i.active for i in instances):
            self.problem(
                BACKEND_GROUP,
                "squid_backend_state",
                "every backend instance is drained: no request could be served",
                "leave at least one backend instance 'active'",
            )
        total = sum(i.weight for i in instances)
        starved = [i for i in instances if i.weight * 1000 < total]
        if starved and len(starved) == len(instances):
            self.problem(
                BACKEND_GROUP,
                "squid_backend_weight",
                f"all {len(instances)} backend instances have under 0.1% of the total weight: Squid's CARP "
                "zeroes every load factor, picks no parent, and every request falls back to the first parent",
                "one Squid balances at most 1000 equal-weight CARP peers: use fewer, larger instances, "
                "or split the farm behind separate CARP boxes",
            )
        elif len(starved) > 5:
            self.problem(
                BACKEND_GROUP,
                "squid_backend_weight",
                f"{len(starved)} backend instances ({', '.join(i.peer_name for i in starved[:3])}, ...) have "
                "under 0.1% of the total weight: Squid's CARP zeroes their load factors and sends them nothing",
                "raise their weights, or lower the others",
            )
        else:
            for i in starved:
                self.problem(
                    i.host,
                    "squid_backend_weight",
                    f"instance '{i.name}' has {i.weight}/{total} of the total weight, under 0.1%: "
                    "Squid's CARP zeroes its load factor and sends it nothing",
                    "raise its weight, or lower the others",
                    i.weight,
                )
        keys = {f.carp_key for f in frontends}
        if len(keys) > 1:
            self.problem(
                FRONTEND_GROUP,
                "carp_frontend_carp_key",
                f"frontends disagree on the CARP key ({sorted(keys)}): the same URL would be cached on two backends",
                "set carp_frontend_carp_key once, in group_vars/carp_frontends",
            )

    def build(self) -> Topology:
        backend_names = self.groups.get(BACKEND_GROUP, [])
        frontend_names = self.groups.get(FRONTEND_GROUP, [])
        if not backend_names:
            self.problem(
                BACKEND_GROUP,
                "groups",
                "no backend hosts: nothing would cache",
                f"add at least one host to the '{BACKEND_GROUP}' group",
            )
        if not frontend_names:
            self.problem(
                FRONTEND_GROUP,
                "groups",
                "no frontend hosts: nothing would accept clients",
                f"add at least one host to the '{FRONTEND_GROUP}' group",
            )
        for host in self.groups.get(RETIRED_GROUP, []):
            if host in backend_names:
                self.problem(
                    host,
                    "groups",
                    f"is in both '{BACKEND_GROUP}' and '{RETIRED_GROUP}'",
                    f"to retire it, remove it from '{BACKEND_GROUP}' "
                    "(drain it there first: squid_backend_state: drained)",
                )
        backends = [b for b in (self._backend_host(h) for h in backend_names) if b]
        frontends = [f for f in (self._frontend_host(h) for h in frontend_names) if f]
        self._check_ports(backends, frontends)
        self._check_names(backends, frontends)
        self._check_farm(backends, frontends)
        if self.problems:
            raise TopologyError(self.problems)
        carp_key = frontends[0].carp_key if frontends else ()
        return Topology(backends=tuple(backends), frontends=tuple(frontends), carp_key=carp_key)


def _looks_like_hostname(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return bool(name) and all(
        0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-" and all(c.isalnum() or c == "-" for c in label)
        for label in labels
    )
