"""The stand-in is faithful enough: the server's RemoteBackend and qdrant-client itself work against it.

Every answer goes through qdrant-client's pydantic models (a field missing or mistyped fails
here as a ResponseHandlingException, which RemoteBackend would have reported as "unreachable").
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from qdrant_mcp_memory.backends import DenseVector, Fusion, NewCollection, Point, Search, SparseVector
from qdrant_mcp_memory.backends.remote import RemoteBackend, RemoteConfig
from qdrant_mcp_memory.errors import CollectionNotFound, QdrantRejected
from qdrant_mcp_memory.filters import metadata_filter, parse_filter
from standin import Standin, spawn_standin

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")]
API_KEY = "standin-test-key-0123456789"
DENSE = "fast-test"
UUID_ID = str(uuid.UUID(int=42))
# Four unit-ish directions: the nearest neighbours of a query are known exactly.
POINTS = [
    Point(
        1,
        {DENSE: [1.0, 0.0, 0.0, 0.0]},
        {"document": "one", "metadata": {"topic": "work", "year": 2023, "done": True}},
        {"bm25": SparseVector([10, 11], [1.0, 1.0])},
    ),
    Point(
        2,
        {DENSE: [0.9, 0.1, 0.0, 0.0]},
        {"document": "two", "metadata": {"topic": "home", "year": 2024, "done": False}},
        {"bm25": SparseVector([11, 12], [1.0, 1.0])},
    ),
    Point(
        3,
        {DENSE: [0.0, 1.0, 0.0, 0.0]},
        {"document": "three", "metadata": {"topic": "work", "year": 2025, "done": False, "tags": ["a", "b"]}},
        {"bm25": SparseVector([12], [1.0])},
    ),
    Point(UUID_ID, {DENSE: [0.0, 0.0, 1.0, 0.0]}, {"document": "four", "metadata": None}),
]


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standin]:
    process = spawn_standin(tmp_path_factory.mktemp("standin"), api_key=API_KEY)
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log(), process.log()


@pytest.fixture
async def backend(standin: Standin) -> AsyncIterator[RemoteBackend]:
    remote = RemoteBackend(RemoteConfig(url=standin.url, api_key=API_KEY, shard_number=2, replication_factor=1))
    async with remote.running():
        yield remote


@pytest.fixture
async def client(standin: Standin) -> AsyncIterator[AsyncQdrantClient]:
    raw = AsyncQdrantClient(url=standin.url, api_key=API_KEY, https=False, check_compatibility=False)
    yield raw
    await raw.close()


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_remote_backend_round_trip(backend: RemoteBackend) -> None:
    collection = name("round-trip")
    assert await backend.describe(collection) is None
    await backend.create_collection(collection, NewCollection(DenseVector(DENSE, 4), sparse="bm25"))
    # Qdrant answers 409 to a second create; the backend accepts the collection that is there.
    await backend.create_collection(collection, NewCollection(DenseVector(DENSE, 4)))
    for key, kind in [("metadata.topic", "keyword"), ("metadata.year", "integer"), ("metadata.done", "boolean")]:
        await backend.create_index(collection, key, kind)
    await backend.upsert(collection, POINTS)
    schema = await backend.describe(collection)
    assert schema is not None
    assert schema.dense == (DenseVector(DENSE, 4, "Cosine"),) and schema.sparse == ("bm25",)
    assert schema.points_count == 4 and schema.status == "green"
    assert schema.indexed_fields == {"metadata.topic": "keyword", "metadata.year": "integer", "metadata.done": "bool"}
    assert collection in await backend.list_collections()

    # Dense: nearest first, scores are cosine similarities; filter and threshold applied by the engine.
    hits = await backend.search(collection, Search(DENSE, [1.0, 0.05, 0.0, 0.0], limit=3))
    assert [h.id for h in hits] == [1, 2, 3] and hits[0].score == pytest.approx(0.99875, abs=1e-4)
    assert hits[0].payload["metadata"]["topic"] == "work"
    work = metadata_filter({"topic": "work"})
    assert [h.id for h in await backend.search(collection, Search(DENSE, [1.0, 0, 0, 0], 10, work))] == [1, 3]
    near = await backend.search(collection, Search(DENSE, [1.0, 0, 0, 0], 10, score_threshold=0.5))
    assert [h.id for h in near] == [1, 2]
    done = parse_filter({"must": [{"key": "metadata.done", "match": {"value": True}}]})
    assert [h.id for h in await backend.search(collection, Search(DENSE, [0, 1.0, 0, 0], 10, done))] == [1]

    # Hybrid: both rankings fused by Qdrant's RRF (k=2: a point first in both scores 1/2 + 1/2),
    # and by DBSF (the default: each ranking's scores normalised, then summed).
    hybrid = Search(
        DENSE,
        [1.0, 0, 0, 0],
        3,
        sparse_name="bm25",
        sparse=SparseVector([10, 11], [1.0, 1.0]),
        candidates=10,
        fusion=Fusion("rrf"),
    )
    fused = await backend.search(collection, hybrid)
    assert fused[0].id == 1 and fused[0].score == pytest.approx(1.0)
    assert [h.id for h in fused][:2] == [1, 2]
    by_dbsf = await backend.search(collection, dataclasses.replace(hybrid, fusion=Fusion("dbsf")))
    assert [h.id for h in by_dbsf][:2] == [1, 2] and by_dbsf[0].score > by_dbsf[1].score

    # Counts, ids, deletes.
    assert await backend.count(collection) == 4
    recent = parse_filter({"must": [{"key": "metadata.year", "range": {"gte": 2024}}]})
    assert await backend.count(collection, recent) == 2
    assert await backend.count(collection, parse_filter({"must": [{"is_empty": {"key": "metadata.tags"}}]})) == 3
    assert await backend.count(collection, parse_filter({"must": [{"has_id": [1, UUID_ID]}]})) == 2
    assert sorted(str(point.id) for point in await backend.retrieve(collection, [1, UUID_ID, 99])) == sorted(
        ["1", UUID_ID]
    )
    await backend.delete_ids(collection, [2])
    await backend.delete_matching(collection, metadata_filter({"topic": "work"}))
    assert await backend.count(collection) == 1
    assert [point.id for point in await backend.retrieve(collection, [UUID_ID])] == [UUID_ID]


async def test_scroll_pages_with_vectors(backend: RemoteBackend) -> None:
    collection = name("scroll")
    await backend.create_collection(collection, NewCollection(DenseVector(DENSE, 4), sparse="bm25"))
    await backend.upsert(collection, POINTS)
    seen: list[Point] = []
    offset = None
    while True:
        page = await backend.scroll(collection, offset, 3)
        seen.extend(page.points)
        if page.next_offset is None:
            break
        offset = page.next_offset
    assert [p.id for p in seen] == [1, 2, 3, UUID_ID]
    assert seen[0].dense == {DENSE: pytest.approx([1.0, 0.0, 0.0, 0.0])}
    assert seen[0].sparse == {"bm25": SparseVector([10, 11], [1.0, 1.0])}
    assert seen[3].payload == {"document": "four", "metadata": None} and not seen[3].sparse


async def test_errors_are_qdrants(backend: RemoteBackend, standin: Standin) -> None:
    missing = name("missing")
    with pytest.raises(CollectionNotFound, match=missing):
        await backend.search(missing, Search(DENSE, [1.0, 0, 0, 0], 3))
    with pytest.raises(CollectionNotFound):
        await backend.count(missing)
    collection = name("errors")
    await backend.create_collection(collection, NewCollection(DenseVector(DENSE, 4)))
    with pytest.raises(QdrantRejected, match=r"\(400\).*dimension.*expected dim: 4, got 3"):
        await backend.upsert(collection, [Point(1, {DENSE: [1.0, 0.0, 0.0]}, {})])
    with pytest.raises(QdrantRejected, match=r"\(400\).*vector name"):
        await backend.search(collection, Search("other", [1.0, 0, 0, 0], 3))
    for key in (None, "wrong-key-0123456789"):
        wrong = RemoteBackend(RemoteConfig(url=standin.url, api_key=key))
        async with wrong.running():
            with pytest.raises(QdrantRejected, match="check QDRANT_API_KEY"):
                await wrong.list_collections()
    # Probes stay open, as Qdrant's do; the version answer names the stand-in.
    async with httpx.AsyncClient(base_url=standin.url) as http:
        assert (await http.get("/readyz")).status_code == 200
        assert "stand-in" in (await http.get("/", headers={"api-key": API_KEY})).json()["title"]


async def test_qdrant_client_parses_every_answer(client: AsyncQdrantClient) -> None:
    collection = name("parsed")
    assert await client.collection_exists(collection) is False
    assert await client.create_collection(
        collection,
        vectors_config={DENSE: models.VectorParams(size=4, distance=models.Distance.COSINE)},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        shard_number=2,
        replication_factor=1,
    )
    info = await client.get_collection(collection)
    assert isinstance(info, models.CollectionInfo) and info.config.params.shard_number == 2
    assert info.config.params.sparse_vectors == {"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)}
    result = await client.create_payload_index(collection, "metadata.topic", models.PayloadSchemaType.KEYWORD)
    assert result.status == models.UpdateStatus.COMPLETED
    payload = {"document": "x", "metadata": {"topic": "t"}}
    await client.upsert(collection, [models.PointStruct(id=7, vector={DENSE: [0.0, 1.0, 0.0, 0.0]}, payload=payload)])
    await client.upsert(collection, models.Batch(ids=[8], vectors={DENSE: [[1.0, 0.0, 0.0, 0.0]]}, payloads=[{"n": 8}]))
    info = await client.get_collection(collection)
    assert info.points_count == 2
    assert info.payload_schema["metadata.topic"].data_type == models.PayloadSchemaType.KEYWORD
    x_axis, y_axis = [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]
    response = await client.query_points(collection, query=x_axis, using=DENSE, with_vectors=True, limit=1)
    assert response.points[0].id == 8 and response.points[0].vector == {DENSE: pytest.approx(x_axis)}
    nearest = await client.query_points(collection, query=models.NearestQuery(nearest=y_axis), using=DENSE)
    assert [p.id for p in nearest.points] == [7, 8]
    records = await client.retrieve(collection, [7, 8, 9], with_vectors=True)
    assert {r.id for r in records} == {7, 8} and all(isinstance(r, models.Record) for r in records)
    counted = await client.count(collection, count_filter=models.Filter(must=[models.FieldCondition(
        key="metadata.topic", match=models.MatchValue(value="t"))]))  # fmt: skip
    assert counted.count == 1
    page, next_offset = await client.scroll(collection, limit=1, with_vectors=True)
    assert [p.id for p in page] == [7] and next_offset == 8
    assert [c.name for c in (await client.get_collections()).collections].count(collection) == 1
    deleted = await client.delete(collection, models.PointIdsList(points=[7]))
    assert deleted.status == models.UpdateStatus.COMPLETED
    assert await client.delete_collection(collection) is True
    assert await client.collection_exists(collection) is False
    with pytest.raises(UnexpectedResponse) as refused:
        await client.query_points(collection, query=[1.0, 0.0, 0.0, 0.0], using=DENSE)
    assert refused.value.status_code == 404 and b"doesn't exist" in refused.value.content


async def test_lifecycle_requests_parse_and_behave_as_qdrants(client: AsyncQdrantClient) -> None:
    """Ordered scrolls, formula and MMR queries and payload overwrites: the engine's answers in Qdrant's shapes."""
    collection = name("lifecycle")
    await client.create_collection(
        collection, vectors_config={DENSE: models.VectorParams(size=4, distance=models.Distance.COSINE)}
    )
    await client.create_payload_index(collection, "created_at", models.PayloadSchemaType.DATETIME, wait=True)
    vectors = {1: [1.0, 0.0, 0.0, 0.0], 2: [0.99, 0.1, 0.0, 0.0], 3: [0.0, 1.0, 0.0, 0.0], 4: [0.7, 0.7, 0.0, 0.0]}
    days = {1: "01", 2: "02", 3: "03", 4: "04"}
    await client.upsert(
        collection,
        [
            models.PointStruct(id=i, vector={DENSE: v}, payload={"created_at": f"2026-01-{days[i]}T00:00:00Z"})
            for i, v in vectors.items()
        ],
        wait=True,
    )
    order = models.OrderBy(
        key="created_at", direction=models.Direction.DESC, start_from=datetime(2026, 1, 3, tzinfo=UTC)
    )
    records, following = await client.scroll(collection, order_by=order, limit=10)
    assert [r.id for r in records] == [3, 2, 1] and following is None
    assert records[0].order_value == 1_767_398_400_000_000  # 2026-01-03 in microseconds
    decay = models.ExpDecayExpression(
        exp_decay=models.DecayParamsExpression(
            x=models.DatetimeKeyExpression(datetime_key="created_at"),
            target=models.DatetimeExpression(datetime="2026-01-04T00:00:00Z"),
            scale=86_400,
            midpoint=0.5,
        )
    )
    formula = models.FormulaQuery(formula=models.MultExpression(mult=["$score", decay]))
    query = [1.0, 0.0, 0.0, 0.0]
    prefetch = models.Prefetch(query=query, using=DENSE, limit=4)
    scored = (await client.query_points(collection, prefetch=prefetch, query=formula, limit=4)).points
    cosine = {1: 1.0, 2: 0.99 / math.hypot(0.99, 0.1), 3: 0.0, 4: math.sqrt(0.5)}
    expected = {i: cosine[i] * 0.5 ** (4 - i) for i in vectors}
    assert [p.id for p in scored] == sorted(expected, key=expected.__getitem__, reverse=True)
    assert all(p.score == pytest.approx(expected[p.id], abs=1e-4) for p in scored)
    mmr = models.NearestQuery(nearest=query, mmr=models.Mmr(diversity=0.9, candidates_limit=4))
    diverse = (await client.query_points(collection, query=mmr, using=DENSE, limit=2)).points
    assert [p.id for p in diverse] == [1, 3]  # not 2, the near-copy of 1
    await client.overwrite_payload(collection, payload={"kept": True}, points=[2], wait=True)
    assert (await client.retrieve(collection, [2]))[0].payload == {"kept": True}
    with pytest.raises(UnexpectedResponse) as missing:
        await client.overwrite_payload(collection, payload={"x": 1}, points=[99], wait=True)
    assert missing.value.status_code == 404 and b"No point with id 99" in missing.value.content


async def test_injected_faults_and_the_request_log(backend: RemoteBackend, standin: Standin) -> None:
    """One transient 503 is retried (2 requests); a 400 is not (1 request); an `after` fault applies the write."""
    await backend.list_collections()
    standin.reset_requests()
    standin.inject(503, count=1, method="GET", path="^/collections$")
    await backend.list_collections()
    assert [(r["path"], r["status"], r["fault"]) for r in standin.requests()] == [
        ("/collections", 503, True),
        ("/collections", 200, False),
    ]
    standin.reset_requests()
    standin.inject(400, count=1, path="^/collections$", error="Wrong input: injected")
    with pytest.raises(QdrantRejected, match=r"\(400\): Wrong input: injected"):
        await backend.list_collections()
    assert len(standin.requests()) == 1

    collection = name("lost-answer")
    await backend.create_collection(collection, NewCollection(DenseVector(DENSE, 4)))
    standin.inject(503, count=1, method="PUT", path=f"^/collections/{collection}/points$", after=True)
    standin.reset_requests()
    await backend.upsert(collection, POINTS[3:])  # applied, answer lost, retried: idempotent
    assert [r["status"] for r in standin.requests()] == [503, 200]
    assert await backend.count(collection) == 1
    standin.clear_faults()


def test_collections_persist_across_a_restart_with_storage(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    first = spawn_standin(tmp_path, storage=storage)
    body = {"vectors": {DENSE: {"size": 4, "distance": "Cosine"}}}
    assert httpx.put(f"{first.url}/collections/kept", json=body).status_code == 200
    point = {"id": 1, "vector": {DENSE: [1.0, 0.0, 0.0, 0.0]}, "payload": {"document": "kept"}}
    assert httpx.put(f"{first.url}/collections/kept/points?wait=true", json={"points": [point]}).status_code == 200
    assert first.stop() == 0
    second = spawn_standin(tmp_path, storage=storage)
    try:
        found = httpx.post(f"{second.url}/collections/kept/points", json={"ids": [1]}).json()["result"]
        assert found == [{"id": 1, "payload": {"document": "kept"}}]
    finally:
        second.stop()


def test_keys_from_the_environment_and_the_read_only_key_reads_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Qdrant: the keys from QDRANT__SERVICE__*; the read-only key reads (and scrapes /metrics),
    every write with it is refused with 403."""
    read_only = "standin-read-only-key-0123456789"
    monkeypatch.setenv("QDRANT__SERVICE__API_KEY", API_KEY)
    monkeypatch.setenv("QDRANT__SERVICE__READ_ONLY_API_KEY", read_only)
    process = spawn_standin(tmp_path)
    try:
        full, reads = {"api-key": API_KEY}, {"Authorization": f"Bearer {read_only}"}
        vectors = {"size": 4, "distance": "Cosine"}
        with httpx.Client(base_url=process.url, timeout=10) as http:
            assert http.put("/collections/notes", json={"vectors": vectors}, headers=reads).status_code == 403
            assert http.put("/collections/notes", json={"vectors": vectors}, headers=full).status_code == 200
            point = {"id": 1, "vector": [1.0, 0.0, 0.0, 0.0], "payload": {"document": "one"}}
            upsert = http.put("/collections/notes/points", json={"points": [point]}, headers=reads)
            assert upsert.status_code == 403
            assert http.put("/collections/notes/points", json={"points": [point]}, headers=full).status_code == 200
            assert http.post("/collections/notes/points/count", json={}, headers=reads).json()["result"]["count"] == 1
            query = {"query": [1.0, 0.0, 0.0, 0.0], "limit": 1, "with_payload": True}
            assert http.post("/collections/notes/points/query", json=query, headers=reads).status_code == 200
            assert http.post("/collections/notes/points/delete", json={"points": [1]}, headers=reads).status_code == 403
            assert http.delete("/collections/notes", headers=reads).status_code == 403
            assert http.get("/metrics").status_code == 401
            metrics = http.get("/metrics", headers=reads)
            assert metrics.status_code == 200, metrics.text
            assert "collections_total 1\n" in metrics.text and "collections_vector_total 1\n" in metrics.text
    finally:
        assert process.stop() == 0, process.log()
