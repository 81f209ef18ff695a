"""The behavioural suite of the store: every test runs on each engine behind the seam, with real embeddings."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest
from store_engines import VECTOR, StoreFactory

from qdrant_mcp_memory.backends import DenseVector, NewCollection, Point
from qdrant_mcp_memory.backends.remote import RemoteBackend, RemoteConfig
from qdrant_mcp_memory.errors import CollectionLayoutError, CollectionNotFound, InvalidRequest
from qdrant_mcp_memory.filters import metadata_filter, parse_filter, typed_filter
from qdrant_mcp_memory.scheduler import EmbeddingScheduler
from qdrant_mcp_memory.settings import FilterableField
from qdrant_mcp_memory.sparse import Bm25Encoder
from qdrant_mcp_memory.store import Entry, QdrantStore, StoreConfig, content_id

pytestmark = pytest.mark.anyio
Unique = Callable[[str], str]

DOCUMENTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "A good sourdough bread needs a lively starter and a long, cold fermentation.",
    "Python's asyncio library provides an event loop for concurrent I/O.",
]


async def test_the_relevant_document_ranks_first(store: QdrantStore, unique: Unique) -> None:
    facts = unique("facts")
    await store.store(facts, [Entry(doc) for doc in DOCUMENTS])
    for query, expected in [
        ("famous landmark in the French capital", 0),
        ("how do plants make energy from sunlight", 1),
        ("baking bread at home", 3),
        ("concurrency in programming languages", 4),
    ]:
        found = await store.find(facts, query, limit=3)
        assert found is not None and found.hits[0].document == DOCUMENTS[expected], (query, found)
        assert found.hits[0].score > found.hits[1].score and found.mode == "dense"


async def test_concurrent_first_stores_create_the_collection_once(store: QdrantStore, unique: Unique) -> None:
    racing = unique("racing")
    async with anyio.create_task_group() as tasks:
        for i in range(6):
            tasks.start_soon(store.store, racing, [Entry(f"concurrent note {i}")])
    assert (await store.collection_details(racing)).points_count == 6


async def test_same_text_twice_is_one_point(store: QdrantStore, unique: Unique) -> None:
    dedupe = unique("dedupe")
    first = await store.store(dedupe, [Entry("remember the milk", {"n": 1})])
    second = await store.store(dedupe, [Entry("remember the milk", {"n": 2})])
    assert first.ids == second.ids == [content_id("remember the milk")]
    assert (await store.collection_details(dedupe)).points_count == 1
    found = await store.find(dedupe, "milk", limit=5)
    assert found is not None and found.hits[0].metadata == {"n": 2}


async def test_one_call_cannot_silently_drop_an_entry(store: QdrantStore, unique: Unique) -> None:
    batch = unique("batch")
    # Identical entries collapse into one point, and the result says so.
    stored = await store.store(batch, [Entry("same"), Entry("other"), Entry("same")])
    assert stored.points == 2 and stored.ids[0] == stored.ids[2]
    # The same text with different metadata would lose one entry's metadata: refused, naming both.
    with pytest.raises(InvalidRequest, match="entries 0 and 1 have the same text"):
        await store.store(batch, [Entry("twin", {"a": 1}), Entry("twin", {"a": 2})])
    with pytest.raises(InvalidRequest, match="same id"):
        await store.store(batch, [Entry("one", id=5), Entry("two", id=5)])
    assert (await store.collection_details(batch)).points_count == 2


async def test_explicit_ids_and_delete(store: QdrantStore, unique: Unique) -> None:
    ids_collection = unique("ids")
    uuid_id = str(uuid.UUID(int=5))
    stored = await store.store(ids_collection, [Entry("alpha", id=7), Entry("beta", id=uuid_id), Entry("gamma")])
    assert stored.ids[:2] == [7, uuid_id]
    assert await store.delete_ids(ids_collection, [7, uuid_id, 99]) == 2
    assert (await store.collection_details(ids_collection)).points_count == 1
    assert await store.delete_matching(ids_collection, metadata_filter({"missing": "x"})) == 0


async def test_missing_collection_finds_nothing_and_says_so(store: QdrantStore, unique: Unique) -> None:
    nowhere = unique("nowhere")
    assert await store.find(nowhere, "anything", limit=3) is None
    with pytest.raises(CollectionNotFound, match=nowhere):
        await store.collection_details(nowhere)
    with pytest.raises(CollectionNotFound):
        await store.delete_ids(nowhere, [1])
    assert nowhere not in await store.list_collections()


async def test_a_collection_in_the_official_layout_is_found(
    store: QdrantStore, scheduler: EmbeddingScheduler, unique: Unique
) -> None:
    """Written exactly as mcp-server-qdrant 0.8.1 writes: uuid4 hex ids, {document, metadata}, fast-<model>."""
    official = unique("official")
    await store.backend.create_collection(official, NewCollection(DenseVector(VECTOR, 384)))
    vectors = await scheduler.embed_documents(DOCUMENTS)
    await store.backend.upsert(
        official,
        [
            Point(str(uuid.uuid4()), {VECTOR: vector}, {"document": doc, "metadata": None})
            for doc, vector in zip(DOCUMENTS, vectors, strict=True)
        ],
    )
    found = await store.find(official, "sunlight and plant chemistry", limit=2)
    assert found is not None and found.hits[0].document == DOCUMENTS[1]
    # ...and what we write, the official server can read: the same vector name and payload keys,
    # with this server's times beside them (never inside metadata).
    await store.store(official, [Entry("Mount Everest is the highest mountain.", {"kind": "geo"})])
    page = await store.backend.scroll(official, None, 10)
    ours = next(p for p in page.points if p.payload["document"].startswith("Mount Everest"))
    assert {key: ours.payload[key] for key in ("document", "metadata")} == {
        "document": "Mount Everest is the highest mountain.",
        "metadata": {"kind": "geo"},
    }
    assert set(ours.payload) == {"document", "metadata", "created_at", "updated_at"}
    assert set(ours.dense) == {VECTOR} and not ours.sparse


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (DenseVector("fast-bge-small-en-v1.5", 384), "no vector named 'fast-all-minilm-l6-v2'.*fast-bge-small-en-v1.5"),
        (DenseVector(VECTOR, 768), "size 768.*size 384"),
    ],
)
async def test_a_mismatched_collection_fails_loudly(
    store: QdrantStore, unique: Unique, vector: DenseVector, message: str
) -> None:
    foreign = unique("foreign")
    await store.backend.create_collection(foreign, NewCollection(vector))
    with pytest.raises(CollectionLayoutError, match=message):
        await store.find(foreign, "anything", limit=3)
    with pytest.raises(CollectionLayoutError):
        await store.store(foreign, [Entry("text")])
    assert not (await store.collection_details(foreign)).compatible


class RecordingEmbedder:
    """The real embedder, recording how many texts it was asked to embed."""

    def __init__(self, inner: EmbeddingScheduler) -> None:
        self.inner = inner
        self.texts = 0

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    async def embed_query(self, text: str) -> list[float]:
        self.texts += 1
        return await self.inner.embed_query(text)

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += len(texts)
        return await self.inner.embed_documents(texts)


async def test_a_mismatched_collection_is_refused_before_any_embedding(
    store: QdrantStore, scheduler: EmbeddingScheduler, unique: Unique
) -> None:
    """A maximal store-many aimed at an incompatible collection costs no embedding work."""
    foreign = unique("foreign")
    await store.backend.create_collection(foreign, NewCollection(DenseVector(VECTOR, 768)))
    recording = RecordingEmbedder(scheduler)
    checked = QdrantStore(store.backend, recording, StoreConfig(vector_name=VECTOR), Bm25Encoder())
    with pytest.raises(CollectionLayoutError):
        await checked.store(foreign, [Entry(f"note {i} " + "word " * 190) for i in range(1000)])
    with pytest.raises(CollectionLayoutError):
        await checked.find(foreign, "anything", limit=3)
    assert recording.texts == 0
    await checked.store(unique("fine"), [Entry("a compatible collection embeds as usual")])
    assert recording.texts == 1


async def test_creating_an_existing_collection_keeps_it_as_it_is(store: QdrantStore, unique: Unique) -> None:
    """Another writer may create a collection first (or a lost answer makes a create run twice)."""
    name = unique("twice")
    await store.backend.create_collection(name, NewCollection(DenseVector(VECTOR, 384), "bm25"))
    await store.store(name, [Entry("kept through a second create")])
    await store.backend.create_collection(name, NewCollection(DenseVector(VECTOR, 384)))
    schema = await store.backend.describe(name)
    assert schema is not None and schema.sparse == ("bm25",) and schema.points_count == 1


async def test_payload_indexes_are_ensured_on_existing_collections(
    open_store: StoreFactory, engine: str, unique: Unique
) -> None:
    preexisting = unique("preexisting")
    fields = [FilterableField(name="topic", description="t", field_type="keyword", condition="==")]
    async with open_store(filterable=fields) as store:
        await store.backend.create_collection(preexisting, NewCollection(DenseVector(VECTOR, 384)))
        await store.find(preexisting, "anything", limit=1)
        indexed = (await store.collection_details(preexisting)).indexed_fields
    # The filter's index, and the datetime ones listing orders by and expiry filters on. qdrant-client's
    # local mode accepts index requests but keeps no indexes (it scans everything).
    expected = {"metadata.topic": "keyword", "created_at": "datetime", "expires_at": "datetime"}
    assert indexed == ({} if engine == "local-mode" else expected)


async def test_filters(store: QdrantStore, unique: Unique) -> None:
    filtered = unique("filtered")
    entries = [
        Entry(f"note {i} about the project", {"topic": t, "year": y, "tags": tags, "done": done})
        for i, (t, y, tags, done) in enumerate(
            [
                ("work", 2023, ["a"], True),
                ("home", 2024, ["b"], False),
                ("work", 2025, ["a", "b"], False),
                ("travel", 2025, [], True),
            ]
        )
    ]
    await store.store(filtered, entries)
    fields = [
        FilterableField(name="topic", description="t", field_type="keyword", condition="=="),
        FilterableField(name="year", description="y", field_type="integer", condition=">="),
        FilterableField(name="tags", description="x", field_type="keyword", condition="any"),
        FilterableField(name="done", description="d", field_type="boolean", condition="!="),
    ]

    async def topics(flt: object) -> list[str]:
        found = await store.find(filtered, "project", 10, filter=flt)
        assert found is not None
        return sorted(str((hit.metadata or {})["topic"]) for hit in found.hits)

    assert await topics(typed_filter(fields, {"topic": "work"})) == ["work", "work"]
    assert await topics(typed_filter(fields, {"year": 2025})) == ["travel", "work"]
    assert await topics(typed_filter(fields, {"tags": ["b"]})) == ["home", "work"]
    assert await topics(typed_filter(fields, {"done": True})) == ["home", "work"]
    assert typed_filter(fields, {}) is None
    raw = {
        "must_not": [{"key": "metadata.topic", "match": {"value": "work"}}],
        "should": [{"key": "metadata.year", "range": {"gte": 2025}}, {"is_empty": {"key": "metadata.missing"}}],
    }
    assert await topics(parse_filter(raw)) == ["home", "travel"]
    # Qdrant semantics on arrays: "except" matches when any element is outside the list.
    assert await topics(parse_filter({"must": [{"key": "metadata.tags", "match": {"except": ["a"]}}]})) == [
        "home",
        "work",
    ]
    assert await topics(parse_filter({"min_should": {"conditions": [
        {"key": "metadata.topic", "match": {"value": "work"}},
        {"key": "metadata.year", "range": {"gt": 2024}},
    ], "min_count": 2}})) == ["work"]  # fmt: skip
    deleted = await store.delete_matching(filtered, metadata_filter({"topic": ["home", "travel"]}))
    assert deleted == 2 and await topics(None) == ["work", "work"]


async def test_a_lost_collection_is_recreated_on_the_next_store(
    scheduler: EmbeddingScheduler, tmp_path: Path, unique: Unique
) -> None:
    """A Qdrant server restarted on empty storage loses collections this process has checked already:
    the next store re-creates the collection instead of failing (remote engine; Edge cannot lose one)."""
    backend = RemoteBackend(RemoteConfig(path=str(tmp_path / "local")))
    lost = unique("lost")
    async with backend.running():
        store = QdrantStore(backend, scheduler, StoreConfig(vector_name=VECTOR))
        await store.store(lost, [Entry("before the loss")])
        await backend.client.delete_collection(lost)  # what a restart on empty storage does
        await store.store(lost, [Entry("after the loss")])
        found = await store.find(lost, "loss", 5)
        assert found is not None and [hit.document for hit in found.hits] == ["after the loss"]


async def test_storage_persists_across_restarts(open_store: StoreFactory, unique: Unique) -> None:
    persist = unique("persist")
    async with open_store() as store:
        await store.store(persist, [Entry("the cat sat on the mat")])
    async with open_store() as store:
        found = await store.find(persist, "where did the cat sit", limit=1)
        assert found is not None and found.hits[0].document == "the cat sat on the mat"
