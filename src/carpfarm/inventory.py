"""Read an Ansible inventory exactly as a play would, and hand it to the model.

ansible-core's own InventoryManager and VariableManager resolve ``group_vars``, ``host_vars`` and
precedence; the Templar resolves ``{{ }}`` in the variables carpfarm reads. Nothing here connects
to a host.

Whatever Ansible would warn about while it reads the inventory (a duplicate key, a file it cannot
parse, a key it skips...) is a problem too: the warnings are caught as they are raised, each told
with its file and line (``_LoaderWarnings``). Each problem of the model is told at the file and line
where the offending variable is written (Ansible tags every key it reads with its origin), once for
all the hosts one setting reaches (``carpfarm.problems.merged``).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import yaml

from carpfarm.model import Topology, build_topology
from carpfarm.model.rules.names import EVERY_HOST, did_you_mean
from carpfarm.problems import Problem, TopologyError, listed, merged, plain_words, shape
from carpfarm.variables import GROUPS, in_namespace

# Variables the model reads besides carpfarm's namespaces; others (and their templates) are left alone.
EXTRA_VARS = ("ansible_host", "ansible_processor_vcpus")

VARS_DIRS = ("group_vars", "host_vars")
VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")
YAML_SUFFIXES = (".yml", ".yaml", ".json")
INVENTORY_FIX = (
    "write it as a YAML inventory (groups, each a mapping of hosts:, children: and vars:, as in "
    "inventory/example/hosts.yml) or an INI one, or move it out of the inventory directory (Ansible reads "
    "every file there as inventory)"
)
YAML_FIX = "correct the YAML at the place named"

# The first bytes of a file ansible-vault encrypted whole.
VAULT_HEADER = b"$ANSIBLE_VAULT;"


def _wanted(name: str) -> bool:
    return in_namespace(name) or name in EXTRA_VARS


def _inventory_dirs(sources: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Where Ansible looks for group_vars/ and host_vars/ next to each inventory source (that exists)."""
    paths = [Path(s) for s in sources if Path(s).exists()]
    return list(dict.fromkeys(p if p.is_dir() else p.parent for p in paths))


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as the user wrote it: relative to the working directory when inside it."""
    text = os.fspath(path)
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(text)
        if not relative.startswith(".."):
            return relative
    return text


# ---------------------------------------------------------------- the YAML, read before Ansible


class _TolerantLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML that accepts Ansible's tags (!vault, !unsafe) without interpreting them."""


_TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _vars_file(file: Path, directories: Sequence[Path]) -> str | None:
    """'group_vars' or 'host_vars' when ``file`` holds variables of a group or host of the inventory."""
    for directory in directories:
        for kind in VARS_DIRS:
            if file.is_relative_to(directory / kind) and file.suffix in VARS_SUFFIXES:
                return kind
    return None


def _yaml_files(sources: Sequence[Path]) -> list[Path]:
    """Every YAML file Ansible reads for these sources: the inventory files and their variables."""
    found: list[Path] = []
    for source in sources:
        if source.is_file():
            found.append(source)
        elif source.is_dir():
            found += sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES)
    for directory in _inventory_dirs(sources):
        for kind in VARS_DIRS:
            base = directory / kind
            if base.is_dir():
                found += sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in VARS_SUFFIXES)
    return [p for p in dict.fromkeys(found) if not any(part.startswith(".") for part in p.parts[-2:])]


def _vault_encrypted(file: Path) -> bool:
    """Whether ``file`` is encrypted whole with ansible-vault (it starts with the vault header)."""
    try:
        with file.open("rb") as handle:
            return handle.read(len(VAULT_HEADER)) == VAULT_HEADER
    except OSError:
        return False


def _yaml_problems(source: str, sources: Sequence[Path]) -> list[Problem]:
    """Parse every YAML file of the inventory first, so that a syntax error is told with its place, and
    a group_vars or host_vars file that is not a mapping of variables with its own words (Ansible
    would warn about an unparsable source and go on with an empty inventory, or stop on the first)."""
    directories = _inventory_dirs(sources)
    problems = []
    for file in _yaml_files(sources):
        if _vault_encrypted(file):
            continue  # a whole-file vault (group_vars/all/vault.yml): Ansible decrypts and reads it
        try:
            documents = list(yaml.load_all(file.read_text(encoding="utf-8"), Loader=_TolerantLoader))
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
            problems.append(_unreadable(source, file, exc))
            continue
        kind = _vars_file(file, directories)
        data = next((d for d in documents if d is not None), None)
        if kind is not None and data is not None and not isinstance(data, Mapping):
            problems.append(_not_a_mapping(source, file, kind, data))
    return problems


