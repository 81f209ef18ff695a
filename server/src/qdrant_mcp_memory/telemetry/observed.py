"""Telemetry around the layers, by composition: each wrapper implements the layer's own protocol.

The app factory wraps the embedding model, the embedder and the backend in these when
telemetry is on; the layers themselves carry no tracing. A method renamed in a protocol
breaks the wrapper at type-check time instead of silently switching telemetry off.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from ..backends import (
    Backend,
    CollectionSchema,
    DiskSpace,
    FieldType,
    NewCollection,
    OrderedPoint,
    OrderedScroll,
    Page,
    Point,
    PointId,
    ScoredPoint,
    Search,
    StorageCondition,
)
from ..embeddings import Embedder, EmbeddingModel, Kind
from ..errors import ServerBusy
from ..filters import Filter
from .instruments import BoundedValues, Instruments

T = TypeVar("T")


class ObservedModel:
    """Records the size of every run (how well concurrent calls coalesce). A model behind a
    service (`server` given) also gets a CLIENT span per request, as the GenAI conventions name it."""

    def __init__(
        self,
        model: EmbeddingModel,
        tracer: trace.Tracer,
        instruments: Instruments,
        server: tuple[str, int] | None = None,
    ) -> None:
        self.model = model
        self.tracer = tracer
        self.instruments = instruments
        self.server = server
        self._attributes = {"gen_ai.request.model": model.name}

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def description(self) -> str:
        return self.model.description

    def running(self) -> AbstractAsyncContextManager[None]:
        return self.model.running()

    async def load(self) -> int:
        return await self.model.load()

    async def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        self.instruments.embedding_batch_size.record(len(texts), self._attributes)
        if self.server is None:
            return await self.model.embed(kind, texts)
        attributes: dict[str, AttributeValue] = {
            **self._attributes,
            "gen_ai.operation.name": "embeddings",
            "server.address": self.server[0],
            "server.port": self.server[1],
            "qdrant_mcp.embedding.texts": len(texts),
        }
        with self.tracer.start_as_current_span(
            f"embeddings {self.name}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                vectors = await self.model.embed(kind, texts)
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(StatusCode.ERROR, str(exc))
                raise
            span.set_attribute("gen_ai.embeddings.dimension.count", len(vectors[0]))
            return vectors


class ObservedEmbedder:
    """An INTERNAL span and a duration (queueing included) per embedding call; counts refusals."""

    def __init__(self, embedder: Embedder, tracer: trace.Tracer, instruments: Instruments) -> None:
        self.embedder = embedder
        self.tracer = tracer
        self.instruments = instruments

    @property
    def model_name(self) -> str:
        return self.embedder.model_name

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    async def embed_query(self, text: str) -> list[float]:
        return await self._observe("query", 1, lambda: self.embedder.embed_query(text))

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._observe("document", len(texts), lambda: self.embedder.embed_documents(texts))

    async def _observe(self, kind: str, count: int, call: Callable[[], Awaitable[T]]) -> T:
        model = {"gen_ai.request.model": self.model_name}
        attributes: dict[str, AttributeValue] = {
            **model,
            "gen_ai.operation.name": "embeddings",
            "qdrant_mcp.embedding.kind": kind,
            "qdrant_mcp.embedding.texts": count,
        }
        with self.tracer.start_as_current_span(
            f"embeddings {self.model_name}", kind=SpanKind.INTERNAL, attributes=attributes
        ):
            start = time.perf_counter()
            try:
                return await call()
            except ServerBusy:
                self.instruments.embedding_rejected.add(1, model)
                raise
            finally:
                self.instruments.embedding_duration.record(time.perf_counter() - start, model)


class ObservedMemoryEvents:
    """Counts the memories each write created, updated or let expire, per collection."""

    def __init__(self, instruments: Instruments, names: BoundedValues) -> None:
        self.instruments = instruments
        self.names = names

    def created(self, collection: str, count: int) -> None:
        self._add(self.instruments.memories_created, collection, count)

    def updated(self, collection: str, count: int) -> None:
        self._add(self.instruments.memories_updated, collection, count)

    def expired(self, collection: str, count: int) -> None:
        self._add(self.instruments.memories_expired, collection, count)

    def _add(self, counter: metrics.Counter, collection: str, count: int) -> None:
        if count:
            counter.add(count, {"db.collection.name": self.names.collection(collection, exists=True)})


@dataclass
class _Operation:
    span: Span
    rows: int | None = None
    found: bool = True  # whether the collection turned out to exist


class ObservedBackend:
    """A CLIENT span and a duration per Qdrant operation, named as the Qdrant client names them."""

    def __init__(
        self,
        backend: Backend,
        tracer: trace.Tracer,
        instruments: Instruments,
        names: BoundedValues,
        server: tuple[str, int] | None = None,
    ) -> None:
        self.backend = backend
        self.tracer = tracer
        self.instruments = instruments
        self.names = names
        self._base: dict[str, Any] = {"db.system.name": "qdrant"}
        if server is not None:
            self._base["server.address"], self._base["server.port"] = server

    @property
    def description(self) -> str:
        return self.backend.description

    @property
    def exclusive(self) -> bool:
        return self.backend.exclusive

    def running(self) -> AbstractAsyncContextManager[None]:
        return self.backend.running()

    async def ping(self) -> None:
        with self._operation("get_collections", None):
            await self.backend.ping()

    def conditions(self) -> list[StorageCondition]:
        return self.backend.conditions()

    def disk_space(self) -> DiskSpace | None:
        return self.backend.disk_space()

    async def list_collections(self) -> list[str]:
        with self._operation("get_collections", None) as operation:
            names = await self.backend.list_collections()
            operation.rows = len(names)
        return names

    async def describe(self, collection: str) -> CollectionSchema | None:
        with self._operation("get_collection", collection) as operation:
            schema = await self.backend.describe(collection)
            operation.found = schema is not None
        return schema

    async def create_collection(self, collection: str, spec: NewCollection) -> None:
        with self._operation("create_collection", collection):
            await self.backend.create_collection(collection, spec)

    async def create_index(self, collection: str, key: str, field_type: FieldType, *, tenant: bool = False) -> None:
        with self._operation("create_payload_index", collection):
            await self.backend.create_index(collection, key, field_type, tenant=tenant)

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        with self._operation("upsert", collection):
            await self.backend.upsert(collection, points)
        self.instruments.points_stored.add(len(points), self._collection(collection))

    async def search(self, collection: str, search: Search) -> list[ScoredPoint]:
        with self._operation("query_points", collection) as operation:
            hits = await self.backend.search(collection, search)
            operation.rows = len(hits)
        self.instruments.hits_returned.add(len(hits), self._collection(collection))
        return hits

    async def retrieve(self, collection: str, ids: Sequence[PointId], with_vectors: bool = False) -> list[Point]:
        with self._operation("retrieve", collection) as operation:
            found = await self.backend.retrieve(collection, ids, with_vectors)
            operation.rows = len(found)
        return found

    async def count(self, collection: str, filter: Filter | None = None) -> int:
        with self._operation("count", collection) as operation:
            counted = await self.backend.count(collection, filter)
            operation.rows = counted
        return counted

    async def delete_ids(self, collection: str, ids: Sequence[PointId]) -> None:
        with self._operation("delete", collection):
            await self.backend.delete_ids(collection, ids)

    async def delete_matching(self, collection: str, filter: Filter) -> None:
        with self._operation("delete", collection):
            await self.backend.delete_matching(collection, filter)

    async def overwrite_payload(self, collection: str, point_id: PointId, payload: dict[str, Any]) -> None:
        with self._operation("overwrite_payload", collection):
            await self.backend.overwrite_payload(collection, point_id, payload)

    async def scroll(
        self,
        collection: str,
        offset: PointId | None,
        limit: int,
        filter: Filter | None = None,
        with_vectors: bool = True,
    ) -> Page:
        with self._operation("scroll", collection) as operation:
            page = await self.backend.scroll(collection, offset, limit, filter, with_vectors)
            operation.rows = len(page.points)
        return page

    async def scroll_ordered(self, collection: str, scroll: OrderedScroll) -> list[OrderedPoint]:
        with self._operation("scroll", collection) as operation:
            points = await self.backend.scroll_ordered(collection, scroll)
            operation.rows = len(points)
        return points

    def _collection(self, collection: str, *, exists: bool = True) -> dict[str, Any]:
        return {"db.collection.name": self.names.collection(collection, exists=exists)}

    @contextmanager
    def _operation(self, operation: str, collection: str | None) -> Iterator[_Operation]:
        span_attributes = {**self._base, "db.operation.name": operation}
        metric_attributes = dict(span_attributes)
        if collection:
            span_attributes["db.collection.name"] = collection
        name = f"{operation} {collection}" if collection else operation
        with self.tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=span_attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            start = time.perf_counter()
            observed = _Operation(span)
            failed = False
            try:
                yield observed
            except Exception as exc:
                failed = True
                span.set_attribute("error.type", type(exc).__name__)
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, str(exc))
                metric_attributes["error.type"] = type(exc).__name__
                raise
            finally:
                if collection:
                    # Only a name the engine accepted can become an attribute value.
                    metric_attributes.update(self._collection(collection, exists=observed.found and not failed))
                self.instruments.db_duration.record(time.perf_counter() - start, metric_attributes)
            if observed.rows is not None:
                span.set_attribute("db.response.returned_rows", observed.rows)
