"""Typed, validated settings read from the environment (and an env file, only when one is named).

Names follow the official `mcp-server-qdrant` where it has them, so a configuration
written for it keeps working. Empty strings count as unset (the official image sets
`QDRANT_URL=""`). Every secret can also come from `NAME_FILE`. No `.env` is read from the
working directory: that file belongs to Docker Compose, and its container paths
(`/run/secrets/...`) must not leak into a server started from the same folder.

The settings are the Settings class (model.py); the filterable fields of FILTERABLE_FIELDS are
fields.py; how values are parsed, checked and read (list settings, `NAME_FILE` secrets, URLs, the
empty values that mean something) is values.py.
"""

from __future__ import annotations

from .fields import RESERVED_PARAMETERS, Condition, FieldType, FilterableField
from .model import (
    DEFAULT_FIND_DESCRIPTION,
    DEFAULT_MODEL,
    DEFAULT_STORE_DESCRIPTION,
    QUANTIZED_VECTOR_SUFFIX,
    SCOPE_SYNTAX,
    SIMILARITY_THRESHOLD,
    TIME_KEYS,
    Provider,
    Settings,
    Transport,
)
from .values import EMPTY_MEANS_SOMETHING, EmptyValues, default_local_path, default_model_cache, is_loopback

__all__ = [
    "DEFAULT_FIND_DESCRIPTION",
    "DEFAULT_MODEL",
    "DEFAULT_STORE_DESCRIPTION",
    "EMPTY_MEANS_SOMETHING",
    "QUANTIZED_VECTOR_SUFFIX",
    "RESERVED_PARAMETERS",
    "SCOPE_SYNTAX",
    "SIMILARITY_THRESHOLD",
    "TIME_KEYS",
    "Condition",
    "EmptyValues",
    "FieldType",
    "FilterableField",
    "Provider",
    "Settings",
    "Transport",
    "default_local_path",
    "default_model_cache",
    "is_loopback",
]
