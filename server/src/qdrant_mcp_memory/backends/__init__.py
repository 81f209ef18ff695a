"""The seam between the store and a Qdrant engine.

Two implementations: `RemoteBackend` (a Qdrant server through `AsyncQdrantClient`, which
also opens qdrant-client's local-mode folders) and `EdgeBackend` (Qdrant Edge, the engine
in-process). The store, health checks and telemetry see only `Backend`, so a collection
behaves the same on either, and one behavioural suite runs against both.

Every method raises `errors.QdrantUnavailable` when the engine cannot be reached (worth a
retry), `errors.CollectionNotFound` for a missing collection, and `errors.QdrantRejected`
when the engine refuses the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..filters import Filter
from ..validation import PointId as PointId  # re-exported: the seam's id type
from .diskspace import DiskSpace as DiskSpace  # re-exported: the seam's free-space reading

FieldType = Literal["keyword", "integer", "float", "boolean", "datetime"]
# Reciprocal rank fusion's constant: Qdrant's own default (server and client), so a hybrid
# search ranks the same on every engine: score = sum over rankings of 1 / (k + rank).
RRF_K = 2


def point_id_of(value: object) -> PointId:
    """A point id as engines hand it back (an int, or a UUID object or string) in this seam's form."""
    return value if isinstance(value, int) else str(value)


def dense_of(vector: object) -> list[float] | None:
    """A dense vector as engines hand it back, or None for any other kind (sparse, multi-vector)."""
    if isinstance(vector, list) and all(isinstance(x, float | int) for x in vector):
        return [float(x) for x in vector if isinstance(x, float | int)]
    return None


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class Point:
    id: PointId
    dense: dict[str, list[float]]
    payload: dict[str, Any]
    sparse: dict[str, SparseVector] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredPoint:
    id: PointId
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class DenseVector:
    name: str
    size: int
    distance: str = "Cosine"


@dataclass(frozen=True)
class CollectionSchema:
    """A collection as the engine describes it."""

    dense: tuple[DenseVector, ...]
    sparse: tuple[str, ...]
    points_count: int
    indexed_fields: dict[str, str]
    status: str


@dataclass(frozen=True)
class NewCollection:
    dense: DenseVector
    # A sparse vector with the IDF modifier, for hybrid (BM25) search; None = dense only.
    sparse: str | None = None


@dataclass(frozen=True)
class Recency:
    """Newer points rank higher: each candidate's score times (1 - weight + weight * decay), where
    decay (Qdrant's exp_decay on the datetime at `key`, from `now`) halves every `half_life_s`."""

    key: str
    now: str  # RFC 3339
    half_life_s: float
    weight: float
    # The time assumed for points without the key: they count as the oldest.
    missing: str = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class Fusion:
    """How a hybrid search merges its dense and BM25 rankings: Qdrant's RRF (each ranking adds
    1 / (k + rank / weight); `weights` = (dense, BM25), None = equal), or DBSF (each ranking's
    scores normalised by their mean and spread, then added)."""

    # DBSF by default: the look-alike evaluation's choice (README, "Hybrid search").
    method: Literal["rrf", "dbsf"] = "dbsf"
    weights: tuple[float, float] | None = None


DEFAULT_FUSION = Fusion()


@dataclass(frozen=True)
class Search:
    """Nearest neighbours of `dense`; with `sparse` too, the two rankings merged by `fusion`.

    `diversity` re-ranks the candidates by maximal marginal relevance (Qdrant's MMR on the dense
    vector; 0 = relevance only, 1 = diversity only) and `recency` re-scores them by age; with both,
    MMR picks `limit` points and recency orders them."""

    dense_name: str
    dense: list[float]
    limit: int
    filter: Filter | None = None
    # Cosine similarity floor; in hybrid mode it applies to the dense candidates.
    score_threshold: float | None = None
    sparse_name: str | None = None
    sparse: SparseVector | None = None
    # Candidates each ranking contributes to the fusion, and that MMR and recency re-rank.
    candidates: int = 0
    diversity: float | None = None
    recency: Recency | None = None
    fusion: Fusion = DEFAULT_FUSION

    @property
    def hybrid(self) -> bool:
        return self.sparse is not None and self.sparse_name is not None

    @property
    def reranked(self) -> bool:
        return self.diversity is not None or self.recency is not None


@dataclass(frozen=True)
class OrderedScroll:
    """Points that have a datetime at `key` (with a payload index on it), in that order.

    `start_from` (inclusive) lets the engine start in its index instead of skipping there; the
    filter still decides what is returned. Ties come back in no particular order."""

    key: str
    descending: bool
    limit: int
    filter: Filter | None = None
    start_from: str | None = None  # RFC 3339


