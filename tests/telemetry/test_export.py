"""Telemetry over the wire (OTLP/HTTP to a receiver on loopback) and telemetry off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp.client import Client
from otlp import Receiver, attributes

from qdrant_mcp_memory.telemetry.instruments import MAX_COLLECTION_VALUES
from support import spawn_server

pytestmark = pytest.mark.anyio


def export_soon(receiver: Receiver) -> dict[str, str]:
    """OTLP/HTTP to `receiver`, metrics every 500 ms, spans and log records batched for 100 ms."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
    }


async def test_spans_metrics_and_logs_arrive_over_otlp_http(receiver: Receiver, tmp_path: Path) -> None:
    server = spawn_server(
        tmp_path,
        {
            **export_soon(receiver),
            "OTEL_SERVICE_NAME": "qdrant-mcp-test",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=ci",
        },
    )
    try:
        async with Client(server.mcp_url, mode="legacy") as client:  # a 2025-11-25 session: mcp.session.id
            await client.call_tool("qdrant-store", {"information": "exported over OTLP", "collection_name": "otlp"})
            await client.call_tool("qdrant-find", {"query": "export", "collection_name": "otlp"})
    finally:
        assert server.terminate() == 0  # shutdown flushes what is buffered
    spans = receiver.spans()
    resource = attributes(receiver.received["/v1/traces"][0].resource_spans[0].resource.attributes)
    assert resource["service.name"] == "qdrant-mcp-test" and resource["deployment.environment.name"] == "ci"
    assert resource["service.version"] and resource["service.instance.id"]
    names = {span.name for span in spans}
    assert {
        "tools/call qdrant-find",
        "query_points otlp",
        "upsert otlp",
        "embeddings sentence-transformers/all-MiniLM-L6-v2",
    } <= names
    find = next(s for s in spans if s.name == "tools/call qdrant-find")
    assert attributes(find.attributes)["client.address"] == "127.0.0.1"
    assert "mcp.session.id" in attributes(find.attributes)
    query = next(s for s in spans if s.name == "query_points otlp")
    assert query.parent_span_id == find.span_id and query.trace_id == find.trace_id

    metric_names = {metric.name for metric in receiver.metrics()}
    assert {
        "mcp.server.operation.duration",
        "qdrant_mcp.embedding.duration",
        "qdrant_mcp.embedding.batch_size",
        "db.client.operation.duration",
        "qdrant_mcp.points.stored",
        "qdrant_mcp.hits.returned",
        "process.memory.usage",
        "process.cpu.time",
    } <= metric_names

    records = receiver.log_records()
    calls = [r for r in records if r.body.string_value == "tool call"]
    assert calls and all(len(r.trace_id) == 16 and len(r.span_id) == 8 for r in calls)
    assert {attributes(r.attributes)["tool"] for r in calls} == {"qdrant-store", "qdrant-find"}
    assert find.trace_id in {r.trace_id for r in calls}
    # and the stdout JSON log line of the same call names the same trace
    stdout_calls = [json.loads(line) for line in server.log().splitlines() if '"tool call"' in line]
    assert find.trace_id.hex() in {line.get("trace_id") for line in stdout_calls}


async def test_collection_names_past_the_bound_are_exported_as_other(receiver: Receiver, tmp_path: Path) -> None:
    """More collections than MAX_COLLECTION_VALUES, each made by a store: the exported metrics name the first
    ones seen, at most that many, and the rest are `_OTHER` (clients cannot make unbounded time series)."""
    server = spawn_server(
        tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "60000"}
    )
    try:
        async with Client(server.mcp_url) as client:
            for i in range(MAX_COLLECTION_VALUES + 5):
                note = {"information": "one note", "collection_name": f"many-{i}"}
                assert not (await client.call_tool("qdrant-store", note)).is_error
    finally:
        # Shutdown exports the metrics; it flushes and closes every collection first (slow on a busy machine).
        assert server.terminate(timeout=120) == 0
    for name in ("db.client.operation.duration", "qdrant_mcp.points.stored"):
        collections = {
            attributes(point.attributes).get("db.collection.name")
            for metric in receiver.metrics()
            if metric.name == name
            for point in getattr(metric, metric.WhichOneof("data")).data_points
        } - {None}  # an operation on no collection (a ping) names none
        assert len(collections - {"_OTHER"}) == MAX_COLLECTION_VALUES and "_OTHER" in collections, (name, collections)
        assert "many-0" in collections and f"many-{MAX_COLLECTION_VALUES}" not in collections, name


def test_telemetry_off_starts_nothing_and_prints_nothing(tmp_path: Path) -> None:
    """No OTEL_* endpoint or exporter: no providers, no threads, no output."""
    script = """
import threading
from qdrant_mcp_memory.settings import Settings
from qdrant_mcp_memory.telemetry import setup_telemetry
from opentelemetry import trace, metrics
before = set(threading.enumerate())
telemetry = setup_telemetry(Settings())
assert not telemetry.enabled
assert set(threading.enumerate()) == before, threading.enumerate()
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
assert type(metrics.get_meter_provider()).__name__.startswith("_Proxy")
telemetry.shutdown()
"""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


async def test_sdk_disabled_wins(receiver: Receiver, tmp_path: Path) -> None:
    """OTEL_SDK_DISABLED=true beats an exporter pointed at a live receiver: a call's spans, metrics and logs
    never arrive."""
    server = spawn_server(tmp_path, {"OTEL_SDK_DISABLED": "true", **export_soon(receiver)})
    try:
        async with Client(server.mcp_url) as client:
            await client.call_tool("qdrant-store", {"information": "never exported", "collection_name": "off"})
        # With the SDK on, these settings export within a second of a call (the test above sees it so);
        # three give any export time to arrive, and the shutdown would flush whatever is still buffered.
        await anyio.sleep(3)
    finally:
        assert server.terminate() == 0
    assert receiver.received == {path: [] for path in receiver.received}
    assert "Traceback" not in server.log()
