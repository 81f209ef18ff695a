"""Calls and held streams over HTTP: a bound on the streams one client holds, and a graceful stop.

Two kinds of request reach the server. Calls (a POST carrying one JSON-RPC message) end
when answered: on stop they are waited for. Streams (a GET event stream, the SSE
transport's stream, a 2026-era `subscriptions/listen` POST) last until the client leaves:
on stop they are cancelled once the calls are done, so uvicorn has nothing left to wait
for and the process exits well within Docker's 10 s grace period.

Each stream holds a connection (of MCP_MAX_CONNECTIONS) for as long as its client likes, so
one client may hold at most `max_streams_per_client` at once; more are refused with 429. A
client is the address uvicorn reports: the TCP peer, or the address a trusted proxy
(FORWARDED_ALLOW_IPS, loopback by default) forwarded. Clients behind one NAT or one untrusted
proxy share the bound. Refusing a stream costs a client nothing it needs: this server sends
nothing unprompted, every answer comes on the call's own response.
"""

from __future__ import annotations

import json
from collections import Counter

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LISTEN_METHOD = b"subscriptions/listen"


class RequestTracker:
    def __init__(self, app: ASGIApp, stream_paths: frozenset[str], max_streams_per_client: int) -> None:
        self.app = app
        self.stream_paths = stream_paths
        self.max_streams_per_client = max_streams_per_client
        self.in_flight = 0
        self.closing = False
        self._idle = anyio.Event()
        self._streams: set[anyio.CancelScope] = set()
        self._streams_of: Counter[str] = Counter()  # held streams by client address

    @property
    def streams(self) -> int:
        return len(self._streams)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"].rstrip("/") in self.stream_paths and is_stream(scope):
            await self._stream(scope, receive, send)
        elif scope["method"] == "POST":
            await self._call(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.closing:
            await _shutting_down(send)
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
            await _shutting_down(send)
            return
        client = _client_address(scope)
        if self._streams_of[client] >= self.max_streams_per_client:
            detail = (
                f"{client} already holds {self.max_streams_per_client} open event streams, the most one client may "
                "hold (MCP_MAX_STREAMS_PER_CLIENT): close one first; calls work without a stream"
            )
            await _refuse(send, 429, "too many open streams", detail)
            return
        started = finished = False

        async def watched(message: Message) -> None:
            nonlocal started, finished
            started = started or message["type"] == "http.response.start"
            finished = finished or (message["type"] == "http.response.body" and not message.get("more_body", False))
            await send(message)

        with anyio.CancelScope() as stream:
            self._streams.add(stream)
            self._streams_of[client] += 1
            try:
                await self.app(scope, receive, watched)
            finally:
                self._streams.discard(stream)
                self._streams_of[client] -= 1
                if not self._streams_of[client]:
                    del self._streams_of[client]
        if stream.cancelled_caught:
            # Ended by stop(): finish the response properly, so the client sees the stream end, not an error.
            if not started:
                await _shutting_down(send)
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


def is_stream(scope: Scope) -> bool:
    """A request that holds its response open until the client leaves (not a call that ends when answered)."""
    if scope["method"] == "GET":
        return True
    return any(name == b"mcp-method" and value == LISTEN_METHOD for name, value in scope["headers"])


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "an unknown client"


async def _shutting_down(send: Send) -> None:
    await _refuse(
        send, 503, "shutting down", "the server is stopping; retry on another instance", [(b"retry-after", b"1")]
    )


async def _refuse(
    send: Send, status: int, error: str, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": error, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
