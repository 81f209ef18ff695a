"""Browsing without a query: pages in `created_at` order that hold still while the collection is written.

The order is total: `created_at` (newest or oldest first), then the point id (Qdrant's id
order: integers, then UUIDs), then, after every timestamped point, the points without a
`created_at` (written by other tools) in id order. A page ends at a position in that order
(keyset pagination), so a point written, replaced or deleted elsewhere in the collection
cannot shift a later page. The time of the first page is kept in the cursor: points created
after it are left out, so paging never repeats or skips a point that existed when it began.

Qdrant orders by a payload key only over points that have it, returns ties in no fixed order
and starts (`start_from`) inclusively. So each request asks for what lies strictly beyond the
last whole group of equal times, and a group cut by the page size is read again in id order
(a scroll filtered to that exact time, which the engine returns in id order from an offset).

The cursor is base64url JSON: the collection (hashed), the order, the filters (hashed), the
time of the first page and the position. A checksum catches a cursor altered or cut short;
what it holds grants nothing: anyone who can list can list from the start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .. import times, validation
from ..backends import Backend, OrderedPoint, OrderedScroll, PointId
from ..errors import InvalidRequest, QdrantRejected
from ..filters import DatetimeRange, FieldCondition, Filter, all_of
from .collections import StoreBase
from .model import Listed, Memory, Order
from .payload import PayloadLayout

CURSOR_VERSION = 1
# Any datetime the engine can hold is at or after this: the points without one are those not in this range.
_EARLIEST = "0001-01-01T00:00:00.000000Z"


@dataclass(frozen=True)
class Position:
    """Where a page starts: in the timestamped phase at the group of `created` (microseconds) from
    point `point` on (inclusive), or in the untimed phase from point `point` on; None = the start."""

    phase: Literal["timed", "untimed"] = "timed"
    created: int | None = None
    point: PointId | None = None


@dataclass(frozen=True)
class _Item:
    memory: Memory
    position: Position


class Listing(StoreBase):
    async def list_page(
        self,
        collection: str,
        limit: int,
        order: Order = "newest",
        cursor: str | None = None,
        filter: Filter | None = None,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Listed:
        await self._require(collection, searchable=False)
        # A cursor names its tenant too: another tenant's cursor is refused, not read from.
        fingerprint = _fingerprint(all_of(filter, self._own()), created_after, created_before)
        if cursor is None:
            snapshot, position = times.micros(times.now()), Position()
        else:
            snapshot, position = _decode(cursor, collection, order, fingerprint)
        timed_only = created_after is not None or created_before is not None
        created = self.payloads.created(created_after, created_before)
        base = all_of(filter, created, self._live(collection, times.now()), self._own())
        walk = _Walk(self.backend, self.payloads, collection, base=base, newest=order == "newest", snapshot=snapshot)
        items = await walk.items(position, limit + 1, timed_only)
        following = None
        if len(items) > limit:
            state = {"c": _hash(collection), "o": order, "f": fingerprint, "s": snapshot}
            following = _encode(state, items[limit].position)
        return Listed([item.memory for item in items[:limit]], following)


class _Walk:
    """Reads points in the listing's order from a position on."""

    def __init__(
        self,
        backend: Backend,
        payloads: PayloadLayout,
        collection: str,
        *,
        base: Filter | None,
        newest: bool,
        snapshot: int,
    ) -> None:
        self.backend = backend
        self.payloads = payloads
        self.collection = collection
        self.base = base
        self.newest = newest
        self.up_to = times.format_time(times.from_micros(snapshot))

    async def items(self, position: Position, wanted: int, timed_only: bool) -> list[_Item]:
        found: list[_Item] = []
        if position.phase == "timed":
            boundary = position.created
            if boundary is not None:  # the rest of a group cut by the previous page
                found += await self._group(boundary, position.point, wanted)
            while len(found) < wanted:
                need = wanted - len(found)
                got = await self._beyond(boundary, need)
                if len(got) < need:  # nothing lies beyond: every group is whole
                    found += sorted(got, key=self._rank)
                    break
                # The last group may go on past the page: read it whole in id order instead.
                last = got[-1].position.created or 0
                found += sorted((item for item in got if item.position.created != last), key=self._rank)
                found += await self._group(last, None, wanted - len(found))
                boundary = last
            if len(found) >= wanted or timed_only:
                return found[:wanted]
            position = Position("untimed")
        offset = position.point
        timed = FieldCondition(self.payloads.created_key, DatetimeRange(gte=_EARLIEST))
        untimed = all_of(self.base, Filter(must_not=(timed,)))
        while len(found) < wanted:
            page = await self.backend.scroll(self.collection, offset, wanted - len(found), untimed, with_vectors=False)
            found += [
                _Item(self.payloads.decode(p.id, p.payload), Position("untimed", None, p.id)) for p in page.points
            ]
            if page.next_offset is None:
                break
            offset = page.next_offset
        return found[:wanted]

    async def _beyond(self, boundary: int | None, limit: int) -> list[_Item]:
        """Up to `limit` timestamped points strictly beyond the group at `boundary`, in time order."""
        edge = times.format_time(times.from_micros(boundary)) if boundary is not None else None
        start: str | None
        if self.newest:
            window = DatetimeRange(lt=edge, lte=None if edge else self.up_to)
            start = edge or self.up_to
        else:
            window = DatetimeRange(gt=edge, lte=self.up_to)
            start = edge
        scroll = OrderedScroll(
            self.payloads.created_key,
            self.newest,
            limit,
            all_of(self.base, FieldCondition(self.payloads.created_key, window)),
            start,
        )
        return [self._item(ordered) for ordered in await self.backend.scroll_ordered(self.collection, scroll)]

    async def _group(self, created: int, start: PointId | None, limit: int) -> list[_Item]:
        """Up to `limit` points created at exactly `created`, in id order from `start` (inclusive)."""
        if limit <= 0:
            return []
        moment = times.format_time(times.from_micros(created))
        exact = FieldCondition(self.payloads.created_key, DatetimeRange(gte=moment, lte=moment))
        page = await self.backend.scroll(self.collection, start, limit, all_of(self.base, exact), with_vectors=False)
        return [_Item(self.payloads.decode(p.id, p.payload), Position("timed", created, p.id)) for p in page.points]

    def _item(self, ordered: OrderedPoint) -> _Item:
        point = ordered.point
        memory = self.payloads.decode(point.id, point.payload)
        parsed = times.stored_time(memory.created_at)
        if parsed is not None:
            created = times.micros(parsed)
        elif isinstance(ordered.order_value, int):
            created = ordered.order_value
        else:
            raise QdrantRejected(f"point {point.id} has a created_at the engine orders by but that cannot be read")
        return _Item(memory, Position("timed", created, point.id))

    def _rank(self, item: _Item) -> tuple[int, tuple[int, int]]:
        created = item.position.created or 0
        return (-created if self.newest else created, id_rank(item.memory.id))


