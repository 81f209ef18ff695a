"""The MCP tools: typed parameters in, a structured result plus readable text out.

Parameters the deployment fixes are hidden the way the official server hides them:
`collection_name` disappears when COLLECTION_NAME is set, and filter parameters appear
only as FILTERABLE_FIELDS (or QDRANT_ALLOW_ARBITRARY_FILTER) configure them.
"""

# No `from __future__ import annotations`: the SDK reads these signatures at runtime.
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, BeforeValidator, Field

from .filters import FilterError, build_filter, filter_parameters, metadata_filter, parse_raw_filter
from .results import (
    CollectionInfoResult,
    CollectionListResult,
    DeleteResult,
    FindResult,
    StoreManyResult,
    StoreResult,
    ToolResult,
)
from .settings import Settings
from .store import Entry, QdrantStore, StoreError

MAX_DOCUMENT_CHARS = 65_536
MAX_QUERY_CHARS = 4_096
MAX_ENTRIES = 1_000
MAX_RESULTS = 100


def _json_object(value: Any) -> Any:
    """Several clients send `metadata` as a JSON-encoded string; accept it, say so when it is not an object."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except json.JSONDecodeError as exc:
            raise ValueError(f"metadata is a string but not valid JSON ({exc.msg}); send a JSON object") from None
        if value is not None and not isinstance(value, dict):
            raise ValueError("metadata must be a JSON object")
    return value


CollectionName = Annotated[str, Field(min_length=1, max_length=255, description="The Qdrant collection to use.")]
Information = Annotated[str, Field(min_length=1, max_length=MAX_DOCUMENT_CHARS, description="The text to remember.")]
Metadata = Annotated[
    dict[str, Any] | None,
    BeforeValidator(_json_object),
    Field(description="Optional JSON object stored beside the text (filterable as metadata.<key>)."),
]
PointIdParam = Annotated[
    str | int | None,
    Field(
        description="Optional point id (UUID or non-negative integer). Without it the id derives from the text, "
        "so storing the same text twice keeps one point; an existing point with the given id is replaced."
    ),
]


class StoreEntry(BaseModel):
    information: Information
    metadata: Metadata = None
    id: PointIdParam = None


READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
# Stores are idempotent (the same text maps to the same point) but not purely additive: a
# given id, or the same text with new metadata, replaces what the point held.
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)


def respond(result: ToolResult) -> Any:
    """The result as structured content plus the readable text an LLM reads."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.render())],
        structured_content=result.model_dump(mode="json"),
    )


def reshape(fn: Callable[..., Any], *, hide: tuple[str, ...] = (), add: Sequence[inspect.Parameter] = ()) -> None:
    """Give `fn` the signature the client sees: hidden parameters removed, configured ones added."""
    signature = inspect.signature(fn)
    kept = [p for p in signature.parameters.values() if p.name not in hide and p.kind is not p.VAR_KEYWORD]
    fn.__signature__ = signature.replace(parameters=[*kept, *add])  # type: ignore[attr-defined]


@contextmanager
def tool_errors() -> Iterator[None]:
    """Anticipated failures reach the client as a tool error with their actionable message."""
    try:
        yield
    except (StoreError, FilterError) as exc:
        raise ToolError(str(exc)) from None


