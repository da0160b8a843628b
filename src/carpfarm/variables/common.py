"""What every group's declarations share: the inventory's group names, the limits and value types of
the variables, the items of a ``squid_backend_instances`` list, the scopes (which groups' hosts may set
a variable) and ``_Vars``, the base of every group's model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from carpfarm.variables.fields import ANYWHERE, Port, WholeNumber, declare, digits_as_int
from carpfarm.variables.wccp import WCCP_GROUP  # the group names below; defined where WCCP is

BACKEND_GROUP = "squid_backends"
FRONTEND_GROUP = "carp_frontends"
RETIRED_GROUP = "squid_backends_retired"  # hosts whose backend instances site.yml stops (and purges)
GROUPS = (BACKEND_GROUP, FRONTEND_GROUP, WCCP_GROUP, RETIRED_GROUP)

MAX_INSTANCES = 64
MAX_WEIGHT = 1000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
# balance stays a choice so that validate can tell why it is refused (rules.balancer_type).
BalancerType = Literal["iptables", "nftables", "haproxy", "balance"]
BalancerMode = Literal["random", "roundrobin"]
FrontendMode = Literal["instances", "smp", "haproxy"]
HaproxySelection = Literal["carp", "consistent"]
CacheType = Literal["aufs", "rock", "ufs"]
ParentSelection = Literal["carp", "round-robin"]
State = Literal["active", "drained"]
ForwardedFor = Literal["delete", "on", "off", "transparent", "truncate"]  # Squid's forwarded_for
BALANCER_TYPES: tuple[str, ...] = get_args(BalancerType)
BALANCER_MODES: tuple[str, ...] = get_args(BalancerMode)
FRONTEND_MODES: tuple[str, ...] = get_args(FrontendMode)
HAPROXY_SELECTIONS: tuple[str, ...] = get_args(HaproxySelection)
CACHE_TYPES: tuple[str, ...] = get_args(CacheType)
FORWARDED_FOR: tuple[str, ...] = get_args(ForwardedFor)
# Squid's stock Safe_ports and SSL_ports (Debian's /etc/squid/squid.conf).
SAFE_PORTS: list[int | str] = [80, 21, 443, 70, 210, "1025-65535", 280, 488, 591, 777]
SSL_PORTS: list[int | str] = [443]

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Weight = Annotated[int, WholeNumber, Field(ge=1, le=MAX_WEIGHT)]
Megabytes = Annotated[int, WholeNumber, Field(ge=1, le=16 * 1024 * 1024)]
Count = Annotated[int, WholeNumber, Field(ge=1, le=MAX_INSTANCES)]
Seconds = Annotated[int, WholeNumber, Field(ge=0, le=86400)]
# An absolute directory for a cache_dir: no spaces (squid.conf splits on them), no trailing slash, and no
# component that starts with a dot (so no "." or ".."). "/" passes here so that rules.cache_dirs can say
# why it may not be one (carpfarm.model.cachedirs).
CACHE_DIR_PATTERN = r"^(?:/|(?:/[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*)+)$"
CacheDir = Annotated[str, Field(pattern=CACHE_DIR_PATTERN, max_length=255)]
DEFAULT_CACHE_ROOT = "/var/spool/squid"
# A shared secret written into a config file as one word: nothing the file's syntax would cut or misread.
SECRET_WORD = r"^[A-Za-z0-9._~%+=:@^,/-]*$"
SECRET_WORD_CHARACTERS = "letters, digits, ._~%+=:@^,/-"
# One operator line of squid.conf: not empty, not blank (one line: every string is, see fields.declare).
SquidLine = Annotated[str, Field(min_length=1, pattern=r"\S")]
# One item of carpfarm_safe_ports / carpfarm_ssl_ports: a port, or a "lo-hi" range.
PortOrRange = Annotated[
    int | Annotated[str, Field(pattern=r"^\s*\d{1,5}\s*-\s*\d{1,5}\s*$")], Field(union_mode="smart")
]

BACKEND_SCOPE = (BACKEND_GROUP, RETIRED_GROUP)
FRONTEND_SCOPE = (FRONTEND_GROUP,)
SQUID_SCOPE = (BACKEND_GROUP, RETIRED_GROUP, FRONTEND_GROUP)
EVERYWHERE = (ANYWHERE,)


class InstanceSpec(BaseModel):
    """One item of ``squid_backend_instances`` when it is a list."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: Name | None = None
    port: Port | None = None
    weight: Weight | None = None
    cache_size_mb: Megabytes | None = None
    cache_mem_mb: Megabytes | None = None
    # The instance's cache_dir (one disk per instance); default /var/spool/squid/<name>.
    cache_dir: CacheDir | None = None
    state: State = "active"


def _count_or_list(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(digits_as_int(value), int):
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
    if isinstance(value, str) and not isinstance(digits_as_int(value), int):
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


class _Vars(BaseModel):
    """One group's variables, read from a host's variables by their inventory names (the fields' aliases);
    what no field declares is left to ``carpfarm.model.rules.names``."""

    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=False, frozen=True)


def declarer(scope: tuple[str, ...], *roles: str) -> Callable[..., Any]:
    """``declare`` for one group of variables: the groups whose hosts may set them (``scope``) and the
    roles that read them, given once for the group."""

    def declared_here(name: str, default: Any, meaning: str, fix: str, **constraints: Any) -> Any:
        return declare(name, default, meaning, fix, scope=scope, roles=roles, **constraints)

    return declared_here
