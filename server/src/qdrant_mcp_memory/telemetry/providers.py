"""Tracer, meter and logger providers built from the standard OTEL_* variables only.

A signal is on when exporters are named for it (`OTEL_{TRACES,METRICS,LOGS}_EXPORTER`, a
comma list, `none` for off) or an OTLP endpoint is set for it. With neither, nothing is
installed: no exporter threads, no network, no output, and the API stays a no-op. A name
that is not supported stops the server at start with one line, like any bad setting.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

SERVICE_NAME = "qdrant-mcp"
SIGNALS = ("traces", "metrics", "logs")
EXPORTERS = {
    "traces": ("otlp", "console"),
    "metrics": ("otlp", "prometheus", "console"),
    "logs": ("otlp", "console"),
}
PROTOCOLS = ("http/protobuf", "grpc")


class TelemetryConfigError(ValueError):
    """An OTEL_* variable names something this server cannot do."""


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _truthy(name: str) -> bool:
    return (_env(name) or "").lower() in ("1", "true", "yes")


def exporters_for(signal: str) -> list[str]:
    """The exporters a signal uses (empty when it is off)."""
    if _truthy("OTEL_SDK_DISABLED"):
        return []
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    named = _env(variable)
    if named:
        names = [name.strip().lower() for name in named.split(",") if name.strip()]
        if names == ["none"]:
            return []
        unknown = [name for name in names if name not in EXPORTERS[signal]]
        if unknown:
            allowed = ", ".join((*EXPORTERS[signal], "none"))
            raise TelemetryConfigError(f"{variable}={named}: {', '.join(unknown)} is not supported (use {allowed})")
        return list(dict.fromkeys(names))
    if _env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"):
        return ["otlp"]
    return []


def _protocol(signal: str) -> str:
    variable = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
    protocol = _env(variable) or _env("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    if protocol not in PROTOCOLS:
        name = variable if _env(variable) else "OTEL_EXPORTER_OTLP_PROTOCOL"
        raise TelemetryConfigError(f"{name}={protocol} is not supported (use {' or '.join(PROTOCOLS)})")
    return protocol


def build_resource(version: str) -> Resource:
    """service.name (OTEL_SERVICE_NAME wins over the default), version and a per-process instance id."""
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.version": version, "service.instance.id": str(uuid.uuid4())})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    return resource


@dataclass
class Providers:
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    logger_provider: LoggerProvider | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

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
    chosen = {signal: exporters_for(signal) for signal in SIGNALS}
    for signal, names in chosen.items():
        if "otlp" in names:
            _protocol(signal)  # a bad protocol fails now, before anything starts
    providers = Providers()
    if not any(chosen.values()):
        return providers
    resource = build_resource(version)
    if chosen["traces"]:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = TracerProvider(resource=resource)
        for name in chosen["traces"]:
            tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(name)))
        providers.tracer_provider = tracer_provider
    if chosen["metrics"]:
        from opentelemetry.sdk.metrics import MeterProvider

        readers = [_metric_reader(name, providers) for name in chosen["metrics"]]
        providers.meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    if chosen["logs"]:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        logger_provider = LoggerProvider(resource=resource)
        for name in chosen["logs"]:
            logger_provider.add_log_record_processor(BatchLogRecordProcessor(_log_exporter(name)))
        providers.logger_provider = logger_provider
    return providers


def _span_exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)  # stdout may carry the stdio protocol
    if _protocol("traces") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _metric_reader(name: str, providers: Providers) -> MetricReader:
    if name == "prometheus":
        # The standard variables of the Prometheus exporter; its own HTTP server, for scraping.
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        host = _env("OTEL_EXPORTER_PROMETHEUS_HOST") or "localhost"
        try:
            port = int(_env("OTEL_EXPORTER_PROMETHEUS_PORT") or "9464")
        except ValueError:
            raise TelemetryConfigError("OTEL_EXPORTER_PROMETHEUS_PORT must be a port number") from None
        server, _thread = start_http_server(port=port, addr=host)
        providers.closers.append(server.shutdown)
        return PrometheusMetricReader()
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr))
    if _protocol("metrics") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

        return PeriodicExportingMetricReader(GrpcMetricExporter())
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return PeriodicExportingMetricReader(OTLPMetricExporter())


def _log_exporter(name: str) -> LogRecordExporter:
    if name == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter(out=sys.stderr)
    if _protocol("logs") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter

        return GrpcLogExporter()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter()
