"""Logging: one line per event, JSON in containers, plain text on a terminal.

Every record carries the current trace and span ids, so a log line leads to its trace.
Under stdio the protocol owns stdout, so logs go to stderr there.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from opentelemetry import trace

from .settings import Settings

if TYPE_CHECKING:
    import loguru

# Attributes every LogRecord has; anything else was passed through `extra=` and is emitted.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}


def _trace_ids() -> tuple[str | None, str | None]:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def event_fields(record: logging.LogRecord) -> dict[str, object]:
    """What the call passed with `extra=`: the event's own fields."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id, span_id = _trace_ids()
        if trace_id:
            entry["trace_id"], entry["span_id"] = trace_id, span_id
        entry.update(event_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One line per record: control characters in client-chosen text (a tool name with a newline) are escaped,
    so no value can forge a line of its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # logging's own method name
        return _escape(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = event_fields(record)
        trace_id, _ = _trace_ids()
        if trace_id:
            extras["trace_id"] = trace_id
        if extras:
            line += " " + " ".join(f"{_escape(str(key))}={_escape(str(value))}" for key, value in extras.items())
        return line


def _escape(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def configure_logging(settings: Settings) -> logging.Handler:
    """Route every logger (ours, the SDK's, uvicorn's) through one handler on the root."""
    stream: TextIO = sys.stderr if settings.transport == "stdio" else sys.stdout
    use_json = settings.log_format == "json" or (settings.log_format == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mcp"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # At DEBUG the SDK and SSE loggers write whole messages, documents included: never below INFO.
    for name in ("mcp", "sse_starlette"):
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(settings.log_level)))
    # A line per request duplicates the per-call log; keep access logs for debugging.
    logging.getLogger("uvicorn.access").setLevel(logging.DEBUG if settings.log_level == "DEBUG" else logging.WARNING)
    for noisy in ("httpx", "httpcore", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    _route_loguru()
    return handler


def _route_loguru() -> None:
    """fastembed logs through loguru; send its records through the same handler and format."""
    try:
        from loguru import logger
    except ImportError:
        return

    def sink(message: loguru.Message) -> None:
        record = message.record
        logging.getLogger(record["name"]).log(record["level"].no, record["message"])

    logger.remove()
    logger.add(sink, level="WARNING", format="{message}")
