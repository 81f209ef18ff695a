"""What the store takes and gives: entries to store, memories read back, and what each call did."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..backends import DEFAULT_FUSION, DenseVector, Fusion, PointId, SparseVector
from ..settings import SIMILARITY_THRESHOLD, FilterableField

# Point ids derived from content live in their own UUID namespace (stable across releases).
CONTENT_ID_NAMESPACE = uuid.UUID("6f1f4d1e-3c55-5a4e-9e3c-7d0c2b1c9a11")
# What a store does with an entry that is a near-duplicate of a stored memory.
IfSimilar = Literal["store", "skip", "replace"]
Order = Literal["newest", "oldest"]


def content_id(document: str) -> str:
    """The id a document gets when none is given: the same text always maps to the same point."""
    return str(uuid.uuid5(CONTENT_ID_NAMESPACE, document))


class SparseEncoder(Protocol):
    """BM25 term weights for the sparse half of hybrid search."""

    def documents(self, texts: Sequence[str]) -> list[SparseVector]: ...

    def query(self, text: str) -> SparseVector: ...


class MemoryEvents(Protocol):
    """Told how many memories each write created, updated or let expire (telemetry counts them)."""

    def created(self, collection: str, count: int) -> None: ...

    def updated(self, collection: str, count: int) -> None: ...

    def expired(self, collection: str, count: int) -> None: ...


class NoEvents:
    def created(self, collection: str, count: int) -> None:
        pass

    def updated(self, collection: str, count: int) -> None:
        pass

    def expired(self, collection: str, count: int) -> None:
        pass


@dataclass(frozen=True)
class StoreConfig:
    vector_name: str
    filterable: tuple[FilterableField, ...] = ()
    # Hybrid search: new collections get the sparse vector; searches fuse dense and BM25.
    hybrid: bool = False
    # How a hybrid search merges the dense and BM25 rankings.
    fusion: Fusion = DEFAULT_FUSION
    # Cosine similarity at or above which if_similar treats two texts as the same memory.
    similarity_threshold: float = SIMILARITY_THRESHOLD
    # The payload keys of the text and the metadata ("": every other key is metadata); see payload.py.
    document_key: str = "document"
    metadata_key: str = "metadata"
    # Tenancy (MCP_TENANT_CLAIM): every collection gets the tenant index (tenancy.py).
    tenants: bool = False


@dataclass(frozen=True)
class Entry:
    document: str
    metadata: dict[str, Any] | None = None
    id: PointId | None = None


@dataclass(frozen=True)
class Memory:
    """One point as a memory: its text, metadata and times (RFC 3339 as stored; None when absent)."""

    id: PointId
    document: str
    metadata: dict[str, Any] | None
    created_at: str | None = None
    updated_at: str | None = None
    expires_at: str | None = None


@dataclass(frozen=True, kw_only=True)
class Hit(Memory):
    score: float
    collection: str


@dataclass(frozen=True)
class Duplicate:
    """An entry that if_similar found a near-duplicate of."""

    entry: int  # its index in the call
    of: PointId  # the stored point (or the earlier entry) it resembles
    similarity: float
    action: Literal["skipped", "replaced"]


@dataclass(frozen=True)
class Stored:
    ids: list[PointId]  # per entry, in input order: where it is stored now
    points: int  # distinct points written (identical entries collapse into one)
    duplicates: list[Duplicate] = field(default_factory=list)


@dataclass(frozen=True)
class Found:
    hits: list[Hit]
    # "dense", "hybrid", or "dense (no sparse vector)": a hybrid search on an older collection.
    mode: str
    # Collections named in a search across several that do not exist.
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fetched:
    memories: list[Memory]  # in the order asked for
    missing: list[PointId]  # ids with no live point


@dataclass(frozen=True)
class Listed:
    memories: list[Memory]
    cursor: str | None  # for the next page; None on the last one


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
    # Settings (variable -> value) that would make this server search and read it; what no setting fixes.
    suggested_settings: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