def _unreadable(source: str, file: Path, exc: Exception) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 0
    column = f" (column {mark.column + 1})" if mark is not None else ""
    reason = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
    return Problem(
        source,
        "inventory",
        f"cannot be read: it is not valid YAML: {reason}{column}",
        YAML_FIX,
        file=shown_path(file),
        line=line,
    )


def _not_a_mapping(source: str, file: Path, kind: str, data: Any) -> Problem:
    name = file.relative_to(next(p for p in file.parents if p.name == kind).parent).as_posix()
    example = "squid_backend_weight: 2" if kind == "group_vars" else "squid_backend_instances: 2"
    return Problem(
        source,
        name,
        f"holds {shape(data)}; a {kind} file must be a mapping of variable: value",
        f"write one 'variable: value' per line at the top of the file, without a leading '-' "
        f"(e.g. {example}); Ansible refuses anything else",
        file=shown_path(file),
        line=1,
    )


@dataclass(frozen=True)
class _Key:
    """A mapping key of a YAML file: its path from the top (keys and list indexes) and line."""

    path: tuple[str | int, ...]
    line: int
    column: int
    scalar: str | None = None  # the value, when it is a single one


@cache
def _keys(file: str, stamp: float) -> tuple[_Key, ...]:
    """Every mapping key of ``file`` with its place (``stamp``: its modification time, for the cache)."""
    try:
        roots = list(yaml.compose_all(Path(file).read_text(encoding="utf-8"), Loader=_TolerantLoader))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return ()
    found: list[_Key] = []
    pending: list[tuple[tuple[str | int, ...], Any]] = [((), root) for root in roots if root is not None]
    while pending:
        path, node = pending.pop(0)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                where = (*path, str(key.value))
                scalar = str(value.value) if isinstance(value, yaml.ScalarNode) else None
                found.append(_Key(where, key.start_mark.line + 1, key.start_mark.column + 1, scalar))
                pending.append((where, value))
        elif isinstance(node, yaml.SequenceNode):
            pending += [((*path, n), item) for n, item in enumerate(node.value)]
    return tuple(found)


def keys_of(file: str | os.PathLike[str]) -> tuple[_Key, ...]:
    path = Path(file)
    readable = path.is_file() and path.suffix in YAML_SUFFIXES and not _vault_encrypted(path)
    return _keys(str(path), path.stat().st_mtime) if readable else ()


def _find(files: Iterable[Path], wanted: Callable[[tuple[str | int, ...]], bool]) -> tuple[str, int]:
    """(file, line) of the first key whose path ``wanted`` accepts, ('', 0) for none."""
    for file in files:
        for key in keys_of(file):
            if wanted(key.path):
                return shown_path(file), key.line
    return "", 0


def _ends(*suffix: str) -> Callable[[tuple[str | int, ...]], bool]:
    return lambda path: path[-len(suffix) :] == suffix


def _is_group_key(path: tuple[str | int, ...]) -> bool:
    """A key that names a group in a YAML inventory: at the top, or under a group's children:."""
    return len(path) == 1 or (len(path) >= 2 and path[-2] == "children")


# ---------------------------------------------------------------- Ansible's warnings, as problems


@contextlib.contextmanager
def _warnings_caught() -> Iterator[list[Any]]:
    """Ansible's warnings and deprecation warnings raised inside, kept (not printed) in the list yielded."""
    try:
        from ansible._internal._display_utils import DeferredWarningContext
    except ImportError:  # pragma: no cover - another ansible-core: its warnings are printed, not told
        yield []
        return
    caught: list[Any] = []
    with DeferredWarningContext(variables={}) as context:
        try:
            yield caught
        finally:
            caught += [*context.get_warnings(), *context.get_deprecation_warnings()]


def _chain(event: Any) -> list[Any]:
    """An event and the events that caused it, outermost first."""
    events = []
    while event is not None:
        events.append(event)
        link = getattr(event, "chain", None)
        event = getattr(link, "event", None)
    return events


