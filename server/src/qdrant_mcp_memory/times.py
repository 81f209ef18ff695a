"""Points in time and durations as memories carry them: RFC 3339 in UTC, and spans like "30d".

Stored times are written in one form, `2026-05-01T09:30:00.123456Z` (UTC, microseconds), so they
sort as text the way they sort as times and every engine parses them alike. What callers send
is read more leniently (any UTC offset, or a bare date meaning midnight UTC) and refused with a
sentence when it cannot be read; a time without a zone is refused rather than guessed.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What a duration may be: "30d", "12h", "1d12h", "90m", "2w" (weeks), "45s".
_DURATION = re.compile(r"(?:(\d{1,12})([wdhms]))+", re.ASCII)
_PART = re.compile(r"(\d{1,12})([wdhms])", re.ASCII)
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
# A duration longer than this is a mistake, not a plan (and would overflow datetime near 9999).
MAX_DURATION = timedelta(days=36_500)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """The stored form: UTC, microseconds, `Z`."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (as Qdrant's datetime index keeps them)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def parse_time(value: Any, *, what: str) -> datetime:
    """A point in time a caller sent: RFC 3339 with a zone (`Z` or an offset), or a date (midnight UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be an RFC 3339 time such as 2026-05-01T09:30:00Z")
    text = value.strip()
    if _DATE_ONLY.fullmatch(text):
        try:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        except ValueError:
            raise ValueError(f"{what} {value!r} is not a valid date") from None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{what} {value!r} is not an RFC 3339 time such as 2026-05-01T09:30:00Z or 2026-05-01T11:30:00+02:00"
        ) from None
    if parsed.utcoffset() is None:
        raise ValueError(f"{what} {value!r} has no time zone: add Z for UTC or an offset such as +02:00")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{what} {value!r} is out of range") from None


def parse_duration(value: Any, *, what: str) -> timedelta:
    """A positive span such as "30d", "12h", "1d12h", "2w", "90m" or "45s", at most 100 years."""
    if not isinstance(value, str):
        raise ValueError(f'{what} must be a duration such as "30d", "12h" or "1d12h"')
    text = value.strip().lower()
    if not _DURATION.fullmatch(text):
        raise ValueError(
            f'{what} {value!r} is not a duration: use a number and a unit (w, d, h, m, s), e.g. "30d", "12h" '
            'or "1d12h"; negative and fractional values are not accepted'
        )
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"{what} {value!r} is zero: give a positive duration")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{what} {value!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def stored_time(value: Any) -> datetime | None:
    """A time as a payload holds it (ours or another tool's); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    # Qdrant reads a time without a zone as UTC.
    return parsed.replace(tzinfo=UTC) if parsed.utcoffset() is None else parsed.astimezone(UTC)
