"""Each role's interface files, generated from the variable declarations (``carpfarm.variables``).

For every role that has declared variables, ``python -m carpfarm.variables.roledocs`` writes ``defaults/main.yml`` and
``meta/argument_specs.yml`` whole, and the variable tables of ``README.md`` between their markers; ``--check``
writes nothing and names the files that differ. A variable's default, type, choices and meaning are its
declaration's; what no declaration holds is ``ENTRY_POINTS`` below.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from carpfarm import variables

COMMAND = "python -m carpfarm.variables.roledocs"
MAKE_TARGET = "make roles-interface"
WIDTH = 120
NOQA = "# noqa: var-naming[no-role-prefix]"
FARM_WIDE = "Farm-wide variables, one value for every role that reads them: no role prefix, hence the noqa."
# Variables the model reads for a role but no role's defaults carry: README.md documents them in a
# second table ("inventory variables"), after the role's own.
INVENTORY_TABLES = {"frontend_vip": ("carpfarm_vip", "carpfarm_vrrp_"), "wccp": ("carpfarm_wccp",)}
HEADER = f"Generated from {variables.__name__} by `{COMMAND}` ({MAKE_TARGET}): edit declarations there."


# What no declaration holds, as argument_specs writes it: each entry point's summary, and the arguments one role
# passes another's entry point (INTERNAL_NAMES). An argument that is a declared variable takes the declaration's
# type, default and meaning (a description here overrides the meaning); main takes every variable of the role.
ENTRY_POINTS: dict[str, dict[str, dict[str, Any]]] = yaml.safe_load("""
squid_backend:
  main:
    short_description: Caching Squid backends (several instances per host) behind the CARP frontends
    description: Runs the instances the carpfarm model gives this host, each with its own -n name, port, pid file,
      cache_dir, logs and unique_hostname, as squid@NAME.service. Only the CARP boxes may use them.
  retire:
    short_description: Stop every backend instance of a host taken out of the farm
    description: For hosts in the squid_backends_retired group. Stops and disables every squid_backend instance,
      sets its configuration aside, and with squid_backend_purge_removed deletes cache, logs and configuration.
    options:
      squid_backend_purge_removed: {description: "Delete the cache dirs, logs and configuration of the retired
        instances."}
  upgrade:
    short_description: Upgrade Squid's packages on this host and restart the instances on the new binary
    description: For playbooks/upgrade.yml (one host at a time). Upgrades Squid's installed packages from the host's
      apt sources, then restarts, one after another, each instance still running the binary the update replaced,
      waiting until it listens again.
squid_common:
  main:
    short_description: Install Squid and the squid@.service template unit
    description: Installs the Squid package, stops and masks Debian's single-instance squid.service, and installs
      the systemd template unit and log rotation shared by every carpfarm Squid instance.
  configure:
    short_description: Configure a role's instances and queue the reload of the changed ones
    description: Called as include_role tasks_from configure. Creates each instance's log directory, renders its
      /etc/squid/NAME.conf from the calling role's template (checked with squid -k parse before it goes live), and
      sets squid_common_changed, the instances whose configuration changed.
    options:
      squid_common_instances: {type: list, elements: dict, required: true, description: "The calling role's
        instances, each a dict with at least name (squid -n); the template sees it as item."}
      squid_common_template: {type: str, required: true, description: "The calling role's squid.conf template,
        relative to that role's templates/ (squid_common has no template under etc/squid/), e.g.
        etc/squid/backend.conf.j2."}
      squid_common_diff: {type: bool, default: true, description: "Whether the rendered squid.conf may show in
        --diff; false when it holds a secret (an SNMP community, a WCCP password)."}
      squid_common_reload: {type: bool, default: true, description: 'Queue "Reload changed Squid instances" for the
        changed instances. false when the caller applies the change itself (carp_frontend''s rolling restart).'}
  service:
    short_description: Start a role's instances, retire the others, reload the changed ones
    description: Called as include_role tasks_from service. Sets squid_common_started, the instances this run
      started, and waits until every instance listens.
    options:
      squid_common_instances: {type: list, elements: dict, required: true, description: "The instances the calling
        role wants running, each a dict with name (squid -n), port and optionally address, where the wait for its
        listener connects (127.0.0.1 when absent)."}
      squid_common_role_marker: {type: str, required: true, description: 'The calling role (the "carpfarm-role:"
        line in each of its configs).'}
      squid_common_purge: {type: bool, default: false, description: "Also delete retired instances' configs, cache
        dirs and logs."}
      squid_common_reload_names: {description: Instances whose configuration changed in this run.}
  upgrade:
    short_description: Upgrade Squid's packages where installed, and name the instances still on the old binary
    description: Called as include_role tasks_from upgrade. Upgrades squid_common_package, squid-common and
      squid-langpack where installed, and sets squid_common_stale, the instances started before /usr/sbin/squid was
      last put in place; the caller restarts them.
    options:
      squid_common_instances: {type: list, elements: dict, required: true, description: "The calling role's
        instances, each a dict with at least name (squid -n)."}
  retire:
    short_description: Stop and disable the instances of one role that are no longer wanted
    options:
      squid_common_role_marker: {type: str, required: true, description: 'The role whose configs to look at (the
        "carpfarm-role:" line in each config).'}
      squid_common_keep: {type: list, elements: str, required: true, description: Instance names that stay.}
      squid_common_purge: {type: bool, default: false, description: "Also delete the retired instances' configs,
        cache dirs and logs."}
carp_frontend:
  main:
    short_description: CARP frontend Squids on the CARP box
    description: Runs one Squid per vCPU (or the count given), each as squid@frontendN, with identical cache_peer
      ... carp lines for every backend instance in the farm, no caching, and no direct forwarding. Only
      carpfarm_client_networks may use them.
  upgrade:
    short_description: Upgrade Squid's packages on this CARP box and restart the frontends on the new binary
    description: For playbooks/upgrade.yml (one box at a time). Upgrades Squid's installed packages from the host's
      apt sources, then restarts each frontend instance still running the replaced binary the way a changed
      configuration is rolled (held out of the balancer, drained, restarted, put back), or in place when the box
      has one instance or a balancer that cannot hold one out.
frontend_balancer:
  main:
    short_description: The frontend balancer of a CARP box
    description: Spreads connections arriving on carp_frontend_listen_port over the box's CARP Squid instances with
      exactly fair iptables or nftables rules, HAProxy, or balance. Switching type removes the previous type's
      rules or service.
  preflight:
    short_description: Check the balancer can be built on this box, before anything changes
    description: Computes the box's balancer from the validated carpfarm model and stops (nothing changed) when the
      type cannot be built here, such as balance with no package and no binary. playbooks/frontends.yml runs it
      before the CARP frontends change, so an impossible balancer touches no box.
    options: {frontend_balancer_type: {}}
  hold:
    short_description: Take one frontend instance out of rotation (carp_frontend calls it before a restart)
    description: How depends on the balancer, as the carpfarm model says (carpfarm_balancer's hold) - the kernel
      balancers load an exactly fair cascade or map over the other instances; HAProxy puts the server in
      maintenance; balance cannot, and nothing is done. Open connections carry on. release puts the instance back.
    options: &hold_port
      frontend_balancer_hold_port: {type: int, required: true, description: The frontend instance's port.}
  release:
    short_description: Put the frontend instance held out by hold back into rotation
    options: {<<: *hold_port, __frontend_balancer_hold: {type: dict, required: true, description: "What hold set, and
      release reads - method (kernel, haproxy, or null), name (the held instance), held (whether hold took it out)."}}
frontend_vip:
  main:
    short_description: A floating client address shared by CARP boxes (keepalived, VRRP)
    description: On CARP boxes that set carpfarm_vip, installs keepalived from the distro, writes its configuration
      (one VRRP instance, unicast to the other boxes sharing the address, simple-text authentication, a track
      script on the box's balancer and frontend instances), checked with keepalived -t before it goes live, and
      waits until exactly one box holds the address. On boxes without it, stops and removes what an earlier run
      installed.
wccp:
  main:
    short_description: The CARP box's side of WCCPv2 and the router's stanza
    description: With carpfarm_wccp on, writes the routers' Cisco IOS stanza on the controller and, for GRE
      forwarding, builds one GRE tunnel per router (loose rp_filter on it, no forwarding), persisted by a boot unit.
      With it off, removes what an earlier run built. The squid.conf stanza is the carp_frontend role's and the
      redirect to the intercept ports is the frontend_balancer role's.
  preflight:
    short_description: Stop before any change when this kernel cannot do what WCCP asks of it
    description: GRE forwarding needs the kernel's ip_gre. Run by site.yml's validate play, before any host changes.
""")
_ARGUMENT_KEYS = ("type", "elements", "required", "default", "description")


class RoleDocsError(ValueError):
    """A role's files cannot be generated as they stand; the message says what to change."""


def _bare(annotation: Any) -> Any:
    """The type under ``Annotated[...]`` and ``X | None``."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        args = [a for a in get_args(annotation) if a is not type(None)]
        if get_origin(annotation) not in (Union, UnionType) or len(args) != 1:
            return annotation
        annotation = args[0]


def _kind(annotation: Any) -> str:
    """argument_specs' ``type`` for a Python type: one that is several types is ``raw``."""
    bare = _bare(annotation)
    origin = get_origin(bare)
    if origin is Literal:
        return "str"
    if origin in (list, dict):
        return str(origin.__name__)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return "dict"
    return {bool: "bool", int: "int", str: "str"}.get(bare, "raw")


def _data(value: Any) -> Any:
    """A default as YAML gives it: models as the mappings a user writes."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True, exclude_defaults=True)
    if isinstance(value, list):
        return [_data(v) for v in value]
    return value


FIELDS = {d.name: model.model_fields[field] for model, field, d in variables.declarations()}


def default(name: str) -> Any:
    """The declared default of ``name``; None when it has none."""
    field = FIELDS[name]
    return None if field.is_required() else _data(field.get_default(call_default_factory=True))


def _declared_spec(name: str, description: str) -> dict[str, Any]:
    bare = _bare(FIELDS[name].annotation)
    spec: dict[str, Any] = {"type": _kind(bare)}
    if get_origin(bare) is list:
        spec["elements"] = _kind(get_args(bare)[0])
    if FIELDS[name].is_required():
        spec["required"] = True
    elif default(name) is not None:
        spec["default"] = default(name)
    if get_origin(bare) is Literal:
        spec["choices"] = list(get_args(bare))
    if variables.DECLARED[name].secret:
        spec["no_log"] = True
    spec["description"] = description or variables.DECLARED[name].meaning
    return spec


def _option_spec(role: str, name: str, given: dict[str, Any]) -> dict[str, Any]:
    if name in variables.DECLARED:
        return _declared_spec(name, str(given.get("description", "")))
    owner = role if name.startswith(f"__{role}_") else variables.INTERNAL_NAMES.get(name)  # a fact of its own, or given
    if owner != role or not {"type", "description"} <= set(given) <= set(_ARGUMENT_KEYS):
        raise RoleDocsError(
            f"{role}: argument {name} is neither declared in {variables.__name__} nor one of its INTERNAL_NAMES (or a"
            f" __{role}_ fact) for {role} with a type, a description (only {', '.join(_ARGUMENT_KEYS)}) in ENTRY_POINTS"
        )
    return {key: given[key] for key in _ARGUMENT_KEYS if key in given}


def roles() -> list[str]:
    """The roles some declared variable belongs to."""
    return sorted({role for d in variables.DECLARED.values() for role in d.roles})


def role_variables(role: str) -> list[str]:
    """The role's variables: its own (prefixed with its name) first, then the farm-wide ones it reads."""
    names = [name for name, d in variables.DECLARED.items() if role in d.roles]
    return sorted(names, key=lambda name: not name.startswith(role + "_"))


def inventory_variables(role: str) -> list[str]:
    """Variables the model reads for ``role`` that no role's defaults carry (``INVENTORY_TABLES``)."""
    prefixes = INVENTORY_TABLES.get(role, ())
    return [name for name, d in variables.DECLARED.items() if prefixes and name.startswith(prefixes) and not d.roles]


def _plain(text: str, in_flow: bool) -> bool:
    """Whether ``text`` can stand unquoted: a word, or prose that YAML reads back as the same string."""
    if not (re.fullmatch(r"[A-Za-z_/][\w./-]*", text) or " " in text):
        return False
    probe, expected = (f"[{text}]", [text]) if in_flow else (f"k: {text}", {"k": text})
    try:
        return bool(yaml.safe_load(probe) == expected)
    except yaml.YAMLError:
        return False


def flow(value: Any, in_flow: bool = False) -> str:
    """``value`` as one line of YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, int):
        return "null" if value is None else str(value)
    if isinstance(value, str):
        return value if _plain(value, in_flow) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(flow(v, True) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v, True)}" for k, v in value.items()) + "}"
    raise RoleDocsError(f"no YAML for {value!r} (a {type(value).__name__})")


def _text(lead: str, text: str, indent: int) -> list[str]:
    """``lead`` (``key:`` or ``-``) and a string: on one line when it fits, else folded (``>-``)."""
    line = f"{' ' * indent}{lead} {flow(text)}"
    if len(line) <= WIDTH:
        return [line]
    pad = " " * (indent + 2)
    wrapped = textwrap.wrap(text, WIDTH - len(pad), break_long_words=False, break_on_hyphens=False)
    return [f"{' ' * indent}{lead} >-", *(pad + part for part in wrapped)]


def _block(key: str, value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict) and value:
        return [f"{pad}{key}:", *(line for k, v in value.items() for line in _block(k, v, indent + 2))]
    if isinstance(value, list) and any(isinstance(v, str) and " " in v for v in value):
        return [f"{pad}{key}:", *(line for v in value for line in _text("-", v, indent + 2))]
    if isinstance(value, str):
        return _text(f"{key}:", value, indent)
    return [f"{pad}{key}: {flow(value)}"]


def _comment(text: str) -> list[str]:
    """A meaning as comment lines (Ansible's C(x) markup as 'x')."""
    text = re.sub(r"C\(([^)]*)\)", r"'\1'", text)
    return ["# " + line for line in textwrap.wrap(text, WIDTH - 2, break_long_words=False, break_on_hyphens=False)]


def _document(lines: list[str], data: dict[str, Any], path: str) -> str:
    text = "\n".join(["---", *_comment(HEADER), *lines]) + "\n"
    if yaml.safe_load(text) != data:
        raise RoleDocsError(f"{path}: the generated YAML does not read back as its data; fix roledocs' emitter")
    return text


def argument_specs(role: str) -> str:
    """The full text of the role's ``meta/argument_specs.yml``."""
    if role not in ENTRY_POINTS or "main" not in ENTRY_POINTS[role]:
        raise RoleDocsError(f"{role} has declared variables but no main entry point in roledocs.ENTRY_POINTS")
    specs: dict[str, Any] = {}
    for name, entry in ENTRY_POINTS[role].items():
        given: dict[str, Any] = {v: {} for v in role_variables(role)} if name == "main" else {}
        given |= entry.get("options") or {}
        specs[name] = {"short_description": entry["short_description"]}
        if entry.get("description"):
            specs[name]["description"] = [entry["description"]]
        specs[name]["options"] = {option: _option_spec(role, option, spec) for option, spec in given.items()}
    data = {"argument_specs": specs}
    return _document(_block("argument_specs", specs, 0), data, f"roles/{role}/meta/argument_specs.yml")


def defaults_main(role: str) -> str:
    """The full text of the role's ``defaults/main.yml``, each variable under its meaning."""
    also = ", ".join(inventory_variables(role))
    note = f"Also read for this role, by the carpfarm model (no default here; docs/variables.md): {also}."
    lines = ["", *_comment(note)]
    lines = [*(lines if also else []), ""]
    for name in role_variables(role):
        farm_wide = not name.startswith(role + "_")
        if farm_wide and not lines[-1].endswith(NOQA):
            lines += ["", *_comment(FARM_WIDE)]
        noqa = f" {NOQA}" if farm_wide else ""
        lines += [*_comment(variables.DECLARED[name].meaning), f"{name}: {flow(default(name))}{noqa}"]
    data = {name: default(name) for name in role_variables(role)}
    return _document(lines, data, f"roles/{role}/defaults/main.yml")


def _row(name: str) -> str:
    """A table row; a meaning's C(x) as code, and < escaped, which Markdown would take for HTML."""
    value = default(name)
    shown = "unset" if value is None else f"`{value}`" if isinstance(value, str) and value else f"`{flow(value)}`"
    meaning = re.sub(r"C\(([^)]*)\)", r"`\1`", variables.DECLARED[name].meaning.replace("<", "&lt;"))
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in (f"`{name}`", shown, meaning)) + " |"


def readme_tables(role: str) -> dict[str, str]:
    """The README's generated tables, by block name: the role's variables, and the inventory's for it."""
    tables = {"variables": role_variables(role), "inventory variables": inventory_variables(role)}
    head = ["| variable | default | meaning |", "|---|---|---|"]
    return {block: "\n".join([*head, *map(_row, names)]) for block, names in tables.items() if names}


def readme(role: str, text: str) -> str:
    """README.md's ``text`` with each generated table replaced by the declarations' (between its markers)."""
    for block, table in readme_tables(role).items():
        pattern = re.compile(
            rf"^<!-- BEGIN generated {block}: [^\n]*-->\n.*?^<!-- END generated {block} -->$",
            flags=re.MULTILINE | re.DOTALL,
        )
        fresh = f"<!-- BEGIN generated {block}: {COMMAND} -->\n{table}\n<!-- END generated {block} -->"
        found = pattern.search(text)
        if not found:
            raise RoleDocsError(
                f"roles/{role}/README.md has no generated {block} table: put the lines "
                f"'<!-- BEGIN generated {block}: {COMMAND} -->' and '<!-- END generated {block} -->' where it goes"
            )
        text = text[: found.start()] + fresh + text[found.end() :]
    return text


def generated(root: Path) -> dict[Path, str]:
    """Every generated file under ``root``: its path and the text it should have."""
    files: dict[Path, str] = {}
    for role in roles():
        base = root / "roles" / role
        files[base / "defaults" / "main.yml"] = defaults_main(role)
        files[base / "meta" / "argument_specs.yml"] = argument_specs(role)
        files[base / "README.md"] = readme(role, (base / "README.md").read_text())
    return files


def stale(root: Path) -> dict[Path, str]:
    """The generated files under ``root`` whose text on disk differs, with the text they should have."""
    return {path: text for path, text in generated(root).items() if not path.exists() or path.read_text() != text}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each stale file")
    parser.add_argument("--root", type=Path, default=Path(), help="the carpfarm checkout (default: .)")
    args = parser.parse_args(argv)
    try:
        files = stale(args.root)
    except RoleDocsError as error:
        print(f"{COMMAND}: {error}", file=sys.stderr)
        return 2
    for path, text in files.items():
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(args.root)}")
        if not args.check:
            path.write_text(text)
    if args.check and files:
        print(f"{len(files)} generated file(s) differ from {variables.__name__}; run: {MAKE_TARGET} ({COMMAND})")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
