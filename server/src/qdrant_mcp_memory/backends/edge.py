"""Qdrant Edge: Qdrant's own engine in-process (segments, WAL, HNSW, payload indexes, BM25).

Layout under the root folder (QDRANT_LOCAL_PATH):

    qdrant-mcp-memory.json          marks the folder as this engine's ({"format": ..., "version": 1})
    .lock                           held while a server has the folder open (one process at a time)
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
collection's folder and its generations change safely is `generations.py`; how the seam's
requests become the engine's is `edge_requests.py`; this module is the engine adapter and
decides when a build runs.
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
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from .. import filters as f
from ..errors import CollectionNotFound, QdrantRejected, QdrantUnavailable, ServiceError
from . import (
    CollectionSchema,
    DenseVector,
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
    generations,
    point_id_of,
)
from .edge_requests import first_line, ordered_scroll_request, render_filter, scroll_request, search_request
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
_INDEX_TYPES = {"keyword": "Keyword", "integer": "Integer", "float": "Float", "boolean": "Bool", "datetime": "Datetime"}
_SCHEMA_NAMES = {
    "Keyword": "keyword",
    "Integer": "integer",
    "Float": "float",
    "Bool": "bool",
    "Text": "text",
    "Datetime": "datetime",
}

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
    # `:memory:`: the folder is removed when the server stops.
    temporary: bool = False


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
        return []

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
        found = self._get(collection)
        points = await self._run(found.shard.query, search_request(search))
        return [ScoredPoint(point_id_of(p.id), float(p.score), dict(p.payload or {})) for p in points]

    async def retrieve(self, collection: str, ids: Sequence[PointId], with_vectors: bool = False) -> list[Point]:
        found = self._get(collection)
        records = await self._run(found.shard.retrieve, list(ids), True, with_vectors)
        return [_from_record(record) for record in records]

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
        points = [_from_record(record) for record in records]
        return Page(points, point_id_of(next_offset) if next_offset is not None else None)

    async def scroll_ordered(self, collection: str, scroll: OrderedScroll) -> list[OrderedPoint]:
        found = self._get(collection)
        records, _ = await self._run(found.shard.scroll, ordered_scroll_request(scroll))
        return [OrderedPoint(_from_record(record), record.order_value) for record in records]

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

        rendered = render_filter(filter)
        if rendered is None:
            raise QdrantRejected("refusing to delete with an empty filter")
        await self._write(collection, qe.UpdateOperation.delete_points_by_filter(rendered), count=1)

    async def overwrite_payload(self, collection: str, point_id: PointId, payload: dict[str, Any]) -> None:
        import qdrant_edge as qe

        await self._write(collection, qe.UpdateOperation.overwrite_payload([point_id], payload), count=1)

    async def _write(self, collection: str, operation: qe.UpdateOperation, count: int) -> None:
        found = self._get(collection)
        async with found.write_lock:
            await self._run(found.shard.update, operation)
            if found.replay is not None:
                found.replay.append(operation)
        found.writes += max(count, 1)
        self._maintain(found)

    # -- maintenance after writes: flush, and index builds in a child process -------------------

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
            raise QdrantRejected(f"the embedded engine refused the request: {first_line(exc)}") from exc


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
