#!/usr/bin/env python3
"""Build the carpfarm.farm Ansible collection from the checkout (make collection).

Usage: build-collection.py [--build-dir DIR]
Assembles DIR/ansible_collections/carpfarm/farm/ (default build/collection), runs
``ansible-galaxy collection build`` on it into DIR and prints the tarball's path.

The checkout keeps its layout and its short names; on the way into the collection:
- site.yml becomes playbooks/site.yml beside the plays it imports (``ansible-playbook carpfarm.farm.site``);
- the roles, playbooks and filter docs call carpfarm's filters by their full name
  (``carpfarm.farm.carpfarm_topology``): ansible-core 2.19 finds a role of the same collection by its
  short name, but a filter by its full name only;
- the filter docs extend ``carpfarm.farm.carpfarm`` (ansible-doc looks a short fragment name up outside
  the collection);
- src/carpfarm/ becomes python/carpfarm/, which plugins/filter/carpfarm.py puts on sys.path when
  ansible's Python has no carpfarm installed;
- galaxy.yml, meta/runtime.yml and requirements.txt are written from pyproject.toml.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE, NAME = "carpfarm", "farm"
FQCN = f"{NAMESPACE}.{NAME}"
# What the checkout holds that a collection must not: caches and bytecode.
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache")
# The files whose Jinja calls carpfarm's filters.
TEMPLATED = ("*.yml", "*.yaml", "*.j2")


class _Dumper(yaml.SafeDumper):
    """YAML as yamllint wants it (make lint): list items indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.dump(data, Dumper=_Dumper, sort_keys=False, explicit_start=True, width=120))


