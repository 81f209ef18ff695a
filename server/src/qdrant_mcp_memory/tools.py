"""The MCP tools: typed, bounded parameters in; a structured result plus readable text out.

Parameters the deployment fixes are hidden the way the official server hides them:
`collection_name` disappears when COLLECTION_NAME is set, and filter parameters appear
only as FILTERABLE_FIELDS (or QDRANT_ALLOW_ARBITRARY_FILTER) configure them. What a value
may be is checked once, at this boundary (validation.py).
"""

# No `from __future__ import annotations`: the SDK reads these signatures at runtime.
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from . import validation
from .errors import ServiceError
from .filters import FilterError, filter_parameters, metadata_filter, parse_filter, typed_filter
from .results import (
    CollectionInfoResult,
    CollectionListResult,
    DeleteResult,
    FindResult,
    StoreManyResult,
    StoreResult,
)
from .settings import Settings
from .store import Entry, QdrantStore
from .validation import MAX_CALL_CHARS, MAX_DOCUMENT_CHARS, MAX_ENTRIES, MAX_QUERY_CHARS, MAX_RESULTS


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


CollectionName = Annotated[
    str,
    Field(min_length=1, max_length=255, description="The Qdrant collection to use."),
    AfterValidator(validation.collection_name),
]
Information = Annotated[
    str,
    Field(min_length=1, max_length=MAX_DOCUMENT_CHARS, description="The text to remember."),
    AfterValidator(validation.document),
]
Query = Annotated[
    str,
    Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for, in natural language."),
    AfterValidator(validation.query),
]
# Field before the validators: pydantic puts the constraints into the JSON schema only then.
Metadata = Annotated[
    dict[str, Any] | None,
    Field(description="Optional JSON object stored beside the text (filterable as metadata.<key>)."),
    BeforeValidator(validation.metadata),
]
PointIdParam = Annotated[
    str | int | None,
    Field(
        description="Optional point id (UUID or non-negative integer). Without it the id derives from the text, "
        "so storing the same text twice keeps one point; an existing point with the given id is replaced."
    ),
    BeforeValidator(_optional(validation.point_id)),
]
PointIds = Annotated[
    list[Annotated[str | int, BeforeValidator(validation.point_id)]] | None,
    Field(min_length=1, max_length=MAX_ENTRIES, description="Ids of the points to delete."),
]
Limit = Annotated[
    int, Field(ge=1, le=MAX_RESULTS, description="How many results at most."), BeforeValidator(validation.plain_int)
]
ScoreThreshold = Annotated[
    float | None,
    Field(ge=-1.0, le=1.0, description="Only results at least this similar (cosine, -1..1)."),
    BeforeValidator(_optional(validation.plain_float)),
]


class StoreEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    information: Information
    metadata: Metadata = None
    id: PointIdParam = None


READ_TOOLS = ("qdrant-find", "qdrant-list-collections", "qdrant-collection-info")
WRITE_TOOLS = ("qdrant-store", "qdrant-store-many", "qdrant-delete")
# The access each tool needs (in OAuth mode, the read or the write scope): one table built from
# the two lists above, so a tool added to either is covered; a tool in neither is refused.
TOOL_ACCESS: dict[str, Literal["read", "write"]] = {
    **dict.fromkeys(READ_TOOLS, "read"),
    **dict.fromkeys(WRITE_TOOLS, "write"),
}
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


def register_tools(mcp: MCPServer, settings: Settings, store: QdrantStore) -> list[str]:
    """Register the tools this configuration offers; returns their names."""
    _register_read_tools(mcp, settings, store)
    if settings.read_only:
        return list(READ_TOOLS)
    _register_write_tools(mcp, settings, store)
    return [*READ_TOOLS, *WRITE_TOOLS]


def _collection_resolver(settings: Settings) -> Callable[[str | None], str]:
    def collection_of(name: str | None) -> str:
        resolved = name or settings.collection_name
        if not resolved:
            raise ToolError("collection_name is required (no COLLECTION_NAME default is configured)")
        return resolved

    return collection_of


def _hidden(settings: Settings) -> tuple[str, ...]:
    return ("collection_name",) if settings.collection_name else ()


