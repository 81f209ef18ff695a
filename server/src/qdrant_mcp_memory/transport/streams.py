"""Graceful stop for HTTP: refuse new calls, let the ones in flight finish, then end the streams.

Two kinds of request reach the server. Calls (a POST carrying one JSON-RPC message) end
when answered: on stop they are waited for. Streams (a GET event stream, the SSE
transport's stream, a 2026-era `subscriptions/listen` POST) last until the client leaves:
on stop they are cancelled once the calls are done, so uvicorn has nothing left to wait
for and the process exits well within Docker's 10 s grace period.
"""

from __future__ import annotations

import json

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LISTEN_METHOD = b"subscriptions/listen"


class RequestTracker:
    def __init__(self, app: ASGIApp, stream_paths: frozenset[str]) -> None:
        self.app = app
        self.stream_paths = stream_paths
        self.in_flight = 0
        self.closing = False
        self._idle = anyio.Event()
        self._streams: set[anyio.CancelScope] = set()

    @property
    def streams(self) -> int:
        return len(self._streams)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"].rstrip("/") in self.stream_paths and _is_stream(scope):
            await self._stream(scope, receive, send)
        elif scope["method"] == "POST":
            await self._call(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.closing:
            await _refuse(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if self.closing and self.in_flight == 0:
                self._idle.set()

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.closing:
            await _refuse(send)
            return
        started = finished = False

        async def watched(message: Message) -> None:
            nonlocal started, finished
            started = started or message["type"] == "http.response.start"
            finished = finished or (message["type"] == "http.response.body" and not message.get("more_body", False))
            await send(message)

        with anyio.CancelScope() as stream:
            self._streams.add(stream)
            try:
                await self.app(scope, receive, watched)
            finally:
                self._streams.discard(stream)
        if stream.cancelled_caught:
            # Ended by stop(): finish the response properly, so the client sees the stream end, not an error.
            if not started:
                await _refuse(send)
            elif not finished:
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def stop(self, grace: float) -> int:
        """Refuse new requests, wait up to `grace` seconds for calls in flight, then end every stream.

        Returns how many calls were still running when the grace period ran out."""
        self.closing = True
        if self.in_flight:
            with anyio.move_on_after(grace):
                await self._idle.wait()
        for stream in list(self._streams):
            stream.cancel()
        return self.in_flight


def _is_stream(scope: Scope) -> bool:
    if scope["method"] == "GET":
        return True
    return any(name == b"mcp-method" and value == LISTEN_METHOD for name, value in scope["headers"])


async def _refuse(send: Send) -> None:
    body = json.dumps({"error": "shutting down", "detail": "the server is stopping; retry on another instance"})
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
