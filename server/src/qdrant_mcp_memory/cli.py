"""Command line: parse flags, validate settings, set up logging and telemetry, then serve."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import anyio
from pydantic import ValidationError

from .serve import serve
from .settings import Settings
from .telemetry import setup_telemetry

log = logging.getLogger("qdrant_mcp_memory")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qdrant-mcp-memory", description="MCP server for Qdrant (semantic memory).")
    parser.add_argument("--transport", choices=["stdio", "sse", "streamable-http"], help="overrides MCP_TRANSPORT")
    parser.add_argument("--host", help="bind address for HTTP transports (overrides MCP_HOST)")
    parser.add_argument("--port", type=int, help="port for HTTP transports (overrides MCP_PORT)")
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {"MCP_TRANSPORT": args.transport, "MCP_HOST": args.host, "MCP_PORT": args.port}
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def describe(error: ValidationError) -> str:
    """One line naming the variable(s) at fault."""
    parts = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if item["loc"] else message)
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(f"qdrant-mcp-memory: invalid setting: {describe(exc)}", file=sys.stderr)
        return 2
    # Before numpy loads: embedded Qdrant's search is one matrix-vector product per query, and
    # OpenBLAS threads spin between calls, taking the cores the embedding runs and event loop need.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .logs import configure_logging

    configure_logging(settings)
    telemetry = setup_telemetry(settings)
    try:
        anyio.run(serve, settings, telemetry, backend_options={"use_uvloop": _has_uvloop()})
    except Exception as exc:
        _report_failure(exc)
        return 1
    finally:
        telemetry.shutdown()
    return 0


def _has_uvloop() -> bool:
    """uvloop (a dependency on Linux and macOS) runs the event loop in C: less CPU per call."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _report_failure(exc: BaseException) -> None:
    """Expected start-up failures get one clear line; anything else its traceback."""
    from .embeddings import EmbeddingModelError
    from .store import StoreError

    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            _report_failure(inner)
    elif isinstance(exc, (EmbeddingModelError, StoreError)):
        log.error("cannot start: %s", exc)
    else:
        log.error("server failed", exc_info=exc)
