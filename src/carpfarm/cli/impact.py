"""``carpfarm impact``: the fraction of URLs that change backend between two inventories of one
farm, and how much of that move was avoidable."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable

from rich.console import JustifyMethod
from rich.text import Text

from carpfarm.cli.common import EXIT_WARNING, emit_json, interactive, load_both, print_table, progress_bar, stdout
from carpfarm.cli.input import read_urls
from carpfarm.model import Topology
from carpfarm.plan import Impact, impact, sample_urls

# The progress keyword of plan.impact() is newer than some checkouts of carpfarm.plan.
_IMPACT_TAKES_PROGRESS = "progress" in inspect.signature(impact).parameters


def _impact(old: Topology, new: Topology, urls: list[str], show_progress: bool) -> Impact:
    """``plan.impact``, drawing a progress bar on stderr when asked and ``impact`` can report progress."""
    if not (show_progress and _IMPACT_TAKES_PROGRESS):
        return impact(old, new, urls)
    with progress_bar("routing URLs", len(urls)) as advance:
        with_progress: Callable[..., Impact] = impact
        return with_progress(old, new, urls, progress=advance)


def cmd_impact(args: argparse.Namespace) -> int:
    urls = read_urls(args.urls_file) if args.urls_file else sample_urls(args.sample)
    old, new = load_both(args.old, args.new, args)
    result = _impact(old, new, urls, interactive(args))
    if args.json:
        emit_json(result.as_dict())
    else:
        console = stdout()
        counts = ("before", "after", "lost", "gained")
        rows = []
        for name, row in result.per_peer.items():
            mark = " *" if name in result.changed_peers else ""
            rows.append((Text(name + mark), *(Text(f"{row[k] / result.urls:.2%}") for k in counts)))
        columns: dict[str, JustifyMethod] = {"CARP peer": "left", **dict.fromkeys(counts, "right")}
        print_table(console, f"Impact over {result.urls} URLs", columns, rows)
        console.print(
            f"moved: {result.moved_fraction:.2%} of URLs; caused by changed peers (*): "
            f"{result.necessary_fraction:.2%}; avoidable: {result.collateral_fraction:.2%}"
        )
        if result.moved_if_drained_fraction is not None:
            console.print(
                f"deleting {', '.join(result.deleted_peers)} moves {result.moved_fraction:.2%} of URLs; "
                f"draining instead (state: drained) would move {result.moved_if_drained_fraction:.2%}"
            )
        for tip in result.advice:
            console.print(Text.assemble(("warning", "yellow"), f": {tip}"))
    return EXIT_WARNING if result.collateral and args.strict else 0
