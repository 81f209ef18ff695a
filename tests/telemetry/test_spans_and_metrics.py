"""Telemetry in-process: a real tool call with in-memory span exporter and metric reader."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp.client import Client
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from qdrant_mcp_memory.app import Application
from qdrant_mcp_memory.settings import Settings
from qdrant_mcp_memory.telemetry import Telemetry
from qdrant_mcp_memory.telemetry.providers import Providers

pytestmark = pytest.mark.anyio
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def otel() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[reader])
    # Global providers can be set once per process; this module owns them.
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return spans, reader


@pytest.fixture(scope="module")
async def client(otel: tuple[InMemorySpanExporter, InMemoryMetricReader]) -> AsyncIterator[Client]:
    """The composed application with telemetry on, driven through the SDK's in-memory transport."""
    # Expired memories are purged every second, so a test can see the expired counter move.
    settings = Settings(QDRANT_URL=":memory:", QDRANT_PURGE_INTERVAL=1)
    telemetry = Telemetry(
        Providers(tracer_provider=trace.get_tracer_provider(), meter_provider=metrics.get_meter_provider())
    )
    application = Application(settings, telemetry)
    async with application.running(), Client(application.mcp) as connected:
        yield connected


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    matches = [span for span in spans if span.name == name]
    assert matches, f"no span {name!r} in {[s.name for s in spans]}"
    return matches[-1]


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def test_a_find_is_a_server_span_with_embedding_and_qdrant_children(
    client: Client, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    spans_exporter, _ = otel
    await client.call_tool(
        "qdrant-store", {"information": "telemetry is wrapped from outside", "collection_name": "tel"}
    )
    spans_exporter.clear()
    meta: Any = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"}
    result = await client.call_tool(
        "qdrant-find", {"query": "how is telemetry added", "collection_name": "tel"}, meta=meta
    )
    assert not result.is_error
    spans = spans_exporter.get_finished_spans()
    server = by_name(spans, "tools/call qdrant-find")
    assert server.kind is SpanKind.SERVER
    # The client's traceparent in params._meta continues its trace.
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_SPAN_ID
    attributes = dict(server.attributes or {})
    assert attributes["mcp.method.name"] == "tools/call" and attributes["gen_ai.tool.name"] == "qdrant-find"
    assert attributes["gen_ai.operation.name"] == "execute_tool" and attributes["network.transport"] == "pipe"
    kids = {span.name: span for span in children(spans, server)}
    embed = kids["embeddings sentence-transformers/all-MiniLM-L6-v2"]
    assert embed.attributes["gen_ai.request.model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert embed.attributes["qdrant_mcp.embedding.texts"] == 1
    query = kids["query_points tel"]
    assert query.kind is SpanKind.CLIENT
    assert dict(query.attributes or {}) == {
        "db.system.name": "qdrant",
        "db.operation.name": "query_points",
        "db.collection.name": "tel",
        "db.response.returned_rows": 1,
    }
    assert embed.end_time <= query.start_time


async def test_errors_are_recorded(client: Client, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]) -> None:
    spans_exporter, _ = otel
    spans_exporter.clear()
    result = await client.call_tool("qdrant-delete", {"collection_name": "nope", "ids": [1]})
    assert result.is_error
    spans = spans_exporter.get_finished_spans()
    server = by_name(spans, "tools/call qdrant-delete")
    assert server.attributes["error.type"] == "tool_error"
    assert server.status.status_code.name == "ERROR"


def points(reader: InMemoryMetricReader) -> dict[str, tuple[str, list[Any]]]:
    data = reader.get_metrics_data()
    found: dict[str, tuple[str, list[Any]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = (metric.unit, list(metric.data.data_points))
    return found


async def test_metrics_have_semconv_names_units_and_attributes(
    client: Client, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    _, reader = otel
    await client.call_tool(
        "qdrant-store-many",
        {
            "collection_name": "met",
            "entries": [{"information": "one"}, {"information": "two"}, {"information": "three"}],
        },
    )
    await client.call_tool("qdrant-find", {"query": "number", "collection_name": "met", "limit": 2})
    await client.call_tool("qdrant-find", {"query": "", "collection_name": "met"})
    found = points(reader)
    unit, operation = found["mcp.server.operation.duration"]
    assert unit == "s"
    calls = {(p.attributes.get("gen_ai.tool.name"), p.attributes.get("error.type")) for p in operation}
    assert ("qdrant-find", None) in calls and ("qdrant-find", "tool_error") in calls
    assert all(p.attributes["mcp.method.name"] for p in operation)
    assert found["qdrant_mcp.embedding.duration"][0] == "s"
    batch_unit, batches = found["qdrant_mcp.embedding.batch_size"]
    assert batch_unit == "{text}" and max(p.max for p in batches) >= 3
    db_unit, db = found["db.client.operation.duration"]
    assert db_unit == "s"
    assert {"db.system.name": "qdrant", "db.operation.name": "query_points", "db.collection.name": "met"} in [
        dict(p.attributes) for p in db
    ]
    stored = {p.attributes["db.collection.name"]: p.value for p in found["qdrant_mcp.points.stored"][1]}
    assert stored["met"] == 3
    hits = {p.attributes["db.collection.name"]: p.value for p in found["qdrant_mcp.hits.returned"][1]}
    assert hits["met"] == 2
    assert found["process.memory.usage"][0] == "By" and found["process.memory.usage"][1][0].value > 10_000_000
    assert {p.attributes["cpu.mode"] for p in found["process.cpu.time"][1]} == {"user", "system"}
    queue, capacity = found["qdrant_mcp.embedding.queue.size"], found["qdrant_mcp.embedding.queue.capacity"]
    assert queue[0] == capacity[0] == "{text}" and queue[1][0].value == 0 and capacity[1][0].value > 1000


async def test_the_lifecycle_tools_are_traced_and_counted(
    client: Client, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    spans_exporter, reader = otel
    stored = await client.call_tool("qdrant-store", {"information": "lifecycle telemetry", "collection_name": "life"})
    point = stored.structured_content["id"]
    await client.call_tool("qdrant-store", {"information": "lifecycle telemetry", "collection_name": "life"})
    spans_exporter.clear()
    for tool, arguments in (
        ("qdrant-update", {"id": point, "metadata_patch": {"seen": True}}),
        ("qdrant-get", {"ids": [point]}),
        ("qdrant-list", {"limit": 5}),
    ):
        result = await client.call_tool(tool, {**arguments, "collection_name": "life"})
        assert not result.is_error, result.content
    spans = spans_exporter.get_finished_spans()
    update = by_name(spans, "tools/call qdrant-update")
    assert {s.name for s in children(spans, update)} >= {"retrieve life", "overwrite_payload life"}
    assert "scroll life" in {s.name for s in children(spans, by_name(spans, "tools/call qdrant-list"))}
    assert by_name(spans, "tools/call qdrant-get").kind is SpanKind.SERVER

    def counted(name: str) -> int:
        return sum(
            p.value for p in points(reader).get(name, ("", []))[1] if p.attributes["db.collection.name"] == "life"
        )

    assert counted("qdrant_mcp.memories.created") == 1
    assert counted("qdrant_mcp.memories.updated") == 2  # stored again, then updated
    with anyio.fail_after(10):  # the purge runs every second here
        await client.call_tool("qdrant-store", {"information": "gone soon", "collection_name": "life", "ttl": "1s"})
        while counted("qdrant_mcp.memories.expired") < 1:
            await anyio.sleep(0.2)
    assert counted("qdrant_mcp.memories.created") == 2


async def test_client_chosen_names_do_not_become_unbounded_attribute_values(
    client: Client, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    _, reader = otel
    for i in range(3):
        await client.call_tool(f"no-such-tool-{i}\nforged log line", {})
        await client.call_tool("qdrant-find", {"query": "q", "collection_name": f"never-created-{i}"})
    found = points(reader)
    tools = {p.attributes.get("gen_ai.tool.name") for p in found["mcp.server.operation.duration"][1]}
    assert "_OTHER" in tools and not any(str(t).startswith("no-such-tool") for t in tools)
    collections = {p.attributes.get("db.collection.name") for p in found["db.client.operation.duration"][1]}
    assert not any(str(c).startswith("never-created") for c in collections)
