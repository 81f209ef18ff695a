"""The benchmark's phases, each a module selectable with `--phases`.

A phase module has `NAME`, a one-line `SUMMARY`, `async run(context) -> dict` and
`markdown(result) -> str` (its section of the report); one that needs slow-to-make data
also has `async prepare(context) -> dict`, which `--prepare` runs instead of `run`. Its result holds at least `errors`
(failed calls: must be 0) and `fatal` (why it could not finish, or None); phases with
targets list them under `targets` as `report.target_row`s.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, cast

from ..context import Context
from ..driver import error_text
from ..errors import BenchError
from ..serverproc import ServerProcess

# In the order a full run makes them: the comparison first, the long scale phase, then the image build.
PHASES = {
    "compare": "compare",
    "startup": "startup",
    "worst-call": "worst_call",
    "head-of-line": "head_of_line",
    "bulk-store": "bulk_store",
    "lifecycle": "lifecycle",
    "durability": "durability",
    "providers": "providers",
    "query-path": "query_path",
    "scale": "scale",
    "image": "image",
}


class Phase(Protocol):
    NAME: str
    SUMMARY: str
    run: Callable[[Context], Awaitable[dict[str, Any]]]
    markdown: Callable[[dict[str, Any]], str]


def load(name: str) -> Phase:
    return cast(Phase, importlib.import_module(f"{__name__}.{PHASES[name]}"))


@contextmanager
def recording_failure(server: ServerProcess, result: dict[str, Any]) -> Iterator[None]:
    """A phase's work against `server`: why it failed goes to result["fatal"] (with the server's
    log tail when the failure was unexpected), and the server is closed either way."""
    try:
        yield
    except BenchError as exc:
        result["fatal"] = str(exc)
    except Exception as exc:
        result["fatal"] = f"{error_text(exc)}\n{server.log_tail()}"
    finally:
        server.close()
