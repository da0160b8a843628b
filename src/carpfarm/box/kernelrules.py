"""The kernel balancers' rules files, as text: iptables-restore input and an nftables table.

The frontend_balancer role prints these through the ``carpfarm_kernel_rules`` filter, and
``carpfarm.box.watch`` prints them on the CARP box for whichever instances are alive, so both write
the same bytes for the same instances. Standard library only: this module runs on the box,
where plain ``python3`` is all there is.

A ruleset is the dict ``carpfarm.plan.balancer_rules`` returns. Its *base* (``base_ruleset``)
is that dict without the fair parts (``cascade``, ``nft_modulus``, ``nft_map``, and the same
under ``intercept``) and with the instances' ``ports`` in order; ``ruleset_for`` puts the fair
parts back for any subset of live ports, the way ``balancer_rules(..., exclude=...)`` does.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from carpfarm.box.balancer import cascade, nft_map

KINDS = ("iptables", "nftables")
FAIR_KEYS = ("cascade", "nft_modulus", "nft_map")

_IPTABLES_HEAD = """\
# carpfarm frontend balancer for {host}: iptables-restore --noflush input.
# Declaring the chain flushes only it; other rules on the host are left alone.
# Rule i matches with w_i / sum(w_j, j >= i) of what reaches it, so every instance gets exactly its share:
"""

_IPTABLES_WCCP_HEAD = """\
# WCCPv2 ({method}): what the routers send here is for another address. Connections from
# carpfarm_client_networks to the services' ports{through} are spread
# over the frontends' intercept ports exactly like the balancer's; nothing else is taken.
:{chain} - [0:0]
:{chain}_SPREAD - [0:0]
"""

_IPTABLES_GUARD = """\
*filter
# The intercept ports take only connections the rules above redirected: a client that connects
# to one directly (no NAT record) would make Squid fetch from itself.
:{chain}_GUARD - [0:0]
-A {chain}_GUARD -p tcp -m multiport --dports {ports} -m conntrack ! --ctstate DNAT -j DROP
COMMIT
"""

_NFT_HEAD = """\
# carpfarm frontend balancer for {host}: one table, replaced atomically by `nft -f`.
table inet {table}
delete table inet {table}
table inet {table} {{
    # Clients from the network.
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        fib daddr type local tcp dport {listen} counter redirect to :{spread}
"""

_NFT_WCCP = """\
        # WCCPv2 ({method}): connections the routers send here for another address, from
        # carpfarm_client_networks to the services' ports, spread over the intercept ports alike.
"""

_NFT_OUTPUT = """\
    }}
    # Clients on the box itself.
    chain output {{
        type nat hook output priority -100; policy accept;
        fib daddr type local tcp dport {listen} counter redirect to :{spread}
    }}
"""

_NFT_GUARD = """\
    # The intercept ports take only connections redirected above: a client that connects to
    # one directly (no NAT record) would make Squid fetch from itself.
    chain wccp_guard {{
        type filter hook input priority filter; policy accept;
        tcp dport {{ {ports} }} ct status & dnat == 0 counter drop
    }}
