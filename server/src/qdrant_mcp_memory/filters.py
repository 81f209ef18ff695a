"""Search filters in one backend-neutral form, built three ways.

- typed tool parameters from FILTERABLE_FIELDS (the official server's semantics: each field
  with a condition becomes one parameter, matched against `metadata.<name>`),
- a raw Qdrant filter (`query_filter`, Qdrant's JSON filter syntax), parsed and checked here,
- `metadata_match` of the delete tool (exact key/value matches).

Each backend renders a `Filter` into its own client's types, so both take exactly the same
filters and refuse the same mistakes with the same messages.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from . import validation
from .settings import FilterableField

Scalar = str | int | bool


class FilterError(ValueError):
    """A filter the caller sent or configured cannot be used; the message says why."""


@dataclass(frozen=True)
class MatchValue:
    value: Scalar


def _as_list(values: tuple[str, ...] | tuple[int, ...]) -> list[str] | list[int]:
    if values and isinstance(values[0], str):
        return [str(v) for v in values]
    return [int(v) for v in values]


@dataclass(frozen=True)
class MatchAny:
    any: tuple[str, ...] | tuple[int, ...]

    def listed(self) -> list[str] | list[int]:
        return _as_list(self.any)


@dataclass(frozen=True)
class MatchExcept:
    values: tuple[str, ...] | tuple[int, ...]

    def listed(self) -> list[str] | list[int]:
        return _as_list(self.values)


@dataclass(frozen=True)
class MatchText:
    text: str


Match = MatchValue | MatchAny | MatchExcept | MatchText


@dataclass(frozen=True)
class Range:
    """Numeric bounds."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class DatetimeRange:
    """RFC 3339 datetime bounds."""

    gt: str | None = None
    gte: str | None = None
    lt: str | None = None
    lte: str | None = None


@dataclass(frozen=True)
class FieldCondition:
    key: str
    check: Match | Range | DatetimeRange


@dataclass(frozen=True)
class IsEmpty:
    key: str


@dataclass(frozen=True)
class IsNull:
    key: str


@dataclass(frozen=True)
class HasId:
    ids: tuple[validation.PointId, ...]


@dataclass(frozen=True)
class Nested:
    key: str
    filter: Filter


@dataclass(frozen=True)
class MinShould:
    conditions: tuple[Condition, ...]
    min_count: int


@dataclass(frozen=True)
class Filter:
    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()
    min_should: MinShould | None = None

    def __bool__(self) -> bool:
        return bool(self.must or self.should or self.must_not or self.min_should)


Condition = FieldCondition | IsEmpty | IsNull | HasId | Nested | Filter


def all_of(*conditions: Condition | None) -> Filter | None:
    """The conditions that are there, all required; None when none is."""
    present = tuple(condition for condition in conditions if condition)
    return Filter(must=present) if present else None


# -- typed parameters (FILTERABLE_FIELDS) ------------------------------------------------

_SCALARS: dict[str, tuple[type, Any]] = {
    "keyword": (str, validation.plain_str),
    "integer": (int, validation.payload_int),
    "float": (float, validation.plain_float),
    "boolean": (bool, validation.plain_bool),
}
_RANGES = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def filter_parameters(fields: Sequence[FilterableField]) -> list[inspect.Parameter]:
    """One keyword-only parameter per field that has a condition; required ones have no default."""
    parameters = []
    for spec in sorted((f for f in fields if f.condition), key=lambda f: not f.required):
        scalar, check = _SCALARS[spec.field_type]
        item: Any = Annotated[scalar, BeforeValidator(check)]
        annotation: Any = list[item] if spec.condition in ("any", "except") else item
        description = f"{spec.description} (metadata.{spec.name} {spec.condition} value)"
        if spec.required:
            hint: Any = Annotated[annotation, Field(description=description)]
            default: Any = inspect.Parameter.empty
        else:
            hint = Annotated[annotation | None, Field(description=description)]
            default = None
        parameters.append(
            inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)
        )
    return parameters


def in_metadata(key: str) -> str:
    """Where a metadata key is in the official layout's payload."""
    return f"metadata.{key}"


