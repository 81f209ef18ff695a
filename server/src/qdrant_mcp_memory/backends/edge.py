"""Qdrant Edge: Qdrant's own engine in-process (segments, WAL, HNSW, payload indexes, BM25).

Layout under the root folder (QDRANT_LOCAL_PATH):

    qdrant-mcp-memory.json          marks the folder as this engine's ({"format": ..., "version": 1})
    .lock                           held while a server has the folder open (one process at a time)
    .disk-reserve                   8 MiB given up to open the collections on a full disk (diskspace.py)
    collections/<slug>-<hash>/      one folder a collection: the name's SHA-256 keeps names apart
        collection.json             {"name": <the collection's exact name>, "generation": N}
        gen-N/                      the collection's shard (one shard a collection)

A collection's folder name derives from a hash of its exact name, so `..`, separators, NUL
or names that differ only in case can never reach or collide on the filesystem.

The engine holds the GIL while it works, so every call runs in one worker thread (off the
event loop) and stays short. Building the HNSW index (`optimize`) takes seconds to minutes
and would freeze the process; it runs instead in a child process on a copy of the shard,
while searches and writes go on against the live one. Writes made meanwhile are replayed
onto the optimized copy, which then replaces the live shard in one step (loading an
optimized shard maps its files: a fraction of a second even at 100 000 points). How a
collection's folder and its generations change safely is `generations.py`; this module is
the engine adapter and decides when a build runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from .. import filters as f
from ..errors import CollectionNotFound, QdrantRejected, QdrantUnavailable, ServiceError
from . import (
    RRF_K,
    CollectionSchema,
    DenseVector,
    FieldType,
    NewCollection,
    Page,
    Point,
    PointId,
    ScoredPoint,
    Search,
    SparseVector,
    StorageCondition,
    dense_of,
    diskspace,
    generations,
    point_id_of,
)
from .diskspace import DiskSpace
from .durability import DEFAULT_INTERVAL_S, FsyncMode, WalSync
from .generations import LiveCollection

if TYPE_CHECKING:
    import qdrant_edge as qe

log = logging.getLogger(__name__)
T = TypeVar("T")

FORMAT = "qdrant-mcp-memory/edge"
FORMAT_VERSION = 1
MARKER = "qdrant-mcp-memory.json"
# Unindexed points that start an index build once writes pause. The engine indexes a segment
# only above ~6 500 384-d vectors (its 10 MB indexing threshold); below, search is exact and fast.
OPTIMIZE_AT_UNINDEXED = 8_000
# Writes count as paused after this long without one: then the shard is flushed (bounding what
# a crash would replay from the WAL) and, if enough is unindexed, an index build starts.
QUIET_S = 2.0
# Candidates explored per search in the HNSW graph (Qdrant's default is 100): a little more
# recall for a memory store's small limits, at a cost far below the query's embedding.
SEARCH_EF = 128
_INDEX_TYPES = {"keyword": "Keyword", "integer": "Integer", "float": "Float", "boolean": "Bool"}
_SCHEMA_NAMES = {"Keyword": "keyword", "Integer": "integer", "Float": "float", "Bool": "bool", "Text": "text"}

FolderKind = Literal["missing", "empty", "edge", "local-mode", "other"]


def folder_kind(path: Path) -> FolderKind:
    """What a QDRANT_LOCAL_PATH holds: nothing yet, this engine's layout, qdrant-client local mode, or else."""
    if not path.exists():
        return "missing"
    if not path.is_dir():
        return "other"
    names = {child.name for child in path.iterdir()}
    if not names:
        return "empty"
    if MARKER in names:
        return "edge"
    if "meta.json" in names or "collection" in names:
        return "local-mode"
    return "other"


def collection_folder(name: str) -> str:
    """A folder name for a collection: readable, bounded, and unique to the exact name."""
    slug = re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_")[:40] or "collection"
    return f"{slug}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:16]}"


@dataclass(frozen=True)
class EmbeddedConfig:
    path: Path
    # `:memory:`: the folder is removed when the server stops (and nothing is synced: no write outlives it).
    temporary: bool = False
    # When a write is acknowledged: once its WAL record is synced, or at once with a sync every interval.
    fsync: FsyncMode = "always"
    fsync_interval_s: float = DEFAULT_INTERVAL_S


