"""Read-only MCP resources describing the collections, with the tools' structured data."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError

from .errors import ServiceError
from .results import CollectionInfoResult, CollectionListResult
from .tools import Stores
from .validation import collection_name


def register_resources(mcp: MCPServer, stores: Stores) -> None:
    @mcp.resource(
        "qdrant://collections",
        name="collections",
        description="The Qdrant collections this server can reach.",
        mime_type="application/json",
    )
    async def collections() -> str:
        try:
            # The SDK gives static resources no request context; the names are the same for every tenant.
            names = await stores.store.list_collections()
        except ServiceError as exc:
            raise ResourceError(str(exc)) from None
        return CollectionListResult(collections=names).model_dump_json()

    @mcp.resource(
        "qdrant://collections/{name}",
        name="collection",
        description="Points count, vectors and indexed payload fields of one collection.",
        mime_type="application/json",
    )
    async def collection(name: str, ctx: Context[Any, Any]) -> str:
        try:
            details = await stores.of(ctx).collection_details(collection_name(name))
        except ValueError as exc:
            raise ResourceError(str(exc)) from None
        except ServiceError as exc:
            raise ResourceError(str(exc)) from None
        return CollectionInfoResult.from_details(details).model_dump_json()
