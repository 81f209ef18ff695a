"""Qdrant Edge: Qdrant's own engine in-process (segments, WAL, HNSW, payload indexes, BM25).

The root folder (QDRANT_LOCAL_PATH) and how it is opened are `root.py`; a collection's
folder and how its generations change safely, `generations.py`; index builds, `builds.py`;
how the seam's requests become the engine's, `edge_requests.py`, and a collection's layout
(its config, payload index schemas, what `describe` reports), `edge_schema.py`. This module
is the engine adapter: it turns the seam's calls into engine calls and decides when a
collection is flushed and when its index is built.

The engine holds the GIL while it works, so every call runs in one worker thread (off the
event loop) and stays short. Building the HNSW index (`optimize`) takes seconds to minutes
and would freeze the process; it runs instead in a child process on a copy of the shard,
while searches and writes go on against the live one. Writes made meanwhile are replayed
onto the optimized copy, which then replaces the live shard in one step (loading an
optimized shard maps its files: a fraction of a second even at 100 000 points).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from .. import filters as f
from ..errors import CollectionNotFound, QdrantRejected, QdrantUnavailable, ServiceError
from . import (
    CollectionSchema,
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
    diskspace,
    generations,
    point_id_of,
    root,
)
from .builds import IndexBuilds
from .diskspace import DiskSpace
from .durability import DEFAULT_INTERVAL_S, FsyncMode, WalSync
from .edge_requests import (
    first_line,
    from_record,
    ordered_scroll_request,
    render_filter,
    scroll_request,
    search_request,
)
from .edge_schema import collection_schema, edge_config, index_schema
from .generations import LiveCollection
from .root import collection_folder

if TYPE_CHECKING:
    import qdrant_edge as qe

log = logging.getLogger(__name__)
T = TypeVar("T")

# Unindexed points that start an index build once writes pause. The engine indexes a segment
# only above ~6 500 384-d vectors (its 10 MB indexing threshold); below, search is exact and fast.
OPTIMIZE_AT_UNINDEXED = 8_000
# Writes count as paused after this long without one: then the shard is flushed (bounding what
# a crash would replay from the WAL) and, if enough is unindexed, an index build starts.
QUIET_S = 2.0


@dataclass(frozen=True)
class EmbeddedConfig:
    path: Path
    # `:memory:`: a folder of its own under `path` (default: the system's temporary folder), made
    # when the engine opens and removed when it closes (nothing is synced: no write outlives it).
    temporary: bool = False
    # When a write is acknowledged: once its WAL record is synced, or at once with a sync every interval.
    fsync: FsyncMode = "always"
    fsync_interval_s: float = DEFAULT_INTERVAL_S
    # Seconds before a failed index build is tried again (doubling with each failure in a row).
    build_retry_s: float = 60.0

    @classmethod
    def in_memory(cls) -> EmbeddedConfig:
        return cls(Path(tempfile.gettempdir()), temporary=True)


class EdgeBackend:
    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        self.root = config.path
        self._opened: root.OpenRoot | None = None
        self._collections: dict[str, LiveCollection] = {}
        self._tasks: TaskGroup | None = None
        # One engine thread: the engine holds the GIL, so more threads would only queue on it.
        self._engine = anyio.CapacityLimiter(1)
        self._creating = anyio.Lock()
        self._builds = IndexBuilds(self._run, config.build_retry_s)
        self._space = self._watermark()  # a temporary root gets its own once it exists
        self._log_syncs: dict[LiveCollection, WalSync] = {}

    @property
    def description(self) -> str:
        return (
            "embedded Qdrant Edge in a temporary folder"
            if self.config.temporary
            else f"embedded Qdrant Edge at {self.root}"
        )

    @property
    def exclusive(self) -> bool:
        return True  # the folder's lock keeps every other process out

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
        if self.config.temporary:
            self.root = root.make_temporary(self.config.path)
            self._space = self._watermark()
        try:
            self._opened = root.open_root(self.root, before_loading=self._space.make_room_to_load)
        except BaseException:
            self._remove_if_temporary()
            raise
        self._collections = self._opened.collections

    def _watermark(self) -> diskspace.Watermark:
        return diskspace.Watermark(
            self.root, lambda: [c.shard_path for c in self._collections.values()], reserve=not self.config.temporary
        )

    def _close_all(self) -> None:
        if self._opened is not None:
            root.close_root(self._opened)
            self._opened = None
        self._remove_if_temporary()

    def _remove_if_temporary(self) -> None:
        if self.config.temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- reads ----------------------------------------------------------------------------

    async def ping(self) -> None:
        if self._tasks is None:
            raise QdrantUnavailable("the embedded engine is closed: the server is starting or shutting down")

    def conditions(self) -> list[StorageCondition]:
        space = self.disk_space()
        unloadable = self._opened.unloadable.values() if self._opened is not None else ()
        return [
            *([StorageCondition("disk-full", space.refusal())] if space is not None and not space.writable else []),
            *(StorageCondition("collection-unloadable", problem.reason, problem.name) for problem in unloadable),
            *(
                StorageCondition("collection-fell-back", collection.fell_back, collection.name)
                for collection in self._collections.values()
                if collection.fell_back is not None
            ),
            *self._builds.conditions(),
        ]

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
            self._refuse_unloadable(collection)
            return None
        config = json.loads((found.shard_path / "edge_config.json").read_text())
        info = await self._run(found.shard.info)
        return collection_schema(config, info, building=found.replay is not None)

    async def search(self, collection: str, search: Search) -> list[ScoredPoint]:
        found = self._get(collection)
        points = await self._run(found.shard.query, search_request(search))
        return [ScoredPoint(point_id_of(p.id), float(p.score), dict(p.payload or {})) for p in points]

    async def retrieve(self, collection: str, ids: Sequence[PointId], with_vectors: bool = False) -> list[Point]:
        found = self._get(collection)
        records = await self._run(found.shard.retrieve, list(ids), True, with_vectors)
        return [from_record(record) for record in records]

    async def count(self, collection: str, filter: f.Filter | None = None) -> int:
        import qdrant_edge as qe

        found = self._get(collection)
        return int(await self._run(found.shard.count, qe.CountRequest(exact=True, filter=render_filter(filter))))

    async def scroll(
        self,
        collection: str,
        offset: PointId | None,
        limit: int,
        filter: f.Filter | None = None,
        with_vectors: bool = True,
    ) -> Page:
        found = self._get(collection)
        records, next_offset = await self._run(found.shard.scroll, scroll_request(offset, limit, filter, with_vectors))
        points = [from_record(record) for record in records]
        return Page(points, point_id_of(next_offset) if next_offset is not None else None)

    async def scroll_ordered(self, collection: str, scroll: OrderedScroll) -> list[OrderedPoint]:
        found = self._get(collection)
        records, _ = await self._run(found.shard.scroll, ordered_scroll_request(scroll))
        return [OrderedPoint(from_record(record), record.order_value) for record in records]

    # -- writes ---------------------------------------------------------------------------

    async def create_collection(self, collection: str, spec: NewCollection) -> None:
        await self.ping()
        async with self._creating:
            if collection in self._collections:
                return
            self._refuse_unloadable(collection)
            folder = self.root / "collections" / collection_folder(collection)
            config = edge_config(spec)
            await self._run(self._space.check)
            self._collections[collection] = await self._run(generations.create, folder, collection, config)

    async def create_index(self, collection: str, key: str, field_type: FieldType, *, tenant: bool = False) -> None:
        import qdrant_edge as qe

        schema = index_schema(field_type, tenant=tenant)
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

        rendered = render_filter(filter)
        if rendered is None:
            raise QdrantRejected("refusing to delete with an empty filter")
        await self._write(collection, qe.UpdateOperation.delete_points_by_filter(rendered), count=1)

    async def overwrite_payload(self, collection: str, point_id: PointId, payload: dict[str, Any]) -> None:
        import qdrant_edge as qe

        await self._write(collection, qe.UpdateOperation.overwrite_payload([point_id], payload), count=1)

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
        async def due() -> bool:
            info = await self._run(collection.shard.info)
            return bool(info.points_count - info.indexed_vectors_count >= OPTIMIZE_AT_UNINDEXED)

        retry_in = await self._builds.build(collection, due)
        if retry_in is not None and self._tasks is not None:  # a failed build is tried again, writes or not
            self._tasks.start_soon(self._maintain_after, collection, retry_in)

    async def _maintain_after(self, collection: LiveCollection, delay: float) -> None:
        await anyio.sleep(delay)
        self._maintain(collection)

    # -- plumbing ------------------------------------------------------------------------

    def _get(self, collection: str) -> LiveCollection:
        if self._tasks is None:
            raise QdrantUnavailable("the embedded engine is closed: the server is starting or shutting down")
        found = self._collections.get(collection)
        if found is None:
            self._refuse_unloadable(collection)
            raise CollectionNotFound(f"collection {collection!r} does not exist")
        return found

    def _refuse_unloadable(self, collection: str) -> None:
        """A collection on disk that failed to load is neither served nor created anew over its data."""
        folder = self.root / "collections" / collection_folder(collection)
        problem = self._opened.unloadable.get(folder) if self._opened is not None else None
        if problem is not None:
            raise QdrantUnavailable(f"{problem}; the other collections are served (see /readyz and the log)")

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        """One engine call in the engine thread; its failures become ServiceErrors."""
        try:
            return await anyio.to_thread.run_sync(call, *args, limiter=self._engine)
        except ServiceError:
            raise
        except Exception as exc:
            raise QdrantRejected(f"the embedded engine refused the request: {first_line(exc)}") from exc