def typed_filter(
    fields: Sequence[FilterableField], values: Mapping[str, Any], path: Callable[[str], str] = in_metadata
) -> Filter | None:
    """A Filter from typed parameter values; None when no value was given. `path`: where a metadata
    key is in the payload (the payload layout's metadata_path)."""
    must: list[Condition] = []
    must_not: list[Condition] = []
    for spec in fields:
        value = values.get(spec.name)
        if value is None or not spec.condition:
            continue
        key = path(spec.name)
        condition = spec.condition
        if condition == "==":
            must.append(FieldCondition(key, MatchValue(value)))
        elif condition == "!=":
            must_not.append(FieldCondition(key, MatchValue(value)))
        elif condition in ("any", "except"):
            if not value:
                raise FilterError(f"{spec.name}: give at least one value")
            items = tuple(value)
            must.append(FieldCondition(key, MatchAny(items) if condition == "any" else MatchExcept(items)))
        else:
            must.append(FieldCondition(key, Range(**{_RANGES[condition]: float(value)})))
    if not must and not must_not:
        return None
    return Filter(must=tuple(must), must_not=tuple(must_not))


# -- metadata_match (delete) -------------------------------------------------------------


def metadata_filter(match: Mapping[str, Any], path: Callable[[str], str] = in_metadata) -> Filter:
    """Exact matches on metadata keys, all of which must hold; a list value matches any of its items."""
    conditions: list[Condition] = []
    for key, value in match.items():
        where = f"metadata_match.{key}"
        _key(in_metadata(key), where)
        if isinstance(value, list):
            conditions.append(FieldCondition(path(key), MatchAny(_homogeneous(value, where))))
        elif isinstance(value, str | int) and not isinstance(value, float):
            conditions.append(FieldCondition(path(key), MatchValue(value)))
        else:
            raise FilterError(f"{where}: use a string, an integer, a boolean, or a list of strings or of integers")
    return Filter(must=tuple(conditions))


def _homogeneous(values: list[Any], where: str) -> tuple[str, ...] | tuple[int, ...]:
    """A non-empty list of strings, or of integers (booleans excluded): what Qdrant's match-any takes."""
    if values and all(isinstance(v, str) for v in values):
        return tuple(values)
    if values and all(isinstance(v, int) and not isinstance(v, bool) and _in_int_range(v) for v in values):
        return tuple(values)
    raise FilterError(f"{where}: a list must hold only strings or only (signed 64-bit) integers, at least one")


def _in_int_range(value: int) -> bool:
    low, high = validation.PAYLOAD_INT_RANGE
    return low <= value <= high


# -- raw Qdrant filters (query_filter) ---------------------------------------------------

_CLAUSES = ("must", "should", "must_not", "min_should")


