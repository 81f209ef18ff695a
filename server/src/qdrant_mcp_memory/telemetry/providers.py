"""Tracer, meter and logger providers built from the standard OTEL_* variables only.

A signal is on when its exporter is named (`OTEL_{TRACES,METRICS,LOGS}_EXPORTER`, other
than `none`) or an OTLP endpoint is set for it. With neither, nothing is installed: no
exporter threads, no network, no output, and the API stays a no-op.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.resources import Resource

SERVICE_NAME = "qdrant-mcp"
SIGNALS = ("traces", "metrics", "logs")


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _truthy(name: str) -> bool:
    return (_env(name) or "").lower() in ("1", "true", "yes")


def exporter_for(signal: str) -> str | None:
    """The exporter a signal uses (otlp, console, prometheus), or None when it is off."""
    if _truthy("OTEL_SDK_DISABLED"):
        return None
    named = _env(f"OTEL_{signal.upper()}_EXPORTER")
    if named:
        return None if named.lower() == "none" else named.split(",")[0].strip().lower()
    if _env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"):
        return "otlp"
    return None


def _protocol(signal: str) -> str:
    return (
        _env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or _env("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    )


def build_resource(version: str) -> Resource:
    """service.name (OTEL_SERVICE_NAME wins over the default), version and a per-process instance id."""
    resource = Resource.create({"service.version": version, "service.instance.id": str(uuid.uuid4())})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    return resource


@dataclass
class Providers:
    tracer_provider: Any = None
    meter_provider: Any = None
    logger_provider: Any = None
    closers: list[Any] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return any((self.tracer_provider, self.meter_provider, self.logger_provider))

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is not None:
                provider.shutdown()
        for close in self.closers:
            close()


def build_providers(version: str) -> Providers:
    chosen = {signal: exporter_for(signal) for signal in SIGNALS}
    providers = Providers()
    if not any(chosen.values()):
        return providers
    resource = build_resource(version)
    if chosen["traces"]:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        providers.tracer_provider = TracerProvider(resource=resource)
        providers.tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(chosen["traces"])))
    if chosen["metrics"]:
        from opentelemetry.sdk.metrics import MeterProvider

        providers.meter_provider = MeterProvider(
            resource=resource, metric_readers=[_metric_reader(chosen["metrics"], providers)]
        )
    if chosen["logs"]:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        providers.logger_provider = LoggerProvider(resource=resource)
        providers.logger_provider.add_log_record_processor(BatchLogRecordProcessor(_log_exporter(chosen["logs"])))
    return providers


def _unsupported(signal: str, name: str, allowed: str = "otlp, console or none") -> ValueError:
    return ValueError(f"OTEL_{signal.upper()}_EXPORTER={name} is not supported here (use {allowed})")


def _span_exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)  # stdout may carry the stdio protocol
    if name != "otlp":
        raise _unsupported("traces", name)
    if _protocol("traces") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
    return OTLPSpanExporter()


def _metric_reader(name: str, providers: Providers) -> Any:
    if name == "prometheus":
        # The standard variables of the Prometheus exporter; its own HTTP server, for scraping.
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        host = _env("OTEL_EXPORTER_PROMETHEUS_HOST") or "localhost"
        port = int(_env("OTEL_EXPORTER_PROMETHEUS_PORT") or "9464")
        server, _thread = start_http_server(port=port, addr=host)
        providers.closers.append(server.shutdown)
        return PrometheusMetricReader()
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr))
    if name != "otlp":
        raise _unsupported("metrics", name, "otlp, prometheus, console or none")
    if _protocol("metrics") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # type: ignore[assignment]
    return PeriodicExportingMetricReader(OTLPMetricExporter())


def _log_exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter(out=sys.stderr)
    if name != "otlp":
        raise _unsupported("logs", name)
    if _protocol("logs") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # type: ignore[assignment]
    return OTLPLogExporter()