_ORIGIN = re.compile(r"^Origin: (?P<path>.+?)(?::(?P<line>\d+))?(?::\d+)?$", re.MULTILINE)
_PLUGIN_SOURCE = re.compile(r"with source '(?P<path>.+)'>")


def _origin(context: str | None) -> tuple[str, int]:
    """(file, line) of a warning's ``Origin:`` context, ('', 0) when it names no file."""
    for pattern in (_PLUGIN_SOURCE, _ORIGIN):
        match = pattern.search(context or "")
        if match and Path(match["path"]).is_file():
            line = match.groupdict().get("line")
            return shown_path(match["path"]), int(line) if line else 0
    return "", 0


@dataclass
class _LoaderWarnings:
    """Turns what Ansible warned while reading an inventory into problems: the file and line, what
    Ansible made of it, and the change that silences it. ``fatal`` is set when a source could not be
    read at all: the model is not asked about what is left."""

    source: str
    files: list[Path]
    problems: list[Problem] = field(default_factory=list)
    fatal: bool = False
    _reasons: dict[str, dict[str, str]] = field(default_factory=dict)
    _not_groups: dict[str, list[str]] = field(default_factory=dict)

    def add(self, variable: str, message: str, fix: str, place: tuple[str, int] = ("", 0)) -> None:
        self.problems.append(Problem(self.source, variable, message, fix, file=place[0], line=place[1]))

    def told(self, summaries: Sequence[Any], group_names: Iterable[str]) -> list[Problem]:
        for summary in summaries:
            self._one(summary)
        self._tell_not_groups()
        if any("Invalid characters were found in group names" in s.event.msg for s in summaries):
            self._invalid_group_names(group_names)
        return self.problems

    def _one(self, summary: Any) -> None:
        event = summary.event
        message = str(event.msg)
        for pattern, handler in self._HANDLERS:
            match = pattern.search(message)
            if match:
                handler(self, match, event)
                return
        self._other(summary, event)

    # Each handler: (match of the warning's message, the warning's event).

    def _duplicate_key(self, match: re.Match[str], event: Any) -> None:
        key = match["key"]
        self.add(
            key,
            "is written twice in one mapping: Ansible keeps the last one and silently drops the other",
            f"keep one '{key}' in this mapping: delete the other, or merge the two",
            _origin(event.formatted_source_context),
        )

    def _reserved(self, match: re.Match[str], event: Any) -> None:
        self.add(
            match["name"],
            "is a name Ansible reserves for itself (a play keyword or a magic variable): set in an "
            "inventory it changes how Ansible runs the play",
            "rename the variable, or remove it",
            _origin(event.formatted_source_context),
        )

    def _group_and_host(self, match: re.Match[str], event: Any) -> None:
        name = match["name"]
        place = _find(self.files, _ends("hosts", name))
        self.add(
            name,
            "is the name of both a group and a host: Ansible's patterns (hosts:, --limit) and its "
            "group_vars/ and host_vars/ cannot tell them apart",
            "rename the group or the host",
            place if place[0] else _find(self.files, lambda p: _is_group_key(p) and p[-1] == name),
        )

    def _unexpected_key(self, match: re.Match[str], event: Any) -> None:
        key, group = match["key"], match["group"]
        kind = match.groupdict().get("kind")
        held = f"holds {plain_words(kind)} and " if kind else ""
        self.add(
            key,
            f"{held}is not a section of group '{group}': Ansible skips it, and all it holds",
            did_you_mean(key, ("hosts", "children", "vars"))
            + "a group holds only hosts:, children: and vars:, each a mapping; move what it holds under one of them",
            _find(self.files, _ends(group, key)),
        )

    def _not_a_group(self, match: re.Match[str], event: Any) -> None:
        name = match["name"]
        file, _ = _find(self.files, lambda p: p == (name,))
        self._not_groups.setdefault(file, []).append(name)

    def _tell_not_groups(self) -> None:
        """The top-level keys of a file that are not groups, told once per file."""
        for file, names in self._not_groups.items():
            line = next((k.line for k in keys_of(file) if k.path == (names[0],)), 0) if file else 0
            quoted = listed([f"'{n}'" for n in names])
            keys = f"keys {quoted} are not groups" if len(names) > 1 else f"key {quoted} is not a group"
            self.problems.append(
                Problem(
                    self.source,
                    Path(file).name if file else names[0],
                    f"is not an inventory: its top-level {keys} (a group's value is a mapping of hosts:, "
                    "children: and vars:), so Ansible skips them",
                    INVENTORY_FIX,
                    file=file,
                    line=line,
                )
            )

    def _plugin_failed(self, match: re.Match[str], event: Any) -> None:
        """'Failed to parse inventory with PLUGIN plugin': keep the reason, told with the source."""
        causes = _chain(event)[1:]
        place = next((_origin(c.formatted_source_context)[0] for c in causes if c.formatted_source_context), "")
        reason = " ".join(str(c.msg) for c in causes if str(c.msg) != "Failed to parse inventory.")
        if place:
            self._reasons.setdefault(place, {})[match["plugin"]] = plain_words(reason)

    def _unparsed(self, match: re.Match[str], event: Any) -> None:
        self.fatal = True
        path = Path(match["path"])
        if path.is_dir():
            if not any(Path(p).resolve().is_relative_to(path.resolve()) for p in self._reasons):
                self.add("inventory", "holds no file Ansible can read as an inventory", INVENTORY_FIX)
            return
        file = shown_path(path)
        reasons = self._reasons.get(file, {})
        plugin = "yaml" if path.suffix in YAML_SUFFIXES else "ini"
        chosen = [(plugin, reasons[plugin])] if plugin in reasons else [i for i in reasons.items() if i[0] != "auto"]
        told = [_parse_failure(name, reason, path) for name, reason in chosen] or [
            ("no inventory plugin accepts it", 0)
        ]
        self.add(
            path.name,
            "cannot be read as an inventory: " + "; ".join(text for text, _ in told),
            INVENTORY_FIX,
            (file, next((line for _, line in told if line), 0)),
        )

    def _nothing_parsed(self, match: re.Match[str], event: Any) -> None:
        self.fatal = True
        if not any(p.variable != "inventory" or "inventory" in p.message for p in self.problems):
            self.add(
                "inventory",
                "holds nothing Ansible can read as an inventory: only the implicit localhost is left",
                "pass a directory with hosts.yml (and group_vars/, host_vars/), or the hosts file itself",
            )

    def _second_localhost(self, match: re.Match[str], event: Any) -> None:
        name = match["name"]
        self.add(
            name,
            f"is a second name for the controller ({match['first']} is the first): Ansible uses the first only",
            "keep one localhost entry",
            _find(self.files, _ends("hosts", name)),
        )

    def _vars_not_a_directory(self, match: re.Match[str], event: Any) -> None:
        kind = match["kind"]
        example = "squid_backends.yml" if kind == "group_vars" else "cache1.yml"
        self.add(
            kind,
            "is a file, not a directory: Ansible reads no variables from it",
            f"make {kind} a directory holding one file per {kind.removesuffix('_vars')}, e.g. {kind}/{example}",
            (shown_path(match["path"]), 0),
        )

    def _invalid_group_names(self, names: Iterable[str]) -> None:
        """Group names Ansible warned about (it names none): those with characters it does not take."""
        from ansible import constants as C

        bad = [n for n in names if C.INVALID_VARIABLE_NAMES.search(n)]
        for file in self.files:
            bad += [str(k.path[-1]) for k in keys_of(file) if _is_group_key(k.path) and _invalid(str(k.path[-1]))]
        for name in dict.fromkeys(bad):
            self.add(
                name,
                "is not a valid group name: Ansible's group names take letters, digits and underscores only",
                f"rename the group to {C.INVALID_VARIABLE_NAMES.sub('_', name)} (and its group_vars file)",
                _find(self.files, lambda p, name=name: _is_group_key(p) and p[-1] == name),  # type: ignore[misc]
            )

    def _other(self, summary: Any, event: Any) -> None:
        """Any other warning, in Ansible's words (a deprecation says what will stop working)."""
        deprecated = "Deprecation" in type(summary).__name__
        what = "uses what Ansible will stop supporting" if deprecated else "makes Ansible warn"
        text = ": ".join(str(e.msg).rstrip(".") for e in _chain(event))
        place = next((_origin(e.formatted_source_context) for e in _chain(event) if e.formatted_source_context), None)
        self.add(
            "inventory",
            f"{what}: {plain_words(text)}",
            _sentence(event.help_text) or "change the inventory so that Ansible has nothing to warn about",
            place or ("", 0),
        )

    _HANDLERS: ClassVar[tuple[tuple[re.Pattern[str], Callable[[_LoaderWarnings, re.Match[str], Any], None]], ...]] = ()


