"""Structured tool results (the `outputSchema`) and the readable text each renders to."""

from __future__ import annotations

import json
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from .store import CollectionDetails, Fetched, Found, Listed, Memory, Order, Stored
from .validation import PointId, sanitize


class ToolResult(BaseModel):
    def render(self) -> str:
        raise NotImplementedError

    def respond(self) -> CallToolResult:
        """Structured content (the outputSchema) plus the readable text an LLM reads."""
        return CallToolResult(
            content=[TextContent(type="text", text=self.render())],
            structured_content=self.model_dump(mode="json"),
        )


class MemoryEntry(BaseModel):
    id: PointId
    document: str
    metadata: dict[str, Any] | None = None
    created_at: str | None = Field(default=None, description="When it was first stored (RFC 3339, UTC).")
    updated_at: str | None = Field(default=None, description="When it was last written (RFC 3339, UTC).")
    expires_at: str | None = Field(default=None, description="When it expires; absent: never.")

    @classmethod
    def of(cls, memory: Memory) -> MemoryEntry:
        # Points stored before text was validated may hold lone surrogates: replace them so every one is returnable.
        return cls(
            id=memory.id,
            document=sanitize(memory.document),
            metadata=sanitize(memory.metadata),
            created_at=memory.created_at,
            updated_at=memory.updated_at,
            expires_at=memory.expires_at,
        )

    def line(self) -> str:
        """One memory for a reader: id, times, metadata, then its text."""
        details = [f"id={self.id}"]
        if self.created_at:
            details.append(f"created {self.created_at}")
        if self.updated_at and self.updated_at != self.created_at:
            details.append(f"updated {self.updated_at}")
        if self.expires_at:
            details.append(f"expires {self.expires_at}")
        if self.metadata:
            details.append(f"metadata={json.dumps(self.metadata, ensure_ascii=False)}")
        return f"{' '.join(details)}\n  {self.document}"


class DuplicateEntry(BaseModel):
    entry: int = Field(description="The index of the entry in the call.")
    duplicate_of: PointId = Field(description="The stored point (or earlier entry) it resembles.")
    similarity: float
    action: str = Field(description="skipped (nothing stored) or replaced (that point now holds this entry).")


class StoreResult(ToolResult):
    collection: str
    id: PointId = Field(description="The id of the point that holds this memory now.")
    outcome: str = Field(
        default="stored",
        description="stored; skipped (a near-duplicate was stored already: id); replaced (id was rewritten).",
    )
    duplicate_of: PointId | None = Field(default=None, description="With if_similar: the near-duplicate found.")
    similarity: float | None = None

    @classmethod
    def from_stored(cls, collection: str, stored: Stored) -> StoreResult:
        duplicate = stored.duplicates[0] if stored.duplicates else None
        if duplicate is None:
            return cls(collection=collection, id=stored.ids[0])
        return cls(
            collection=collection,
            id=stored.ids[0],
            outcome=duplicate.action,
            duplicate_of=duplicate.of,
            similarity=duplicate.similarity,
        )

    def render(self) -> str:
        if self.outcome == "skipped":
            return (
                f"Not stored: point {self.duplicate_of} in collection {self.collection!r} says the same "
                f"(similarity {self.similarity:.3f})."
            )
        if self.outcome == "replaced":
            return (
                f"Replaced point {self.id} in collection {self.collection!r}, which said nearly the same "
                f"(similarity {self.similarity:.3f}); it keeps its id and creation time."
            )
        return f"Remembered in collection {self.collection!r} as {self.id}."


