"""carpfarm's Jinja2 filters: a thin layer over the ``carpfarm`` package.

Each filter's documentation lives beside this file in ``<filter>.yml``, so that
``ansible-doc -t filter carpfarm_cache_peers`` shows it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

# Installed as the carpfarm.farm collection (lab/build-collection.py), the package ships in the
# collection's python/ directory, found here when no installed carpfarm is (in the checkout, .venv has it).
_BUNDLED = Path(__file__).resolve().parents[2] / "python"
if find_spec("carpfarm") is None and (_BUNDLED / "carpfarm").is_dir():
    sys.path.append(str(_BUNDLED))

try:
    from carpfarm import box as _box
    from carpfarm import plan as _plan
    from carpfarm.box import balancer as _balancer
    from carpfarm.box import health as _health
    from carpfarm.box import kernelrules as _kernelrules
    from carpfarm.inventory import topology_from_play
    from carpfarm.lab import judge as _judge
    from carpfarm.lab import watchlog as _watchlog
    from carpfarm.model import Topology, plain
    from carpfarm.plan import destinations as _destinations
    from carpfarm.plan import haproxy as _haproxy
    from carpfarm.plan import remap as _remap
    from carpfarm.plan import vrrp as _vrrp
    from carpfarm.plan import watch as _watch
    from carpfarm.problems import TopologyError
    from carpfarm.wccp import settings as _wccp
except ImportError as _exc:  # pragma: no cover - only without `make setup`
    _IMPORT_ERROR: ImportError | None = _exc
else:
    _IMPORT_ERROR = None


_Map = Mapping[str, Any]


# carpfarm_topology marks its result, so that the other filters can take it in place of
# hostvars and groups: a play builds the model once and passes it on.
_FORMAT_KEY = "carpfarm_topology_format"
_FORMAT = 1


def _topology(
    hostvars: Mapping[str, Any],
    groups: Mapping[str, Sequence[str]],
    check_names: bool = False,
    sources: Sequence[str] = (),
) -> Topology:
    try:
        return topology_from_play(groups, hostvars, check_names=check_names, sources=sources)
    except TopologyError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def _is_dump(source: Any) -> bool:
    return isinstance(source, dict) and _FORMAT_KEY in source


def _farm(name: str, source: Any, args: Sequence[Any]) -> tuple[Topology, list[Any]]:
    """The topology and the filter's remaining arguments.

    ``source`` is what carpfarm_topology returned, or the play's hostvars followed by its groups."""
    if _is_dump(source):
        if source[_FORMAT_KEY] != _FORMAT:
            raise AnsibleFilterError(
                f"{name}: the topology given was made by another carpfarm version "
                f"(format {source[_FORMAT_KEY]!r}, this one reads {_FORMAT}); "
                "build it again with hostvars | carpfarm_topology(groups)"
            )
        data = {k: v for k, v in plain(dict(source)).items() if k != _FORMAT_KEY}
        return Topology.model_validate(data), list(args)
    if not args or not isinstance(args[0], Mapping):
        raise AnsibleFilterError(
            f"{name}: give it the play's hostvars and groups (hostvars | {name}(groups, ...)), "
            f"or a topology from carpfarm_topology (topology | {name}(...))"
        )
    return _topology(source, args[0]), list(args[1:])


def _host(name: str, rest: Sequence[Any]) -> str:
    """The one host name left after the farm's arguments."""
    if len(rest) != 1:
        raise AnsibleFilterError(f"{name}: name one inventory host after the farm (got {len(rest)} arguments)")
    return str(rest[0])