def _sentence(text: str | None) -> str:
    """Ansible's advice as a fix: no capital, no full stop."""
    text = " ".join((text or "").split()).rstrip(".")
    return text[:1].lower() + text[1:]


_SECTIONS = {
    "hosts": "host: its variables",
    "children": "group: its hosts:, children: and vars:",
    "vars": "variable: value",
}


def _parse_failure(plugin: str, reason: str, file: Path) -> tuple[str, int]:
    """Why an inventory plugin could not read ``file``, in the inventory's words, and the line when known."""
    text = " ".join(reason.split()).rstrip(".")
    section = re.search(
        r'Invalid "(?P<section>\w+)" entry for "(?P<group>[^"]+)" group, .*found (?P<shape>.+) instead', text
    )
    if section:
        name, group = section["section"], section["group"]
        line = _find([file], _ends(group, name))[1]
        return (
            f"the {name}: of group '{group}' holds {section['shape']}, where a mapping goes "
            f"({_SECTIONS.get(name, 'key: value')})",
            line,
        )
    host = re.search(r"Invalid data from file, expected dictionary and got: (?P<data>.+)", text)
    if host:
        data = host["data"]
        line = next(
            (k.line for k in keys_of(file) if len(k.path) > 1 and k.path[-2] == "hosts" and k.scalar == data), 0
        )
        return f"a host's entry holds '{data}', where a mapping of its variables goes (or nothing)", line
    top = re.search(r"invalid structure, it should be a dictionary, got: (?P<shape>.+)", text)
    if top:
        return f"it holds {top['shape']} at the top, where a mapping of groups goes", 1
    return f"Ansible's {plugin} reader says: {text}", 0


