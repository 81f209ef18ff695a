"""How tools reach the client: signatures shaped by the configuration, errors as tool errors."""

# No `from __future__ import annotations`: the SDK reads the signatures at runtime.
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from .. import times
from ..errors import ServiceError
from ..filters import Filter, FilterError, filter_parameters, parse_filter, typed_filter
from ..settings import Settings

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
# Stores are idempotent (the same text maps to the same point) but not purely additive: a
# given id, or the same text with new metadata, replaces what the point held.
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)


def reshape(fn: Callable[..., Any], *, hide: tuple[str, ...] = (), add: Sequence[inspect.Parameter] = ()) -> None:
    """Give `fn` the signature the client sees: hidden parameters removed, configured ones added."""
    signature = inspect.signature(fn)
    kept = [p for p in signature.parameters.values() if p.name not in hide and p.kind is not p.VAR_KEYWORD]
    # The SDK builds each tool's input schema from inspect.signature, which honours __signature__.
    fn.__signature__ = signature.replace(parameters=[*kept, *add])  # type: ignore[attr-defined]


@contextmanager
def tool_errors() -> Iterator[None]:
    """Anticipated failures reach the client as a tool error with their actionable message."""
    try:
        yield
    except (ServiceError, FilterError) as exc:
        raise ToolError(str(exc)) from None


class Shaping:
    """What the configuration decides for every tool: the default collection, and the filters offered."""

    def __init__(self, settings: Settings, metadata_path: Callable[[str], str]) -> None:
        self.settings = settings
        # Where a metadata key is in the payload: the store's layout says (QDRANT_METADATA_KEY).
        self.metadata_path = metadata_path
        self.fields = settings.filterable_fields or []
        self.typed_filters = filter_parameters(self.fields)
        # `collection_name` disappears when COLLECTION_NAME is set (and with it collection_names).
        self.hidden: tuple[str, ...] = ("collection_name", "collection_names") if settings.collection_name else ()
        # query_filter is offered only with QDRANT_ALLOW_ARBITRARY_FILTER and no typed filters.
        self.filter_hidden = self.typed_filters or not settings.allow_arbitrary_filter

    def collection(self, name: str | None) -> str:
        resolved = name or self.settings.collection_name
        if not resolved:
            raise ToolError("collection_name is required (no COLLECTION_NAME default is configured)")
        return resolved

    def search_filter(self, query_filter: dict[str, Any] | str | None, values: Mapping[str, Any]) -> Filter | None:
        """The filter the typed parameters or the raw query_filter give (whichever this server offers)."""
        if self.typed_filters:
            return typed_filter(self.fields, values, self.metadata_path)
        return parse_filter(query_filter) if query_filter is not None else None

    def filtered(self, fn: Callable[..., Any], *hide: str) -> None:
        """Shape a tool that takes filters: hidden parameters and query_filter removed, typed filters added."""
        reshape(fn, hide=self.hidden + hide + (("query_filter",) if self.filter_hidden else ()), add=self.typed_filters)


def time_window(after: str | None, before: str | None) -> tuple[datetime | None, datetime | None]:
    """created_after and created_before (checked and normalized by their validators) as datetimes."""
    start = None if after is None else times.parse_time(after, what="created_after")
    end = None if before is None else times.parse_time(before, what="created_before")
    if start is not None and end is not None and start >= end:
        raise ToolError(f"created_after ({after}) must be earlier than created_before ({before})")
    return start, end