def _guard(func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _IMPORT_ERROR is not None:
            raise AnsibleFilterError(
                f"the carpfarm Python package is not importable ({_IMPORT_ERROR}); "
                "run 'make setup' and use .venv's ansible (installed as the carpfarm.farm collection: "
                "pip install the collection's requirements.txt into ansible's Python)"
            )
        try:
            return func(*args, **kwargs)
        except (KeyError, ValueError) as exc:
            if isinstance(exc, AnsibleFilterError):
                raise
            raise AnsibleFilterError(f"{func.__name__.removeprefix('_')}: {exc}") from exc

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


@_guard
def carpfarm_topology(
    hostvars: Mapping[str, Any],
    groups: Mapping[str, Sequence[str]],
    check_names: bool = False,
    sources: Sequence[str] = (),
    report: bool = False,
) -> dict[str, Any]:
    """The validated topology as plain data; fails with every problem found.

    The other filters take the result in place of ``hostvars`` and ``groups``. ``check_names``
    also refuses unknown and misplaced carpfarm variables, and (with the inventory ``sources``)
    every warning Ansible gives about them and group_vars/host_vars entries that reach no host.
    With ``report``, an invalid inventory is not a failure: the result is ``{problems: [...],
    report: "..."}`` (each problem once, and the report that lists them), for a play to print once."""
    try:
        topology = topology_from_play(groups, hostvars, check_names=bool(check_names), sources=list(sources or ()))
    except TopologyError as exc:
        if report:
            return {"problems": [str(p) for p in exc.problems], "report": str(exc)}
        raise AnsibleFilterError(str(exc)) from exc
    return {**_masked(topology.model_dump(mode="json")), _FORMAT_KEY: _FORMAT}


def _masked(dump: dict[str, Any]) -> dict[str, Any]:
    """A topology's plain data with every WCCP service password shown as set (``<set>``), never in the
    clear: what the filters return becomes facts, which ``-v`` prints. (The VRRP password is excluded
    by its model.) Only carpfarm_wccp_squid, inside the squid.conf template, writes the password."""
    for box in dump.get("frontends", []):
        _mask_services(box.get("wccp"))
    return dump


def _mask_services(wccp: Any) -> None:
    for service in (wccp or {}).get("services", []):
        if service.get("password"):
            service["password"] = _wccp.MASKED


@_guard
def carpfarm_plan(source: Any, *args: Any) -> dict[str, Any]:
    """What ``carpfarm plan --json`` prints: all layers, ports, balancer rules, CARP shares."""
    topology, _ = _farm("carpfarm_plan", source, args)
    return _plan.plan(topology)


@_guard
def carpfarm_cascade(targets: int | Sequence[int], weights: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Exactly fair iptables cascade over ports (or over 0..n-1 when given a count)."""
    ports = list(range(targets)) if isinstance(targets, int) else [int(t) for t in targets]
    return [vars(rule) for rule in _balancer.cascade(ports, weights)]


@_guard
def carpfarm_frontend_ports(source: Any, *args: Any) -> list[dict[str, Any]]:
    """Frontend instance name and port for each CARP Squid on ``host``."""
    topology, rest = _farm("carpfarm_frontend_ports", source, args)
    host = _host("carpfarm_frontend_ports", rest)
    return _plan.frontend_port_map(topology, host)


@_guard
def carpfarm_frontend(source: Any, *args: Any) -> dict[str, Any]:
    """One CARP box as the model sees it: address, ports, balancer and its instances."""
    topology, rest = _farm("carpfarm_frontend", source, args)
    host = _host("carpfarm_frontend", rest)
    if host not in {box.name for box in topology.frontends}:
        raise AnsibleFilterError(f"carpfarm_frontend: {host} is not in the carp_frontends group")
    return dict(_plan.views.frontend_view(topology, host))


@_guard
def carpfarm_wccp_squid(hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]], host: str) -> list[str]:
    """The ``wccp2_*`` lines of CARP box ``host``'s WCCP-speaking instance, passwords included.

    For the squid.conf template only (rendered with diff off): never set a fact from it."""
    if _is_dump(hostvars):
        raise AnsibleFilterError(
            "carpfarm_wccp_squid: give it the play's hostvars and groups; a topology from carpfarm_topology "
            "holds no WCCP password (it is masked there)"
        )
    topology = _topology(hostvars, groups)
    box = next((b for b in topology.frontends if b.name == host), None)
    if box is None:
        raise AnsibleFilterError(f"carpfarm_wccp_squid: {host} is not in the carp_frontends group")
    return _wccp.squid_stanza(box.wccp, box.address) if box.wccp else []


@_guard
def carpfarm_own_destinations(source: Any, *args: Any) -> dict[str, list[str]]:
    """What no request through the farm may reach: link-local networks and every farm host's
    address (CARP boxes, floating addresses, backends)."""
    topology, _ = _farm("carpfarm_own_destinations", source, args)
    return _destinations.own_destinations(topology)


@_guard
def carpfarm_backend_ports(source: Any, *args: Any) -> list[dict[str, Any]]:
    """Backend instances (of ``host``, or all) with address, port, peer name and cache sizes."""
    topology, rest = _farm("carpfarm_backend_ports", source, args)
    return _plan.backend_port_map(topology, str(rest[0]) if rest and rest[0] is not None else None)


@_guard
def carpfarm_cache_peers(source: Any, *args: Any, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The ordered ``cache_peer`` entries every frontend instance gets; with ``options``, each one's line."""
    topology, _ = _farm("carpfarm_cache_peers", source, args)
    peer_options = None if options is None else _plan.PeerOptions.from_mapping(plain(dict(options)))
    return _plan.cache_peers(topology, peer_options)


@_guard
def carpfarm_balancer(source: Any, *args: Any, exclude: Sequence[int] | None = None) -> dict[str, Any]:
    """Balancer settings for ``host``: cascade, nftables map and userspace targets (less ``exclude`` ports)."""
    topology, rest = _farm("carpfarm_balancer", source, args)
    host = _host("carpfarm_balancer", rest)
    skip = [int(port) for port in exclude or []]
    return dict(_plan.views.balancer_view(topology, host, skip))


@_guard
def carpfarm_kernel_rules(ruleset: _Map, kind: str, host: str, managed: str) -> str:
    """The kernel balancer's rules file (``iptables`` or ``nftables``) for a ruleset from carpfarm_balancer,
    with the chains and table it names."""
    rules = plain(dict(ruleset))
    return _kernelrules.render(str(kind), rules, _kernelrules.names_of(rules), str(host), str(managed))


@_guard
def carpfarm_watch_config(
    ruleset: _Map,
    host: str,
    managed: str,
    probe: _Map | None = None,
    **files: str,
) -> dict[str, Any]:
    """carpfarm-watch's configuration for the full ruleset of carpfarm_balancer (every instance)."""
    names = _kernelrules.names_of(plain(dict(ruleset)))
    probing = _health.Probing(**plain(dict(probe or {})))
    paths = {str(k): str(v) for k, v in files.items()}
    return _watch.config_data(plain(dict(ruleset)), str(host), str(managed), names, probing, **paths)


@_guard
def carpfarm_box_modules(directory: str, purpose: str = "watch") -> list[dict[str, str]]:
    """The carpfarm modules a host runs for ``purpose`` (watch, wccp-router; standard library only),
    to copy under ``directory``: [{path, content}]."""
    return [{"path": f"{directory}/{path}", "content": source} for path, source in _box.copies(str(purpose)).items()]


@_guard
def carpfarm_route(urls: str | Sequence[str], source: Any, *args: Any) -> Any:
    """The backend instance Squid's CARP picks for a URL (or a list of URLs)."""
    topology, _ = _farm("carpfarm_route", source, args)
    one = isinstance(urls, str)
    results = []
    for url in [urls] if isinstance(urls, str) else urls:
        chosen = topology.route(str(url))
        results.append(None if chosen is None else {"url": str(url), **chosen.model_dump(mode="json")})
    return results[0] if one else results


@_guard
def carpfarm_remap(deployed: Mapping[str, Sequence[str]], source: Any, *args: Any) -> list[str]:
    """Why the planned ``cache_peer`` list would move URLs between backends that stay, per CARP box.

    ``deployed`` maps each CARP box to the ``cache_peer`` lines it runs now (none before the first run)."""
    topology, _ = _farm("carpfarm_remap", source, args)
    problems = []
    for box, lines in deployed.items():
        problems += _remap.remap_problems(str(box), _remap.deployed_peers(str(line) for line in lines), topology)
    return [str(p) for p in problems]


@_guard
def carpfarm_probe_mismatches(rows_by_box: Mapping[str, Sequence[Any]], predicted: Sequence[str]) -> list[str]:
    """Requests (carpfarm-probe.py rows per CARP box) not served as predicted, MISS first then HIT."""
    rows = {str(box): _judge.parse_rows(lines) for box, lines in rows_by_box.items()}
    return _judge.farm_mismatches(rows, [str(peer) for peer in predicted])


@_guard
def carpfarm_intercept_mismatches(rows: Sequence[Any], predicted: Sequence[str], box: str) -> list[str]:
    """Redirected requests (carpfarm-probe.py rows) that missed ``box`` or their predicted backend, MISS then HIT."""
    return _judge.intercept_mismatches(_judge.parse_rows(rows), [str(peer) for peer in predicted], str(box))


@_guard
def carpfarm_probe_served(rows: Sequence[Any]) -> dict[str, list[str]]:
    """Each URL's ``[verdict, backend]`` from carpfarm-probe.py rows (``[failed, status N]`` without a verdict)."""
    return _judge.served_by(_judge.parse_rows(rows))


@_guard
def carpfarm_change_outcome(urls: Sequence[str], served: _Map, predicted: _Map, served_before: _Map) -> dict[str, Any]:
    """URLs served elsewhere than predicted after a change, and how many moved or stayed (and were HITs)."""
    return _judge.change_outcome(urls, served, predicted, served_before)


@_guard
def carpfarm_watch_out_and_back(lines: Sequence[Any], port: int, since: float) -> dict[str, float | None]:
    """Seconds from ``since`` until carpfarm-watch's rules took ``port`` out, and put it back."""
    return _watchlog.out_and_back([str(line) for line in lines], int(port), float(since))


@_guard
def carpfarm_vrrp(source: Any, *args: Any, facts: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """keepalived's settings on one CARP box (None when it shares no floating address)."""
    topology, rest = _farm("carpfarm_vrrp", source, args)
    host = _host("carpfarm_vrrp", rest)
    if host not in {f.name for f in topology.frontends}:
        raise AnsibleFilterError(f"carpfarm_vrrp: {host} is not in the carp_frontends group")
    return _vrrp.keepalived_view(topology.frontends, host, plain(dict(facts or {})))


@_guard
def carpfarm_vrrp_settled(state_text: str, vrrp: Mapping[str, Any]) -> bool:
    """Whether a box's VRRP state (its clock, then the notify script's file) is settled in its group."""
    return _vrrp.settled(str(state_text), str(vrrp["instance"]), int(vrrp["advert_interval"]))


@_guard
def carpfarm_vrrp_holders(boxes: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Floating address -> the CARP boxes that are MASTER for it ({host, vrrp, state} per box)."""
    return _vrrp.holders([plain(dict(b)) for b in boxes])


@_guard
def carpfarm_haproxy_maint(lines: Sequence[Any]) -> list[str]:
    """The servers HAProxy's ``show servers state`` lists as put in maintenance by an operator."""
    return _haproxy.servers_in_maintenance(str(line) for line in lines)


@_guard
def carpfarm_wccp_squid_defects(text: str) -> dict[str, Any]:
    """The Squid release in ``text`` (``squid -v`` or a Debian package version) and the WCCPv2
    handshake defects a stock build of it has."""
    version = _wccp.squid_version(str(text))
    defects = [] if version is None else _wccp.handshake_defects(version)
    return {
        "version": None if version is None else ".".join(map(str, version)),
        "defects": [{"what": what, "fix": fix} for what, fix in defects],
    }


class FilterModule:
    """carpfarm filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "carpfarm_topology": carpfarm_topology,
            "carpfarm_plan": carpfarm_plan,
            "carpfarm_cascade": carpfarm_cascade,
            "carpfarm_frontend": carpfarm_frontend,
            "carpfarm_frontend_ports": carpfarm_frontend_ports,
            "carpfarm_backend_ports": carpfarm_backend_ports,
            "carpfarm_own_destinations": carpfarm_own_destinations,
            "carpfarm_cache_peers": carpfarm_cache_peers,
            "carpfarm_balancer": carpfarm_balancer,
            "carpfarm_kernel_rules": carpfarm_kernel_rules,
            "carpfarm_route": carpfarm_route,
            "carpfarm_remap": carpfarm_remap,
            "carpfarm_probe_mismatches": carpfarm_probe_mismatches,
            "carpfarm_intercept_mismatches": carpfarm_intercept_mismatches,
            "carpfarm_probe_served": carpfarm_probe_served,
            "carpfarm_change_outcome": carpfarm_change_outcome,
            "carpfarm_haproxy_maint": carpfarm_haproxy_maint,
            "carpfarm_vrrp": carpfarm_vrrp,
            "carpfarm_vrrp_settled": carpfarm_vrrp_settled,
            "carpfarm_vrrp_holders": carpfarm_vrrp_holders,
            "carpfarm_watch_config": carpfarm_watch_config,
            "carpfarm_box_modules": carpfarm_box_modules,
            "carpfarm_watch_out_and_back": carpfarm_watch_out_and_back,
            "carpfarm_wccp_squid": carpfarm_wccp_squid,
            "carpfarm_wccp_squid_defects": carpfarm_wccp_squid_defects,
        }