def _invalid(name: str) -> bool:
    from ansible import constants as C

    return bool(C.INVALID_VARIABLE_NAMES.search(name))


_LoaderWarnings._HANDLERS = (
    (re.compile(r"^Found duplicate mapping key '(?P<key>.*)'\.$"), _LoaderWarnings._duplicate_key),
    (re.compile(r"^Found variable using reserved name '(?P<name>.*)'\.$"), _LoaderWarnings._reserved),
    (re.compile(r"^Found both group and host with same name: (?P<name>.+)$"), _LoaderWarnings._group_and_host),
    (
        re.compile(r"^Skipping unexpected key \((?P<key>.+)\) in group \((?P<group>.+)\), only"),
        _LoaderWarnings._unexpected_key,
    ),
    (
        re.compile(
            r"^Skipping key \((?P<key>.+)\) in group \((?P<group>.+)\) as it is not a mapping, "
            r"it is (?:an? )?(?P<kind>.+)$"
        ),
        _LoaderWarnings._unexpected_key,
    ),
    (re.compile(r"^Skipping '(?P<name>.+)' as this is not a valid group definition$"), _LoaderWarnings._not_a_group),
    (re.compile(r"^Failed to parse inventory with '(?P<plugin>.+)' plugin"), _LoaderWarnings._plugin_failed),
    (re.compile(r"^Unable to parse (?P<path>.+) as an inventory source$"), _LoaderWarnings._unparsed),
    (re.compile(r"^No inventory was parsed"), _LoaderWarnings._nothing_parsed),
    (
        re.compile(
            r"^A duplicate localhost-like entry was found \((?P<name>.+)\)\. First found localhost was (?P<first>.+)$"
        ),
        _LoaderWarnings._second_localhost,
    ),
    (
        re.compile(r"^Found (?P<kind>group_vars|host_vars) that is not a directory, skipping: (?P<path>.+)$"),
        _LoaderWarnings._vars_not_a_directory,
    ),
    (re.compile(r"^Invalid characters were found in group names"), lambda self, match, event: None),
)


# ---------------------------------------------------------------- reading with Ansible


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
        message = " ".join(str(exc).split()) or "the vault password could not be read"
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


@dataclass
class Reading:
    """An inventory as Ansible read it: carpfarm's groups, each of their hosts' variables (templated,
    when asked), the same as written with where each is written, and the problems of the reading
    itself (Ansible's warnings, vars files that reach no host)."""

    groups: dict[str, list[str]]
    hostvars: dict[str, dict[str, Any]]
    written: Written
    problems: list[Problem]
    fatal: bool = False


