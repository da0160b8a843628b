"""The kernel balancers' rules files, as text: iptables-restore input and an nftables table.

The frontend_balancer role prints these through the ``carpfarm_kernel_rules`` filter, and
``carpfarm.box.watch`` prints them on the CARP box for whichever instances are alive, so both write
the same bytes for the same instances. Standard library only: this module runs on the box,
where plain ``python3`` is all there is.

A ruleset (``Ruleset``) is what ``carpfarm.plan.balancer_rules`` returns. Its *base*
(``BaseRuleset``, ``base_ruleset``) is that without the fair parts (``cascade``, ``nft_modulus``,
``nft_map``, and the same under ``intercept``) and with the instances' ``ports`` in order;
``ruleset_for`` puts the fair parts back for any subset of live ports, the way
``balancer_rules(..., exclude=...)`` does. ``Names`` are the chains and the table the rules make on
the host, stated here alone: the plan's balancer view carries them to the role.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, NotRequired, TypedDict, cast

from carpfarm.box.balancer import cascade, nft_map

KINDS = ("iptables", "nftables")
FAIR_KEYS = ("cascade", "nft_modulus", "nft_map")
# What a base ruleset keeps of a ruleset (besides the instances' ports), and of its intercept.
BASE_KEYS = ("type", "mode", "listen_port", "client_networks_v4", "client_networks_v6", "intercept")
INTERCEPT_BASE_KEYS = ("method", "dports", "interfaces", "routers", "ports")
# nftables tables earlier carpfarm releases made (balance's client filter): removed wherever found.
FORMER_TABLES = ("carpfarm_clients",)

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
:{spread} - [0:0]
"""

_IPTABLES_GUARD = """\
*filter
# The intercept ports take only connections the rules above redirected: a client that connects
# to one directly (no NAT record) would make Squid fetch from itself.
:{guard} - [0:0]
-A {guard} -p tcp -m multiport --dports {ports} -m conntrack ! --ctstate DNAT -j DROP
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


# ---------------------------------------------------------------- the rulesets, as typed data


class CascadeEntry(TypedDict):
    """One rule of a cascade (``carpfarm.box.balancer.CascadeRule`` as data)."""

    index: int
    target: int
    probability: float
    iptables_value: int
    iptables_probability: str
    every: int
    share: float
    realised_share: float
    last: bool


class MapEntry(TypedDict):
    """One entry of an nftables ``numgen`` map: the key (or key range) and the port it sends to."""

    key: str
    port: int


class FairRules(TypedDict):
    """The exactly fair iptables cascade and nftables map over some ports."""

    cascade: list[CascadeEntry]
    nft_modulus: int
    nft_map: list[MapEntry]


class InterceptBase(TypedDict):
    """WCCP-redirected connections: which to take, and the instances' intercept ports."""

    method: str
    dports: list[int]
    interfaces: list[str]  # the GRE tunnels; empty for l2
    routers: list[str]
    ports: list[int]


class Intercept(InterceptBase, FairRules):
    """What the rules take of WCCP-redirected connections, and how they spread them."""


class _Arrival(TypedDict):
    """Where the clients arrive: the balancer's type and mode, its port, the client networks."""

    type: str
    mode: str
    listen_port: int
    client_networks_v4: NotRequired[list[str]]  # absent on a box without a balancer (SMP)
    client_networks_v6: NotRequired[list[str]]


class Ruleset(_Arrival, FairRules):
    """A kernel balancer's rules, as ``carpfarm.plan.balancer_rules`` gives them and ``render`` prints them."""

    hold: NotRequired[str | None]  # how an instance is held out of rotation (not in ruleset_for's)
    intercept: Intercept | None


class BaseRuleset(_Arrival):
    """A ruleset over every instance without its fair parts: what carpfarm-watch's configuration holds."""

    ports: list[int]
    intercept: InterceptBase | None


class NameSet(TypedDict):
    """``Names`` as data, with the chains the WCCP chain's name makes."""

    chain: str
    wccp_chain: str
    wccp_spread: str
    wccp_guard: str
    table: str


@dataclass(frozen=True)
class Names:
    """What the kernel balancers call their chains and table on the host: the one place that says so."""

    chain: str = "CARPFARM_BALANCE"
    wccp_chain: str = "CARPFARM_WCCP"  # WCCP's selection chain (nat), beside it _SPREAD (nat), _GUARD (filter)
    table: str = "carpfarm"

    @property
    def wccp_spread(self) -> str:
        return f"{self.wccp_chain}_SPREAD"

    @property
    def wccp_guard(self) -> str:
        return f"{self.wccp_chain}_GUARD"

    def view(self) -> NameSet:
        return NameSet(
            chain=self.chain,
            wccp_chain=self.wccp_chain,
            wccp_spread=self.wccp_spread,
            wccp_guard=self.wccp_guard,
            table=self.table,
        )

    def iptables_chains(self) -> list[str]:
        """Every chain the iptables rules make, as ``table:chain``."""
        return [f"nat:{self.chain}", f"nat:{self.wccp_chain}", f"nat:{self.wccp_spread}", f"filter:{self.wccp_guard}"]


