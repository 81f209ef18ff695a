"""The store in-process, on embedded Qdrant, with the real all-MiniLM-L6-v2 embeddings."""

from __future__ import annotations

import json
import math
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from qdrant_client import AsyncQdrantClient, models

from qdrant_mcp_memory.app import create_store
from qdrant_mcp.embeddings import EmbeddingModelError, FastEmbedEmbedder
from qdrant_mcp_memory.filters import build_filter, parse_raw_filter, FilterError
from qdrant_mcp_memory.settings import FilterableField, Settings
from support import SHARED

from qdrant_mcp_memory.store import CollectionLayoutError, CollectionNotFound, Entry, QdrantStore, StoreError, content_id

pytestmark = pytest.mark.anyio
GOLDEN = SHARED / "offline-models" / "minilm_golden.json"

DOCUMENTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "A good sourdough bread needs a lively starter and a long, cold fermentation.",
    "Python's asyncio library provides an event loop for concurrent I/O.",
]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture(scope="module")
def embedder() -> FastEmbedEmbedder:
    model = FastEmbedEmbedder("sentence-transformers/all-MiniLM-L6-v2")
    model.load()
    return model


def memory_settings(**extra: object) -> Settings:
    return Settings(QDRANT_URL=":memory:", **extra)  # type: ignore[arg-type]


@pytest.fixture
async def store(embedder: FastEmbedEmbedder) -> AsyncIterator[QdrantStore]:
    qdrant = QdrantStore(memory_settings(), embedder)
    await qdrant.open()
    qdrant._started.set()  # the model is already loaded by the module fixture
    yield qdrant
    await qdrant.close()


async def test_vectors_match_sentence_transformers(embedder: FastEmbedEmbedder) -> None:
    golden = json.loads(GOLDEN.read_text())
    vectors = await embedder.embed_documents(golden["texts"])
    for got, want in zip(vectors, golden["vectors"], strict=True):
        assert cosine(got, want) > 0.9999
    assert embedder.dimension == 384


async def test_concurrent_calls_are_batched_without_changing_results(embedder: FastEmbedEmbedder) -> None:
    queries = [f"query number {i} about {topic}" for i, topic in enumerate(["towers", "plants", "bread", "money"] * 4)]
    alone = [await embedder.embed_query(q) for q in queries]
    together: list[list[float] | None] = [None] * len(queries)

    async def one(i: int) -> None:
        together[i] = await embedder.embed_query(queries[i])

    embedder_runs = 0
    original = embedder.run_batch

    def counting_run(kind, texts):  # type: ignore[no-untyped-def]
        nonlocal embedder_runs
        embedder_runs += 1
        return original(kind, texts)

    embedder.run_batch = counting_run  # type: ignore[method-assign]
    try:
        async with anyio.create_task_group() as tasks:
            for i in range(len(queries)):
                tasks.start_soon(one, i)
    finally:
        del embedder.run_batch
    assert embedder_runs < len(queries), "concurrent calls should share ONNX runs"
    for a, b in zip(alone, together, strict=True):
        assert b is not None and cosine(a, b) > 0.99999


async def test_parallel_runs_split_large_calls_and_survive_cancellation(embedder: FastEmbedEmbedder) -> None:
    documents = [f"document {i} " + "about a rather long topic " * (i % 7) for i in range(150)]
    queries = [f"short query {i}" for i in range(12)]
    alone_docs = embedder.run_batch("document", documents)
    alone_queries = embedder.run_batch("query", queries)
    parallel = FastEmbedEmbedder(embedder.model_name, parallel=2)
    parallel._model, parallel.dimension = embedder._model, embedder.dimension  # share the loaded session
    got_queries: dict[int, list[float]] = {}
    got_docs: list[list[float]] = []

    async def query(i: int) -> None:
        got_queries[i] = await parallel.embed_query(queries[i])

    async def documents_call() -> None:
        got_docs.extend(await parallel.embed_documents(documents))

    async def cancelled_call() -> None:
        with anyio.move_on_after(0.001):
            await parallel.embed_documents(documents[:40])

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(documents_call)
        tasks.start_soon(cancelled_call)
        for i in range(len(queries)):
            tasks.start_soon(query, i)
    assert parallel._drivers == 0 and parallel._queue == []
    for a, b in zip(alone_docs, got_docs, strict=True):
        assert cosine(a, b) > 0.99999
    for i, vector in enumerate(alone_queries):
        assert cosine(vector, got_queries[i]) > 0.99999


