"""Read an Ansible inventory exactly as a play would, and hand it to the model.

ansible-core's own InventoryManager and VariableManager resolve ``group_vars``,
``host_vars`` and precedence; the Templar resolves ``{{ }}`` in the variables
carpfarm reads. Nothing here connects to a host.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from carpfarm.model import Topology, build_topology
from carpfarm.model.rules.names import did_you_mean
from carpfarm.problems import Problem, TopologyError
from carpfarm.variables import GROUPS, in_namespace

# Variables the model reads besides carpfarm's namespaces; others (and their templates) are left alone.
EXTRA_VARS = ("ansible_host", "ansible_processor_vcpus")

VARS_DIRS = ("group_vars", "host_vars")
VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")


def _wanted(name: str) -> bool:
    return in_namespace(name) or name in EXTRA_VARS


def _inventory_dirs(sources: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Where Ansible looks for group_vars/ and host_vars/ next to each inventory source."""
    return [Path(s) if Path(s).is_dir() else Path(s).parent for s in sources]


class _TolerantLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML that accepts Ansible's tags (!vault, !unsafe) without interpreting them."""


_TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _yaml_problems(path: Path) -> list[Problem]:
    """Parse every YAML file of the inventory first, so a syntax error is reported with its place
    (Ansible would only warn about an unparsable source and go on with an empty inventory)."""
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml", ".json"))
    )
    problems = []
    for file in files:
        try:
            list(yaml.load_all(file.read_text(encoding="utf-8"), Loader=_TolerantLoader))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            where = ""
            mark = getattr(exc, "problem_mark", None)
            if mark is not None:
                where = f" line {mark.line + 1} column {mark.column + 1}"
            reason = getattr(exc, "problem", None) or str(exc)
            problems.append(
                Problem(
                    str(path),
                    "inventory",
                    f"cannot be read: {file}{where}: {reason}",
                    "correct the YAML at the place named",
                )
            )
    return problems


@cache
def _loader_class(base: type[Any]) -> type[Any]:
    """Ansible's DataLoader, minus the deep copy of data it has just parsed and keeps nowhere.

    ``load_from_file(cache='none')`` parses the file afresh, then deep-copies the result (to
    protect a cache it does not fill). The inventory plugins load hosts.yml that way, twice
    (``auto``, then ``yaml``); for hundreds of hosts the two copies took longer than parsing.
    The data returned is the same, fresh and unshared either way."""

    class FreshLoader(base):  # type: ignore[misc]
        def load_from_file(
            self,
            file_name: str,
            cache: str = "all",
            unsafe: bool = False,
            json_only: bool = False,
            trusted_as_template: bool = False,
        ) -> Any:
            return super().load_from_file(file_name, cache, unsafe or cache == "none", json_only, trusted_as_template)

    return FreshLoader


VAULT_FIX = (
    "give carpfarm the vault password as ansible-playbook gets it: --vault-password-file FILE or "
    "--ask-vault-pass, vault_password_file in ansible.cfg, or ANSIBLE_VAULT_PASSWORD_FILE=<file> in the environment"
)


def _configured_vault() -> tuple[list[str], list[str]]:
    """The vault identities and password file ansible.cfg or the environment give now
    (vault_identity_list, vault_password_file, ANSIBLE_VAULT_PASSWORD_FILE ...); Ansible's
    constants hold what they were when it was imported."""
    from ansible import constants as C

    identities = list(C.config.get_config_value("DEFAULT_VAULT_IDENTITY_LIST") or [])
    files = [f for f in [C.config.get_config_value("DEFAULT_VAULT_PASSWORD_FILE")] if f]
    return identities, files


def use_vault(password_files: Sequence[str] = (), ask: bool = False) -> bytes | None:
    """Set up the vault secrets every inventory read of this process decrypts with, as
    ansible-playbook does with ``--vault-password-file FILE`` (each) and ``--ask-vault-pass``,
    besides those ansible.cfg and the environment give.

    Ansible holds the secrets once per process: the first call sets them up (from the
    configuration too), a later one adds only what it is given. Returns the password typed at the
    prompt (None when none was asked for), so that a playbook run can be given it, not ask again."""
    from ansible.cli import CLI
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import PromptVaultSecret, VaultSecretsContext

    current = VaultSecretsContext.current(optional=True)
    identities, configured = _configured_vault() if current is None else ([], [])
    files = [*password_files, *configured]
    if not (identities or files or ask):
        return None
    try:
        secrets = CLI.setup_vault_secrets(
            DataLoader(),
            vault_ids=identities,
            vault_password_files=files,
            ask_vault_pass=ask,
            auto_prompt=False,
            initialize_context=current is None,
        )
    except AnsibleError as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise TopologyError([Problem("vault", "password", f"cannot be read: {message}", VAULT_FIX)]) from exc
    if current is not None:
        current.secrets.extend(secrets)
    typed = [secret.bytes for _, secret in secrets if isinstance(secret, PromptVaultSecret)]
    return typed[0] if typed else None


def _with_vault_secrets(loader: Any) -> None:
    """Give the loader this process's vault secrets (``use_vault``; those ansible.cfg and the
    environment give when no command asked for others), so that vaulted variables
    (carpfarm_vrrp_password) are read like the rest."""
    from ansible.parsing.vault import VaultSecretsContext

    use_vault()
    current = VaultSecretsContext.current(optional=True)
    if current is not None:
        loader.set_vault_secrets(current.secrets)