@dataclass(frozen=True)
class OrderedPoint:
    point: Point
    # The key's value as the engine orders it (microseconds since the epoch for a datetime), if it says.
    order_value: int | float | None


# The kinds of StorageCondition, stable names for /readyz, alerts and the conditions metric:
# writes refused for lack of disk space, a collection that is not served (it failed to load),
# one served from its previous generation (the newest failed to load), an index build that
# failed or did not fit on the disk (each backing off before the next attempt).
CONDITION_KINDS = (
    "disk-full",
    "collection-unloadable",
    "collection-fell-back",
    "index-build-failed",
    "index-build-skipped",
)


@dataclass(frozen=True)
class StorageCondition:
    """A problem the engine works around while it keeps serving (a collection that failed to
    load, a failed index build, low disk space), for /readyz and the logs."""

    kind: str  # a stable name (CONDITION_KINDS)
    detail: str  # one line: what is wrong and what to do
    collection: str | None = None


@dataclass(frozen=True)
class Page:
    points: list[Point]
    next_offset: PointId | None


class Backend(Protocol):
    """A Qdrant engine holding collections in the official server's layout."""

    @property
    def description(self) -> str:
        """Where the data lives, for logs and errors (e.g. `Qdrant at http://qdrant:6333`)."""
        ...

    def running(self) -> AbstractAsyncContextManager[None]:
        """Open the engine for the duration of the block; at exit flush and release everything
        (calls after that raise QdrantUnavailable)."""
        ...

    @property
    def exclusive(self) -> bool:
        """Whether this process is the storage's only writer (an embedded folder it has locked, or
        local mode): then what it did not write, nobody did."""
        ...

    async def ping(self) -> None: ...

    def conditions(self) -> list[StorageCondition]:
        """Problems the engine is working around now; empty when all is well."""
        ...

    def disk_space(self) -> DiskSpace | None:
        """Free space on the disk holding the data, against the floor below which writes are refused;
        None when the data is not on this machine (a Qdrant server) or the engine is not open."""
        ...

    async def list_collections(self) -> list[str]: ...

    async def describe(self, collection: str) -> CollectionSchema | None:
        """The collection's vectors, size and indexes; None when it does not exist."""
        ...

    async def create_collection(self, collection: str, spec: NewCollection) -> None:
        """Create it; one that exists already is accepted as it is (another writer created it
        first, or a retried request whose first answer was lost did)."""
        ...

    async def create_index(self, collection: str, key: str, field_type: FieldType, *, tenant: bool = False) -> None:
        """A payload index on `key`; `tenant` (keyword only): Qdrant's `is_tenant`, which groups each
        value's points in storage so filtering by one tenant reads only its points."""
        ...

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        """Write points; returns once the write is acknowledged, as every write here does. A Qdrant
        server: applied and in its WAL (Qdrant's wait=True; how it syncs its WAL is its own setting).
        Embedded (QDRANT_EMBEDDED_FSYNC): `always`, the write's WAL record has been fsynced, so a
        power cut cannot lose it; `interval`, it is fsynced within the interval after the return.
        Either way a crash of the process loses nothing returned (the WAL is replayed at start).
        Raises errors.DiskFull, and writes nothing, when the embedded engine's disk is too full."""
        ...

    async def search(self, collection: str, search: Search) -> list[ScoredPoint]: ...

    async def retrieve(self, collection: str, ids: Sequence[PointId], with_vectors: bool = False) -> list[Point]:
        """The points that exist among `ids`, with their payloads (and vectors when asked)."""
        ...

    async def count(self, collection: str, filter: Filter | None = None) -> int: ...

    async def delete_ids(self, collection: str, ids: Sequence[PointId]) -> None: ...

    async def delete_matching(self, collection: str, filter: Filter) -> None: ...

    async def overwrite_payload(self, collection: str, point_id: PointId, payload: dict[str, Any]) -> None:
        """Replace one point's whole payload, its vectors untouched; acknowledged like upsert.
        A point that does not exist raises QdrantRejected."""
        ...

    async def scroll(
        self,
        collection: str,
        offset: PointId | None,
        limit: int,
        filter: Filter | None = None,
        with_vectors: bool = True,
    ) -> Page:
        """A page of points with their payloads, in id order from `offset` (inclusive)."""
        ...

    async def scroll_ordered(self, collection: str, scroll: OrderedScroll) -> list[OrderedPoint]:
        """Points (with payloads) ordered by a datetime payload key; see OrderedScroll."""
        ...
