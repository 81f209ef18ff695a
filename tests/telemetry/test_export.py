"""Telemetry over the wire (OTLP/HTTP to a receiver on loopback) and telemetry off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp.client import Client
from otlp import Receiver, attributes

from support import ServerProcess, spawn_server

pytestmark = pytest.mark.anyio


async def test_spans_metrics_and_logs_arrive_over_otlp_http(receiver: Receiver, tmp_path: Path) -> None:
    server = spawn_server(
        tmp_path,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "qdrant-mcp-test",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=ci",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
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


def test_sdk_disabled_wins(tmp_path: Path) -> None:
    server: ServerProcess = spawn_server(
        tmp_path, {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    )
    time.sleep(1)
    assert server.terminate() == 0
    assert "Exception" not in server.log() and "retry" not in server.log().lower()