def read_inventory(
    sources: Sequence[str | os.PathLike[str]], shown: str, vcpus: int | None = None, template: bool = True
) -> Reading:
    """Read ``sources`` as a play would (``shown``: how problems name the inventory); ``TopologyError``
    when Ansible cannot, with the place of each reason. Every host's variables are read, so that Ansible
    warns about every group_vars and host_vars file it would read in a play."""
    paths = [Path(s) for s in sources if Path(s).exists()]
    stopping = _yaml_problems(shown, paths)
    if stopping:
        raise TopologyError(stopping)
    from ansible.errors import AnsibleError

    files = [f for f in _yaml_files(paths) if _vars_file(f, _inventory_dirs(paths)) is None]
    warnings = _LoaderWarnings(shown, files)
    reading: _Read | None = None
    failure: AnsibleError | None = None
    with _warnings_caught() as caught:
        try:
            reading = _read(sources, vcpus, template)
        except AnsibleError as exc:
            failure = exc
    told = warnings.told(caught, reading.groups_seen if reading else ())
    if reading is None:
        raise TopologyError([*told, *([] if told else [_failure(shown, failure or AnsibleError())])]) from failure
    orphans = list(orphan_vars_files(_inventory_dirs(paths), reading.groups_seen, reading.hosts_seen))
    written = Written(reading.written, reading.memberships, files, _inventory_dirs(paths))
    return Reading(reading.groups, reading.hostvars, written, [*told, *orphans], warnings.fatal)


@dataclass
class _Read:
    groups: dict[str, list[str]]
    hostvars: dict[str, dict[str, Any]]
    written: dict[str, dict[str, Any]]
    memberships: dict[str, list[str]]
    groups_seen: list[str]
    hosts_seen: list[str]


def _read(sources: Sequence[str | os.PathLike[str]], vcpus: int | None, template: bool) -> _Read:
    from ansible.inventory.helpers import sort_groups
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    loader = _loader_class(DataLoader)()
    _with_vault_secrets(loader)
    inventory = InventoryManager(loader=loader, sources=[os.fspath(s) for s in sources])
    manager = VariableManager(loader=loader, inventory=inventory)
    groups = {name: [h.name for h in inventory.groups[name].get_hosts()] for name in GROUPS if name in inventory.groups}
    farm = dict.fromkeys(h for hosts in groups.values() for h in hosts)
    hostvars: dict[str, dict[str, Any]] = {}
    written: dict[str, dict[str, Any]] = {}
    memberships: dict[str, list[str]] = {}
    with _no_cleaning_of_no_facts():
        for name, host in inventory.hosts.items():
            raw = manager.get_vars(host=host, include_hostvars=False)
            if name not in farm:
                continue
            written[name] = {k: v for k, v in raw.items() if _wanted(k)}
            memberships[name] = [g.name for g in sort_groups(host.get_groups()) if g.name != "all"]
            if template:
                templar = Templar(loader=loader, variables=raw)
                hostvars[name] = {k: templar.template(v) for k, v in written[name].items()}
                if vcpus is not None:
                    hostvars[name].setdefault("ansible_processor_vcpus", vcpus)
    return _Read(groups, hostvars, written, memberships, list(inventory.groups), list(inventory.hosts))


_QUOTED_PATH = re.compile(r"'(?P<path>/[^']+)'")


def _failure(shown: str, exc: Exception) -> Problem:
    """What Ansible stopped on (no warning said why): its message, at the file it names."""
    text = " ".join(plain_words(str(exc)).split()) or "Ansible could not read it"
    file = next((m["path"] for m in _QUOTED_PATH.finditer(text) if Path(m["path"]).is_file()), "")
    fix = VAULT_FIX if "vault" in text.lower() else YAML_FIX
    if file:
        text = text.replace(f"'{file}'", Path(file).name)
    return Problem(shown, "inventory", f"cannot be read: {text}", fix, file=shown_path(file) if file else "")


def load_hostvars(
    source: str | os.PathLike[str], vcpus: int | None = None
) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]], list[Problem]]:
    """Return (groups, hostvars, problems) for carpfarm's groups, templated, as a play would see them.

    The problems are what Ansible warned about while reading, and the inventory's group_vars/ and
    host_vars/ entries that reach no host."""
    reading = _read_source(source, vcpus)
    return reading.groups, reading.hostvars, reading.problems


