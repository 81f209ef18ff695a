"""OpenTelemetry for the server, configured only from the standard OTEL_* variables.

`setup_telemetry` builds the providers (or nothing at all when no exporter is configured).
The app factory then hands each layer to `Telemetry.observe_*`, which returns it wrapped in
a typed observer when telemetry is on, and unchanged when it is off.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry import metrics, trace

from .. import __version__
from ..settings import Settings
from ..store import MemoryEvents
from .instruments import BoundedValues, Instruments, Probes
from .providers import Providers, TelemetryConfigError, build_providers

if TYPE_CHECKING:  # stdio answers `initialize` after setup_telemetry and before the SDK loads
    from mcp.server import MCPServer

    from ..backends import Backend
    from ..embeddings import Embedder, EmbeddingModel

SCOPE = "qdrant_mcp"

__all__ = ["Probes", "Telemetry", "TelemetryConfigError", "setup_telemetry"]


@dataclass
class Telemetry:
    providers: Providers
    names: BoundedValues = field(default_factory=BoundedValues)
    # MCP_CALLER_HASH_KEY: set, each call's span carries its OAuth caller as `user.hash`.
    caller_key: bytes | None = None

    @property
    def enabled(self) -> bool:
        return self.providers.enabled

    @cached_property
    def _instruments(self) -> Instruments:
        return Instruments(metrics.get_meter(SCOPE, __version__))

    @cached_property
    def _tracer(self) -> trace.Tracer:
        return trace.get_tracer(SCOPE, __version__)

    def observe_model(self, model: EmbeddingModel, url: str | None = None) -> EmbeddingModel:
        """`url`: the service that computes the vectors, when not this process."""
        if not self.enabled:
            return model
        from .observed import ObservedModel

        return ObservedModel(model, self._tracer, self._instruments, _server(url, 80) if url else None)

    def observe_embedder(self, embedder: Embedder) -> Embedder:
        if not self.enabled:
            return embedder
        from .observed import ObservedEmbedder

        return ObservedEmbedder(embedder, self._tracer, self._instruments)

    def observe_backend(self, backend: Backend, url: str | None) -> Backend:
        if not self.enabled:
            return backend
        from .observed import ObservedBackend

        server = _server(url, 6333) if url and url != ":memory:" else None
        return ObservedBackend(backend, self._tracer, self._instruments, self.names, server)

    def memory_events(self) -> MemoryEvents | None:
        """What counts the memories created, updated and expired; None when telemetry is off."""
        if not self.enabled:
            return None
        from .observed import ObservedMemoryEvents

        return ObservedMemoryEvents(self._instruments, self.names)

    def observe_server(self, mcp: MCPServer, tools: Iterable[str]) -> None:
        """Append the message middleware (inside the SDK's own span) and learn the tool names."""
        if not self.enabled:
            return
        from .middleware import MessageTelemetry

        self.names.tools = frozenset(tools)
        mcp.middleware.append(MessageTelemetry(self._instruments, self.names, self.caller_key))

    def observe_state(self, probes: Probes) -> None:
        if self.enabled:
            self._instruments.observe(probes)

    def shutdown(self) -> None:
        """Flush what is buffered; called once the server has stopped."""
        self.providers.shutdown()


def _server(url: str, http_port: int) -> tuple[str, int]:
    """server.address and server.port of a URL (`http_port` when an http URL names none)."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else http_port)


def setup_telemetry(settings: Settings) -> Telemetry:
    """Providers from OTEL_*; raises TelemetryConfigError (a one-line message) for a bad value."""
    providers = build_providers(__version__)
    if providers.tracer_provider is not None:
        trace.set_tracer_provider(providers.tracer_provider)
    if providers.meter_provider is not None:
        metrics.set_meter_provider(providers.meter_provider)
    if providers.logger_provider is not None:
        from .log_bridge import OtelLogHandler

        handler = OtelLogHandler(providers.logger_provider)
        handler.setLevel(settings.log_level)
        logging.getLogger().addHandler(handler)
    key = settings.caller_hash_key.get_secret_value().encode() if settings.caller_hash_key else None
    return Telemetry(providers, caller_key=key)
