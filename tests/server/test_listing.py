"""qdrant-list's paging on every engine: a total order (ties and points without times included), pages
that hold still while the collection is written, and cursors that refuse to be misused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest
from test_lifecycle import ago, write_memory

from qdrant_mcp_memory import times
from qdrant_mcp_memory.backends import PointId
from qdrant_mcp_memory.errors import InvalidRequest
from qdrant_mcp_memory.filters import Filter, metadata_filter
from qdrant_mcp_memory.store import Entry, Memory, Order, QdrantStore
from qdrant_mcp_memory.store.listing import id_rank

pytestmark = pytest.mark.anyio
Unique = Callable[[str], str]
FOREIGN_IDS = (5, 50, "00000000-0000-0000-0000-0000000000aa")


async def fill(store: QdrantStore, collection: str) -> None:
    """An old point, an expired one, three points another tool wrote (no times), then three store-many
    batches (each batch shares one created_at: ties, integer and UUID ids mixed)."""
    old = ago(days=2)
    await write_memory(store, collection, Memory(900, "an old note", {"batch": 0}, created_at=old, updated_at=old))
    expired = Memory(901, "an expired note", {"batch": 0}, created_at=old, updated_at=old, expires_at=ago(hours=1))
    await write_memory(store, collection, expired)
    for point_id in FOREIGN_IDS:
        await write_memory(store, collection, Memory(point_id, f"another tool's note {point_id}", None))
    await store.store(collection, [Entry(f"batch one, note {i}", {"batch": 1}) for i in range(6)])
    await store.store(
        collection, [Entry(f"batch two, note {i}", {"batch": 2}, id=i * 7 if i % 2 else None) for i in range(7)]
    )
    await store.store(collection, [Entry(f"batch three, note {i}", {"batch": 3}) for i in range(5)])


async def expected_order(
    store: QdrantStore, collection: str, order: Order, keep: Callable[[Memory], bool] = lambda _: True
) -> list[PointId]:
    """Every live point (that `keep` keeps), sorted as the listing promises: by created_at (then id),
    then the untimed by id."""
    page = await store.backend.scroll(collection, None, 1000, with_vectors=False)
    memories = [store.payloads.decode(point.id, point.payload) for point in page.points]
    live = [m for m in memories if not store.payloads.is_expired(m, times.now()) and keep(m)]
    timed = [m for m in live if m.created_at]
    sign = -1 if order == "newest" else 1

    def created(memory: Memory) -> int:
        return sign * times.micros(times.parse_time(memory.created_at, what="created_at"))

    timed.sort(key=lambda m: (created(m), id_rank(m.id)))
    untimed = sorted((m for m in live if not m.created_at), key=lambda m: id_rank(m.id))
    return [m.id for m in [*timed, *untimed]]


async def page_through(
    store: QdrantStore,
    collection: str,
    limit: int,
    order: Order = "newest",
    filter: Filter | None = None,
    *,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[list[PointId]]:
    pages: list[list[PointId]] = []
    cursor = None
    while True:
        listed = await store.list_page(
            collection, limit, order, cursor, filter, created_after=created_after, created_before=created_before
        )
        assert listed.memories, f"an empty page after {pages}"
        pages.append([memory.id for memory in listed.memories])
        cursor = listed.cursor
        if cursor is None:
            return pages


def flat(pages: Sequence[Sequence[PointId]]) -> list[PointId]:
    return [point_id for page in pages for point_id in page]


@pytest.mark.parametrize("order", ["newest", "oldest"])
async def test_pages_follow_one_total_order(store: QdrantStore, unique: Unique, order: Order) -> None:
    notes = unique("order")
    await fill(store, notes)
    expected = await expected_order(store, notes, order)
    assert len(expected) == 6 + 7 + 5 + 1 + len(FOREIGN_IDS)
    assert expected[-len(FOREIGN_IDS) :] == sorted(FOREIGN_IDS, key=id_rank)  # the untimed come last
    for limit in (1, 4, 7, 100):
        pages = await page_through(store, notes, limit, order)
        assert flat(pages) == expected, limit
        assert all(len(page) == limit for page in pages[:-1])


async def test_a_tie_larger_than_a_page(store: QdrantStore, unique: Unique) -> None:
    notes = unique("tie")
    await store.store(notes, [Entry(f"one batch, note {i}", id=i if i % 3 else None) for i in range(25)])
    expected = await expected_order(store, notes, "newest")
    assert len({memory.created_at for memory in (await store.get(notes, expected)).memories}) == 1
    assert flat(await page_through(store, notes, 4)) == expected
    assert flat(await page_through(store, notes, 4, "oldest")) == expected


@pytest.mark.parametrize("order", ["newest", "oldest"])
async def test_paging_while_written_never_repeats_or_skips(store: QdrantStore, unique: Unique, order: Order) -> None:
    notes = unique("moving")
    await fill(store, notes)
    before = await expected_order(store, notes, order)
    first = await store.list_page(notes, 5, order)
    seen = [memory.id for memory in first.memories]
    # Meanwhile: new memories, one stored again (same text: it keeps its created_at), one changed,
    # and one already shown deleted.
    await store.store(notes, [Entry(f"written while paging {i}") for i in range(4)])
    later = (await store.get(notes, [before[10], before[12]])).memories
    await store.store(notes, [Entry(later[0].document, {"touched": True}, id=later[0].id)])
    await store.update(notes, later[1].id, metadata_patch={"touched": True})
    await store.delete_ids(notes, [seen[0]])
    cursor = first.cursor
    while cursor is not None:
        listed = await store.list_page(notes, 5, order, cursor)
        seen += [memory.id for memory in listed.memories]
        cursor = listed.cursor
    assert seen == before


async def test_filters_and_time_bounds(store: QdrantStore, unique: Unique) -> None:
    notes = unique("filtered")
    await fill(store, notes)
    two = await expected_order(store, notes, "oldest", lambda memory: (memory.metadata or {}).get("batch") == 2)
    assert len(two) == 7
    assert flat(await page_through(store, notes, 3, "oldest", metadata_filter({"batch": 2}))) == two
    yesterday = times.now() - timedelta(days=1)
    recent = await expected_order(store, notes, "newest", lambda memory: memory.id not in (900, *FOREIGN_IDS))
    assert flat(await page_through(store, notes, 5, created_after=yesterday)) == recent  # nor the untimed ones
    assert flat(await page_through(store, notes, 5, created_before=yesterday)) == [900]


async def test_cursors_are_checked(store: QdrantStore, unique: Unique) -> None:
    notes, other = unique("cursor"), unique("other")
    await fill(store, notes)
    await store.store(other, [Entry("elsewhere")])
    cursor = (await store.list_page(notes, 3)).cursor
    assert cursor is not None
    state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    forged = {**state, "t": state["t"] - 1}  # the checksum no longer fits
    tampered = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    for bad in (tampered, cursor[:-5], "not a cursor", "e30", cursor.swapcase()):
        with pytest.raises(InvalidRequest, match="cursor is not one this server issued"):
            await store.list_page(notes, 3, cursor=bad)
    with pytest.raises(InvalidRequest, match="another collection"):
        await store.list_page(other, 3, cursor=cursor)
    with pytest.raises(InvalidRequest, match="in order 'newest', not 'oldest'"):
        await store.list_page(notes, 3, "oldest", cursor)
    with pytest.raises(InvalidRequest, match="other filters"):
        await store.list_page(notes, 3, cursor=cursor, filter=metadata_filter({"batch": 1}))
    assert len((await store.list_page(notes, 3, cursor=cursor)).memories) == 3
