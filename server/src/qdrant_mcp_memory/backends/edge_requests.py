"""The seam's requests in Qdrant Edge's own types: filters, searches (with MMR and recency), scrolls.

A plain search (dense, or dense + BM25 fused) is one request as before. Re-ranking runs over
the candidates of that search as prefetches, as Qdrant composes such queries:

    diversity:          MMR                 <- candidates
    recency:            formula             <- candidates
    both:               formula <- MMR      <- candidates

where the candidates are the dense nearest neighbours (with the score threshold), or in
hybrid mode the dense and BM25 rankings fused by RRF.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from .. import filters as f
from ..errors import QdrantRejected
from . import RRF_K, Fusion, OrderedScroll, Point, PointId, Recency, Search, SparseVector, dense_of, point_id_of

if TYPE_CHECKING:
    import qdrant_edge as qe

# Candidates explored per search in the HNSW graph (Qdrant's default is 100): a little more
# recall for a memory store's small limits, at a cost far below the query's embedding.
SEARCH_EF = 128


def from_record(record: qe.Record) -> Point:
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


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def search_request(search: Search) -> qe.QueryRequest:
    import qdrant_edge as qe

    query_filter = render_filter(search.filter)
    params = qe.SearchParams(hnsw_ef=SEARCH_EF)
    if not search.hybrid and not search.reranked:
        return qe.QueryRequest(
            limit=search.limit,
            query=qe.Query.Nearest(search.dense, using=search.dense_name),
            filter=query_filter,
            score_threshold=search.score_threshold,
            with_payload=True,
            params=params,
        )
    rankings = _rankings(search, query_filter, params)
    fusion = _fusion(search.fusion)
    if not search.reranked:  # hybrid: the fused ranking is the answer
        return qe.QueryRequest(
            limit=search.limit, prefetches=rankings, query=fusion, filter=query_filter, with_payload=True
        )
    prefetches = rankings
    if search.hybrid:
        prefetches = [qe.Prefetch(limit=search.candidates, query=fusion, prefetches=rankings, filter=query_filter)]
    query: qe.Mmr | qe.Formula | None = None
    if search.diversity is not None:
        query = qe.Mmr(search.dense, 1.0 - search.diversity, search.candidates, using=search.dense_name)
    if search.recency is not None:
        if query is not None:  # MMR picks the points, recency orders them
            prefetches = [qe.Prefetch(limit=search.limit, query=query, prefetches=prefetches, filter=query_filter)]
        query = _recency(search.recency)
    return qe.QueryRequest(
        limit=search.limit, prefetches=prefetches, query=query, filter=query_filter, with_payload=True
    )


def _fusion(fusion: Fusion) -> qe.Fusion:
    import qdrant_edge as qe

    if fusion.method == "dbsf":
        return cast("qe.Fusion", qe.Fusion.Dbsf())
    # The stubs do not declare Fusion.Rrf a Fusion, but the engine takes it (tested).
    weights = list(fusion.weights) if fusion.weights else None
    return cast("qe.Fusion", qe.Fusion.Rrf(k=RRF_K, weights=weights))


def _rankings(search: Search, query_filter: qe.Filter | None, params: qe.SearchParams) -> list[qe.Prefetch]:
    """The candidates: the dense nearest neighbours (over the score threshold), and the BM25 ones in hybrid mode."""
    import qdrant_edge as qe

    dense = qe.Prefetch(
        limit=search.candidates,
        query=qe.Query.Nearest(search.dense, using=search.dense_name),
        filter=query_filter,
        score_threshold=search.score_threshold,
        params=params,
    )
    if search.sparse is None or search.sparse_name is None:
        return [dense]
    sparse = qe.SparseVector(indices=search.sparse.indices, values=search.sparse.values)
    return [
        dense,
        qe.Prefetch(
            limit=search.candidates, query=qe.Query.Nearest(sparse, using=search.sparse_name), filter=query_filter
        ),
    ]


def _recency(recency: Recency) -> qe.Formula:
    """score * (1 - weight + weight * 0.5 ** (age / half_life)): exp_decay with midpoint 0.5 at the half-life."""
    import qdrant_edge as qe

    e = qe.Expression
    decay = e.Decay(
        qe.DecayKind.Exp,
        e.DatetimeKey(recency.key),
        target=e.Datetime(recency.now),
        midpoint=0.5,
        scale=recency.half_life_s,
    )
    boost = e.Sum([e.Constant(1.0 - recency.weight), e.Mult([e.Constant(recency.weight), decay])])
    return qe.Formula(e.Mult([e.Variable("$score"), boost]), defaults={recency.key: recency.missing})


def scroll_request(offset: PointId | None, limit: int, flt: f.Filter | None, with_vectors: bool) -> qe.ScrollRequest:
    import qdrant_edge as qe

    return qe.ScrollRequest(
        offset=offset, limit=limit, filter=render_filter(flt), with_payload=True, with_vector=with_vectors
    )


def ordered_scroll_request(scroll: OrderedScroll) -> qe.ScrollRequest:
    import qdrant_edge as qe

    direction = qe.Direction.Desc if scroll.descending else qe.Direction.Asc
    return qe.ScrollRequest(
        limit=scroll.limit,
        filter=render_filter(scroll.filter),
        with_payload=True,
        with_vector=False,
        order_by=qe.OrderBy(scroll.key, direction, start_from=scroll.start_from),
    )


def render_filter(flt: f.Filter | None) -> qe.Filter | None:
    try:
        return _render(flt) if flt else None
    except (ValueError, TypeError, OverflowError) as exc:  # what filters.py could not foresee
        raise QdrantRejected(f"the embedded engine cannot use this filter: {first_line(exc)}") from None


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
