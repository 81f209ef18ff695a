"""The query cache (EMBEDDING_QUERY_CACHE): repeated queries skip the real model, and answer the same."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client import Client
from store_engines import LoadedModel
from test_embeddings import recording_scheduler

from bench import promtext
from qdrant_mcp_memory.querycache import QueryCache
from support import ServerProcess, free_port

pytestmark = pytest.mark.anyio
# Embedding calls the server made (its telemetry sits between the cache and the model).
EMBEDDINGS = "qdrant_mcp_embedding_duration_seconds_count"


async def test_a_repeated_query_skips_the_model_and_gets_the_same_vector(model: LoadedModel) -> None:
    async with recording_scheduler(model) as (scheduler, recording):
        cache = QueryCache(scheduler, entries=8)
        first = await cache.embed_query("where are the spare keys")
        again = await cache.embed_query("where are the spare keys")
        other = await cache.embed_query("where are the spare keys?")  # another text: another entry
    assert [texts for _, texts, _ in recording.runs] == [["where are the spare keys"], ["where are the spare keys?"]]
    assert again == first and again is not first
    assert first == model.embed_blocking("query", ["where are the spare keys"])[0]
    assert other != first
    assert (cache.hits, cache.misses) == (1, 2)


async def test_the_least_recently_used_query_makes_room(model: LoadedModel) -> None:
    async with recording_scheduler(model) as (scheduler, recording):
        cache = QueryCache(scheduler, entries=2)
        for query in ("one", "two", "one", "three", "one", "two"):
            await cache.embed_query(query)
    # "one" was used again before "three" came, so "two" made room and had to be embedded anew.
    assert [texts[0] for _, texts, _ in recording.runs] == ["one", "two", "three", "two"]


async def test_documents_pass_through_and_never_fill_the_cache(model: LoadedModel) -> None:
    async with recording_scheduler(model) as (scheduler, recording):
        cache = QueryCache(scheduler, entries=8)
        await cache.embed_documents(["a note about bread"])
        await cache.embed_documents(["a note about bread"])
        await cache.embed_query("a note about bread")
    assert [kind for kind, _, _ in recording.runs] == ["document", "document", "query"]


async def finds_and_embeddings(start_server: Any, cache: str, queries: list[str]) -> tuple[list[Any], float]:
    """Store two memories, run the finds through the SDK's client; their results and how many
    query embeddings the server computed for them (from its Prometheus metrics)."""
    metrics_port = free_port()
    server: ServerProcess = start_server(
        {
            "EMBEDDING_QUERY_CACHE": cache,
            "OTEL_SDK_DISABLED": "false",
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
        }
    )
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    async with Client(server.mcp_url) as client:
        for text in ("The spare keys hang behind the kitchen door.", "Bread rises overnight in the fridge."):
            await client.call_tool("qdrant-store", {"information": text, "collection_name": "cache"})
        before = promtext.total(promtext.scrape(metrics), EMBEDDINGS)
        results = []
        for query in queries:
            result = await client.call_tool("qdrant-find", {"query": query, "collection_name": "cache"})
            assert not result.is_error, result.content
            results.append(result.structured_content)
        after = promtext.total(promtext.scrape(metrics), EMBEDDINGS)
    return results, after - before


async def test_the_server_embeds_a_repeated_query_once(start_server: Any) -> None:
    queries = ["where are my keys", "where are my keys", "how do I keep bread", "where are my keys"]
    cached, computed = await finds_and_embeddings(start_server, "1024", queries)
    uncached, computed_without = await finds_and_embeddings(start_server, "0", queries)
    assert (computed, computed_without) == (2, 4)
    # The same hits with the same scores (each server stored the notes itself: their times differ).
    assert [ranking(result) for result in cached] == [ranking(result) for result in uncached]
    assert cached[0] == cached[1] == cached[3]
    assert cached[0]["hits"][0]["document"] == "The spare keys hang behind the kitchen door."


def ranking(result: dict[str, Any]) -> list[tuple[str, str, float]]:
    return [(hit["id"], hit["document"], hit["score"]) for hit in result["hits"]]
