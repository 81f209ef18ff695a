"""The seam's requests in qdrant-client's models: filters, and searches with MMR and recency.

Composed as in `edge_requests.py`, so both engines run the same query plan: a plain search is
one request; diversity (MMR) and recency (a formula) re-rank the candidates as prefetches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import filters as f
from . import RRF_K, Fusion, Recency, Search

if TYPE_CHECKING:
    from qdrant_client import models


def query_arguments(search: Search) -> dict[str, Any]:
    """Keyword arguments for `AsyncQdrantClient.query_points` (all but the collection)."""
    from qdrant_client import models

    query_filter = render_filter(search.filter)
    common: dict[str, Any] = {"limit": search.limit, "query_filter": query_filter, "with_payload": True}
    if not search.hybrid and not search.reranked:
        return {
            **common,
            "query": search.dense,
            "using": search.dense_name,
            "score_threshold": search.score_threshold,
        }
    rankings = _rankings(search, query_filter)
    fusion = _fusion(search.fusion)
    if not search.reranked:  # hybrid: the fused ranking is the answer
        return {**common, "prefetch": rankings, "query": fusion}
    prefetches = rankings
    if search.hybrid:
        prefetches = [models.Prefetch(prefetch=rankings, query=fusion, limit=search.candidates, filter=query_filter)]
    query: models.NearestQuery | models.FormulaQuery | None = None
    if search.diversity is not None:
        mmr = models.Mmr(diversity=search.diversity, candidates_limit=search.candidates)
        query = models.NearestQuery(nearest=search.dense, mmr=mmr)
    if search.recency is not None:
        if query is not None:  # MMR picks the points, recency orders them
            prefetches = [
                models.Prefetch(
                    prefetch=prefetches,
                    query=query,
                    using=search.dense_name,
                    limit=search.limit,
                    filter=query_filter,
                )
            ]
        query = _recency(search.recency)
    using = search.dense_name if isinstance(query, models.NearestQuery) else None
    return {**common, "prefetch": prefetches, "query": query, "using": using}


def _fusion(fusion: Fusion) -> models.FusionQuery | models.RrfQuery:
    from qdrant_client import models

    if fusion.method == "dbsf":
        return models.FusionQuery(fusion=models.Fusion.DBSF)
    if fusion.weights is None:  # Qdrant's RRF with its default k (RRF_K), as Qdrant Edge is asked for it
        return models.FusionQuery(fusion=models.Fusion.RRF)
    return models.RrfQuery(rrf=models.Rrf(k=RRF_K, weights=list(fusion.weights)))


def _rankings(search: Search, query_filter: models.Filter | None) -> list[models.Prefetch]:
    """The candidates: the dense nearest neighbours (over the score threshold), and the BM25 ones in hybrid mode."""
    from qdrant_client import models

    dense = models.Prefetch(
        query=search.dense,
        using=search.dense_name,
        limit=search.candidates,
        filter=query_filter,
        score_threshold=search.score_threshold,
    )
    if search.sparse is None or search.sparse_name is None:
        return [dense]
    sparse = models.SparseVector(indices=search.sparse.indices, values=search.sparse.values)
    bm25 = models.Prefetch(query=sparse, using=search.sparse_name, limit=search.candidates, filter=query_filter)
    return [dense, bm25]


def _recency(recency: Recency) -> models.FormulaQuery:
    """score * (1 - weight + weight * 0.5 ** (age / half_life)): exp_decay with midpoint 0.5 at the half-life."""
    from qdrant_client import models

    decay = models.ExpDecayExpression(
        exp_decay=models.DecayParamsExpression(
            x=models.DatetimeKeyExpression(datetime_key=recency.key),
            target=models.DatetimeExpression(datetime=recency.now),
            midpoint=0.5,
            scale=recency.half_life_s,
        )
    )
    boost = models.SumExpression(sum=[1.0 - recency.weight, models.MultExpression(mult=[recency.weight, decay])])
    return models.FormulaQuery(
        formula=models.MultExpression(mult=["$score", boost]), defaults={recency.key: recency.missing}
    )


def as_datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def render_filter(flt: f.Filter | None) -> models.Filter | None:
    return _render(flt) if flt else None


def _render(flt: f.Filter) -> models.Filter:
    from qdrant_client import models

    def conditions(items: Sequence[f.Condition]) -> list[models.Condition] | None:
        return [condition(item) for item in items] or None

    def condition(item: f.Condition) -> models.Condition:
        if isinstance(item, f.Filter):
            return _render(item)
        if isinstance(item, f.IsEmpty):
            return models.IsEmptyCondition(is_empty=models.PayloadField(key=item.key))
        if isinstance(item, f.IsNull):
            return models.IsNullCondition(is_null=models.PayloadField(key=item.key))
        if isinstance(item, f.HasId):
            return models.HasIdCondition(has_id=list(item.ids))
        if isinstance(item, f.Nested):
            return models.NestedCondition(nested=models.Nested(key=item.key, filter=_render(item.filter)))
        return models.FieldCondition(key=item.key, **field_check(item.check))

    def field_check(check: f.Match | f.Range | f.DatetimeRange) -> dict[str, Any]:
        if isinstance(check, f.MatchValue):
            return {"match": models.MatchValue(value=check.value)}
        if isinstance(check, f.MatchAny):
            return {"match": models.MatchAny(any=check.listed())}
        if isinstance(check, f.MatchExcept):
            return {"match": models.MatchExcept(**{"except": check.listed()})}
        if isinstance(check, f.MatchText):
            return {"match": models.MatchText(text=check.text)}
        if isinstance(check, f.DatetimeRange):
            bounds = {name: as_datetime(getattr(check, name)) for name in ("gt", "gte", "lt", "lte")}
            return {"range": models.DatetimeRange(**bounds)}
        return {"range": models.Range(gt=check.gt, gte=check.gte, lt=check.lt, lte=check.lte)}

    min_should = None
    if flt.min_should:
        min_should = models.MinShould(
            conditions=conditions(flt.min_should.conditions) or [], min_count=flt.min_should.min_count
        )
    return models.Filter(
        must=conditions(flt.must),
        should=conditions(flt.should),
        must_not=conditions(flt.must_not),
        min_should=min_should,
    )
