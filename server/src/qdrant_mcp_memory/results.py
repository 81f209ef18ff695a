"""Structured tool results (the `outputSchema`) and the readable text each renders to."""

from __future__ import annotations

import json
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from .store import CollectionDetails, Found, Stored
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


class StoreResult(ToolResult):
    collection: str
    id: PointId = Field(description="The id of the stored point.")

    def render(self) -> str:
        return f"Remembered in collection {self.collection!r} as {self.id}."


class StoreManyResult(ToolResult):
    collection: str
    ids: list[PointId] = Field(description="The id each entry was stored under, in input order.")
    points: int = Field(description="How many distinct points were written (identical entries share one).")

    @classmethod
    def from_stored(cls, collection: str, stored: Stored) -> StoreManyResult:
        return cls(collection=collection, ids=stored.ids, points=stored.points)

    def render(self) -> str:
        text = f"Remembered {self.points} entries in collection {self.collection!r}."
        if self.points != len(self.ids):
            repeated = len(self.ids) - self.points
            text += f" {repeated} of the {len(self.ids)} entries repeated another entry exactly and were stored once."
        return text


class FoundEntry(BaseModel):
    id: PointId
    score: float = Field(description="Higher is closer: cosine similarity, or with hybrid search the fused rank score.")
    document: str
    metadata: dict[str, Any] | None = None


class FindResult(ToolResult):
    collection: str
    query: str
    collection_exists: bool
    hits: list[FoundEntry]
    search: str = Field(
        "dense",
        description="How the collection was searched: dense, hybrid (dense + BM25), or dense only because the "
        "collection has no BM25 vector.",
    )

    @classmethod
    def from_found(cls, collection: str, query: str, found: Found | None) -> FindResult:
        # Points stored before text was validated may hold lone surrogates: replace them so every hit is returnable.
        hits = [
            FoundEntry(id=h.id, score=h.score, document=sanitize(h.document), metadata=sanitize(h.metadata))
            for h in (found.hits if found else [])
        ]
        mode = found.mode if found else "dense"
        return cls(collection=collection, query=query, collection_exists=found is not None, hits=hits, search=mode)

    def render(self) -> str:
        if not self.collection_exists:
            return f"Collection {self.collection!r} does not exist yet: nothing is stored there."
        note = ""
        if self.search == "dense (no sparse vector)":
            note = " (searched by meaning only: this collection was created without the BM25 vector hybrid search uses)"
        if not self.hits:
            return f"No results for {self.query!r} in collection {self.collection!r}{note}."
        lines = [f"Results for {self.query!r} in collection {self.collection!r}{note}:"]
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
    sparse_vectors: list[str] = Field(default_factory=list, description="Sparse vectors (bm25 for hybrid search).")
    indexed_fields: dict[str, str] = Field(description="Payload field -> index type.")
    searchable: bool | None = Field(
        description="Whether this server's embedding model matches the collection's vectors (null: unknown while "
        "the embedding service cannot be reached)."
    )
    expected_vector: VectorDescription | None = Field(description="The vector this server writes and searches.")
    unknown: str | None = Field(None, description="Why searchable is unknown.")

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
        return (
            f"Collection {self.name!r}: {self.points_count} points, status {self.status}; "
            f"vectors: {vectors}; indexed payload fields: {indexes}; {verdict}."
        )
