"""Build a ``Topology`` from an inventory's groups and host variables: parse each host's variables
against its group's declarations, run every rule (``carpfarm.model.rules``), and return the topology
or raise ``TopologyError`` with all the problems at once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from carpfarm.model import addresses, errors, haproxy_mode, smp
from carpfarm.model.hosts import (
    BackendHost,
    BackendInstance,
    FrontendHost,
    FrontendInstance,
    Topology,
    plain,
    wccp_boxes,
)
from carpfarm.model.rules import access, farm, names
from carpfarm.model.vip import VipSettings
from carpfarm.problems import NO_VALUE, Problem, TopologyError
from carpfarm.variables import (
    BACKEND_GROUP,
    DEFAULT_CACHE_ROOT,
    FRONTEND_GROUP,
    MAX_INSTANCES,
    RETIRED_GROUP,
    WCCP_GROUP,
    BackendVars,
    FarmVars,
    FrontendVars,
    InstanceSpec,
    RouterVars,
    SquidVars,
    _Vars,
)
from carpfarm.variables.fields import declared
from carpfarm.wccp import settings as wccp
from carpfarm.wccp.settings import WccpSettings


def build_topology(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    check_names: bool = False,
) -> Topology:
    """Validate an inventory's groups and host variables; raise ``TopologyError`` with all problems.

    ``check_names`` also refuses unknown and misplaced variables in carpfarm's namespaces: the
    CLI and site.yml's validate play ask for it (later plays see the roles' own registered names).
    """
    return _Builder(groups, hostvars, check_names).build()


def _written_address(vars_: Mapping[str, Any], explicit: str, host: str) -> str:
    return str(explicit or vars_.get("ansible_host") or host)


def known_vcpus(fact: Any) -> int | None:
    """ansible_processor_vcpus when it is a count of 1 or more, else None (no facts)."""
    return fact if isinstance(fact, int) and not isinstance(fact, bool) and fact > 0 else None


def frontend_count(setting: int | str, vcpus: int | None) -> int:
    """The CARP instances of a box: the count written, or for ``auto`` one per vCPU (1 without
    facts), at most MAX_INSTANCES. The one place "instances: auto" is worked out."""
    return setting if isinstance(setting, int) else min(vcpus or 1, MAX_INSTANCES)


def _instance_specs(parsed: BackendVars) -> list[InstanceSpec]:
    """squid_backend_instances as a list: a count is that many instances of the host's defaults."""
    return (
        [InstanceSpec() for _ in range(parsed.instances)]
        if isinstance(parsed.instances, int)
        else list(parsed.instances)
    )


def _backend_instance(host: str, address: str, parsed: BackendVars, n: int, spec: InstanceSpec) -> BackendInstance:
    """Instance ``n`` of a backend host: what its spec sets, else the host's values and port bases."""
    name = spec.name or f"backend{n + 1}"
    drained = parsed.state == "drained" or spec.state == "drained"
    return BackendInstance(
        host=host,
        name=name,
        peer_name=f"{host}-{name}",
        address=address,
        port=spec.port if spec.port is not None else parsed.port_base + n,
        weight=spec.weight or parsed.weight,
        cache_size_mb=spec.cache_size_mb or parsed.cache_size_mb,
        cache_mem_mb=spec.cache_mem_mb or parsed.cache_mem_mb,
        cache_type=parsed.cache_type,
        cache_dir=spec.cache_dir or f"{DEFAULT_CACHE_ROOT}/{name}",
        state="drained" if drained else "active",
        icp_port=parsed.icp_port_base + n if parsed.icp_port_base else 0,
        snmp_port=parsed.snmp_port_base + n if parsed.snmp_port_base else 0,
    )


def backend_instances(host: str, address: str, parsed: BackendVars) -> tuple[BackendInstance, ...]:
    """The Squid instances of backend ``host`` (at ``address``), in the order its variables give them."""
    return tuple(_backend_instance(host, address, parsed, n, spec) for n, spec in enumerate(_instance_specs(parsed)))


def _router_address(vars_: Mapping[str, Any], router: str) -> str:
    return _written_address(vars_, vars_.get("wccp_router_address") or "", router)


