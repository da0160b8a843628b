"""What ``carpfarm plan`` shows of each CARP box: its instances and balancer rules, the rules in the
balancer's own terms (``balancer_config``: the iptables statistic cascade, the nftables numgen map,
HAProxy's server lines), whether carpfarm-watch keeps them (``watch``), and the floating address it
shares (``vip``).

The forms are those the frontend_balancer role writes (``carpfarm.box.kernelrules`` for the kernel
balancers, the role's haproxy.cfg template for HAProxy); tests/cli/test_plan_output.py holds each to
the rendered file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from carpfarm.box import balancer
from carpfarm.box.balancer import naive_shares
from carpfarm.box.kernelrules import DEFAULT_NAMES, Ruleset
from carpfarm.model import FrontendHost, Topology
from carpfarm.plan.views import Target, balancer_rules, balancer_targets, frontend_port_map, wccp_router_stanza
from carpfarm.plan.vrrp import vip_group
from carpfarm.wccp import settings as wccp


class BalancerConfig(TypedDict):
    """A box's balancer rules as its own configuration says them: ``column`` names what ``per_instance``
    holds (one entry per frontend instance, in their order), ``lines`` are the rules themselves."""

    type: str
    column: str
    per_instance: list[str]
    lines: list[str]


def frontend_plan(topology: Topology, box: FrontendHost) -> dict[str, Any]:
    """One CARP box as ``carpfarm plan --json`` gives it."""
    rules = balancer_rules(topology, box.name)
    n = len(box.instances)
    return {
        "host": box.name,
        "address": box.address,
        "listen_port": box.listen_port,
        "mode": box.mode,
        "workers": box.workers,
        "cpu_affinity_map": box.cpu_affinity_map,
        "instances_setting": box.instances_setting,
        "vcpus": box.vcpus,
        "client_networks": list(box.client_networks),
        "instances": frontend_port_map(topology, box.name),
        "balancer": rules,
        "balancer_config": balancer_config(rules, balancer_targets(topology, box.name)),
        "haproxy_selection": box.haproxy_selection if box.mode == "haproxy" else None,
        "watch": watch_runs(box),
        "vip": vip_group(topology.frontends, box.name),
        "naive_wiki_shares": naive_shares(n, 0.25) if n > 1 and box.mode == "instances" else [1.0],
        "wccp": None
        if box.wccp is None
        else {
            "settings": wccp.shown_settings(box.wccp),
            "squid": wccp.squid_stanza(box.wccp, box.address, masked=True),
            "router": wccp_router_stanza(topology, box.name),
        },
    }


def watch_runs(box: FrontendHost) -> bool | None:
    """Whether carpfarm-watch keeps the box's kernel rules on the instances that answer
    (``frontend_balancer_watch``); None where there is no kernel balancer to keep (HAProxy checks its
    servers itself, an SMP box has no balancer)."""
    if box.mode != "instances" or balancer.kind(box.balancer_type).rules is None:
        return None
    return box.watch


def balancer_config(rules: Ruleset, targets: Sequence[Target]) -> BalancerConfig:
    """The balancer's rules in its own terms, for a box's ``balancer_rules`` and ``balancer_targets``."""
    if not rules["cascade"]:  # SMP or haproxy mode: no balancer in front of frontend instances
        return BalancerConfig(type=rules["type"], column="", per_instance=[], lines=[])
    if rules["type"] == "nftables":
        return _nftables(rules)
    if rules["type"] == "haproxy":
        return _haproxy(rules, targets)
    return _iptables(rules)


def _iptables(rules: Ruleset) -> BalancerConfig:
    """Each instance's ``statistic`` probability as iptables-save prints it, and the cascade's rules
    as carpfarm.box.kernelrules writes them."""
    chain = DEFAULT_NAMES.chain
    lines = [
        f"-A {chain} -p tcp{iptables_match(rule, rules['mode'])} -j REDIRECT --to-ports {rule['target']}"
        for rule in rules["cascade"]
    ]
    return BalancerConfig(
        type="iptables",
        column="iptables",
        per_instance=["-" if rule["last"] else rule["iptables_probability"] for rule in rules["cascade"]],
        lines=lines,
    )


def iptables_match(rule: Mapping[str, Any], mode: str) -> str:
    """How a cascade rule picks its connections in iptables: every nth, at random, or (last) the rest."""
    if rule["last"]:
        return ""
    if mode == "roundrobin":
        return f" -m statistic --mode nth --every {rule['every']} --packet 0"
    return f" -m statistic --mode random --probability {rule['iptables_probability']}"


def nft_spread(rules: Mapping[str, Any]) -> str:
    """The ``numgen`` expression the nftables rules redirect by, as carpfarm.box.kernelrules writes it."""
    generator = "inc" if rules["mode"] == "roundrobin" else "random"
    entries = ", ".join(f"{entry['key']} : {entry['port']}" for entry in rules["nft_map"])
    return f"numgen {generator} mod {rules['nft_modulus']} map {{ {entries} }}"


def _nftables(rules: Ruleset) -> BalancerConfig:
    """Each instance's key (or key range) in the numgen map, and the expression itself."""
    keys = {entry["port"]: entry["key"] for entry in rules["nft_map"]}
    return BalancerConfig(
        type="nftables",
        column="numgen key",
        per_instance=[keys[rule["target"]] for rule in rules["cascade"]],
        lines=[nft_spread(rules)],
    )


def haproxy_balance(mode: str) -> str:
    """HAProxy's ``balance`` algorithm for ``frontend_balancer_mode``, as the role's haproxy.cfg sets it."""
    return "roundrobin" if mode == "roundrobin" else "random"


def _haproxy(rules: Ruleset, targets: Sequence[Target]) -> BalancerConfig:
    """The ``server`` line of each instance, after the backend's ``balance`` line."""
    servers = [f"server {target['name']} {target['endpoint']}" for target in targets]
    return BalancerConfig(
        type="haproxy",
        column="server",
        per_instance=servers,
        lines=[f"balance {haproxy_balance(rules['mode'])}", *servers],
    )