def id_rank(point_id: PointId) -> tuple[int, int]:
    """Qdrant's order of point ids: integers first, then UUIDs (as 128-bit numbers)."""
    if isinstance(point_id, int):
        return (0, point_id)
    return (1, uuid.UUID(point_id).int)


# -- the cursor -------------------------------------------------------------------------------


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _fingerprint(flt: Filter | None, after: datetime | None, before: datetime | None) -> str:
    return _hash(repr((flt, after and times.format_time(after), before and times.format_time(before))))


def _checksum(state: dict[str, Any]) -> str:
    return _hash(json.dumps(state, sort_keys=True, separators=(",", ":")))


def _encode(state: dict[str, Any], position: Position) -> str:
    full = {**state, "v": CURSOR_VERSION, "p": position.phase, "t": position.created, "i": position.point}
    text = json.dumps({**full, "h": _checksum(full)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _decode(cursor: str, collection: str, order: Order, fingerprint: str) -> tuple[int, Position]:
    altered = InvalidRequest(
        "cursor is not one this server issued (it was altered or cut short): pass next_cursor exactly as it was "
        "returned, or start again without a cursor"
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        raise altered from None
    if not isinstance(state, dict) or state.pop("h", None) != _checksum(state) or state.get("v") != CURSOR_VERSION:
        raise altered
    if state.get("c") != _hash(collection):
        raise InvalidRequest(
            f"cursor belongs to a listing of another collection, not {collection!r}: start again without a cursor"
        )
    if state.get("o") != order:
        raise InvalidRequest(f"cursor belongs to a listing in order {state.get('o')!r}, not {order!r}")
    if state.get("f") != fingerprint:
        raise InvalidRequest(
            "cursor belongs to a listing with other filters (created_after, created_before or metadata): "
            "repeat the filters of the first page, or start again without a cursor"
        )
    phase, created, point, snapshot = state.get("p"), state.get("t"), state.get("i"), state.get("s")
    try:
        point = None if point is None else validation.point_id(point)
    except ValueError:
        raise altered from None
    if not isinstance(snapshot, int) or isinstance(snapshot, bool) or phase not in ("timed", "untimed"):
        raise altered
    if created is not None and (not isinstance(created, int) or isinstance(created, bool) or phase == "untimed"):
        raise altered
    return snapshot, Position(phase, created, point)
