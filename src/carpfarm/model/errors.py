"""Pydantic's validation errors, told as carpfarm problems: host, variable, value, fix.

The fix comes from the variable's declaration (``carpfarm.variables.fields.declare``), so each
variable's advice is written once, next to its type; a secret's value is never shown, nor a
secret inside a value shown (a WCCP service's password, when the service is what is wrong).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from carpfarm.problems import HIDDEN, SECRET_NAME, Problem
from carpfarm.variables.fields import declared

# Tags of the discriminated unions (count | list, auto | count): not part of a variable's path.
_UNION_TAGS = ("count", "list", "auto")
_INSTANCE_KEYS = "name, port, weight, cache_size_mb, cache_mem_mb, cache_dir, state"


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
    """One problem per pydantic error, named by the inventory variable it concerns."""
    fields = {name: field for name, field in model.model_fields.items()}
    for err in exc.errors():
        loc = list(err["loc"])
        head = str(loc.pop(0)) if loc else ""
        field = fields.get(head) or next((f for f in fields.values() if f.alias == head), None)
        alias = field.alias if field is not None and field.alias else head
        variable = _loc_to_variable(alias, loc)
        if err["type"] == "missing":
            yield Problem(host, variable, "is required but not set", _fix(field), None)
        elif err["type"] == "extra_forbidden":
            yield Problem(
                host,
                variable,
                "is not a known key",
                f"remove it; instance keys are {_INSTANCE_KEYS}",
                _masked(err.get("input")),
            )
        else:
            message = err["msg"]
            value = HIDDEN if _secret(field) else _masked(_value_at(data, alias, loc))
            yield Problem(host, variable, message[0].lower() + message[1:], _fix(field), value)


def _fix(field: Any) -> str:
    return declared(field).fix if field is not None else "correct it"


def _secret(field: Any) -> bool:
    return field is not None and declared(field).secret


def _masked(value: Any) -> Any:
    """``value`` with whatever a secret-looking key holds (``password``, ``pwd``...) hidden, at any depth."""
    if isinstance(value, Mapping):
        return {k: HIDDEN if SECRET_NAME.search(str(k)) else _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value
