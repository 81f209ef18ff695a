"""Writes: store (with expiry and near-duplicate handling), update, delete.

Times: a point written for the first time gets `created_at` = `updated_at` = now; writing it
again (the same id or text, a `replace`, an update) keeps `created_at` and moves `updated_at`.
A point another tool wrote has no `created_at`, and none is invented for it: when it was
created is unknown, and listing keeps it where it was (after the timestamped points).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio

from .. import times, validation
from ..backends import Point, PointId, SparseVector
from ..errors import CollectionNotFound, InvalidRequest
from ..filters import Filter, HasId, all_of
from .collections import SPARSE_VECTOR, StoreBase
from .duplicates import Candidate, near_duplicates
from .model import Duplicate, Entry, IfSimilar, Memory, Stored, content_id


class Writes(StoreBase):
    async def store(
        self,
        collection: str,
        entries: Sequence[Entry],
        *,
        expires_at: datetime | None = None,
        if_similar: IfSimilar = "store",
        similarity: float | None = None,
    ) -> Stored:
        """Embed the entries and write them in one upsert, acknowledged by the engine."""
        moment = times.now()
        _check_expiry(expires_at, moment)
        ids, unique = _dedupe(entries, self.tenant.content_id if self.tenant else content_id)
        layout = await self._writable(collection)
        vectors = await self.embedder.embed_documents([entry.document for entry, _ in unique.values()])
        candidates = [
            Candidate(point_id, entry, index, vector)
            for (point_id, (entry, index)), vector in zip(unique.items(), vectors, strict=True)
        ]
        try:
            duplicates = await self._duplicates(collection, candidates, if_similar, similarity, moment)
            writes = _targets(candidates, duplicates)
            await self._refuse_others(collection, [target for target, _ in writes])
            existing = await self._live_memories(collection, [target for target, _ in writes], moment)
        except CollectionNotFound:
            # The engine lost the collection since it was checked (e.g. restarted on empty storage).
            self._forget(collection)
            layout = await self._writable(collection)
            duplicates, existing = {}, {}
            writes = _targets(candidates, duplicates)
        if expires_at is not None:
            self._may_expire(collection)
        points = await self._points(layout.sparse, writes, existing, moment, expires_at)
        if points:
            await self._upsert(collection, points)
        self.events.created(collection, len(points) - len(existing))
        self.events.updated(collection, len(existing))
        where = {c.id: duplicates[c.id].of if c.id in duplicates else c.id for c in candidates}
        return Stored([where[point_id] for point_id in ids], len(points), sorted(duplicates.values(), key=_entry))

    async def _duplicates(
        self,
        collection: str,
        candidates: list[Candidate],
        if_similar: IfSimilar,
        similarity: float | None,
        moment: datetime,
    ) -> dict[PointId, Duplicate]:
        if if_similar == "store":
            return {}
        return await near_duplicates(
            self.backend,
            collection=collection,
            vector_name=self.config.vector_name,
            candidates=candidates,
            threshold=self.config.similarity_threshold if similarity is None else similarity,
            mode=if_similar,
            live=all_of(self._live(collection, moment), self._own()),
        )

    async def _points(
        self,
        sparse: bool,
        writes: list[tuple[PointId, Candidate]],
        existing: dict[PointId, Memory],
        moment: datetime,
        expires_at: datetime | None,
    ) -> list[Point]:
        """The points to upsert: a point written again keeps its created_at."""
        encoded: list[dict[str, SparseVector]] = [{} for _ in writes]
        if sparse and writes:
            texts = [candidate.entry.document for _, candidate in writes]
            encoded = [{SPARSE_VECTOR: v} for v in await anyio.to_thread.run_sync(self._encoder().documents, texts)]
        stamp = times.format_time(moment)
        expiry = times.format_time(expires_at) if expires_at else None
        points = []
        for (target, candidate), sparse_vectors in zip(writes, encoded, strict=True):
            before = existing.get(target)
            memory = Memory(
                target,
                candidate.entry.document,
                candidate.entry.metadata,
                created_at=before.created_at if before else stamp,
                updated_at=stamp,
                expires_at=expiry,
            )
            dense = {self.config.vector_name: candidate.vector}
            payload = self.payloads.encode(memory)
            points.append(Point(target, dense, self.tenant.stamp(payload) if self.tenant else payload, sparse_vectors))
        return points

    async def update(
        self,
        collection: str,
        point_id: PointId,
        *,
        information: str | None = None,
        metadata: dict[str, Any] | None = None,
        metadata_patch: dict[str, Any] | None = None,
        expires_at: datetime | None = None,
        clear_expiry: bool = False,
    ) -> Memory:
        """Change one existing point; payload-only changes do not re-embed. Unknown ids are an error."""
        changes = (information, metadata, metadata_patch, expires_at)
        if all(change is None for change in changes) and not clear_expiry:
            raise InvalidRequest("give at least one of information, metadata, metadata_patch or expires_at")
        if metadata is not None and metadata_patch is not None:
            raise InvalidRequest("give metadata (replaces it) or metadata_patch (merges into it), not both")
        if expires_at is not None and clear_expiry:
            raise InvalidRequest("give expires_at or clear it, not both")
        layout = await self._require(collection, searchable=information is not None)
        async with self._update_lock(collection, point_id):
            moment = times.now()
            _check_expiry(expires_at, moment)
            reembed = information is not None
            points = await self.backend.retrieve(collection, [point_id], with_vectors=reembed)
            mine = bool(points) and (self.tenant is None or self.tenant.owns(points[0].payload))
            before = self.payloads.decode(point_id, points[0].payload) if mine else None
            if before is None or self.payloads.is_expired(before, moment):
                raise InvalidRequest(
                    f"collection {collection!r} has no point {point_id}: qdrant-update changes existing memories "
                    "only (store new ones with qdrant-store)"
                )
            after = replace(
                before,
                document=before.document if information is None else information,
                metadata=_new_metadata(before.metadata, metadata, metadata_patch),
                updated_at=times.format_time(moment),
                expires_at=None if clear_expiry else times.format_time(expires_at) if expires_at else before.expires_at,
            )
            if expires_at is not None:
                self._may_expire(collection)
            payload = self.payloads.encode(after, keep=points[0].payload)
            if reembed and after.document != before.document:
                old = points[0]
                (vector,) = await self.embedder.embed_documents([after.document])
                dense = {**old.dense, self.config.vector_name: vector}
                sparse = dict(old.sparse)
                if layout.sparse:
                    encoded = await anyio.to_thread.run_sync(self._encoder().documents, [after.document])
                    sparse[SPARSE_VECTOR] = encoded[0]
                await self._upsert(collection, [Point(point_id, dense, payload, sparse)])
            else:
                await self.backend.overwrite_payload(collection, point_id, payload)
        self.events.updated(collection, 1)
        return after

    async def delete_ids(self, collection: str, ids: Sequence[PointId]) -> int:
        """Delete points by id; returns how many of them existed (and had not expired)."""
        await self._require_existing(collection)
        existing = await self._live_memories(collection, ids, times.now())
        if self.tenant is None:
            await self.backend.delete_ids(collection, ids)
        else:  # one engine-side filter: the ids' points that are this tenant's, nothing else
            await self.backend.delete_matching(collection, self._within(Filter(must=(HasId(tuple(ids)),))))
        return len(existing)

    async def delete_matching(self, collection: str, filter: Filter) -> int:
        """Delete every point the filter matches; returns how many there were (expired ones aside)."""
        await self._require_existing(collection)
        count = await self.backend.count(collection, all_of(filter, self._live(collection, times.now()), self._own()))
        await self.backend.delete_matching(collection, self._within(filter))
        return count

    async def _refuse_others(self, collection: str, ids: Sequence[PointId]) -> None:
        """A tenant writes only to ids that are free or its own: a point of another tenant (or of none)
        is never overwritten. The error names no owner and shows nothing of the point."""
        if self.tenant is None or not ids:
            return
        points = await self.backend.retrieve(collection, ids, with_vectors=False)
        taken = [point.id for point in points if not self.tenant.owns(point.payload)]
        if taken:
            raise InvalidRequest(
                f"id {taken[0]} is not available in collection {collection!r}: give another id, or leave it out "
                "(an id is then derived from the text)"
            )

    async def _upsert(self, collection: str, points: list[Point]) -> None:
        try:
            await self.backend.upsert(collection, points)
        except CollectionNotFound:
            # The engine lost the collection since it was checked (e.g. restarted on empty storage).
            self._forget(collection)
            await self._writable(collection)
            await self.backend.upsert(collection, points)

    def _update_lock(self, collection: str, point_id: PointId) -> anyio.Lock:
        return self.update_locks[zlib.crc32(f"{collection}\0{point_id}".encode()) % len(self.update_locks)]


def _check_expiry(expires_at: datetime | None, moment: datetime) -> None:
    if expires_at is not None and expires_at <= moment:
        raise InvalidRequest(
            f"expires_at {times.format_time(expires_at)} is not in the future (it is {times.format_time(moment)} "
            "now): give a later time or a ttl"
        )


def _new_metadata(
    current: dict[str, Any] | None, replacement: dict[str, Any] | None, patch: dict[str, Any] | None
) -> dict[str, Any] | None:
    if replacement is not None:
        return replacement
    if patch is None:
        return current
    merged = merge_patch(current or {}, patch)
    try:
        return validation.metadata(merged)
    except ValueError as exc:
        raise InvalidRequest(f"metadata_patch: the merged {exc}") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _dedupe(
    entries: Sequence[Entry], derive: Callable[[str], PointId]
) -> tuple[list[PointId], dict[PointId, tuple[Entry, int]]]:
    """Each entry's id (given, or `derive`d from its text), and one entry per id with the index of
    its first occurrence; entries that share an id must be identical."""
    ids: list[PointId] = []
    unique: dict[PointId, tuple[Entry, int]] = {}
    for index, entry in enumerate(entries):
        point_id = entry.id if entry.id is not None else derive(entry.document)
        ids.append(point_id)
        seen = unique.get(point_id)
        if seen is None:
            unique[point_id] = (entry, index)
        elif (seen[0].document, seen[0].metadata) != (entry.document, entry.metadata):
            why = "the same id" if entry.id is not None else "the same text (so the same derived id)"
            raise InvalidRequest(
                f"entries {seen[1]} and {index} have {why} but different content; one point cannot hold "
                "both: merge them, or give each its own id"
            )
    return ids, unique


def _targets(candidates: Sequence[Candidate], duplicates: dict[PointId, Duplicate]) -> list[tuple[PointId, Candidate]]:
    """Where each entry to write goes: its own id, or the near-duplicate it replaces (skipped ones go nowhere)."""
    return [
        (duplicates[c.id].of if c.id in duplicates else c.id, c)
        for c in candidates
        if c.id not in duplicates or duplicates[c.id].action == "replaced"
    ]


def _entry(duplicate: Duplicate) -> int:
    return duplicate.entry
