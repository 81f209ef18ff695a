"""Reading without a query: qdrant-get (by id), qdrant-list (pages in time order), and the collections."""

# No `from __future__ import annotations`: the SDK reads these signatures at runtime.
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from ..filters import all_of, metadata_filter
from ..results import CollectionInfoResult, CollectionListResult, GetResult, ListResult
from .params import (
    DEFAULT_PAGE,
    CollectionName,
    CreatedAfter,
    CreatedBefore,
    Cursor,
    GetIds,
    MetadataMatch,
    Order,
    PageSize,
    QueryFilter,
)
from .shaping import READ_ONLY, Shaping, reshape, time_window, tool_errors
from .tenants import Stores


def register_browse(mcp: MCPServer, shaping: Shaping, stores: Stores) -> None:
    async def get(
        ids: GetIds, collection_name: CollectionName | None = None, *, ctx: Context[Any, Any]
    ) -> Annotated[CallToolResult, GetResult]:
        collection = shaping.collection(collection_name)
        with tool_errors():
            fetched = await stores.of(ctx).get(collection, ids)
        return GetResult.from_fetched(collection, fetched).respond()

    reshape(get, hide=shaping.hidden)
    mcp.add_tool(
        get,
        name="qdrant-get",
        title="Get memories by id",
        description="Read memories by id: text, metadata, and when each was stored, last changed and expires. "
        "Ids with no memory (or an expired one) are listed as missing.",
        annotations=READ_ONLY,
    )

    async def list_memories(
        *,
        limit: PageSize = DEFAULT_PAGE,
        order: Order = "newest",
        cursor: Cursor = None,
        created_after: CreatedAfter = None,
        created_before: CreatedBefore = None,
        metadata_match: MetadataMatch = None,
        collection_name: CollectionName | None = None,
        query_filter: QueryFilter = None,
        ctx: Context[Any, Any],
        **filter_values: Any,
    ) -> Annotated[CallToolResult, ListResult]:
        collection = shaping.collection(collection_name)
        after, before = time_window(created_after, created_before)
        with tool_errors():
            matched = metadata_filter(metadata_match, shaping.metadata_path) if metadata_match else None
            listed = await stores.of(ctx).list_page(
                collection,
                limit,
                order,
                cursor,
                all_of(shaping.search_filter(query_filter, filter_values), matched),
                created_after=after,
                created_before=before,
            )
        return ListResult.from_listed(collection, order, listed).respond()

    shaping.filtered(list_memories)
    mcp.add_tool(
        list_memories,
        name="qdrant-list",
        title="List memories",
        description="Browse memories without a query, newest (or oldest) first, a page at a time: pass the "
        "next_cursor of one page as cursor to get the next. Memories stored while paging do not shift the pages.",
        annotations=READ_ONLY,
    )

    async def list_collections(ctx: Context[Any, Any]) -> Annotated[CallToolResult, CollectionListResult]:
        with tool_errors():
            names = await stores.of(ctx).list_collections()
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
        *,
        ctx: Context[Any, Any],
    ) -> Annotated[CallToolResult, CollectionInfoResult]:
        collection = shaping.collection(collection_name)
        with tool_errors():
            details = await stores.of(ctx).collection_details(collection)
        return CollectionInfoResult.from_details(details).respond()

    reshape(collection_info, hide=shaping.hidden)
    mcp.add_tool(
        collection_info,
        name="qdrant-collection-info",
        title="Collection info",
        description="Points count, vectors (names, sizes, distance) and indexed payload fields of a "
        "collection, and whether this server's embedding model can search it.",
        annotations=READ_ONLY,
    )
