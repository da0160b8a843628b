"""carpfarm's Jinja2 filters: a thin layer over the ``carpfarm`` package.

Each filter's documentation lives beside this file in ``<filter>.yml``, so that
``ansible-doc -t filter carpfarm_cache_peers`` shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from carpfarm import balancer as _balancer
    from carpfarm import judge as _judge
    from carpfarm import plan as _plan
    from carpfarm import remap as _remap
    from carpfarm import wccp as _wccp
    from carpfarm.inventory import topology_from_play
    from carpfarm.model import Topology
    from carpfarm.problems import TopologyError
except ImportError as _exc:  # pragma: no cover - only without `make setup`
    _IMPORT_ERROR: ImportError | None = _exc
else:
    _IMPORT_ERROR = None


_Map = Mapping[str, Any]


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


def _guard(func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _IMPORT_ERROR is not None:
            raise AnsibleFilterError(
                f"the carpfarm Python package is not importable ({_IMPORT_ERROR}); "
                "run 'make setup' and use .venv's ansible"
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
) -> dict[str, Any]:
    """The validated topology as plain data; fails with every problem found.

    ``check_names`` also refuses unknown and misplaced carpfarm variables, and (with the
    inventory ``sources``) group_vars/host_vars entries that reach no host."""
    return _topology(hostvars, groups, bool(check_names), list(sources or ())).model_dump(mode="json")


@_guard
def carpfarm_plan(hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """What ``carpfarm plan --json`` prints: all layers, ports, balancer rules, CARP shares."""
    return _plan.plan(_topology(hostvars, groups))


@_guard
def carpfarm_cascade(targets: int | Sequence[int], weights: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Exactly fair iptables cascade over ports (or over 0..n-1 when given a count)."""
    ports = list(range(targets)) if isinstance(targets, int) else [int(t) for t in targets]
    return [vars(rule) for rule in _balancer.cascade(ports, weights)]


@_guard
def carpfarm_frontend_ports(
    hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]], host: str
) -> list[dict[str, Any]]:
    """Frontend instance name and port for each CARP Squid on ``host``."""
    return _plan.frontend_port_map(_topology(hostvars, groups), host)


@_guard
def carpfarm_frontend(hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]], host: str) -> dict[str, Any]:
    """One CARP box as the model sees it: address, ports, balancer and its instances."""
    for box in _topology(hostvars, groups).frontends:
        if box.name == host:
            wccp = (
                {
                    "squid": _wccp.squid_stanza(box.wccp, box.address),
                    "router": _wccp.router_stanza(box.name, box.address, box.client_networks, box.wccp),
                    "dports": list(box.wccp.dports),
                    "tunnels": list(box.wccp.tunnels),
                }
                if box.wccp
                else None
            )
            return {**box.model_dump(mode="json"), "wccp_rendered": wccp}
    raise AnsibleFilterError(f"carpfarm_frontend: {host} is not in the carp_frontends group")


@_guard
def carpfarm_backend_ports(
    hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]], host: str | None = None
) -> list[dict[str, Any]]:
    """Backend instances (of ``host``, or all) with address, port, peer name and cache sizes."""
    return _plan.backend_port_map(_topology(hostvars, groups), host)


@_guard
def carpfarm_cache_peers(hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """The ordered ``cache_peer`` entries every frontend instance gets."""
    return _plan.cache_peers(_topology(hostvars, groups))


@_guard
def carpfarm_balancer(
    hostvars: Mapping[str, Any],
    groups: Mapping[str, Sequence[str]],
    host: str,
    exclude: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Balancer settings for ``host``: cascade, nftables map and userspace targets (less ``exclude`` ports)."""
    topology = _topology(hostvars, groups)
    skip = [int(port) for port in exclude or []]
    return {**_plan.balancer_rules(topology, host, skip), "targets": _plan.balancer_targets(topology, host)}


@_guard
def carpfarm_route(urls: str | Sequence[str], hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> Any:
    """The backend instance Squid's CARP picks for a URL (or a list of URLs)."""
    topology = _topology(hostvars, groups)
    one = isinstance(urls, str)
    results = []
    for url in [urls] if isinstance(urls, str) else urls:
        chosen = topology.route(str(url))
        results.append(None if chosen is None else {"url": str(url), **chosen.model_dump(mode="json")})
    return results[0] if one else results


@_guard
def carpfarm_remap(
    deployed: Mapping[str, Sequence[str]], hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]]
) -> list[str]:
    """Why the planned ``cache_peer`` list would move URLs between backends that stay, per CARP box.

    ``deployed`` maps each CARP box to the ``cache_peer`` lines it runs now (none before the first run)."""
    topology = _topology(hostvars, groups)
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
            "carpfarm_cache_peers": carpfarm_cache_peers,
            "carpfarm_balancer": carpfarm_balancer,
            "carpfarm_route": carpfarm_route,
            "carpfarm_remap": carpfarm_remap,
            "carpfarm_probe_mismatches": carpfarm_probe_mismatches,
            "carpfarm_intercept_mismatches": carpfarm_intercept_mismatches,
            "carpfarm_probe_served": carpfarm_probe_served,
            "carpfarm_change_outcome": carpfarm_change_outcome,
        }
