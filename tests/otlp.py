"""An OTLP/HTTP receiver on loopback that decodes and keeps what the server exports."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

DECODERS = {
    "/v1/traces": ExportTraceServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
}


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP endpoint that decodes and keeps every export request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: dict[str, list[Any]] = {path: [] for path in DECODERS}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[Any]:
        return [
            span
            for request in self.received["/v1/traces"]
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def metrics(self) -> list[Any]:
        return [
            metric
            for request in self.received["/v1/metrics"]
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        ]

    def log_records(self) -> list[Any]:
        return [
            record
            for request in self.received["/v1/logs"]
            for rl in request.resource_logs
            for sl in rl.scope_logs
            for record in sl.log_records
        ]


def attributes(items: Any) -> dict[str, Any]:
    """OTLP key/value attributes as a dict of plain values."""
    out = {}
    for item in items:
        value = item.value
        out[item.key] = getattr(value, value.WhichOneof("value"))
    return out


def point_attributes(metric: Any) -> list[dict[str, Any]]:
    """The attributes of each data point of a metric, whatever its kind."""
    kind = metric.WhichOneof("data")
    return [attributes(point.attributes) for point in getattr(metric, kind).data_points] if kind else []


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = DECODERS[self.path]()
        message.ParseFromString(body)
        self.server.received[self.path].append(message)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver (use `receiver.endpoint` as OTEL_EXPORTER_OTLP_ENDPOINT)."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
