"""What carpfarm says when an inventory is wrong: host, variable, value, fix."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

NO_VALUE: Any = object()  # a problem about a whole group has no single value
# A variable whose value is a secret, or whose name is a misspelling of one: its value is never shown.
SECRET_NAME = re.compile(r"pa?s{1,2}w|pass|secret|pwd", re.IGNORECASE)
HIDDEN = "(hidden)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an inventory, with the change that fixes it."""

    host: str
    variable: str
    message: str
    fix: str
    value: Any = NO_VALUE

    @property
    def shown_value(self) -> Any:
        """The value as carpfarm tells it: a secret's is hidden, whatever is wrong with it."""
        return HIDDEN if SECRET_NAME.search(self.variable) and self.value is not NO_VALUE else self.value

    def __str__(self) -> str:
        shown = "" if self.value is NO_VALUE else f" = {self.shown_value!r}"
        return f"{self.host}: {self.variable}{shown}: {self.message}. Fix: {self.fix}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.value is NO_VALUE:
            data.pop("value")
        else:
            data["value"] = self.shown_value
        return data


class TopologyError(ValueError):
    """An inventory that carpfarm refuses; carries every problem found, not only the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"the inventory has {count} problem{'s' if count != 1 else ''}; nothing was changed"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))
