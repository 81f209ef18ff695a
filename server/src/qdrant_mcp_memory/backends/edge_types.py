"""The seam's filters, points and searches in Qdrant Edge's types; its records and errors in the seam's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from .. import filters as f
from ..errors import QdrantRejected
from . import RRF_K, Point, Search, SparseVector, dense_of, point_id_of

if TYPE_CHECKING:
    import qdrant_edge as qe


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


def query_request(search: Search, hnsw_ef: int) -> qe.QueryRequest:
    """A search in the engine's terms: nearest dense neighbours, or with a sparse query too, the
    two rankings fused by reciprocal rank fusion (RRF_K, as Qdrant's server fuses)."""
    import qdrant_edge as qe

    query_filter = render_filter(search.filter)
    params = qe.SearchParams(hnsw_ef=hnsw_ef)
    if search.sparse is None or search.sparse_name is None:
        return qe.QueryRequest(
            limit=search.limit,
            query=qe.Query.Nearest(search.dense, using=search.dense_name),
            filter=query_filter,
            score_threshold=search.score_threshold,
            with_payload=True,
            params=params,
        )
    sparse = qe.SparseVector(indices=search.sparse.indices, values=search.sparse.values)
    return qe.QueryRequest(
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


def first_line(exc: BaseException) -> str:
    """An engine error as one bounded line (its messages can span many)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