def parse_filter(raw: Mapping[str, Any] | str, where: str = "query_filter") -> Filter:
    """A Filter from Qdrant's JSON filter syntax (a dict, or a JSON string as some clients send)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FilterError(f"{where} is not valid JSON: {exc.msg}") from None
    return _filter(raw, where, 1)


def _filter(raw: Any, where: str, depth: int) -> Filter:
    if not isinstance(raw, Mapping):
        raise FilterError(f"{where} must be a JSON object with must / should / must_not lists")
    if depth > validation.MAX_FILTER_DEPTH:
        raise FilterError(f"{where}: filters nest at most {validation.MAX_FILTER_DEPTH} levels deep")
    unknown = set(raw) - set(_CLAUSES)
    if unknown:
        raise FilterError(f"{where}: unknown keys {sorted(unknown)}; a filter has must, should, must_not, min_should")
    clauses = {name: _conditions(raw.get(name), f"{where}.{name}", depth) for name in ("must", "should", "must_not")}
    min_should = None
    if raw.get("min_should") is not None:
        spec = raw["min_should"]
        if not isinstance(spec, Mapping) or set(spec) != {"conditions", "min_count"}:
            raise FilterError(f"{where}.min_should needs exactly conditions and min_count")
        min_count = spec["min_count"]
        conditions = _conditions(spec["conditions"], f"{where}.min_should.conditions", depth)
        if isinstance(min_count, bool) or not isinstance(min_count, int) or not 0 <= min_count <= len(conditions):
            raise FilterError(f"{where}.min_should.min_count must be an integer from 0 to the number of conditions")
        min_should = MinShould(conditions, min_count)
    return Filter(**clauses, min_should=min_should)


def _conditions(raw: Any, where: str, depth: int) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if isinstance(raw, Mapping):  # Qdrant accepts a single condition in place of a list
        raw = [raw]
    if not isinstance(raw, list):
        raise FilterError(f"{where} must be a list of conditions")
    return tuple(_condition(item, f"{where}[{index}]", depth) for index, item in enumerate(raw))


def _condition(raw: Any, where: str, depth: int) -> Condition:
    if not isinstance(raw, Mapping):
        raise FilterError(f"{where} must be an object")
    keys = set(raw)
    if keys & set(_CLAUSES):
        return _filter(raw, where, depth + 1)
    if "is_empty" in keys or "is_null" in keys:
        name = "is_empty" if "is_empty" in keys else "is_null"
        inner = raw[name]
        if keys != {name} or not isinstance(inner, Mapping) or not isinstance(inner.get("key"), str):
            raise FilterError(f'{where}: {name} takes {{"key": "..."}}')
        return IsEmpty(_key(inner["key"], where)) if name == "is_empty" else IsNull(_key(inner["key"], where))
    if "has_id" in keys:
        ids = raw["has_id"]
        if keys != {"has_id"} or not isinstance(ids, list) or not ids:
            raise FilterError(f"{where}: has_id takes a non-empty list of point ids")
        try:
            return HasId(tuple(validation.point_id(item) for item in ids))
        except ValueError as exc:
            raise FilterError(f"{where}.has_id: {exc}") from None
    if "nested" in keys:
        inner = raw["nested"]
        if keys != {"nested"} or not isinstance(inner, Mapping) or set(inner) != {"key", "filter"}:
            raise FilterError(f'{where}: nested takes {{"key": "...", "filter": {{...}}}}')
        return Nested(_key(inner["key"], where), _filter(inner["filter"], f"{where}.nested.filter", depth + 1))
    if "key" in keys:
        return _field_condition(raw, where)
    raise FilterError(
        f"{where}: unknown condition {sorted(keys)}; use key+match, key+range, is_empty, is_null, has_id, nested "
        "or a nested filter"
    )


# A payload key path as Qdrant reads it: dotted segments, each optionally indexed ([] or [n]).
_KEY = re.compile(r'[^.\[\]"]+(\[\d*\])?(\.[^.\[\]"]+(\[\d*\])?)*')


def _key(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or validation.lone_surrogate(value):
        raise FilterError(f'{where}: key must be a non-empty string such as "metadata.topic"')
    if not _KEY.fullmatch(value):
        raise FilterError(f'{where}: key {value!r} is not a payload path such as "metadata.topic" or "metadata.tags[]"')
    return value


def _field_condition(raw: Mapping[str, Any], where: str) -> FieldCondition:
    key = _key(raw["key"], where)
    unsupported = set(raw) - {"key", "match", "range"}
    if unsupported:
        raise FilterError(f"{where}: unsupported field condition {sorted(unsupported)}; use match or range")
    if ("match" in raw) == ("range" in raw):
        raise FilterError(f"{where}: a field condition needs exactly one of match or range")
    if "match" in raw:
        return FieldCondition(key, _match(raw["match"], f"{where}.match"))
    return FieldCondition(key, _range(raw["range"], f"{where}.range"))


def _match(raw: Any, where: str) -> Match:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise FilterError(f"{where} takes one of value, any, except, text")
    ((kind, value),) = raw.items()
    if kind == "value":
        if isinstance(value, str) and not validation.lone_surrogate(value):
            return MatchValue(value)
        if isinstance(value, bool) or (isinstance(value, int) and _in_int_range(value)):
            return MatchValue(value)
        raise FilterError(f"{where}.value must be a string, a (signed 64-bit) integer or a boolean")
    if kind in ("any", "except"):
        if not isinstance(value, list):
            raise FilterError(f"{where}.{kind} must be a list")
        items = _homogeneous(value, f"{where}.{kind}")
        return MatchAny(items) if kind == "any" else MatchExcept(items)
    if kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise FilterError(f"{where}.text must be a non-empty string")
        return MatchText(value)
    raise FilterError(f"{where}: unknown match {kind!r}; use value, any, except or text")


def _range(raw: Any, where: str) -> Range | DatetimeRange:
    if not isinstance(raw, Mapping) or not raw or set(raw) - {"gt", "gte", "lt", "lte"}:
        raise FilterError(f"{where} takes gt, gte, lt and/or lte")
    bounds = {name: value for name, value in raw.items() if value is not None}
    if not bounds:
        raise FilterError(f"{where} needs at least one bound")
    if all(_looks_like_datetime(value) for value in bounds.values()):
        return DatetimeRange(**bounds)
    try:
        numbers = {name: float(validation.plain_float(value)) for name, value in bounds.items()}
    except ValueError:
        raise FilterError(f"{where}: bounds must all be finite numbers or all RFC 3339 datetimes") from None
    return Range(**numbers)


def _looks_like_datetime(value: Any) -> bool:
    if not isinstance(value, str) or len(value) < 10:
        return False
    from datetime import datetime

    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