class StoreManyResult(ToolResult):
    collection: str
    ids: list[PointId] = Field(description="The id of the point holding each entry now, in input order.")
    points: int = Field(description="How many distinct points were written (identical entries share one).")
    duplicates: list[DuplicateEntry] = Field(
        default_factory=list, description="With if_similar: entries skipped or written over a near-duplicate."
    )

    @classmethod
    def from_stored(cls, collection: str, stored: Stored) -> StoreManyResult:
        duplicates = [
            DuplicateEntry(entry=d.entry, duplicate_of=d.of, similarity=d.similarity, action=d.action)
            for d in stored.duplicates
        ]
        return cls(collection=collection, ids=stored.ids, points=stored.points, duplicates=duplicates)

    def render(self) -> str:
        text = f"Remembered {self.points} entries in collection {self.collection!r}."
        skipped = [d for d in self.duplicates if d.action == "skipped"]
        replaced = [d for d in self.duplicates if d.action == "replaced"]
        exact = len(self.ids) - self.points - len(skipped)
        if exact:
            text += f" {exact} of the {len(self.ids)} entries repeated another entry exactly and were stored once."
        if skipped:
            text += f" Skipped as near-duplicates: entries {', '.join(str(d.entry) for d in skipped)}."
        if replaced:
            text += f" Written over near-duplicates: entries {', '.join(str(d.entry) for d in replaced)}."
        return text


class FoundEntry(MemoryEntry):
    score: float = Field(description="Higher is closer: cosine similarity, or with hybrid search the fused rank score.")
    collection: str | None = Field(default=None, description="The collection it was found in.")


class FindResult(ToolResult):
    collection: str = Field(description="The collection searched (several: the names, comma-separated).")
    collections: list[str] = Field(default_factory=list, description="Every collection searched.")
    missing_collections: list[str] = Field(default_factory=list)
    query: str
    collection_exists: bool
    hits: list[FoundEntry]
    search: str = Field(
        "dense",
        description="How the collection was searched: dense, hybrid (dense + BM25), or dense only because the "
        "collection has no BM25 vector.",
    )

    @classmethod
    def from_found(cls, collections: list[str], query: str, found: Found) -> FindResult:
        hits = [
            FoundEntry(**MemoryEntry.of(hit).model_dump(), score=hit.score, collection=hit.collection)
            for hit in found.hits
        ]
        return cls(
            collection=", ".join(collections),
            collections=collections,
            missing_collections=found.missing,
            query=query,
            collection_exists=len(found.missing) < len(collections),
            hits=hits,
            search=found.mode,
        )

    def render(self) -> str:
        where = f"collection {self.collection!r}" if len(self.collections) < 2 else f"collections {self.collection}"
        if not self.collection_exists:
            return f"{where[0].upper()}{where[1:]} does not exist yet: nothing is stored there."
        note = ""
        if self.search == "dense (no sparse vector)":
            note = " (searched by meaning only: this collection was created without the BM25 vector hybrid search uses)"
        if self.missing_collections:
            note += f" (not found: {', '.join(self.missing_collections)})"
        if not self.hits:
            return f"No results for {self.query!r} in {where}{note}."
        lines = [f"Results for {self.query!r} in {where}{note}:"]
        for hit in self.hits:
            source = f" [{hit.collection}]" if len(self.collections) > 1 else ""
            lines.append(f"- [{hit.score:.3f}]{source} {hit.line()}")
        return "\n".join(lines)


class GetResult(ToolResult):
    collection: str
    points: list[MemoryEntry]
    missing: list[PointId] = Field(description="Ids with no point (or an expired one).")

    @classmethod
    def from_fetched(cls, collection: str, fetched: Fetched) -> GetResult:
        points = [MemoryEntry.of(memory) for memory in fetched.memories]
        return cls(collection=collection, points=points, missing=fetched.missing)

    def render(self) -> str:
        lines = [f"{len(self.points)} point(s) from collection {self.collection!r}:" if self.points else ""]
        lines += [f"- {point.line()}" for point in self.points]
        if self.missing:
            lines.append(f"No point with id {', '.join(str(i) for i in self.missing)}.")
        return "\n".join(line for line in lines if line)


