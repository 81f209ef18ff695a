"""Shared fixtures for the observability suite (tests/observability/).

Static checks (collector/Prometheus/Tempo/Loki/Grafana files, dashboards against compose.yaml)
need nothing but the repo. The live checks need:

* Prometheus 3 (`prometheus`, `promtool` on PATH): `eval "$(scripts/prometheus)"` (Debian
  testing's packages, unpacked into the cache folder).
* The offline embedding model: `FASTEMBED_CACHE_PATH` pointing at a fastembed cache
  (CI builds it before pytest; see the README). The root conftest's `offline_model` checks it.

The live fixture starts the real MCP server (streamable HTTP, in-memory Qdrant, metrics on
the OTel Prometheus exporter), makes real tool calls with the MCP SDK client and has a real
Prometheus scrape it every second, so dashboard queries run against real data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
import time
from pathlib import Path

import pytest
from otlp import Receiver

from support import compose_layers, free_port, spawn_server, wait_for

# Make obs_support importable whatever pytest's import mode is.
sys.path.insert(0, str(Path(__file__).parent))

from obs_support import (
    SCRAPE_INTERVAL_S,
    SERVICE_NAME,
    Prometheus,
    compose_default,
    finite_values,
    http_get,
    require_binary,
    start_prometheus,
    stop,
    traffic,
    wait_until,
)


@pytest.fixture(scope="session")
def compose() -> dict:
    return compose_layers()


@pytest.fixture(scope="session")
def prometheus_only(tmp_path_factory) -> Prometheus:
    """A Prometheus with nothing to scrape: used to check that expressions parse."""
    tmp = tmp_path_factory.mktemp("prom-parse")
    proc, prom, _ = start_prometheus(tmp, {"self": "127.0.0.1:9"})
    yield prom
    stop(proc)


# ----------------------------------------------------------------------------- live server


@dataclasses.dataclass
class LiveStack:
    prom: Prometheus
    server_url: str
    metrics_url: str
    server_log: Path


@pytest.fixture(scope="session")
def live(tmp_path_factory) -> LiveStack:
    require_binary("prometheus")

    tmp = tmp_path_factory.mktemp("live")
    exporter_port = free_port()
    env = {
        "OTEL_SERVICE_NAME": SERVICE_NAME,
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(exporter_port),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SDK_DISABLED": "false",
        "QDRANT_PURGE_INTERVAL": "1",  # the traffic's short-lived memories expire within the waits
    }
    for key in (
        "QDRANT_API_KEY",
        "QDRANT_API_KEY_FILE",
        "QDRANT_LOCAL_PATH",
        "COLLECTION_NAME",
        "MCP_AUTH_TOKEN",
        "MCP_AUTH_TOKEN_FILE",
        "OTEL_CONFIG_FILE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ):
        env[key] = None
    server = spawn_server(tmp, env, wait=None)
    prom_proc = None
    try:
        wait_for(server, "/readyz", timeout=90)
        metrics_url = f"http://127.0.0.1:{exporter_port}/metrics"
        wait_until(
            lambda: http_get(metrics_url)[0] == 200,
            20,
            f"OTel Prometheus exporter at {metrics_url}",
            server.process,
            server.log_path,
        )

        # Job name = service.name, as the OTLP path into Prometheus 3 produces it.
        prom_dir = tmp / "prom"
        prom_dir.mkdir()
        prom_proc, prom, prom_log = start_prometheus(prom_dir, {SERVICE_NAME: f"127.0.0.1:{exporter_port}"})
        wait_until(
            lambda: finite_values(prom.series(f'up{{job="{SERVICE_NAME}"}} == 1')),
            20,
            "Prometheus scraping the server",
            prom_proc,
            prom_log,
        )

        # Two waves of traffic a few scrapes apart, so every counter *increases* between
        # scrapes and rate()/histogram_quantile() have real values (a series' first sample
        # does not count as an increase).
        expired = 'sum(qdrant_mcp_memories_expired_total{db_collection_name="obs-test"})'
        for wave in (1, 2):
            asyncio.run(traffic(server.mcp_url, wave))
            # Each wave's short-lived memory is purged (a second or two later) and scraped before the next.
            wait_until(lambda w=wave: (finite_values(prom.series(expired)) or [0])[0] >= w, 30, f"wave {wave} expiry")
            time.sleep(3 * SCRAPE_INTERVAL_S + 0.5)
        yield LiveStack(prom=prom, server_url=server.base, metrics_url=metrics_url, server_log=server.log_path)
    finally:
        stop(prom_proc)
        code = server.terminate()
    assert code == 0, f"server exit code {code} on SIGTERM:\n{server.log()}"


# ----------------------------------------------------------------------------- the OTLP path


@dataclasses.dataclass
class OtlpExport:
    metrics: list  # ExportMetricsServiceRequest, in arrival order
    traces: list  # ExportTraceServiceRequest


@pytest.fixture(scope="session")
def otlp_export(tmp_path_factory, compose) -> OtlpExport:
    """What the real server sends over OTLP/HTTP, which the collector forwards unchanged to
    Prometheus 3 and Tempo: compose's service name and resource attributes, one wave of traffic."""
    server_env = compose["services"]["mcp-server"]["environment"]
    receiver = Receiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    tmp = tmp_path_factory.mktemp("otlp")
    env = {
        "OTEL_SERVICE_NAME": compose_default(server_env["OTEL_SERVICE_NAME"]),
        "OTEL_RESOURCE_ATTRIBUTES": compose_default(server_env["OTEL_RESOURCE_ATTRIBUTES"]),
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "QDRANT_PURGE_INTERVAL": "1",  # the traffic's short-lived memory expires: every counter is exported
    }
    for key in (
        "QDRANT_API_KEY",
        "QDRANT_API_KEY_FILE",
        "COLLECTION_NAME",
        "MCP_AUTH_TOKEN",
        "MCP_AUTH_TOKEN_FILE",
        "OTEL_CONFIG_FILE",
        "OTEL_SDK_DISABLED",
    ):
        env[key] = None
    server = spawn_server(tmp, env, wait=None)
    try:
        wait_for(server, "/readyz", timeout=90)
        asyncio.run(traffic(server.mcp_url, 1))
        expired = "qdrant_mcp.memories.expired"
        wait_until(lambda: expired in {m.name for m in receiver.metrics()}, 30, f"{expired} over OTLP", server.process)
    finally:
        stop(server.process)  # SIGTERM: the server flushes its telemetry on shutdown
        receiver.shutdown()
        receiver.server_close()
    export = OtlpExport(receiver.received["/v1/metrics"], receiver.received["/v1/traces"])
    assert export.metrics and export.traces, "no OTLP metrics or traces received"
    return export
