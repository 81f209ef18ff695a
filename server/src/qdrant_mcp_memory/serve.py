"""Serving: the transport comes up first, then the engine opens and the model loads behind it
(both take the interpreter for seconds: started first, they would hold up the transport's first
answers); tool calls wait for them. A signal stops the server gracefully.

Stop order on SIGTERM/SIGINT: new requests are refused (503), calls in flight finish (up to
DRAIN_GRACE_S), event streams are ended, uvicorn closes, then the embedding workers stop
and the engine is flushed and closed. The whole stop stays within Docker's 10 s grace.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio
import uvicorn

from .app import Application
from .settings import Settings
from .telemetry import Telemetry
from .transport.protocol import header_deadline_protocol
from .transport.stdio import FirstLine, serve_stdio

log = logging.getLogger("qdrant_mcp_memory")

Stop = Callable[[], Awaitable[None]]
# Calls in flight get this long to finish after SIGTERM; streams and shutdown take the rest of 10 s.
DRAIN_GRACE_S = 7.0
KEEP_ALIVE_S = 5


class StartupError(Exception):
    """The server cannot start for a reason one line explains (port in use, storage locked, ...)."""


async def serve(settings: Settings, telemetry: Telemetry, first_line: FirstLine | None = None) -> None:
    """Serve until stopped; over stdio, `first_line` is what the client sent before the SDK loaded."""
    application = Application(settings, telemetry)
    transport_up = anyio.Event()
    if settings.transport == "stdio":
        run, stop = _stdio(application, transport_up, first_line)
    else:
        run, stop = _http(settings, application, transport_up)
    transport_done, components_done = anyio.Event(), anyio.Event()
    failure: BaseException | None = None

    async def components() -> None:
        # The engine stays open until the transport has stopped: calls in flight can finish.
        nonlocal failure
        try:
            await transport_up.wait()
            if transport_done.is_set():  # the transport never came up
                return
            async with application.running():
                await transport_done.wait()
        except Exception as exc:
            failure = exc
            await stop()
        finally:
            components_done.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(components)
        tasks.start_soon(_stop_on_signal, stop)
        if application.sessions is not None:
            tasks.start_soon(application.sessions.expire_idle)
        await run()
        transport_done.set()
        transport_up.set()
        await components_done.wait()
        tasks.cancel_scope.cancel()
    log.info("stopped")
    if failure is not None:
        raise failure


def _stdio(
    application: Application, up: anyio.Event, first_line: FirstLine | None
) -> tuple[Callable[[], Awaitable[None]], Stop]:
    scope = anyio.CancelScope()

    async def run() -> None:
        log.info("serving on stdio")
        up.set()
        with scope:
            await serve_stdio(application.mcp, first_line)

    async def stop() -> None:
        scope.cancel()

    return run, stop


def _http(settings: Settings, application: Application, up: anyio.Event) -> tuple[Callable[[], Awaitable[None]], Stop]:
    tracker = application.http_app()
    sock = _bind(settings.host, settings.port)
    server = _Server(
        up,
        uvicorn.Config(
            tracker,
            log_config=None,
            lifespan="on",
            http=header_deadline_protocol(settings.header_timeout),
            limit_concurrency=settings.max_connections,
            timeout_keep_alive=KEEP_ALIVE_S,
            # The calls were drained already; what is left is cancelled streams winding down.
            timeout_graceful_shutdown=1,
        ),
    )

    async def run() -> None:
        path = "/sse" if settings.transport == "sse" else settings.path
        url = f"http://{settings.host}:{settings.port}{path}"
        log.info("serving", extra={"transport": settings.transport, "url": url})
        await server.serve(sockets=[sock])

    async def stop() -> None:
        left = await tracker.stop(DRAIN_GRACE_S)
        if left:
            log.warning("stopping with calls still in flight", extra={"in_flight": left})
        server.should_exit = True

    return run, stop


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a busy port is one clear line, not a traceback from uvicorn."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        reason = (
            "is in use by another process"
            if exc.errno == errno.EADDRINUSE
            else f"cannot be bound ({exc.strerror or exc})"
        )
        raise StartupError(f"port {port} on {host} {reason}: choose another with --port or MCP_PORT") from None
    return sock


async def _stop_on_signal(stop: Stop) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
            await stop()
            return


class _Server(uvicorn.Server):
    """Sets `up` once it listens. uvicorn re-raises a captured SIGTERM after shutting down, so the
    process would die by the signal (exit 143). Signals are handled by `_stop_on_signal` instead,
    so a clean stop exits 0."""

    def __init__(self, up: anyio.Event, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = up

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