def _read_source(source: str | os.PathLike[str], vcpus: int | None) -> Reading:
    path = Path(source)
    if not path.exists():
        raise TopologyError([Problem(str(path), "inventory", "does not exist", "pass the path of an inventory")])
    return read_inventory([path], str(path), vcpus)


def load_topology(source: str | os.PathLike[str], vcpus: int | None = None) -> Topology:
    """The validated topology of an inventory, with unknown and misplaced variables refused, and
    every warning Ansible gave while reading it."""
    reading = _read_source(source, vcpus)
    if reading.fatal:
        raise TopologyError(reading.problems)
    return _with(reading.problems, reading.groups, reading.hostvars, reading.written)


def _with(
    problems: Sequence[Problem],
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    written: Written | None,
) -> Topology:
    """The topology, or every problem: those of the reading, then the model's, each at the place its
    variable is written and told once for all the hosts it reaches."""
    try:
        topology = build_topology(groups, hostvars, check_names=True)
    except TopologyError as exc:
        told = located(exc.problems, written) if written is not None else exc.problems
        raise TopologyError(merged([*problems, *told])) from None
    if problems:
        raise TopologyError(merged(problems))
    return topology


def topology_from_play(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Any],
    check_names: bool = False,
    sources: Sequence[str] = (),
) -> Topology:
    """Build the topology from a play's ``groups`` and ``hostvars`` (used by the filter plugin).

    site.yml's validate play asks for ``check_names`` and passes ``ansible_inventory_sources``: the
    sources are read again here, so that every warning Ansible gave about them, and vars files that
    reach no host, are problems, and each problem names the file and line of its variable."""
    wanted = {g: list(groups.get(g, [])) for g in GROUPS}
    if not check_names:
        return build_topology(wanted, _plain_hostvars(wanted, hostvars))
    files = [s for s in sources if Path(s).exists()]
    reading = read_inventory(files, ", ".join(shown_path(s) for s in files), template=False) if files else None
    if reading is not None and reading.fatal:
        raise TopologyError(reading.problems)
    problems, written = (reading.problems, reading.written) if reading else ([], None)
    return _with(problems, wanted, _plain_hostvars(wanted, hostvars), written)


