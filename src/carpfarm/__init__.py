"""carpfarm: the extreme CARP frontend (balancer -> CARP Squids -> caching Squids), described and checked.

The names below are imported on first use, so that importing the package costs nothing: on the
CARP box, plain ``python3`` runs ``carpfarm.box.watch`` (standard library only) without pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carpfarm.carp import CarpPeer, select_parent
    from carpfarm.model import Topology
    from carpfarm.problems import Problem, TopologyError

__all__ = ["CarpPeer", "Problem", "Topology", "TopologyError", "select_parent"]
__version__ = "0.1.0"

_HOMES = {
    "CarpPeer": "carpfarm.carp",
    "select_parent": "carpfarm.carp",
    "Topology": "carpfarm.model",
    "Problem": "carpfarm.problems",
    "TopologyError": "carpfarm.problems",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'carpfarm' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
