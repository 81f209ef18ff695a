"""Search filters: typed parameters from FILTERABLE_FIELDS, or a raw Qdrant filter.

Same semantics as the official server: each configured field with a condition becomes
one typed tool parameter, matched against `metadata.<name>`.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, ValidationError

from .settings import FilterableField

if TYPE_CHECKING:
    from qdrant_client import models

_SCALARS: dict[str, type] = {"keyword": str, "integer": int, "float": float, "boolean": bool}
_RANGES = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


class FilterError(ValueError):
    pass


def filter_parameters(fields: list[FilterableField]) -> list[inspect.Parameter]:
    """One keyword-only parameter per field that has a condition; required ones have no default."""
    parameters = []
    for field in sorted((f for f in fields if f.condition), key=lambda f: not f.required):
        scalar = _SCALARS[field.field_type]
        annotation: Any = list[scalar] if field.condition in ("any", "except") else scalar  # type: ignore[valid-type]
        description = f"{field.description} (metadata.{field.name} {field.condition} value)"
        if field.required:
            hint: Any = Annotated[annotation, Field(description=description)]
            default: Any = inspect.Parameter.empty
        else:
            hint = Annotated[annotation | None, Field(description=description)]
            default = None
        parameters.append(
            inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)
        )
    return parameters


def build_filter(fields: list[FilterableField], values: dict[str, Any]) -> models.Filter | None:
    """A Filter from typed parameter values; None when no value was given."""
    from qdrant_client import models

    must: list[models.Condition] = []
    must_not: list[models.Condition] = []
    for field in fields:
        value = values.get(field.name)
        if value is None or not field.condition:
            continue
        key = f"metadata.{field.name}"
        condition = field.condition
        if condition == "==":
            must.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
        elif condition == "!=":
            must_not.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
        elif condition == "any":
            must.append(models.FieldCondition(key=key, match=models.MatchAny(any=value)))
        elif condition == "except":
            must.append(models.FieldCondition(key=key, match=models.MatchExcept(**{"except": value})))
        else:
            must.append(models.FieldCondition(key=key, range=models.Range(**{_RANGES[condition]: value})))
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


def parse_raw_filter(raw: dict[str, Any] | str) -> models.Filter:
    """A Qdrant filter from its JSON form (a dict, or a JSON string as some clients send)."""
    from qdrant_client import models

    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FilterError(f"query_filter is not valid JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise FilterError("query_filter must be a JSON object with must / should / must_not lists")
    try:
        return models.Filter.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'filter'}: {err['msg']}" for err in exc.errors()[:3]
        )
        raise FilterError(f"invalid query_filter ({problems}); see Qdrant's filter syntax") from None


def metadata_filter(match: dict[str, Any]) -> models.Filter:
    """Exact matches on metadata keys, all of which must hold."""
    from qdrant_client import models

    conditions: list[models.Condition] = []
    for key, value in match.items():
        if isinstance(value, list):
            conditions.append(models.FieldCondition(key=f"metadata.{key}", match=models.MatchAny(any=value)))
        elif isinstance(value, (str, int, bool)):
            conditions.append(models.FieldCondition(key=f"metadata.{key}", match=models.MatchValue(value=value)))
        else:
            raise FilterError(f"metadata_match.{key}: use a string, integer, boolean or a list of them")
    return models.Filter(must=conditions)
