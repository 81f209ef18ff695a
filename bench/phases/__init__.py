"""The benchmark's phases, each a module selectable with `--phases`.

A phase module has `NAME`, a one-line `SUMMARY`, `async run(context) -> dict` and
`markdown(result) -> str` (its section of the report). Its result holds at least `errors`
(failed calls: must be 0) and `fatal` (why it could not finish, or None); phases with
targets list them under `targets` as `report.target_row`s.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from ..context import Context

# In the order a full run makes them: the comparison first, the long scale phase last.
PHASES = {
    "compare": "compare",
}


class Phase(Protocol):
    NAME: str
    SUMMARY: str
    run: Callable[[Context], Awaitable[dict[str, Any]]]
    markdown: Callable[[dict[str, Any]], str]


def load(name: str) -> Phase:
    return cast(Phase, importlib.import_module(f"{__name__}.{PHASES[name]}"))
