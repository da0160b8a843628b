"""Pydantic's validation errors, told as carpfarm problems: host, variable, value, fix.

Pydantic's own words are kept where they are plain ("input should be greater than or equal to 1");
where pydantic would name a Python type or class ("a valid dictionary or instance of InstanceSpec"),
the value's shape is told instead ("a valid dictionary (key: value), not a list"), and where it would
print a regular expression, what the pattern means ("an absolute directory ...: it is a relative
path"). The fix comes from the variable's declaration (``carpfarm.variables.fields.declare``), so each
variable's advice is written once, next to its type; the keys of a ``squid_backend_instances`` item
have theirs here. A secret's value is never shown, nor a secret inside a value shown (a WCCP
service's password, when the service is what is wrong).
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from carpfarm.problems import HIDDEN, NO_VALUE, SECRET_NAME, Problem, plain_words, shape
from carpfarm.variables import CACHE_DIR_PATTERN, DEFAULT_CACHE_ROOT, InstanceSpec
from carpfarm.variables.common import MAX_WEIGHT, NAME_PATTERN, SECRET_WORD, SECRET_WORD_CHARACTERS, PortOrRange
from carpfarm.variables.fields import declared

# Tags of the discriminated unions (count | list, auto | count) and of the members of plain unions
# (a port or a "lo-hi" range): not part of a variable's path.
_UNION_TAGS = ("count", "list", "auto", "int", "str", "constrained-str")

CACHE_DIR_EXAMPLE = "/srv/cache1 or /mnt/disk1/squid"
CACHE_DIR_FIX = (
    f"write an absolute path on a disk of its own, such as {CACHE_DIR_EXAMPLE} (no spaces, no '/' at the "
    f"end, no '.' or '..' parts), or leave cache_dir out for {DEFAULT_CACHE_ROOT}/<name>"
)
_STOP_INSTANCE = (
    "a weight cannot switch an instance off: to send it no requests set its state: drained, or remove it from the list"
)
# The keys of one squid_backend_instances item (InstanceSpec has no declarations of its own).
INSTANCE_FIXES = {
    "name": "name it with 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit (e.g. big1)",
    "port": "set a port from 1 to 65535, or leave port out: instance i listens on squid_backend_port_base + i",
    "weight": f"set a whole number from 1 to {MAX_WEIGHT} (only the ratio between peers matters); {_STOP_INSTANCE}",
    "cache_size_mb": "set its cache_dir size in MB, a whole number of 1 or more, or leave it out for "
    "squid_backend_cache_size_mb",
    "cache_mem_mb": "set its cache_mem in MB, a whole number of 1 or more, or leave it out for "
    "squid_backend_cache_mem_mb",
    "cache_dir": CACHE_DIR_FIX,
    "state": "use 'active' or 'drained' (drained: the frontends send it no requests)",
}
INSTANCE_ITEM_FIX = (
    "write each item of the list as a mapping of its keys (name, port, weight, cache_size_mb, cache_mem_mb, "
    "cache_dir, state), e.g. '- {name: big, weight: 2}', or set a whole number of instances instead"
)
# What to add to a variable's fix when its value is below the least it may be.
_BELOW_LEAST = {
    "squid_backend_weight": "a weight cannot switch a host off: to send it no requests set squid_backend_state: "
    "drained; to take it out of the farm, move it to the squid_backends_retired group",
}


def _patterns(kind: Any) -> list[str]:
    """The string patterns inside a type (its annotations' ``Field(pattern=...)``)."""
    found, pending = [], [kind]
    while pending:
        item = pending.pop()
        found += [str(m.pattern) for m in getattr(item, "metadata", []) if getattr(m, "pattern", None)]
        pending.extend(typing.get_args(item))
    return found


PORT_RANGE_PATTERNS = _patterns(PortOrRange)  # an item of carpfarm_safe_ports: a port, or a "lo-hi" range
# The patterns a value may fail, told in words (an unknown one is told by the variable's fix).
_PATTERNS = {
    CACHE_DIR_PATTERN: "string should be an absolute directory Squid can take",
    NAME_PATTERN: "string should be a name of 1 to 63 letters, digits, '_', '.' or '-' that starts with a letter "
    "or digit",
    SECRET_WORD: f"string should be one word of {SECRET_WORD_CHARACTERS} only: it holds another character (a "
    "space, a quote or a '#' would be cut or misread in the configuration file)",
    r"\S": "string should not be blank",
}


def _loc_to_variable(alias: str, loc: Sequence[str | int]) -> str:
    text = alias
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part not in _UNION_TAGS:
            text += f".{part}"
    return text


def _value_at(data: Mapping[str, Any], alias: str, loc: Sequence[str | int]) -> Any:
    value: Any = data.get(alias)
    for part in loc:
        in_list = isinstance(value, list) and isinstance(part, int) and part < len(value)
        if in_list or (isinstance(value, Mapping) and part in value):
            value = value[part]
    return value


def problems_of(model: type[BaseModel], host: str, data: Mapping[str, Any], exc: ValidationError) -> Iterator[Problem]:
    """One problem per variable (or item, or key) pydantic refused, named as the inventory names it.

    The errors of one value against each member of a union (a port, or a 'lo-hi' range) are one problem."""
    told: dict[str, list[ErrorDetails]] = {}
    for err in exc.errors():
        field, alias, loc = _located(model, err)
        told.setdefault(_loc_to_variable(alias, loc), []).append(err)
    for variable, errs in told.items():
        field, alias, loc = _located(model, errs[0])
        yield _problem(host, variable, field, _value_at(data, alias, loc), errs)


def _located(model: type[BaseModel], err: ErrorDetails) -> tuple[FieldInfo | None, str, list[str | int]]:
    """The field an error is about, its inventory name, and the place inside its value."""
    head, *loc = err["loc"] or ("",)
    fields = model.model_fields
    field = fields.get(str(head)) or next((f for f in fields.values() if f.alias == head), None)
    return field, str(field.alias if field is not None and field.alias else head), list(loc)


def _problem(host: str, variable: str, field: FieldInfo | None, value: Any, errs: list[ErrorDetails]) -> Problem:
    err = errs[0]
    if err["type"] == "missing":
        return Problem(host, variable, "is required but not set", _fix(field, variable, err))
    if err["type"] == "extra_forbidden":
        return Problem(host, variable, "is not a known key", _unknown_key_fix(field, err), _masked(err.get("input")))
    messages = list(dict.fromkeys(_message(e, value) for e in errs))
    if any(_ctx(e, "pattern") in PORT_RANGE_PATTERNS for e in errs):
        messages = ["input should be a port (a whole number) or a 'lo-hi' range of ports, such as '1025-65535'"]
    message = messages[0] if len(messages) == 1 else "input should be one of: " + "; or ".join(messages)
    shown = HIDDEN if _secret(field) else _masked(value)
    return Problem(host, variable, message, _fix(field, variable, err), shown)


def _message(err: ErrorDetails, value: Any) -> str:
    """What is wrong with ``value``: pydantic's plain words where they are plain ("input should be
    greater than or equal to 1"), the shape of the value where pydantic would name a Python type or
    class, and words where it would print a regular expression."""
    told = _TOLD.get(err["type"])
    return told(err, value) if told is not None else _pydantic_words(str(err["msg"]))


def _ctx(err: ErrorDetails, key: str) -> Any:
    return (err.get("ctx") or {}).get(key)


def _not_a_choice(err: ErrorDetails, value: Any) -> str:
    """A literal refused: the choices, or for ``carp_frontend_instances`` 'auto' or a count."""
    if "auto" in err["loc"]:
        return "input should be 'auto' or a whole number of instances"
    return _pydantic_words(str(err["msg"]))


def _pydantic_words(message: str) -> str:
    """Pydantic's message, without Python's type or class names."""
    text = plain_words(re.sub(r" or instance of \w+", "", message))
    return text[0].lower() + text[1:] if text else "is refused"


_TOLD: dict[str, Callable[[ErrorDetails, Any], str]] = {
    "int_type": lambda err, value: "input should be a valid integer: a whole number, without a unit or a fraction",
    "int_parsing": lambda err, value: "input should be a valid integer: a whole number, without a unit or a fraction",
    "int_from_float": lambda err, value: "input should be a valid integer: a whole number, without a fraction",
    "bool_type": lambda err, value: "input should be a valid boolean: true or false",
    "bool_parsing": lambda err, value: "input should be a valid boolean: true or false",
    "list_type": lambda err, value: f"input should be a valid list, not {shape(value)}",
    "dict_type": lambda err, value: f"input should be a valid dictionary (key: value), not {shape(value)}",
    "model_type": lambda err, value: f"input should be a valid dictionary (key: value), not {shape(value)}",
    "model_attributes_type": lambda err, value: f"input should be a valid dictionary (key: value), not {shape(value)}",
    "string_type": lambda err, value: f"input should be a valid string, not {shape(value)}",
    "literal_error": _not_a_choice,
    "string_pattern_mismatch": lambda err, value: _pattern_message(str(_ctx(err, "pattern")), value),
    "too_short": lambda err, value: (
        f"list should have at least {_ctx(err, 'min_length')} item{'s' if _ctx(err, 'min_length') != 1 else ''}, "
        f"not {_ctx(err, 'actual_length')}"
    ),
    "too_long": lambda err, value: (
        f"list should have at most {_ctx(err, 'max_length')} items, not {_ctx(err, 'actual_length')}"
    ),
    "value_error": lambda err, value: str(err["msg"]).removeprefix("Value error, "),
}


def _pattern_message(pattern: str, value: Any) -> str:
    """What a value that fails ``pattern`` is, in words: a cache_dir says which rule it breaks."""
    if pattern == CACHE_DIR_PATTERN and isinstance(value, str):
        return _cache_dir_message(value)
    return _PATTERNS.get(pattern, "string should be written as the fix says")


def _cache_dir_message(path: str) -> str:
    """Which rule of an absolute directory a refused cache_dir breaks."""
    if not path.startswith("/"):
        why = "it is a relative path"
    elif any(c.isspace() for c in path):
        why = "it holds a space, where squid.conf would split it"
    elif path.endswith("/"):
        why = "it ends in '/'"
    elif "/." in path:
        why = "it has a '.' or '..' part, or a hidden directory"
    else:
        why = "it holds a character other than letters, digits and _ @ + - ."
    return f"{_PATTERNS[CACHE_DIR_PATTERN]}: {why}"


def _fix(field: FieldInfo | None, variable: str, err: ErrorDetails) -> str:
    """The variable's fix; a key of a squid_backend_instances item has its own."""
    key = next((p for p in reversed(err["loc"]) if isinstance(p, str) and p not in _UNION_TAGS), "")
    if _item_model(field) is InstanceSpec and variable.endswith("]"):
        return INSTANCE_ITEM_FIX
    if _item_model(field) is InstanceSpec and "]." in variable and key in INSTANCE_FIXES:
        return INSTANCE_FIXES[key]
    if (err.get("ctx") or {}).get("pattern") == CACHE_DIR_PATTERN:
        return CACHE_DIR_FIX
    fix = declared(field).fix if field is not None else "correct it"
    below = err["type"] in ("greater_than_equal", "greater_than")
    if below and field is not None and field.alias in _BELOW_LEAST:
        return f"{fix}; {_BELOW_LEAST[str(field.alias)]}"
    return fix


def _unknown_key_fix(field: FieldInfo | None, err: ErrorDetails) -> str:
    """Remove the key, or correct it to one the item takes (they are listed)."""
    item = _item_model(field)
    keys = [str(f.alias or name) for name, f in item.model_fields.items()] if item is not None else []
    key = str(err["loc"][-1])
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}remove it, or correct its name; the keys are {', '.join(keys)}" if keys else "remove it"


def _item_model(field: FieldInfo | None) -> type[BaseModel] | None:
    """The model of the items (or the mapping) a variable holds, such as InstanceSpec, if any."""
    if field is None:
        return None
    pending: list[Any] = [field.annotation, *field.metadata]
    while pending:
        kind = pending.pop(0)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
        pending.extend(typing.get_args(kind))
    return None


def _secret(field: FieldInfo | None) -> bool:
    return field is not None and declared(field).secret


def _masked(value: Any) -> Any:
    """``value`` with whatever a secret-looking key holds (``password``, ``pwd``...) hidden, at any depth."""
    if value is NO_VALUE:
        return value
    if isinstance(value, Mapping):
        return {k: HIDDEN if SECRET_NAME.search(str(k)) else _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value
