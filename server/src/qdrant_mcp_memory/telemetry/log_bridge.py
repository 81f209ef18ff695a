"""A logging handler that sends records through the OTel Logs API (with their trace context).

The SDK's own LoggingHandler is deprecated since 1.40; this is the small part of it the
server needs: body, severity, the `extra=` attributes, and the active span as context.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry._logs import LoggerProvider, SeverityNumber

from ..logs import event_fields

_SEVERITY = {
    logging.DEBUG: SeverityNumber.DEBUG,
    logging.INFO: SeverityNumber.INFO,
    logging.WARNING: SeverityNumber.WARN,
    logging.ERROR: SeverityNumber.ERROR,
    logging.CRITICAL: SeverityNumber.FATAL,
}


class OtelLogHandler(logging.Handler):
    def __init__(self, provider: LoggerProvider) -> None:
        super().__init__()
        self.provider = provider

    def emit(self, record: logging.LogRecord) -> None:
        attributes: dict[str, Any] = {
            key: value if isinstance(value, (str, int, float, bool)) else str(value)
            for key, value in event_fields(record).items()
        }
        attributes["code.function.name"] = record.funcName
        self.provider.get_logger(record.name).emit(
            timestamp=int(record.created * 1e9),
            severity_number=_SEVERITY.get(record.levelno, SeverityNumber.INFO),
            severity_text=record.levelname,
            body=record.getMessage(),
            attributes=attributes,
            exception=record.exc_info[1] if record.exc_info else None,
        )
