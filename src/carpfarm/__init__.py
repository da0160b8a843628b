"""carpfarm: the extreme CARP frontend (balancer -> CARP Squids -> caching Squids), described and checked."""

from carpfarm.carp import CarpPeer, select_parent
from carpfarm.model import Topology
from carpfarm.problems import Problem, TopologyError

__all__ = ["CarpPeer", "Problem", "Topology", "TopologyError", "select_parent"]
__version__ = "0.1.0"