"""


@dataclass(frozen=True)
class Names:
    """What the role calls its chains and table on the host (frontend_balancer's vars/main.yml)."""

    chain: str = "CARPFARM_BALANCE"
    wccp_chain: str = "CARPFARM_WCCP"
    table: str = "carpfarm"


DEFAULT_NAMES = Names()


def render(kind: str, ruleset: Mapping[str, Any], names: Names, host: str, managed: str) -> str:
    """The rules file of ``kind`` (iptables or nftables); ``managed`` is ``ansible_managed | comment``."""
    if kind == "iptables":
        return iptables_rules(ruleset, names, host, managed)
    if kind == "nftables":
        return nft_rules(ruleset, names, host, managed)
    raise ValueError(f"no kernel rules of kind {kind!r}: use one of {', '.join(KINDS)}")


# ---------------------------------------------------------------- iptables


def iptables_rules(ruleset: Mapping[str, Any], names: Names, host: str, managed: str) -> str:
    """iptables-restore --noflush input: the balancer chain, and the WCCP chains when intercepting."""
    wccp = ruleset["intercept"]
    parts = [_managed(managed), _IPTABLES_HEAD.format(host=host)]
    parts += [
        f"#   :{rule['target']}  share {rule['share']:.6f}  realised {rule['realised_share']:.9f}\n"
        for rule in ruleset["cascade"]
    ]
    parts += ["*nat\n", f":{names.chain} - [0:0]\n", _cascade(names.chain, ruleset["cascade"], ruleset["mode"])]
    if wccp:
        parts.append(_iptables_wccp(ruleset, wccp, names.wccp_chain))
    parts.append("COMMIT\n")
    if wccp:
        parts.append(_IPTABLES_GUARD.format(chain=names.wccp_chain, ports=_join(wccp["ports"], ",")))
    return "".join(parts)


def _cascade(chain: str, rules: Sequence[Mapping[str, Any]], mode: str) -> str:
    """The statistic cascade that spreads over the rules' targets, one rule a line."""
    lines = []
    for rule in rules:
        if rule["last"]:
            match = ""
        elif mode == "roundrobin":
            match = f" -m statistic --mode nth --every {rule['every']} --packet 0"
        else:
            match = f" -m statistic --mode random --probability {rule['iptables_probability']}"
        lines.append(f"-A {chain} -p tcp{match} -j REDIRECT --to-ports {rule['target']}\n")
    return "".join(lines)


def _iptables_wccp(ruleset: Mapping[str, Any], wccp: Mapping[str, Any], chain: str) -> str:
    """The WCCP selection chain (client networks, services' ports, tunnels) and its spread."""
    interfaces = wccp["interfaces"]
    through = " through the GRE tunnels" if interfaces else ""
    lines = [_IPTABLES_WCCP_HEAD.format(method=wccp["method"], through=through, chain=chain)]
    for network in ruleset["client_networks_v4"]:
        for interface in interfaces or [""]:
            arrival = f" -i {interface}" if interface else ""
            lines.append(
                f"-A {chain} -s {network}{arrival} -p tcp -m multiport --dports {_join(wccp['dports'], ',')}"
                f" -m addrtype ! --dst-type LOCAL -j {chain}_SPREAD\n"
            )
    lines.append(_cascade(f"{chain}_SPREAD", wccp["cascade"], ruleset["mode"]))
    return "".join(lines)


# ---------------------------------------------------------------- nftables


def nft_rules(ruleset: Mapping[str, Any], names: Names, host: str, managed: str) -> str:
    """One ``inet`` table that ``nft -f`` replaces atomically."""
    wccp = ruleset["intercept"]
    spread = _nft_spread(ruleset, ruleset["mode"])
    parts = [
        _managed(managed),
        _NFT_HEAD.format(host=host, table=names.table, listen=ruleset["listen_port"], spread=spread),
    ]
    if wccp:
        parts.append(_nft_wccp(ruleset, wccp))
    parts.append(_NFT_OUTPUT.format(listen=ruleset["listen_port"], spread=spread))
    if wccp:
        parts.append(_NFT_GUARD.format(ports=_join(wccp["ports"], ", ")))
    parts.append("}\n")
    return "".join(parts)


def _nft_spread(rules: Mapping[str, Any], mode: str) -> str:
    """``numgen ... mod M map { k : port, ... }`` over the rules' map."""
    generator = "inc" if mode == "roundrobin" else "random"
    entries = ", ".join(f"{entry['key']} : {entry['port']}" for entry in rules["nft_map"])
    return f"numgen {generator} mod {rules['nft_modulus']} map {{ {entries} }}"


def _nft_wccp(ruleset: Mapping[str, Any], wccp: Mapping[str, Any]) -> str:
    """The prerouting rules that take WCCP-redirected connections, one per client network."""
    interfaces = f" iifname {{ {_join(wccp['interfaces'], ', ')} }}" if wccp["interfaces"] else ""
    spread = _nft_spread(wccp, ruleset["mode"])
    lines = [_NFT_WCCP.format(method=wccp["method"])]
    lines += [
        f"        ip saddr {network}{interfaces} fib daddr type != local tcp dport {{ {_join(wccp['dports'], ', ')} }}"
        f" counter redirect to :{spread}\n"
        for network in ruleset["client_networks_v4"]
    ]
    return "".join(lines)


def _managed(managed: str) -> str:
    return f"{managed}\n"


def _join(values: Sequence[Any], separator: str) -> str:
    return separator.join(str(v) for v in values)


# ---------------------------------------------------------------- rulesets for live subsets


def base_ruleset(ruleset: Mapping[str, Any]) -> dict[str, Any]:
    """A full ruleset (over every instance) without its fair parts, with the instances' ``ports``."""
    base = {k: v for k, v in ruleset.items() if k not in (*FAIR_KEYS, "hold", "targets")}
    base["ports"] = [rule["target"] for rule in ruleset["cascade"]]
    wccp = ruleset.get("intercept")
    base["intercept"] = None if not wccp else {k: v for k, v in wccp.items() if k not in FAIR_KEYS}
    return base


def ruleset_for(base: Mapping[str, Any], live: Collection[int]) -> dict[str, Any]:
    """The ruleset that spreads exactly fairly over the ``live`` ports (kept in the base's order).

    Instance ``n``'s intercept port is ``intercept.ports[n]``, so an instance out of the
    balancer is out of the WCCP spread too."""
    ports = list(base["ports"])
    kept = [n for n, port in enumerate(ports) if port in live]
    if not kept:
        raise ValueError(f"no live instance among the ports {ports} (live: {sorted(live)})")
    ruleset = {k: v for k, v in base.items() if k != "ports"}
    ruleset.update(fair_rules([ports[n] for n in kept]))
    wccp = base.get("intercept")
    if wccp:
        ruleset["intercept"] = {**wccp, **fair_rules([wccp["ports"][n] for n in kept])}
    return ruleset


def fair_rules(ports: Sequence[int]) -> dict[str, Any]:
    """The exactly fair iptables cascade and nftables map over ``ports``."""
    modulus, entries = nft_map(ports)
    return {
        "cascade": [asdict(rule) for rule in cascade(ports)],
        "nft_modulus": modulus,
        "nft_map": [{"key": k, "port": p} for k, p in entries],
    }