async def test_the_relevant_document_ranks_first(store: QdrantStore) -> None:
    await store.store("facts", [Entry(doc) for doc in DOCUMENTS])
    for query, expected in [
        ("famous landmark in the French capital", 0),
        ("how do plants make energy from sunlight", 1),
        ("baking bread at home", 3),
        ("concurrency in programming languages", 4),
    ]:
        hits = await store.find("facts", query, limit=3)
        assert hits is not None and hits[0].document == DOCUMENTS[expected], (query, hits)
        assert hits[0].score > hits[1].score


async def test_concurrent_first_stores_create_the_collection_once(store: QdrantStore) -> None:
    async with anyio.create_task_group() as tasks:
        for i in range(6):
            tasks.start_soon(store.store, "racing", [Entry(f"concurrent note {i}")])
    assert (await store.collection_details("racing")).points_count == 6


async def test_same_text_twice_is_one_point(store: QdrantStore) -> None:
    first = await store.store("dedupe", [Entry("remember the milk", {"n": 1})])
    second = await store.store("dedupe", [Entry("remember the milk", {"n": 2})])
    assert first == second == [content_id("remember the milk")]
    details = await store.collection_details("dedupe")
    assert details.points_count == 1
    hits = await store.find("dedupe", "milk", limit=5)
    assert hits is not None and hits[0].metadata == {"n": 2}


async def test_explicit_ids_and_delete(store: QdrantStore) -> None:
    ids = await store.store("ids", [Entry("alpha", id=7), Entry("beta", id=str(uuid.UUID(int=5))), Entry("gamma")])
    assert ids[0] == 7 and ids[1] == "00000000-0000-0000-0000-000000000005"
    assert await store.delete("ids", [7, "00000000-0000-0000-0000-000000000005", 99], None) == 2
    assert (await store.collection_details("ids")).points_count == 1
    with pytest.raises(StoreError, match="invalid point id"):
        await store.store("ids", [Entry("delta", id="not-a-uuid")])


async def test_missing_collection_finds_nothing_and_says_so(store: QdrantStore) -> None:
    assert await store.find("nowhere", "anything", limit=3) is None
    with pytest.raises(CollectionNotFound, match="'nowhere'"):
        await store.collection_details("nowhere")
    with pytest.raises(CollectionNotFound):
        await store.delete("nowhere", [1], None)


async def test_a_collection_in_the_official_layout_is_found(store: QdrantStore, embedder: FastEmbedEmbedder) -> None:
    """Written exactly as mcp-server-qdrant 0.8.1 writes: uuid4 hex ids, {document, metadata}, fast-<model>."""
    client = store.client
    await client.create_collection(
        "official",
        vectors_config={"fast-all-minilm-l6-v2": models.VectorParams(size=384, distance=models.Distance.COSINE)},
    )
    vectors = await embedder.embed_documents(DOCUMENTS)
    await client.upsert(
        "official",
        points=[
            models.PointStruct(
                id=uuid.uuid4().hex, vector={"fast-all-minilm-l6-v2": v}, payload={"document": d, "metadata": None}
            )
            for d, v in zip(DOCUMENTS, vectors, strict=True)
        ],
    )
    hits = await store.find("official", "sunlight and plant chemistry", limit=2)
    assert hits is not None and hits[0].document == DOCUMENTS[1]
    # ...and what we write, the official server can read: the same vector name and payload keys.
    await store.store("official", [Entry("Mount Everest is the highest mountain.", {"kind": "geo"})])
    points, _ = await client.scroll("official", limit=10, with_payload=True, with_vectors=True)
    ours = next(p for p in points if p.payload and p.payload["document"].startswith("Mount Everest"))
    assert ours.payload == {"document": "Mount Everest is the highest mountain.", "metadata": {"kind": "geo"}}
    assert set(ours.vector) == {"fast-all-minilm-l6-v2"}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("vectors_config", "message"),
    [
        (
            {"fast-bge-small-en-v1.5": models.VectorParams(size=384, distance=models.Distance.COSINE)},
            "no vector named 'fast-all-minilm-l6-v2'.*fast-bge-small-en-v1.5",
        ),
        (
            {"fast-all-minilm-l6-v2": models.VectorParams(size=768, distance=models.Distance.COSINE)},
            "size 768.*size 384",
        ),
        (models.VectorParams(size=384, distance=models.Distance.COSINE), "<unnamed> \\(size 384\\)"),
    ],
)
async def test_a_mismatched_collection_fails_loudly(store: QdrantStore, vectors_config, message: str) -> None:  # type: ignore[no-untyped-def]
    await store.client.create_collection("foreign", vectors_config=vectors_config)
    with pytest.raises(CollectionLayoutError, match=message):
        await store.find("foreign", "anything", limit=3)
    with pytest.raises(CollectionLayoutError):
        await store.store("foreign", [Entry("text")])
    details = await store.collection_details("foreign")
    assert not details.compatible


