"""OpenTelemetry for the server, configured only from the standard OTEL_* variables.

`setup_telemetry` builds the providers (or nothing at all when no exporter is configured);
`Telemetry.instrument` then wraps the server's layers from outside.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mcp.server import MCPServer

from .. import __version__
from ..settings import Settings
from ..store import QdrantStore
from .providers import Providers, build_providers


@dataclass
class Telemetry:
    providers: Providers

    @property
    def enabled(self) -> bool:
        return self.providers.enabled

    def instrument(self, mcp: MCPServer, store: QdrantStore) -> None:
        """Wrap the message pipeline, the embedder and the store; a no-op when telemetry is off."""
        if not self.enabled:
            return
        from opentelemetry import metrics, trace

        from .instrument import Instruments, instrument_embedder, instrument_store, message_middleware

        tracer = trace.get_tracer("qdrant_mcp", __version__)
        instruments = Instruments(metrics.get_meter("qdrant_mcp", __version__))
        mcp.middleware.append(message_middleware(instruments))
        instrument_embedder(store.embedder, tracer, instruments)
        instrument_store(store, tracer, instruments)

    def shutdown(self) -> None:
        """Flush what is buffered; called once the server has stopped."""
        self.providers.shutdown()


def setup_telemetry(settings: Settings) -> Telemetry:
    providers = build_providers(__version__)
    if providers.tracer_provider is not None:
        from opentelemetry import trace

        trace.set_tracer_provider(providers.tracer_provider)
    if providers.meter_provider is not None:
        from opentelemetry import metrics

        metrics.set_meter_provider(providers.meter_provider)
    if providers.logger_provider is not None:
        from .log_bridge import OtelLogHandler

        handler = OtelLogHandler(providers.logger_provider)
        handler.setLevel(settings.log_level)
        logging.getLogger().addHandler(handler)
    return Telemetry(providers)
