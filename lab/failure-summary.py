#!/usr/bin/env python3
"""Print, in a few lines, the tasks that failed in an Ansible or molecule log.

make test ends with this when a scenario fails, so that the last screen of a long run (all a CI
report may keep) names the failed task and its message instead of molecule's recap alone:

    python3 lab/failure-summary.py LOG [--scenario NAME] [--keep N] [--width CHARS]

A failure is a ``fatal:`` or ``failed:`` result not followed by ``...ignoring``; retries
(``FAILED - RETRYING``) are not failures. The last N failures are printed, each as its task's
name and its result block (yaml or JSON) folded onto one line and cut to CHARS characters.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FRAME = re.compile(r"^\s*[│┌└]\s?")  # molecule frames each playbook's output: "  │ " before every line
RESULT = re.compile(r"^(fatal|failed): \[")
TASK = re.compile(r"^TASK \[(.*?)(\] \*|\]$|$)")


def failures(lines: list[str]) -> list[tuple[str, str]]:
    """(task name, folded result) of each failure that was not ignored, in log order."""
    found: list[tuple[str, str]] = []
    task = "?"
    at = 0
    while at < len(lines):
        line = lines[at]
        if match := TASK.match(line):  # a long name goes on over the next line (molecule wraps at 80)
            task = match.group(1) if match.group(2) else f"{match.group(1)} {lines[at + 1].strip().split('] *')[0]}"
        if not RESULT.match(line):
            at += 1
            continue
        block = [line.strip()]
        at += 1
        while at < len(lines) and lines[at].strip() and not TASK.match(lines[at]) and not RESULT.match(lines[at]):
            block.append(lines[at].strip())
            at += 1
        following = next((rest for rest in lines[at : at + 3] if rest.strip()), "")
        if "...ignoring" not in following and not any("...ignoring" in b for b in block):
            found.append((task, " | ".join(block)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--scenario", default="")
    parser.add_argument("--keep", type=int, default=3)
    parser.add_argument("--width", type=int, default=600)
    args = parser.parse_args()
    text = ANSI.sub("", args.log.read_text(errors="replace"))
    found = failures([FRAME.sub("", line) for line in text.splitlines()] + [""])
    where = f"molecule scenario {args.scenario}" if args.scenario else str(args.log)
    if not found:
        print(f"== {where}: no failed task in {args.log} (see above)")
        return 0
    print(f"== {where}: {len(found)} failed task(s); the last {min(args.keep, len(found))}:")
    for task, block in found[-args.keep :]:
        line = f"{task}: {block}"
        print(f"-- {line[: args.width]}{' ...' if len(line) > args.width else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