@contextlib.contextmanager
def _no_cleaning_of_no_facts() -> Iterator[None]:
    """While inside, ansible-core's ``get_vars`` skips cleaning a host's facts when it has none.

    ``clean_facts({})`` returns ``{}``, but only after listing every connection plugin on disk,
    once per host: half the time of reading a large inventory. Hosts that do have facts (from a
    fact cache) are cleaned as before, so every variable comes out the same."""
    from ansible.vars import manager

    clean_facts = manager.clean_facts
    manager.clean_facts = lambda facts: clean_facts(facts) if facts else {}
    try:
        yield
    finally:
        manager.clean_facts = clean_facts


def load_hostvars(
    source: str | os.PathLike[str], vcpus: int | None = None
) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]], list[Problem]]:
    """Return (groups, hostvars, problems) for carpfarm's groups, templated, as a play would see them.

    The problems are the inventory's group_vars/ and host_vars/ entries that reach no host."""
    # An inventory that fails to parse is an error, not a warning followed by an empty inventory.
    os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
    os.environ.setdefault("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "True")
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    path = Path(source)
    if not path.exists():
        raise TopologyError([Problem(str(path), "inventory", "does not exist", "pass the path of an inventory")])
    yaml_problems = _yaml_problems(path)
    if yaml_problems:
        raise TopologyError(yaml_problems)
    loader = _loader_class(DataLoader)()
    try:
        _with_vault_secrets(loader)
        inventory = InventoryManager(loader=loader, sources=[str(path)])
        manager = VariableManager(loader=loader, inventory=inventory)
        groups = {
            name: [h.name for h in inventory.groups[name].get_hosts()] for name in GROUPS if name in inventory.groups
        }
        hostvars: dict[str, dict[str, Any]] = {}
        with _no_cleaning_of_no_facts():
            for name in dict.fromkeys(h for hosts in groups.values() for h in hosts):
                raw = manager.get_vars(host=inventory.get_host(name), include_hostvars=False)
                templar = Templar(loader=loader, variables=raw)
                hostvars[name] = {k: templar.template(v) for k, v in raw.items() if _wanted(k)}
                if vcpus is not None:
                    hostvars[name].setdefault("ansible_processor_vcpus", vcpus)
        orphans = list(orphan_vars_files(_inventory_dirs([path]), inventory.groups, inventory.hosts))
    except AnsibleError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = VAULT_FIX if "vault" in message.lower() else "correct the YAML at the place named"
        raise TopologyError([Problem(str(path), "inventory", f"cannot be read: {message}", fix)]) from exc
    return groups, hostvars, orphans


def load_topology(source: str | os.PathLike[str], vcpus: int | None = None) -> Topology:
    """The validated topology of an inventory, with unknown and misplaced variables refused."""
    groups, hostvars, orphans = load_hostvars(source, vcpus)
    return _with(orphans, groups, hostvars)


def _with(
    problems: Sequence[Problem], groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Mapping[str, Any]]
) -> Topology:
    try:
        topology = build_topology(groups, hostvars, check_names=True)
    except TopologyError as exc:
        raise TopologyError([*problems, *exc.problems]) from None
    if problems:
        raise TopologyError(problems)
    return topology


def topology_from_play(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Any],
    check_names: bool = False,
    sources: Sequence[str] = (),
) -> Topology:
    """Build the topology from a play's ``groups`` and ``hostvars`` (used by the filter plugin).

    site.yml's validate play asks for ``check_names`` and passes ``ansible_inventory_sources``:
    it then refuses unknown and misplaced variables and vars files that reach no host."""
    wanted = {g: list(groups.get(g, [])) for g in GROUPS}
    names = dict.fromkeys(h for hosts in wanted.values() for h in hosts)
    plain = {}
    for name in names:
        host = hostvars[name]
        plain[name] = {k: host[k] for k in host if _wanted(k)}
        facts = host.get("ansible_facts") if hasattr(host, "get") else None
        if "ansible_processor_vcpus" not in plain[name] and isinstance(facts, Mapping) and "processor_vcpus" in facts:
            plain[name]["ansible_processor_vcpus"] = facts["processor_vcpus"]
    if not check_names:
        return build_topology(wanted, plain)
    every_host = [str(h) for h in groups.get("all", [])]
    orphans = list(orphan_vars_files(_inventory_dirs(sources), groups.keys(), every_host))
    return _with(orphans, wanted, plain)


def orphan_vars_files(inventory_dirs: Iterable[Path], groups: Iterable[str], hosts: Iterable[str]) -> Iterator[Problem]:
    """group_vars/ and host_vars/ entries that name no group or host reach no host at all."""
    known = {"group_vars": set(groups) | {"all", "ungrouped"}, "host_vars": set(hosts)}
    for directory in dict.fromkeys(inventory_dirs):
        for kind in VARS_DIRS:
            base = directory / kind
            if not base.is_dir():
                continue
            for entry in sorted(base.iterdir()):
                if entry.name.startswith(".") or (entry.is_file() and entry.suffix not in VARS_SUFFIXES):
                    continue
                name = entry.name if entry.is_dir() else entry.stem
                if name not in known[kind]:
                    what = "group" if kind == "group_vars" else "host"
                    yield Problem(
                        str(directory),
                        f"{kind}/{entry.name}",
                        f"matches no {what} of the inventory: its variables reach no host",
                        did_you_mean(name, known[kind]) + f"rename it after a {what}, or delete it",
                    )
