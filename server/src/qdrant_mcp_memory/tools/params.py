"""The tools' parameter types: typed and bounded, checked once at this boundary (validation.py).

Field comes before the validators: pydantic puts the constraints into the JSON schema only then.
"""

# No `from __future__ import annotations`: the SDK reads these types at runtime.
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from .. import validation
from ..validation import MAX_DOCUMENT_CHARS, MAX_ENTRIES, MAX_QUERY_CHARS, MAX_RESULTS

# A qdrant-get call, a qdrant-list page, and the collections one find may search, at most.
MAX_GET_IDS = 100
MAX_PAGE = 100
DEFAULT_PAGE = 20
MAX_COLLECTIONS = 10
# A cursor this server hands out is about 200 characters; anything far longer is not one.
MAX_CURSOR_CHARS = 1_000
# What qdrant-update's expires_at takes to remove an expiry (besides null).
NEVER = "never"


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _expiry_change(value: Any) -> str:
    """null or "never": clear the expiry; otherwise a new one (omitted: unchanged, never validated)."""
    if value is None or value == NEVER:
        return NEVER
    return validation.moment("expires_at")(value)


CollectionName = Annotated[
    str,
    Field(min_length=1, max_length=255, description="The Qdrant collection to use."),
    AfterValidator(validation.collection_name),
]
CollectionNames = Annotated[
    list[CollectionName] | None,
    Field(
        min_length=1,
        max_length=MAX_COLLECTIONS,
        description="Search these collections instead of one (each hit names its collection; merged by score).",
    ),
]
Information = Annotated[
    str,
    Field(min_length=1, max_length=MAX_DOCUMENT_CHARS, description="The text to remember."),
    AfterValidator(validation.document),
]
Query = Annotated[
    str,
    Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for, in natural language."),
    AfterValidator(validation.query),
]
Metadata = Annotated[
    dict[str, Any] | None,
    Field(description="Optional JSON object stored beside the text (filterable as metadata.<key>)."),
    BeforeValidator(validation.metadata),
]
PointIdParam = Annotated[
    str | int | None,
    Field(
        description="Optional point id (UUID or non-negative integer). Without it the id derives from the text, "
        "so storing the same text twice keeps one point; an existing point with the given id is replaced."
    ),
    BeforeValidator(optional(validation.point_id)),
]
PointIdItem = Annotated[str | int, BeforeValidator(validation.point_id)]
PointIds = Annotated[
    list[PointIdItem] | None,
    Field(min_length=1, max_length=MAX_ENTRIES, description="Ids of the points to delete."),
]
Limit = Annotated[
    int, Field(ge=1, le=MAX_RESULTS, description="How many results at most."), BeforeValidator(validation.plain_int)
]
ScoreThreshold = Annotated[
    float | None,
    Field(ge=-1.0, le=1.0, description="Only results at least this similar (cosine, -1..1)."),
    BeforeValidator(optional(validation.plain_float)),
]
QueryFilter = Annotated[
    dict[str, Any] | None,
    Field(
        description="A Qdrant filter (must / should / must_not conditions) on the payload, "
        'e.g. {"must": [{"key": "metadata.topic", "match": {"value": "x"}}]}.'
    ),
]
MetadataMatch = Annotated[
    dict[str, Any] | None,
    Field(description="Exact matches on metadata keys, all required (a list value matches any of its items)."),
    BeforeValidator(validation.metadata),
]

# -- time -------------------------------------------------------------------------------------

CreatedAfter = Annotated[
    str | None,
    Field(description="Only memories stored after this time (RFC 3339, e.g. 2026-05-01T00:00:00Z, or a date)."),
    AfterValidator(optional(validation.moment("created_after"))),
]
CreatedBefore = Annotated[
    str | None,
    Field(description="Only memories stored before this time (RFC 3339, or a date)."),
    AfterValidator(optional(validation.moment("created_before"))),
]
ExpiresAt = Annotated[
    str | None,
    Field(description="Forget it at this time (RFC 3339, e.g. 2026-06-01T00:00:00Z); or give ttl. Default: never."),
    AfterValidator(optional(validation.moment("expires_at"))),
]
Ttl = Annotated[
    str | None,
    Field(description='Forget it after this long: "30d", "12h", "1d12h", "2w", "90m"; or give expires_at.'),
    AfterValidator(optional(validation.duration("ttl"))),
]
ExpiryChange = Annotated[
    str | None,
    Field(description='A new expiry (RFC 3339), or null or "never" to remove it; leave it out to keep it.'),
    BeforeValidator(_expiry_change),
]

# -- ranking and near-duplicates ----------------------------------------------------------------

Recency = Annotated[
    str | None,
    Field(
        description='Rank newer memories higher: a half-life such as "7d" or "12h" (a memory that old counts '
        "7/8 of its similarity, much older ones 3/4). Off by default."
    ),
    AfterValidator(optional(validation.duration("recency"))),
]
Diversity = Annotated[
    float | None,
    Field(
        ge=0.0,
        le=1.0,
        description="0-1: prefer results that differ from each other (maximal marginal relevance), so "
        "paraphrases of one fact do not fill the results; 0 = relevance only. Off by default.",
    ),
    BeforeValidator(optional(validation.plain_float)),
]
IfSimilar = Annotated[
    Literal["store", "skip", "replace"],
    Field(
        description="When a stored memory is this similar (see similarity): store anyway (default), skip (store "
        "nothing, answer with its id), or replace (rewrite it, keeping its id and creation time)."
    ),
]
Similarity = Annotated[
    float | None,
    Field(gt=0.0, le=1.0, description="Cosine similarity from which if_similar applies (default: the server's)."),
    BeforeValidator(optional(validation.plain_float)),
]

# -- get, list, update --------------------------------------------------------------------------

GetIds = Annotated[
    list[PointIdItem],
    Field(min_length=1, max_length=MAX_GET_IDS, description="Ids of the points to read."),
]
UpdateId = Annotated[
    str | int, Field(description="The id of the point to change."), BeforeValidator(validation.point_id)
]
PageSize = Annotated[
    int, Field(ge=1, le=MAX_PAGE, description="Memories per page."), BeforeValidator(validation.plain_int)
]
Order = Annotated[Literal["newest", "oldest"], Field(description="newest first (default) or oldest first.")]
Cursor = Annotated[
    str | None,
    Field(max_length=MAX_CURSOR_CHARS, description="next_cursor from the previous page; leave out for the first."),
]
NewInformation = Annotated[
    str | None,
    Field(min_length=1, max_length=MAX_DOCUMENT_CHARS, description="New text (it is embedded again)."),
    AfterValidator(optional(validation.document)),
]
NewMetadata = Annotated[
    dict[str, Any] | None,
    Field(description="New metadata, replacing what the point has."),
    BeforeValidator(validation.metadata),
]
MetadataPatch = Annotated[
    dict[str, Any] | None,
    Field(description="Merged into the metadata (a JSON merge patch: objects merge, null removes a key)."),
    BeforeValidator(validation.metadata),
]


class StoreEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    information: Information
    metadata: Metadata = None
    id: PointIdParam = None