DEFAULT_NAMES = Names()


def names_of(ruleset: Mapping[str, Any]) -> Names:
    """The names a ruleset carries (``names``, as the plan's balancer view gives them), or the defaults."""
    given = ruleset.get("names") or {}
    return Names(**{f.name: str(given[f.name]) for f in fields(Names) if f.name in given})


class KernelLeftovers(TypedDict):
    """The other kinds' rules a box removes: iptables chains (``table:chain``), nftables ``inet`` tables."""

    iptables_chains: list[str]
    nft_tables: list[str]


def leftovers(rules: str | None, names: Names = DEFAULT_NAMES) -> KernelLeftovers:
    """What a box whose balancer loads ``rules`` (a kind of KINDS, or None) removes of the other kinds'
    rules, and of earlier releases' tables."""
    return KernelLeftovers(
        iptables_chains=[] if rules == "iptables" else names.iptables_chains(),
        nft_tables=[*([] if rules == "nftables" else [names.table]), *FORMER_TABLES],
    )


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
        parts.append(_iptables_wccp(ruleset, wccp, names))
    parts.append("COMMIT\n")
    if wccp:
        parts.append(_IPTABLES_GUARD.format(guard=names.wccp_guard, ports=_join(wccp["ports"], ",")))
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


def _iptables_wccp(ruleset: Mapping[str, Any], wccp: Mapping[str, Any], names: Names) -> str:
    """The WCCP selection chain (client networks, services' ports, tunnels) and its spread."""
    interfaces = wccp["interfaces"]
    through = " through the GRE tunnels" if interfaces else ""
    chain = names.wccp_chain
    head = _IPTABLES_WCCP_HEAD.format(method=wccp["method"], through=through, chain=chain, spread=names.wccp_spread)
    lines = [head]
    for network in ruleset["client_networks_v4"]:
        for interface in interfaces or [""]:
            arrival = f" -i {interface}" if interface else ""
            lines.append(
                f"-A {chain} -s {network}{arrival} -p tcp -m multiport --dports {_join(wccp['dports'], ',')}"
                f" -m addrtype ! --dst-type LOCAL -j {names.wccp_spread}\n"
            )
    lines.append(_cascade(names.wccp_spread, wccp["cascade"], ruleset["mode"]))
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


def base_ruleset(ruleset: Mapping[str, Any]) -> BaseRuleset:
    """A full ruleset (over every instance) without its fair parts, with the instances' ``ports``."""
    base = {k: ruleset[k] for k in BASE_KEYS if k in ruleset}
    wccp = ruleset.get("intercept")
    base["intercept"] = None if not wccp else {k: wccp[k] for k in INTERCEPT_BASE_KEYS if k in wccp}
    base["ports"] = [rule["target"] for rule in ruleset["cascade"]]
    return cast(BaseRuleset, base)


def ruleset_for(base: Mapping[str, Any], live: Collection[int]) -> Ruleset:
    """The ruleset that spreads exactly fairly over the ``live`` ports (kept in the base's order).

    Instance ``n``'s intercept port is ``intercept.ports[n]``, so an instance out of the
    balancer is out of the WCCP spread too."""
    ports = list(base["ports"])
    kept = [n for n, port in enumerate(ports) if port in live]
    if not kept:
        raise ValueError(f"no live instance among the ports {ports} (live: {sorted(live)})")
    ruleset: dict[str, Any] = {k: v for k, v in base.items() if k != "ports"}
    ruleset.update(fair_rules([ports[n] for n in kept]))
    wccp = base.get("intercept")
    if wccp:
        ruleset["intercept"] = {**wccp, **fair_rules([wccp["ports"][n] for n in kept])}
    return cast(Ruleset, ruleset)


def fair_rules(ports: Sequence[int]) -> FairRules:
    """The exactly fair iptables cascade and nftables map over ``ports``."""
    modulus, entries = nft_map(ports)
    return FairRules(
        cascade=[cast(CascadeEntry, asdict(rule)) for rule in cascade(ports)],
        nft_modulus=modulus,
        nft_map=[MapEntry(key=k, port=p) for k, p in entries],
    )
