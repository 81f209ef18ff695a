"""EMBEDDING_PROVIDER=openai against a real OpenAI-compatible server (Infinity, all-MiniLM-L6-v2).

What users do, with real parts: our server as a subprocess, the MCP SDK client over HTTP,
Infinity on loopback. A service that is down is a TCP proxy cut in front of it
(tests/reliability/tcp_proxy.py); slow answers, 429 and 503 come from a front that forwards to
the real server otherwise (faulty_front.py): Infinity cannot be made to fail those ways. The
401 is Infinity's own, for a wrong key.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from faulty_front import FaultyFront
from mcp.client import Client
from mcp.types import CallToolResult
from otlp import Receiver
from provider_support import API_KEY, Start, provider_env
from reliability.tcp_proxy import TcpProxy

from bench.embedding_server import MODEL
from qdrant_mcp_memory.embeddings import MAX_TOKENS
from qdrant_mcp_memory.embeddings.fastembed import FastEmbedModel
from qdrant_mcp_memory.embeddings.openai import OpenAIEmbeddings, ServiceConfig
from qdrant_mcp_memory.scheduler import EmbeddingScheduler, RunBounds
from support import REPO, ServerProcess

pytestmark = pytest.mark.anyio
GOLDEN = REPO / "tests" / "data" / "minilm_golden.json"
VECTOR = "fast-all-minilm-l6-v2"
NOTES = [
    "The spare house key is under the blue flower pot by the back door.",
    "My bicycle is locked in the basement storage room, number 14.",
    "Grandma's apple pie needs three tablespoons of cinnamon.",
]
# A background probe notices a service that came back within its longest pause (10 s); margin for a busy machine.
RECOVERY_WITHIN_S = 30.0


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def failure(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return str(result.content[0].text)


def folder_env(folder: Path) -> dict[str, str | None]:
    """A persistent embedded Qdrant folder instead of spawn_server's in-memory default."""
    return {"QDRANT_LOCAL_PATH": str(folder), "QDRANT_URL": None}


async def store_notes(client: Client, collection: str = "notes") -> list[str | int]:
    entries = [{"information": note} for note in NOTES]
    stored = ok(await client.call_tool("qdrant-store-many", {"entries": entries, "collection_name": collection}))
    return list(stored["ids"])


async def top_hit(client: Client, query: str, collection: str = "notes") -> dict[str, Any]:
    found = ok(await client.call_tool("qdrant-find", {"query": query, "collection_name": collection}))
    assert found["hits"], found
    return dict(found["hits"][0])


def conditions(server: ServerProcess) -> list[dict[str, Any]]:
    details = server.ready_details()
    assert details["status"] == "ready", details
    return list(details.get("conditions", []))


async def test_the_service_vectors_match_fastembed(infinity_url: str, offline_model: Path) -> None:
    """Same model, same vectors: a collection can move between the two providers."""
    golden = json.loads(GOLDEN.read_text())
    fastembed = FastEmbedModel(MODEL, offline_model)
    fastembed.load_blocking()
    local = fastembed.embed_blocking("document", golden["texts"])
    service = OpenAIEmbeddings(ServiceConfig(url=infinity_url, model=MODEL, api_key=API_KEY))
    async with service.running():
        assert await service.load() == 384
        documents = await service.embed("document", golden["texts"])
        queries = await service.embed("query", golden["texts"])
    for remote, query, mine, reference in zip(documents, queries, local, golden["vectors"], strict=True):
        assert cosine(remote, mine) >= 0.999
        assert cosine(remote, reference) >= 0.999
        assert cosine(query, mine) >= 0.999


async def test_queries_keep_their_own_request_while_documents_go_in_bounded_batches(front: FaultyFront) -> None:
    """The scheduler's lanes with the service: a store-many goes in requests of EMBEDDING_BATCH_SIZE
    texts, one document request at a time here, and a find meanwhile has a request of its own."""
    service = OpenAIEmbeddings(ServiceConfig(url=front.url, model=MODEL, api_key=API_KEY))
    scheduler = EmbeddingScheduler(service, document_workers=1, bounds=RunBounds(texts=8, tokens=8 * MAX_TOKENS))
    finished: dict[str, float] = {}
    async with scheduler.running():
        front.delay_s = 1.0  # every request answered late: the documents' three go one after another

        async def store() -> None:
            await scheduler.embed_documents([f"note number {i}" for i in range(20)])
            finished["documents"] = time.monotonic()

        async def find() -> None:
            await anyio.sleep(0.2)  # the first document request is in flight
            await scheduler.embed_query("where is my bike?")
            finished["query"] = time.monotonic()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(store)
            tasks.start_soon(find)
    assert sorted(front.batches[1:]) == [1, 4, 8, 8]  # after the start's probe: the query, and 20 texts by 8
    assert finished["query"] < finished["documents"]


