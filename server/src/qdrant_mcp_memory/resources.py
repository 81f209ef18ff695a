"""Read-only MCP resources describing the collections, with the tools' structured data."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from .results import CollectionInfoResult, CollectionListResult
from .store import QdrantStore, StoreError


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
        except StoreError as exc:
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
            details = await store.collection_details(name)
        except StoreError as exc:
            raise ResourceError(str(exc)) from None
        return CollectionInfoResult.from_details(details, store).model_dump_json()
