"""Reads: find by meaning (in one collection or several, with time filters, recency and diversity), get by id.

Every read sees live points only: a filter leaves out what has expired, whether or not the
background purge has deleted it yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import anyio

from .. import times
from ..backends import PointId, Recency, Search, SparseVector
from ..errors import CollectionLayoutError, CollectionNotFound
from ..filters import Filter, all_of
from .collections import SPARSE_VECTOR, Layout, StoreBase
from .model import Fetched, Found, Hit

# Candidates each ranking contributes to a hybrid search, and that MMR and recency re-rank, at least.
CANDIDATES = 50
# How much age can take off a score with `recency`: a memory much older than the half-life keeps
# 75 % of its similarity, so newer ones win among close matches and lose to much better ones.
RECENCY_WEIGHT = 0.25


class Reads(StoreBase):
    async def find(
        self,
        collection: str,
        query: str,
        limit: int,
        score_threshold: float | None = None,
        filter: Filter | None = None,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        recency: timedelta | None = None,
        diversity: float | None = None,
    ) -> Found | None:
        """Nearest documents to `query`; None when the collection does not exist."""
        found = await self.find_in(
            [collection],
            query,
            limit,
            score_threshold,
            filter,
            created_after=created_after,
            created_before=created_before,
            recency=recency,
            diversity=diversity,
        )
        return None if found.missing else found

    async def find_in(
        self,
        collections: Sequence[str],
        query: str,
        limit: int,
        score_threshold: float | None = None,
        filter: Filter | None = None,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        recency: timedelta | None = None,
        diversity: float | None = None,
    ) -> Found:
        """Nearest documents in each collection, merged by score (each hit names its collection)."""
        layouts: dict[str, Layout] = {}
        missing: list[str] = []
        for collection in dict.fromkeys(collections):
            layout = await self._layout(collection, create=False)
            if layout is None:
                missing.append(collection)
            elif layout.problem:
                raise CollectionLayoutError(layout.problem)
            else:
                layouts[collection] = layout
        if not layouts:
            return Found([], "dense", missing)
        vector = await self.embedder.embed_query(query)
        hybrid = self.config.hybrid and any(layout.sparse for layout in layouts.values())
        sparse = self._encoder().query(query) if hybrid else None
        moment = times.now()
        created = self.payloads.created(created_after, created_before)
        recent = None
        if recency is not None:
            recent = Recency(
                self.payloads.created_key, times.format_time(moment), recency.total_seconds(), RECENCY_WEIGHT
            )
        candidates = max(CANDIDATES, 2 * limit)

        def search_for(collection: str) -> Search:
            fused = sparse if layouts[collection].sparse else None
            return Search(
                self.config.vector_name,
                vector,
                limit,
                all_of(filter, created, self._live(collection, moment), self._own()),
                score_threshold,
                SPARSE_VECTOR if fused else None,
                fused,
                candidates,
                diversity,
                recent,
                self.config.fusion,
            )

        hits: list[Hit] = []

        async def search(collection: str) -> None:
            try:
                points = await self.backend.search(collection, search_for(collection))
            except CollectionNotFound:
                self._forget(collection)
                missing.append(collection)
                return
            hits.extend(
                Hit(**vars(self.payloads.decode(p.id, p.payload)), score=p.score, collection=collection) for p in points
            )

        if len(layouts) == 1:
            await search(next(iter(layouts)))
        else:
            async with anyio.create_task_group() as tasks:
                for collection in layouts:
                    tasks.start_soon(search, collection)
            hits.sort(key=lambda hit: hit.score, reverse=True)
        searched = {name: layout for name, layout in layouts.items() if name not in missing}
        return Found(hits[:limit], self._mode(searched, sparse), missing)

    async def get(self, collection: str, ids: Sequence[PointId]) -> Fetched:
        """The live points among `ids`, in that order, and the ids that have none."""
        await self._require(collection, searchable=False)
        found = await self._live_memories(collection, ids, times.now())
        return Fetched(
            [found[point_id] for point_id in dict.fromkeys(ids) if point_id in found],
            [point_id for point_id in dict.fromkeys(ids) if point_id not in found],
        )

    def _mode(self, layouts: dict[str, Layout], sparse: SparseVector | None) -> str:
        if not self.config.hybrid:
            return "dense"
        modes = {"hybrid" if layout.sparse and sparse else "dense (no sparse vector)" for layout in layouts.values()}
        return "; ".join(sorted(modes)) or "dense"