def filter_names() -> list[str]:
    """The keys of the dict FilterModule.filters() returns in plugins/filter/carpfarm.py, longest first."""
    tree = ast.parse((ROOT / "plugins" / "filter" / "carpfarm.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "filters":
            returned = next(n.value for n in ast.walk(node) if isinstance(n, ast.Return))
            if isinstance(returned, ast.Dict):
                names = [k.value for k in returned.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
                return sorted(names, key=len, reverse=True)
    raise SystemExit("plugins/filter/carpfarm.py: no FilterModule.filters() returning a dict literal")


def qualify_filters(text: str, names: list[str]) -> str:
    """``x | carpfarm_route(...)`` becomes ``x | carpfarm.farm.carpfarm_route(...)``."""
    pattern = re.compile(r"(\|\s*)(" + "|".join(map(re.escape, names)) + r")\b")
    return pattern.sub(lambda m: f"{m.group(1)}{FQCN}.{m.group(2)}", text)


def qualify_fragments(text: str) -> str:
    """The items of extends_documentation_fragment: ``carpfarm`` and ``carpfarm.<var>`` get the collection."""

    def items(block: re.Match[str]) -> str:
        return re.sub(r"^(\s+- )carpfarm(\.\w+)?$", rf"\g<1>{FQCN}.carpfarm\g<2>", block.group(0), flags=re.M)

    return re.sub(r"^\s*extends_documentation_fragment:\n(?:\s+- .*\n?)+", items, text, flags=re.M)


def rewrite(paths: list[Path], change: Callable[[str], str]) -> None:
    for path in paths:
        text = path.read_text()
        new = change(text)
        if new != text:
            path.write_text(new)


def templated(*dirs: Path) -> list[Path]:
    return sorted(p for d in dirs for pattern in TEMPLATED for p in d.rglob(pattern))


def check_no_short_filters(paths: list[Path], names: list[str], staging: Path) -> None:
    """Stop when a filter is still called by its short name (say map('carpfarm_x'), which is not rewritten)."""
    short = re.compile(r"(?:\|\s*|['\"])(?:" + "|".join(map(re.escape, names)) + r")\b")
    found = [
        f"{path.relative_to(staging)}: {m.group(0).strip()}" for path in paths for m in short.finditer(path.read_text())
    ]
    if found:
        raise SystemExit(
            "these calls of carpfarm's filters would not resolve inside the collection (write them as "
            f"`x | name(...)`, which this build qualifies, or as {FQCN}.name):\n  " + "\n  ".join(found)
        )


def place_site(staging: Path) -> None:
    """site.yml into playbooks/, its imports made relative to it; each one must be there."""
    text = re.sub(r"(import_playbook:\s*)playbooks/", r"\1", (ROOT / "site.yml").read_text())
    site = staging / "playbooks" / "site.yml"
    site.write_text(text)
    for target in re.findall(r"import_playbook:\s*(\S+)", text):
        if not (site.parent / target).is_file():
            raise SystemExit(f"site.yml imports {target}, which is not in the collection's playbooks/")


def metadata(project: dict[str, Any]) -> tuple[dict[str, Any], str, list[str]]:
    """galaxy.yml's content, meta/runtime.yml's requires_ansible, requirements.txt's lines."""
    dependencies = [str(d) for d in project["dependencies"]]
    core = next(d for d in dependencies if d.startswith("ansible-core"))
    galaxy = {
        "namespace": NAMESPACE,
        "name": NAME,
        "version": project["version"],
        "readme": "README.md",
        "authors": ["carpfarm"],
        "description": project["description"],
        "license": [project["license"]["text"]],
        "tags": ["squid", "proxy", "cache", "carp", "haproxy"],
        # No other collection, so `ansible-galaxy collection install TARBALL` needs no Galaxy. The lab's playbooks
        # (not site.yml) use containers.podman: the checkout's `make collections`.
        "dependencies": {},
        "build_ignore": ["**/__pycache__", "**/*.pyc"],
    }
    return galaxy, core.removeprefix("ansible-core"), [d for d in dependencies if d != core]


def assemble(staging: Path) -> str:
    """The collection's tree in ``staging``; returns its version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for part in ("roles", "plugins", "playbooks"):
        shutil.copytree(ROOT / part, staging / part, ignore=IGNORE)
    shutil.copytree(ROOT / "src" / "carpfarm", staging / "python" / "carpfarm", ignore=IGNORE)
    shutil.copy2(ROOT / "collection" / "README.md", staging / "README.md")
    place_site(staging)

    names = filter_names()
    code = templated(staging / "roles", staging / "playbooks")
    rewrite([*code, *templated(staging / "plugins" / "filter")], lambda text: qualify_filters(text, names))
    rewrite(sorted((staging / "plugins" / "filter").glob("*.yml")), qualify_fragments)
    check_no_short_filters(code, names, staging)

    galaxy, requires_ansible, requirements = metadata(project)
    write_yaml(staging / "galaxy.yml", galaxy)
    (staging / "meta").mkdir()
    write_yaml(staging / "meta" / "runtime.yml", {"requires_ansible": requires_ansible})
    (staging / "requirements.txt").write_text("".join(f"{line}\n" for line in requirements))
    return str(project["version"])


def galaxy_command() -> str:
    beside = Path(sys.executable).parent / "ansible-galaxy"
    found = str(beside) if beside.exists() else shutil.which("ansible-galaxy")
    if not found:
        raise SystemExit("ansible-galaxy not found beside this Python nor on PATH: run 'make setup'")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "collection")
    args = parser.parse_args(argv)
    build_dir = args.build_dir.resolve()
    staging = build_dir / "ansible_collections" / NAMESPACE / NAME
    version = assemble(staging)
    tarball = build_dir / f"{NAMESPACE}-{NAME}-{version}.tar.gz"
    # One tarball in the folder, so that an install by wildcard (the README's) never finds an older one.
    for older in build_dir.glob(f"{NAMESPACE}-{NAME}-*.tar.gz"):
        older.unlink()
    build = [galaxy_command(), "collection", "build", str(staging), "--output-path", str(build_dir), "--force"]
    done = subprocess.run(build, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not tarball.is_file():
        raise SystemExit(f"{' '.join(build)} failed ({done.returncode}), no {tarball}:\n{done.stdout}{done.stderr}")
    print(tarball)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
