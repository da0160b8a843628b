"""carpfarm.plan.watch: the configuration the controller writes for carpfarm-watch on a CARP box.

``config_data`` turns ``balancer_rules``' full ruleset (every instance) into the JSON that
``carpfarm.box.watchconfig.load_config`` reads on the box; the filter carpfarm_watch_config is it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carpfarm.box import kernelrules
from carpfarm.box.health import DEFAULT_PROBING, Probing
from carpfarm.box.kernelrules import Names
from carpfarm.box.watchconfig import DEFAULT_FILES, FORMAT, SQUID_USER, ConfigError


def config_data(
    ruleset: Mapping[str, Any],
    host: str,
    managed: str,
    names: Names = kernelrules.DEFAULT_NAMES,
    probing: Probing = DEFAULT_PROBING,
    squid_user: str = SQUID_USER,
    **files: str,
) -> dict[str, Any]:
    """The configuration JSON for a full ruleset from ``plan.balancer_rules`` (every instance).

    ``files`` sets any of ``held_file``, ``state_file`` and ``rules_file`` (``DEFAULT_FILES`` otherwise)."""
    unknown = set(files) - set(DEFAULT_FILES)
    if unknown:
        raise ConfigError(f"unknown file settings {sorted(unknown)}: use {', '.join(DEFAULT_FILES)}")
    return {
        "format": FORMAT,
        "host": host,
        "managed": managed,
        "names": vars(names),
        "ruleset": kernelrules.base_ruleset(ruleset),
        "probe": vars(probing),
        "squid_user": squid_user,
        **DEFAULT_FILES,
        **files,
    }