async def test_store_and_find_through_the_service(start: Start, infinity_url: str) -> None:
    server = start(provider_env(infinity_url))
    details = server.ready_details()
    assert details["embeddings"] == f"OpenAI-compatible service at {infinity_url}"
    assert details["model"] == MODEL and "conditions" not in details
    async with Client(server.mcp_url) as client:
        await store_notes(client)
        assert (await top_hit(client, "where is my bike?"))["document"] == NOTES[1]
        assert (await top_hit(client, "baking dessert spices"))["document"] == NOTES[2]
        info = ok(await client.call_tool("qdrant-collection-info", {"collection_name": "notes"}))
    assert info["searchable"] is True and info["points_count"] == 3
    assert info["expected_vector"] == {"name": VECTOR, "size": 384, "distance": "Cosine"}


async def test_a_collection_moves_between_fastembed_and_the_service(
    start: Start, infinity_url: str, tmp_path: Path
) -> None:
    folder = folder_env(tmp_path / "data")
    local = start(folder)
    async with Client(local.mcp_url) as client:
        await store_notes(client)
        before = await top_hit(client, "where is my bike?")
    assert local.terminate() == 0
    remote = start({**provider_env(infinity_url), **folder})
    async with Client(remote.mcp_url) as client:
        after = await top_hit(client, "where is my bike?")
        ok(
            await client.call_tool(
                "qdrant-store", {"information": "The car is parked on level 3.", "collection_name": "notes"}
            )
        )
    assert after["id"] == before["id"] and abs(after["score"] - before["score"]) < 0.001
    assert remote.terminate() == 0
    again = start(folder)
    async with Client(again.mcp_url) as client:
        assert (await top_hit(client, "where did I leave the car"))["document"] == "The car is parked on level 3."


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"EMBEDDING_DIMENSIONS": "128"}, f"has vector '{VECTOR}' of size 384, but model .* makes vectors of size 128"),
        ({"EMBEDDING_MODEL": "all-minilm"}, f"has no vector named 'fast-all-minilm' .*it has: {VECTOR} \\(size 384\\)"),
    ],
    ids=["other-size", "other-model-name"],
)
async def test_a_provider_change_is_refused_before_any_embedding(
    start: Start, front: FaultyFront, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    """A collection written with one model, then a server whose model makes other vectors (Infinity
    shortens them for `dimensions`; a service naming its model otherwise gives another vector name):
    store and find are refused before the service is asked for anything."""
    folder = folder_env(tmp_path / "data")
    first = start({**provider_env(front.url), **folder})
    async with Client(first.mcp_url) as client:
        await store_notes(client)
    assert first.terminate() == 0
    changed = start({**provider_env(front.url), **folder, **change})
    asked = len(front.arrivals)  # the start's probe included
    async with Client(changed.mcp_url) as client:
        many = [{"information": f"note {i}"} for i in range(100)]
        refused = failure(await client.call_tool("qdrant-store-many", {"entries": many, "collection_name": "notes"}))
        assert re.search(message, refused), refused
        failure(await client.call_tool("qdrant-find", {"query": "bike", "collection_name": "notes"}))
    assert len(front.arrivals) == asked


async def test_a_service_that_is_down_leaves_the_rest_working_and_is_used_again_when_back(
    start: Start, infinity: ServerProcess, tmp_path: Path
) -> None:
    folder = folder_env(tmp_path / "data")
    with TcpProxy(infinity.port) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/v1"
        server = start({**provider_env(url), **folder})
        async with Client(server.mcp_url) as client:
            ids = await store_notes(client)
            proxy.cut()
            down = f"embedding service at {url} is unreachable (connection refused)"
            assert down in failure(await client.call_tool("qdrant-find", {"query": "bike", "collection_name": "notes"}))
            assert down in failure(
                await client.call_tool("qdrant-store", {"information": "x", "collection_name": "notes"})
            )
            # What needs no embedding is served meanwhile.
            assert ok(await client.call_tool("qdrant-list-collections", {}))["collections"] == ["notes"]
            assert ok(await client.call_tool("qdrant-collection-info", {"collection_name": "notes"}))["searchable"]
            deleted = ok(await client.call_tool("qdrant-delete", {"ids": [ids[0]], "collection_name": "notes"}))
            assert deleted["deleted"] == 1
            [condition] = conditions(server)
            assert condition["kind"] == "embeddings-unavailable" and down in condition["detail"]
            proxy.restore()
            assert (await top_hit(client, "where is my bike?"))["document"] == NOTES[1]
            assert conditions(server) == []
        assert server.terminate() == 0

        # Down at start: the server comes up all the same, says why, and picks the service up when it is back.
        proxy.cut()
        server = start({**provider_env(url), **folder})
        assert down in conditions(server)[0]["detail"]
        async with Client(server.mcp_url) as client:
            info = ok(await client.call_tool("qdrant-collection-info", {"collection_name": "notes"}))
            assert info["searchable"] is None and down in info["unknown"] and info["points_count"] == 2
            assert down in failure(await client.call_tool("qdrant-find", {"query": "bike", "collection_name": "notes"}))
            assert ok(await client.call_tool("qdrant-list-collections", {}))["collections"] == ["notes"]
            proxy.restore()
            deadline = time.monotonic() + RECOVERY_WITHIN_S
            while conditions(server) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert conditions(server) == [], "the background probe did not notice the service's return"
            assert (await top_hit(client, "where is my bike?"))["document"] == NOTES[1]


async def test_a_slow_service_times_out_and_the_server_keeps_serving(start: Start, front: FaultyFront) -> None:
    server = start(provider_env(front.url, EMBEDDING_TIMEOUT="2"))
    async with Client(server.mcp_url) as client:
        await store_notes(client)
        front.delay_s = 5
        late = failure(await client.call_tool("qdrant-find", {"query": "bike", "collection_name": "notes"}))
        assert f"embedding service at {front.url} timed out (no answer within 2 s)" in late
        assert ok(await client.call_tool("qdrant-list-collections", {}))["collections"] == ["notes"]
        front.delay_s = 0
        assert (await top_hit(client, "where is my bike?"))["document"] == NOTES[1]


async def test_a_wrong_key_gets_the_services_401_named(start: Start, infinity_url: str) -> None:
    wrong = f"wrong-key-{uuid.uuid4().hex}"
    server = start(provider_env(infinity_url, api_key=wrong))
    refused = f"embedding service at {infinity_url} answered 401 Unauthorized: check EMBEDDING_API_KEY"
    assert refused in conditions(server)[0]["detail"]
    async with Client(server.mcp_url) as client:
        assert refused in failure(await client.call_tool("qdrant-find", {"query": "bike", "collection_name": "notes"}))
        assert ok(await client.call_tool("qdrant-list-collections", {}))["collections"] == []
    assert server.terminate() == 0
    assert wrong not in server.log()


async def test_429_and_503_are_retried_as_the_service_asks(start: Start, front: FaultyFront) -> None:
    server = start(provider_env(front.url, EMBEDDING_RETRIES="2"))
    async with Client(server.mcp_url) as client:
        for status, retry_after, pause in [(429, "1", 1.0), (503, None, 0.5)]:
            asked = len(front.arrivals)
            front.answer(status, times=2, retry_after=retry_after)
            ok(await client.call_tool("qdrant-store", {"information": f"after {status}", "collection_name": "notes"}))
            attempts = front.arrivals[asked:]
            assert len(attempts) == 3, attempts
            # Retry-After honoured; without one, a pause of at least 0.5 s that grows.
            gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
            assert gaps[0] >= pause * 0.95 and gaps[1] >= gaps[0] * 0.95, gaps
        front.answer(429, times=5, retry_after="1")
        limited = failure(await client.call_tool("qdrant-find", {"query": "after", "collection_name": "notes"}))
        assert (
            f"embedding service at {front.url} answered 429 Too Many Requests (3 attempts); it asks to wait 1 s"
            in limited
        )
        front.scripted.clear()
        assert (await top_hit(client, "after 503"))["document"] == "after 503"


async def test_the_key_appears_in_no_log_span_or_answer(
    start: Start, front: FaultyFront, infinity_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    wrong = f"planted-wrong-key-{uuid.uuid4().hex}"
    telemetry = {
        "LOG_LEVEL": "DEBUG",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }
    (tmp_path / "key").write_text(API_KEY + "\n")
    good = start(
        {**provider_env(front.url, api_key=None), "EMBEDDING_API_KEY_FILE": str(tmp_path / "key"), **telemetry}
    )
    bad = start({**provider_env(infinity_url, api_key=wrong), **telemetry})
    answers = []
    async with Client(good.mcp_url) as client:
        await store_notes(client)
        front.answer(429, times=1, retry_after="0")
        await top_hit(client, "where is my bike?")
        front.answer(401)
        answers.append(failure(await client.call_tool("qdrant-find", {"query": "bike", "collection_name": "notes"})))
    async with Client(bad.mcp_url) as client:
        answers.append(failure(await client.call_tool("qdrant-find", {"query": "bike", "collection_name": "notes"})))
    ready = [httpx.get(server.base + "/readyz").text for server in (good, bad)]
    assert good.terminate() == 0 and bad.terminate() == 0
    spans = receiver.spans()
    requests = [span for span in spans if span.name == f"embeddings {MODEL}" and span.kind == 3]  # CLIENT
    assert requests, "the embedding requests were exported as CLIENT spans (the check below is not vacuous)"
    places = {
        "logs": good.log() + bad.log(),
        "tool errors": "\n".join(answers),
        "/readyz": "\n".join(ready),
        "telemetry": "\n".join(str(message) for messages in receiver.received.values() for message in messages),
    }
    assert "answered 401" in places["tool errors"] and "retried" in places["logs"]
    for where, text in places.items():
        assert API_KEY not in text, f"the key leaked into the {where}"
        assert wrong not in text, f"the wrong key leaked into the {where}"
