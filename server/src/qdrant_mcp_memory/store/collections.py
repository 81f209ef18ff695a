"""The store's shared state, and each collection's layout: checked once, created on first store.

Each collection's layout is checked before it is first written or searched (and again after
the engine reports it missing), so a mismatched collection fails loudly instead of returning
wrong neighbours, and no embedding work is spent on a call that cannot succeed. The payload
indexes (FILTERABLE_FIELDS, and the datetime indexes listing and expiry use) are ensured then.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Self

import anyio

from .. import times
from ..backends import Backend, DenseVector, FieldType, NewCollection, PointId
from ..embeddings import Embedder
from ..errors import CollectionLayoutError, CollectionNotFound, DiskFull, EmbeddingUnavailable
from ..filters import Condition, Filter, HasId, IsEmpty, all_of
from ..settings import QUANTIZED_VECTOR_SUFFIX
from .advice import SAMPLE, Advice, advise
from .model import CollectionDetails, Memory, MemoryEvents, NoEvents, SparseEncoder, StoreConfig
from .payload import PayloadLayout
from .tenancy import Tenant

log = logging.getLogger("qdrant_mcp_memory.store")

SPARSE_VECTOR = "bm25"
# Updates of one point run one at a time (read, change, write); points share these locks.
UPDATE_LOCKS = 64


@dataclass(frozen=True)
class Layout:
    sparse: bool
    # Why this server's model cannot search or write the collection; None when it can.
    problem: str | None = None


class StoreBase:
    """What every part of the store shares: the engine, the embedder, the settings and the layouts."""

    def __init__(
        self,
        backend: Backend,
        embedder: Embedder,
        config: StoreConfig,
        sparse: SparseEncoder | None = None,
        events: MemoryEvents | None = None,
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.config = config
        # Written whenever a collection has the sparse vector; searched only in hybrid mode.
        self.sparse = sparse
        self.events: MemoryEvents = events or NoEvents()
        self.payloads = PayloadLayout(config.document_key, config.metadata_key)
        self._layouts: dict[str, Layout] = {}  # collections whose layout is known and indexes ensured
        # Storage only this process writes: whether each collection may hold a point with an expiry.
        # Reads of one that holds none skip the expiry filter (a payload scan in local mode).
        self._expiring: dict[str, bool] = {}
        self._checking = anyio.Lock()
        self.update_locks = [anyio.Lock() for _ in range(UPDATE_LOCKS)]
        # The tenant every call of this store is confined to; None: no tenancy (token mode, stdio).
        self.tenant: Tenant | None = None

    def scoped(self, tenant: Tenant) -> Self:
        """This store confined to `tenant`'s points: it shares the engine, the layouts and the locks."""
        view = copy.copy(self)
        view.tenant = tenant
        return view

    def _own(self) -> Condition | None:
        """The condition every read, count and delete is ANDed with: this store's tenant, if any."""
        return None if self.tenant is None else self.tenant.condition()

    def _within(self, filter: Filter) -> Filter:
        """`filter` confined to this store's tenant (outside it: nothing in `filter` can widen it)."""
        own = self._own()
        return filter if own is None else Filter(must=(filter, own))

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
        points = schema.points_count
        if self.tenant is not None:  # a tenant learns how many memories it holds, not how many others do
            points = await self.backend.count(collection, all_of(self._own(), self._live(collection, times.now())))
        advice = Advice()
        if expected is not None:
            own = self._own()  # a tenant's advice comes from its own points
            mine = None if own is None else Filter(must=(own,))
            sample = await self.backend.scroll(collection, None, SAMPLE, mine, with_vectors=False)
            advice = advise(schema.dense, expected, [point.payload for point in sample.points], self.payloads)
        return CollectionDetails(
            name=collection,
            points_count=points,
            status=schema.status,
            vectors=list(schema.dense),
            sparse_vectors=list(schema.sparse),
            indexed_fields=schema.indexed_fields,
            compatible=None
            if expected is None
            else any(v.name == expected.name and v.size == expected.size for v in schema.dense),
            expected=expected,
            unknown=unknown,
            suggested_settings=advice.settings,
            problems=advice.problems,
        )

    def _live(self, collection: str, moment: datetime) -> Condition | None:
        """The filter that hides expired points, when `collection` may hold any."""
        if self.backend.exclusive and not self._expiring.get(collection, True):
            return None
        return self.payloads.live(moment)

    def _may_expire(self, collection: str) -> None:
        """A point with an expiry is about to be written (before, so that reads meanwhile filter)."""
        self._expiring[collection] = True

    async def _live_memories(self, collection: str, ids: Sequence[PointId], moment: datetime) -> dict[PointId, Memory]:
        """The points among `ids` that exist and have not expired, by id."""
        if not ids:
            return {}
        wanted = all_of(HasId(tuple(dict.fromkeys(ids))), self._live(collection, moment), self._own())
        page = await self.backend.scroll(collection, None, len(ids), wanted, with_vectors=False)
        return {point.id: self.payloads.decode(point.id, point.payload) for point in page.points}

    # -- layout ----------------------------------------------------------------------

    async def _require(self, collection: str, *, searchable: bool = True) -> Layout:
        """The layout of an existing collection; `searchable`: one this server's model can search and write."""
        layout = await self._layout(collection, create=False)
        if layout is None:
            raise CollectionNotFound(f"collection {collection!r} does not exist")
        if searchable and layout.problem:
            raise CollectionLayoutError(layout.problem)
        return layout

    async def _require_existing(self, collection: str) -> None:
        """Deletes need the collection, not the model: they work while the embedding service is down."""
        if collection not in self._layouts and await self.backend.describe(collection) is None:
            raise CollectionNotFound(f"collection {collection!r} does not exist")

    async def _writable(self, collection: str) -> Layout:
        layout = await self._layout(collection, create=True)
        if layout is None:  # create=True makes the collection; only a concurrent delete gets here
            raise CollectionNotFound(f"collection {collection!r} was deleted while being written")
        if layout.problem:
            raise CollectionLayoutError(layout.problem)
        return layout

    async def _layout(self, collection: str, *, create: bool) -> Layout | None:
        """Check the layout once (creating the collection on first store) and ensure the payload indexes."""
        known = self._layouts.get(collection)
        if known is not None:
            return known
        # One check at a time: two first stores into a new collection must not both create it.
        async with self._checking:
            known = self._layouts.get(collection)
            if known is None:
                checked = await self._check(collection, create=create)
                if checked is None:
                    return None
                known, indexed = checked
                if indexed:  # else checked again by the next call, which may find room to make them
                    self._layouts[collection] = known
        return known

    def _forget(self, collection: str) -> None:
        """The engine lost the collection since it was checked (e.g. restarted on empty storage)."""
        self._layouts.pop(collection, None)
        self._expiring.pop(collection, None)

    async def _check(self, collection: str, *, create: bool) -> tuple[Layout, bool] | None:
        """The collection's layout, and whether its payload indexes are all there."""
        expected = self._expected_vector()
        schema = await self.backend.describe(collection)
        if schema is None:
            if not create:
                return None
            sparse = SPARSE_VECTOR if self.config.hybrid else None
            await self.backend.create_collection(collection, NewCollection(expected, sparse))
            log.info("collection created", extra={"collection": collection, "vector": expected.name, "sparse": sparse})
            indexed: dict[str, str] = {}
            layout = Layout(sparse=sparse is not None)
            self._expiring.setdefault(collection, False)
        else:
            indexed = schema.indexed_fields
            layout = Layout(SPARSE_VECTOR in schema.sparse, self._dense_problem(collection, schema.dense, expected))
            if self.backend.exclusive:
                with_expiry = Filter(must_not=(IsEmpty(self.payloads.expires_key),))
                expiring = await self.backend.count(collection, with_expiry) > 0
                self._expiring[collection] = self._expiring.get(collection, False) or expiring
        return layout, await self._ensure_indexes(collection, layout, indexed)

    async def _ensure_indexes(self, collection: str, layout: Layout, indexed: dict[str, str]) -> bool:
        """Make the payload indexes missing from `indexed`; False when a full disk refused them: a
        read must not fail for want of an index (it filters without one), so it goes on without."""
        # Filter indexes only where this server searches; the datetime ones wherever it lists or expires.
        wanted: list[tuple[str, FieldType, bool]] = [
            *(
                (self.payloads.metadata_path(spec.name), spec.field_type, False)
                for spec in (self.config.filterable if layout.problem is None else ())
            ),
            *((key, "datetime", False) for key in self.payloads.datetime_keys),
            *(((Tenant.key, "keyword", True),) if self.config.tenants else ()),
        ]
        for key, field_type, tenant in wanted:
            if key in indexed:
                continue
            try:
                await self.backend.create_index(collection, key, field_type, tenant=tenant)
            except DiskFull as exc:
                log.warning(
                    "payload index not made: the disk is full", extra={"collection": collection, "error": str(exc)}
                )
                return False
        return True

    def _expected_vector(self) -> DenseVector:
        return DenseVector(self.config.vector_name, self.embedder.dimension, "Cosine")

    def _dense_problem(self, collection: str, vectors: Sequence[DenseVector], expected: DenseVector) -> str | None:
        model = self.embedder.model_name
        for vector in vectors:
            if vector.name == expected.name:
                if vector.size != expected.size:
                    return (
                        f"collection {collection!r} has vector {vector.name!r} of size {vector.size}, but model "
                        f"{model!r} makes vectors of size {expected.size}: use the model the collection was written "
                        "with (EMBEDDING_MODEL) or another collection"
                    )
                return None
        twin = _other_variant(expected.name)
        if any(vector.name == twin for vector in vectors):
            written = "true" if twin.endswith(QUANTIZED_VECTOR_SUFFIX) else "false"
            return (
                f"collection {collection!r} was written with EMBEDDING_QUANTIZED={written} (vector {twin!r}), and the "
                "int8 and the full model's vectors differ: search and write it with the setting it was written with, "
                "or use another collection"
            )
        found = ", ".join(f"{v.name or '<unnamed>'} (size {v.size})" for v in vectors) or "none"
        return (
            f"collection {collection!r} has no vector named {expected.name!r} (model {model!r}, size "
            f"{expected.size}); it has: {found}. It was written with another model or tool: set EMBEDDING_MODEL to "
            "that model, or QDRANT_VECTOR_NAME to its vector's name (qdrant-collection-info says which settings "
            "would work), or use another collection"
        )

    def _encoder(self) -> SparseEncoder:
        if self.sparse is None:
            raise CollectionLayoutError("this collection has a BM25 sparse vector, but no BM25 encoder is configured")
        return self.sparse


def _other_variant(vector_name: str) -> str:
    """The name the same model's vectors have in the other precision (full or int8)."""
    if vector_name.endswith(QUANTIZED_VECTOR_SUFFIX):
        return vector_name.removesuffix(QUANTIZED_VECTOR_SUFFIX)
    return vector_name + QUANTIZED_VECTOR_SUFFIX
