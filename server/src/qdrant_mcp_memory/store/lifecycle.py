"""Expiry: expired memories are hidden from every read at once (a filter), and deleted later.

Deletion runs in bounded batches with a pause between them, so tool calls keep their turn:
in the background every QDRANT_PURGE_INTERVAL seconds over the collections that have this
server's vector, and on demand (`qdrant-mcp-memory purge-expired`, which needs no model).
"""

from __future__ import annotations

import logging

import anyio

from .. import times
from ..backends import Backend
from ..errors import CollectionNotFound, ServiceError
from ..filters import Condition, all_of
from .collections import StoreBase
from .model import MemoryEvents, NoEvents
from .payload import PayloadLayout

log = logging.getLogger("qdrant_mcp_memory.store")

# Points deleted per batch, and the pause between batches.
PURGE_BATCH = 256
PURGE_PAUSE_S = 0.01


class Expiry:
    """Deletes expired points through a backend."""

    def __init__(
        self,
        backend: Backend,
        vector_name: str,
        payloads: PayloadLayout | None = None,
        events: MemoryEvents | None = None,
    ) -> None:
        self.backend = backend
        self.vector_name = vector_name
        self.payloads = payloads or PayloadLayout()
        self.events = events or NoEvents()

    async def purge(self, collection: str | None = None, within: Condition | None = None) -> dict[str, int]:
        """Delete expired points (those `within` matches, if given): in `collection`, or in every
        collection with this server's vector. Returns how many each collection lost."""
        if collection is not None:
            if await self.backend.describe(collection) is None:
                raise CollectionNotFound(f"collection {collection!r} does not exist")
            return {collection: await self.purge_collection(collection, within)}
        return {name: await self.purge_collection(name, within) for name in await self.collections()}

    async def collections(self) -> list[str]:
        """The collections with this server's vector (those of other tools are left alone)."""
        names = []
        for name in await self.backend.list_collections():
            schema = await self.backend.describe(name)
            if schema is not None and any(vector.name == self.vector_name for vector in schema.dense):
                names.append(name)
        return names

    async def purge_collection(self, collection: str, within: Condition | None = None) -> int:
        total = 0
        while True:
            expired = all_of(self.payloads.expired(times.now()), within)
            page = await self.backend.scroll(collection, None, PURGE_BATCH, expired, with_vectors=False)
            ids = [point.id for point in page.points]
            if not ids:
                return total
            await self.backend.delete_ids(collection, ids)
            total += len(ids)
            self.events.expired(collection, len(ids))
            if len(ids) < PURGE_BATCH:
                return total
            await anyio.sleep(PURGE_PAUSE_S)


class Lifecycle(StoreBase):
    async def purge_expired(self, collection: str | None = None) -> dict[str, int]:
        """Delete expired points in `collection`, or in every collection with this server's vector
        that may hold any (on storage only this process writes, it knows which do). A tenant-scoped
        store deletes only its tenant's; the background purge (unscoped) everyone's."""
        expiry = Expiry(self.backend, self.config.vector_name, self.payloads, self.events)
        if collection is not None:
            return await expiry.purge(collection, self._own())
        names = []
        for name in await expiry.collections():
            await self._layout(name, create=False)
            if self._live(name, times.now()) is not None:
                names.append(name)
        return {name: await expiry.purge_collection(name, self._own()) for name in names}

    async def purge_periodically(self, interval_s: float) -> None:
        """Purge every `interval_s` seconds until cancelled; failures are logged and retried next time."""
        while True:
            await anyio.sleep(interval_s)
            try:
                purged = await self.purge_expired()
            except ServiceError as exc:
                log.warning("deleting expired memories failed; retrying later", extra={"error": str(exc)})
                continue
            except Exception:  # a background task must not take the server down with it
                log.exception("deleting expired memories failed; retrying later")
                continue
            deleted = {name: count for name, count in purged.items() if count}
            if deleted:
                log.info("expired memories deleted", extra={"deleted": deleted})
