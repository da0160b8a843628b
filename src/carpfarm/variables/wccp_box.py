"""The variables of a CARP box's optional WCCPv2: routers redirect clients' web traffic to the box
(``carpfarm.wccp.settings``; role ``wccp``); part of ``FrontendVars``. Their types are
``carpfarm.variables.wccp``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from carpfarm.variables.common import FRONTEND_SCOPE, _Vars, declarer
from carpfarm.variables.fields import AnsibleBool, Port, WholeNumber, declare
from carpfarm.variables.wccp import Assignment, Method, WccpService

_wccp = declarer(FRONTEND_SCOPE)


class WccpVars(_Vars):
    """WCCP's variables: carpfarm_wccp_* for the model, wccp_router_stanza_dir for the role."""

    wccp: AnsibleBool = _wccp("carpfarm_wccp", False, "Turn WCCPv2 on for this CARP box.", "set true or false")
    wccp_routers: list[str] = _wccp(
        "carpfarm_wccp_routers",
        [],
        "The routers' IP addresses; every host in the wccp_routers group is added (its wccp_router_address, "
        "else its ansible_host, else its name).",
        "list the routers' IP addresses",
    )
    wccp_forwarding_method: Method = _wccp(
        "carpfarm_wccp_forwarding_method", "gre", "How routers forward to the box: gre or l2.", "use 'gre' or 'l2'"
    )
    wccp_return_method: Method | None = _wccp(
        "carpfarm_wccp_return_method",
        None,
        "How the box returns traffic to routers; unset means the forwarding method.",
        "use 'gre' or 'l2' (or leave it out: the forwarding method)",
    )
    wccp_assignment_method: Assignment = _wccp(
        "carpfarm_wccp_assignment_method", "hash", "How routers assign buckets: hash or mask.", "use 'hash' or 'mask'"
    )
    wccp_services: list[WccpService] = _wccp(
        "carpfarm_wccp_services",
        [WccpService(standard=0)],
        "The WCCPv2 services: {standard: 0} (web-cache) or dynamic ones.",
        "list services as {standard: 0} (web-cache) or {id: 51-255, ports: [1 to 8 ports], protocol, priority, "
        "flags, password}",
    )
    wccp_password: str = _wccp(
        "carpfarm_wccp_password",
        "",
        "Default MD5 password of the services, at most 8 characters.",
        "set at most 8 characters (WCCPv2 MD5 security)",
        max_length=8,
        secret=True,
    )
    wccp_weight: Annotated[int, WholeNumber, Field(ge=0, le=65535)] = _wccp(
        "carpfarm_wccp_weight", 10000, "The box's WCCPv2 weight.", "set a whole number from 0 to 65535"
    )
    wccp_intercept_port_base: Port = _wccp(
        "carpfarm_wccp_intercept_port_base",
        3229,
        "Frontend instance i intercepts on port_base + i.",
        "set a free port; frontend instance i intercepts on port_base + i",
    )
    wccp_squid_fixed: AnsibleBool = _wccp(
        "carpfarm_wccp_squid_fixed",
        False,
        "The box's Squid carries the upstream corrections of its WCCPv2 parser (every release from 4.17 and 5.2 "
        "drops a router's I_SEE_YOU without them); false: validate stops a WCCP box whose Squid lacks them.",
        "set true only for a Squid built with Squid pull request 2484 and commit 478eba2a33 (7.0.1+ has the "
        "second), else false",
    )
    wccp_router_interface: str = _wccp(
        "carpfarm_wccp_router_interface",
        "GigabitEthernet0/0",
        "The router's client-facing interface, for its stanza.",
        "name the router's client-facing interface, e.g. GigabitEthernet0/1",
    )
    wccp_router_stanza_dir: str = declare(
        "wccp_router_stanza_dir",
        "{{ playbook_dir | dirname }}/build/wccp",
        "Directory on the controller for each box's <box>-router.ios (through site.yml: build/wccp in the checkout).",
        "give a directory on the controller",
        scope=FRONTEND_SCOPE,
        roles=("wccp",),
    )
