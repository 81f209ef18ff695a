"""Memory with a lifecycle, on every engine with the real model: times, get, update, expiry, near-duplicates.

Points "stored days ago" or "already expired" are written through the engine with the payload
the store's own layout makes (as a migration or a clock that moved on would leave them); the
server's code reads them as it reads anything else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest
from store_engines import VECTOR, StoreFactory

from qdrant_mcp_memory import times
from qdrant_mcp_memory.backends import DenseVector, NewCollection, Point
from qdrant_mcp_memory.errors import InvalidRequest
from qdrant_mcp_memory.filters import metadata_filter
from qdrant_mcp_memory.store import Entry, Memory, PayloadLayout, QdrantStore, StoreConfig, content_id
from qdrant_mcp_memory.store.writes import merge_patch

pytestmark = pytest.mark.anyio
Unique = Callable[[str], str]
LAYOUT = PayloadLayout()


async def write_memory(store: QdrantStore, collection: str, memory: Memory) -> None:
    """A point as the store lays it out, with times the test chooses, through the engine itself (as a
    migration or an earlier run left it: write such points before the store first uses the collection)."""
    await store.backend.create_collection(collection, NewCollection(DenseVector(VECTOR, 384)))
    (vector,) = await store.embedder.embed_documents([memory.document])
    await store.backend.upsert(collection, [Point(memory.id, {VECTOR: vector}, LAYOUT.encode(memory))])


def ago(**delta: float) -> str:
    return times.format_time(times.now() - timedelta(**delta))


async def test_stores_carry_times_and_a_rewrite_keeps_created_at(store: QdrantStore, unique: Unique) -> None:
    notes = unique("times")
    first = await store.store(notes, [Entry("The boiler was serviced in March.", {"room": "cellar"})])
    (before,) = (await store.get(notes, first.ids)).memories
    assert before.created_at == before.updated_at
    assert times.parse_time(before.created_at, what="created_at") <= times.now()
    assert before.created_at.endswith("Z") and len(before.created_at) == len("2026-05-01T09:30:00.123456Z")
    await anyio.sleep(0.01)
    again = await store.store(notes, [Entry("The boiler was serviced in March.", {"room": "basement"})])
    (after,) = (await store.get(notes, again.ids)).memories
    assert after.id == before.id and after.metadata == {"room": "basement"}
    assert after.created_at == before.created_at and after.updated_at > before.updated_at
    # The times sit beside document and metadata, never inside metadata.
    (point,) = await store.backend.retrieve(notes, first.ids)
    assert set(point.payload) == {"document", "metadata", "created_at", "updated_at"}


async def test_get_returns_points_in_order_and_names_the_missing(store: QdrantStore, unique: Unique) -> None:
    notes = unique("get")
    stored = await store.store(notes, [Entry("alpha", id=3), Entry("beta", id=str(uuid.UUID(int=9)))])
    fetched = await store.get(notes, [str(uuid.UUID(int=9)), 404, 3])
    assert [m.document for m in fetched.memories] == ["beta", "alpha"] and fetched.missing == [404]
    assert stored.ids == [3, str(uuid.UUID(int=9))]


async def test_update_changes_in_place_and_never_inserts(store: QdrantStore, unique: Unique) -> None:
    notes = unique("update")
    (point_id,) = (await store.store(notes, [Entry("Team lunch is on Fridays.", {"kind": "team", "n": 1})])).ids
    (original,) = (await store.get(notes, [point_id])).memories
    patched = await store.update(notes, point_id, metadata_patch={"n": None, "where": {"city": "Oslo"}})
    assert patched.metadata == {"kind": "team", "where": {"city": "Oslo"}}
    assert patched.created_at == original.created_at and patched.updated_at > original.updated_at
    moved = await store.update(notes, point_id, information="Team lunch moved to Thursdays.")
    assert moved.id == point_id and moved.metadata == patched.metadata
    found = await store.find(notes, "which day is the team lunch", 1)
    assert found is not None and found.hits[0].document == "Team lunch moved to Thursdays."
    replaced = await store.update(notes, point_id, metadata={"kind": "social"})
    assert replaced.metadata == {"kind": "social"}
    with pytest.raises(InvalidRequest, match="has no point 12345"):
        await store.update(notes, 12345, metadata={"x": 1})
    assert (await store.get(notes, [12345])).missing == [12345]
    with pytest.raises(InvalidRequest, match="at least one of"):
        await store.update(notes, point_id)
    with pytest.raises(InvalidRequest, match="not both"):
        await store.update(notes, point_id, metadata={}, metadata_patch={})
    deep: Any = "leaf"
    for _ in range(16):
        deep = {"k": deep}
    with pytest.raises(InvalidRequest, match="metadata_patch: the merged metadata is nested deeper"):
        await store.update(notes, point_id, metadata_patch={"wrap": deep})
    assert (await store.get(notes, [point_id])).memories[0].metadata == {"kind": "social"}


async def test_payload_only_updates_do_not_embed(store: QdrantStore, unique: Unique) -> None:
    from test_store import RecordingEmbedder

    notes = unique("no-embed")
    recording = RecordingEmbedder(store.embedder)
    counted = QdrantStore(store.backend, recording, StoreConfig(vector_name=VECTOR))
    (point_id,) = (await counted.store(notes, [Entry("Passwords rotate quarterly.")])).ids
    assert recording.texts == 1
    await counted.update(notes, point_id, metadata={"owner": "it"})
    await counted.update(notes, point_id, expires_at=times.now() + timedelta(days=1))
    await counted.update(notes, point_id, information="Passwords rotate quarterly.")  # the same text
    assert recording.texts == 1
    await counted.update(notes, point_id, information="Passwords rotate monthly.")
    assert recording.texts == 2


async def test_expired_memories_are_hidden_everywhere_then_purged(store: QdrantStore, unique: Unique) -> None:
    notes = unique("expiry")
    gone = Memory(content_id("The door code was 1234."), "The door code was 1234.", {"kind": "code"})
    await write_memory(store, notes, Memory(**{**vars(gone), "created_at": ago(days=2), "expires_at": ago(hours=1)}))
    await store.store(notes, [Entry("The door code is 4711.", {"kind": "code"})])
    found = await store.find(notes, "door code", 10)
    assert found is not None and [h.document for h in found.hits] == ["The door code is 4711."]
    assert (await store.get(notes, [gone.id])).missing == [gone.id]
    assert [m.document for m in (await store.list_page(notes, 10)).memories] == ["The door code is 4711."]
    with pytest.raises(InvalidRequest, match="has no point"):
        await store.update(notes, gone.id, expires_at=None, clear_expiry=True)
    # Counted as deleted only when live; the expired one goes with the filter all the same.
    assert await store.delete_matching(notes, metadata_filter({"kind": "nothing"})) == 0
    assert await store.delete_ids(notes, [gone.id]) == 0
    await write_memory(store, notes, Memory(**{**vars(gone), "expires_at": ago(seconds=1)}))
    assert (await store.collection_details(notes)).points_count == 2
    assert await store.purge_expired(notes) == {notes: 1}
    assert (await store.collection_details(notes)).points_count == 1
    with pytest.raises(InvalidRequest, match=r"expires_at \S+ is not in the future"):
        await store.store(notes, [Entry("too late")], expires_at=times.now() - timedelta(seconds=1))


async def test_a_memory_expires_on_time(store: QdrantStore, unique: Unique) -> None:
    notes = unique("ttl")
    until = times.now() + timedelta(seconds=1.5)
    (point_id,) = (await store.store(notes, [Entry("The parking spot is B7 today.")], expires_at=until)).ids
    (memory,) = (await store.get(notes, [point_id])).memories
    assert memory.expires_at == times.format_time(until)
    cleared = await store.update(notes, point_id, clear_expiry=True)
    assert cleared.expires_at is None
    await store.update(notes, point_id, expires_at=until)
    await anyio.sleep(max(0.0, (until - times.now()).total_seconds()) + 0.1)
    assert (await store.get(notes, [point_id])).missing == [point_id]
    assert await store.purge_expired(notes) == {notes: 1}


async def test_an_expiry_holds_across_a_restart(open_store: StoreFactory, unique: Unique) -> None:
    """Storage only this process writes: after a restart the store learns again which collections expire."""
    notes = unique("restart")
    async with open_store() as store:
        (point_id,) = (
            await store.store(notes, [Entry("Gone soon.")], expires_at=times.now() + timedelta(seconds=1))
        ).ids
        await store.store(notes, [Entry("Kept.")])
    await anyio.sleep(1.1)
    async with open_store() as store:
        assert (await store.get(notes, [point_id])).missing == [point_id]
        assert [m.document for m in (await store.list_page(notes, 10)).memories] == ["Kept."]


async def test_find_by_time_recency_and_points_without_times(store: QdrantStore, unique: Unique) -> None:
    notes = unique("recency")
    old = Memory(1, "The standup moved to 9:30.", None, created_at=ago(days=21), updated_at=ago(days=21))
    foreign = Memory(2, "The standup used to be at 9:00.", None)  # another tool's point: no times
    await write_memory(store, notes, old)
    await write_memory(store, notes, foreign)
    await store.store(notes, [Entry("The standup moved to 10:00.", id=3)])
    question = "when is the standup"
    plain = await store.find(notes, question, 3)
    assert plain is not None
    similarity = {hit.id: hit.score for hit in plain.hits}
    recent = await store.find(notes, question, 3, recency=timedelta(days=7))
    assert recent is not None and recent.hits[0].id == 3
    # score x (0.75 + 0.25 x 0.5^(age / half-life)); no created_at counts as the oldest.
    expected = {1: similarity[1] * (0.75 + 0.25 * 0.5**3), 2: similarity[2] * 0.75, 3: similarity[3]}
    for hit in recent.hits:
        assert hit.score == pytest.approx(expected[hit.id], abs=2e-3), (hit, similarity)
    since = await store.find(notes, question, 3, created_after=times.now() - timedelta(days=1))
    assert since is not None and [hit.id for hit in since.hits] == [3]
    until = await store.find(notes, question, 3, created_before=times.now() - timedelta(days=1))
    assert until is not None and [hit.id for hit in until.hits] == [1]
    (listed_foreign,) = (await store.get(notes, [2])).memories
    assert (listed_foreign.created_at, listed_foreign.updated_at, listed_foreign.expires_at) == (None, None, None)


PARAPHRASES = [
    "The office wifi password is sunflower42.",
    "Wifi password for the office: sunflower42.",
    "The password of the office wifi is sunflower42.",
    "Office wifi: the password is sunflower42.",
    "Our office wifi uses the password sunflower42.",
]
DISTINCT = [
    "The printer on the second floor needs toner.",
    "The office closes at 6 pm on Fridays.",
    "The guest network password is printed at reception.",
]


@pytest.mark.parametrize("hybrid", [False, True])
async def test_diversity_keeps_paraphrases_from_filling_the_results(
    open_store: StoreFactory, unique: Unique, hybrid: bool
) -> None:
    notes = unique("diverse")
    async with open_store(hybrid=hybrid) as store:
        await store.store(notes, [Entry(text) for text in PARAPHRASES + DISTINCT])
        question = "what is the office wifi password"
        plain = await store.find(notes, question, 3)
        assert plain is not None and {hit.document for hit in plain.hits} <= set(PARAPHRASES)
        diverse = await store.find(notes, question, 3, diversity=0.5)
        assert diverse is not None and diverse.hits[0].document in PARAPHRASES
        assert sum(hit.document in PARAPHRASES for hit in diverse.hits) == 1, diverse.hits
        # Recency on top orders what diversity chose (all fresh: the same points).
        both = await store.find(notes, question, 3, diversity=0.5, recency=timedelta(days=7))
        assert both is not None and {hit.id for hit in both.hits} == {hit.id for hit in diverse.hits}


async def test_find_across_collections_merges_by_score(store: QdrantStore, unique: Unique) -> None:
    home, work, nowhere = unique("home"), unique("work"), unique("nowhere")
    await store.store(home, [Entry("The cat is fed at 7 am."), Entry("The plants need water on Sundays.")])
    await store.store(work, [Entry("The cat picture is the team's mascot."), Entry("Payroll runs on the 25th.")])
    found = await store.find_in([home, work, nowhere], "feeding the cat", 3)
    assert found.missing == [nowhere]
    assert [hit.score for hit in found.hits] == sorted((hit.score for hit in found.hits), reverse=True)
    assert {hit.collection for hit in found.hits} == {home, work}
    assert (found.hits[0].collection, found.hits[0].document) == (home, "The cat is fed at 7 am.")
    assert (await store.find_in([nowhere], "cat", 3)).hits == []


async def test_if_similar_skips_or_replaces_near_duplicates(store: QdrantStore, unique: Unique) -> None:
    notes = unique("similar")
    (kept,) = (await store.store(notes, [Entry("I prefer dark mode in my editor.", {"v": 1})])).ids
    (original,) = (await store.get(notes, [kept])).memories
    # A rewording scores 0.957: below the default threshold (0.97, measured in test_similarity_threshold.py).
    skipped = await store.store(
        notes, [Entry("I like using dark mode in the editor.")], if_similar="skip", similarity=0.95
    )
    assert skipped.points == 0 and skipped.ids == [kept]
    ((entry, of, action),) = [(d.entry, d.of, d.action) for d in skipped.duplicates]
    assert (entry, of, action) == (0, kept, "skipped") and skipped.duplicates[0].similarity >= 0.95
    # A stricter threshold than the pair's similarity stores it as its own memory.
    apart = await store.store(
        notes, [Entry("I like using dark mode in the editor.")], if_similar="skip", similarity=0.99
    )
    assert apart.points == 1 and not apart.duplicates
    await store.delete_ids(notes, apart.ids)
    replaced = await store.store(
        notes, [Entry("I like using dark mode in the editor.", {"v": 2})], if_similar="replace", similarity=0.9
    )
    assert replaced.ids == [kept] and replaced.duplicates[0].action == "replaced"
    (now,) = (await store.get(notes, [kept])).memories
    assert (now.document, now.metadata) == ("I like using dark mode in the editor.", {"v": 2})
    assert now.created_at == original.created_at and now.updated_at > original.updated_at
    assert (await store.collection_details(notes)).points_count == 1
    # Without if_similar, a paraphrase is a memory of its own, as before.
    assert (await store.store(notes, [Entry("Dark mode is what I prefer in my editor.")])).points == 1


async def test_if_similar_within_one_store_many(store: QdrantStore, unique: Unique) -> None:
    notes = unique("within")
    entries = [
        Entry("Remember to buy milk."),
        Entry("The train leaves at 8:15."),
        Entry("Remember to buy milk!"),
    ]
    stored = await store.store(notes, entries, if_similar="skip", similarity=0.95)  # "milk." / "milk!": 0.964
    assert stored.points == 2 and stored.ids[2] == stored.ids[0]
    assert [(d.entry, d.of, d.action) for d in stored.duplicates] == [(2, stored.ids[0], "skipped")]
    with pytest.raises(InvalidRequest, match="entries 0 and 1 resemble each other"):
        await store.store(unique("refused"), [entries[0], entries[2]], if_similar="replace", similarity=0.95)
    with pytest.raises(InvalidRequest, match="entries 0 and 1 both resemble point"):
        await store.store(
            notes,
            [Entry("Remember to buy milk and eggs."), Entry("Remember: milk needs buying.")],
            if_similar="replace",
            similarity=0.8,
        )
    with pytest.raises(InvalidRequest, match="has id 77 but resembles point"):
        await store.store(notes, [Entry("Remember to buy milk!!", id=77)], if_similar="replace", similarity=0.95)
    assert (await store.collection_details(notes)).points_count == 2


async def test_points_without_the_document_key_are_read_as_they_are(store: QdrantStore, unique: Unique) -> None:
    """Another tool's layout (no `document`, or one that is not text): answered with what is there."""
    notes = unique("foreign")
    await store.store(notes, [Entry("Our own note about the garden.")])
    (vector,) = await store.embedder.embed_documents(["a note about the garden, stored elsewhere"])
    await store.backend.upsert(
        notes,
        [
            Point(41, {VECTOR: vector}, {"page_content": "stored elsewhere", "metadata": {"source": "x"}}),
            Point(42, {VECTOR: vector}, {"document": {"title": "garden"}, "metadata": "not an object"}),
        ],
    )
    fetched = await store.get(notes, [41, 42])
    assert [(m.document, m.metadata) for m in fetched.memories] == [
        ("", {"source": "x"}),
        ('{"title": "garden"}', None),
    ]
    found = await store.find(notes, "garden", 3)
    assert found is not None and {hit.id for hit in found.hits} >= {41, 42}
    assert {m.id for m in (await store.list_page(notes, 10)).memories} >= {41, 42}
    updated = await store.update(notes, 41, metadata_patch={"seen": True})
    assert updated.metadata == {"source": "x", "seen": True} and updated.created_at is None
    await store.update(notes, 42, metadata={"kind": "garden"})
    # Other tools' keys stay, and so does what was not changed, as they wrote it (or left it out).
    first, second = await store.backend.retrieve(notes, [41, 42])
    assert set(first.payload) == {"page_content", "metadata", "updated_at"}
    assert (first.payload["page_content"], first.payload["metadata"]) == ("stored elsewhere", updated.metadata)
    assert second.payload["document"] == {"title": "garden"} and second.payload["metadata"] == {"kind": "garden"}


async def test_a_hybrid_update_embeds_both_vectors_again(open_store: StoreFactory, unique: Unique) -> None:
    notes = unique("hybrid-update")
    async with open_store(hybrid=True) as store:
        (point_id,) = (await store.store(notes, [Entry("Ticket ZX-4417 is waiting for a reply.")])).ids
        await store.store(notes, [Entry(f"Ticket QK-{n} was closed last week.") for n in range(1100, 1105)])
        (before,) = await store.backend.retrieve(notes, [point_id], with_vectors=True)
        await store.update(notes, point_id, information="Ticket QK-1190 is waiting for a reply.")
        (after,) = await store.backend.retrieve(notes, [point_id], with_vectors=True)
        assert after.sparse["bm25"] != before.sparse["bm25"] and after.dense[VECTOR] != before.dense[VECTOR]
        found = await store.find(notes, "QK-1190", 1)
        assert found is not None and found.mode == "hybrid" and found.hits[0].id == point_id


def test_merge_patch_is_rfc_7386() -> None:
    assert merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}}) == {
        "a": "z",
        "c": {"d": "e"},
    }
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge_patch({"a": 1}, {"a": {"b": None}}) == {"a": {}}
