"""What the tools accept, checked once at the boundary so nothing stored can break a later read.

Every check raises ValueError with a sentence the caller can act on: pydantic turns it into a
validation error, which the SDK returns as a tool error naming the parameter. Plain spellings
of a valid value are accepted ("10" for 10); anything that only coerces (true for 1, "yes"
for true, 1.0 for an id) is refused, so a careless client cannot overwrite point 1.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from . import times

# Per-text and per-call bounds. A store-many body must fit the transport's 4 MiB request cap:
# 1 000 000 characters do even as 3-byte UTF-8 (CJK), so every legal call can really be sent.
MAX_DOCUMENT_CHARS = 65_536
MAX_QUERY_CHARS = 4_096
MAX_ENTRIES = 1_000
MAX_CALL_CHARS = 1_000_000
MAX_RESULTS = 100
# Metadata: deep nesting breaks clients' JSON parsers (the SDK's hits a recursion limit near
# 200 levels) and large payloads slow every search that returns the point.
MAX_METADATA_DEPTH = 16
MAX_METADATA_BYTES = 65_536
MAX_FILTER_DEPTH = 8
MAX_COLLECTION_NAME_BYTES = 255
# Qdrant point ids are unsigned 64-bit integers or UUIDs.
MAX_POINT_ID = 2**64 - 1
# Qdrant stores payload integers as signed 64-bit.
PAYLOAD_INT_RANGE = (-(2**63), 2**63 - 1)

_ASCII_INT = re.compile(r"-?[0-9]+", re.ASCII)
_ASCII_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
# Characters Qdrant forbids in collection names, plus control characters.
_BAD_NAME_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')

PointId = str | int


def lone_surrogate(text: str) -> bool:
    """True when `text` holds a UTF-16 surrogate on its own: no UTF-8 form exists, so no client could read it back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# How deep any message's parameters may nest (metadata's own bound, 16, is checked later and
# names the parameter; this one keeps every walk over the raw parameters bounded).
MAX_PARAMS_DEPTH = 64


class TooDeep(ValueError):
    """A JSON value nests deeper than the walk allows."""


def surrogate_paths(value: Any) -> Iterator[str]:
    """Where in a JSON value (keys included) a lone surrogate sits. Iterative, so any depth is safe;
    raises TooDeep past MAX_PARAMS_DEPTH levels."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_PARAMS_DEPTH:
            raise TooDeep(
                f"{path or 'the value'} is nested deeper than {MAX_PARAMS_DEPTH} levels "
                f"(metadata may nest {MAX_METADATA_DEPTH} levels, filters {MAX_FILTER_DEPTH})"
            )
        if isinstance(item, str):
            if lone_surrogate(item):
                yield path or "value"
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and lone_surrogate(key):
                    yield f"{path}.<key>" if path else "<key>"
                else:
                    stack.append((child, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(item))


def text(value: str, *, what: str) -> str:
    """A stored or searched text: not blank (Unicode spaces included), valid Unicode."""
    if not value.strip():
        raise ValueError(f"{what} is empty or only whitespace")
    if lone_surrogate(value):
        raise ValueError(f"{what} contains a lone UTF-16 surrogate (e.g. \\ud800), which is not valid Unicode")
    return value


def document(value: str) -> str:
    return text(value, what="information")


def query(value: str) -> str:
    return text(value, what="query")


def metadata(value: Any) -> dict[str, Any] | None:
    """A JSON object (or a JSON-encoded object, as several clients send), bounded in depth and size."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"metadata is a string but not valid JSON ({exc.msg}); send a JSON object") from None
        except RecursionError:
            raise ValueError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("metadata must be a JSON object")
    _check_payload(value, "metadata", 1)
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are accepted")
    return value