class EdgeBackend:
    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        self.root = config.path
        self._collections: dict[str, LiveCollection] = {}
        self._lock_file: int | None = None
        self._tasks: TaskGroup | None = None
        # One engine thread: the engine holds the GIL, so more threads would only queue on it.
        self._engine = anyio.CapacityLimiter(1)
        self._creating = anyio.Lock()
        self._space = diskspace.Watermark(
            self.root, lambda: [c.shard_path for c in self._collections.values()], reserve=not config.temporary
        )
        self._log_syncs: dict[LiveCollection, WalSync] = {}

    @property
    def description(self) -> str:
        return (
            "embedded Qdrant Edge in a temporary folder"
            if self.config.temporary
            else f"embedded Qdrant Edge at {self.root}"
        )

    # -- lifecycle ----------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(self._open_root)
        try:
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                for collection in self._collections.values():
                    self._maintain(collection)
                try:
                    yield
                finally:
                    tasks.cancel_scope.cancel()  # an index build in progress is abandoned (its copy removed)
        finally:
            self._tasks = None
            self._log_syncs.clear()  # each synced what waited for it before its task group ended
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close_all)

    def _open_root(self) -> None:
        kind = folder_kind(self.root)
        if kind == "local-mode":
            raise ServiceError(
                f"{self.root} holds qdrant-client local-mode data; run `qdrant-mcp-memory migrate` to move it"
            )
        if kind == "other":
            raise ServiceError(
                f"{self.root} is not empty and not an embedded Qdrant folder: point QDRANT_LOCAL_PATH at an empty "
                "or new folder"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock()
        marker = self.root / MARKER
        if kind in ("missing", "empty"):
            generations.write_json(marker, {"format": FORMAT, "version": FORMAT_VERSION})
        else:
            found = json.loads(marker.read_text())
            if found.get("format") != FORMAT or found.get("version") != FORMAT_VERSION:
                raise ServiceError(f"{marker} describes {found}, which this release cannot open")
        (self.root / "collections").mkdir(exist_ok=True)
        self._space.make_room_to_load()
        for folder in sorted((self.root / "collections").iterdir()):
            collection = generations.load(folder)
            if collection is not None:
                self._collections[collection.name] = collection

    def _lock(self) -> None:
        descriptor = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            raise ServiceError(
                f"{self.root} is in use by another qdrant-mcp-memory process: stop it, or give this one its own "
                "QDRANT_LOCAL_PATH"
            ) from None
        self._lock_file = descriptor

    def _close_all(self) -> None:
        for collection in self._collections.values():
            try:
                collection.shard.flush()
                collection.shard.close()
            except Exception as exc:  # closing must go on for the others
                log.warning("closing a collection failed", extra={"collection": collection.name, "error": str(exc)})
        self._collections.clear()
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None
        if self.config.temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- reads ----------------------------------------------------------------------------

    async def ping(self) -> None:
        if self._tasks is None:
            raise QdrantUnavailable("the embedded engine is closed: the server is starting or shutting down")

    def conditions(self) -> list[StorageCondition]:
        space = self.disk_space()
        if space is not None and not space.writable:
            return [StorageCondition("disk-full", space.refusal())]
        return []

    def disk_space(self) -> DiskSpace | None:
        if self._tasks is None:
            return None
        try:
            return self._space.read()
        except OSError:  # the folder went away under the server: /readyz and the writes say so
            return None

    async def list_collections(self) -> list[str]:
        await self.ping()
        return sorted(self._collections)

    async def describe(self, collection: str) -> CollectionSchema | None:
        await self.ping()
        found = self._collections.get(collection)
        if found is None:
            return None
        config = json.loads((found.shard_path / "edge_config.json").read_text())
        info = await self._run(found.shard.info)
        dense = tuple(
            DenseVector(name, int(params["size"]), str(params.get("distance", "Cosine")))
            for name, params in config.get("vectors", {}).items()
        )
        indexed = {
            key: _SCHEMA_NAMES.get(_enum_name(v.data_type), _enum_name(v.data_type).lower())
            for key, v in info.payload_schema.items()
        }
        status = "yellow" if found.replay is not None else "green"  # yellow: an index is being built
        return CollectionSchema(
            dense, tuple(sorted(config.get("sparse_vectors", {}))), info.points_count, indexed, status
        )

    async def search(self, collection: str, search: Search) -> list[ScoredPoint]:
        import qdrant_edge as qe

        found = self._get(collection)
        query_filter = _filter(search.filter)
        params = qe.SearchParams(hnsw_ef=SEARCH_EF)
        if search.sparse is None or search.sparse_name is None:
            request = qe.QueryRequest(
                limit=search.limit,
                query=qe.Query.Nearest(search.dense, using=search.dense_name),
                filter=query_filter,
                score_threshold=search.score_threshold,
                with_payload=True,
                params=params,
            )
        else:
            sparse = qe.SparseVector(indices=search.sparse.indices, values=search.sparse.values)
            request = qe.QueryRequest(
                limit=search.limit,
                prefetches=[
                    qe.Prefetch(
                        query=qe.Query.Nearest(search.dense, using=search.dense_name),
                        limit=search.candidates,
                        filter=query_filter,
                        score_threshold=search.score_threshold,
                        params=params,
                    ),
                    qe.Prefetch(
                        query=qe.Query.Nearest(sparse, using=search.sparse_name),
                        limit=search.candidates,
                        filter=query_filter,
                    ),
                ],
                # The stubs do not declare Fusion.Rrf a Fusion, but the engine takes it (tested).
                query=cast("qe.Fusion", qe.Fusion.Rrf(k=RRF_K)),
                filter=query_filter,
                with_payload=True,
            )
        points = await self._run(found.shard.query, request)
        return [ScoredPoint(point_id_of(p.id), float(p.score), dict(p.payload or {})) for p in points]

    async def existing_ids(self, collection: str, ids: Sequence[PointId]) -> list[PointId]:
        found = self._get(collection)
        records = await self._run(found.shard.retrieve, list(ids), False, False)
        return [point_id_of(record.id) for record in records]

    async def count(self, collection: str, filter: f.Filter | None = None) -> int:
        import qdrant_edge as qe

        found = self._get(collection)
        return int(await self._run(found.shard.count, qe.CountRequest(exact=True, filter=_filter(filter))))

    async def scroll(self, collection: str, offset: PointId | None, limit: int) -> Page:
        import qdrant_edge as qe

        found = self._get(collection)
        request = qe.ScrollRequest(offset=offset, limit=limit, with_payload=True, with_vector=True)
        records, next_offset = await self._run(found.shard.scroll, request)
        points = [_from_record(record) for record in records]
        return Page(points, point_id_of(next_offset) if next_offset is not None else None)

    # -- writes ---------------------------------------------------------------------------

    async def create_collection(self, collection: str, spec: NewCollection) -> None:
        import qdrant_edge as qe

        await self.ping()
        async with self._creating:
            if collection in self._collections:
                return
            folder = self.root / "collections" / collection_folder(collection)
            config = qe.EdgeConfig(
                vectors={spec.dense.name: qe.EdgeVectorParams(size=spec.dense.size, distance=qe.Distance.Cosine)},
                sparse_vectors={spec.sparse: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
                if spec.sparse
                else None,
            )

            await self._run(self._space.check)
            self._collections[collection] = await self._run(generations.create, folder, collection, config)

    async def create_index(self, collection: str, key: str, field_type: FieldType) -> None:
        import qdrant_edge as qe

        schema = getattr(qe.PayloadSchemaType, _INDEX_TYPES[field_type])
        await self._write(collection, qe.UpdateOperation.create_field_index(key, schema), count=0)

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        import qdrant_edge as qe

        edge_points = [
            qe.Point(
                point.id,
                {
                    **point.dense,
                    **{name: qe.SparseVector(indices=v.indices, values=v.values) for name, v in point.sparse.items()},
                },
                point.payload,
            )
            for point in points
        ]
        await self._write(collection, qe.UpdateOperation.upsert_points(edge_points), count=len(points))

    async def delete_ids(self, collection: str, ids: Sequence[PointId]) -> None:
        import qdrant_edge as qe

        await self._write(collection, qe.UpdateOperation.delete_points(list(ids)), count=len(ids))

    async def delete_matching(self, collection: str, filter: f.Filter) -> None:
        import qdrant_edge as qe

        rendered = _filter(filter)
        if rendered is None:
            raise QdrantRejected("refusing to delete with an empty filter")
        await self._write(collection, qe.UpdateOperation.delete_points_by_filter(rendered), count=1)

    async def _write(self, collection: str, operation: qe.UpdateOperation, count: int) -> None:
        """Apply a write when the disk has room for it, and return once it is acknowledged (durability.py)."""
        found = self._get(collection)
        async with found.write_lock:
            await self._run(self._apply, found, operation)
            log_sync = self._log_sync(found)
            pending = log_sync.written() if log_sync is not None else None
            if found.replay is not None:
                found.replay.append(operation)
        found.writes += max(count, 1)
        self._maintain(found)
        if pending is not None:
            await pending.durable()

    def _apply(self, collection: LiveCollection, operation: qe.UpdateOperation) -> None:
        """In the engine thread, so no other write of this process comes between the check and the write."""
        self._space.check()
        collection.shard.update(operation)

    def _log_sync(self, collection: LiveCollection) -> WalSync | None:
        """The collection's WAL syncer (None for a temporary folder, which no write outlives)."""
        if self.config.temporary or self._tasks is None:
            return None
        found = self._log_syncs.get(collection)
        if found is None:
            found = self._log_syncs[collection] = WalSync(
                lambda: collection.shard_path / "wal", self.config.fsync, self.config.fsync_interval_s, self._tasks
            )
        return found

    # -- maintenance after writes: flush the segments, and index builds in a child process ------

    def _maintain(self, collection: LiveCollection) -> None:
        if self._tasks is not None and not collection.maintaining:
            collection.maintaining = True
            self._tasks.start_soon(self._maintain_when_quiet, collection)

    async def _maintain_when_quiet(self, collection: LiveCollection) -> None:
        try:
            flushed_at = -1
            while collection.writes != flushed_at:  # writes during a build call for another round
                while True:  # wait until writes pause
                    seen = collection.writes
                    await anyio.sleep(QUIET_S)
                    if collection.writes == seen:
                        break
                await self._flush(collection)
                flushed_at = collection.writes
                await self._build_if_due(collection)
        except ServiceError as exc:
            log.warning("collection maintenance skipped", extra={"collection": collection.name, "error": str(exc)})
        finally:
            collection.maintaining = False

    async def _flush(self, collection: LiveCollection) -> None:
        async with collection.write_lock:
            await self._run(collection.shard.flush)

    async def _build_if_due(self, collection: LiveCollection) -> None:
        info = await self._run(collection.shard.info)
        if info.points_count - info.indexed_vectors_count >= OPTIMIZE_AT_UNINDEXED:
            await generations.rebuild_index(collection, self._run)

    # -- plumbing ------------------------------------------------------------------------

    def _get(self, collection: str) -> LiveCollection:
        if self._tasks is None:
            raise QdrantUnavailable("the embedded engine is closed: the server is starting or shutting down")
        found = self._collections.get(collection)
        if found is None:
            raise CollectionNotFound(f"collection {collection!r} does not exist")
        return found

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        """One engine call in the engine thread; its failures become ServiceErrors."""
        try:
            return await anyio.to_thread.run_sync(call, *args, limiter=self._engine)
        except ServiceError:
            raise
        except Exception as exc:
            raise QdrantRejected(f"the embedded engine refused the request: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _enum_name(value: object) -> str:
    return str(value).rsplit(".", 1)[-1]


def _from_record(record: qe.Record) -> Point:
    import qdrant_edge as qe

    dense: dict[str, list[float]] = {}
    sparse: dict[str, SparseVector] = {}
    vectors = record.vector
    named = vectors if isinstance(vectors, dict) else {"": vectors}
    for name, vector in (named or {}).items():
        if isinstance(vector, qe.SparseVector):
            sparse[name] = SparseVector(list(vector.indices), list(vector.values))
        elif (values := dense_of(vector)) is not None:
            dense[name] = values
    return Point(point_id_of(record.id), dense, dict(record.payload or {}), sparse)


def _filter(flt: f.Filter | None) -> qe.Filter | None:
    try:
        return _render(flt) if flt else None
    except (ValueError, TypeError, OverflowError) as exc:  # what filters.py could not foresee
        raise QdrantRejected(f"the embedded engine cannot use this filter: {_first_line(exc)}") from None


def _render(flt: f.Filter) -> qe.Filter:
    import numpy
    import qdrant_edge as qe

    def conditions(items: Sequence[f.Condition]) -> list[Any] | None:
        return [condition(item) for item in items] or None

    def condition(item: f.Condition) -> Any:
        if isinstance(item, f.Filter):
            return _render(item)
        if isinstance(item, f.IsEmpty):
            return qe.IsEmptyCondition(key=item.key)
        if isinstance(item, f.IsNull):
            return qe.IsNullCondition(key=item.key)
        if isinstance(item, f.HasId):
            return qe.HasIdCondition(point_ids=set(item.ids))
        if isinstance(item, f.Nested):
            return qe.NestedCondition(key=item.key, filter=_render(item.filter))
        return qe.FieldCondition(key=item.key, **field_check(item.check))

    def field_check(check: f.Match | f.Range | f.DatetimeRange) -> dict[str, Any]:
        if isinstance(check, f.MatchValue):
            # qdrant-edge 0.9.0 turns a Python bool into the integer 1/0, which matches no boolean
            # payload value; numpy's bool reaches the engine as a boolean.
            value = cast(bool, numpy.bool_(check.value)) if isinstance(check.value, bool) else check.value
            return {"match": qe.MatchValue(value)}
        if isinstance(check, f.MatchAny):
            return {"match": qe.MatchAny(any=check.listed())}
        if isinstance(check, f.MatchExcept):
            return {"match": qe.MatchExcept(check.listed())}
        if isinstance(check, f.MatchText):
            return {"match": qe.MatchText(text=check.text)}
        if isinstance(check, f.DatetimeRange):
            return {"range": qe.RangeDateTime(gt=check.gt, gte=check.gte, lt=check.lt, lte=check.lte)}
        return {"range": qe.RangeFloat(gt=check.gt, gte=check.gte, lt=check.lt, lte=check.lte)}

    min_should = None
    if flt.min_should:
        min_should = qe.MinShould(
            conditions=conditions(flt.min_should.conditions) or [], min_count=flt.min_should.min_count
        )
    return qe.Filter(
        must=conditions(flt.must),
        should=conditions(flt.should),
        must_not=conditions(flt.must_not),
        min_should=min_should,
    )
