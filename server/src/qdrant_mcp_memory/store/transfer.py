"""Memories out of one storage and into another, whole: what `export` reads and `import` writes.

A record is one point as a memory (text, metadata, times), the payload keys this server does
not know kept as they are (another tool's, or a tenant's), and optionally its vector with the
name and model that made it. Export reads live points only (an expired one is gone already);
restore writes each record under its own id, times as they were, so importing a file twice
changes nothing. A record without a usable vector is embedded again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from .. import times
from ..backends import Backend, Point, SparseVector
from ..errors import CollectionLayoutError
from .collections import SPARSE_VECTOR, StoreBase
from .model import Memory
from .payload import PayloadLayout

EXPORT_PAGE = 256


@dataclass(frozen=True)
class Vector:
    """A dense vector and what made it: the vector's name in the collection and the embedding model."""

    name: str
    model: str
    values: list[float]


@dataclass(frozen=True)
class Record:
    collection: str
    memory: Memory
    # The payload keys this server does not know, as they are.
    other: dict[str, Any]
    vector: Vector | None = None


async def export_records(
    backend: Backend, payloads: PayloadLayout, collection: str, vector: Vector | None
) -> AsyncIterator[list[Record]]:
    """The live points of `collection`, a page at a time, in id order. `vector` names the vector to
    export with each point (its values are ignored), or None for none."""
    live = payloads.live(times.now())
    offset = None
    while True:
        page = await backend.scroll(collection, offset, EXPORT_PAGE, live, with_vectors=vector is not None)
        yield [
            Record(
                collection,
                payloads.decode(point.id, point.payload),
                payloads.other(point.payload),
                Vector(vector.name, vector.model, values)
                if vector is not None and (values := point.dense.get(vector.name)) is not None
                else None,
            )
            for point in page.points
        ]
        if page.next_offset is None:
            return
        offset = page.next_offset


class Restores(StoreBase):
    async def check_importable(self, collection: str) -> None:
        """Refuse, before anything is written, a collection this server's model cannot write."""
        layout = await self._layout(collection, create=False)
        if layout is not None and layout.problem:
            raise CollectionLayoutError(layout.problem)

    async def restore(self, collection: str, records: Sequence[Record]) -> None:
        """Write `records` as they are (ids, times, other payload keys); embed those whose vector is
        missing or was made by another model."""
        layout = await self._writable(collection)
        usable = [self._usable(record.vector) for record in records]
        missing = [record.memory.document for record, vector in zip(records, usable, strict=True) if vector is None]
        embedded = iter(await self.embedder.embed_documents(missing) if missing else [])
        sparse: list[dict[str, SparseVector]] = [{} for _ in records]
        if layout.sparse and records:
            texts = [record.memory.document for record in records]
            encoded = await anyio.to_thread.run_sync(self._encoder().documents, texts)
            sparse = [{SPARSE_VECTOR: vector} for vector in encoded]
        if any(record.memory.expires_at for record in records):
            self._may_expire(collection)
        points = [
            Point(
                record.memory.id,
                {self.config.vector_name: vector if vector is not None else next(embedded)},
                {**record.other, **self.payloads.encode(record.memory)},
                sparse_vectors,
            )
            for record, vector, sparse_vectors in zip(records, usable, sparse, strict=True)
        ]
        if points:
            await self.backend.upsert(collection, points)

    def _usable(self, vector: Vector | None) -> list[float] | None:
        """The vector when this server's model made it for this server's vector name, else None."""
        if (
            vector is None
            or vector.model != self.embedder.model_name
            or vector.name != self.config.vector_name
            or len(vector.values) != self.embedder.dimension
        ):
            return None
        return vector.values
