"""An HTTP front the tests control, in front of the real embedding server.

It forwards every request to the real server, except that it can answer the next requests
itself with a scripted status (429 with Retry-After, 503) or forward them late. This is fault
injection where the real server cannot be made to fail that way (Infinity neither rate-limits
nor answers 5xx on demand). It records when each embeddings request arrived: the tests see
what reached the service (nothing, for a call refused before any embedding) and how long the
server waited between attempts. Loopback only; uvicorn in a daemon thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from support import free_port

Message = dict[str, Any]
FORWARDED_HEADERS = ("authorization", "content-type")


@dataclass(frozen=True)
class Scripted:
    status: int
    retry_after: str | None = None


class FaultyFront:
    def __init__(self, target: str) -> None:
        self.target = target  # the real server's base URL
        self.scripted: deque[Scripted] = deque()
        self.delay_s = 0.0
        self.arrivals: list[float] = []  # time.monotonic() of each POST .../embeddings
        self.batches: list[int] = []  # texts in each of them
        self.port = free_port()
        config = uvicorn.Config(
            self._app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off", interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="faulty-front", daemon=True)

    @property
    def url(self) -> str:
        """EMBEDDING_URL through the front."""
        return f"http://127.0.0.1:{self.port}/v1"

    def answer(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """The next `times` requests get `status` from the front itself, not the service."""
        self.scripted.extend(Scripted(status, retry_after) for _ in range(times))

    def start(self) -> FaultyFront:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the faulty front did not start")
            time.sleep(0.02)
        return self

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _app(self, scope: Message, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST" and scope["path"].endswith("/embeddings"):
            self.arrivals.append(time.monotonic())
            self.batches.append(len(json.loads(body)["input"]))
        if self.scripted:
            scripted = self.scripted.popleft()
            headers = [(b"content-type", b"application/json")]
            if scripted.retry_after is not None:
                headers.append((b"retry-after", scripted.retry_after.encode()))
            await send({"type": "http.response.start", "status": scripted.status, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"error": {"message": "scripted by the test"}}'})
            return
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        headers = {
            name.decode(): value.decode() for name, value in scope["headers"] if name.decode() in FORWARDED_HEADERS
        }
        async with httpx.AsyncClient(timeout=120) as client:
            response = await client.request(scope["method"], self.target + scope["path"], content=body, headers=headers)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(b"content-type", response.headers.get("content-type", "application/json").encode())],
            }
        )
        await send({"type": "http.response.body", "body": response.content})