def _register_read_tools(mcp: MCPServer, settings: Settings, store: QdrantStore) -> None:
    hidden = _hidden(settings)
    collection_of = _collection_resolver(settings)
    fields = settings.filterable_fields or []
    typed_filters = filter_parameters(fields)

    async def find(
        query: Query,
        limit: Limit = settings.search_limit,
        score_threshold: ScoreThreshold = None,
        collection_name: CollectionName | None = None,
        query_filter: Annotated[
            dict[str, Any] | None,
            Field(
                description="A Qdrant filter (must / should / must_not conditions) on the payload, "
                'e.g. {"must": [{"key": "metadata.topic", "match": {"value": "x"}}]}.'
            ),
        ] = None,
        **filter_values: Any,
    ) -> Annotated[CallToolResult, FindResult]:
        collection = collection_of(collection_name)
        with tool_errors():
            if typed_filters:
                search_filter = typed_filter(fields, filter_values)
            else:
                search_filter = parse_filter(query_filter) if query_filter is not None else None
            found = await store.find(collection, query, limit, score_threshold, search_filter)
        return FindResult.from_found(collection, query, found).respond()

    find_hide = hidden + (("query_filter",) if typed_filters or not settings.allow_arbitrary_filter else ())
    reshape(find, hide=find_hide, add=typed_filters)
    mcp.add_tool(
        find,
        name="qdrant-find",
        title="Find memories",
        description=settings.tool_find_description,
        annotations=READ_ONLY,
    )

    async def list_collections() -> Annotated[CallToolResult, CollectionListResult]:
        with tool_errors():
            names = await store.list_collections()
        return CollectionListResult(collections=names).respond()

    mcp.add_tool(
        list_collections,
        name="qdrant-list-collections",
        title="List collections",
        description="List the Qdrant collections this server can search.",
        annotations=READ_ONLY,
    )

    async def collection_info(
        collection_name: CollectionName | None = None,
    ) -> Annotated[CallToolResult, CollectionInfoResult]:
        collection = collection_of(collection_name)
        with tool_errors():
            details = await store.collection_details(collection)
        return CollectionInfoResult.from_details(details).respond()

    reshape(collection_info, hide=hidden)
    mcp.add_tool(
        collection_info,
        name="qdrant-collection-info",
        title="Collection info",
        description="Points count, vectors (names, sizes, distance) and indexed payload fields of a "
        "collection, and whether this server's embedding model can search it.",
        annotations=READ_ONLY,
    )


def _register_write_tools(mcp: MCPServer, settings: Settings, store: QdrantStore) -> None:
    hidden = _hidden(settings)
    collection_of = _collection_resolver(settings)

    async def store_one(
        information: Information,
        metadata: Metadata = None,
        collection_name: CollectionName | None = None,
        id: PointIdParam = None,
    ) -> Annotated[CallToolResult, StoreResult]:
        collection = collection_of(collection_name)
        with tool_errors():
            stored = await store.store(collection, [Entry(information, metadata, id)])
        return StoreResult(collection=collection, id=stored.ids[0]).respond()

    reshape(store_one, hide=hidden)
    mcp.add_tool(
        store_one,
        name="qdrant-store",
        title="Store a memory",
        description=settings.tool_store_description,
        annotations=WRITE,
    )

    async def store_many(
        entries: Annotated[
            list[StoreEntry],
            Field(
                min_length=1,
                max_length=MAX_ENTRIES,
                description=f"The texts to remember (at most {MAX_CALL_CHARS:,} characters in all), each with "
                "optional metadata and id; written in one acknowledged upsert.",
            ),
        ],
        collection_name: CollectionName | None = None,
    ) -> Annotated[CallToolResult, StoreManyResult]:
        collection = collection_of(collection_name)
        total = sum(len(entry.information) for entry in entries)
        if total > MAX_CALL_CHARS:
            raise ToolError(
                f"the entries hold {total:,} characters in all; one call takes at most {MAX_CALL_CHARS:,}: "
                "split them over several calls"
            )
        with tool_errors():
            stored = await store.store(collection, [Entry(e.information, e.metadata, e.id) for e in entries])
        return StoreManyResult.from_stored(collection, stored).respond()

    reshape(store_many, hide=hidden)
    mcp.add_tool(
        store_many,
        name="qdrant-store-many",
        title="Store many memories",
        description=f"Store up to {MAX_ENTRIES} memories (at most {MAX_CALL_CHARS:,} characters in all) in one "
        f"call. {settings.tool_store_description}",
        annotations=WRITE,
    )

    async def delete(
        ids: PointIds = None,
        metadata_match: Annotated[
            dict[str, Any] | None,
            Field(
                description="Delete every point whose metadata has all these key/value pairs "
                "(a list value matches any of its items)."
            ),
            BeforeValidator(validation.metadata),
        ] = None,
        collection_name: CollectionName | None = None,
    ) -> Annotated[CallToolResult, DeleteResult]:
        collection = collection_of(collection_name)
        if not ids and not metadata_match:
            raise ToolError("give ids or metadata_match: deleting a whole collection is not offered")
        if ids and metadata_match:
            raise ToolError("give ids or metadata_match, not both")
        with tool_errors():
            if ids:
                deleted = await store.delete_ids(collection, ids)
            else:
                deleted = await store.delete_matching(collection, metadata_filter(metadata_match or {}))
        return DeleteResult(collection=collection, deleted=deleted).respond()

    reshape(delete, hide=hidden)
    mcp.add_tool(
        delete,
        name="qdrant-delete",
        title="Delete memories",
        description="Delete memories by id or by exact metadata match. Cannot be undone.",
        annotations=WRITE,
    )