class _Builder:
    """Parses each host's variables, builds the topology, and collects every problem on the way."""

    def __init__(
        self, groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Mapping[str, Any]], check_names: bool
    ) -> None:
        self.groups = {name: [str(h) for h in hosts] for name, hosts in groups.items()}
        self.hostvars = {str(h): plain(dict(v)) for h, v in hostvars.items()}
        self.check_names = check_names
        self.problems: list[Problem] = []

    def add(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    def problem(self, host: str, variable: str, message: str, fix: str, value: Any = NO_VALUE) -> None:
        self.problems.append(Problem(host, variable, message, fix, value))

    def _parse(self, model: type[_Vars], host: str) -> _Vars | None:
        data = self.hostvars.get(host, {})
        broken = list(access.one_line(host, model, data))
        try:
            parsed = model.model_validate(data)
        except ValidationError as exc:
            refused = list(errors.problems_of(model, host, data, exc))
            told = {p.variable for p in refused}
            self.add([*refused, *(p for p in broken if p.variable not in told)])
            return None
        self.add(broken)
        if isinstance(parsed, SquidVars):
            self.add(farm.port_list(host, "carpfarm_safe_ports", parsed.safe_ports))
            self.add(farm.port_list(host, "carpfarm_ssl_ports", parsed.ssl_ports))
            self.add(addresses.cidrs(host, "carpfarm_denied_destinations", parsed.denied_destinations))
        return parsed

    def _allow_open(self, host: str) -> bool:
        """carpfarm_allow_open_proxy on ``host`` (its FarmVars; their problems are told once, when parsed)."""
        farm = self._parse(FarmVars, host)
        return farm.allow_open_proxy if isinstance(farm, FarmVars) else False

    def _address(self, host: str, variable: str, explicit: str) -> tuple[str, str]:
        """(IP literal, as written): names resolve once, here; what cannot be used is a problem."""
        written = _written_address(self.hostvars.get(host, {}), explicit, host)
        problem = addresses.address_problem(host, variable, written)
        if problem is not None:
            self.problems.append(problem)
            return written, written
        resolved = addresses.resolve(written) or written
        return resolved, "" if resolved == written else written

    # ---- backends

    def _backend_host(self, host: str) -> BackendHost | None:
        parsed = self._parse(BackendVars, host)
        self._parse(SquidVars, host)
        if not isinstance(parsed, BackendVars):
            return None
        address, written = self._address(host, "squid_backend_address", parsed.address)
        allow_open = self._allow_open(host)
        self.add(access.extra_allowed_networks(host, parsed.extra_allowed_networks, allow_open))
        self.add(access.snmp_community(host, parsed.snmp_port_base, parsed.snmp_community))
        extra = [
            ("squid_backend_extra_http_access", parsed.extra_http_access),
            ("squid_backend_extra_config", parsed.extra_config),
        ]
        admitted = [("squid_backend_extra_allowed_networks", parsed.extra_allowed_networks)]
        self.add(access.extra_access(host, extra, allow_open, admitted))
        instances = backend_instances(host, address, parsed)
        return BackendHost(name=host, address=address, address_written=written, instances=instances)

    # ---- frontends

    def _frontend_host(self, host: str) -> FrontendHost | None:
        parsed = self._parse(FrontendVars, host)
        self._parse(SquidVars, host)
        farm = self._parse(FarmVars, host)
        data = self.hostvars.get(host, {})
        balancer = (
            _balancer_type(parsed) if isinstance(parsed, FrontendVars) else str(data.get("frontend_balancer_type"))
        )
        allow_open = farm.allow_open_proxy if isinstance(farm, FarmVars) else False
        self.add(access.client_networks(host, data.get("carpfarm_client_networks"), allow_open, balancer))
        if isinstance(farm, FarmVars) and not farm.client_networks:
            self.problem(
                host,
                "carpfarm_client_networks",
                "is required but not set"
                if "carpfarm_client_networks" not in data
                else "is empty: it must list at least 1 item, the clients allowed to use the proxy",
                declared(FarmVars.model_fields["client_networks"]).fix,
                data.get("carpfarm_client_networks"),
            )
            return None
        if not isinstance(parsed, FrontendVars) or not isinstance(farm, FarmVars):
            return None
        self.add(access.balancer_type(host, parsed.balancer_type))
        extra = [
            ("carp_frontend_extra_http_access", parsed.extra_http_access),
            ("carp_frontend_extra_config", parsed.extra_config),
        ]
        admitted = [("carpfarm_client_networks", farm.client_networks)]
        self.add(access.extra_access(host, extra, allow_open, admitted, frontend=True))
        vcpus = known_vcpus(data.get("ansible_processor_vcpus"))
        count = frontend_count(parsed.instances, vcpus)
        is_smp = parsed.mode == "smp"
        is_haproxy = parsed.mode == haproxy_mode.BALANCER
        instances: tuple[FrontendInstance, ...]
        if is_smp:
            self.add(smp.problems(host, parsed))
            instances = (FrontendInstance(host=host, name=smp.INSTANCE, port=parsed.listen_port),)
        elif is_haproxy:  # no frontend Squid: HAProxy itself serves the listen port
            self.add(haproxy_mode.problems(host, parsed))
            instances = ()
        else:
            instances = tuple(
                FrontendInstance(host=host, name=f"frontend{n + 1}", port=parsed.port_base + n) for n in range(count)
            )
        address, written = self._address(host, "carp_frontend_address", parsed.address)
        wccp = self._wccp(host, parsed, count) if parsed.wccp and not (is_smp or is_haproxy) else None
        vip = self._vip(host, parsed) if parsed.vip else None
        return FrontendHost(
            name=host,
            mode=parsed.mode,
            haproxy_selection=parsed.haproxy_selection,
            workers=count if is_smp else 0,
            cpu_affinity_map=smp.affinity_map(count, vcpus) if is_smp else "",
            address=address,
            address_written=written,
            listen_port=parsed.listen_port,
            instances=instances,
            instances_setting=str(parsed.instances),
            vcpus=vcpus,
            client_networks=tuple(farm.client_networks),
            allow_open_proxy=farm.allow_open_proxy,
            balancer_type=_balancer_type(parsed),
            balancer_mode=parsed.balancer_mode,
            haproxy_stats_port=parsed.haproxy_stats_port,
            watch=parsed.watch,
            carp_key=tuple(parsed.carp_key),
            wccp=wccp,
            vip=vip,
        )

    def _wccp(self, host: str, parsed: FrontendVars, count: int) -> WccpSettings | None:
        """The box's WCCPv2 settings; their problems join the inventory's."""
        settings, problems = WccpSettings.from_vars(host, parsed, self._wccp_group_routers(), count)
        self.add(problems)
        return settings

    def _vip(self, host: str, parsed: FrontendVars) -> VipSettings | None:
        """The box's share in a floating address; its problems join the inventory's."""
        settings, problems = VipSettings.from_vars(host, parsed)
        self.add(problems)
        return settings

    def _other_addresses(self) -> dict[str, str]:
        """The written addresses of the farm's hosts that build nothing here: retired backends and
        WCCP routers (names are left as written: no floating address is a name)."""
        retired = {}
        for host in self.groups.get(RETIRED_GROUP, []):
            vars_ = self.hostvars.get(host, {})
            retired[host] = _written_address(vars_, vars_.get("squid_backend_address") or "", host)
        routers = {f"{WCCP_GROUP} {r}": r for r in self._wccp_group_routers()}
        return {**retired, **routers}

    def _wccp_group_routers(self) -> list[str]:
        """The address of each host in the wccp_routers group: wccp_router_address, ansible_host or its name."""
        return [_router_address(self.hostvars.get(router, {}), router) for router in self.groups.get(WCCP_GROUP, [])]

    # ---- the whole farm

    def build(self) -> Topology:
        self.add(names.layers_present(self.groups))
        self.add(names.retired_apart(self.groups))
        if self.check_names:
            self.add(names.variable_names(self.groups, self.hostvars))
        self._parse_other_hosts()
        backends = [b for b in (self._backend_host(h) for h in self.groups.get(BACKEND_GROUP, [])) if b]
        frontends = [f for f in (self._frontend_host(h) for h in self.groups.get(FRONTEND_GROUP, [])) if f]
        self.add(farm.ports_in_range(backends, frontends))
        self.add(farm.ports_distinct(backends, frontends))
        self.add(farm.instance_names(backends, frontends))
        self.add(farm.farm_can_serve(backends))
        self.add(farm.frontends_agree(frontends))
        self.add(haproxy_mode.farm_problems(backends, frontends))
        self.add(wccp.service_group_problems(wccp_boxes(frontends)))
        boxes = len(self.groups.get(FRONTEND_GROUP, []))
        self.add(farm.floating_addresses(backends, frontends, self._other_addresses(), boxes))
        if self.problems:
            raise TopologyError(_unique(self.problems))
        carp_key = frontends[0].carp_key if frontends else ()
        return Topology(backends=tuple(backends), frontends=tuple(frontends), carp_key=carp_key)

    def _parse_other_hosts(self) -> None:
        """Check the variables of hosts that build nothing here: a backend's farm variables (a CARP
        box's are read with its own), retired backends, and WCCP routers."""
        frontend_names = self.groups.get(FRONTEND_GROUP, [])
        for host in self.groups.get(BACKEND_GROUP, []):
            if host not in frontend_names:
                self._parse(FarmVars, host)
        for host in self.groups.get(RETIRED_GROUP, []):
            parsed = self._parse(BackendVars, host)
            if isinstance(parsed, BackendVars):  # its cache_dirs are what a purge would delete
                self.add(farm.cache_dirs(host, backend_instances(host, "", parsed)))
        for host in self.groups.get(WCCP_GROUP, []):
            self._parse(RouterVars, host)


def _balancer_type(parsed: FrontendVars) -> str:
    """What the frontend_balancer role builds for the box: nothing in smp mode, HAProxy (its HTTP
    configuration) in haproxy mode, else frontend_balancer_type."""
    if parsed.mode == "smp":
        return smp.NO_BALANCER
    if parsed.mode == haproxy_mode.BALANCER:
        return haproxy_mode.BALANCER
    return parsed.balancer_type


def _unique(problems: Sequence[Problem]) -> list[Problem]:
    """The same problem reached twice (a host in two groups) is told once."""
    return list({str(p): p for p in problems}.values())
