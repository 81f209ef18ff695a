"""2025-11-25 sessions: a bounded number, idle ones expire, and at the cap the least recently active one goes.

The SDK keeps each session (and its task) in memory until the client deletes it; its own
limit then answers 503 to every new client until something expires. Here every session is
tracked from the response that creates it. Only a call in flight (a request being answered)
protects a session: an event stream the client holds open is not activity, or clients that
stay connected and idle (as editors do) would fill the cap and lock every newcomer out. A
session with no call for `idle_timeout` is ended, and when a new client arrives at the cap
the least recently active session without a call in flight is ended to make room. Ending a
session is the protocol's own DELETE, sent in-process through the SDK with the Host the
session was created under, so the SDK tears it down (its event stream ends) exactly as if
its client had left. Such a client gets 404 on its next request and, as the protocol says,
opens a new session.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .streams import is_stream

log = logging.getLogger(__name__)
SESSION_HEADER = b"mcp-session-id"
VERSION_HEADER = b"mcp-protocol-version"


@dataclass
class _Session:
    host: bytes
    last_active: float
    in_flight: int = 0  # calls being answered; held streams do not count


class SessionLimiter:
    def __init__(self, app: ASGIApp, path: str, max_sessions: int, idle_timeout: float) -> None:
        self.app = app
        self.path = path
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self._sessions: dict[bytes, _Session] = {}
        self._opening = 0  # new-session requests admitted but not yet answered

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        session_id = headers.get(SESSION_HEADER)
        if session_id is not None:
            await self._existing(session_id, scope, receive, send)
        elif scope["method"] == "POST" and _legacy(headers.get(VERSION_HEADER)):
            await self._opening_request(headers.get(b"host", b""), scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _existing(self, session_id: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            await self.app(scope, receive, send)  # unknown or ended: the SDK answers 404
            return
        session.last_active = time.monotonic()
        if is_stream(scope):
            # Opening the stream is activity; holding it is not (it protects nothing from eviction).
            await self.app(scope, receive, send)
            return
        session.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            session.in_flight -= 1
            session.last_active = time.monotonic()
            if scope["method"] == "DELETE":
                self._sessions.pop(session_id, None)

    async def _opening_request(self, host: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        if len(self._sessions) + self._opening >= self.max_sessions:
            await self._evict_least_recently_active()
        created: list[bytes] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                created.extend(value for name, value in message.get("headers", []) if name == SESSION_HEADER)
            await send(message)

        self._opening += 1
        try:
            await self.app(scope, receive, watch)
        finally:
            self._opening -= 1
            for session_id in created:
                self._sessions[session_id] = _Session(host, time.monotonic())

    async def _evict_least_recently_active(self) -> None:
        idle = [(s.last_active, sid) for sid, s in self._sessions.items() if s.in_flight == 0]
        if idle:
            _, session_id = min(idle)
            log.info("session limit reached: ending the least recently active session without a call in flight")
            await self._end(session_id)

    async def expire_idle(self) -> None:
        """Run for the server's lifetime: end sessions without a call for longer than `idle_timeout`."""
        while True:
            await anyio.sleep(min(30.0, self.idle_timeout / 4))
            cutoff = time.monotonic() - self.idle_timeout
            for session_id, session in list(self._sessions.items()):
                if session.in_flight == 0 and session.last_active < cutoff:
                    await self._end(session_id)

    async def _end(self, session_id: bytes) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "DELETE",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", session.host), (SESSION_HEADER, session_id)],
            "client": None,
            "server": None,
        }

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def discard(_: Message) -> None:
            return None

        await self.app(scope, receive, discard)


def _legacy(version: bytes | None) -> bool:
    """Only the handshake era (no version header yet, or 2025-xx / 2024-xx) opens sessions."""
    return version is None or version.startswith((b"2024-", b"2025-"))