def _plain_hostvars(wanted: Mapping[str, Sequence[str]], hostvars: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The variables the model reads of each host of carpfarm's groups, from a play's hostvars."""
    names = dict.fromkeys(h for hosts in wanted.values() for h in hosts)
    plain = {}
    for name in names:
        host = hostvars[name]
        plain[name] = {k: host[k] for k in host if _wanted(k)}
        facts = host.get("ansible_facts") if hasattr(host, "get") else None
        if "ansible_processor_vcpus" not in plain[name] and isinstance(facts, Mapping) and "processor_vcpus" in facts:
            plain[name]["ansible_processor_vcpus"] = facts["processor_vcpus"]
    return plain


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


# ---------------------------------------------------------------- where a variable is written


_PATH_PART = re.compile(r"\.?([^.[\]]+)|\[(\d+)\]")


def _parts(variable: str) -> list[str | int]:
    """'squid_backend_instances[0].cache_dir' -> ['squid_backend_instances', 0, 'cache_dir']."""
    return [int(m[2]) if m[2] is not None else m[1] for m in _PATH_PART.finditer(variable)]


def _tag(value: Any) -> tuple[str, int] | None:
    """(file, line) Ansible tagged ``value`` with when it read it, None without a file."""
    try:
        from ansible._internal._datatag._tags import Origin
    except ImportError:  # pragma: no cover - another ansible-core: no places
        return None
    origin = Origin.get_tag(value)
    if origin is None or not origin.path or not origin.line_num or not Path(origin.path).is_file():
        return None
    return origin.path, origin.line_num


@dataclass
class Written:
    """Each farm host's variables as Ansible read them (before templating), the groups the host is in
    (lowest precedence first, as Ansible sorts them), and the inventory's files and directories: enough
    to tell where the value a host got is written."""

    variables: dict[str, dict[str, Any]]
    groups: dict[str, list[str]]
    files: list[Path]
    directories: list[Path]

    def place(self, host: str, variable: str) -> tuple[tuple[str, int], tuple[str, int]] | None:
        """Where ``variable`` (with its item and key: 'x[0].port') of ``host`` is written: (the deepest
        part of it that is, its top-level key), None when it is not written (a default, a rule's)."""
        parts = _parts(variable)
        variables = self.variables.get(host, {})
        if not parts or parts[0] not in variables:
            return None
        value = variables[str(parts[0])]
        top = self._top(host, str(parts[0]), value)
        if top is None:
            return None
        place = top
        for part in parts[1:]:
            if isinstance(value, Mapping) and part in value:
                place = _tag(next(k for k in value if k == part)) or place
                value = value[part]
            elif isinstance(value, list) and isinstance(part, int) and part < len(value):
                value = value[part]
                place = _tag(value) or place
            else:
                break
        return place, top

    def _top(self, host: str, name: str, value: Any) -> tuple[str, int] | None:
        """The key that gave ``host`` its ``value`` of ``name``. Ansible tags each value it reads with its
        place (its key is the line at or above); true, false and null carry no tag, so the definitions
        are searched in Ansible's order of precedence for one that reads as that value."""
        tagged = _tag(value)
        if tagged is not None:
            file, line = tagged
            keys = [k.line for k in keys_of(file) if k.path and k.path[-1] == name and k.line <= line]
            return file, max(keys, default=line)
        for path, key in self._definitions(host, name):
            if key.scalar is not None and _same(_scalar(key.scalar), value):
                return str(path), key.line
        return _tag(next(k for k in self.variables[host] if k == name))

    def _definitions(self, host: str, name: str) -> Iterator[tuple[Path, _Key]]:
        """Every place ``name`` is set for ``host``, the one Ansible prefers first: host_vars, the host's
        entry, group_vars files (the host's groups, most specific first, then all), groups' vars:."""
        groups = [*reversed(self.groups.get(host, [])), "all"]
        for file in self._vars_files("host_vars", [host]):
            yield from ((file, k) for k in keys_of(file) if k.path == (name,))
        for file in self.files:
            yield from ((file, k) for k in keys_of(file) if k.path[-3:] == ("hosts", host, name))
        for file in self._vars_files("group_vars", groups):
            yield from ((file, k) for k in keys_of(file) if k.path == (name,))
        for group in groups:
            for file in self.files:
                yield from ((file, k) for k in keys_of(file) if k.path[-3:] == (group, "vars", name))

    def _vars_files(self, kind: str, names: Sequence[str]) -> Iterator[Path]:
        for name in names:
            for directory in self.directories:
                base = directory / kind
                yield from (
                    base / f"{name}{suffix}" for suffix in VARS_SUFFIXES if (base / f"{name}{suffix}").is_file()
                )
                if (base / name).is_dir():
                    yield from sorted(p for p in (base / name).rglob("*") if p.is_file())


def _scalar(text: str) -> Any:
    with contextlib.suppress(yaml.YAMLError):
        return yaml.load(text, Loader=_TolerantLoader)
    return text


def _same(written: Any, value: Any) -> bool:
    return type(written) is type(value) and written == value


def _setter(file: str, line: int) -> tuple[str, str]:
    """('group', name) or ('host', name) whose variables the key at ``file``:``line`` belongs to."""
    path = Path(file)
    for kind, what in (("group_vars", "group"), ("host_vars", "host")):
        for ancestor in path.parents:
            if ancestor.name == kind:
                inside = path.relative_to(ancestor).parts
                return what, inside[0] if len(inside) > 1 else path.stem
    key = next((k for k in keys_of(path) if k.line == line), None)
    if key is not None and len(key.path) >= 3 and key.path[-2] == "vars":
        return "group", str(key.path[-3])
    if key is not None and len(key.path) >= 3 and key.path[-3] == "hosts":
        return "host", str(key.path[-2])
    return "", ""


def located(problems: Sequence[Problem], written: Written) -> list[Problem]:
    """Each problem about a host's variable at the file and line where that variable is written (for
    every host it was found on), with the group whose variables set it; the others as they are."""
    told: list[Problem] = []
    for problem in problems:
        hosts = list(written.variables) if problem.host == EVERY_HOST else list(problem.hosts or (problem.host,))
        places = {h: written.place(h, problem.variable) for h in hosts if h in written.variables}
        found = [(host, place) for host, place in places.items() if place is not None]
        if problem.file or not found:
            told.append(problem)
            continue
        for host, ((file, line), top) in found:
            kind, name = _setter(*top)
            told.append(
                replace(
                    problem,
                    file=shown_path(file),
                    line=line,
                    hosts=(host,),
                    group=name if kind == "group" else "",
                )
            )
    return told
