"""OpenTelemetry for the server, configured only from the standard OTEL_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings


@dataclass
class Telemetry:
    def shutdown(self) -> None:
        pass


def setup_telemetry(settings: Settings) -> Telemetry:
    return Telemetry()
