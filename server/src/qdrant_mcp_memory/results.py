"""Structured tool results (the `outputSchema`) and the readable text each renders to."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from .store import CollectionDetails, Hit, PointId, QdrantStore


class ToolResult(BaseModel):
    def render(self) -> str:
        raise NotImplementedError


class StoreResult(ToolResult):
    collection: str
    id: PointId = Field(description="The id of the stored point.")

    def render(self) -> str:
        return f"Remembered in collection {self.collection!r} as {self.id}."


class StoreManyResult(ToolResult):
    collection: str
    ids: list[PointId] = Field(description="The ids of the stored points, in input order.")

    def render(self) -> str:
        return f"Remembered {len(self.ids)} entries in collection {self.collection!r}."


class FoundEntry(BaseModel):
    id: PointId
    score: float = Field(description="Cosine similarity to the query (higher is closer).")
    document: str
    metadata: dict[str, Any] | None = None


class FindResult(ToolResult):
    collection: str
    query: str
    collection_exists: bool
    hits: list[FoundEntry]

    @classmethod
    def from_hits(cls, collection: str, query: str, hits: list[Hit] | None) -> FindResult:
        found = [FoundEntry(id=h.id, score=h.score, document=h.document, metadata=h.metadata) for h in hits or []]
        return cls(collection=collection, query=query, collection_exists=hits is not None, hits=found)

    def render(self) -> str:
        if not self.collection_exists:
            return f"Collection {self.collection!r} does not exist yet: nothing is stored there."
        if not self.hits:
            return f"No results for {self.query!r} in collection {self.collection!r}."
        lines = [f"Results for {self.query!r} in collection {self.collection!r}:"]
        for hit in self.hits:
            meta = f" metadata={json.dumps(hit.metadata, ensure_ascii=False)}" if hit.metadata else ""
            lines.append(f"- [{hit.score:.3f}] id={hit.id}{meta}\n  {hit.document}")
        return "\n".join(lines)


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
    indexed_fields: dict[str, str] = Field(description="Payload field -> index type.")
    searchable: bool = Field(description="Whether this server's embedding model matches the collection's vectors.")
    expected_vector: VectorDescription = Field(description="The vector this server writes and searches.")

    @classmethod
    def from_details(cls, details: CollectionDetails, store: QdrantStore) -> CollectionInfoResult:
        return cls(
            name=details.name,
            points_count=details.points_count,
            status=details.status,
            vectors=[VectorDescription(name=v.name, size=v.size, distance=v.distance) for v in details.vectors],
            indexed_fields=details.indexed_fields,
            searchable=details.compatible,
            expected_vector=VectorDescription(
                name=store.vector_name, size=store.embedder.dimension or 0, distance="Cosine"
            ),
        )

    def render(self) -> str:
        vectors = ", ".join(f"{v.name or '<unnamed>'} ({v.size}, {v.distance})" for v in self.vectors) or "none"
        indexes = ", ".join(f"{k}: {v}" for k, v in self.indexed_fields.items()) or "none"
        verdict = (
            "searchable by this server"
            if self.searchable
            else (
                f"NOT searchable by this server (it needs vector {self.expected_vector.name!r} "
                f"of size {self.expected_vector.size})"
            )
        )
        return (
            f"Collection {self.name!r}: {self.points_count} points, status {self.status}; "
            f"vectors: {vectors}; indexed payload fields: {indexes}; {verdict}."
        )
