"""The tools that change memories: qdrant-store, qdrant-store-many, qdrant-update, qdrant-delete.

None of them is registered in read-only mode.
"""

# No `from __future__ import annotations`: the SDK reads these signatures at runtime.
from datetime import datetime
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from .. import times
from ..filters import metadata_filter
from ..results import DeleteResult, MemoryEntry, StoreManyResult, StoreResult, UpdateResult
from ..store import Entry
from ..validation import MAX_CALL_CHARS, MAX_ENTRIES
from .params import (
    NEVER,
    CollectionName,
    ExpiresAt,
    ExpiryChange,
    IfSimilar,
    Information,
    Metadata,
    MetadataMatch,
    MetadataPatch,
    NewInformation,
    NewMetadata,
    PointIdParam,
    PointIds,
    Similarity,
    StoreEntry,
    Ttl,
    UpdateId,
)
from .shaping import WRITE, Shaping, reshape, tool_errors
from .tenants import Stores


def expiry(expires_at: str | None, ttl: str | None) -> datetime | None:
    """When a store's memories expire: at expires_at, or ttl from now; None: never."""
    if expires_at is not None and ttl is not None:
        raise ToolError("give expires_at or ttl, not both")
    if ttl is not None:
        return times.now() + times.parse_duration(ttl, what="ttl")
    return None if expires_at is None else times.parse_time(expires_at, what="expires_at")


def register_write(mcp: MCPServer, shaping: Shaping, stores: Stores) -> None:
    description = shaping.settings.tool_store_description

    async def store_one(
        information: Information,
        *,
        metadata: Metadata = None,
        collection_name: CollectionName | None = None,
        id: PointIdParam = None,
        expires_at: ExpiresAt = None,
        ttl: Ttl = None,
        if_similar: IfSimilar = "store",
        similarity: Similarity = None,
        ctx: Context[Any, Any],
    ) -> Annotated[CallToolResult, StoreResult]:
        collection = shaping.collection(collection_name)
        until = expiry(expires_at, ttl)
        with tool_errors():
            stored = await stores.of(ctx).store(
                collection,
                [Entry(information, metadata, id)],
                expires_at=until,
                if_similar=if_similar,
                similarity=similarity,
            )
        return StoreResult.from_stored(collection, stored).respond()

    reshape(store_one, hide=shaping.hidden)
    mcp.add_tool(store_one, name="qdrant-store", title="Store a memory", description=description, annotations=WRITE)

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
        *,
        collection_name: CollectionName | None = None,
        expires_at: ExpiresAt = None,
        ttl: Ttl = None,
        if_similar: IfSimilar = "store",
        similarity: Similarity = None,
        ctx: Context[Any, Any],
    ) -> Annotated[CallToolResult, StoreManyResult]:
        collection = shaping.collection(collection_name)
        total = sum(len(entry.information) for entry in entries)
        if total > MAX_CALL_CHARS:
            raise ToolError(
                f"the entries hold {total:,} characters in all; one call takes at most {MAX_CALL_CHARS:,}: "
                "split them over several calls"
            )
        until = expiry(expires_at, ttl)
        with tool_errors():
            stored = await stores.of(ctx).store(
                collection,
                [Entry(e.information, e.metadata, e.id) for e in entries],
                expires_at=until,
                if_similar=if_similar,
                similarity=similarity,
            )
        return StoreManyResult.from_stored(collection, stored).respond()

    reshape(store_many, hide=shaping.hidden)
    mcp.add_tool(
        store_many,
        name="qdrant-store-many",
        title="Store many memories",
        description=f"Store up to {MAX_ENTRIES} memories (at most {MAX_CALL_CHARS:,} characters in all) in one "
        f"call. {description}",
        annotations=WRITE,
    )

    async def update(
        id: UpdateId,
        *,
        information: NewInformation = None,
        metadata: NewMetadata = None,
        metadata_patch: MetadataPatch = None,
        expires_at: ExpiryChange = None,
        collection_name: CollectionName | None = None,
        ctx: Context[Any, Any],
    ) -> Annotated[CallToolResult, UpdateResult]:
        collection = shaping.collection(collection_name)
        new_expiry = None if expires_at in (None, NEVER) else times.parse_time(expires_at, what="expires_at")
        with tool_errors():
            memory = await stores.of(ctx).update(
                collection,
                id,
                information=information,
                metadata=metadata,
                metadata_patch=metadata_patch,
                expires_at=new_expiry,
                clear_expiry=expires_at == NEVER,
            )
        return UpdateResult(collection=collection, point=MemoryEntry.of(memory)).respond()

    reshape(update, hide=shaping.hidden)
    mcp.add_tool(
        update,
        name="qdrant-update",
        title="Update a memory",
        description="Change a stored memory in place, keeping its id and creation time: its text (embedded "
        "again), its metadata (replaced, or merged with metadata_patch), or its expiry. The id must exist: this "
        "never creates a memory.",
        annotations=WRITE,
    )

    async def delete(
        ids: PointIds = None,
        metadata_match: MetadataMatch = None,
        collection_name: CollectionName | None = None,
        *,
        ctx: Context[Any, Any],
    ) -> Annotated[CallToolResult, DeleteResult]:
        collection = shaping.collection(collection_name)
        if not ids and not metadata_match:
            raise ToolError("give ids or metadata_match: deleting a whole collection is not offered")
        if ids and metadata_match:
            raise ToolError("give ids or metadata_match, not both")
        with tool_errors():
            store = stores.of(ctx)
            if ids:
                deleted = await store.delete_ids(collection, ids)
            else:
                deleted = await store.delete_matching(
                    collection, metadata_filter(metadata_match or {}, shaping.metadata_path)
                )
        return DeleteResult(collection=collection, deleted=deleted).respond()

    reshape(delete, hide=shaping.hidden)
    mcp.add_tool(
        delete,
        name="qdrant-delete",
        title="Delete memories",
        description="Delete memories by id or by exact metadata match. Cannot be undone.",
        annotations=WRITE,
    )
