"""The filterable fields of `FILTERABLE_FIELDS`: each becomes a parameter of qdrant-find and qdrant-list,
so its name must be one a parameter can have and not one those tools already take."""

from __future__ import annotations

import keyword
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

FieldType = Literal["keyword", "integer", "float", "boolean"]
Condition = Literal["==", "!=", ">", ">=", "<", "<=", "any", "except"]


# Parameters of qdrant-find and qdrant-list (the tools filter fields join): a field cannot take their names.
RESERVED_PARAMETERS = frozenset(
    {
        "query",
        "limit",
        "score_threshold",
        "collection_name",
        "collection_names",
        "query_filter",
        "created_after",
        "created_before",
        "recency",
        "diversity",
        "order",
        "cursor",
        "metadata_match",
    }
)


class FilterableField(BaseModel):
    """One entry of `FILTERABLE_FIELDS` (the official server's format)."""

    name: str = Field(min_length=1, max_length=64)
    description: str
    field_type: FieldType
    condition: Condition | None = None
    required: bool = False

    @field_validator("name")
    @classmethod
    def _parameter_name(cls, name: str) -> str:
        # Each field becomes a parameter of qdrant-find: it needs a name a parameter can have.
        if not name.isidentifier() or not name.isascii() or keyword.iskeyword(name) or name.startswith("_"):
            raise ValueError(
                f"field name {name!r} must be an ASCII identifier (letters, digits, _; not a Python keyword)"
            )
        if name in RESERVED_PARAMETERS:
            raise ValueError(f"field name {name!r} is a parameter of qdrant-find or qdrant-list; pick another name")
        return name

    @model_validator(mode="after")
    def _condition_fits_type(self) -> FilterableField:
        if self.condition in ("any", "except") and self.field_type not in ("keyword", "integer"):
            raise ValueError(f"{self.name}: condition {self.condition!r} needs a keyword or integer field")
        if self.field_type == "float" and self.condition in ("==", "!="):
            raise ValueError(f"{self.name}: float fields support range conditions only")
        if self.field_type == "boolean" and self.condition not in (None, "==", "!="):
            raise ValueError(f"{self.name}: boolean fields support == and != only")
        return self
