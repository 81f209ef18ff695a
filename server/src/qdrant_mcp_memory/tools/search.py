"""qdrant-find: memories by meaning, in one collection or several, filtered, by recency, diversified."""

# No `from __future__ import annotations`: the SDK reads these signatures at runtime.
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from .. import times
from ..results import FindResult
from .params import (
    CollectionName,
    CollectionNames,
    CreatedAfter,
    CreatedBefore,
    Diversity,
    Limit,
    Query,
    QueryFilter,
    Recency,
    ScoreThreshold,
)
from .shaping import READ_ONLY, Shaping, time_window, tool_errors
from .tenants import Stores


def register_search(mcp: MCPServer, shaping: Shaping, stores: Stores) -> None:
    async def find(
        query: Query,
        *,
        limit: Limit = shaping.settings.search_limit,
        score_threshold: ScoreThreshold = None,
        collection_name: CollectionName | None = None,
        collection_names: CollectionNames = None,
        query_filter: QueryFilter = None,
        created_after: CreatedAfter = None,
        created_before: CreatedBefore = None,
        recency: Recency = None,
        diversity: Diversity = None,
        ctx: Context[Any, Any],
        **filter_values: Any,
    ) -> Annotated[CallToolResult, FindResult]:
        if collection_names and collection_name:
            raise ToolError("give collection_name or collection_names, not both")
        collections = list(dict.fromkeys(collection_names or [shaping.collection(collection_name)]))
        after, before = time_window(created_after, created_before)
        with tool_errors():
            found = await stores.of(ctx).find_in(
                collections,
                query,
                limit,
                score_threshold,
                shaping.search_filter(query_filter, filter_values),
                created_after=after,
                created_before=before,
                recency=times.parse_duration(recency, what="recency") if recency else None,
                diversity=diversity,
            )
        return FindResult.from_found(collections, query, found).respond()

    shaping.filtered(find)
    mcp.add_tool(
        find,
        name="qdrant-find",
        title="Find memories",
        description=shaping.settings.tool_find_description,
        annotations=READ_ONLY,
    )
