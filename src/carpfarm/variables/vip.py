"""The variables of a CARP box's optional floating client address: keepalived's VRRP moves it between
the boxes that set the same one (``carpfarm.model.vip``; role ``frontend_vip``); part of ``FrontendVars``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from carpfarm.variables.common import FRONTEND_SCOPE, SECRET_WORD, _Vars, declarer
from carpfarm.variables.fields import AnsibleBool, WholeNumber

_vip = declarer(FRONTEND_SCOPE)


_vip_role = declarer(FRONTEND_SCOPE, "frontend_vip")


class VipVars(_Vars):
    """The floating address's variables: carpfarm_vip and carpfarm_vrrp_* for the model, frontend_vip_* for the role."""

    vip: str = _vip(
        "carpfarm_vip",
        "",
        "A floating client address with its prefix length (192.0.2.9/24), held by one of the CARP boxes that "
        "set the same one; '' = none.",
        "write an IPv4 address in the boxes' subnet with its prefix length, e.g. 192.0.2.9/24, or ''",
    )
    vip_single_box: AnsibleBool = _vip(
        "carpfarm_vip_single_box",
        False,
        "Allow carpfarm_vip on a single CARP box (refused otherwise: no box could take it over).",
        "set true or false",
    )
    vrrp_id: Annotated[int, WholeNumber, Field(ge=1, le=255)] = _vip(
        "carpfarm_vrrp_id",
        51,
        "VRRP virtual router id of the boxes sharing carpfarm_vip; unique per floating address on a subnet.",
        "set a whole number from 1 to 255",
    )
    vrrp_priority: Annotated[int, WholeNumber, Field(ge=1, le=254)] = _vip(
        "carpfarm_vrrp_priority",
        100,
        "This box's VRRP priority: the live box with the highest holds the address (equal: the highest address wins).",
        "set a whole number from 1 to 254",
    )
    vrrp_preempt: AnsibleBool = _vip(
        "carpfarm_vrrp_preempt",
        True,
        "A box of higher priority takes the address back when it returns; false leaves it where it is.",
        "set true or false",
    )
    vrrp_advert_interval: Annotated[int, WholeNumber, Field(ge=1, le=255)] = _vip(
        "carpfarm_vrrp_advert_interval",
        1,
        "Seconds between VRRP adverts; a backup takes over after about 3 missed ones.",
        "set a whole number of seconds from 1 to 255",
    )
    vrrp_password: str = _vip(
        "carpfarm_vrrp_password",
        "",
        "VRRP authentication shared by the boxes (at most 8 characters); required with carpfarm_vip. "
        "Keep it in Ansible Vault.",
        "set 1-8 characters (letters, digits, ._~%+=:@^,/-; keepalived.conf would cut or misread others), the "
        "same on every box sharing the address",
        max_length=8,
        pattern=SECRET_WORD,
        secret=True,
    )
    vrrp_interface: str = _vip(
        "carpfarm_vrrp_interface",
        "",
        "Interface keepalived puts the floating address on; '' = the one holding the box's own address.",
        "name a network interface of the box, e.g. eth0, or ''",
        pattern=r"^[A-Za-z0-9_.:@-]{0,15}$",
    )
    vip_check_interval: Annotated[int, WholeNumber, Field(ge=1, le=60)] = _vip_role(
        "frontend_vip_check_interval",
        1,
        "Seconds between two runs of keepalived's track script (balancer and frontend instances running).",
        "set a whole number of seconds from 1 to 60",
    )
    vip_check_fall: Annotated[int, WholeNumber, Field(ge=1, le=100)] = _vip_role(
        "frontend_vip_check_fall",
        2,
        "Failed checks in a row that make the box give up the floating address.",
        "set a whole number from 1 to 100",
    )
    vip_check_rise: Annotated[int, WholeNumber, Field(ge=1, le=100)] = _vip_role(
        "frontend_vip_check_rise",
        2,
        "Good checks in a row before the box may hold the floating address again (it starts failed).",
        "set a whole number from 1 to 100",
    )
