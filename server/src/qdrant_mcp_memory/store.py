"""Memories in Qdrant collections laid out as the official server lays them out.

One named dense vector `fast-<model>` (cosine) and the payload `{"document", "metadata"}`,
so a collection moves unchanged between the official server, a Qdrant server and the
embedded engine. In hybrid mode, new collections also get a BM25 sparse vector (IDF
modifier) and searches fuse both rankings; collections without it are searched dense-only.

Each collection's layout is checked before it is first written or searched (and again after
the engine reports it missing), so a mismatched collection fails loudly instead of
returning wrong neighbours, and no embedding work is spent on a call that cannot succeed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from .backends import Backend, DenseVector, NewCollection, Point, PointId, Search, SparseVector
from .embeddings import Embedder
from .errors import CollectionLayoutError, CollectionNotFound, EmbeddingUnavailable, InvalidRequest
from .filters import Filter
from .settings import FilterableField

log = logging.getLogger(__name__)

# Point ids derived from content live in their own UUID namespace (stable across releases).
CONTENT_ID_NAMESPACE = uuid.UUID("6f1f4d1e-3c55-5a4e-9e3c-7d0c2b1c9a11")
SPARSE_VECTOR = "bm25"
# Candidates each ranking contributes to a hybrid search, at least.
HYBRID_CANDIDATES = 50


class SparseEncoder(Protocol):
    """BM25 term weights for the sparse half of hybrid search."""

    def documents(self, texts: Sequence[str]) -> list[SparseVector]: ...

    def query(self, text: str) -> SparseVector: ...


@dataclass(frozen=True)
class StoreConfig:
    vector_name: str
    filterable: tuple[FilterableField, ...] = ()
    # Hybrid search: new collections get the sparse vector; searches fuse dense and BM25.
    hybrid: bool = False


@dataclass(frozen=True)
class Entry:
    document: str
    metadata: dict[str, Any] | None = None
    id: PointId | None = None


@dataclass(frozen=True)
class Stored:
    ids: list[PointId]  # per entry, in input order
    points: int  # distinct points written (identical entries collapse into one)


@dataclass(frozen=True)
class Hit:
    id: PointId
    score: float
    document: str
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class Found:
    hits: list[Hit]
    # "dense", "hybrid", or "dense (no sparse vector)": a hybrid search on an older collection.
    mode: str


@dataclass(frozen=True)
class CollectionDetails:
    name: str
    points_count: int
    status: str
    vectors: list[DenseVector]
    sparse_vectors: list[str]
    indexed_fields: dict[str, str]
    # None (and `unknown` says why) while the model's vector size is not known: its service is unreachable.
    compatible: bool | None
    expected: DenseVector | None
    unknown: str | None = None


@dataclass(frozen=True)
class _Layout:
    sparse: bool


def content_id(document: str) -> str:
    """The id a document gets when none is given: the same text always maps to the same point."""
    return str(uuid.uuid5(CONTENT_ID_NAMESPACE, document))


class QdrantStore:
    """Stores, finds and deletes memories through a Backend."""

    def __init__(
        self, backend: Backend, embedder: Embedder, config: StoreConfig, sparse: SparseEncoder | None = None
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.config = config
        # Written whenever a collection has the sparse vector; searched only in hybrid mode.
        self.sparse = sparse
        self._layouts: dict[str, _Layout] = {}  # collections whose layout and indexes are known good
        self._checking = anyio.Lock()

    # -- writes ----------------------------------------------------------------------

    async def store(self, collection: str, entries: Sequence[Entry]) -> Stored:
        """Embed the entries and write them in one upsert, acknowledged by the engine."""
        ids, unique = _dedupe(entries)
        layout = await self._writable(collection)
        documents = [entry.document for entry in unique.values()]
        vectors = await self.embedder.embed_documents(documents)
        sparse: list[dict[str, SparseVector]] = [{} for _ in documents]
        if layout.sparse:
            sparse = [{SPARSE_VECTOR: v} for v in await anyio.to_thread.run_sync(self._encoder().documents, documents)]
        points = [
            Point(
                id=point_id,
                dense={self.config.vector_name: vector},
                payload={"document": entry.document, "metadata": entry.metadata},
                sparse=sparse_vectors,
            )
            for (point_id, entry), vector, sparse_vectors in zip(unique.items(), vectors, sparse, strict=True)
        ]
        try:
            await self.backend.upsert(collection, points)
        except CollectionNotFound:
            # The engine lost the collection since it was checked (e.g. restarted on empty storage).
            self._layouts.pop(collection, None)
            await self._writable(collection)
            await self.backend.upsert(collection, points)
        return Stored(ids, len(points))

    async def delete_ids(self, collection: str, ids: Sequence[PointId]) -> int:
        """Delete points by id; returns how many of them existed."""
        await self._require_existing(collection)
        existing = await self.backend.existing_ids(collection, ids)
        await self.backend.delete_ids(collection, ids)
        return len(existing)

    async def delete_matching(self, collection: str, filter: Filter) -> int:
        """Delete every point the filter matches; returns how many there were."""
        await self._require_existing(collection)
        count = await self.backend.count(collection, filter)
        await self.backend.delete_matching(collection, filter)
        return count

    # -- reads -----------------------------------------------------------------------

    async def find(
        self,
        collection: str,
        query: str,
        limit: int,
        score_threshold: float | None = None,
        filter: Filter | None = None,
    ) -> Found | None:
        """Nearest documents to `query`; None when the collection does not exist."""
        layout = await self._layout(collection, create=False)
        if layout is None:
            return None
        vector = await self.embedder.embed_query(query)
        search = Search(self.config.vector_name, vector, limit, filter, score_threshold)
        mode = "dense"
        if self.config.hybrid:
            if layout.sparse:
                sparse = self._encoder().query(query)
                candidates = max(HYBRID_CANDIDATES, 2 * limit)
                search = Search(
                    self.config.vector_name, vector, limit, filter, score_threshold, SPARSE_VECTOR, sparse, candidates
                )
                mode = "hybrid"
            else:
                mode = "dense (no sparse vector)"
        try:
            points = await self.backend.search(collection, search)
        except CollectionNotFound:
            self._layouts.pop(collection, None)
            return None
        return Found([_hit(point.id, point.score, point.payload) for point in points], mode)

    async def list_collections(self) -> list[str]:
        return await self.backend.list_collections()

    async def collection_details(self, collection: str) -> CollectionDetails:
        schema = await self.backend.describe(collection)
        if schema is None:
            raise CollectionNotFound(f"collection {collection!r} does not exist")
        expected: DenseVector | None = None
        unknown = None
        try:
            expected = self._expected_vector()
        except EmbeddingUnavailable as exc:  # what the engine holds can still be told
            unknown = str(exc)
        return CollectionDetails(
            name=collection,
            points_count=schema.points_count,
            status=schema.status,
            vectors=list(schema.dense),
            sparse_vectors=list(schema.sparse),
            indexed_fields=schema.indexed_fields,
            compatible=None
            if expected is None
            else any(v.name == expected.name and v.size == expected.size for v in schema.dense),
            expected=expected,
            unknown=unknown,
        )

    # -- layout ----------------------------------------------------------------------

    async def _require_existing(self, collection: str) -> None:
        """Deletes need the collection, not the model: they work while the embedding service is down."""
        if collection not in self._layouts and await self.backend.describe(collection) is None:
            raise CollectionNotFound(f"collection {collection!r} does not exist")

    async def _writable(self, collection: str) -> _Layout:
        layout = await self._layout(collection, create=True)
        if layout is None:  # create=True makes the collection; only a concurrent delete gets here
            raise CollectionNotFound(f"collection {collection!r} was deleted while being written")
        return layout

    async def _layout(self, collection: str, *, create: bool) -> _Layout | None:
        """Check the layout once (creating the collection on first store) and ensure the payload indexes."""
        known = self._layouts.get(collection)
        if known is not None:
            return known
        # One check at a time: two first stores into a new collection must not both create it.
        async with self._checking:
            known = self._layouts.get(collection)
            if known is None:
                known = await self._check(collection, create=create)
                if known is not None:
                    self._layouts[collection] = known
        return known

    async def _check(self, collection: str, *, create: bool) -> _Layout | None:
        expected = self._expected_vector()
        schema = await self.backend.describe(collection)
        if schema is None:
            if not create:
                return None
            sparse = SPARSE_VECTOR if self.config.hybrid else None
            await self.backend.create_collection(collection, NewCollection(expected, sparse))
            log.info("collection created", extra={"collection": collection, "vector": expected.name, "sparse": sparse})
            indexed: dict[str, str] = {}
            layout = _Layout(sparse=sparse is not None)
        else:
            self._check_dense(collection, schema.dense, expected)
            indexed = schema.indexed_fields
            layout = _Layout(sparse=SPARSE_VECTOR in schema.sparse)
        for spec in self.config.filterable:
            key = f"metadata.{spec.name}"
            if key not in indexed:
                await self.backend.create_index(collection, key, spec.field_type)
        return layout

    def _expected_vector(self) -> DenseVector:
        return DenseVector(self.config.vector_name, self.embedder.dimension, "Cosine")

    def _check_dense(self, collection: str, vectors: Sequence[DenseVector], expected: DenseVector) -> None:
        model = self.embedder.model_name
        for vector in vectors:
            if vector.name == expected.name:
                if vector.size != expected.size:
                    raise CollectionLayoutError(
                        f"collection {collection!r} has vector {vector.name!r} of size {vector.size}, but model "
                        f"{model!r} makes vectors of size {expected.size}: use the model the collection was written "
                        "with (EMBEDDING_MODEL) or another collection"
                    )
                return
        found = ", ".join(f"{v.name or '<unnamed>'} (size {v.size})" for v in vectors) or "none"
        raise CollectionLayoutError(
            f"collection {collection!r} has no vector named {expected.name!r} (model {model!r}, size "
            f"{expected.size}); it has: {found}. It was written with another model or tool: set EMBEDDING_MODEL to "
            "that model or use another collection"
        )

    def _encoder(self) -> SparseEncoder:
        if self.sparse is None:
            raise CollectionLayoutError("this collection has a BM25 sparse vector, but no BM25 encoder is configured")
        return self.sparse


def _dedupe(entries: Sequence[Entry]) -> tuple[list[PointId], dict[PointId, Entry]]:
    """Each entry's id, and one entry per id; entries that share an id must be identical."""
    ids: list[PointId] = []
    unique: dict[PointId, Entry] = {}
    first: dict[PointId, int] = {}
    for index, entry in enumerate(entries):
        point_id = entry.id if entry.id is not None else content_id(entry.document)
        ids.append(point_id)
        seen = unique.get(point_id)
        if seen is None:
            unique[point_id] = entry
            first[point_id] = index
        elif (seen.document, seen.metadata) != (entry.document, entry.metadata):
            why = "the same id" if entry.id is not None else "the same text (so the same derived id)"
            raise InvalidRequest(
                f"entries {first[point_id]} and {index} have {why} but different content; one point cannot hold "
                "both: merge them, or give each its own id"
            )
    return ids, unique


def _hit(point_id: PointId, score: float, payload: dict[str, Any]) -> Hit:
    metadata = payload.get("metadata")
    return Hit(
        id=point_id,
        score=score,
        document=str(payload.get("document", "")),
        metadata=metadata if isinstance(metadata, dict) else None,
    )
