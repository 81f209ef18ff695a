"""Graceful stop for HTTP: refuse new calls, let the ones in flight finish.

uvicorn alone cannot tell a tool call in flight from a client's long-lived SSE stream, and
the streams it cuts at shutdown may carry the very responses being waited for. Counting
POSTs (every MCP request is one) gives the precise condition: nothing left to answer.
"""

from __future__ import annotations

import json

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send


class RequestDrain:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_flight = 0
        self.closing = False
        self._idle = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
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

    async def drain(self, timeout: float) -> int:
        """Stop taking calls and wait up to `timeout` for the running ones; returns how many were left."""
        self.closing = True
        if self.in_flight:
            with anyio.move_on_after(timeout):
                await self._idle.wait()
        return self.in_flight


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
