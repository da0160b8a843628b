"""How one inventory variable is declared: type, default, range, meaning and fix, in one place.

Every variable a carpfarm role or playbook reads is a pydantic field made by ``declare()``
(see ``carpfarm.variables``). The field carries, besides its type and range:

* ``description``: its one-line meaning (``carpfarm.variables.roledocs`` writes it into the roles'
  ``defaults/main.yml``, ``argument_specs`` and README tables);
* ``fix``: what to tell a user whose value is refused;
* ``scope``: the inventory groups whose hosts may set it (``ANYWHERE`` for farm-wide ones);
* ``roles``: the roles whose ``defaults/main.yml`` carry it;
* ``multiline``: true only for free-form squid.conf text; every other string, and every string
  inside a list or mapping, is one line (a newline would start a squid.conf line of its own);
* ``secret``: its value is never shown, not even in a problem about it.

Values arrive as Ansible gives them: ``-e var=24`` and INI inventories give strings, so
whole numbers and booleans written as text are read the way Ansible's ``int`` and ``bool`` do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic.fields import FieldInfo

ANYWHERE = "*"
INTERNAL = "internal"  # set by a role for another role; never by an inventory

# The strings Ansible's ``bool`` filter and argument_specs ``type: bool`` accept.
_TRUE = frozenset({"yes", "on", "1", "true", "y", "t"})
_FALSE = frozenset({"no", "off", "0", "false", "n", "f"})


def digits_as_int(value: Any) -> Any:
    """``-e var=24`` gives Ansible the string '24': take a string of digits as the number.

    Anything else (``'two'``, ``'2.5'``, booleans) still meets strict validation."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return value


def text_as_bool(value: Any) -> Any:
    """``-e flag=false`` and INI inventories give the string 'false': read it as Ansible's ``bool`` does."""
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return value


WholeNumber = BeforeValidator(digits_as_int)
AnsibleBool = Annotated[bool, BeforeValidator(text_as_bool)]


Port = Annotated[int, WholeNumber, Field(ge=1, le=65535)]
OptionalPort = Annotated[int, WholeNumber, Field(ge=0, le=65535)]  # 0 = off


@dataclass(frozen=True)
class Declared:
    """What ``declare`` attached to a field, read back for checks and documentation."""

    name: str
    meaning: str
    fix: str
    scope: tuple[str, ...]
    roles: tuple[str, ...]
    multiline: bool = False
    secret: bool = False


def declare(
    name: str,
    default: Any,
    meaning: str,
    fix: str,
    *,
    scope: Sequence[str],
    roles: Sequence[str] = (),
    multiline: bool = False,
    secret: bool = False,
    **constraints: Any,
) -> Any:
    """A pydantic field for inventory variable ``name`` (the field's alias)."""
    extra: dict[str, Any] = {
        "fix": fix,
        "scope": list(scope),
        "roles": list(roles),
        "multiline": multiline,
        "secret": secret,
    }
    if default is ...:
        return Field(alias=name, description=meaning, json_schema_extra=extra, **constraints)
    if isinstance(default, list | dict):
        return Field(
            default_factory=lambda: type(default)(default),
            alias=name,
            description=meaning,
            json_schema_extra=extra,
            **constraints,
        )
    return Field(default, alias=name, description=meaning, json_schema_extra=extra, **constraints)


def declared(field: FieldInfo) -> Declared:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return Declared(
        name=str(field.alias),
        meaning=field.description or "",
        fix=str(extra.get("fix", "correct it")),
        scope=tuple(str(s) for s in extra.get("scope", ()) or ()),  # type: ignore[union-attr]
        roles=tuple(str(r) for r in extra.get("roles", ()) or ()),  # type: ignore[union-attr]
        multiline=extra.get("multiline") is True,
        secret=extra.get("secret") is True,
    )