async def test_payload_indexes_are_ensured_on_existing_collections(embedder: FastEmbedEmbedder) -> None:
    fields = [FilterableField(name="topic", description="t", field_type="keyword", condition="==")]
    settings = memory_settings(FILTERABLE_FIELDS=[f.model_dump() for f in fields])
    qdrant = QdrantStore(settings, embedder)
    await qdrant.open()
    qdrant._started.set()
    await qdrant.client.create_collection(
        "preexisting",
        vectors_config={"fast-all-minilm-l6-v2": models.VectorParams(size=384, distance=models.Distance.COSINE)},
    )
    # Embedded Qdrant accepts the index request and warns that it has no effect: that warning is
    # the observable proof that the index was requested for a collection the server did not create.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await qdrant.find("preexisting", "anything", limit=1)
    assert any("Payload indexes" in str(w.message) for w in caught)
    await qdrant.close()


async def test_filters(store: QdrantStore) -> None:
    entries = [
        Entry(f"note {i} about the project", {"topic": t, "year": y})
        for i, (t, y) in enumerate([("work", 2023), ("home", 2024), ("work", 2025), ("travel", 2025)])
    ]
    await store.store("filtered", entries)
    fields = [
        FilterableField(name="topic", description="t", field_type="keyword", condition="=="),
        FilterableField(name="year", description="y", field_type="integer", condition=">="),
        FilterableField(name="not_topic", description="x", field_type="keyword", condition="!="),
    ]
    work = await store.find("filtered", "project", 10, query_filter=build_filter(fields, {"topic": "work"}))
    assert work is not None and {h.metadata["topic"] for h in work} == {"work"} and len(work) == 2  # type: ignore[index]
    recent = await store.find("filtered", "project", 10, query_filter=build_filter(fields, {"year": 2025}))
    assert recent is not None and len(recent) == 2
    raw = parse_raw_filter('{"must_not": [{"key": "metadata.topic", "match": {"value": "work"}}]}')
    others = await store.find("filtered", "project", 10, query_filter=raw)
    assert others is not None and len(others) == 2
    assert build_filter(fields, {}) is None
    with pytest.raises(FilterError, match="invalid query_filter"):
        parse_raw_filter({"must": [{"key": "x", "match": {"valu": 1}}]})
    with pytest.raises(FilterError, match="not valid JSON"):
        parse_raw_filter("{must")


async def test_unreachable_qdrant_is_an_actionable_error(embedder: FastEmbedEmbedder) -> None:
    qdrant = QdrantStore(Settings(QDRANT_URL="http://127.0.0.1:9"), embedder)  # type: ignore[call-arg]
    await qdrant.open()
    qdrant._started.set()
    with pytest.raises(StoreError, match="unreachable.*QDRANT_URL"):
        await qdrant.find("any", "query", limit=1)
    with pytest.raises(StoreError, match="unreachable"):
        await qdrant.ping()
    await qdrant.close()


async def test_embedded_storage_persists_across_restarts(embedder: FastEmbedEmbedder, tmp_path: Path) -> None:
    settings = Settings(QDRANT_LOCAL_PATH=str(tmp_path / "qdrant"))  # type: ignore[call-arg]
    for round_ in range(2):
        qdrant = QdrantStore(settings, embedder)
        await qdrant.open()
        qdrant._started.set()
        if round_ == 0:
            await qdrant.store("persist", [Entry("the cat sat on the mat")])
        else:
            hits = await qdrant.find("persist", "where did the cat sit", limit=1)
            assert hits is not None and hits[0].document == "the cat sat on the mat"
        await qdrant.close()


def test_missing_model_fails_fast_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTEMBED_CACHE_PATH", str(tmp_path))
    with pytest.raises(EmbeddingModelError, match="HF_HUB_OFFLINE=1 forbids downloading"):
        FastEmbedEmbedder("sentence-transformers/all-MiniLM-L6-v2").load()


def test_factory_does_no_io() -> None:
    store = create_store(Settings(QDRANT_URL="http://127.0.0.1:9"))  # type: ignore[call-arg]
    assert not store.started and not store.embedder.loaded