class ListResult(ToolResult):
    collection: str
    order: str
    points: list[MemoryEntry]
    next_cursor: str | None = Field(description="Pass it as cursor for the next page; null on the last page.")

    @classmethod
    def from_listed(cls, collection: str, order: Order, listed: Listed) -> ListResult:
        points = [MemoryEntry.of(memory) for memory in listed.memories]
        return cls(collection=collection, order=order, points=points, next_cursor=listed.cursor)

    def render(self) -> str:
        if not self.points:
            return f"No memories (left) to list in collection {self.collection!r}."
        first = "newest" if self.order == "newest" else "oldest"
        lines = [f"{len(self.points)} memories from collection {self.collection!r}, {first} first:"]
        lines += [f"- {point.line()}" for point in self.points]
        lines.append("More: pass next_cursor as cursor." if self.next_cursor else "That is all.")
        return "\n".join(lines)


class UpdateResult(ToolResult):
    collection: str
    point: MemoryEntry

    def render(self) -> str:
        return f"Updated in collection {self.collection!r}:\n- {self.point.line()}"


class DeleteResult(ToolResult):
    collection: str
    deleted: int = Field(description="How many points existed and were deleted.")

    def render(self) -> str:
        return f"Deleted {self.deleted} point(s) from collection {self.collection!r}."


class CollectionListResult(ToolResult):
    collections: list[str]

    def render(self) -> str:
        if not self.collections:
            return "There are no collections yet."
        return "Collections: " + ", ".join(self.collections)


class VectorDescription(BaseModel):
    name: str = Field(description="Vector name ('' for an unnamed vector).")
    size: int
    distance: str


class CollectionInfoResult(ToolResult):
    name: str
    points_count: int
    status: str
    vectors: list[VectorDescription]
    sparse_vectors: list[str] = Field(default_factory=list, description="Sparse vectors (bm25 for hybrid search).")
    indexed_fields: dict[str, str] = Field(description="Payload field -> index type.")
    searchable: bool | None = Field(
        description="Whether this server's embedding model matches the collection's vectors (null: unknown while "
        "the embedding service cannot be reached)."
    )
    expected_vector: VectorDescription | None = Field(description="The vector this server writes and searches.")
    unknown: str | None = Field(None, description="Why searchable is unknown.")
    suggested_settings: dict[str, str] = Field(
        default_factory=dict,
        description="Settings (environment variable -> value) under which this server would search and read the "
        "collection as its writer laid it out: vector name and payload keys, from a sample of its points.",
    )
    problems: list[str] = Field(default_factory=list, description="What no layout setting fixes.")

    @classmethod
    def from_details(cls, details: CollectionDetails) -> CollectionInfoResult:
        return cls(
            name=details.name,
            points_count=details.points_count,
            status=details.status,
            vectors=[VectorDescription(name=v.name, size=v.size, distance=v.distance) for v in details.vectors],
            sparse_vectors=details.sparse_vectors,
            indexed_fields=details.indexed_fields,
            searchable=details.compatible,
            expected_vector=None
            if details.expected is None
            else VectorDescription(
                name=details.expected.name, size=details.expected.size, distance=details.expected.distance
            ),
            unknown=details.unknown,
            suggested_settings=details.suggested_settings,
            problems=details.problems,
        )

    def render(self) -> str:
        vectors = ", ".join(f"{v.name or '<unnamed>'} ({v.size}, {v.distance})" for v in self.vectors) or "none"
        indexes = ", ".join(f"{k}: {v}" for k, v in self.indexed_fields.items()) or "none"
        if self.expected_vector is None:
            verdict = (
                f"whether this server can search it is unknown until the embedding service answers ({self.unknown})"
            )
        elif self.searchable:
            verdict = "searchable by this server"
        else:
            verdict = (
                f"NOT searchable by this server (it needs vector {self.expected_vector.name!r} "
                f"of size {self.expected_vector.size})"
            )
        if self.suggested_settings:
            verdict += "; it would work with " + " ".join(f"{k}={v!r}" for k, v in self.suggested_settings.items())
        if self.problems:
            verdict += "; " + "; ".join(self.problems)
        return (
            f"Collection {self.name!r}: {self.points_count} points, status {self.status}; "
            f"vectors: {vectors}; indexed payload fields: {indexes}; {verdict}."
        )
