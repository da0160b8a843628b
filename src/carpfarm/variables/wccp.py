"""The WCCPv2 variables' types: the services a CARP box registers (``carpfarm_wccp_services``) and the
methods it may ask for. Declared here, below the declarations that use them; what carpfarm makes of
them is ``carpfarm.wccp.settings``."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["gre", "l2"]
Assignment = Literal["hash", "mask"]
Flag = Literal[
    "src_ip_hash",
    "dst_ip_hash",
    "source_port_hash",
    "dst_port_hash",
    "src_ip_alt_hash",
    "dst_ip_alt_hash",
    "src_port_alt_hash",
    "dst_port_alt_hash",
    "ports_source",
]
METHODS: tuple[str, ...] = get_args(Method)
ASSIGNMENTS: tuple[str, ...] = get_args(Assignment)
FLAGS: tuple[str, ...] = get_args(Flag)
WEB_CACHE = 0  # the one standard service: HTTP (TCP port 80)
HTTP_PORT = 80
HTTPS_PORT = 443
WCCP_GROUP = "wccp_routers"  # the inventory group of routers that every WCCP box registers with
PASSWORD_MAX = 8  # WCCPv2 MD5 security: Squid and IOS take at most 8 characters
Password = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX)]


class WccpService(BaseModel):
    """One ``wccp2_service``: the standard web-cache (``standard: 0``) or a dynamic one (``id``)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    standard: Literal[0] | None = None
    id: Annotated[int, Field(ge=51, le=255)] | None = None
    ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(max_length=8)] = []
    protocol: Literal["tcp", "udp"] = "tcp"
    priority: Annotated[int, Field(ge=0, le=255)] = 240
    flags: list[Flag] = ["src_ip_hash"]
    password: Password | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> WccpService:
        if (self.standard is None) == (self.id is None):
            raise ValueError("give either 'standard: 0' (web-cache) or a dynamic 'id' (51-255), not both or neither")
        if self.id is not None and not self.ports:
            raise ValueError("a dynamic service needs 'ports' (1 to 8)")
        if self.standard is not None and self.ports:
            raise ValueError("the standard web-cache service is port 80 by definition: remove 'ports'")
        return self

    @property
    def ident(self) -> int:
        return WEB_CACHE if self.standard is not None else int(self.id or 0)

    @property
    def dports(self) -> tuple[int, ...]:
        """The destination ports the router redirects for this service."""
        return (HTTP_PORT,) if self.standard is not None else tuple(self.ports)


def _default_services() -> list[WccpService]:
    return [WccpService(standard=0)]
