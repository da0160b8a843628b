"""Every variable a carpfarm role or playbook reads, declared once.

Each group of hosts has a model whose fields are its variables (``carpfarm.variables.fields.declare``):
type, default, range, one-line meaning, fix and where it may be set. The models live by group
(``backend``, ``frontend`` with its parts ``balancer``, ``vip`` and ``wccp_box``, and ``farm``; what
they share is ``common``); this package is their index. The roles' ``defaults/main.yml``,
``meta/argument_specs.yml`` and README variable tables are generated from these declarations by
``carpfarm.variables.roledocs`` (``make roles-interface``), so ``carpfarm validate`` refuses everything
argument_specs would refuse later, before any host is touched.
"""

from __future__ import annotations

from collections.abc import Iterator

from carpfarm.variables.backend import BackendVars
from carpfarm.variables.common import (
    BACKEND_GROUP,
    BALANCER_TYPES,
    CACHE_DIR_PATTERN,
    DEFAULT_CACHE_ROOT,
    FRONTEND_GROUP,
    GROUPS,
    MAX_INSTANCES,
    RETIRED_GROUP,
    InstanceSpec,
    State,
    _Vars,
)
from carpfarm.variables.farm import FarmVars, RouterVars, SquidVars
from carpfarm.variables.fields import Declared, declared
from carpfarm.variables.frontend import FrontendVars
from carpfarm.variables.wccp import WCCP_GROUP

__all__ = [  # what the rest of carpfarm reads here (_Vars: carpfarm.model.build parses with any model)
    "BACKEND_GROUP",
    "BALANCER_TYPES",
    "CACHE_DIR_PATTERN",
    "DECLARED",
    "DEFAULT_CACHE_ROOT",
    "FRONTEND_GROUP",
    "GROUPS",
    "INTERNAL_NAMES",
    "MAX_INSTANCES",
    "MODELS",
    "NAMESPACES",
    "RETIRED_GROUP",
    "WCCP_GROUP",
    "BackendVars",
    "FarmVars",
    "FrontendVars",
    "InstanceSpec",
    "RouterVars",
    "SquidVars",
    "State",
    "_Vars",
    "declarations",
    "in_namespace",
]

# Names in these namespaces are carpfarm's: one that is not declared here is a typo.
NAMESPACES = (
    "squid_backend_",
    "carp_frontend_",
    "frontend_balancer_",
    "frontend_vip_",
    "carpfarm_",
    "wccp_",
    "squid_common_",
)

# Arguments one role passes to another's tasks_from entry point; never set in an inventory.
INTERNAL_NAMES: dict[str, str] = {
    "squid_common_instances": "squid_common",
    "squid_common_keep": "squid_common",
    "squid_common_purge": "squid_common",
    "squid_common_role_marker": "squid_common",
    "squid_common_started": "squid_common",
    "squid_common_changed": "squid_common",
    "squid_common_stale": "squid_common",
    "squid_common_template": "squid_common",
    "squid_common_reload": "squid_common",
    "squid_common_diff": "squid_common",
    "frontend_balancer_hold_port": "frontend_balancer",
}

MODELS: tuple[type[_Vars], ...] = (BackendVars, FrontendVars, SquidVars, FarmVars, RouterVars)


def declarations() -> Iterator[tuple[type[_Vars], str, Declared]]:
    """(model, field name, declaration) for every declared variable."""
    for model in MODELS:
        for field_name, field in model.model_fields.items():
            yield model, field_name, declared(field)


DECLARED: dict[str, Declared] = {d.name: d for _, _, d in declarations()}


def in_namespace(name: str) -> bool:
    """Whether ``name`` is in one of carpfarm's namespaces (so, if it is not declared, a typo)."""
    return name.startswith(NAMESPACES)
