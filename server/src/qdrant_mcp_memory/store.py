"""Qdrant access in the official server's layout, through the async client only.

The same `AsyncQdrantClient` code path serves a remote URL and the embedded local mode
(`:memory:` or a directory). Each collection's layout is checked once per process before
it is searched or written, so a mismatched collection fails loudly instead of
returning wrong neighbours.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .embeddings import FastEmbedEmbedder
from .settings import FilterableField, Settings

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient, models

# qdrant-client is imported where it is used, not here: importing it takes a second or two,
# and the transport should answer (health, tools/list) while that happens in `start()`.

log = logging.getLogger(__name__)

# Point ids derived from content live in their own UUID namespace.
CONTENT_ID_NAMESPACE = uuid.UUID("6f1f4d1e-3c55-5a4e-9e3c-7d0c2b1c9a11")
PING_TIMEOUT_S = 2.0

_INDEX_TYPES = {"keyword": "keyword", "integer": "integer", "float": "float", "boolean": "bool"}

PointId = str | int


class StoreError(Exception):
    """A failure with a message meant for the caller (and an LLM) to act on."""


class QdrantUnavailable(StoreError):
    pass


class CollectionLayoutError(StoreError):
    pass


class CollectionNotFound(StoreError):
    pass


@dataclass(frozen=True)
class Entry:
    document: str
    metadata: dict[str, Any] | None = None
    id: PointId | None = None


@dataclass(frozen=True)
class Hit:
    id: PointId
    score: float
    document: str
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class VectorInfo:
    name: str
    size: int
    distance: str


@dataclass(frozen=True)
class CollectionDetails:
    name: str
    points_count: int
    status: str
    vectors: list[VectorInfo]
    indexed_fields: dict[str, str]
    compatible: bool


def content_id(document: str) -> str:
    """The id a document gets when none is given: the same text always maps to the same point."""
    return str(uuid.uuid5(CONTENT_ID_NAMESPACE, document))


def normalize_id(value: PointId) -> PointId:
    """Qdrant takes unsigned integers or UUIDs; reject anything else with a clear message."""
    if isinstance(value, bool):
        raise StoreError(f"invalid point id {value!r}: use a UUID string or a non-negative integer")
    if isinstance(value, int):
        if value < 0:
            raise StoreError(f"invalid point id {value}: integer ids must be non-negative")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise StoreError(f"invalid point id {value!r}: use a UUID string or a non-negative integer") from None


class QdrantStore:
    """Stores and finds documents in Qdrant collections laid out as the official server does."""

    def __init__(self, settings: Settings, embedder: FastEmbedEmbedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.vector_name = settings.vector_name
        self._filterable: Sequence[FilterableField] = settings.filterable_fields or []
        self._client: AsyncQdrantClient | None = None
        self._checked: set[str] = set()  # collections whose layout and indexes are known good
        self._started = anyio.Event()
        self._checking = anyio.Lock()

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Import the client library and load the model off the event loop; operations wait for this."""
        await anyio.to_thread.run_sync(importlib.import_module, "qdrant_client")
        await self.open()
        await anyio.to_thread.run_sync(self.embedder.load)
        self._started.set()

    @property
    def started(self) -> bool:
        return self._started.is_set()

    async def open(self) -> None:
        """Open the client. Remote connections are lazy; the embedded store opens its files here."""
        from qdrant_client import AsyncQdrantClient

        location = self.settings.qdrant_location
        if self.settings.qdrant_url:
            api_key = self.settings.qdrant_api_key.get_secret_value() if self.settings.qdrant_api_key else None
            if location == ":memory:":
                self._client = AsyncQdrantClient(location=location)
            else:
                self._client = AsyncQdrantClient(url=location, api_key=api_key, timeout=10, check_compatibility=False)
        else:
            await anyio.Path(location).mkdir(parents=True, exist_ok=True)
            self._client = AsyncQdrantClient(path=location)
        log.info("qdrant client opened", extra={"qdrant": self.describe_location()})

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def describe_location(self) -> str:
        if self.settings.qdrant_url:
            return self.settings.qdrant_url
        return f"embedded at {self.settings.qdrant_location}"

    @property
    def client(self) -> AsyncQdrantClient:
        if self._client is None:
            raise QdrantUnavailable("the Qdrant client is closed: the server is shutting down")
        return self._client

    async def ping(self) -> None:
        """Raise QdrantUnavailable unless Qdrant answers within PING_TIMEOUT_S."""
        with anyio.fail_after(PING_TIMEOUT_S):
            await self.call("ping", None, self.client.get_collections())

    # -- writes ----------------------------------------------------------------------

    async def store(self, collection: str, entries: Sequence[Entry]) -> list[PointId]:
        """Embed all entries in one batch and write them in one upsert, acknowledged by Qdrant."""
        from qdrant_client import models

        await self._started.wait()
        vectors = await self.embedder.embed_documents([entry.document for entry in entries])
        await self._ensure_collection(collection, create=True)
        ids = [normalize_id(entry.id) if entry.id is not None else content_id(entry.document) for entry in entries]
        points = [
            models.PointStruct(
                id=point_id,
                vector={self.vector_name: vector},
                payload={"document": entry.document, "metadata": entry.metadata},
            )
            for point_id, entry, vector in zip(ids, entries, vectors, strict=True)
        ]
        await self.call("upsert", collection, self.client.upsert(collection, points=points, wait=True))
        return ids

    async def delete(self, collection: str, ids: Sequence[PointId] | None, query_filter: models.Filter | None) -> int:
        """Delete points by id or by filter; returns how many existed and were removed."""
        from qdrant_client import models

        await self._started.wait()
        await self._ensure_collection(collection, create=False)
        if ids:
            point_ids = [normalize_id(point_id) for point_id in ids]
            found = await self.call(
                "retrieve", collection, self.client.retrieve(collection, point_ids, with_payload=False)
            )
            selector: models.PointsSelector = models.PointIdsList(points=point_ids)
            count = len(found)
        else:
            assert query_filter is not None
            counted = await self.call(
                "count", collection, self.client.count(collection, count_filter=query_filter, exact=True)
            )
            selector = models.FilterSelector(filter=query_filter)
            count = counted.count
        await self.call("delete", collection, self.client.delete(collection, points_selector=selector, wait=True))
        return count

    # -- reads -----------------------------------------------------------------------

    async def find(
        self,
        collection: str,
        query: str,
        limit: int,
        score_threshold: float | None = None,
        query_filter: models.Filter | None = None,
    ) -> list[Hit] | None:
        """Nearest documents to `query`; None when the collection does not exist."""
        await self._started.wait()
        try:
            await self._ensure_collection(collection, create=False)
        except CollectionNotFound:
            return None
        vector = await self.embedder.embed_query(query)
        response = await self.call(
            "query_points",
            collection,
            self.client.query_points(
                collection,
                query=vector,
                using=self.vector_name,
                limit=limit,
                score_threshold=score_threshold,
                query_filter=query_filter,
                with_payload=True,
            ),
        )
        return [_hit(point) for point in response.points]

    async def list_collections(self) -> list[str]:
        await self._started.wait()
        response = await self.call("get_collections", None, self.client.get_collections())
        return sorted(collection.name for collection in response.collections)

    async def collection_details(self, collection: str) -> CollectionDetails:
        await self._started.wait()
        info = await self._get_collection(collection)
        vectors = _vectors_of(info)
        indexed = {name: str(_enum_value(schema.data_type)) for name, schema in (info.payload_schema or {}).items()}
        expected = VectorInfo(self.vector_name, self.embedder.dimension or 0, "Cosine")
        return CollectionDetails(
            name=collection,
            points_count=info.points_count or 0,
            status=str(_enum_value(info.status)),
            vectors=vectors,
            indexed_fields=indexed,
            compatible=any(v.name == expected.name and v.size == expected.size for v in vectors),
        )

    # -- internals -------------------------------------------------------------------

    async def _get_collection(self, collection: str) -> models.CollectionInfo:
        if not await self.call("collection_exists", collection, self.client.collection_exists(collection)):
            raise CollectionNotFound(f"collection {collection!r} does not exist")
        return await self.call("get_collection", collection, self.client.get_collection(collection))

    async def _ensure_collection(self, collection: str, *, create: bool) -> None:
        """Check the layout once per process; create the collection on first store; ensure indexes."""
        if collection in self._checked:
            return
        # One check at a time: two first stores into a new collection must not both create it.
        async with self._checking:
            if collection not in self._checked:
                await self._check_collection(collection, create=create)

    async def _check_collection(self, collection: str, *, create: bool) -> None:
        from qdrant_client import models

        dimension = self.embedder.dimension
        assert dimension is not None, "embedder not loaded"
        try:
            info = await self._get_collection(collection)
        except CollectionNotFound:
            if not create:
                raise
            await self.call(
                "create_collection",
                collection,
                self.client.create_collection(
                    collection,
                    vectors_config={
                        self.vector_name: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
                    },
                ),
            )
            log.info("collection created", extra={"collection": collection, "vector": self.vector_name})
            indexed: dict[str, Any] = {}
        else:
            self._check_layout(collection, info)
            indexed = info.payload_schema or {}
        for field in self._filterable:
            key = f"metadata.{field.name}"
            if key not in indexed:
                await self.call(
                    "create_payload_index",
                    collection,
                    self.client.create_payload_index(
                        collection,
                        field_name=key,
                        field_schema=models.PayloadSchemaType(_INDEX_TYPES[field.field_type]),
                        wait=True,
                    ),
                )
        self._checked.add(collection)

    def _check_layout(self, collection: str, info: models.CollectionInfo) -> None:
        vectors = _vectors_of(info)
        dimension = self.embedder.dimension
        for vector in vectors:
            if vector.name == self.vector_name:
                if vector.size != dimension:
                    raise CollectionLayoutError(
                        f"collection {collection!r} has vector {vector.name!r} of size {vector.size}, but model "
                        f"{self.embedder.model_name!r} makes vectors of size {dimension}: use the model the "
                        "collection was written with (EMBEDDING_MODEL) or another collection"
                    )
                return
        found = ", ".join(f"{v.name or '<unnamed>'} (size {v.size})" for v in vectors) or "none"
        raise CollectionLayoutError(
            f"collection {collection!r} has no vector named {self.vector_name!r} (model {self.embedder.model_name!r}, "
            f"size {dimension}); it has: {found}. It was written with another model or tool: set EMBEDDING_MODEL "
            "to that model or use another collection"
        )

    async def call(self, operation: str, collection: str | None, awaitable: Any) -> Any:
        """Every Qdrant request passes here (telemetry wraps it): errors become actionable StoreErrors."""
        try:
            return await awaitable
        except StoreError:
            raise
        except Exception as exc:
            raise self._translate(operation, collection, exc) from exc

    def _translate(self, operation: str, collection: str | None, exc: Exception) -> StoreError:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        if isinstance(exc, UnexpectedResponse):
            if exc.status_code == 404 and collection is not None:
                self._checked.discard(collection)
                return CollectionNotFound(f"collection {collection!r} does not exist")
            if exc.status_code in (401, 403):
                return QdrantUnavailable(
                    f"Qdrant at {self.settings.qdrant_url} refused the request ({exc.status_code}): check QDRANT_API_KEY"
                )
            detail = _response_detail(exc)
            return StoreError(f"Qdrant rejected {operation} ({exc.status_code}): {detail}")
        if isinstance(exc, (ResponseHandlingException, ConnectionError, TimeoutError, OSError)) or _is_transport_error(
            exc
        ):
            return QdrantUnavailable(
                f"Qdrant at {self.describe_location()} is unreachable ({type(exc).__name__}): check QDRANT_URL and "
                "that Qdrant is running; the call can be retried"
            )
        if isinstance(exc, ValueError) and collection is not None and "not found" in str(exc).lower():
            self._checked.discard(collection)
            return CollectionNotFound(f"collection {collection!r} does not exist")
        return StoreError(f"Qdrant {operation} failed: {exc}")


def _is_transport_error(exc: Exception) -> bool:
    # httpx is qdrant-client's transport; its errors do not derive from OSError.
    return type(exc).__module__.startswith(("httpx", "httpcore"))


def _response_detail(exc: Any) -> str:
    try:
        import json

        body = json.loads(exc.content)
        return str(body.get("status", {}).get("error") or body)
    except Exception:
        return exc.reason_phrase or "no detail"


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def _vectors_of(info: models.CollectionInfo) -> list[VectorInfo]:
    from qdrant_client import models

    config = info.config.params.vectors
    if config is None:
        return []
    if isinstance(config, models.VectorParams):
        return [VectorInfo("", config.size, str(_enum_value(config.distance)))]
    return [VectorInfo(name, params.size, str(_enum_value(params.distance))) for name, params in config.items()]


def _hit(point: models.ScoredPoint) -> Hit:
    payload = point.payload or {}
    metadata = payload.get("metadata")
    return Hit(
        id=point.id,
        score=point.score,
        document=str(payload.get("document", "")),
        metadata=metadata if isinstance(metadata, dict) else None,
    )
