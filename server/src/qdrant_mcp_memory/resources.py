"""Read-only MCP resources describing the collections, with the tools' structured data."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from .errors import ServiceError
from .results import CollectionInfoResult, CollectionListResult
from .store import QdrantStore
from .validation import collection_name


def register_resources(mcp: MCPServer, store: QdrantStore) -> None:
    @mcp.resource(
        "qdrant://collections",
        name="collections",
        description="The Qdrant collections this server can reach.",
        mime_type="application/json",
    )
    async def collections() -> str:
        try:
            names = await store.list_collections()
        except ServiceError as exc:
            raise ResourceError(str(exc)) from None
        return CollectionListResult(collections=names).model_dump_json()

    @mcp.resource(
        "qdrant://collections/{name}",
        name="collection",
        description="Points count, vectors and indexed payload fields of one collection.",
        mime_type="application/json",
    )
    async def collection(name: str) -> str:
        try:
            details = await store.collection_details(collection_name(name))
        except ValueError as exc:
            raise ResourceError(str(exc)) from None
        except ServiceError as exc:
            raise ResourceError(str(exc)) from None
        return CollectionInfoResult.from_details(details).model_dump_json()
