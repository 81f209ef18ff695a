"""A Qdrant server through `AsyncQdrantClient`, and qdrant-client's local-mode folders.

Local mode (a folder of SQLite files, brute-force search in Python) is what the official
server and this server's earlier releases wrote under QDRANT_LOCAL_PATH; it is opened here
so those folders keep working until they are migrated to the embedded engine.

Transient failures (connection refused or reset, timeouts, 502/503/504) are retried a few
times with a short backoff; everything else fails at once with a message saying why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .. import filters as f
from ..errors import CollectionNotFound, QdrantRejected, QdrantUnavailable, ServiceError
from . import (
    CollectionSchema,
    DenseVector,
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
    SparseVector,
    StorageCondition,
    dense_of,
    point_id_of,
)
from .remote_requests import as_datetime, query_arguments, render_filter

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient, models

log = logging.getLogger(__name__)
T = TypeVar("T")

# A call (all its attempts together) gets this long: a Qdrant that is down or hangs fails calls
# fast instead of holding them. Writes wait for Qdrant's acknowledgement, so they get longer.
READ_DEADLINE_S = 3.0
WRITE_DEADLINE_S = 10.0
WRITES = frozenset({"upsert", "delete", "create_collection", "create_payload_index", "overwrite_payload"})
# Pauses between the attempts at a transient failure (refused, reset, timed out, 502/503/504).
RETRY_PAUSES_S = (0.2, 0.6)
_TRANSIENT_STATUS = frozenset({502, 503, 504})
_INDEX_TYPES = {"keyword": "keyword", "integer": "integer", "float": "float", "boolean": "bool", "datetime": "datetime"}


@dataclass(frozen=True)
class RemoteConfig:
    """Where the server is, and how collections it creates are laid out across a cluster."""

    url: str | None = None
    api_key: str | None = None
    # qdrant-client local mode: a folder (or ":memory:") instead of a URL.
    path: str | None = None
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None


class RemoteBackend:
    def __init__(self, config: RemoteConfig) -> None:
        self.config = config
        self._client: AsyncQdrantClient | None = None

    @property
    def description(self) -> str:
        if self.config.url:
            return f"Qdrant at {self.config.url}"
        return f"qdrant-client local mode at {self.config.path}"

    @property
    def exclusive(self) -> bool:
        return not self.config.url  # local mode locks its folder; a server has other clients

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        from qdrant_client import AsyncQdrantClient

        if self.config.url:
            self._client = AsyncQdrantClient(
                url=self.config.url,
                api_key=self.config.api_key,
                timeout=int(WRITE_DEADLINE_S),
                check_compatibility=False,
            )
        elif self.config.path == ":memory:":
            self._client = AsyncQdrantClient(location=":memory:")
        else:
            # Opening a local-mode folder reads every point into memory: seconds for large ones.
            path = self.config.path
            self._client = await anyio.to_thread.run_sync(lambda: AsyncQdrantClient(path=path))
        try:
            yield
        finally:
            client, self._client = self._client, None
            with anyio.CancelScope(shield=True):
                await client.close()

    @property
    def client(self) -> AsyncQdrantClient:
        if self._client is None:
            raise QdrantUnavailable("the Qdrant client is closed: the server is shutting down")
        return self._client

    async def ping(self) -> None:
        await self._call("ping", None, self.client.get_collections)

    def conditions(self) -> list[StorageCondition]:
        return []  # a Qdrant server reports its own problems

    def disk_space(self) -> DiskSpace | None:
        return None  # a Qdrant server watches its own disk; local mode's sqlite fails writes with an error

    async def list_collections(self) -> list[str]:
        response = await self._call("get_collections", None, self.client.get_collections)
        return sorted(collection.name for collection in response.collections)

    async def describe(self, collection: str) -> CollectionSchema | None:
        try:
            info = await self._call("get_collection", collection, lambda: self.client.get_collection(collection))
        except CollectionNotFound:
            return None
        return _schema(info)

    async def create_collection(self, collection: str, spec: NewCollection) -> None:
        from qdrant_client import models

        dense = {spec.dense.name: models.VectorParams(size=spec.dense.size, distance=models.Distance.COSINE)}
        sparse = {spec.sparse: models.SparseVectorParams(modifier=models.Modifier.IDF)} if spec.sparse else None
        try:
            await self._call(
                "create_collection",
                collection,
                lambda: self.client.create_collection(
                    collection,
                    vectors_config=dense,
                    sparse_vectors_config=sparse,
                    shard_number=self.config.shard_number,
                    replication_factor=self.config.replication_factor,
                    write_consistency_factor=self.config.write_consistency_factor,
                ),
            )
        except QdrantRejected:
            # "Already exists": another replica created it meanwhile, or Qdrant created it and its
            # answer to an earlier attempt was lost. Either way the collection is there now.
            if await self.describe(collection) is None:
                raise

    async def create_index(self, collection: str, key: str, field_type: FieldType, *, tenant: bool = False) -> None:
        from qdrant_client import models

        schema: models.PayloadSchemaType | models.KeywordIndexParams = models.PayloadSchemaType(
            _INDEX_TYPES[field_type]
        )
        if tenant:  # local mode keeps no indexes and ignores it; a Qdrant server groups the points
            schema = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
        await self._call(
            "create_payload_index",
            collection,
            lambda: self.client.create_payload_index(collection, field_name=key, field_schema=schema, wait=True),
        )

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        from qdrant_client import models

        structs = [
            models.PointStruct(
                id=point.id,
                vector={
                    **point.dense,
                    **{
                        name: models.SparseVector(indices=v.indices, values=v.values)
                        for name, v in point.sparse.items()
                    },
                },
                payload=point.payload,
            )
            for point in points
        ]
        await self._call("upsert", collection, lambda: self.client.upsert(collection, points=structs, wait=True))

    async def search(self, collection: str, search: Search) -> list[ScoredPoint]:
        arguments = query_arguments(search)
        response = await self._call(
            "query_points", collection, lambda: self.client.query_points(collection, **arguments)
        )
        return [ScoredPoint(point_id_of(point.id), point.score, point.payload or {}) for point in response.points]

    async def retrieve(self, collection: str, ids: Sequence[PointId], with_vectors: bool = False) -> list[Point]:
        found = await self._call(
            "retrieve",
            collection,
            lambda: self.client.retrieve(collection, list(ids), with_payload=True, with_vectors=with_vectors),
        )
        return [_point(record) for record in found]

    async def count(self, collection: str, filter: f.Filter | None = None) -> int:
        counted = await self._call(
            "count", collection, lambda: self.client.count(collection, count_filter=render_filter(filter), exact=True)
        )
        return int(counted.count)

    async def delete_ids(self, collection: str, ids: Sequence[PointId]) -> None:
        from qdrant_client import models

        selector = models.PointIdsList(points=list(ids))
        await self._call("delete", collection, lambda: self.client.delete(collection, selector, wait=True))

    async def delete_matching(self, collection: str, filter: f.Filter) -> None:
        from qdrant_client import models

        rendered = render_filter(filter)
        if rendered is None:
            raise QdrantRejected("refusing to delete with an empty filter")
        selector = models.FilterSelector(filter=rendered)
        await self._call("delete", collection, lambda: self.client.delete(collection, selector, wait=True))

    async def overwrite_payload(self, collection: str, point_id: PointId, payload: dict[str, Any]) -> None:
        try:
            await self._call(
                "overwrite_payload",
                collection,
                lambda: self.client.overwrite_payload(collection, payload=payload, points=[point_id], wait=True),
            )
        except CollectionNotFound:
            # Qdrant answers 404 for a missing point too (local mode raises KeyError).
            if await self.describe(collection) is None:
                raise
            raise QdrantRejected(f"no point {point_id} in collection {collection!r}") from None

    async def scroll(
        self,
        collection: str,
        offset: PointId | None,
        limit: int,
        filter: f.Filter | None = None,
        with_vectors: bool = True,
    ) -> Page:
        records, next_offset = await self._call(
            "scroll",
            collection,
            lambda: self.client.scroll(
                collection,
                scroll_filter=render_filter(filter),
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            ),
        )
        points = [_point(record) for record in records]
        return Page(points, point_id_of(next_offset) if next_offset is not None else None)

    async def scroll_ordered(self, collection: str, scroll: OrderedScroll) -> list[OrderedPoint]:
        from qdrant_client import models

        order = models.OrderBy(
            key=scroll.key,
            direction=models.Direction.DESC if scroll.descending else models.Direction.ASC,
            start_from=as_datetime(scroll.start_from),
        )
        records, _ = await self._call(
            "scroll",
            collection,
            lambda: self.client.scroll(
                collection,
                scroll_filter=render_filter(scroll.filter),
                limit=scroll.limit,
                order_by=order,
                with_payload=True,
                with_vectors=False,
            ),
        )
        return [OrderedPoint(_point(record), record.order_value) for record in records]

    # -- errors and retries -------------------------------------------------------------

    async def _call(self, operation: str, collection: str | None, request: Callable[[], Awaitable[T]]) -> T:
        """Run one client request within the call's deadline; retry transient failures while time
        is left; turn failures into ServiceErrors."""
        budget = WRITE_DEADLINE_S if operation in WRITES else READ_DEADLINE_S
        deadline = anyio.current_time() + budget
        for attempt, pause in enumerate((*RETRY_PAUSES_S, None)):
            try:
                with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                    return await request()
            except ServiceError:
                raise
            except TimeoutError:
                raise self._unavailable(f"no answer within {budget:.0f} s") from None
            except Exception as exc:
                error = self._translate(operation, collection, exc)
                retry = isinstance(error, QdrantUnavailable) and pause is not None and self._client is not None
                if not retry or anyio.current_time() + (pause or 0) >= deadline:
                    raise error from exc
                log.info("retrying after a transient failure", extra={"operation": operation, "attempt": attempt + 1})
                await anyio.sleep(pause or 0)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _translate(self, operation: str, collection: str | None, exc: Exception) -> ServiceError:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        if isinstance(exc, UnexpectedResponse):
            if exc.status_code == 404 and collection is not None:
                return CollectionNotFound(f"collection {collection!r} does not exist")
            if exc.status_code in (401, 403):
                return QdrantRejected(
                    f"{self.description} refused the request ({exc.status_code}): check QDRANT_API_KEY"
                )
            if exc.status_code in _TRANSIENT_STATUS:
                return self._unavailable(f"HTTP {exc.status_code}")
            return QdrantRejected(f"Qdrant rejected {operation} ({exc.status_code}): {_response_detail(exc)}")
        if isinstance(exc, ResponseHandlingException):
            return self._unavailable(_cause(exc.source))
        if isinstance(exc, ConnectionError | TimeoutError | OSError) or _is_transport(exc):
            return self._unavailable(_cause(exc))
        if isinstance(exc, ValueError) and collection is not None and "not found" in str(exc).lower():
            # Local mode raises ValueError("Collection x not found").
            return CollectionNotFound(f"collection {collection!r} does not exist")
        if isinstance(exc, KeyError) and operation == "overwrite_payload":
            return QdrantRejected(f"no point {exc} in collection {collection!r}")
        return QdrantRejected(f"Qdrant {operation} failed: {exc}")

    def _unavailable(self, reason: str) -> QdrantUnavailable:
        return QdrantUnavailable(
            f"{self.description} is unreachable ({reason}): check QDRANT_URL and that Qdrant is running; "
            "the call can be retried"
        )


def _cause(exc: BaseException) -> str:
    """What went wrong on the wire, in words (qdrant-client wraps it in its own exception)."""
    name = type(exc).__name__
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return "no answer in time"
    if name == "ConnectError" or isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if name in ("RemoteProtocolError", "ReadError", "WriteError") or isinstance(exc, ConnectionResetError):
        return "connection dropped"
    return name


def _is_transport(exc: Exception) -> bool:
    # httpx is qdrant-client's transport; its errors do not derive from OSError.
    return type(exc).__module__.startswith(("httpx", "httpcore"))


def _response_detail(exc: Any) -> str:
    try:
        body = json.loads(exc.content)
        return str(body.get("status", {}).get("error") or body)
    except Exception:  # any body at all: fall back to the status text
        return str(exc.reason_phrase or "no detail")


def _enum(value: Any) -> str:
    return str(getattr(value, "value", value))


def _schema(info: models.CollectionInfo) -> CollectionSchema:
    from qdrant_client import models

    config = info.config.params.vectors
    if config is None:
        dense: tuple[DenseVector, ...] = ()
    elif isinstance(config, models.VectorParams):
        dense = (DenseVector("", config.size, _enum(config.distance)),)
    else:
        dense = tuple(DenseVector(name, p.size, _enum(p.distance)) for name, p in config.items())
    sparse = tuple(sorted(info.config.params.sparse_vectors or {}))
    indexed = {name: _enum(schema.data_type) for name, schema in (info.payload_schema or {}).items()}
    return CollectionSchema(dense, sparse, info.points_count or 0, indexed, _enum(info.status))


def _point(record: models.Record) -> Point:
    from qdrant_client import models

    dense: dict[str, list[float]] = {}
    sparse: dict[str, SparseVector] = {}
    vectors = record.vector
    named = vectors if isinstance(vectors, dict) else {"": vectors}
    for name, vector in named.items():
        if isinstance(vector, models.SparseVector):
            sparse[name] = SparseVector(list(vector.indices), list(vector.values))
        elif (values := dense_of(vector)) is not None:  # multivectors (lists of lists) are not this layout's
            dense[name] = values
    return Point(point_id_of(record.id), dense, record.payload or {}, sparse)