def register_tools(mcp: MCPServer, settings: Settings, store: QdrantStore) -> None:
    hidden = ("collection_name",) if settings.collection_name else ()
    fields = settings.filterable_fields or []
    typed_filters = filter_parameters(fields)

    def collection_of(name: str | None) -> str:
        resolved = name or settings.collection_name
        if not resolved:
            raise ToolError("collection_name is required (no COLLECTION_NAME default is configured)")
        return resolved

    async def find(
        query: Annotated[
            str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for, in natural language.")
        ],
        limit: Annotated[
            int, Field(ge=1, le=MAX_RESULTS, description="How many results at most.")
        ] = settings.search_limit,
        score_threshold: Annotated[
            float | None,
            Field(ge=-1.0, le=1.0, description="Only results at least this similar (cosine, -1..1)."),
        ] = None,
        collection_name: CollectionName | None = None,
        query_filter: Annotated[
            dict[str, Any] | None,
            Field(
                description="A Qdrant filter (must / should / must_not conditions) on the payload, "
                'e.g. {"must": [{"key": "metadata.topic", "match": {"value": "x"}}]}.'
            ),
        ] = None,
        **filter_values: Any,
    ) -> FindResult:
        collection = collection_of(collection_name)
        with tool_errors():
            if typed_filters:
                search_filter = build_filter(fields, filter_values)
            else:
                search_filter = parse_raw_filter(query_filter) if query_filter is not None else None
            hits = await store.find(collection, query, limit, score_threshold, search_filter)
        return respond(FindResult.from_hits(collection, query, hits))

    find_hide = hidden + (("query_filter",) if typed_filters or not settings.allow_arbitrary_filter else ())
    reshape(find, hide=find_hide, add=typed_filters)
    mcp.add_tool(
        find,
        name="qdrant-find",
        title="Find memories",
        description=settings.tool_find_description,
        annotations=READ_ONLY,
    )

    async def list_collections() -> CollectionListResult:
        with tool_errors():
            names = await store.list_collections()
        return respond(CollectionListResult(collections=names))

    mcp.add_tool(
        list_collections,
        name="qdrant-list-collections",
        title="List collections",
        description="List the Qdrant collections this server can search.",
        annotations=READ_ONLY,
    )

    async def collection_info(collection_name: CollectionName | None = None) -> CollectionInfoResult:
        collection = collection_of(collection_name)
        with tool_errors():
            details = await store.collection_details(collection)
        return respond(CollectionInfoResult.from_details(details, store))

    reshape(collection_info, hide=hidden)
    mcp.add_tool(
        collection_info,
        name="qdrant-collection-info",
        title="Collection info",
        description="Points count, vectors (names, sizes, distance) and indexed payload fields of a "
        "collection, and whether this server's embedding model can search it.",
        annotations=READ_ONLY,
    )

    if settings.read_only:
        return

    async def store_one(
        information: Information,
        metadata: Metadata = None,
        collection_name: CollectionName | None = None,
        id: PointIdParam = None,
    ) -> StoreResult:
        collection = collection_of(collection_name)
        with tool_errors():
            ids = await store.store(collection, [Entry(information, metadata, id)])
        return respond(StoreResult(collection=collection, id=ids[0]))

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
                description="The texts to remember, each with optional "
                "metadata and id; embedded in one batch and written in one acknowledged upsert.",
            ),
        ],
        collection_name: CollectionName | None = None,
    ) -> StoreManyResult:
        collection = collection_of(collection_name)
        batch = [Entry(e.information, e.metadata, e.id) for e in entries]
        with tool_errors():
            ids = await store.store(collection, batch)
        return respond(StoreManyResult(collection=collection, ids=ids))

    reshape(store_many, hide=hidden)
    mcp.add_tool(
        store_many,
        name="qdrant-store-many",
        title="Store many memories",
        description=f"Store up to {MAX_ENTRIES} memories in one call. {settings.tool_store_description}",
        annotations=WRITE,
    )

    async def delete(
        ids: Annotated[
            list[str | int] | None,
            Field(min_length=1, max_length=MAX_ENTRIES, description="Ids of the points to delete."),
        ] = None,
        metadata_match: Annotated[
            dict[str, Any] | None,
            BeforeValidator(_json_object),
            Field(
                description="Delete every point whose metadata has all these key/value pairs "
                "(a list value matches any of its items)."
            ),
        ] = None,
        collection_name: CollectionName | None = None,
    ) -> DeleteResult:
        collection = collection_of(collection_name)
        if not ids and not metadata_match:
            raise ToolError("give ids or metadata_match: deleting a whole collection is not offered")
        if ids and metadata_match:
            raise ToolError("give ids or metadata_match, not both")
        with tool_errors():
            selector = metadata_filter(metadata_match) if metadata_match else None
            deleted = await store.delete(collection, ids, selector)
        return respond(DeleteResult(collection=collection, deleted=deleted))

    reshape(delete, hide=hidden)
    mcp.add_tool(
        delete,
        name="qdrant-delete",
        title="Delete memories",
        description="Delete memories by id or by exact metadata match. Cannot be undone.",
        annotations=WRITE,
    )
