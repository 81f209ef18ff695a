"""The seam's filters and points in Qdrant Edge's types; the engine's records and errors back in the seam's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from .. import filters as f
from ..errors import QdrantRejected
from . import Point, SparseVector, dense_of, point_id_of

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


def first_line(exc: BaseException) -> str:
    """An engine error as one bounded line (its messages can span many)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
