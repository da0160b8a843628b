"""Options that carpfarm's filters share, written once (``extends_documentation_fragment: carpfarm``)."""

from __future__ import annotations


class ModuleDocFragment:
    # Every filter that reads the farm from the play's inventory.
    DOCUMENTATION = r"""
options:
  groups:
    description: >-
      The play's C(groups); C(squid_backends) and C(carp_frontends) are read. Only with C(hostvars):
      omit it when the farm is given as a topology from carpfarm_topology.
    type: dict
    required: false
"""

    # Where the filter's input is the farm: hostvars | carpfarm_x(groups, ...), or
    # topology | carpfarm_x(...) with the result of carpfarm_topology (carpfarm.input).
    INPUT = r"""
options:
  _input:
    description: >-
      The play's C(hostvars) (then C(groups) follows), or the topology carpfarm_topology returned,
      which spares rebuilding the model: a play builds it once and passes it on.
    type: dict
    required: true
"""

    # Where the input is something else and the farm an argument: x | carpfarm_x(hostvars, groups),
    # or x | carpfarm_x(topology) (carpfarm.play).
    PLAY = r"""
options:
  hostvars:
    description: "The play's C(hostvars) (then C(groups) follows), or the topology carpfarm_topology returned."
    type: dict
    required: true
"""

    # The filters about one inventory host (carpfarm.host).
    HOST = r"""
options:
  host:
    description: "An inventory host name."
    type: str
    required: true
"""

    # The filters that judge carpfarm-probe.py's rows against carpfarm_route's predictions.
    PROBE = r"""
options:
  predicted:
    description: >-
      The peer name of the backend instance carpfarm_route predicts for each URL (its result's
      C(peer_name)), in the order the URLs were fetched.
    type: list
    elements: str
    required: true
"""
