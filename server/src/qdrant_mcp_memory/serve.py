"""Serving: the store starts in the background while the transport already answers; a
signal stops the transport gracefully, then the store closes."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio
import uvicorn
from anyio.abc import TaskGroup
from mcp.server import MCPServer

from .settings import Settings
from .telemetry import Telemetry

log = logging.getLogger("qdrant_mcp_memory")

Stop = Callable[[], Awaitable[None]]
# In-flight calls get this long to finish after SIGTERM; below Docker's default 10 s grace.
SHUTDOWN_GRACE_S = 8


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
    path = "/sse" if settings.transport == "sse" else settings.path
    log.info("serving", extra={"transport": settings.transport, "url": f"http://{settings.host}:{settings.port}{path}"})

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