def _check_payload(value: Any, path: str, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels (at {path})")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or lone_surrogate(key) or not key:
                raise ValueError(f"{path} has an empty or invalid key (keys must be non-empty valid Unicode)")
            _check_payload(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_payload(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, str):
        if lone_surrogate(value):
            raise ValueError(f"{path} contains a lone UTF-16 surrogate, which is not valid Unicode")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value}: JSON has no NaN or infinity")
    elif isinstance(value, int) and not isinstance(value, bool):
        low, high = PAYLOAD_INT_RANGE
        if not low <= value <= high:
            raise ValueError(f"{path} is outside the signed 64-bit range Qdrant stores integers in")


def point_id(value: Any) -> PointId:
    """An unsigned 64-bit integer (or its ASCII-digit spelling) or a UUID (returned in canonical form)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"invalid point id {value!r}: use a UUID string or a non-negative integer")
    if isinstance(value, int):
        number = value
    else:
        # As sent: " 7" is not point 7 (a careless client must not overwrite it).
        if not _ASCII_INT.fullmatch(value):
            try:
                return str(uuid.UUID(value))
            except ValueError:
                raise ValueError(
                    f"invalid point id {value!r}: use a UUID string or a non-negative integer (ASCII digits)"
                ) from None
        number = int(value)
    if not 0 <= number <= MAX_POINT_ID:
        raise ValueError(f"invalid point id {number}: integer ids must be between 0 and 2^64-1")
    return number


def plain_int(value: Any) -> Any:
    """An integer, or its ASCII-digit spelling; never a boolean or a float."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, str) and _ASCII_INT.fullmatch(value):
        value = int(value)
    if isinstance(value, int):
        return value
    raise ValueError(f"expected an integer, got {type(value).__name__}")


def payload_int(value: Any) -> Any:
    """An integer as payloads hold them (and filters compare them): signed 64-bit."""
    number = plain_int(value)
    low, high = PAYLOAD_INT_RANGE
    if not low <= number <= high:
        raise ValueError("expected an integer within the signed 64-bit range Qdrant stores")
    return number


def plain_float(value: Any) -> Any:
    """A finite number, or its plain decimal spelling; never a boolean, NaN or infinity."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, str) and _ASCII_FLOAT.fullmatch(value):
        value = float(value)
    if isinstance(value, int | float):
        try:
            finite = math.isfinite(value)  # an int too large for a float overflows here
        except OverflowError:
            finite = False
        if not finite:
            raise ValueError("expected a finite number")
        return value
    raise ValueError(f"expected a number, got {type(value).__name__}")


def plain_bool(value: Any) -> Any:
    """true or false (or those words as strings); never 1, 0 or "yes"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected true or false, got {value!r}")


def plain_str(value: Any) -> Any:
    """A string as it is: numbers are not silently turned into keywords."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    if lone_surrogate(value):
        raise ValueError("contains a lone UTF-16 surrogate, which is not valid Unicode")
    return value


def collection_name(value: str) -> str:
    """Qdrant's rules for collection names, and a length every filesystem takes."""
    if value != value.strip() or not value:
        raise ValueError("collection_name must not be empty or start or end with whitespace")
    if value in (".", ".."):
        raise ValueError("collection_name cannot be '.' or '..'")
    bad = _BAD_NAME_CHARS.search(value)
    if bad:
        raise ValueError(
            f'collection_name contains {bad.group()!r}; not allowed: < > : " / \\ | ? * and control characters'
        )
    if lone_surrogate(value):
        raise ValueError("collection_name contains a lone UTF-16 surrogate")
    size = len(value.encode("utf-8"))
    if size > MAX_COLLECTION_NAME_BYTES:
        raise ValueError(f"collection_name is {size} bytes in UTF-8; at most {MAX_COLLECTION_NAME_BYTES} are allowed")
    return value


def sanitize(value: Any) -> Any:
    """A JSON value with every lone surrogate replaced (U+FFFD): points stored before these checks stay readable."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace") if lone_surrogate(value) else value
    if isinstance(value, dict):
        return {sanitize(key): sanitize(item) for key, item in value.items()}
    if isinstance(value, list):
        return [sanitize(item) for item in value]
    return value


def moment(what: str) -> Callable[[Any], str]:
    """A check for a time parameter: RFC 3339 with a zone (or a date), returned in the stored form."""

    def check(value: Any) -> str:
        return times.format_time(times.parse_time(value, what=what))

    return check


def duration(what: str) -> Callable[[Any], str]:
    """A check for a duration parameter ("30d", "12h", ...), returned as sent."""

    def check(value: Any) -> str:
        times.parse_duration(value, what=what)
        return str(value).strip()

    return check
