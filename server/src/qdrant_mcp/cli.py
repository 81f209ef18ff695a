"""Command line: parse flags, validate settings, run the chosen transport until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio
import uvicorn
from anyio.abc import TaskGroup
from mcp.server import MCPServer
from pydantic import ValidationError

from .settings import Settings
from .telemetry import Telemetry, setup_telemetry

log = logging.getLogger("qdrant_mcp")

Stop = Callable[[], Awaitable[None]]
# In-flight calls get this long to finish after SIGTERM; below Docker's default 10 s grace.
SHUTDOWN_GRACE_S = 8


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qdrant-mcp", description="MCP server for Qdrant (semantic memory).")
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
        print(f"qdrant-mcp: invalid setting: {describe(exc)}", file=sys.stderr)
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


async def serve(settings: Settings, telemetry: Telemetry) -> None:
    from .app import create_server, create_store

    store = create_store(settings)
    mcp = create_server(settings, store)
    telemetry.instrument(mcp, store)
    failure: Exception | None = None

    async def start_store(stop: Stop) -> None:
        # The transport is already up (health answers, tools/list works) while the model loads.
        nonlocal failure
        try:
            await store.start()
        except Exception as exc:
            failure = exc
            await stop()

    try:
        async with anyio.create_task_group() as tasks:
            stop = await _run_transport(settings, mcp, tasks)
            tasks.start_soon(_stop_on_signal, stop)
            tasks.start_soon(start_store, stop)
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()
        log.info("stopped")
    if failure is not None:
        raise failure


async def _run_transport(settings: Settings, mcp: MCPServer, tasks: TaskGroup) -> Stop:
    """Start the transport in `tasks`; return the function that stops it gracefully."""
    if settings.transport == "stdio":
        scope = anyio.CancelScope()

        async def run_stdio() -> None:
            with scope:
                await mcp.run_stdio_async()
            tasks.cancel_scope.cancel()

        tasks.start_soon(run_stdio)
        log.info("serving on stdio")

        async def stop_stdio() -> None:
            scope.cancel()

        return stop_stdio

    from .app import create_http_app
    from .drain import RequestDrain

    drain = RequestDrain(create_http_app(settings, mcp))
    server = _GracefulServer(
        uvicorn.Config(
            drain,
            host=settings.host,
            port=settings.port,
            log_config=None,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            lifespan="on",
        )
    )

    async def run_http() -> None:
        await server.serve()
        tasks.cancel_scope.cancel()

    tasks.start_soon(run_http)
    log.info(
        "serving",
        extra={"transport": settings.transport, "url": f"http://{settings.host}:{settings.port}{settings.path}"},
    )

    async def stop_http() -> None:
        left = await drain.drain(SHUTDOWN_GRACE_S)
        if left:
            log.warning("stopping with calls still in flight", extra={"in_flight": left})
        server.should_exit = True

    return stop_http


async def _stop_on_signal(stop: Stop) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
            await stop()
            return


class _GracefulServer(uvicorn.Server):
    """uvicorn re-raises a captured SIGTERM after shutting down, so the process would die by
    the signal (exit 143). Signals are handled by `_stop_on_signal` instead, so a clean stop exits 0."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
